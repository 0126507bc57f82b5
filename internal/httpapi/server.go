// Package httpapi is tracktrace's REST API: the pinned /api/v1 contract,
// health endpoints, the OpenAPI document and its docs page. Every error is an
// RFC 7807 problem+json document.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Tracker is what the API needs of the tracking service.
type Tracker interface {
	Record(ctx context.Context, cmd tracking.RecordCommand) (eventstore.AppendResult, error)
	// RecordBatch records many commands, each answered as Record would.
	RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome
	Entity(ctx context.Context, tenant, entityID string) (tracking.EntityState, error)
	Events(ctx context.Context, tenant, entityID string, fromVersion int64, limit int) ([]eventstore.Recorded, error)
}

// HealthCheck is one dependency checked by /health and /health/ready.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Optional checks (the cache) report Degraded and never fail readiness:
	// the service still serves without them.
	Optional bool
}

// Deps are the server's collaborators and settings.
type Deps struct {
	Tracker Tracker
	Logger  *slog.Logger
	// Checks are run by /health/ready (each with a short timeout).
	Checks []HealthCheck
	// MaxBodyBytes bounds request bodies (413 beyond). Default 4 MiB.
	MaxBodyBytes int64
	// RequestTimeout bounds the work of one request. Default 15s.
	RequestTimeout time.Duration
	// Version is reported by /health.
	Version string
	// ReadModels and Projections serve the projected views.
	ReadModels  ReadModels
	Projections Projections
	// ResponseCache keeps the rendered answers of entity and timeline
	// reads; nil renders every read anew from ReadModels.
	ResponseCache ResponseCache
	// Eraser erases entities (DELETE /api/v1/entities/{entityId}); nil
	// leaves the call out.
	Eraser Eraser
	// ConsistencyWait bounds how long a read with minVersion waits for the
	// projection (default 2s).
	ConsistencyWait time.Duration
	// OnTimeTolerance is how late a milestone may be and count as on time.
	OnTimeTolerance time.Duration
	// Verifier checks bearer tokens. Nil turns authentication off: every
	// caller is trusted and picks its tenant with X-Tenant-ID.
	Verifier Verifier
	// RateLimit and RateBurst bound each tenant's requests per second
	// (0 = unlimited).
	RateLimit float64
	RateBurst int
	// RateLimitEnabled, when set, is asked on every request whether the
	// rate limit applies (the RateLimiting feature flag); nil means it does.
	RateLimitEnabled func() bool
	// Metrics, when set, is served (without authentication) at MetricsPath.
	Metrics     http.Handler
	MetricsPath string
	// EntityTypes are the entity types list and metrics filters accept (the
	// zero value: the built-in ones).
	EntityTypes tracking.EntityTypes
	// Instrument, when set, wraps the whole API (RED metrics per route).
	Instrument func(http.Handler) http.Handler
	// IdempotencyKeys, when set, binds each Idempotency-Key to the request
	// it first came with; without it a key reused with another request is
	// only noticed where its derived event ids collide.
	IdempotencyKeys IdempotencyKeys
	// EPCIS, when set, serves the GS1 EPCIS 2.0 binding under /epcis.
	EPCIS *EPCIS
	// Subscriptions, when set, serves /api/v1/subscriptions.
	Subscriptions *subscription.Service
	// Sites, when set, serves /api/v1/sites.
	Sites *alerting.SiteService
	// Rules, when set, serves the alert rules (/api/v1/rules).
	Rules *alerting.RuleService
	// Live, when set, serves the live streams (/api/v1/stream and
	// /api/v1/entities/{entityId}/stream).
	Live *Live
	// CursorKey authenticates the list cursors the API hands out. Replicas
	// behind one address must share it (serve reads it from the read-model
	// database); empty means a random key, good for this process only.
	CursorKey []byte
}

// Verifier checks the bearer token of an Authorization header and says who
// presents it. Any error answers 401.
type Verifier interface {
	Authenticate(ctx context.Context, authorization string) (tracking.Principal, error)
}

type server struct {
	Deps
	log     *slog.Logger
	limiter *tenantLimiter
	// batchSlots bounds the batches being recorded at once, across all
	// requests, and with them the memory a burst of batches takes.
	batchSlots chan struct{}
	cursors    cursors
	// patterns are the routes registered, as "METHOD path" (tests hold
	// them to the OpenAPI document).
	patterns []string
}

// NewServer returns the API's handler.
func NewServer(d Deps) http.Handler {
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 4 << 20
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 15 * time.Second
	}
	if d.ConsistencyWait <= 0 {
		d.ConsistencyWait = 2 * time.Second
	}
	if d.OnTimeTolerance <= 0 {
		d.OnTimeTolerance = 15 * time.Minute
	}
	if d.ResponseCache == nil && d.ReadModels != nil {
		d.ResponseCache = renderEveryTime{d.ReadModels}
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{Deps: d, log: log, limiter: newTenantLimiter(d.RateLimit, d.RateBurst),
		batchSlots: make(chan struct{}, batchParallelism), cursors: newCursors(d.CursorKey)}
	mux := http.NewServeMux()
	s.routes(mux)
	var h http.Handler = mux
	if d.Instrument != nil {
		h = d.Instrument(h)
	}
	return s.recoverPanics(securityHeaders(rejectUncleanPaths(h)))
}

func (s *server) routes(mux *http.ServeMux) {
	// Each API route names the scope it needs. A GET pattern also serves
	// HEAD, under the same scope.
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		s.patterns = append(s.patterns, pattern)
	}
	api := func(pattern, scope string, h func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error) {
		handle(pattern, s.apiHandler(scope, s.RequestTimeout, h))
	}
	api("POST /api/v1/entities/{entityId}/events", tracking.ScopeWrite, s.appendEvents)
	api("POST /api/v1/events/batch", tracking.ScopeWrite, s.batch)
	api("GET /api/v1/entities/{entityId}", tracking.ScopeRead, s.getEntity)
	api("GET /api/v1/entities/{entityId}/events", tracking.ScopeRead, s.getEvents)
	if s.ReadModels != nil && s.Projections != nil {
		api("GET /api/v1/entities", tracking.ScopeRead, s.listEntities)
		api("GET /api/v1/entities/{entityId}/timeline", tracking.ScopeRead, s.getTimeline)
		api("GET /api/v1/metrics/operational", tracking.ScopeRead, s.getMetrics)
		// Projections span every tenant: operating them is the operator's,
		// not a tenant admin's.
		api("GET /api/v1/projections", tracking.ScopeOperator, s.listProjections)
		api("POST /api/v1/projections/{name}/rebuild", tracking.ScopeOperator, s.rebuildProjection)
	}
	if s.Eraser != nil {
		api("DELETE /api/v1/entities/{entityId}", tracking.ScopeAdmin, s.eraseEntity)
	}
	if s.EPCIS != nil {
		s.epcisRoutes(api)
	}
	if s.Subscriptions != nil {
		s.subscriptionRoutes(api)
	}
	if s.Sites != nil {
		s.siteRoutes(api)
	}
	if s.Rules != nil {
		s.ruleRoutes(api)
	}
	if s.Live != nil {
		// Streams last: no request deadline.
		s.liveRoutes(func(pattern, scope string, h func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error) {
			handle(pattern, s.apiHandler(scope, 0, h))
		})
	}

	handle("GET /health", http.HandlerFunc(s.health))
	handle("GET /health/live", http.HandlerFunc(s.live))
	handle("GET /health/ready", http.HandlerFunc(s.ready))
	if s.Metrics != nil {
		path := s.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		mux.Handle("GET "+path, s.Metrics) // Prometheus' exposition format, outside the OpenAPI document
	}
	handle("GET /openapi.json", http.HandlerFunc(serveOpenAPI))
	handle("GET /docs", http.HandlerFunc(serveDocs))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeProblemDoc(w, r, newProblem(http.StatusMethodNotAllowed, "method-not-allowed",
				r.Method+" is not allowed here; allowed: "+strings.Join(allow, ", ")))
			return
		}
		writeProblemDoc(w, r, newProblem(http.StatusNotFound, "not-found", "no such resource"))
	})
}

// allowedMethods lists the methods the mux serves at r's path with a route
// of its own (not the catch-all).
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// rejectUncleanPaths answers a path with dot segments or empty segments
// with 404, where the mux would redirect (even a POST) to the cleaned path.
func rejectUncleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The escaped path: an identifier in one segment (%2F-escaped, as
		// EPCIS resources take them) is not a path of several.
		p := r.URL.EscapedPath()
		if p != "/" && (strings.Contains(p, "//") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") ||
			strings.Contains(p, "/./") || strings.Contains(p, "/../")) {
			writeProblemDoc(w, r, newProblem(http.StatusNotFound, "not-found", "no such resource (paths are not normalized)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// require answers 403 unless the principal has the scope.
func require(p tracking.Principal, scope string) error {
	if p.Has(scope) {
		return nil
	}
	return &requestError{newProblem(http.StatusForbidden, "forbidden", "this call needs the "+scope+" scope")}
}

// DefaultTenant is the tenant of requests without X-Tenant-ID when
// authentication is off.
const DefaultTenant = "default"

// errUnauthenticated answers 401 with a challenge.
func errUnauthenticated(detail string) error {
	p := newProblem(http.StatusUnauthorized, "unauthenticated", detail)
	return &requestError{p}
}

// authenticate resolves the request's principal: from the bearer token when
// a Verifier is configured, else (the embedded mode) from X-Tenant-ID.
func (s *server) authenticate(r *http.Request) (tracking.Principal, error) {
	if s.Verifier != nil {
		if len(r.Header.Values("Authorization")) > 1 {
			return tracking.Principal{}, badRequest("send one Authorization header, not several")
		}
		h := r.Header.Get("Authorization")
		if strings.TrimSpace(h) == "" {
			return tracking.Principal{}, errUnauthenticated("a bearer token is required")
		}
		p, err := s.Verifier.Authenticate(r.Context(), h)
		if err != nil {
			s.log.DebugContext(r.Context(), "token rejected", "error", err)
			return tracking.Principal{}, errUnauthenticated("the bearer token is not valid")
		}
		return p, nil
	}
	tenant := r.Header.Get("X-Tenant-ID")
	if tenant == "" {
		tenant = DefaultTenant
	}
	if !tracking.IsTenantID(tenant) {
		return tracking.Principal{}, badRequest("X-Tenant-ID must be 1 to 128 letters, digits, '.', '_' or '-'")
	}
	return tracking.Principal{Tenant: tenant, Subject: "anonymous", Unrestricted: true}, nil
}

// apiHandler adapts an API handler: request deadline (timeout, none when
// 0), principal, rate limit, the route's scope, and the mapping of its
// error to a problem.
func (s *server) apiHandler(scope string, timeout time.Duration, h func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		p, err := s.authenticate(r)
		if err == nil && s.limiter != nil && (s.RateLimitEnabled == nil || s.RateLimitEnabled()) {
			if ok, wait := s.limiter.allow(p.Tenant, time.Now()); !ok {
				pr := newProblem(http.StatusTooManyRequests, "rate-limited", "this tenant is over its request rate")
				pr.RetryAfter = retryAfterSeconds(wait)
				err = &requestError{pr}
			}
		}
		if err == nil {
			err = require(p, scope)
		}
		if id := r.PathValue("entityId"); err == nil && id != "" {
			switch {
			case !tracking.IsText(id):
				err = badRequest("entityId must be UTF-8 text without control characters",
					tracking.FieldError{Field: "entityId", Message: "must be UTF-8 text without control characters"})
			case r.Method != http.MethodPost && !tracking.IsEntityID(id):
				// No entity can have it; appends say why it is malformed.
				err = fmt.Errorf("%w: entity %q", tracking.ErrNotFound, id)
			}
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeProblem(w, r, err)
		}
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeProblemDoc(w, r, newProblem(http.StatusInternalServerError, "internal", "an internal error occurred; it has been logged"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// requestID returns the caller's X-Request-ID or a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 128 {
		return id
	}
	return uuid.NewString()
}
