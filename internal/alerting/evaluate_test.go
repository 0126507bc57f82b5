package alerting_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

type staleEnv struct {
	t     *testing.T
	ctx   context.Context
	store *sqlite.Store
	views *readmodel.Store
	svc   *tracking.Service
	clock *clockwork.FakeClock
	eval  *alerting.Evaluator
	rules *alerting.RuleService
	sites *alerting.SiteService
	stop  func()
}

// newStaleEnv runs the rules' follower and scheduler on a SQLite store
// with a fake clock for the schedule (the store stamps real times).
func newStaleEnv(t *testing.T, file string) *staleEnv {
	t.Helper()
	return newEnvAt(t, file, time.Now())
}

// newEnvAt is newStaleEnv with the fake clock at start: the schedule's
// and the tracking service's (the store stamps real times).
func newEnvAt(t *testing.T, file string, start time.Time) *staleEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, "file:"+file, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	views, err := sqlite.OpenReadModels(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(start)
	svc := tracking.NewService(store, tracking.ServiceOptions{Now: clock.Now})
	log := slog.New(slog.DiscardHandler)
	eval := alerting.NewEvaluator(views, views, views, views, svc, views, tracking.NewDeriver(store, 100), clock, log)
	follower := projection.NewFollower(alerting.Checkpoint, store, views, views, eval.Handle,
		projection.FollowerOptions{Interval: 20 * time.Millisecond, Logger: log})
	sched := alerting.NewScheduler(views, views, eval.Fire, alerting.SchedulerOptions{Clock: clock, Interval: time.Second, Logger: log})
	eval.Wake = sched.Wake
	done := make(chan struct{}, 2)
	go func() { follower.Run(ctx); done <- struct{}{} }()
	go func() { sched.Run(ctx); done <- struct{}{} }()
	e := &staleEnv{t: t, ctx: ctx, store: store, views: views, svc: svc, clock: clock, eval: eval,
		rules: alerting.NewRuleService(views, alerting.RuleOptions{Clock: clock}), sites: alerting.NewSiteService(views, nil)}
	e.stop = func() {
		cancel()
		<-done
		<-done
		views.Close()
		store.Close()
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	return e
}

func (e *staleEnv) record(entity, typ, data string) {
	e.t.Helper()
	out := e.svc.RecordBatch(e.ctx, []tracking.RecordCommand{{Tenant: "acme", EntityID: entity, EntityType: "shipment",
		Expected: eventstore.Any, Events: []tracking.NewEvent{{ID: uuid.New(), Type: typ, OccurredAt: e.clock.Now().Add(-time.Minute),
			Data: json.RawMessage(data)}}}})
	if out[0].Err != nil {
		e.t.Fatal(out[0].Err)
	}
}

// derived returns the entity's events the rules derived, by type.
func (e *staleEnv) derived(entity string) (raised, resolved []eventstore.Recorded) {
	e.t.Helper()
	evs, err := e.store.ReadStream(e.ctx, "acme", entity, 1, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range evs {
		if r.Metadata.Source != alerting.Source {
			continue
		}
		switch r.Type {
		case tracking.TypeExceptionRaised:
			raised = append(raised, r)
		case tracking.TypeExceptionResolved:
			resolved = append(resolved, r)
		}
	}
	return raised, resolved
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Issue 19, Done when 1 and 3 for the stale rule: raised at each level's
// threshold and not before, resolved by the entity's next event, once
// however often it is evaluated, and exactly once across a restart with
// checks pending.
func TestStaleRuleRaisesAtThresholdsAndResolvesOnNews(t *testing.T) {
	file := filepath.Join(t.TempDir(), "alerts.db")
	e := newStaleEnv(t, file)
	if _, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindStale, Levels: []string{"PT1M", "PT2M"}}); err != nil {
		t.Fatal(err)
	}
	e.record("SHP-1", tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`) // in transit
	e.record("SHP-2", tracking.TypeMilestoneReached, `{"milestone":"delivered"}`) // out of the rule's statuses
	time.Sleep(200 * time.Millisecond)                                            // the follower schedules the checks
	e.clock.Advance(50 * time.Second)
	time.Sleep(200 * time.Millisecond)
	if raised, _ := e.derived("SHP-1"); len(raised) != 0 {
		t.Fatalf("raised before the threshold: %d", len(raised))
	}
	e.clock.Advance(15 * time.Second) // past 1 min
	waitUntil(t, "the first level", func() bool { raised, _ := e.derived("SHP-1"); return len(raised) == 1 })

	// A restart with the second level pending fires it once.
	e.stop()
	e.stop = nil
	e = newStaleEnv(t, file)
	e.clock.Advance(2*time.Minute + 10*time.Second)
	waitUntil(t, "the second level", func() bool { raised, _ := e.derived("SHP-1"); return len(raised) == 2 })
	raised, _ := e.derived("SHP-1")
	var first, second tracking.ExceptionRaised
	json.Unmarshal(raised[0].Data, &first)
	json.Unmarshal(raised[1].Data, &second)
	if first.Code != "stale" || second.Code != "stale" || first.Severity != tracking.SeverityLow || second.Severity != tracking.SeverityHigh ||
		first.ExceptionID == second.ExceptionID {
		t.Fatalf("raised %+v and %+v", first, second)
	}
	if raised[0].Metadata.CausationID == "" {
		t.Fatal("a derived exception has no causation")
	}
	if r, _ := e.derived("SHP-2"); len(r) != 0 {
		t.Fatalf("a delivered shipment was flagged stale: %d", len(r))
	}

	// News resolves both.
	e.record("SHP-1", tracking.TypeLocationReported, `{"lat":51.9,"lon":4.1}`)
	waitUntil(t, "the resolutions", func() bool { _, resolved := e.derived("SHP-1"); return len(resolved) == 2 })
	_, resolved := e.derived("SHP-1")
	got := map[string]bool{}
	for _, r := range resolved {
		var x tracking.ExceptionResolved
		json.Unmarshal(r.Data, &x)
		got[x.ExceptionID] = true
	}
	if !got[first.ExceptionID] || !got[second.ExceptionID] {
		t.Fatalf("resolved %v, want %s and %s", got, first.ExceptionID, second.ExceptionID)
	}

	// The news starts a new silence, whose checks (the fake clock is past
	// them already) raise anew; nothing is raised or resolved twice.
	waitUntil(t, "the next silence's exceptions", func() bool { raised, _ := e.derived("SHP-1"); return len(raised) == 4 })
	time.Sleep(200 * time.Millisecond)
	all, _ := e.store.ReadStream(e.ctx, "acme", "SHP-1", 1, 1000)
	raised, resolved = e.derived("SHP-1")
	if len(all) != 8 || len(raised) != 4 || len(resolved) != 2 {
		t.Fatalf("%d events (%d raised, %d resolved), want 8 (4, 2)", len(all), len(raised), len(resolved))
	}
}

// The delay rule: an ETA past the planned arrival plus the tolerance raises
// a delay exception once, and an ETA back within it resolves it.
func TestDelayRuleRaisesOnLateETAAndResolves(t *testing.T) {
	e := newStaleEnv(t, filepath.Join(t.TempDir(), "delay.db"))
	tolerance := "PT30M"
	if _, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindDelay, Tolerance: &tolerance}); err != nil {
		t.Fatal(err)
	}
	planned := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	eta := func(d time.Duration) string {
		return `{"eta":"` + planned.Add(d).Format(time.RFC3339) + `"}`
	}
	e.record("SHP-9", tracking.TypeEntityRegistered, `{"plannedArrival":"`+planned.Format(time.RFC3339)+`"}`)
	e.record("SHP-9", tracking.TypeEtaUpdated, eta(20*time.Minute)) // within the tolerance
	e.record("SHP-9", tracking.TypeEtaUpdated, eta(2*time.Hour))    // late
	e.record("SHP-9", tracking.TypeEtaUpdated, eta(3*time.Hour))    // still late: no second exception
	waitUntil(t, "the delay", func() bool { raised, _ := e.derived("SHP-9"); return len(raised) == 1 })
	e.record("SHP-9", tracking.TypeEtaUpdated, eta(10*time.Minute)) // back within
	waitUntil(t, "the resolution", func() bool { _, resolved := e.derived("SHP-9"); return len(resolved) == 1 })
	time.Sleep(200 * time.Millisecond)
	raised, resolved := e.derived("SHP-9")
	var x tracking.ExceptionRaised
	json.Unmarshal(raised[0].Data, &x)
	var y tracking.ExceptionResolved
	json.Unmarshal(resolved[0].Data, &y)
	if len(raised) != 1 || len(resolved) != 1 || x.Code != tracking.ExceptionDelay || y.ExceptionID != x.ExceptionID {
		t.Fatalf("raised %+v, resolved %+v", raised, resolved)
	}
	state, err := e.svc.Entity(e.ctx, "acme", "SHP-9")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.OpenExceptions) != 0 {
		t.Fatalf("open exceptions: %+v", state.OpenExceptions)
	}
}
