package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// The PostgreSQL password never appears in logs or errors: not while
// serving, not in `config`, not when the database cannot be reached.
func TestPasswordNeverLogged(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3t-Pa55w0rd"
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), secret) // trust auth: any password works
	srv := startServer(t, []string{"ConnectionStrings__EventStore=" + u.String(), "Logging__Level=Debug"})
	srv.do(t, "POST", "/api/v1/entities/PW-1/events", map[string]any{"entityType": "asset",
		"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}})
	srv.do(t, "GET", "/health", nil)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	npgsql := "Host=127.0.0.1;Port=1;Database=nowhere;Username=postgres;Password=" + secret + ";Timeout=1"
	cases := map[string][]string{
		"config":            {"config", "--set", "EventStore:ConnectionString=" + npgsql},
		"unreachable serve": {"serve", "--set", "EventStore:ConnectionString=" + npgsql, "--set", "Server:Address=127.0.0.1:0"},
		"unreachable url":   {"migrate", "--set", "EventStore:ConnectionString=postgres://u:" + secret + "@127.0.0.1:1/x?connect_timeout=1"},
		"bad npgsql key":    {"config", "--set", "EventStore:ConnectionString=Host=h;Database=d;Password=" + secret + ";Bogus=1"},
	}
	for name, args := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, args, nil, &out, &errOut)
		cancel()
		if err != nil {
			errOut.WriteString(err.Error())
		}
		if strings.Contains(out.String()+errOut.String(), secret) {
			t.Errorf("%s: the password appears in the output:\n%s%s", name, out.String(), errOut.String())
		}
	}
	if strings.Contains(srv.logs.String(), secret) {
		t.Errorf("the password appears in the server log:\n%s", srv.logs.String())
	}
	// The checks above looked at something: the server logged the database
	// it uses (masked), and the failing commands said why.
	if !strings.Contains(srv.logs.String(), `"msg":"event store","database":"postgres://`) || !strings.Contains(errOut.String(), "ConnectionString") {
		t.Errorf("too little output to check for the password:\nserver log:\n%s\ncommands:\n%s", srv.logs.String(), errOut.String())
	}
}

// SIGTERM during load (main turns it into a canceled context): in-flight
// requests complete, nothing acknowledged is lost, and the process exits
// within Server.ShutdownTimeout.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "t.db")
	env := []string{"EventStore__ConnectionString=file:" + db, "Server__ShutdownTimeout=00:00:05"}
	srv := startServer(t, env)
	var mu sync.Mutex
	acked := map[string]int64{} // entity → highest acknowledged version
	var failed atomic.Int64
	// A connection per request: after the listener closes, a new request is
	// refused at dial, and any other transport error is a request cut off
	// in flight (no idle keep-alive connection races the shutdown).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var cut []string // event ids of requests whose answer never came
	post := func(id string, i int, eventID string) (int, []byte, error) {
		body := fmt.Sprintf(`{"entityType":"vehicle","events":[{"eventId":%q,"type":"LocationReported","occurredAt":%q,"data":{"lat":1,"lon":1}}]}`,
			eventID, time.Now().Add(-time.Hour).Add(time.Duration(i)*time.Second).UTC().Format(time.RFC3339))
		resp, err := client.Post(srv.URL+"/api/v1/entities/"+id+"/events", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	for c := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				id := fmt.Sprintf("SD-%d", c)
				eventID := uuid.NewString()
				status, b, err := post(id, i, eventID)
				if err != nil {
					// Refused at dial, or reset from the listener's backlog
					// as it closed: never handled, so never stored (checked
					// after the restart).
					failed.Add(1)
					mu.Lock()
					cut = append(cut, eventID)
					mu.Unlock()
					continue
				}
				if status == 201 {
					var body struct{ Version int64 }
					if err := json.Unmarshal(b, &body); err != nil {
						t.Errorf("append answer: %v", err)
					}
					mu.Lock()
					acked[id] = max(acked[id], body.Version)
					mu.Unlock()
				} else if status != 503 {
					t.Errorf("append during shutdown: %d %s", status, b)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // let the load build up
	start := time.Now()
	err := srv.stop()
	took := time.Since(start)
	close(stopLoad)
	wg.Wait()
	if err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// A drain beyond ShutdownTimeout makes the server's Shutdown, and so
	// stop, fail above; how long it took is a figure, not an assertion.
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged before the shutdown")
	}
	// Restart on the same file: every acknowledged event is there, and no
	// request whose answer was lost was handled (Close instead of Shutdown
	// cuts handled requests off: their events are stored unanswered).
	again := startServer(t, env)
	stored := map[string]bool{}
	for id, v := range acked {
		var st struct{ Version int64 }
		again.do(t, "GET", "/api/v1/entities/"+id+"?consistent=true", nil).JSON(t, &st)
		if st.Version < v {
			t.Errorf("%s: version %d after restart, but %d was acknowledged", id, st.Version, v)
		}
		var evs struct{ Events []struct{ EventID string } }
		again.do(t, "GET", "/api/v1/entities/"+id+"/events?limit=1000", nil).JSON(t, &evs)
		for _, e := range evs.Events {
			stored[e.EventID] = true
		}
	}
	for _, id := range cut {
		if stored[id] {
			t.Errorf("event %s was stored, but its request's answer never reached the client", id)
		}
	}
	t.Logf("shutdown under load took %s; %d entities acknowledged, %d requests refused after close", took, len(acked), failed.Load())
}

// Lines that libraries log on their own land in the service's JSON log, not
// as plain text beside it. Not parallel: slog's default logger is the
// process's, and serve points it at the server it starts.
func TestLibraryLogsAreJSON(t *testing.T) {
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")})
	stdlog.Printf("a library's plain line")
	redisLogs{}.Printf(context.Background(), "pool: %d connections lost", 3)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"a library's plain line"`, `"msg":"redis: pool: 3 connections lost"`} {
		if !strings.Contains(srv.logs.String(), want) {
			t.Errorf("the server log lacks %s:\n%s", want, srv.logs.String())
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(srv.logs.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON: %q", line)
		}
	}
}
