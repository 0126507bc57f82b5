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
)

// Store is what an engine's read models offer the alerts.
type Store interface {
	alerting.RuleStore
	alerting.ScheduleStore
	alerting.EtaStore
	// EraseEntity deletes every read-model row of an entity: its pending
	// checks too.
	EraseEntity(ctx context.Context, tenant, id string) error
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
