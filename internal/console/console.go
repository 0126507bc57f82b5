// Package console is tracktrace's operator console, served by the binary at
// /console: server-rendered pages (entities, an entity's journey with its
// map, the network's performance, the operation of the service) over the
// same read side the API uses, with small scripts that refresh parts of a
// page as the live stream reports events. Maps and charts are SVG drawn on
// the server; every asset is embedded, nothing is fetched from elsewhere.
//
// Who is asking is the Authenticate function's to say: the embedded mode's
// anonymous principal (Anonymous), or a session a login flow set up. Every
// read is confined to the principal's tenant and needs the scope the
// matching API call needs.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Prefix is the path the console is served under.
const Prefix = "/console"

// Tracker reads an entity from the event store: the source of truth for an
// entity the read models have not projected yet.
type Tracker interface {
	Entity(ctx context.Context, tenant, entityID string) (tracking.EntityState, error)
}

// Projections reports on the projections and says when they advance.
type Projections interface {
	Status(ctx context.Context) ([]projection.Status, error)
	Progress() <-chan struct{}
}

// Subscriptions lists a tenant's webhook subscriptions with their delivery
// progress (subscription.Service).
type Subscriptions interface {
	List(ctx context.Context, tenant, after string, limit int) ([]subscription.Subscription, error)
}

// Sites returns a tenant's site (alerting.SiteService).
type Sites interface {
	Get(ctx context.Context, tenant, id string) (alerting.Site, error)
}

// Backlog is a follower of the log whose distance behind it the operations
// page shows (the Kafka relay, the EPCIS mapping).
type Backlog struct {
	Name   string
	Source interface {
		Backlog(ctx context.Context) (eventstore.Backlog, error)
	}
}

// Authenticate says who makes a request. When it returns false it has
// answered the request itself (a redirect to a login page, a 401, a 400).
type Authenticate func(w http.ResponseWriter, r *http.Request) (tracking.Principal, bool)

// Deps are the console's collaborators. ReadModels and Authenticate are
// required; a nil optional collaborator leaves out what it serves.
type Deps struct {
	// ReadModels are the projected read models, as the API reads them.
	ReadModels   httpapi.ReadModels
	Authenticate Authenticate
	// Tracker answers for entities not projected yet.
	Tracker Tracker
	// Projections feeds the operations page and the waits for a
	// projection to catch up with an event a live page was told of.
	Projections Projections
	// Backlogs are shown on the operations page.
	Backlogs      []Backlog
	Subscriptions Subscriptions
	// Sites are drawn on an entity's map.
	Sites Sites
	// Live serves the pages' event streams.
	Live *httpapi.Live
	// EntityTypes are the entity types the list's filter offers.
	EntityTypes tracking.EntityTypes
	Logger      *slog.Logger
}

// Options are the console's settings.
type Options struct {
	// Unauthenticated shows, on every page, the banner saying that anyone
	// who reaches the port sees the data (the embedded mode).
	Unauthenticated bool
	// OnTimeTolerance is how late a milestone may be and count as on time
	// (Tracking.OnTimeTolerance; default 15 minutes).
	OnTimeTolerance time.Duration
	// ConsistencyWait bounds how long a live fragment waits for the
	// projections to reach the event it was asked for (default 2 s).
	ConsistencyWait time.Duration
	// RequestTimeout bounds the work of a page (default 15 s).
	RequestTimeout time.Duration
	// SignOut, when set, is where the header's "Sign out" form posts;
	// CSRFField names and values the hidden field it carries.
	SignOut   string
	CSRFField func(r *http.Request) (name, value string)
	// FormActionOrigins are origins (scheme://host[:port]) besides the
	// console's own that its forms may lead to: browsers hold a form's
	// redirects to the page's form-action too, and the sign-out's goes on
	// to the issuer's end-session endpoint.
	FormActionOrigins []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sizes of what one page reads: every page is a bounded number of bounded
// queries.
const (
	listPageSize     = 50
	childrenLimit    = 50 // on an entity's page; the list of its children has them all
	timelineLimit    = 500
	maxMapSites      = 10
	subscriptionPage = 100
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// handler is the console.
type handler struct {
	Deps
	opts    Options
	log     *slog.Logger
	pages   map[string]*template.Template
	static  fs.FS
	basemap *basemap
	assets  map[string]string // asset name → its URL, with a content hash
	metrics *metricsCache
}

// New returns the console's handler; mount it at Prefix and Prefix + "/".
func New(d Deps, opts Options) (http.Handler, error) {
	if d.ReadModels == nil || d.Authenticate == nil {
		return nil, errors.New("console: ReadModels and Authenticate are required")
	}
	if opts.OnTimeTolerance <= 0 {
		opts.OnTimeTolerance = 15 * time.Minute
	}
	if opts.ConsistencyWait <= 0 {
		opts.ConsistencyWait = 2 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	csp, err := contentSecurityPolicy(opts.FormActionOrigins)
	if err != nil {
		return nil, err
	}
	h := &handler{Deps: d, opts: opts, log: log, static: static, metrics: newMetricsCache()}
	if h.assets, err = assetURLs(static); err != nil {
		return nil, err
	}
	if h.basemap, err = loadBasemap(); err != nil {
		return nil, err
	}
	if h.pages, err = parsePages(h.funcs()); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	h.routes(mux)
	// A panic is a bug: the server logs it and drops the connection.
	return securityHeaders(csp, mux), nil
}

func (h *handler) routes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", h.serveStatic()))
	mux.Handle("GET "+Prefix, http.RedirectHandler(Prefix+"/", http.StatusMovedPermanently))
	page := func(pattern, scope string, fn func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error) {
		mux.Handle(pattern, h.page(scope, h.opts.RequestTimeout, fn))
	}
	page("GET "+Prefix+"/{$}", tracking.ScopeRead, h.entityList)
	page("GET "+Prefix+"/entities", tracking.ScopeRead, h.entityList)
	page("GET "+Prefix+"/fragments/entities", tracking.ScopeRead, h.entityListFragment)
	page("GET "+Prefix+"/entities/{entityId}", tracking.ScopeRead, h.entityPage)
	page("GET "+Prefix+"/entities/{entityId}/fragment", tracking.ScopeRead, h.entityFragment)
	page("GET "+Prefix+"/metrics", tracking.ScopeRead, h.metricsPage)
	page("GET "+Prefix+"/ops", tracking.ScopeRead, h.opsPage)
	if h.Live != nil {
		// Streams: no request deadline.
		mux.Handle("GET "+Prefix+"/stream", h.page(tracking.ScopeRead, 0, h.tenantStream))
		mux.Handle("GET "+Prefix+"/entities/{entityId}/stream", h.page(tracking.ScopeRead, 0, h.entityStream))
	}
	mux.Handle(Prefix+"/", h.page("", 0, func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
		return errNotFound("There is no such page.")
	}))
}

// page adapts a page handler: deadline (none when 0), principal, scope,
// and the rendering of its error as an error page.
func (h *handler) page(scope string, timeout time.Duration, fn func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		p, ok := h.Authenticate(w, r)
		if !ok {
			return
		}
		var err error
		if scope != "" && !p.Has(scope) {
			err = &pageError{status: http.StatusForbidden, message: "This page needs the " + scope + " scope."}
		}
		if id := r.PathValue("entityId"); err == nil && id != "" && !tracking.IsEntityID(id) {
			err = errNotFound("There is no entity " + id + ".")
		}
		if err == nil {
			err = fn(w, r, p)
		}
		if err != nil {
			h.writeError(w, r, p, err)
		}
	})
}

// pageError is an error a visitor is shown as it is.
type pageError struct {
	status  int
	message string
}

func (e *pageError) Error() string { return e.message }

func errNotFound(message string) error {
	return &pageError{status: http.StatusNotFound, message: message}
}

func badRequest(message string) error {
	return &pageError{status: http.StatusBadRequest, message: message}
}

// writeError renders an error page: a pageError's message, or a 404 for
// what does not exist, or a 503 for what is unavailable now; anything else
// is logged and shown as a 500 that says nothing of its cause.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, p tracking.Principal, err error) {
	var pe *pageError
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, eventstore.ErrNotFound):
		pe = &pageError{status: http.StatusNotFound, message: "There is no such entity."}
	case errors.Is(err, tracking.ErrInvalid), errors.Is(err, eventstore.ErrInvalid):
		pe = &pageError{status: http.StatusBadRequest, message: "The request is not valid."}
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		pe = &pageError{status: http.StatusServiceUnavailable, message: "The service cannot answer now; try again in a moment."}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the visitor left
	default:
		h.log.ErrorContext(r.Context(), "console: page failed", "path", r.URL.Path, "error", err)
		pe = &pageError{status: http.StatusInternalServerError, message: "Something went wrong; it has been logged."}
	}
	if pe.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	h.render(w, r, pe.status, "error", p, map[string]any{"Title": http.StatusText(pe.status), "Message": pe.message})
}

// contentSecurityPolicy allows the console's own scripts, styles and
// images (and the charts' data: URLs) and nothing inline; its forms may
// lead to the console and to formOrigins.
func contentSecurityPolicy(formOrigins []string) (string, error) {
	formAction := "'self'"
	for _, o := range formOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.Scheme+"://"+u.Host != o || strings.ContainsAny(o, " ;,'\"\t\r\n") {
			return "", fmt.Errorf("console: form action origin %q is not an http(s) origin", o)
		}
		formAction += " " + o
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action " + formAction, nil
}

func securityHeaders(csp string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// Anonymous is the embedded mode's Authenticate (no authority configured):
// every visitor acts, unrestricted, in the tenant its X-Tenant-ID header
// names, else defaultTenant, as the API's callers do in that mode.
func Anonymous(defaultTenant string) Authenticate {
	return func(w http.ResponseWriter, r *http.Request) (tracking.Principal, bool) {
		tenant := r.Header.Get("X-Tenant-ID")
		if tenant == "" {
			tenant = defaultTenant
		}
		if !tracking.IsTenantID(tenant) {
			http.Error(w, "X-Tenant-ID must be 1 to 128 letters, digits, '.', '_' or '-'", http.StatusBadRequest)
			return tracking.Principal{}, false
		}
		return tracking.Principal{Tenant: tenant, Subject: "anonymous", Unrestricted: true}, true
	}
}

// NoSignIn is the Authenticate of a service whose API takes bearer tokens
// while the console has no sign-in of its own: it lets nobody in, rather
// than anyone.
func NoSignIn(w http.ResponseWriter, r *http.Request) (tracking.Principal, bool) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "The console has no sign-in configured: with Authentication.Authority set, use the API with a bearer token.",
		http.StatusUnauthorized)
	return tracking.Principal{}, false
}
