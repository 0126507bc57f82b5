package alerting_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// openReadModels opens the SQLite read models in a file: one replica's, or
// one life's of a process.
func openReadModels(t *testing.T, path string) *readmodel.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "file:"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rm, err := sqlite.OpenReadModels(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return rm
}

// recorder is a Handler recording what it is handed, one call at a time on
// calls; fail, when set, makes a call fail.
type recorder struct {
	calls chan []alerting.Due
	mu    sync.Mutex
	fail  error
}

func newRecorder() *recorder { return &recorder{calls: make(chan []alerting.Due, 100)} }

func (r *recorder) handle(_ context.Context, due []alerting.Due) error {
	r.calls <- due
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}

func (r *recorder) failWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// next returns the next call, failing the test after a while.
func (r *recorder) next(t *testing.T) []alerting.Due {
	t.Helper()
	select {
	case due := <-r.calls:
		return due
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not called")
		return nil
	}
}

// none checks that no call is pending.
func (r *recorder) none(t *testing.T, when string) {
	t.Helper()
	select {
	case due := <-r.calls:
		t.Fatalf("%s: the handler was called with %+v", when, due)
	default:
	}
}

func check(entity, key string, at time.Time, position int64) alerting.Due {
	return alerting.Due{Tenant: "acme", EntityID: entity, RuleID: "r1", Key: key, At: at,
		Cause: alerting.Cause{EventID: "event-" + entity, Position: position}, Payload: json.RawMessage(`{"level":1}`)}
}

// run runs a scheduler until the test ends or stop is called; stop waits
// for Run to return.
func run(t *testing.T, s *alerting.Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// sleeping waits until the scheduler sleeps on its clock.
func sleeping(t *testing.T, clock *clockwork.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal("the scheduler does not sleep")
	}
}

func TestSchedulerFiresAtTheDueTimeNotBefore(t *testing.T) {
	t.Parallel()
	rm := openReadModels(t, filepath.Join(t.TempDir(), "rm.db"))
	due := check("e1", "PT24H", t0.Add(24*time.Hour), 7)
	if err := rm.Schedule(t.Context(), []alerting.Due{due}); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(t0)
	rec := newRecorder()
	run(t, alerting.NewScheduler(rm, rm, rec.handle, alerting.SchedulerOptions{Clock: clock, Interval: 10 * time.Hour}))
	// It sleeps no longer than its interval, and then until the due time.
	for _, step := range []time.Duration{10 * time.Hour, 10 * time.Hour, 4*time.Hour - time.Microsecond} {
		sleeping(t, clock)
		rec.none(t, "before the due time")
		clock.Advance(step)
	}
	sleeping(t, clock)
	rec.none(t, "a microsecond before the due time")
	clock.Advance(time.Microsecond)
	if got := rec.next(t); !reflect.DeepEqual(got, []alerting.Due{due}) {
		t.Fatalf("fired %+v, want %+v", got, due)
	}
	sleeping(t, clock)
	if _, ok, err := rm.Next(t.Context()); ok || err != nil {
		t.Fatalf("after firing, something is still pending (%v)", err)
	}
	clock.Advance(10 * time.Hour)
	sleeping(t, clock)
	rec.none(t, "after firing")
}

func TestSchedulerWakesForAnEarlierCheck(t *testing.T) {
	t.Parallel()
	rm := openReadModels(t, filepath.Join(t.TempDir(), "rm.db"))
	clock := clockwork.NewFakeClockAt(t0)
	rec := newRecorder()
	s := alerting.NewScheduler(rm, rm, rec.handle, alerting.SchedulerOptions{Clock: clock, Interval: time.Hour})
	run(t, s)
	sleeping(t, clock)
	due := check("e1", "k", t0, 1)
	if err := rm.Schedule(t.Context(), []alerting.Due{due}); err != nil {
		t.Fatal(err)
	}
	s.Wake()
	if got := rec.next(t); !reflect.DeepEqual(got, []alerting.Due{due}) {
		t.Fatalf("fired %+v, want %+v", got, due)
	}
}

// A handler that fails leaves the checks scheduled: they are handed over
// again after a back-off, and done only once handled.
func TestSchedulerRetriesAFailedHandler(t *testing.T) {
	t.Parallel()
	rm := openReadModels(t, filepath.Join(t.TempDir(), "rm.db"))
	due := check("e1", "k", t0, 1)
	if err := rm.Schedule(t.Context(), []alerting.Due{due}); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(t0)
	rec := newRecorder()
	rec.failWith(errors.New("event store unavailable"))
	run(t, alerting.NewScheduler(rm, rm, rec.handle, alerting.SchedulerOptions{Clock: clock, Interval: time.Hour}))
	rec.next(t)
	sleeping(t, clock)
	if _, ok, _ := rm.Next(t.Context()); !ok {
		t.Fatal("a check whose handler failed is no longer scheduled")
	}
	rec.failWith(nil)
	clock.Advance(time.Second)
	if got := rec.next(t); !reflect.DeepEqual(got, []alerting.Due{due}) {
		t.Fatalf("fired again %+v, want %+v", got, due)
	}
	sleeping(t, clock)
	if _, ok, _ := rm.Next(t.Context()); ok {
		t.Fatal("a handled check is still scheduled")
	}
}

// killedBeforeDone is a schedule store of a process that dies after its
// handler succeeded and before the checks are marked done.
type killedBeforeDone struct {
	*readmodel.Store
	kill func()
}

func (k killedBeforeDone) Done(context.Context, []alerting.Due) error {
	k.kill()
	return errors.New("killed")
}

// A process killed between the handler and Done hands the same checks
// (same key, same cause) over again after its restart, once: with an
// idempotent handler each fires exactly once. Checks that came due while
// no process ran fire at the restart.
func TestSchedulerRestartedAfterACrashFiresThePendingChecks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rm.db")
	first := openReadModels(t, path)
	handled := check("e1", "PT24H", t0, 3)
	later1, later2 := check("e2", "PT24H", t0.Add(time.Hour), 4), check("e3", "PT48H", t0.Add(2*time.Hour), 5)
	if err := first.Schedule(t.Context(), []alerting.Due{later2, handled, later1}); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(t0)
	rec := newRecorder()
	ctx, kill := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = alerting.NewScheduler(killedBeforeDone{first, kill}, first, rec.handle,
			alerting.SchedulerOptions{Clock: clock, Interval: time.Hour}).Run(ctx)
	}()
	if got := rec.next(t); !reflect.DeepEqual(got, []alerting.Due{handled}) {
		t.Fatalf("fired %+v, want %+v", got, handled)
	}
	<-stopped
	rec.none(t, "after the crash")

	// The restart, three hours later.
	second := openReadModels(t, path)
	clock = clockwork.NewFakeClockAt(t0.Add(3 * time.Hour))
	run(t, alerting.NewScheduler(second, second, rec.handle, alerting.SchedulerOptions{Clock: clock, Interval: time.Hour}))
	if got := rec.next(t); !reflect.DeepEqual(got, []alerting.Due{handled, later1, later2}) {
		t.Fatalf("after the restart fired %+v, want %+v", got, []alerting.Due{handled, later1, later2})
	}
	for range 3 {
		sleeping(t, clock)
		clock.Advance(time.Hour)
	}
	sleeping(t, clock)
	rec.none(t, "after the restart fired them")
}

// gate is a Handler that records and then waits to be let through.
type gate struct {
	entered chan []alerting.Due
	open    chan struct{}
}

func (g gate) handle(ctx context.Context, due []alerting.Due) error {
	g.entered <- due
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Two replicas on one database: only the leader fires; the other takes
// over when the leader stops, and fires only what is still pending.
func TestSchedulerFiresOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rm.db")
	rmA, rmB := openReadModels(t, path), openReadModels(t, path)
	first := check("e1", "k", t0, 1)
	if err := rmA.Schedule(t.Context(), []alerting.Due{first}); err != nil {
		t.Fatal(err)
	}
	clockA, clockB := clockwork.NewFakeClockAt(t0), clockwork.NewFakeClockAt(t0)
	g := gate{entered: make(chan []alerting.Due, 10), open: make(chan struct{})}
	stopA := run(t, alerting.NewScheduler(rmA, rmA, g.handle, alerting.SchedulerOptions{Clock: clockA, Interval: time.Minute}))
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader did not fire")
	}
	recB := newRecorder()
	run(t, alerting.NewScheduler(rmB, rmB, recB.handle, alerting.SchedulerOptions{Clock: clockB, Interval: time.Minute}))
	// While the leader is inside its handler, the standby tries to lead
	// (every interval) and fires nothing.
	for range 3 {
		sleeping(t, clockB)
		recB.none(t, "while the other replica leads")
		clockB.Advance(time.Minute)
	}
	close(g.open)
	sleeping(t, clockA)
	second := check("e2", "k", t0, 2)
	if err := rmA.Schedule(t.Context(), []alerting.Due{second}); err != nil {
		t.Fatal(err)
	}
	stopA()
	// The standby takes over at its next attempt (it may be making one as
	// the leader stops).
	sleeping(t, clockB)
	clockB.Advance(time.Minute)
	if got := recB.next(t); !reflect.DeepEqual(got, []alerting.Due{second}) {
		t.Fatalf("the new leader fired %+v, want only %+v", got, second)
	}
	select {
	case due := <-g.entered:
		t.Fatalf("the first leader fired again: %+v", due)
	default:
	}
}
