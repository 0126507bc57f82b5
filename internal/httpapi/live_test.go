package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/httpapi/ssetest"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// liveEnv is an API server with live streams over a real SQLite store.
type liveEnv struct {
	t    *testing.T
	srv  *httptest.Server
	live *Live
}

// newLiveEnv serves live (its Feed and Log set to a fresh SQLite store);
// configure, when set, adjusts the http.Server before it starts.
func newLiveEnv(t *testing.T, live *Live, configure func(*http.Server)) *liveEnv {
	t.Helper()
	store, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=synchronous(OFF)", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	live.Feed, live.Log = store, store
	srv := httptest.NewUnstartedServer(NewServer(Deps{Tracker: tracking.NewService(store, tracking.ServiceOptions{}), Live: live}))
	if configure != nil {
		configure(srv.Config)
	}
	srv.Config.RegisterOnShutdown(live.Close)
	srv.Start()
	t.Cleanup(srv.Close)
	// First (cleanups run last to first): Close waits for open requests.
	t.Cleanup(live.Close)
	return &liveEnv{t: t, srv: srv, live: live}
}

// record appends events of the given types to a tenant's entity and
// returns their global positions.
func (e *liveEnv) record(tenant, entityID, entityType string, types ...string) []int64 {
	e.t.Helper()
	var events []string
	for _, typ := range types {
		data := `{}`
		if typ == "MilestoneReached" {
			data = `{"milestone": "picked_up"}`
		}
		events = append(events, fmt.Sprintf(`{"type": %q, "occurredAt": "2026-03-01T08:00:00Z", "data": %s}`, typ, data))
	}
	body := fmt.Sprintf(`{"entityType": %q, "expectedVersion": "any", "events": [%s]}`, entityType, strings.Join(events, ","))
	req, err := http.NewRequest("POST", e.srv.URL+"/api/v1/entities/"+entityID+"/events", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tenant-ID", tenant)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Events []struct{ Position int64 } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
		e.t.Fatalf("append to %s: %d %v", entityID, resp.StatusCode, err)
	}
	var positions []int64
	for _, ev := range out.Events {
		positions = append(positions, ev.Position)
	}
	return positions
}

// request is a GET as a tenant, with header name-value pairs.
func (e *liveEnv) request(tenant, path string, headers ...string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Tenant-ID", tenant)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// get sends a GET as a tenant.
func (e *liveEnv) get(tenant, path string, headers ...string) *http.Response {
	e.t.Helper()
	resp, err := e.srv.Client().Do(e.request(tenant, path, headers...))
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// open opens a stream as a tenant.
func (e *liveEnv) open(tenant, path string, headers ...string) *ssetest.Stream {
	e.t.Helper()
	return ssetest.Open(e.t, e.srv.Client(), e.request(tenant, path, headers...))
}

// positionsOf returns the positions of events (see ssetest.Decode).
func positionsOf(t *testing.T, ms []ssetest.Message) []int64 {
	t.Helper()
	_, positions := ssetest.Decode(t, ms)
	return positions
}

// A tenant's stream shows its events that pass the filter, from the log's
// head when it opens, in log order; another tenant's never; resumed with
// Last-Event-ID (or lastEventId) after a disconnect it shows exactly the
// events missed.
func TestLiveStreamResumes(t *testing.T) {
	e := newLiveEnv(t, &Live{}, nil)
	e.record("acme", "OLD-1", "shipment", "EntityRegistered") // before the stream: not shown

	s := e.open("acme", "/api/v1/stream?entityType=shipment,container&eventType=EntityRegistered&eventType=MilestoneReached")
	if first := s.Must(); first.Retry == "" {
		t.Errorf("the stream did not start with a retry hint: %+v", first)
	}
	want := e.record("acme", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached")
	e.record("globex", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached")
	e.record("acme", "VAN-1", "vehicle", "EntityRegistered")
	want = append(want, e.record("acme", "BOX-1", "container", "EntityRegistered")...)
	seen := positionsOf(t, s.Events(2))
	s.Close()
	if !slices.Equal(seen, want[:2]) {
		t.Fatalf("first events %v, want %v", seen, want[:2])
	}

	// Missed while away: the container's, and this one.
	e.record("globex", "BOX-9", "container", "EntityRegistered")
	want = append(want, e.record("acme", "SHP-1", "shipment", "MilestoneReached")...)
	for _, resume := range []struct{ name, path, header string }{
		{"header", "/api/v1/stream?entityType=shipment,container", strconv.FormatInt(seen[1], 10)},
		{"query parameter", "/api/v1/stream?entityType=shipment&entityType=container&lastEventId=" + strconv.FormatInt(seen[1], 10), ""},
		// The header is newer than the URL's: EventSource keeps the URL.
		{"both", "/api/v1/stream?entityType=shipment,container&lastEventId=" + strconv.FormatInt(want[0], 10), strconv.FormatInt(seen[1], 10)},
	} {
		t.Run(resume.name, func(t *testing.T) {
			var headers []string
			if resume.header != "" {
				headers = []string{"Last-Event-ID", resume.header}
			}
			r := e.open("acme", resume.path, headers...)
			got := positionsOf(t, r.Events(len(want)-2))
			if !slices.Equal(got, want[2:]) {
				t.Fatalf("after resuming: %v, want exactly the missed %v", got, want[2:])
			}
			// Then live again.
			more := e.record("acme", "NEW-"+strconv.Itoa(len(want)), "shipment", "EntityRegistered")
			if got := positionsOf(t, r.Events(1)); !slices.Equal(got, more) {
				t.Fatalf("live after resuming: %v, want %v", got, more)
			}
			want = append(want, more...)
			r.Close()
		})
	}
}

// An entity's stream shows that entity's events only, of the caller's
// tenant; an entity not created yet streams once it is.
func TestLiveEntityStream(t *testing.T) {
	e := newLiveEnv(t, &Live{}, nil)
	s := e.open("acme", "/api/v1/entities/SHP-1/stream")
	prefix := e.open("acme", "/api/v1/stream?entityId=SHP-*&eventType=MilestoneReached")
	e.record("globex", "SHP-1", "shipment", "EntityRegistered")
	e.record("acme", "SHP-10", "shipment", "EntityRegistered")
	want := e.record("acme", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached")
	milestones := []int64{want[1], e.record("acme", "SHP-10", "shipment", "MilestoneReached")[0]}
	if got := positionsOf(t, s.Events(2)); !slices.Equal(got, want) {
		t.Fatalf("entity stream: %v, want %v", got, want)
	}
	if got := positionsOf(t, prefix.Events(2)); !slices.Equal(got, milestones) {
		t.Fatalf("prefix stream: %v, want %v", got, milestones)
	}
	s.Close()
	missed := e.record("acme", "SHP-1", "shipment", "MilestoneReached")
	r := e.open("acme", "/api/v1/entities/SHP-1/stream", "Last-Event-ID", strconv.FormatInt(want[1], 10))
	if got := positionsOf(t, r.Events(1)); !slices.Equal(got, missed) {
		t.Fatalf("entity stream resumed: %v, want %v", got, missed)
	}
}

// statusChanges (an integration kind) keeps the events that changed the
// entity's status, as Changes derives them, each with its changes.
func TestLiveStreamStateChanges(t *testing.T) {
	milestones := changesFunc(func(events []eventstore.Recorded) [][]tracking.IntegrationEvent {
		out := make([][]tracking.IntegrationEvent, len(events))
		for i, r := range events {
			if r.Type == "MilestoneReached" {
				out[i] = []tracking.IntegrationEvent{{Kind: tracking.IntegrationEntityStatusChanged, EntityID: r.StreamID,
					Version: r.Version, Status: "in_transit"}}
			}
		}
		return out
	})
	e := newLiveEnv(t, &Live{Changes: func() subscription.Changes { return milestones }}, nil)
	s := e.open("acme", "/api/v1/stream?statusChanges=true")
	want := e.record("acme", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached")[1:]
	events, got := ssetest.Decode(t, s.Events(1))
	if !slices.Equal(got, want) || len(events[0].Integration) != 1 || events[0].Integration[0].Status != "in_transit" {
		t.Fatalf("status changes: %v %+v, want %v with its change", got, events, want)
	}
}

// changesFunc is a Changes answering from a function.
type changesFunc func(events []eventstore.Recorded) [][]tracking.IntegrationEvent

func (f changesFunc) DeriveBatch(_ context.Context, events []eventstore.Recorded) ([][]tracking.IntegrationEvent, error) {
	return f(events), nil
}
func (changesFunc) Commit()  {}
func (changesFunc) Discard() {}

// Requests a stream cannot start from are answered with a problem before
// it starts.
func TestLiveStreamProblems(t *testing.T) {
	e := newLiveEnv(t, &Live{}, nil)
	theirs := e.record("globex", "SHP-1", "shipment", "EntityRegistered")
	ours := e.record("acme", "SHP-1", "shipment", "EntityRegistered")
	tests := []struct {
		name, path, lastEventID string
		status                  int
		names                   string
	}{
		{"Last-Event-ID not a number", "/api/v1/stream", "abc", 400, "Last-Event-ID"},
		{"Last-Event-ID of another tenant", "/api/v1/stream", strconv.FormatInt(theirs[0], 10), 400, "Last-Event-ID"},
		{"Last-Event-ID not used yet", "/api/v1/entities/SHP-1/stream", strconv.FormatInt(ours[0]+100, 10), 400, "Last-Event-ID"},
		{"lastEventId negative", "/api/v1/stream?lastEventId=-1", "", 400, "lastEventId"},
		{"unknown integration kind", "/api/v1/stream?integrationKind=Teleported", "", 400, "integrationKinds"},
		{"star inside an id", "/api/v1/stream?entityId=SHP*1", "", 400, "entityIds"},
		{"empty list value", "/api/v1/stream?eventType=A,,B", "", 400, "eventType"},
		{"unknown parameter", "/api/v1/stream?entityTypes=shipment", "", 400, "entityTypes"},
		{"entityId on an entity's stream", "/api/v1/entities/SHP-1/stream?entityId=SHP-2", "", 400, "entityId"},
		{"statusChanges not a boolean", "/api/v1/stream?statusChanges=yes", "", 400, "statusChanges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.lastEventID != "" {
				headers = []string{"Last-Event-ID", tt.lastEventID}
			}
			resp := e.get("acme", tt.path, headers...)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
				!strings.Contains(string(body), tt.names) {
				t.Errorf("%d %s %s; want a %d problem naming %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.status, tt.names)
			}
		})
	}
}

// Idle streams get heartbeats; neither the server's read nor its write
// timeout ends a stream.
func TestLiveHeartbeatsOutliveServerTimeouts(t *testing.T) {
	e := newLiveEnv(t, &Live{Heartbeat: 50 * time.Millisecond}, func(s *http.Server) {
		s.ReadTimeout, s.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	})
	s := e.open("acme", "/api/v1/stream")
	deadline := time.Now().Add(600 * time.Millisecond)
	pings := 0
	for time.Now().Before(deadline) {
		m := s.Must()
		if slices.Contains(m.Comments, "ping") {
			pings++
		}
	}
	if pings < 5 {
		t.Errorf("%d heartbeats in 600 ms, want one every 50 ms", pings)
	}
	want := e.record("acme", "SHP-1", "shipment", "EntityRegistered")
	if got := positionsOf(t, s.Events(1)); !slices.Equal(got, want) {
		t.Fatalf("after the server's timeouts: %v, want %v", got, want)
	}
}

// Beyond MaxStreams a stream is refused with 503, until one closes.
func TestLiveStreamLimit(t *testing.T) {
	e := newLiveEnv(t, &Live{MaxStreams: 1}, nil)
	first := e.open("acme", "/api/v1/stream")
	refused := e.get("acme", "/api/v1/stream")
	refused.Body.Close()
	if refused.StatusCode != 503 || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream beyond the limit: %d, Retry-After %q; want 503 with Retry-After",
			refused.StatusCode, refused.Header.Get("Retry-After"))
	}
	first.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp := e.get("acme", "/api/v1/stream")
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream after the first closed: %d", resp.StatusCode)
		}
	}
}

// The server's Shutdown ends the open streams (which are never idle) rather
// than wait for them; the closed Live refuses new ones.
func TestLiveStreamsEndOnShutdown(t *testing.T) {
	e := newLiveEnv(t, &Live{}, nil)
	s := e.open("acme", "/api/v1/stream")
	s.Must()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	for {
		if _, err := s.Next(); err != nil {
			break // ended by the shutdown
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/stream", nil)
	NewServer(Deps{Tracker: &tenantRecorder{}, Live: e.live}).ServeHTTP(rec, req)
	if rec.Code != 503 {
		t.Errorf("a stream after shutdown: %d %s, want 503", rec.Code, rec.Body)
	}
}
