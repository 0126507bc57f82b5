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

// discover fetches the authority's OIDC discovery document, checks its
// issuer and returns its jwks_uri.
func discover(ctx context.Context, client *http.Client, authority string, requireHTTPS bool) (string, error) {
	endpoint := strings.TrimSuffix(authority, "/") + "/.well-known/openid-configuration"
	body, err := getDocument(ctx, client, endpoint)
	if err != nil {
		return "", fmt.Errorf("auth: OIDC discovery: %w", err)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", errors.New("auth: OIDC discovery: document is not a JSON object with string issuer and jwks_uri")
	}
	if doc.Issuer == nil || *doc.Issuer != authority {
		return "", errors.New("auth: OIDC discovery: the document's issuer does not equal Authority")
	}
	if doc.JWKSURI == nil || *doc.JWKSURI == "" {
		return "", errors.New("auth: OIDC discovery: the document has no jwks_uri")
	}
	u, err := url.Parse(*doc.JWKSURI)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "", errors.New("auth: OIDC discovery: jwks_uri is not an absolute http(s) URL")
	case requireHTTPS && u.Scheme != "https":
		return "", errors.New("auth: OIDC discovery: jwks_uri must use https while RequireHTTPSMetadata is set")
	}
	return u.String(), nil
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
