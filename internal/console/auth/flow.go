package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

const callbackPath = "/console/callback"

// randomID returns 26 random base32 characters (130 bits).
func randomID() string { return rand.Text() }

// oauthConfig is the client's configuration for the request's redirect URI.
func (a *Auth) oauthConfig(r *http.Request) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     a.clientID,
		ClientSecret: a.secret,
		Endpoint:     oauth2.Endpoint{AuthURL: a.provider.AuthorizationEndpoint, TokenURL: a.provider.TokenEndpoint},
		RedirectURL:  a.base(r).String() + callbackPath,
		Scopes:       a.scopes,
	}
}

// login sends the browser to the issuer's authorization endpoint, keeping
// the state, the nonce, the PKCE verifier and where to go afterwards in
// the login cookie.
func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	next := localConsolePath(r.URL.Query().Get("next"))
	switch a.mode {
	case ModeEmbedded:
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	case ModeUnconfigured:
		unconfigured(w)
		return
	}
	now := a.now()
	l := login{State: randomID(), Nonce: randomID(), Verifier: oauth2.GenerateVerifier(), Next: next,
		Expires: now.Add(loginLifetime).Unix()}
	v, err := a.seal.seal(loginCookie, l)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	http.SetCookie(w, cookie(loginCookie, v, callbackPath, now, now.Add(loginLifetime), a.secure(r)))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.oauthConfig(r).AuthCodeURL(l.State,
		oauth2.S256ChallengeOption(l.Verifier), oauth2.SetAuthURLParam("nonce", l.Nonce)), http.StatusFound)
}

// callback finishes a sign-in: the state must be the login cookie's, the
// code must redeem (with the PKCE verifier) for an ID token with the
// cookie's nonce and an access token the API accepts, both of one subject.
func (a *Auth) callback(w http.ResponseWriter, r *http.Request) {
	if a.mode != ModeOIDC {
		a.login(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	// The login cookie is good for one callback, whatever its outcome.
	http.SetCookie(w, cookie(loginCookie, "", callbackPath, a.now(), a.now(), a.secure(r)))
	var l login
	c, err := r.Cookie(loginCookie)
	if err != nil || !a.seal.open(loginCookie, c.Value, &l) || a.now().Unix() >= l.Expires {
		writeProblem(w, http.StatusBadRequest, "sign-in-expired",
			"this sign-in was not started here or has expired: sign in again at /console/login")
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.State)) != 1 {
		writeProblem(w, http.StatusBadRequest, "sign-in-state", "the sign-in's state does not match: sign in again at /console/login")
		return
	}
	if e := q.Get("error"); e != "" {
		a.log.InfoContext(r.Context(), "console: the issuer refused a sign-in", "error", e)
		writeProblem(w, http.StatusUnauthorized, "sign-in-refused", "the identity provider refused the sign-in")
		return
	}
	code := q.Get("code")
	if code == "" {
		writeProblem(w, http.StatusBadRequest, "sign-in-code", "the callback carries no code")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, a.client), tokenTimeout)
	defer cancel()
	tok, err := a.oauthConfig(r).Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		var refused *oauth2.RetrieveError
		if errors.As(err, &refused) {
			a.log.InfoContext(r.Context(), "console: the issuer refused the code", "error", refused.ErrorCode)
			writeProblem(w, http.StatusUnauthorized, "sign-in-refused", "the identity provider refused the code: sign in again at /console/login")
			return
		}
		a.log.WarnContext(r.Context(), "console: cannot reach the token endpoint", "error", err)
		writeProblem(w, http.StatusBadGateway, "identity-provider-unavailable", "the identity provider did not answer; try again")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	id, err := a.verifier.VerifyIDToken(ctx, rawID, a.clientID, l.Nonce)
	if err != nil {
		a.log.InfoContext(r.Context(), "console: ID token refused", "error", err)
		writeProblem(w, http.StatusUnauthorized, "sign-in-refused", "the identity provider's ID token is not valid for this console")
		return
	}
	p, err := a.verifier.Verify(ctx, tok.AccessToken)
	if err != nil || p.Subject != id.Subject {
		a.log.InfoContext(r.Context(), "console: access token refused", "error", err)
		writeProblem(w, http.StatusUnauthorized, "sign-in-refused",
			"the access token is not one the API accepts (audience, tenant claim) or names another subject")
		return
	}
	s := session{ID: randomID(), Subject: p.Subject, Tenant: p.Tenant, Scopes: p.Scopes,
		Expires: a.now().Add(a.lifetime).Unix()}
	if err := a.setSession(w, r, s); err != nil {
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, l.Next, http.StatusSeeOther)
}

// logout ends the session (Middleware has checked it and the CSRF token):
// its id is revoked, its cookie deleted, and the browser sent to the
// issuer's end-session endpoint when there is one.
func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	if a.mode == ModeEmbedded {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	info := r.Context().Value(contextKey{}).(*requestInfo)
	if err := a.revocations.Revoke(r.Context(), info.sid, info.expires); err != nil {
		a.fail(w, r, err)
		return
	}
	http.SetCookie(w, cookie(SessionCookie, "", cookiePath, a.now(), a.now(), a.secure(r)))
	w.Header().Set("Cache-Control", "no-store")
	back := a.base(r).String() + "/console/signed-out"
	if a.provider.EndSessionEndpoint == "" {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	u, _ := url.Parse(a.provider.EndSessionEndpoint)
	q := u.Query()
	q.Set("client_id", a.clientID)
	q.Set("post_logout_redirect_uri", back)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// signedOut tells the browser it is signed out; without it, the console's
// front page would sign it straight back in at the issuer.
func (a *Auth) signedOut(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8">` +
		`<meta name="viewport" content="width=device-width, initial-scale=1"><title>Signed out · tracktrace</title></head>` +
		`<body><main><h1>Signed out</h1><p><a href="/console/login">Sign in again</a></p></main></body></html>`))
}

// localConsolePath returns next if it is a path under /console on this
// site, else /console/: the redirect after sign-in must not leave the
// console.
func localConsolePath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || u.User != nil ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") ||
		(u.Path != "/console" && !strings.HasPrefix(u.Path, "/console/")) || strings.Contains(u.Path, "..") {
		return "/console/"
	}
	return next
}
