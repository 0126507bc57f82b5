package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// server is a tracktrace process started through run(), as main starts it.
type server struct {
	URL  string
	logs *logBuffer
	stop func() error
}

// logBuffer collects the server's log lines and reports the listen address.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	addr    chan string
	found   bool
	scanned int // bytes of buf up to the last complete line looked at
}

// Write takes log output in chunks of any size (a pipe may split lines).
func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.found {
		complete := bytes.LastIndexByte(l.buf.Bytes(), '\n') + 1
		if complete <= l.scanned {
			return len(p), nil
		}
		sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()[l.scanned:complete]))
		l.scanned = complete
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				l.found = true
				l.addr <- line.Addr
			}
		}
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// engines are the storage engines end-to-end tests run against: the
// embedded SQLite file and the machine's PostgreSQL (a fresh database).
var engines = []struct {
	name string
	env  func(t *testing.T) []string
}{
	{"sqlite", func(t *testing.T) []string {
		return []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "tracktrace.db")}
	}},
	{"postgres", func(t *testing.T) []string {
		return []string{"ConnectionStrings__EventStore=" + pgtest.NewDatabase(t)}
	}},
}

// startServer runs `tracktrace serve` on a free port with the given
// environment (plus defaults) and waits until it listens.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	// Tests share the machine's PostgreSQL server with other packages' tests,
	// whose transactions (CREATE DATABASE among them) hold back the gap-safe
	// read horizon of every database: reads with minVersion may wait longer
	// than in production.
	environ := append([]string{"Server__Address=127.0.0.1:0", "ReadModels__ConsistencyWait=00:00:20"}, env...)
	logs := &logBuffer{addr: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), environ, io.Discard, logs) }()
	select {
	case addr := <-logs.addr:
		s := &server{URL: "http://" + addr, logs: logs}
		var once sync.Once
		var stopErr error
		s.stop = func() error {
			once.Do(func() {
				cancel()
				select {
				case stopErr = <-done:
				case <-time.After(30 * time.Second):
					t.Errorf("server did not stop within 30s")
				}
			})
			return stopErr
		}
		t.Cleanup(func() {
			if err := s.stop(); err != nil {
				t.Errorf("server stopped with %v", err)
			}
			if t.Failed() {
				t.Logf("server log:\n%s", logs.String())
			}
		})
		return s
	case err := <-done:
		cancel()
		t.Fatalf("server exited before listening: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not listen within 30s\n%s", logs.String())
	}
	return nil
}

// response is a completed HTTP exchange.
type response struct {
	*http.Response
	Body []byte
	// Sent is the request's body as sent.
	Sent []byte
}

func (r response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v\n%s", r.Request.URL, err, r.Body)
	}
}

// do sends a request; body may be nil, a string or a value to marshal.
func (s *server) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	r, err := s.tryDo(method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// tryDo is do without failing the test on transport errors.
func (s *server) tryDo(method, path string, body any, headers ...string) (response, error) {
	var sent []byte
	switch b := body.(type) {
	case nil:
	case string:
		sent = []byte(b)
	case []byte:
		sent = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		sent = j
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(sent)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp, b, sent}, nil
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "serve" {
		os.Exit(childMain())
	}
	// Tests run the server in-process; make the machine's environment
	// irrelevant to them.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.Contains(k, "__") || strings.HasSuffix(k, "_ENVIRONMENT") {
			os.Unsetenv(k)
		}
	}
	// Every test stops what it started: no goroutine may outlive the tests
	// (servers, relays, consumers, pools, listeners).
	goleak.VerifyTestMain(m)
}
