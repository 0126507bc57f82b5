package main

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/httpapi/ssetest"
)

// record appends events of the given types to a tenant's entity and
// returns their global positions.
func (s *server) record(t *testing.T, tenant, entityID, entityType string, types ...string) []int64 {
	t.Helper()
	var events []any
	for i, typ := range types {
		data := map[string]string{"MilestoneReached": `{"milestone": "picked_up"}`,
			"ExceptionRaised": `{"exceptionId": "EX-1", "code": "delay", "severity": "medium"}`}[typ]
		if data == "" {
			data = `{}`
		}
		events = append(events, ev(typ, time.Duration(i)*time.Minute, data))
	}
	r := s.do(t, "POST", "/api/v1/entities/"+entityID+"/events",
		map[string]any{"entityType": entityType, "expectedVersion": "any", "events": events}, "X-Tenant-ID", tenant)
	if r.StatusCode != 201 {
		t.Fatalf("append to %s: %d %s", entityID, r.StatusCode, r.Body)
	}
	var out struct{ Events []struct{ Position int64 } }
	r.JSON(t, &out)
	var positions []int64
	for _, e := range out.Events {
		positions = append(positions, e.Position)
	}
	return positions
}

// stream opens a live stream as a tenant, resuming after lastEventID when
// it is set.
func (s *server) stream(t *testing.T, tenant, path, lastEventID string) *ssetest.Stream {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Tenant-ID", tenant)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return ssetest.Open(t, http.DefaultClient, req)
}

// received returns the positions of events (see ssetest.Decode), which
// must be of the entities named.
func received(t *testing.T, ms []ssetest.Message, entities ...string) []int64 {
	t.Helper()
	events, positions := ssetest.Decode(t, ms)
	for _, e := range events {
		if !slices.Contains(entities, e.EntityID) {
			t.Errorf("event at %d of entity %s, want one of %v", e.Position, e.EntityID, entities)
		}
	}
	return positions
}

// Issue 18, done-when 3: an SSE client that disconnects and resumes with
// Last-Event-ID receives exactly the events it missed — none twice, none
// lost, in order — on a tenant filter and on an entity's stream; another
// tenant's events never appear; a filter on state changes gets the events
// that caused them; heartbeats keep an idle stream open past
// the server's write timeout; a Last-Event-ID that is not the tenant's is a
// 400 problem; shutting down ends the open streams at once.
func TestLiveStreamsResumeExactly(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, append(eng.env(t), "Subscriptions__StreamHeartbeat=100ms", "Server__WriteTimeout=1s",
				"Server__ShutdownTimeout=00:00:20"))
			const tenantPath, entityPath = "/api/v1/stream?entityType=shipment", "/api/v1/entities/SHP-1/stream"
			all := srv.stream(t, "acme", tenantPath, "")
			one := srv.stream(t, "acme", entityPath, "")
			exceptions := srv.stream(t, "acme", "/api/v1/stream?exceptions=true", "")
			all.Must() // the retry hint: the stream is open
			one.Must()
			exceptions.Must()

			var wantAll, wantOne []int64
			ps := srv.record(t, "acme", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached", "MilestoneReached")
			wantAll, wantOne = append(wantAll, ps...), append(wantOne, ps...)
			srv.record(t, "globex", "SHP-1", "shipment", "EntityRegistered", "MilestoneReached")
			srv.record(t, "acme", "VAN-1", "vehicle", "EntityRegistered")
			wantAll = append(wantAll, srv.record(t, "acme", "SHP-2", "shipment", "EntityRegistered")...)

			gotAll := received(t, all.Events(2), "SHP-1", "SHP-2")
			gotOne := received(t, one.Events(2), "SHP-1")
			all.Close()
			one.Close()
			if !slices.Equal(gotAll, wantAll[:2]) || !slices.Equal(gotOne, wantOne[:2]) {
				t.Fatalf("before the disconnect: %v and %v, want %v and %v", gotAll, gotOne, wantAll[:2], wantOne[:2])
			}

			// Recorded while the clients are away.
			ps = srv.record(t, "acme", "SHP-1", "shipment", "MilestoneReached")
			wantAll, wantOne = append(wantAll, ps...), append(wantOne, ps...)
			srv.record(t, "globex", "SHP-1", "shipment", "MilestoneReached")
			wantAll = append(wantAll, srv.record(t, "acme", "SHP-3", "shipment", "EntityRegistered")...)

			all = srv.stream(t, "acme", tenantPath, strconv.FormatInt(gotAll[1], 10))
			one = srv.stream(t, "acme", entityPath, strconv.FormatInt(gotOne[1], 10))
			if got := received(t, all.Events(len(wantAll)-2), "SHP-1", "SHP-2", "SHP-3"); !slices.Equal(got, wantAll[2:]) {
				t.Errorf("tenant stream resumed: %v, want exactly the missed %v", got, wantAll[2:])
			}
			if got := received(t, one.Events(len(wantOne)-2), "SHP-1"); !slices.Equal(got, wantOne[2:]) {
				t.Errorf("entity stream resumed: %v, want exactly the missed %v", got, wantOne[2:])
			}

			// Idle past the server's write timeout: heartbeats only.
			pings := 0
			for until := time.Now().Add(1500 * time.Millisecond); time.Now().Before(until); {
				m := all.Must()
				if m.Data != "" {
					t.Fatalf("an event nobody recorded: %+v", m)
				}
				if slices.Contains(m.Comments, "ping") {
					pings++
				}
			}
			if pings < 3 {
				t.Errorf("%d heartbeats in 1.5 s, want one every 100 ms", pings)
			}
			// Live again, and nothing in between: the next event is the new one.
			last := srv.record(t, "acme", "SHP-1", "shipment", "MilestoneReached")
			if got := received(t, all.Events(1), "SHP-1"); !slices.Equal(got, last) {
				t.Errorf("tenant stream after resuming: %v, want %v", got, last)
			}
			if got := received(t, one.Events(1), "SHP-1"); !slices.Equal(got, last) {
				t.Errorf("entity stream after resuming: %v, want %v", got, last)
			}

			// A filter on state changes: only the event that raised one, with it.
			raised := srv.record(t, "acme", "SHP-2", "shipment", "ExceptionRaised")
			events, got := ssetest.Decode(t, exceptions.Events(1))
			if !slices.Equal(got, raised) || len(events[0].Integration) != 1 || events[0].Integration[0].Kind != "ExceptionRaised" {
				t.Errorf("exceptions stream: %v %+v, want %v with its ExceptionRaised change", got, events, raised)
			}

			theirs := srv.record(t, "globex", "SHP-9", "shipment", "EntityRegistered")
			for _, bad := range []string{strconv.FormatInt(theirs[0], 10), "abc"} {
				r := srv.do(t, "GET", tenantPath, nil, "X-Tenant-ID", "acme", "Last-Event-ID", bad)
				if r.StatusCode != 400 {
					t.Errorf("Last-Event-ID %s: %d %s, want 400", bad, r.StatusCode, r.Body)
				}
				wantProblem("Last-Event-ID")(t, r)
				validate(t, r)
			}

			// Shutdown does not wait for the open streams.
			start := time.Now()
			if err := srv.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("shutdown with streams open took %s", took)
			}
			for {
				if _, err := all.Next(); err != nil {
					break
				}
			}
		})
	}
}
