package alerting_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// settle waits until the rules' follower has evaluated the whole log and
// the scheduler sleeps on the fake clock (it handled what was due).
func (e *staleEnv) settle() {
	e.t.Helper()
	waitUntil(e.t, "the follower to catch up", func() bool {
		head, err := e.store.Head(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		cp, err := e.views.Checkpoint(e.ctx, alerting.Checkpoint)
		if err != nil {
			e.t.Fatal(err)
		}
		return cp.Cursor == head
	})
	sleeping(e.t, e.clock)
}

// advance moves the fake clock and waits for the scheduler to handle what
// came due.
func (e *staleEnv) advance(d time.Duration) {
	e.t.Helper()
	e.settle()
	e.clock.Advance(d)
	e.settle()
}

func (e *staleEnv) delayRule(tolerance string) alerting.Rule {
	e.t.Helper()
	r, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindDelay, Tolerance: &tolerance})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *staleEnv) open(entity string) []tracking.OpenException {
	e.t.Helper()
	s, err := e.svc.Entity(e.ctx, "acme", entity)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.OpenExceptions
}

// counts is how many events the rules derived for an entity: raised and
// resolved.
func (e *staleEnv) counts(entity string) [2]int {
	e.t.Helper()
	raised, resolved := e.derived(entity)
	return [2]int{len(raised), len(resolved)}
}

func registered(planned time.Time) string {
	return `{"plannedArrival":"` + planned.UTC().Format(time.RFC3339) + `"}`
}

func etaAt(t time.Time) string { return `{"eta":"` + t.UTC().Format(time.RFC3339) + `"}` }

// Issue 19, Done when 1 for the delay rule without news: an entity whose
// planned arrival plus the tolerance passes without it arriving is late at
// that time, ETA or not; one that arrived in time, or has no planned
// arrival, is not. The exception is raised once (a later ETA adds none)
// and resolved by the arrival.
func TestDelayRuleRaisesAtTheDeadlineWithoutNews(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	e := newEnvAt(t, filepath.Join(t.TempDir(), "delay.db"), start)
	e.delayRule("PT30M")
	planned := start.Add(time.Hour)
	deadline := planned.Add(30 * time.Minute)
	e.record("SHP-LATE", tracking.TypeEntityRegistered, registered(planned))
	e.record("SHP-LATE", tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`)
	e.record("SHP-ONTIME", tracking.TypeEntityRegistered, registered(planned))
	e.record("SHP-ONTIME", tracking.TypeMilestoneReached, `{"milestone":"delivered"}`)
	e.record("SHP-UNPLANNED", tracking.TypeEntityRegistered, `{}`)

	e.advance(90*time.Minute - time.Second)
	if got := e.counts("SHP-LATE"); got != [2]int{} {
		t.Fatalf("a second before the deadline: %v derived", got)
	}
	e.advance(time.Second)
	raised, _ := e.derived("SHP-LATE")
	if len(raised) != 1 {
		t.Fatalf("at the deadline: %d raised, want 1", len(raised))
	}
	var x tracking.ExceptionRaised
	json.Unmarshal(raised[0].Data, &x)
	if x.Code != tracking.ExceptionDelay || !raised[0].OccurredAt.Equal(deadline) {
		t.Fatalf("raised %+v at %v, want a delay at %v", x, raised[0].OccurredAt, deadline)
	}
	for _, id := range []string{"SHP-ONTIME", "SHP-UNPLANNED"} {
		if got := e.counts(id); got != [2]int{} {
			t.Errorf("%s: %v derived, want nothing", id, got)
		}
	}

	// A late ETA now is no second delay; the arrival resolves it.
	e.record("SHP-LATE", tracking.TypeEtaUpdated, etaAt(planned.Add(3*time.Hour)))
	e.advance(time.Hour)
	if got := e.counts("SHP-LATE"); got != [2]int{1, 0} {
		t.Fatalf("after a late ETA: %v, want one raised", got)
	}
	e.record("SHP-LATE", tracking.TypeMilestoneReached, `{"milestone":"delivered"}`)
	e.advance(time.Hour)
	if got, open := e.counts("SHP-LATE"), e.open("SHP-LATE"); got != [2]int{1, 1} || len(open) != 0 {
		t.Fatalf("after the arrival: %v derived, open %+v", got, open)
	}
}

// The event-driven raise and the due check share the episode: an ETA that
// shows the entity late before its deadline raises, and the deadline then
// passing raises nothing more.
func TestDelayRaisedByTheETAIsNotRaisedAgainAtTheDeadline(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	e := newEnvAt(t, filepath.Join(t.TempDir(), "delay.db"), start)
	e.delayRule("PT30M")
	planned := start.Add(time.Hour)
	e.record("SHP-1", tracking.TypeEntityRegistered, registered(planned))
	e.record("SHP-1", tracking.TypeEtaUpdated, etaAt(planned.Add(2*time.Hour)))
	e.settle()
	if got := e.counts("SHP-1"); got != [2]int{1, 0} {
		t.Fatalf("after a late ETA: %v, want one raised", got)
	}
	e.advance(2 * time.Hour)
	if got, open := e.counts("SHP-1"), e.open("SHP-1"); got != [2]int{1, 0} || len(open) != 1 {
		t.Fatalf("after the deadline: %v derived, %d open; want the one raised", got, len(open))
	}
}

// Issue 19, Done when 1: no duplicate after a restart or a replay. The
// alerts' follower evaluated stale and delay rules (raised by events, by
// due checks, resolved by news and arrivals); restarted with its
// checkpoint reset to the start of the log, it evaluates everything again
// and derives nothing new.
func TestAlertsReplayedFromTheStartDeriveNothingTwice(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	file := filepath.Join(t.TempDir(), "replay.db")
	e := newEnvAt(t, file, start)
	e.delayRule("PT30M")
	if _, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindStale, Levels: []string{"PT2H"}}); err != nil {
		t.Fatal(err)
	}
	planned := start.Add(10 * time.Minute)
	// SHP-1 goes silent: late at its deadline, stale two hours on.
	e.record("SHP-1", tracking.TypeEntityRegistered, registered(planned))
	e.record("SHP-1", tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`)
	// SHP-2: late by its ETA, back within it, late at the deadline,
	// delivered.
	e.record("SHP-2", tracking.TypeEntityRegistered, registered(planned))
	e.record("SHP-2", tracking.TypeEtaUpdated, etaAt(planned.Add(time.Hour)))
	e.record("SHP-2", tracking.TypeEtaUpdated, etaAt(planned))
	e.advance(time.Hour)
	e.record("SHP-2", tracking.TypeMilestoneReached, `{"milestone":"delivered"}`)
	e.advance(2 * time.Hour)
	want := map[string][2]int{"SHP-1": {2, 0}, "SHP-2": {2, 2}}
	for id, w := range want {
		if got := e.counts(id); got != w {
			t.Fatalf("%s: %v raised and resolved, want %v", id, got, w)
		}
	}

	e.stop()
	e.stop = nil
	views := openReadModels(t, file)
	cp, err := views.Checkpoint(t.Context(), alerting.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := views.MoveCheckpoint(t.Context(), alerting.Checkpoint, cp.Cursor, eventstore.Cursor{}); err != nil {
		t.Fatal(err)
	}
	e = newEnvAt(t, file, start.Add(4*time.Hour))
	e.advance(time.Hour)
	e.advance(24 * time.Hour)
	for id, w := range want {
		if got := e.counts(id); got != w {
			t.Errorf("%s after the replay: %v raised and resolved, want %v", id, got, w)
		}
	}
}

// Issue 19, Done when 1: a rule change applies to new evaluations only.
// An exception raised under the old definition stays; checks scheduled
// under it do not fire at its thresholds but at the new ones.
func TestARuleChangeAppliesToNewEvaluationsOnly(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	e := newEnvAt(t, filepath.Join(t.TempDir(), "change.db"), start)
	delay := e.delayRule("PT30M")
	inTransit := []string{tracking.StatusInTransit}
	stale, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindStale, Levels: []string{"PT1H"}, Statuses: inTransit})
	if err != nil {
		t.Fatal(err)
	}
	e.record("SHP-EARLY", tracking.TypeEntityRegistered, registered(start.Add(10*time.Minute)))
	e.record("SHP-LATER", tracking.TypeEntityRegistered, registered(start.Add(time.Hour)))
	e.record("SHP-SILENT", tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`)
	e.advance(41 * time.Minute) // past SHP-EARLY's deadline
	if got := e.counts("SHP-EARLY"); got != [2]int{1, 0} {
		t.Fatalf("SHP-EARLY: %v, want raised", got)
	}

	longer := "PT3H"
	if _, err := e.rules.Replace(e.ctx, "acme", delay.ID, alerting.Definition{Kind: alerting.KindDelay, Tolerance: &longer}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rules.Replace(e.ctx, "acme", stale.ID, alerting.Definition{Kind: alerting.KindStale, Levels: []string{"PT3H"}, Statuses: inTransit}); err != nil {
		t.Fatal(err)
	}
	// The old thresholds pass (SHP-LATER's deadline at 1h30, SHP-SILENT's
	// level at 1h): nothing fires.
	e.advance(time.Hour)
	for _, id := range []string{"SHP-LATER", "SHP-SILENT"} {
		if got := e.counts(id); got != [2]int{} {
			t.Errorf("%s at the old threshold: %v derived, want nothing", id, got)
		}
	}
	if open := e.open("SHP-EARLY"); len(open) != 1 {
		t.Errorf("SHP-EARLY's delay after the change: %d open, want it to stay", len(open))
	}
	// The new ones fire: SHP-SILENT at 3h, SHP-LATER at 4h.
	e.advance(80 * time.Minute) // 3h01
	if got := e.counts("SHP-SILENT"); got != [2]int{1, 0} {
		t.Errorf("SHP-SILENT at the new level: %v, want raised", got)
	}
	if got := e.counts("SHP-LATER"); got != [2]int{} {
		t.Errorf("SHP-LATER before its new deadline: %v", got)
	}
	e.advance(time.Hour) // 4h01
	if got := e.counts("SHP-LATER"); got != [2]int{1, 0} {
		t.Errorf("SHP-LATER at the new deadline: %v, want raised", got)
	}
	if got := e.counts("SHP-EARLY"); got != [2]int{1, 0} {
		t.Errorf("SHP-EARLY: %v, want its one exception", got)
	}
}
