package destination_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/subscription/destination"
)

// target is an HTTP server on 127.0.0.1 that counts the connections it
// accepts and the requests it serves.
type target struct {
	srv      *httptest.Server
	conns    atomic.Int32
	requests atomic.Int32
	port     string
}

func newTarget(t *testing.T, tls bool, handler http.HandlerFunc) *target {
	t.Helper()
	tg := &target{}
	tg.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.requests.Add(1)
		handler(w, r)
	}))
	tg.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tg.conns.Add(1)
		}
	}
	if tls {
		tg.srv.StartTLS()
	} else {
		tg.srv.Start()
	}
	t.Cleanup(tg.srv.Close)
	_, tg.port, _ = net.SplitHostPort(tg.srv.Listener.Addr().String())
	return tg
}

func (tg *target) assertUntouched(t *testing.T) {
	t.Helper()
	if c, r := tg.conns.Load(), tg.requests.Load(); c != 0 || r != 0 {
		t.Errorf("the target saw %d connections and %d requests; want none", c, r)
	}
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "delivered") }

func get(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"events":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func TestTransportRefusesBlockedAddressesAtConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		resolver destination.Resolver
		host     string // the URL's host; the port is the target's
	}{
		{"literal loopback", testZone(t), "127.0.0.1"},
		{"literal IPv4-mapped loopback", testZone(t), "[::ffff:127.0.0.1]"},
		{"name to loopback", testZone(t), "internal.test"},
		{"localhost", testZone(t), "localhost"},
		{"several addresses, one blocked", zone(t, map[string][]string{"split.test": {"127.0.0.1", publicV4}}), "split.test"},
		{"several addresses, the blocked one last", zone(t, map[string][]string{"split.test": {publicV4, "127.0.0.1"}}), "split.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, false, ok)
			c := destination.Policy{Resolver: tt.resolver}.Client(10 * time.Second)
			resp, err := get(t, c, "http://"+tt.host+":"+tg.port+"/hook")
			if !errors.Is(err, destination.ErrRefused) {
				t.Fatalf("POST to %s = %v, %v; want ErrRefused", tt.host, resp, err)
			}
			tg.assertUntouched(t)
		})
	}
}

func TestTransportRefusesDNSRebinding(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, true, ok)
	resolver, calls := rebinding("rebind.test")
	p := destination.Policy{Resolver: resolver}
	url := "https://rebind.test:" + tg.port + "/hook"
	if _, err := p.Check(t.Context(), url); err != nil {
		t.Fatalf("Check(%q) = %v; the name is public at creation", url, err)
	}
	resp, err := get(t, p.Client(10*time.Second), url)
	if !errors.Is(err, destination.ErrRefused) {
		t.Fatalf("delivery after the name rebound to 127.0.0.1 = %v, %v; want ErrRefused", resp, err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %q does not name the address and why", err)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("the resolver was asked %d times; the transport must resolve again at connect", n)
	}
	tg.assertUntouched(t)
}

func TestTransportControlRefusesBlockedAddresses(t *testing.T) {
	t.Parallel()
	// The last check, on the address the socket is about to connect to.
	p := destination.Policy{}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:169.254.169.254]:80", "10.0.0.1:8080"} {
		if err := p.Control("tcp", addr, nil); !errors.Is(err, destination.ErrRefused) {
			t.Errorf("Control(%s) = %v; want ErrRefused", addr, err)
		}
	}
	if err := p.Control("tcp", publicV4+":443", nil); err != nil {
		t.Errorf("Control(%s:443) = %v; want nil", publicV4, err)
	}
	if err := p.Control("tcp", "not an address", nil); !errors.Is(err, destination.ErrRefused) {
		t.Errorf("Control(not an address) = %v; want ErrRefused", err)
	}
	if err := (destination.Policy{AllowPrivate: true}).Control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("AllowPrivate: Control(127.0.0.1:80) = %v; want nil", err)
	}
}

func TestTransportAllowPrivateReachesLoopback(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, false, ok)
	p := destination.Policy{AllowPrivate: true, Resolver: zone(t, map[string][]string{"hooks.test": {"127.0.0.1"}})}
	for _, url := range []string{
		"http://hooks.test:" + tg.port + "/hook",
		"http://127.0.0.1:" + tg.port + "/hook",
	} {
		if _, err := p.Check(t.Context(), url); err != nil {
			t.Fatalf("AllowPrivate: Check(%q) = %v", url, err)
		}
		resp, err := get(t, p.Client(10*time.Second), url)
		if err != nil {
			t.Fatalf("AllowPrivate: POST %s = %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "delivered" {
			t.Fatalf("AllowPrivate: POST %s = %d %q; want 200 delivered", url, resp.StatusCode, body)
		}
	}
	if n := tg.requests.Load(); n != 2 {
		t.Errorf("the target served %d requests; want 2", n)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	tg := newTarget(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	p := destination.Policy{AllowPrivate: true}
	resp, err := get(t, p.Client(10*time.Second), "http://127.0.0.1:"+tg.port+"/hook")
	if err != nil {
		t.Fatalf("POST = %v", err)
	}
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
		t.Errorf("POST = %d (Location %q); want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	// A proxy from HTTPS_PROXY would connect to the destination itself,
	// past every check here.
	tr := destination.Policy{}.Transport()
	if tr.Proxy != nil {
		t.Error("Transport().Proxy is set; want no proxy")
	}
	if tr.TLSHandshakeTimeout <= 0 {
		t.Error("Transport() has no TLS handshake timeout")
	}
	if tr.DialContext == nil {
		t.Error("Transport() dials without the policy")
	}
}
