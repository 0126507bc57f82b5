package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/alerting/alertingtest"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/tracking"
)

func benchEvent(i int, at time.Time) eventstore.Event {
	data, _ := json.Marshal(map[string]any{"milestone": "arrived", "siteId": "AMS-HUB-01",
		"location": map[string]float64{"lat": 52.1, "lon": 4.3}, "plannedAt": at.Add(-time.Duration(i%1800) * time.Second).Format(time.RFC3339)})
	return eventstore.Event{ID: uuid.New(), Type: tracking.TypeMilestoneReached, Data: data, OccurredAt: at,
		Metadata: eventstore.Metadata{CorrelationID: "5f7c", CausationID: "9a1b", Source: "scanner-17"}}
}

// BenchmarkAppend: go test -run '^$' -bench 'Append$' -benchtime 5s ./internal/postgres/
func BenchmarkAppend(b *testing.B) {
	eventstoretest.BenchmarkAppend(b, func(b *testing.B) eventstore.Store { return open(b, pgtest.NewDatabase(b)) })
}

// BenchmarkProjectionApply: go test -run '^$' -bench ProjectionApply ./internal/postgres/
func BenchmarkProjectionApply(b *testing.B) {
	projectiontest.BenchmarkApply(b, func(b *testing.B) projectiontest.ReadModels {
		rm, err := postgres.OpenReadModels(context.Background(), "", open(b, pgtest.NewDatabase(b)).Pool())
		if err != nil {
			b.Fatal(err)
		}
		return rm
	})
}

// BenchmarkAppendToVisible appends at a steady rate (default 1,000 events/s,
// BENCH_RATE to change) for BENCH_SECONDS (default 10) while the projections
// run, and reports the latency from the append call to the moment the
// timeline projection has committed the event (p50, p99, in ms).
func BenchmarkAppendToVisible(b *testing.B) {
	rate := envInt("BENCH_RATE", 1000)
	seconds := envInt("BENCH_SECONDS", 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := pgtest.NewDatabase(b)
	store, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rm, err := postgres.OpenReadModels(ctx, "", store.Pool())
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	started := map[uuid.UUID]time.Time{}
	var latencies []time.Duration
	m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{Interval: 5 * time.Second,
		OnApplied: func(name string, events []eventstore.Recorded) {
			if name != tracking.ProjectionTimeline {
				return
			}
			now := time.Now()
			mu.Lock()
			for _, e := range events {
				if t, ok := started[e.ID]; ok {
					latencies = append(latencies, now.Sub(t))
					delete(started, e.ID)
				}
			}
			mu.Unlock()
		}})
	runDone := make(chan struct{})
	go func() { m.Run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }() // before the store closes: leaders hold pool connections
	b.ResetTimer()
	for range b.N {
		latencies = latencies[:0]
		tick := time.NewTicker(time.Second / time.Duration(rate))
		var wg sync.WaitGroup
		for i := range rate * seconds {
			<-tick.C
			e := benchEvent(i, time.Now())
			mu.Lock()
			started[e.ID] = time.Now()
			mu.Unlock()
			wg.Go(func() {
				_, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "bench", StreamID: "S-" + strconv.Itoa(i%5000),
					EntityType: "shipment", Expected: eventstore.Any, Events: []eventstore.Event{e}})
				if err != nil {
					b.Error(err)
				}
			})
		}
		tick.Stop()
		wg.Wait()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			left := len(started)
			mu.Unlock()
			if left == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	if len(latencies) == 0 {
		b.Fatal("no event became visible")
	}
	q := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(latencies)), "events")
}

// BenchmarkRebuild stores BENCH_EVENTS events (default 1,000,000) once, then
// rebuilds each projection from scratch and reports events/s; then all
// three at once (one read of each batch for the three: "all-events/s").
func BenchmarkRebuild(b *testing.B) {
	total := envInt("BENCH_EVENTS", 1_000_000)
	ctx := context.Background()
	dsn := pgtest.NewDatabase(b)
	store, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rm, err := postgres.OpenReadModels(ctx, "", store.Pool())
	if err != nil {
		b.Fatal(err)
	}
	seedStart := time.Now()
	seed(b, store, total)
	b.Logf("seeded %d events in %s", total, time.Since(seedStart).Round(time.Millisecond))
	m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{BatchSize: 5000})
	b.ResetTimer()
	for range b.N {
		for _, name := range tracking.EntityProjections() {
			start := time.Now()
			if err := m.Rebuild(ctx, name); err != nil {
				b.Fatal(err)
			}
			if err := m.CatchUp(ctx, name); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.ReportMetric(float64(total)/el.Seconds(), name+"-events/s")
		}
		start := time.Now()
		for _, name := range tracking.EntityProjections() {
			if err := m.Rebuild(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "all-events/s")
	}
}

// seed appends n events: 100-event appends to distinct streams, 8 at a time.
func seed(b *testing.B, store eventstore.Store, n int) {
	b.Helper()
	ctx := context.Background()
	base := time.Now().Add(-30 * 24 * time.Hour)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				evs := make([]eventstore.Event, 100)
				for k := range evs {
					evs[k] = benchEvent(k, base.Add(time.Duration(j*100+k)*time.Second))
				}
				if _, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "bench", StreamID: fmt.Sprintf("R-%d", j),
					EntityType: "shipment", Expected: eventstore.NoStream, Events: evs}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for j := range n / 100 {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEPCISQuery: projectiontest.BenchmarkEPCISQuery on a new database,
// or on BENCH_EPCIS_DSN (an existing database, created empty with
// createdb and dropped by hand: the first run seeds it, later runs query
// what it holds).
//
//	BENCH_EPCIS_EVENTS=1000000 go test -run '^$' -bench EPCISQuery -benchtime 1x -timeout 2h ./internal/postgres/
func BenchmarkEPCISQuery(b *testing.B) {
	projectiontest.BenchmarkEPCISQuery(b, func(b *testing.B) projectiontest.Harness {
		dsn := os.Getenv("BENCH_EPCIS_DSN")
		if dsn == "" {
			dsn = pgtest.NewDatabase(b)
		}
		s := open(b, dsn)
		rm, err := postgres.OpenReadModels(context.Background(), "", s.Pool())
		if err != nil {
			b.Fatal(err)
		}
		return projectiontest.Harness{Store: s, ReadModels: rm}
	})
}

// BenchmarkAlertsStale: alertingtest.BenchmarkStale on a new database, with
// the CPU time of the database's backends read from /proc (PostgreSQL on
// this machine).
//
//	go test -run '^$' -bench AlertsStale -benchtime 1x -timeout 1h ./internal/postgres/
func BenchmarkAlertsStale(b *testing.B) {
	alertingtest.BenchmarkStale(b, func(b *testing.B) alertingtest.BenchHarness {
		s := open(b, pgtest.NewDatabase(b))
		rm, err := postgres.OpenReadModels(context.Background(), "", s.Pool())
		if err != nil {
			b.Fatal(err)
		}
		return alertingtest.BenchHarness{Store: s, ReadModels: rm, ServerCPU: func(ctx context.Context) func() (time.Duration, bool) {
			return backendsCPU(ctx, s)
		}}
	})
}

// backendsCPU starts measuring the CPU time of the server's backends
// connected to the store's database: those connected at the end, from what
// each had spent at the start (or from nothing, for a newer one). It cannot
// be read of a server on another machine.
func backendsCPU(ctx context.Context, s *postgres.Store) func() (time.Duration, bool) {
	read := func() (map[int]time.Duration, bool) {
		rows, err := s.Pool().Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
		if err != nil {
			return nil, false
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, false
		}
		out := make(map[int]time.Duration, len(pids))
		for _, pid := range pids {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return nil, false
			}
			// Fields after the command's closing parenthesis: state is the
			// 3rd field of the line, utime and stime the 14th and 15th,
			// in clock ticks (USER_HZ, 100 on Linux).
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			utime, _ := strconv.ParseInt(f[11], 10, 64)
			stime, _ := strconv.ParseInt(f[12], 10, 64)
			out[int(pid)] = time.Duration(utime+stime) * 10 * time.Millisecond
		}
		return out, true
	}
	start, ok := read()
	return func() (time.Duration, bool) {
		end, endOK := read()
		if !ok || !endOK {
			return 0, false
		}
		var spent time.Duration
		for pid, cpu := range end {
			spent += cpu - start[pid]
		}
		return spent, true
	}
}
