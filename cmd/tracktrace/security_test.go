package main

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A client that sends its headers slowly is cut off by ReadHeaderTimeout.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Server__ReadHeaderTimeout=00:00:01"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /health/live HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		// The server answers (408) or closes; either way the read ends.
		_, _ = bufio.NewReader(conn).ReadString(0)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-closed:
			if d < 900*time.Millisecond {
				t.Fatalf("connection ended after %s, before the 1 s header timeout", d)
			}
			return
		case <-tick.C:
			if time.Since(start) > 30*time.Second {
				t.Fatal("a client dripping header bytes was not cut off within 30 s (header timeout 1 s)")
			}
			_, _ = conn.Write([]byte("X-Drip: 1\r\n")) // keep dripping; errors once the server closed
		}
	}
}

// A tenant over its rate gets 429 with Retry-After while others are served.
func TestPerTenantRateLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		// A rate too slow to refill during the test: the count does not
		// depend on how fast the machine sends.
		"Server__RateLimit__RequestsPerSecond=0.001", "Server__RateLimit__Burst=5"})
	limited := 0
	for range 20 {
		r := srv.do(t, "GET", "/api/v1/entities/none", nil, "X-Tenant-ID", "noisy")
		switch r.StatusCode {
		case 404:
		case 429:
			limited++
			if r.Header.Get("Retry-After") == "" || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("429 without Retry-After or problem body: %v %s", r.Header, r.Body)
			}
		default:
			t.Fatalf("unexpected %d: %s", r.StatusCode, r.Body)
		}
	}
	if limited != 15 {
		t.Fatalf("%d of 20 requests over a burst of 5 were refused, want 15", limited)
	}
	if r := srv.do(t, "GET", "/api/v1/entities/none", nil, "X-Tenant-ID", "quiet"); r.StatusCode != 404 {
		t.Fatalf("another tenant got %d while the noisy one is limited", r.StatusCode)
	}
	// Health endpoints are not rate limited.
	if r := srv.do(t, "GET", "/health/live", nil, "X-Tenant-ID", "noisy"); r.StatusCode != 200 {
		t.Fatalf("/health/live = %d", r.StatusCode)
	}
}
