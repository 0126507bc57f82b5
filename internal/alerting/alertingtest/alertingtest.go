// Package alertingtest is the conformance suite of the alerts' storage:
// every engine's read models (PostgreSQL, SQLite) must pass Run.
// Expectations are written by hand as literals.
package alertingtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/alerting/geofence"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

// Store is what an engine's read models offer the alerts.
type Store interface {
	alerting.RuleStore
	alerting.ScheduleStore
	alerting.EtaStore
	alerting.Sites
	alerting.PresenceStore
	// EraseEntity deletes every read-model row of an entity: its pending
	// checks and its presences too.
	EraseEntity(ctx context.Context, tenant, id string) error
	// Checkpoint reads a follower's checkpoint.
	Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error)
}

// Run runs the suite; open returns each subtest's store, fresh and empty.
// Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"RulesRoundTripPerTenant", testRules},
		{"ReplaceMovesTheGeneration", testReplace},
		{"DeleteRuleCancelsItsChecks", testDeleteRule},
		{"NewerCauseReplacesOlder", testNewerCause},
		{"ClaimInDueOrder", testClaimOrder},
		{"DoneKeepsRescheduledChecks", testDone},
		{"Cancel", testCancel},
		{"ErasureCancelsTheEntitysChecks", testErasure},
		{"EtaDecisionsOncePerPosition", testEtaDecisions},
		{"PresencesCommitWithTheCheckpoint", testPresenceCommit},
		{"PresencesOnlyWhileInsideOrPending", testPresenceKept},
		{"PresenceBatchErasesCancelsSchedules", testPresenceBatch},
		{"ErasureAndSiteDeletionForgetPresences", testPresenceForgotten},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func staleRule(tenant, id string) alerting.Rule {
	return alerting.Rule{Tenant: tenant, ID: id, Kind: alerting.KindStale, EntityTypes: []string{"shipment"},
		Statuses: []string{"in_transit"}, Levels: []time.Duration{24 * time.Hour, 48 * time.Hour},
		ExpireAfter: 30 * 24 * time.Hour, CreatedAt: t0, UpdatedAt: t0, Generation: 1}
}

func testRules(t *testing.T, s Store) {
	ctx := t.Context()
	a1, a2 := staleRule("acme", "r1"), staleRule("acme", "r2")
	a2.Kind, a2.Levels, a2.ExpireAfter, a2.Statuses = alerting.KindDelay, nil, 0, nil
	a2.Tolerance, a2.ETADelta = 0, 30*time.Minute
	g := staleRule("globex", "r3")
	g.Kind, g.Levels, g.ExpireAfter, g.After, g.SiteIDs = alerting.KindDwell, nil, 0, 6*time.Hour, []string{"yard-7"}
	for _, r := range []alerting.Rule{a2, g, a1} {
		if err := s.CreateRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []alerting.Rule{a1, a2, g} {
		got, err := s.Rule(ctx, want.Tenant, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rule %s:\n got %+v\nwant %+v", want.ID, got, want)
		}
	}
	if _, err := s.Rule(ctx, "globex", "r1"); !errors.Is(err, alerting.ErrNotFound) {
		t.Errorf("another tenant's rule: %v, want ErrNotFound", err)
	}
	page, err := s.Rules(ctx, "acme", "", 1)
	if err != nil || len(page) != 1 || page[0].ID != "r1" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page, err = s.Rules(ctx, "acme", "r1", 10)
	if err != nil || len(page) != 1 || page[0].ID != "r2" {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	if page, err = s.Rules(ctx, "initech", "", 10); err != nil || len(page) != 0 {
		t.Fatalf("a tenant without rules: %+v, %v", page, err)
	}
}

func testReplace(t *testing.T, s Store) {
	ctx := t.Context()
	r := staleRule("acme", "r1")
	if err := s.CreateRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	next := r
	next.Levels, next.Generation, next.UpdatedAt = []time.Duration{time.Hour}, 2, t0.Add(time.Minute)
	if ok, err := s.ReplaceRule(ctx, next); !ok || err != nil {
		t.Fatalf("replace: %v, %v", ok, err)
	}
	if ok, err := s.ReplaceRule(ctx, next); ok || err != nil {
		t.Fatalf("a replace from a generation that moved on: %v, %v; want false", ok, err)
	}
	got, err := s.Rule(ctx, "acme", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, next) {
		t.Errorf("replaced:\n got %+v\nwant %+v", got, next)
	}
	gone := staleRule("acme", "missing")
	gone.Generation = 2
	if _, err := s.ReplaceRule(ctx, gone); !errors.Is(err, alerting.ErrNotFound) {
		t.Errorf("replace a missing rule: %v, want ErrNotFound", err)
	}
}

func due(tenant, entity, rule, key string, at time.Time, position int64) alerting.Due {
	return alerting.Due{Tenant: tenant, EntityID: entity, RuleID: rule, Key: key, At: at,
		Cause:   alerting.Cause{EventID: fmt.Sprintf("event-%d", position), Position: position},
		Payload: json.RawMessage(fmt.Sprintf(`{"position":%d}`, position))}
}

// pending claims everything (without marking it done).
func pending(t *testing.T, s Store) []alerting.Due {
	t.Helper()
	got, err := s.Claim(t.Context(), t0.Add(1000*24*time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func expect(t *testing.T, what string, got, want []alerting.Due) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testDeleteRule(t *testing.T, s Store) {
	ctx := t.Context()
	for _, r := range []alerting.Rule{staleRule("acme", "r1"), staleRule("acme", "r2"), staleRule("globex", "r1")} {
		if err := s.CreateRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	keep1, keep2 := due("acme", "e1", "r2", "PT24H", t0, 1), due("globex", "e1", "r1", "PT24H", t0, 2)
	if err := s.Schedule(ctx, []alerting.Due{due("acme", "e1", "r1", "PT24H", t0, 1), keep1, keep2}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRule(ctx, "acme", "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rule(ctx, "acme", "r1"); !errors.Is(err, alerting.ErrNotFound) {
		t.Errorf("deleted rule: %v, want ErrNotFound", err)
	}
	if _, err := s.Rule(ctx, "globex", "r1"); err != nil {
		t.Errorf("another tenant's rule of the same id: %v", err)
	}
	if err := s.DeleteRule(ctx, "acme", "r1"); !errors.Is(err, alerting.ErrNotFound) {
		t.Errorf("delete again: %v, want ErrNotFound", err)
	}
	expect(t, "pending after the delete", pending(t, s), []alerting.Due{keep1, keep2})
}

func testNewerCause(t *testing.T, s Store) {
	ctx := t.Context()
	first := due("acme", "e1", "r1", "PT24H", t0.Add(24*time.Hour), 10)
	if err := s.Schedule(ctx, []alerting.Due{first}); err != nil {
		t.Fatal(err)
	}
	newer := due("acme", "e1", "r1", "PT24H", t0.Add(30*time.Hour), 20)
	older := due("acme", "e1", "r1", "PT24H", t0.Add(25*time.Hour), 15)
	if err := s.Schedule(ctx, []alerting.Due{newer}); err != nil {
		t.Fatal(err)
	}
	if err := s.Schedule(ctx, []alerting.Due{older}); err != nil {
		t.Fatal(err)
	}
	expect(t, "after a newer cause then an older one", pending(t, s), []alerting.Due{newer})
	// One call naming one check twice keeps the newest.
	newest := due("acme", "e1", "r1", "PT24H", t0.Add(31*time.Hour), 30)
	if err := s.Schedule(ctx, []alerting.Due{newest, due("acme", "e1", "r1", "PT24H", t0.Add(40*time.Hour), 25)}); err != nil {
		t.Fatal(err)
	}
	expect(t, "after one call naming the check twice", pending(t, s), []alerting.Due{newest})
	// The same cause again (a replay) is the same check.
	if err := s.Schedule(ctx, []alerting.Due{newest}); err != nil {
		t.Fatal(err)
	}
	expect(t, "after a replay", pending(t, s), []alerting.Due{newest})
	// A null payload.
	bare := alerting.Due{Tenant: "acme", EntityID: "e2", RuleID: "r1", Key: "k", At: t0, Cause: alerting.Cause{EventID: "x", Position: 1}}
	if err := s.Schedule(ctx, []alerting.Due{bare}); err != nil {
		t.Fatal(err)
	}
	bare.Payload = json.RawMessage("null")
	expect(t, "with a bare check", pending(t, s), []alerting.Due{bare, newest})
}

func testClaimOrder(t *testing.T, s Store) {
	ctx := t.Context()
	if _, ok, err := s.Next(ctx); ok || err != nil {
		t.Fatalf("next of an empty schedule: %v, %v", ok, err)
	}
	a := due("globex", "e9", "r1", "PT24H", t0.Add(time.Hour), 1)
	b := due("acme", "e1", "r1", "PT48H", t0.Add(2*time.Hour), 2)
	c := due("acme", "e1", "r1", "PT24H", t0.Add(2*time.Hour), 2)
	d := due("acme", "e2", "r1", "PT24H", t0.Add(3*time.Hour), 3)
	late := due("acme", "e3", "r1", "PT24H", t0.Add(3*time.Hour+time.Microsecond), 4)
	// 201 checks: more than one statement's worth.
	var many []alerting.Due
	for i := range 201 {
		many = append(many, due("initech", fmt.Sprintf("e%03d", i), "r1", "k", t0.Add(100*time.Hour), int64(i)))
	}
	if err := s.Schedule(ctx, append([]alerting.Due{late, d, c, b, a}, many...)); err != nil {
		t.Fatal(err)
	}
	next, ok, err := s.Next(ctx)
	if err != nil || !ok || !next.Equal(a.At) {
		t.Fatalf("next: %v %v %v, want %v", next, ok, err, a.At)
	}
	got, err := s.Claim(ctx, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "claim before anything is due", got, nil)
	if got, err = s.Claim(ctx, t0.Add(3*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	expect(t, "claim at 3h", got, []alerting.Due{a, c, b, d})
	if got, err = s.Claim(ctx, t0.Add(3*time.Hour), 2); err != nil {
		t.Fatal(err)
	}
	expect(t, "claim 2 at 3h", got, []alerting.Due{a, c})
	if got, err = s.Claim(ctx, t0.Add(100*time.Hour), 1000); err != nil {
		t.Fatal(err)
	}
	if len(got) != 206 {
		t.Fatalf("claimed %d checks, want 206", len(got))
	}
	if err := s.Done(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Next(ctx); ok || err != nil {
		t.Fatalf("next after all is done: %v, %v", ok, err)
	}
}

func testDone(t *testing.T, s Store) {
	ctx := t.Context()
	a := due("acme", "e1", "r1", "PT24H", t0, 1)
	b := due("acme", "e2", "r1", "PT24H", t0, 1)
	if err := s.Schedule(ctx, []alerting.Due{a, b}); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "claimed", claimed, []alerting.Due{a, b})
	// While they are handled, a newer event reschedules e2's check.
	b2 := due("acme", "e2", "r1", "PT24H", t0.Add(24*time.Hour), 5)
	if err := s.Schedule(ctx, []alerting.Due{b2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	expect(t, "pending after done", pending(t, s), []alerting.Due{b2})
	// Done twice is harmless.
	if err := s.Done(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	expect(t, "pending after done twice", pending(t, s), []alerting.Due{b2})
}

func testCancel(t *testing.T, s Store) {
	ctx := t.Context()
	e1r1 := due("acme", "e1", "r1", "PT24H", t0, 1)
	e1r1b := due("acme", "e1", "r1", "PT48H", t0.Add(time.Hour), 1)
	e1r2 := due("acme", "e1", "r2", "PT24H", t0.Add(2*time.Hour), 1)
	e2r1 := due("acme", "e2", "r1", "PT24H", t0.Add(3*time.Hour), 1)
	other := due("globex", "e1", "r1", "PT24H", t0.Add(4*time.Hour), 1)
	if err := s.Schedule(ctx, []alerting.Due{e1r1, e1r1b, e1r2, e2r1, other}); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, "acme", "e1", "r1"); err != nil {
		t.Fatal(err)
	}
	expect(t, "after cancelling e1's r1", pending(t, s), []alerting.Due{e1r2, e2r1, other})
	if err := s.Cancel(ctx, "acme", "e1", ""); err != nil {
		t.Fatal(err)
	}
	expect(t, "after cancelling e1's every rule", pending(t, s), []alerting.Due{e2r1, other})
}

func testErasure(t *testing.T, s Store) {
	ctx := t.Context()
	erased := due("acme", "e1", "r1", "PT24H", t0, 1)
	kept := []alerting.Due{due("acme", "e2", "r1", "PT24H", t0.Add(time.Hour), 1), due("globex", "e1", "r1", "PT24H", t0.Add(2*time.Hour), 1)}
	if err := s.Schedule(ctx, append([]alerting.Due{erased}, kept...)); err != nil {
		t.Fatal(err)
	}
	if err := s.EraseEntity(ctx, "acme", "e1"); err != nil {
		t.Fatal(err)
	}
	expect(t, "after erasing acme's e1", pending(t, s), kept)
}

func testEtaDecisions(t *testing.T, s Store) {
	ctx := t.Context()
	eta := t0.Add(48*time.Hour + 123456*time.Microsecond)
	decisions := func(tenant, entity string, position int64, want alerting.EtaDecisions) {
		t.Helper()
		got, err := s.EtaDecisions(ctx, tenant, entity, position)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decisions of %s/%s at %d:\n got %+v (last %+v)\nwant %+v (last %+v)", tenant, entity, position, got, got.Last, want, want.Last)
		}
	}
	decide := func(from, position int64, announced bool, eta *time.Time, want bool) {
		t.Helper()
		ok, err := s.DecideEta(ctx, "acme", "e1", from, position, announced, eta)
		if err != nil || ok != want {
			t.Fatalf("decide %d from %d: %v, %v; want %v", position, from, ok, err, want)
		}
	}
	decisions("acme", "e1", 10, alerting.EtaDecisions{})
	decide(0, 10, true, &eta, true)
	decide(0, 10, true, &eta, false) // decided meanwhile
	decisions("acme", "e1", 10, alerting.EtaDecisions{Decided: 10, Announced: true})
	decide(10, 20, false, &eta, true)
	first := &alerting.EtaAnnouncement{Position: 10, ETA: &eta}
	decisions("acme", "e1", 20, alerting.EtaDecisions{Decided: 20, Last: first})
	decide(20, 30, true, nil, true) // withdrawn
	decide(20, 40, true, &eta, false)
	decisions("acme", "e1", 30, alerting.EtaDecisions{Decided: 30, Announced: true, Last: first})
	decisions("acme", "e1", 25, alerting.EtaDecisions{Decided: 30, Last: first})
	decisions("acme", "e1", 40, alerting.EtaDecisions{Decided: 30, Last: &alerting.EtaAnnouncement{Position: 30}})
	decisions("globex", "e1", 40, alerting.EtaDecisions{})
	decisions("acme", "e2", 40, alerting.EtaDecisions{})
	if err := s.EraseEntity(ctx, "acme", "e1"); err != nil {
		t.Fatal(err)
	}
	decisions("acme", "e1", 40, alerting.EtaDecisions{})
}

func presence(tenant, entity, site string, inside bool, pending int, lastFix time.Time) alerting.SitePresence {
	p := alerting.SitePresence{Tenant: tenant, EntityID: entity, SiteID: site,
		Presence: geofence.Presence{Inside: inside, Pending: pending, LastFix: lastFix}}
	if pending > 0 {
		p.PendingSince = lastFix.Add(-time.Minute)
	}
	if inside {
		p.VisitEventID, p.ArrivedAt = "event-"+entity+"-"+site, lastFix.Add(-time.Hour)
	}
	return p
}

func presences(t *testing.T, s Store, tenant string, entities ...string) []alerting.SitePresence {
	t.Helper()
	got, err := s.Presences(t.Context(), tenant, entities)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func expectPresences(t *testing.T, what string, got, want []alerting.SitePresence) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func commit(t *testing.T, s Store, from, to int64, b alerting.PresenceBatch) {
	t.Helper()
	if err := s.CommitPresences(t.Context(), alerting.Checkpoint, eventstore.Cursor{Position: from}, eventstore.Cursor{Position: to}, b); err != nil {
		t.Fatal(err)
	}
}

// Presences are stored with the move of the checkpoint, or not at all.
func testPresenceCommit(t *testing.T, s Store) {
	ctx := t.Context()
	in := presence("acme", "e1", "yard", true, 0, t0)
	arriving := presence("acme", "e1", "gate", false, 1, t0)
	leaving := presence("acme", "e2", "yard", true, 1, t0.Add(time.Minute))
	other := presence("globex", "e1", "yard", true, 0, t0)
	dwell := due("acme", "e1", "r1", "dwell/yard", t0.Add(6*time.Hour), 7)
	commit(t, s, 0, 10, alerting.PresenceBatch{Presences: []alerting.SitePresence{leaving, in, other, arriving}, Schedule: []alerting.Due{dwell}})
	expectPresences(t, "acme's", presences(t, s, "acme", "e1", "e2", "e3"), []alerting.SitePresence{arriving, in, leaving})
	expectPresences(t, "globex's", presences(t, s, "globex", "e1"), []alerting.SitePresence{other})
	expectPresences(t, "e2's", presences(t, s, "acme", "e2"), []alerting.SitePresence{leaving})
	expect(t, "scheduled with the presences", pending(t, s), []alerting.Due{dwell})
	if cp, err := s.Checkpoint(ctx, alerting.Checkpoint); err != nil || cp.Cursor != (eventstore.Cursor{Position: 10}) {
		t.Fatalf("checkpoint %+v, %v; want at 10", cp, err)
	}

	// A batch evaluated from a checkpoint that moved meanwhile stores
	// nothing.
	moved := presence("acme", "e1", "yard", false, 0, t0.Add(time.Hour))
	err := s.CommitPresences(ctx, alerting.Checkpoint, eventstore.Cursor{Position: 5}, eventstore.Cursor{Position: 20},
		alerting.PresenceBatch{Presences: []alerting.SitePresence{moved}, Cancel: []alerting.DueKey{{Tenant: "acme", EntityID: "e1", Key: "dwell/yard"}}})
	if !errors.Is(err, projection.ErrCheckpointMoved) {
		t.Fatalf("commit from a moved checkpoint: %v, want ErrCheckpointMoved", err)
	}
	expectPresences(t, "after a refused commit", presences(t, s, "acme", "e1", "e2"), []alerting.SitePresence{arriving, in, leaving})
	expect(t, "after a refused commit", pending(t, s), []alerting.Due{dwell})
	if cp, _ := s.Checkpoint(ctx, alerting.Checkpoint); cp.Cursor != (eventstore.Cursor{Position: 10}) {
		t.Fatalf("a refused commit moved the checkpoint to %+v", cp.Cursor)
	}
}

// A presence outside with nothing pending is no row: storing one deletes
// the row.
func testPresenceKept(t *testing.T, s Store) {
	in := presence("acme", "e1", "yard", true, 0, t0)
	pendingOut := presence("acme", "e1", "gate", true, 1, t0)
	commit(t, s, 0, 1, alerting.PresenceBatch{Presences: []alerting.SitePresence{in, pendingOut,
		presence("acme", "e2", "yard", false, 0, t0)}})
	expectPresences(t, "stored", presences(t, s, "acme", "e1", "e2"), []alerting.SitePresence{pendingOut, in})
	left := presence("acme", "e1", "gate", false, 0, t0.Add(time.Minute))
	in.LastFix = t0.Add(time.Minute)
	commit(t, s, 1, 2, alerting.PresenceBatch{Presences: []alerting.SitePresence{left, in}})
	expectPresences(t, "after leaving the gate", presences(t, s, "acme", "e1", "e2"), []alerting.SitePresence{in})
	if got := presences(t, s, "acme"); len(got) != 0 {
		t.Errorf("no entities asked for, got %+v", got)
	}
}

// A batch's erasures go first, its cancellations before its checks.
func testPresenceBatch(t *testing.T, s Store) {
	commit(t, s, 0, 1, alerting.PresenceBatch{
		Presences: []alerting.SitePresence{presence("acme", "e1", "yard", true, 0, t0), presence("acme", "e1", "gate", true, 0, t0),
			presence("acme", "e2", "yard", true, 0, t0)},
		Schedule: []alerting.Due{due("acme", "e1", "r1", "dwell/yard", t0, 1), due("acme", "e1", "r2", "dwell/yard", t0, 1),
			due("acme", "e1", "r1", "dwell/gate", t0, 1), due("acme", "e2", "r1", "dwell/yard", t0, 1)},
	})
	reborn := presence("acme", "e1", "depot", false, 1, t0.Add(time.Hour))
	again := due("acme", "e2", "r1", "dwell/yard", t0.Add(2*time.Hour), 5)
	commit(t, s, 1, 2, alerting.PresenceBatch{
		Erased:    []alerting.EntityRef{{Tenant: "acme", EntityID: "e1"}},
		Presences: []alerting.SitePresence{reborn},
		Cancel:    []alerting.DueKey{{Tenant: "acme", EntityID: "e1", Key: "dwell/yard"}, {Tenant: "acme", EntityID: "e2", Key: "dwell/yard"}},
		Schedule:  []alerting.Due{again},
	})
	expectPresences(t, "e1 after its erasure", presences(t, s, "acme", "e1"), []alerting.SitePresence{reborn})
	expect(t, "checks", pending(t, s), []alerting.Due{due("acme", "e1", "r1", "dwell/gate", t0, 1), again})
}

// Erasing an entity forgets its presences; deleting a site forgets the
// presences at it.
func testPresenceForgotten(t *testing.T, s Store) {
	ctx := t.Context()
	for _, site := range []string{"yard", "gate"} {
		if _, err := s.PutSite(ctx, alerting.Site{Tenant: "acme", ID: site, Geometry: json.RawMessage(`{}`), UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	e1yard, e1gate := presence("acme", "e1", "yard", true, 0, t0), presence("acme", "e1", "gate", true, 0, t0)
	e2yard, e2gate := presence("acme", "e2", "yard", true, 0, t0), presence("acme", "e2", "gate", false, 1, t0)
	other := presence("globex", "e1", "yard", true, 0, t0)
	commit(t, s, 0, 1, alerting.PresenceBatch{Presences: []alerting.SitePresence{e1yard, e1gate, e2yard, e2gate, other}})
	if err := s.EraseEntity(ctx, "acme", "e1"); err != nil {
		t.Fatal(err)
	}
	expectPresences(t, "after erasing e1", presences(t, s, "acme", "e1", "e2"), []alerting.SitePresence{e2gate, e2yard})
	if err := s.DeleteSite(ctx, "acme", "yard"); err != nil {
		t.Fatal(err)
	}
	expectPresences(t, "after deleting the yard", presences(t, s, "acme", "e2"), []alerting.SitePresence{e2gate})
	expectPresences(t, "globex's", presences(t, s, "globex", "e1"), []alerting.SitePresence{other})
}
