package alertingtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// BenchHarness is what BenchmarkStale runs on: an engine's event store and
// its read models.
type BenchHarness struct {
	Store      eventstore.Store
	ReadModels *readmodel.Store
	// ServerCPU, when set, starts measuring the CPU time the database
	// server spends on the store's connections (PostgreSQL's backends) and
	// returns what gives the time spent since (ok false: it cannot be
	// read). Nil for an in-process engine, whose work is the process's own.
	ServerCPU func(ctx context.Context) (since func() (time.Duration, bool))
}

const (
	staleBenchTenant = "bench"
	// staleBenchRecordBatch is the commands of one RecordBatch when seeding.
	staleBenchRecordBatch = 1000
)

// BenchmarkStale measures the cost of a tenant's stale rule (the default
// levels, 24, 48 and 72 hours) over BENCH_ALERTS_ENTITIES in-transit
// entities (default 100,000), as the server runs it: the rules' follower
// (projection.Follower.Step with the server's batch size, Evaluator.Handle,
// a Deriver with the server's default cache) and the Scheduler (its default
// claim of 500, Evaluator.Fire recording through a tracking.Service, Done).
//
//  1. Each entity's first event (MilestoneReached picked_up: in transit),
//     stored before the timing, is evaluated: three checks scheduled anew
//     per event ("first-events/s").
//  2. Each entity reports a position (LocationReported), evaluated: its
//     three checks scheduled again by the newer cause ("news-events/s", the
//     steady state of entities in transit).
//  3. A fake clock moves past the last level; the Scheduler fires the
//     3 × entities due checks, each recording an ExceptionRaised through
//     the tracking service ("dues/s"), until nothing is pending.
//
// CPU is the process's (getrusage, user + system: the engine's own work on
// SQLite), and the database server's on its connections where ServerCPU
// tells it. Run it once (-benchtime 1x): every run seeds its own store.
//
//	go test -run '^$' -bench AlertsStale -benchtime 1x -timeout 1h ./internal/postgres/
func BenchmarkStale(b *testing.B, open func(b *testing.B) BenchHarness) {
	n := benchEnv("BENCH_ALERTS_ENTITIES", 100_000)
	for range b.N {
		b.StopTimer()
		h := open(b)
		b.StartTimer()
		runStale(b, h, n)
	}
}

func runStale(b *testing.B, h BenchHarness, n int) {
	ctx := context.Background()
	rm := h.ReadModels
	clock := clockwork.NewFakeClockAt(time.Now())
	rules := alerting.NewRuleService(rm, alerting.RuleOptions{Clock: clock})
	if _, err := rules.Create(ctx, staleBenchTenant, alerting.Definition{Kind: alerting.KindStale}); err != nil {
		b.Fatal(err)
	}
	// As the server wires them (cmd/tracktrace/serve.go), with the
	// configuration's default aggregate cache; the service's clock is the
	// schedule's, or the exceptions raised when it has moved on would be
	// refused as too far in the future.
	svc := tracking.NewService(h.Store, tracking.ServiceOptions{AggregateCacheSize: 10_000, Now: clock.Now})
	eval := alerting.NewEvaluator(rm, rm, rm, rm, svc, rm, tracking.NewDeriver(h.Store, 0), clock, nil)
	var handled time.Duration
	follower := projection.NewFollower(alerting.Checkpoint, h.Store, rm, rm,
		func(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
			start := time.Now()
			defer func() { handled += time.Since(start) }()
			return eval.Handle(ctx, from, events)
		}, projection.FollowerOptions{})

	phases := []struct {
		name, typ, data string
	}{
		{"first", tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`},
		{"news", tracking.TypeLocationReported, `{"lat":51.9,"lon":4.1}`},
	}
	for _, p := range phases {
		b.StopTimer()
		seedStart := time.Now()
		staleBenchSeed(b, svc, clock.Now().Add(-time.Minute), n, p.typ, p.data)
		b.Logf("%s: stored %d events in %s", p.name, n, time.Since(seedStart).Round(time.Millisecond))
		b.StartTimer()
		handled = 0
		m := startMeasure(ctx, h)
		events := 0
		for {
			k, err := follower.Step(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
			events += k
		}
		wall, cpu, server, serverOK := m.stop()
		if events != n {
			b.Fatalf("%s: the follower handled %d events, want %d", p.name, events, n)
		}
		b.ReportMetric(float64(events)/handled.Seconds(), p.name+"-events/s")
		b.ReportMetric(perThousand(cpu, events), p.name+"-cpu-ms/1000events")
		if serverOK {
			b.ReportMetric(perThousand(server, events), p.name+"-db-cpu-ms/1000events")
		}
		b.Logf("%s: %d events in %s (Handle %s: %.0f events/s; with the follower's reads %.0f events/s); process CPU %s, database server CPU %s",
			p.name, events, wall.Round(time.Millisecond), handled.Round(time.Millisecond), float64(events)/handled.Seconds(),
			float64(events)/wall.Seconds(), cpu.Round(time.Millisecond), serverCPU(server, serverOK))
	}

	// Past the last level of every check (the store stamped real times).
	clock.Advance(time.Until(clock.Now()) + 73*time.Hour)
	var fired atomic.Int64
	timed := &timedSchedule{ScheduleStore: rm}
	sched := alerting.NewScheduler(timed, rm, func(ctx context.Context, due []alerting.Due) error {
		fired.Add(int64(len(due)))
		start := time.Now()
		defer func() { timed.fire.Add(int64(time.Since(start))) }()
		return eval.Fire(ctx, due)
	}, alerting.SchedulerOptions{Clock: clock})
	m := startMeasure(ctx, h)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sched.Run(runCtx); close(done) }()
	// Until every check was fired and marked done (the schedule is only
	// read at the end: the reads would be the database's work too).
	for want := int64(3 * n); ; {
		time.Sleep(50 * time.Millisecond)
		if fired.Load() < want {
			continue
		}
		if _, pending, err := rm.Next(ctx); err != nil {
			b.Fatal(err)
		} else if !pending {
			break
		}
	}
	wall, cpu, server, serverOK := m.stop()
	cancel()
	<-done
	dues := int(fired.Load())
	if want := 3 * n; dues != want {
		b.Fatalf("fired %d due checks, want %d", dues, want)
	}
	state, err := svc.Entity(ctx, staleBenchTenant, staleBenchEntity(n-1))
	if err != nil {
		b.Fatal(err)
	}
	if len(state.OpenExceptions) != 3 {
		b.Fatalf("the last entity has %d open exceptions, want 3 (stale at 24, 48 and 72 h)", len(state.OpenExceptions))
	}
	b.ReportMetric(float64(dues)/wall.Seconds(), "dues/s")
	b.ReportMetric(perThousand(cpu, dues), "cpu-ms/1000dues")
	b.ReportMetric(perThousand(wall, dues), "wall-ms/1000dues")
	if serverOK {
		b.ReportMetric(perThousand(server, dues), "db-cpu-ms/1000dues")
	}
	b.Logf("fire: %d due checks in %s (%.0f/s; Claim %s, Fire %s, Done %s); process CPU %s, database server CPU %s",
		dues, wall.Round(time.Millisecond), float64(dues)/wall.Seconds(), timed.claim.String(), timed.fire.String(), timed.done.String(),
		cpu.Round(time.Millisecond), serverCPU(server, serverOK))
}

// timedSchedule adds up the time the scheduler's calls take.
type timedSchedule struct {
	alerting.ScheduleStore
	claim, fire, done elapsed
}

func (t *timedSchedule) Claim(ctx context.Context, now time.Time, limit int) ([]alerting.Due, error) {
	start := time.Now()
	defer func() { t.claim.Add(int64(time.Since(start))) }()
	return t.ScheduleStore.Claim(ctx, now, limit)
}

func (t *timedSchedule) Done(ctx context.Context, due []alerting.Due) error {
	start := time.Now()
	defer func() { t.done.Add(int64(time.Since(start))) }()
	return t.ScheduleStore.Done(ctx, due)
}

// elapsed is time added up from several goroutines.
type elapsed struct{ atomic.Int64 }

func (e *elapsed) String() string { return time.Duration(e.Load()).Round(time.Millisecond).String() }

// staleBenchSeed records one event of typ for each of n entities, in
// RecordBatch calls of staleBenchRecordBatch commands, four at a time.
func staleBenchSeed(b *testing.B, svc *tracking.Service, at time.Time, n int, typ, data string) {
	b.Helper()
	ctx := context.Background()
	starts := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for start := range starts {
				cmds := make([]tracking.RecordCommand, 0, staleBenchRecordBatch)
				for i := start; i < min(start+staleBenchRecordBatch, n); i++ {
					cmds = append(cmds, tracking.RecordCommand{Tenant: staleBenchTenant, EntityID: staleBenchEntity(i),
						EntityType: "shipment", Expected: eventstore.Any, Events: []tracking.NewEvent{{ID: uuid.New(), Type: typ,
							OccurredAt: at, Data: json.RawMessage(data)}}})
				}
				for i, out := range svc.RecordBatch(ctx, cmds) {
					if out.Err != nil {
						b.Errorf("seed %s: %v", cmds[i].EntityID, out.Err)
						return
					}
				}
			}
		})
	}
	for start := 0; start < n; start += staleBenchRecordBatch {
		starts <- start
	}
	close(starts)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

func staleBenchEntity(i int) string { return fmt.Sprintf("SHP-%07d", i) }

// measure is a measurement of wall, process CPU and database server CPU
// time.
type measure struct {
	start  time.Time
	cpu    time.Duration
	server func() (time.Duration, bool)
}

func startMeasure(ctx context.Context, h BenchHarness) measure {
	m := measure{start: time.Now(), cpu: processCPU()}
	if h.ServerCPU != nil {
		m.server = h.ServerCPU(ctx)
	}
	return m
}

func (m measure) stop() (wall, cpu, server time.Duration, serverOK bool) {
	wall, cpu = time.Since(m.start), processCPU()-m.cpu
	if m.server != nil {
		server, serverOK = m.server()
	}
	return wall, cpu, server, serverOK
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

func perThousand(d time.Duration, n int) float64 {
	return float64(d.Microseconds()) / 1000 / float64(n) * 1000
}

func serverCPU(d time.Duration, ok bool) string {
	if !ok {
		return "not measured"
	}
	return d.Round(time.Millisecond).String()
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
