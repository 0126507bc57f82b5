package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// faultEngine is a storage engine as the fault tests use it: the server's
// environment, and the store and read models opened in the test process
// (with no server running) to check them.
type faultEngine struct {
	name string
	env  []string
	open func(t *testing.T) (eventstore.Store, projectiontest.ReadModels)
}

func faultEngines(t *testing.T) []faultEngine {
	return []faultEngine{sqliteFaultEngine(filepath.Join(t.TempDir(), "tracktrace.db")), postgresFaultEngine(pgtest.NewDatabase(t))}
}

// sqliteFaultEngine is the SQLite file at path.
func sqliteFaultEngine(file string) faultEngine {
	return faultEngine{"sqlite", []string{"EventStore__ConnectionString=file:" + file}, func(t *testing.T) (eventstore.Store, projectiontest.ReadModels) {
		s, err := sqlite.Open(t.Context(), "file:"+file, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		rm, err := sqlite.OpenReadModels(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		return s, rm
	}}
}

// postgresFaultEngine is the PostgreSQL database at dsn.
func postgresFaultEngine(dsn string) faultEngine {
	return faultEngine{"postgres", []string{"ConnectionStrings__EventStore=" + dsn}, func(t *testing.T) (eventstore.Store, projectiontest.ReadModels) {
		s, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		rm, err := postgres.OpenReadModels(t.Context(), "", s.Pool())
		if err != nil {
			t.Fatal(err)
		}
		return s, rm
	}}
}

// ackLog records the events clients saw acknowledged (201), by entity, and
// what the other requests saw.
type ackLog struct {
	mu       sync.Mutex
	ids      map[string][]uuid.UUID
	n        int
	statuses map[int]int   // responses by status
	failed   int           // requests without a response
	slowest  time.Duration // longest request
	// noRetryAfter counts 503 responses without a Retry-After header.
	noRetryAfter int
	// batchItems counts the batch items acknowledged.
	batchItems int
}

// observe records one request's outcome (status 0: no response).
func (a *ackLog) observe(status int, took time.Duration, retryAfter string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.statuses == nil {
		a.statuses = map[int]int{}
	}
	if status == 0 {
		a.failed++
	} else {
		a.statuses[status]++
	}
	a.slowest = max(a.slowest, took)
	if status == 503 && retryAfter == "" {
		a.noRetryAfter++
	}
}

func (a *ackLog) add(entity string, ids ...uuid.UUID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[string][]uuid.UUID{}
	}
	a.ids[entity] = append(a.ids[entity], ids...)
	a.n += len(ids)
}

// appendLoad runs clients that append until stop is closed, each to four
// entities of its own, with client-chosen event ids: a milestone with a
// planned time, an operation started and completed in one request (two
// events, atomic), or a location fix. They send to the URL in target (none
// while it is nil) and record what was acknowledged; transport errors and
// the statuses in allowed are outcomes a client may see, anything else fails
// the test.
func appendLoad(t *testing.T, clients int, prefix string, target *atomic.Pointer[string], acked *ackLog, stop <-chan struct{}, allowed ...int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				url := target.Load()
				if url == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				entity := fmt.Sprintf("%s-%d-%d", prefix, c, i%4)
				at := time.Now().Add(-time.Hour)
				var evs []map[string]any
				ids := []uuid.UUID{uuid.New()}
				switch i % 3 {
				case 0:
					evs = append(evs, map[string]any{"eventId": ids[0], "type": "MilestoneReached", "occurredAt": at,
						"data": map[string]any{"milestone": "arrived", "siteId": "AMS", "plannedAt": at.Add(-10 * time.Minute)}})
				case 1:
					ids = append(ids, uuid.New())
					op := fmt.Sprintf("op-%d", i)
					evs = append(evs,
						map[string]any{"eventId": ids[0], "type": "OperationStarted", "occurredAt": at,
							"data": map[string]any{"operation": "loading", "operationId": op}},
						map[string]any{"eventId": ids[1], "type": "OperationCompleted", "occurredAt": at.Add(time.Minute),
							"data": map[string]any{"operation": "loading", "operationId": op, "outcome": "succeeded"}})
				default:
					evs = append(evs, map[string]any{"eventId": ids[0], "type": "LocationReported", "occurredAt": at,
						"data": map[string]any{"lat": 52.1, "lon": 4.3}})
				}
				start := time.Now()
				if c%2 == 1 {
					// Every other client sends batches: this item, and a
					// location fix for the same entity (the single-command
					// path) and for the next one.
					next := fmt.Sprintf("%s-%d-%d", prefix, c, (i+1)%4)
					more := []uuid.UUID{uuid.New(), uuid.New()}
					fix := func(id uuid.UUID) []any {
						return []any{map[string]any{"eventId": id, "type": "LocationReported", "occurredAt": at,
							"data": map[string]any{"lat": 52.2, "lon": 4.4}}}
					}
					items := []any{
						map[string]any{"entityId": entity, "entityType": "vehicle", "events": evs},
						map[string]any{"entityId": entity, "entityType": "vehicle", "events": fix(more[0])},
						map[string]any{"entityId": next, "entityType": "vehicle", "events": fix(more[1])},
					}
					itemIDs := [][]uuid.UUID{ids, more[:1], more[1:]}
					itemEntities := []string{entity, entity, next}
					r, err := (&server{URL: *url}).tryDo("POST", "/api/v1/events/batch", map[string]any{"items": items})
					if err != nil {
						acked.observe(0, time.Since(start), "")
						continue
					}
					acked.observe(r.StatusCode, time.Since(start), r.Header.Get("Retry-After"))
					if r.StatusCode != 200 {
						if !slices.Contains(allowed, r.StatusCode) {
							t.Errorf("batch: %d %s", r.StatusCode, r.Body)
						}
						continue
					}
					var res struct{ Results []struct{ Status int } }
					if err := json.Unmarshal(r.Body, &res); err != nil || len(res.Results) != len(items) {
						t.Errorf("batch answer %s: %v", r.Body, err)
						continue
					}
					for k, ir := range res.Results {
						switch {
						case ir.Status == 201:
							acked.add(itemEntities[k], itemIDs[k]...)
							acked.mu.Lock()
							acked.batchItems++
							acked.mu.Unlock()
						case !slices.Contains(allowed, ir.Status):
							t.Errorf("batch item %d for %s: %d in %s", k, itemEntities[k], ir.Status, r.Body)
						}
					}
					continue
				}
				r, err := (&server{URL: *url}).tryDo("POST", "/api/v1/entities/"+entity+"/events",
					map[string]any{"entityType": "vehicle", "events": evs})
				if err != nil {
					acked.observe(0, time.Since(start), "")
				} else {
					acked.observe(r.StatusCode, time.Since(start), r.Header.Get("Retry-After"))
				}
				switch {
				case err != nil:
					// Unknown outcome: not acknowledged.
				case r.StatusCode == 201:
					acked.add(entity, ids...)
				default:
					if !slices.Contains(allowed, r.StatusCode) {
						t.Errorf("append to %s: %d %s", entity, r.StatusCode, r.Body)
					}
				}
			}
		})
	}
	return &wg
}

// requester sends requests to a server: *server (in-process) or *process.
type requester interface {
	tryDo(method, path string, body any, headers ...string) (response, error)
}

// checkAcknowledged reads every entity's events through the API and checks
// that versions are contiguous, no event id appears twice, and every
// acknowledged event is there.
func checkAcknowledged(t *testing.T, p requester, acked *ackLog) {
	t.Helper()
	acked.mu.Lock()
	defer acked.mu.Unlock()
	for entity, ids := range acked.ids {
		seen := map[uuid.UUID]int{}
		var version int64
		for {
			r, err := p.tryDo("GET", fmt.Sprintf("/api/v1/entities/%s/events?fromVersion=%d&limit=1000", entity, version+1), nil)
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("read events of %s: %v %d %s", entity, err, r.StatusCode, r.Body)
			}
			var page struct {
				Events []struct {
					EventID uuid.UUID
					Version int64
				}
			}
			r.JSON(t, &page)
			for _, e := range page.Events {
				if e.Version != version+1 {
					t.Fatalf("%s: version %d follows %d", entity, e.Version, version)
				}
				version = e.Version
				seen[e.EventID]++
			}
			if len(page.Events) < 1000 {
				break
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: event %s stored %d times", entity, id, n)
			}
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("%s: acknowledged event %s is not stored", entity, id)
			}
		}
	}
}

// checkReadModelsEqualRebuild brings every projection up to the log's head,
// dumps the read models, rebuilds each projection from the log and checks
// that the rebuilt read models are the same. No server may be running.
func checkReadModelsEqualRebuild(t *testing.T, eng faultEngine) {
	t.Helper()
	ctx := t.Context()
	store, rm := eng.open(t)
	m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{})
	// On PostgreSQL the log is readable up to the oldest transaction in
	// progress anywhere on the server (other tests' among them): catch up
	// until the timeline holds a row for every stored event.
	stored := countEvents(t, store)
	settle := func() map[string][]string {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			for _, name := range tracking.EntityProjections() {
				if err := m.CatchUp(ctx, name); err != nil {
					t.Fatalf("catch up %s: %v", name, err)
				}
			}
			dump, err := rm.Dump(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(dump["rm_timeline"]) == stored {
				return dump
			}
			if time.Now().After(deadline) {
				t.Fatalf("the timeline holds %d rows after 60 s, the log %d events", len(dump["rm_timeline"]), stored)
			}
		}
	}
	before := settle()
	if len(before["rm_timeline"]) == 0 || len(before["rm_entities"]) == 0 || len(before["rm_metric_points"]) == 0 {
		t.Fatalf("read models are empty: %d timeline rows, %d entities, %d metric points",
			len(before["rm_timeline"]), len(before["rm_entities"]), len(before["rm_metric_points"]))
	}
	for _, name := range tracking.EntityProjections() {
		if err := m.Rebuild(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	after := settle()
	for table, rows := range before {
		if !reflect.DeepEqual(rows, after[table]) {
			t.Errorf("%s after the crashes differs from its rebuild: %d rows, rebuilt %d", table, len(rows), len(after[table]))
		}
	}
}

// countEvents counts the events stored, readable or not (erasure markers,
// version 0, are not events).
func countEvents(t *testing.T, store eventstore.Store) int {
	t.Helper()
	var n int
	var err error
	switch s := store.(type) {
	case *postgres.Store:
		err = s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM events WHERE version > 0`).Scan(&n)
	case *sqlite.Store:
		err = s.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM events WHERE version > 0`).Scan(&n)
	default:
		t.Fatalf("countEvents: %T", store)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// SIGKILL while 16 clients append (half of them in batches), ten times over,
// on each engine, with the aggregate cache on (the default): after the last
// restart every acknowledged event is stored exactly once, and the read
// models equal a rebuild from the log.
func TestCrashUnderLoadLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	for _, eng := range faultEngines(t) {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			const cycles = 10
			var target atomic.Pointer[string]
			acked := &ackLog{}
			stop := make(chan struct{})
			// 503: a request caught by a crash of the database connection.
			load := appendLoad(t, 16, "CRASH", &target, acked, stop, 503)
			for cycle := range cycles {
				p := startProcess(t, eng.env)
				target.Store(&p.URL)
				before := acked.count()
				time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
				// Kill it under load: after some appends were acknowledged
				// (and, the last time, after a batch item was at least once:
				// on a busy machine batches can be slower than every cycle).
				waiting := func() bool {
					acked.mu.Lock()
					defer acked.mu.Unlock()
					return acked.n == before || cycle == cycles-1 && acked.batchItems == 0
				}
				for deadline := time.Now().Add(20 * time.Second); waiting() && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				p.kill()
				target.Store(nil)
				t.Logf("cycle %d: %d events acknowledged before SIGKILL", cycle+1, acked.count()-before)
			}
			close(stop)
			load.Wait()
			if acked.count() == 0 || acked.batchItems == 0 {
				t.Fatalf("%d events acknowledged, %d of them batch items: want both", acked.count(), acked.batchItems)
			}
			p := startProcess(t, eng.env)
			checkAcknowledged(t, p, acked)
			p.terminate(t, 10*time.Second)
			checkReadModelsEqualRebuild(t, eng)
			t.Logf("%d acknowledged events over %d crashes: all stored once; read models equal a rebuild", acked.count(), cycles)
		})
	}
}

func (a *ackLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
