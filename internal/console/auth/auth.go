// Package auth signs people in to the operator console (/console).
//
// With an OIDC authority it runs the authorization code flow with PKCE
// (S256): /console/login sends the browser to the issuer with a state, a
// nonce and a code challenge kept in a short-lived sealed cookie;
// /console/callback checks the state, redeems the code, verifies the ID
// token (issuer, audience = the console's client, nonce) and the access
// token, and starts a session; POST /console/logout ends it, and the
// issuer's session too when its discovery document names an
// end_session_endpoint.
//
// The session's principal is the access token's, mapped by the very
// verifier the API uses for bearer tokens: the console sees the tenant and
// scopes an API call with that token would, never more.
//
// The session is a cookie (HttpOnly, SameSite=Lax, Path=/console, Secure
// unless the console is reached over plain http on a loopback address or
// without authentication) holding the session sealed with AES-256-GCM:
// stateless, so replicas sharing Console.SessionKey share sessions. A
// logout records the session's id in Revocations until the session would
// have expired, so a copy of the cookie is refused after it.
//
// Every request under /console that is not GET or HEAD must pass Go's
// http.CrossOriginProtection and carry the session's CSRF token (an HMAC of
// the session id) in the X-CSRF-Token header or the csrf_token form field;
// otherwise it is answered 403 with a problem. Pages read the principal and
// the token with Principal and CSRFToken.
//
// Without an authority (the embedded mode) nobody signs in: every browser
// gets a session of the API's anonymous, unrestricted principal in the
// default tenant, which still carries a CSRF token, and Embedded reports
// true so that pages can say that authentication is off.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	apiauth "github.com/tlm/tracktrace/internal/auth"
	"github.com/tlm/tracktrace/internal/tracking"
)

// CSRF token carriers: a header for scripts, a form field for forms.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultSessionLifetime = 8 * time.Hour
	DefaultTenant          = "default"
	// loginLifetime bounds the time between /console/login and the callback.
	loginLifetime = 10 * time.Minute
	// tokenTimeout bounds the token endpoint request.
	tokenTimeout = 10 * time.Second
	// maxFormBytes bounds the form bodies read to find the CSRF field.
	maxFormBytes = 1 << 20
)

// DefaultScopes are asked for at sign-in when Options.Scopes is empty.
var DefaultScopes = []string{"openid", tracking.ScopeRead, tracking.ScopeWrite, tracking.ScopeAdmin}

// Verifier verifies what the issuer hands the console. *auth.Verifier (the
// API's) is one.
type Verifier interface {
	// Verify maps an access token to the principal the API would see.
	Verify(ctx context.Context, token string) (tracking.Principal, error)
	// VerifyIDToken checks an ID token issued to clientID with nonce.
	VerifyIDToken(ctx context.Context, raw, clientID, nonce string) (apiauth.IDToken, error)
	// Provider names the issuer's endpoints.
	Provider() apiauth.Provider
}

var _ Verifier = (*apiauth.Verifier)(nil)

// Options configure an Auth. SessionKey is always required; the rest
// matters only with a Verifier.
type Options struct {
	// Verifier turns sign-in on; nil is the embedded mode.
	Verifier Verifier
	// ClientID and ClientSecret identify the console at the issuer
	// (Console.ClientId, .ClientSecret). A Verifier without a ClientID
	// leaves the console unusable: it answers 503.
	ClientID, ClientSecret string
	// Scopes are asked for at sign-in; default DefaultScopes.
	Scopes []string
	// PublicURL is the scheme and host browsers reach the service at; the
	// redirect URI is PublicURL + "/console/callback". Empty: the request's.
	PublicURL string
	// SessionKey (32 bytes) seals the cookies and keys the CSRF tokens.
	SessionKey []byte
	// SessionLifetime is how long a sign-in lasts; default 8 hours.
	SessionLifetime time.Duration
	// Tenant is the embedded mode's tenant; default "default".
	Tenant string
	// Revocations remembers logged-out sessions; default an in-process
	// MemoryRevocations.
	Revocations Revocations
	// HTTPClient calls the token endpoint; default http.Client. Requests
	// are bounded to 10 s.
	HTTPClient *http.Client
	// Now is the clock sessions expire by; default time.Now.
	Now func() time.Time
	// Logger receives refused sign-ins; default discards.
	Logger *slog.Logger
}

// Mode is how the console authenticates.
type Mode int

// The modes.
const (
	// ModeEmbedded: no authority; everyone is the anonymous principal.
	ModeEmbedded Mode = iota
	// ModeOIDC: people sign in at the authority.
	ModeOIDC
	// ModeUnconfigured: an authority but no Console.ClientId; the console
	// answers 503.
	ModeUnconfigured
)

// Auth authenticates console requests. Build it with New.
type Auth struct {
	mode        Mode
	verifier    Verifier
	provider    apiauth.Provider
	clientID    string
	secret      string
	scopes      []string
	publicURL   *url.URL
	lifetime    time.Duration
	tenant      string
	revocations Revocations
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger
	seal        *sealer
	cop         *http.CrossOriginProtection
}

// New checks o and returns an Auth.
func New(o Options) (*Auth, error) {
	seal, err := newSealer(o.SessionKey)
	if err != nil {
		return nil, err
	}
	a := &Auth{
		verifier: o.Verifier, clientID: o.ClientID, secret: o.ClientSecret,
		scopes:   slices.Clone(o.Scopes),
		lifetime: o.SessionLifetime, tenant: o.Tenant, revocations: o.Revocations,
		client: o.HTTPClient, now: o.Now, log: o.Logger, seal: seal,
		cop: http.NewCrossOriginProtection(),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if len(a.scopes) == 0 {
		a.scopes = slices.Clone(DefaultScopes)
	}
	if !slices.Contains(a.scopes, "openid") {
		return nil, errors.New("console auth: the scopes must include openid")
	}
	if a.lifetime == 0 {
		a.lifetime = DefaultSessionLifetime
	}
	if a.lifetime < 0 {
		return nil, errors.New("console auth: the session lifetime must be positive")
	}
	if a.tenant == "" {
		a.tenant = DefaultTenant
	}
	if !tracking.IsTenantID(a.tenant) {
		return nil, errors.New("console auth: the embedded tenant is not a valid tenant id")
	}
	if a.revocations == nil {
		a.revocations = NewMemoryRevocations(a.now)
	}
	if a.client == nil {
		a.client = &http.Client{}
	}
	if a.client.Timeout <= 0 || a.client.Timeout > tokenTimeout {
		c := *a.client
		c.Timeout = tokenTimeout
		a.client = &c
	}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") ||
			strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return nil, errors.New("console auth: the public URL must be an absolute http(s) URL without a path")
		}
		a.publicURL = &url.URL{Scheme: u.Scheme, Host: u.Host}
		if err := a.cop.AddTrustedOrigin(a.publicURL.String()); err != nil {
			return nil, fmt.Errorf("console auth: %w", err)
		}
	}
	switch {
	case o.Verifier == nil:
		a.mode = ModeEmbedded
	case o.ClientID == "":
		a.mode = ModeUnconfigured
	default:
		a.mode = ModeOIDC
		a.provider = o.Verifier.Provider()
		if a.provider.AuthorizationEndpoint == "" || a.provider.TokenEndpoint == "" {
			return nil, errors.New("console auth: the issuer's discovery document names no usable " +
				"authorization_endpoint and token_endpoint (https ones, with RequireHttpsMetadata)")
		}
	}
	return a, nil
}

// Mode reports how the console authenticates.
func (a *Auth) Mode() Mode { return a.mode }

// Embedded reports whether authentication is off (no authority): pages
// should say so, visibly.
func (a *Auth) Embedded() bool { return a.mode == ModeEmbedded }

// SignOutOrigin is the origin (scheme://host) of the issuer's end-session
// endpoint, where POST /console/logout sends the browser on, or "" when
// it sends it nowhere else: pages whose Content-Security-Policy has a
// form-action must allow it, since browsers hold a form's redirects to it.
func (a *Auth) SignOutOrigin() string {
	if a.mode != ModeOIDC || a.provider.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(a.provider.EndSessionEndpoint)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Routes registers /console/login, /console/callback, POST /console/logout
// and /console/signed-out on mux. The logout is CSRF-protected like every
// other state change.
func (a *Auth) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /console/login", a.login)
	mux.HandleFunc("GET /console/callback", a.callback)
	mux.Handle("POST /console/logout", a.Middleware(http.HandlerFunc(a.logout)))
	mux.HandleFunc("GET /console/signed-out", a.signedOut)
}

// requestInfo is what Middleware puts in a request's context.
type requestInfo struct {
	sid       string
	principal tracking.Principal
	csrf      string
	expires   time.Time
}

type contextKey struct{}

// Principal returns the principal of a request that went through
// Middleware.
func Principal(r *http.Request) (tracking.Principal, bool) {
	info, ok := r.Context().Value(contextKey{}).(*requestInfo)
	if !ok {
		return tracking.Principal{}, false
	}
	return info.principal, true
}

// CSRFToken returns the token state-changing requests of this session must
// carry (in the X-CSRF-Token header or the csrf_token form field), or ""
// outside Middleware.
func CSRFToken(r *http.Request) string {
	if info, ok := r.Context().Value(contextKey{}).(*requestInfo); ok {
		return info.csrf
	}
	return ""
}

// SessionExpires returns when the request's session ends, or the zero time
// outside Middleware.
func SessionExpires(r *http.Request) time.Time {
	if info, ok := r.Context().Value(contextKey{}).(*requestInfo); ok {
		return info.expires
	}
	return time.Time{}
}

// Middleware authenticates every request it passes to next: a request
// without a valid session is sent to sign in (a GET or HEAD a browser
// navigates) or answered 401; a state-changing one must also pass the
// cross-origin and CSRF checks (403). In the embedded mode a request
// without a session gets an anonymous one.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.mode == ModeUnconfigured {
			unconfigured(w)
			return
		}
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		s, ok := a.session(r)
		if !ok {
			switch {
			case a.mode == ModeEmbedded:
				s = a.anonymousSession()
				if err := a.setSession(w, r, s); err != nil {
					a.fail(w, r, err)
					return
				}
			case safe && navigation(r):
				http.Redirect(w, r, "/console/login?"+url.Values{"next": {r.URL.RequestURI()}}.Encode(), http.StatusSeeOther)
				return
			default:
				writeProblem(w, http.StatusUnauthorized, "unauthenticated", "sign in at /console/login")
				return
			}
		}
		if !safe {
			if err := a.cop.Check(r); err != nil {
				writeProblem(w, http.StatusForbidden, "cross-origin", "cross-origin requests may not change anything")
				return
			}
			if !a.seal.validCSRF(s.ID, a.presentedCSRF(w, r)) {
				writeProblem(w, http.StatusForbidden, "csrf",
					"this request needs the session's CSRF token in the "+CSRFHeader+" header or the "+CSRFField+" form field")
				return
			}
		}
		info := &requestInfo{
			sid:       s.ID,
			principal: tracking.Principal{Tenant: s.Tenant, Subject: s.Subject, Scopes: slices.Clone(s.Scopes), Unrestricted: s.Unrestricted},
			csrf:      a.seal.csrfToken(s.ID),
			expires:   time.Unix(s.Expires, 0),
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, info)))
	})
}

// presentedCSRF returns the CSRF token the request carries: the header, or
// else the form field of a url-encoded or multipart body (of at most 1 MiB).
func (a *Auth) presentedCSRF(w http.ResponseWriter, r *http.Request) string {
	if h := r.Header.Get(CSRFHeader); h != "" {
		return h
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
		return ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	return r.PostFormValue(CSRFField)
}

// navigation reports whether r is a browser navigating (rather than a
// script fetching), to which a redirect to sign in makes sense.
func navigation(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	accept := r.Header.Get("Accept")
	return accept == "" || strings.Contains(accept, "text/html") || strings.Contains(accept, "*/*")
}

// session returns the request's valid session: sealed by this key, not
// expired, not revoked, and of the mode's kind.
func (a *Auth) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return session{}, false
	}
	var s session
	if !a.seal.open(SessionCookie, c.Value, &s) || s.ID == "" || a.now().Unix() >= s.Expires ||
		s.Unrestricted != (a.mode == ModeEmbedded) {
		return session{}, false
	}
	revoked, err := a.revocations.Revoked(r.Context(), s.ID)
	if err != nil {
		a.log.WarnContext(r.Context(), "console: cannot tell whether a session is revoked; refusing it", "error", err)
		return session{}, false
	}
	return s, !revoked
}

// anonymousSession is the embedded mode's session.
func (a *Auth) anonymousSession() session {
	return session{ID: randomID(), Subject: "anonymous", Tenant: a.tenant, Scopes: []string{},
		Unrestricted: true, Expires: a.now().Add(a.lifetime).Unix()}
}

// setSession sets the session cookie.
func (a *Auth) setSession(w http.ResponseWriter, r *http.Request, s session) error {
	v, err := a.seal.seal(SessionCookie, s)
	if err != nil {
		return err
	}
	http.SetCookie(w, cookie(SessionCookie, v, cookiePath, a.now(), time.Unix(s.Expires, 0), a.secure(r)))
	return nil
}

// base returns the scheme and host browsers reach the console at.
func (a *Auth) base(r *http.Request) *url.URL {
	if a.publicURL != nil {
		return a.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: r.Host}
}

// secure reports whether cookies get the Secure attribute: always, except
// when the console is reached over plain http on a loopback address (local
// development and tests: browsers and Go's cookie jar would drop a Secure
// cookie there) or in the embedded mode, where the cookie carries no
// credential and Secure would break the console served over plain http.
func (a *Auth) secure(r *http.Request) bool {
	b := a.base(r)
	return b.Scheme == "https" || !(isLoopback(b.Host) || a.mode == ModeEmbedded)
}

// fail answers 500 for what is no client's fault, logging why.
func (a *Auth) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "console: authentication failed", "error", err)
	writeProblem(w, http.StatusInternalServerError, "internal", "")
}

// unconfigured answers that the console cannot sign anyone in.
func unconfigured(w http.ResponseWriter) {
	writeProblem(w, http.StatusServiceUnavailable, "console-unconfigured",
		"authentication is on but the console has no OAuth client: set Console.ClientId")
}

// writeProblem answers an RFC 7807 problem.
func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"https://tracktrace.dev/problems/" + slug, http.StatusText(status), status, detail})
}
