package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cookie names. The login cookie lives only between /console/login and
// /console/callback.
const (
	SessionCookie = "tracktrace_console"
	loginCookie   = "tracktrace_console_login"
	cookiePath    = "/console"
	// maxCookieLength bounds the cookie values that are decrypted.
	maxCookieLength = 3 << 10
)

// session is what the session cookie carries, sealed.
type session struct {
	ID           string   `json:"sid"`
	Subject      string   `json:"sub"`
	Tenant       string   `json:"ten"`
	Scopes       []string `json:"scp"`
	Unrestricted bool     `json:"unr,omitempty"`
	Expires      int64    `json:"exp"` // Unix seconds
}

// login is what the login cookie carries, sealed: the secrets of one
// authorization request.
type login struct {
	State    string `json:"st"`
	Nonce    string `json:"no"`
	Verifier string `json:"cv"`
	Next     string `json:"nx"`
	Expires  int64  `json:"exp"`
}

// sealer encrypts and authenticates cookie values with AES-256-GCM, each
// bound to its cookie's name (a login cookie does not open as a session).
type sealer struct {
	aead    cipher.AEAD
	csrfKey []byte
}

// newSealer derives the cookie and CSRF keys from the 32-byte session key.
func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("console auth: the session key must be 32 bytes")
	}
	encKey, err := hkdf.Key(sha256.New, key, nil, "tracktrace console cookies", 32)
	if err != nil {
		return nil, err
	}
	csrfKey, err := hkdf.Key(sha256.New, key, nil, "tracktrace console csrf", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, csrfKey: csrfKey}, nil
}

// seal returns v, encrypted for the cookie name, as a cookie value.
func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

// open decrypts a cookie value sealed for name into v.
func (s *sealer) open(name, value string, v any) bool {
	if len(value) > maxCookieLength {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return false
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(name))
	return err == nil && json.Unmarshal(plain, v) == nil
}

// csrfToken is the synchronizer token of a session: an HMAC of its id, so
// it needs no storage and is worthless for any other session.
func (s *sealer) csrfToken(sid string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF reports whether token is sid's CSRF token.
func (s *sealer) validCSRF(sid, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.csrfToken(sid)))
}

// Revocations remembers the sessions ended by a logout until they would
// have expired anyway: the session cookie is stateless, so a copy of it
// stays valid unless its id is refused.
type Revocations interface {
	// Revoke refuses the session id from now until until.
	Revoke(ctx context.Context, sid string, until time.Time) error
	// Revoked reports whether the session id is refused.
	Revoked(ctx context.Context, sid string) (bool, error)
}

// MemoryRevocations is the in-process Revocations: enough for one replica.
// Entries are dropped once their session would have expired.
type MemoryRevocations struct {
	now func() time.Time
	mu  sync.Mutex
	ids map[string]time.Time
}

var _ Revocations = (*MemoryRevocations)(nil)

// NewMemoryRevocations returns an empty MemoryRevocations judging expiry by
// now (time.Now when nil).
func NewMemoryRevocations(now func() time.Time) *MemoryRevocations {
	if now == nil {
		now = time.Now
	}
	return &MemoryRevocations{now: now, ids: map[string]time.Time{}}
}

// Revoke implements Revocations.
func (m *MemoryRevocations) Revoke(_ context.Context, sid string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for id, t := range m.ids {
		if !t.After(now) {
			delete(m.ids, id)
		}
	}
	m.ids[sid] = until
	return nil
}

// Revoked implements Revocations.
func (m *MemoryRevocations) Revoked(_ context.Context, sid string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ids[sid]
	return ok, nil
}

// cookie builds a console cookie with the attributes every one of them
// has: HttpOnly, SameSite=Lax (the callback is a top-level navigation from
// the issuer, which Strict would strip) and Secure unless secure says the
// console is reached over plain http where that is allowed.
// An empty value deletes the cookie.
func cookie(name, value, path string, now, expires time.Time, secure bool) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires.UTC()
		c.MaxAge = max(1, int((expires.Sub(now)+time.Second-1)/time.Second))
	}
	return c
}

// isLoopback reports whether host (a Host header or URL host, with or
// without a port) names the loopback interface.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
