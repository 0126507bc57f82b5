package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// metadataClient returns a shallow copy of c whose requests take at most
// fetchTimeout, whose redirects are bounded and, when requireHTTPS is set,
// may not leave https.
func metadataClient(c *http.Client, requireHTTPS bool) *http.Client {
	cp := *c
	if cp.Timeout <= 0 || cp.Timeout > fetchTimeout {
		cp.Timeout = fetchTimeout
	}
	prev := c.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("too many redirects")
		}
		if requireHTTPS && req.URL.Scheme != "https" {
			return errors.New("redirect away from https refused")
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &cp
}

// Provider is what the authority's discovery document says about the
// endpoints a browser login needs. An endpoint the document lacks, or names
// by anything but an absolute http(s) URL (https while
// RequireHTTPSMetadata is set), is empty: bearer token verification needs
// none of them.
type Provider struct {
	Issuer                string // equals Options.Authority
	AuthorizationEndpoint string // authorization_endpoint
	TokenEndpoint         string // token_endpoint
	EndSessionEndpoint    string // end_session_endpoint (RP-initiated logout)
}

// discover fetches the authority's OIDC discovery document, checks its
// issuer and returns its jwks_uri and its other endpoints.
func discover(ctx context.Context, client *http.Client, authority string, requireHTTPS bool) (string, Provider, error) {
	endpoint := strings.TrimSuffix(authority, "/") + "/.well-known/openid-configuration"
	body, err := getDocument(ctx, client, endpoint)
	if err != nil {
		return "", Provider{}, fmt.Errorf("auth: OIDC discovery: %w", err)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", Provider{}, errors.New("auth: OIDC discovery: document is not a JSON object with string issuer and jwks_uri")
	}
	if doc.Issuer == nil || *doc.Issuer != authority {
		return "", Provider{}, errors.New("auth: OIDC discovery: the document's issuer does not equal Authority")
	}
	if doc.JWKSURI == nil || *doc.JWKSURI == "" {
		return "", Provider{}, errors.New("auth: OIDC discovery: the document has no jwks_uri")
	}
	u, err := url.Parse(*doc.JWKSURI)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "", Provider{}, errors.New("auth: OIDC discovery: jwks_uri is not an absolute http(s) URL")
	case requireHTTPS && u.Scheme != "https":
		return "", Provider{}, errors.New("auth: OIDC discovery: jwks_uri must use https while RequireHTTPSMetadata is set")
	}
	// The login endpoints are optional: a malformed one must not stop the
	// API from verifying tokens, so it is only left out.
	var endpoints struct {
		Authorization json.RawMessage `json:"authorization_endpoint"`
		Token         json.RawMessage `json:"token_endpoint"`
		EndSession    json.RawMessage `json:"end_session_endpoint"`
	}
	_ = json.Unmarshal(body, &endpoints)
	return u.String(), Provider{
		Issuer:                authority,
		AuthorizationEndpoint: endpointURL(endpoints.Authorization, requireHTTPS),
		TokenEndpoint:         endpointURL(endpoints.Token, requireHTTPS),
		EndSessionEndpoint:    endpointURL(endpoints.EndSession, requireHTTPS),
	}, nil
}

// endpointURL returns raw, a JSON value, when it is a string holding an
// absolute http(s) URL without a fragment (https when requireHTTPS is set),
// else "".
func endpointURL(raw json.RawMessage, requireHTTPS bool) string {
	s, ok := jsonString(raw)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || u.User != nil:
		return ""
	case u.Scheme != "https" && (requireHTTPS || u.Scheme != "http"):
		return ""
	}
	return s
}

// getDocument GETs a JSON document of at most maxDocumentSize bytes.
func getDocument(ctx context.Context, client *http.Client, endpoint string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return nil, fmt.Errorf("GET %s: unexpected status %d", endpoint, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", endpoint, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", endpoint, maxDocumentSize)
	}
	return body, nil
}
