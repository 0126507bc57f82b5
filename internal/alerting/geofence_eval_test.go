package alerting_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Real-world sites, as GeoJSON ([longitude, latitude]).
const (
	// The container terminals of Maasvlakte, Port of Rotterdam; the
	// southern edge runs along latitude 51.94 (0.00009° is 10 m).
	maasvlakteSite = `{"type": "Polygon", "coordinates": [[[3.9950, 51.9620], [4.0050, 51.9400], [4.0400, 51.9400],
		[4.0620, 51.9500], [4.0550, 51.9680], [4.0180, 51.9780], [3.9950, 51.9620]]]}`
	// Taveuni, Fiji, one ring crossing the 180th meridian.
	taveuniSite = `{"type": "Polygon", "coordinates": [[[179.85, -16.70], [-179.85, -16.70], [-179.85, -17.05],
		[179.85, -17.05], [179.85, -16.70]]]}`
	// A yard of the Altenwerder terminal, Hamburg, without its workshop
	// building (the hole, 99 m from its walls at its middle).
	altenwerderSite = `{"type": "Polygon", "coordinates": [
		[[9.9200, 53.5000], [9.9350, 53.5000], [9.9350, 53.5070], [9.9200, 53.5070], [9.9200, 53.5000]],
		[[9.9260, 53.5020], [9.9260, 53.5040], [9.9290, 53.5040], [9.9290, 53.5020], [9.9260, 53.5020]]]}`
)

// Positions (latitude, longitude).
var (
	northSea      = [2]float64{51.9600, 3.9000}
	mvIn10        = [2]float64{51.94009, 4.0200} // 10 m inside the southern edge: jitter
	mvOut10       = [2]float64{51.93991, 4.0200}
	mvIn100       = [2]float64{51.9409, 4.0200}
	mvOut200      = [2]float64{51.9382, 4.0200}
	mvCentre      = [2]float64{51.9580, 4.0300}
	suva          = [2]float64{-18.1416, 178.4419}
	taveuniWest   = [2]float64{-16.85, 179.95}
	taveuniEast   = [2]float64{-16.85, -179.95}
	taveuniMiddle = [2]float64{-16.85, 179.9999}
	yard          = [2]float64{53.5010, 9.9230}
	building      = [2]float64{53.5030, 9.9275} // in the hole
)

func (e *staleEnv) putSite(id, name, geometry string) {
	e.t.Helper()
	if _, _, err := e.sites.Put(e.ctx, "acme", id, name, json.RawMessage(geometry)); err != nil {
		e.t.Fatal(err)
	}
}

// fix records a position fix of an entity at a time and returns its id.
func (e *staleEnv) fix(entity string, pos [2]float64, at time.Time) uuid.UUID {
	e.t.Helper()
	data, _ := json.Marshal(tracking.LocationReported{Lat: pos[0], Lon: pos[1]})
	id := uuid.New()
	out := e.svc.RecordBatch(e.ctx, []tracking.RecordCommand{{Tenant: "acme", EntityID: entity, EntityType: "container",
		Expected: eventstore.Any, Events: []tracking.NewEvent{{ID: id, Type: tracking.TypeLocationReported, OccurredAt: at, Data: data}}}})
	if out[0].Err != nil {
		e.t.Fatal(out[0].Err)
	}
	return id
}

// milestones returns the milestones the rules derived for an entity.
func (e *staleEnv) milestones(entity string) []eventstore.Recorded {
	e.t.Helper()
	evs, err := e.store.ReadStream(e.ctx, "acme", entity, 1, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []eventstore.Recorded
	for _, r := range evs {
		if r.Metadata.Source == alerting.Source && r.Type == tracking.TypeMilestoneReached {
			out = append(out, r)
		}
	}
	return out
}

// caughtUp waits until the rules' follower has evaluated the whole log.
func (e *staleEnv) caughtUp() {
	e.t.Helper()
	waitUntil(e.t, "the alerts' follower at the head of the log", func() bool {
		evs, err := e.store.ReadAll(e.ctx, eventstore.Cursor{}, 100000)
		if err != nil || len(evs) == 0 {
			return false
		}
		cp, err := e.views.Checkpoint(e.ctx, alerting.Checkpoint)
		return err == nil && cp.Cursor == evs[len(evs)-1].Cursor
	})
}

// replay moves the rules' follower back to the beginning of the log and
// waits until it evaluated it all again.
func (e *staleEnv) replay() {
	e.t.Helper()
	e.caughtUp()
	cp, err := e.views.Checkpoint(e.ctx, alerting.Checkpoint)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.views.MoveCheckpoint(e.ctx, alerting.Checkpoint, cp.Cursor, eventstore.Cursor{}); err != nil {
		e.t.Fatal(err)
	}
	e.caughtUp()
	time.Sleep(100 * time.Millisecond) // what it recorded, it recorded before moving
}

type visit struct {
	milestone, site string
	cause           uuid.UUID
	at              time.Time
	pos             [2]float64
}

func (e *staleEnv) expectVisits(entity string, want []visit) {
	e.t.Helper()
	got := e.milestones(entity)
	if len(got) != len(want) {
		var seen []string
		for _, r := range got {
			seen = append(seen, string(r.Data)+" caused by "+r.Metadata.CausationID)
		}
		e.t.Fatalf("%s: %d milestones derived, want %d:\n%s", entity, len(got), len(want), strings.Join(seen, "\n"))
	}
	for i, r := range got {
		var m tracking.MilestoneReached
		if err := json.Unmarshal(r.Data, &m); err != nil {
			e.t.Fatal(err)
		}
		w := want[i]
		if m.Milestone != w.milestone || m.SiteID != w.site || r.Metadata.CausationID != w.cause.String() || !r.OccurredAt.Equal(w.at) ||
			m.Location == nil || m.Location.Lat != w.pos[0] || m.Location.Lon != w.pos[1] {
			e.t.Errorf("%s: milestone %d is %+v (%s, caused by %s), want %+v", entity, i, m, r.OccurredAt, r.Metadata.CausationID, w)
		}
	}
}

// Issue 19, Done when 2: entering and leaving real-world sites derive one
// arrived and one departed milestone whatever the GPS jitter at the edge;
// a site across the 180th meridian is one site; a fix in a yard's excluded
// building is outside it; a tenant without rules gets its sites evaluated;
// evaluating the log again derives nothing twice.
func TestGeofenceArrivalsAndDepartures(t *testing.T) {
	e := newStaleEnv(t, filepath.Join(t.TempDir(), "geofence.db"))
	e.putSite("maasvlakte", "Maasvlakte terminals", maasvlakteSite)
	e.putSite("taveuni", "Taveuni", taveuniSite)
	e.putSite("altenwerder-yard", "Altenwerder yard 4", altenwerderSite)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

	// At Maasvlakte's edge the fixes wander either side of it.
	var mv []uuid.UUID
	for i, pos := range [][2]float64{northSea, mvIn10, mvOut10, mvIn10, mvIn100, mvIn10, mvIn100, mvIn100, // arrives at 7
		mvOut10, mvIn10, mvOut200, mvIn100, mvOut200, mvOut200, mvIn10} { // leaves at 13
		mv = append(mv, e.fix("TRK-1", pos, at(i)))
	}
	var tv []uuid.UUID
	for i, pos := range [][2]float64{suva, taveuniWest, taveuniEast, taveuniMiddle, suva, suva} {
		tv = append(tv, e.fix("TRK-2", pos, at(i)))
	}
	var yd []uuid.UUID
	for i, pos := range [][2]float64{building, building, building, yard, yard, building, building} {
		yd = append(yd, e.fix("TRK-3", pos, at(i)))
	}
	stay := []uuid.UUID{e.fix("TRK-4", mvCentre, at(0)), e.fix("TRK-4", mvCentre, at(1))}
	e.caughtUp()

	check := func() {
		t.Helper()
		e.expectVisits("TRK-1", []visit{{tracking.MilestoneArrived, "maasvlakte", mv[7], at(7), mvIn100},
			{tracking.MilestoneDeparted, "maasvlakte", mv[13], at(13), mvOut200}})
		e.expectVisits("TRK-2", []visit{{tracking.MilestoneArrived, "taveuni", tv[2], at(2), taveuniEast},
			{tracking.MilestoneDeparted, "taveuni", tv[5], at(5), suva}})
		e.expectVisits("TRK-3", []visit{{tracking.MilestoneArrived, "altenwerder-yard", yd[4], at(4), yard},
			{tracking.MilestoneDeparted, "altenwerder-yard", yd[6], at(6), building}})
		e.expectVisits("TRK-4", []visit{{tracking.MilestoneArrived, "maasvlakte", stay[1], at(1), mvCentre}})
	}
	check()
	state, err := e.svc.Entity(e.ctx, "acme", "TRK-4")
	if err != nil {
		t.Fatal(err)
	}
	if state.LastLocation == nil || state.LastLocation.SiteID != "maasvlakte" {
		t.Errorf("TRK-4's last location %+v, want at maasvlakte", state.LastLocation)
	}

	// The whole log evaluated again: nothing is derived twice, whether the
	// entity is still inside (TRK-4) or has left.
	e.replay()
	check()
	// And a new fix goes on from where it was.
	e.fix("TRK-4", northSea, at(30))
	back := e.fix("TRK-4", northSea, at(31))
	waitUntil(t, "TRK-4's departure", func() bool { return len(e.milestones("TRK-4")) == 2 })
	e.expectVisits("TRK-4", []visit{{tracking.MilestoneArrived, "maasvlakte", stay[1], at(1), mvCentre},
		{tracking.MilestoneDeparted, "maasvlakte", back, at(31), northSea}})
}

// Issue 19, the dwell rule: a visit longer than the rule's After raises a
// "dwell" exception at the threshold, not before, and leaving resolves
// it; a visit that ends earlier raises nothing; evaluating the log again
// derives nothing twice.
func TestDwellRuleRaisesAtThresholdAndResolvesOnDeparture(t *testing.T) {
	// The schedule's clock is 10 minutes after the first fix, which is in
	// the past: what it derives must not be in the future.
	base := time.Now().Add(-4 * time.Hour).UTC().Truncate(time.Second)
	e := newEnvAt(t, filepath.Join(t.TempDir(), "dwell.db"), base.Add(10*time.Minute))
	e.putSite("altenwerder-yard", "Altenwerder yard 4", altenwerderSite)
	e.putSite("maasvlakte", "Maasvlakte terminals", maasvlakteSite)
	after := "PT1H"
	if _, err := e.rules.Create(e.ctx, "acme", alerting.Definition{Kind: alerting.KindDwell, After: &after,
		SiteIDs: []string{"altenwerder-yard"}}); err != nil {
		t.Fatal(err)
	}
	at := func(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }
	raisedCount := func() int { raised, _ := e.derived("TRK-9"); return len(raised) }

	e.fix("TRK-9", building, at(0))
	e.fix("TRK-9", yard, at(1))
	arrival := e.fix("TRK-9", yard, at(2)) // arrives: due at 62
	// Out of the rule's sites: no check.
	e.fix("TRK-8", mvCentre, at(0))
	e.fix("TRK-8", mvCentre, at(1))
	waitUntil(t, "the arrival", func() bool { return len(e.milestones("TRK-9")) == 1 })
	e.caughtUp()
	e.clock.Advance(45 * time.Minute) // at 55
	time.Sleep(300 * time.Millisecond)
	if n := raisedCount(); n != 0 {
		t.Fatalf("%d exceptions raised before the threshold", n)
	}
	e.clock.Advance(10 * time.Minute) // at 65
	waitUntil(t, "the dwell exception", func() bool { return raisedCount() == 1 })
	raised, _ := e.derived("TRK-9")
	var x tracking.ExceptionRaised
	json.Unmarshal(raised[0].Data, &x)
	if x.Code != tracking.ExceptionDwell || !strings.Contains(x.Description, "Altenwerder yard 4") || !strings.Contains(x.Description, "PT1H") ||
		raised[0].Metadata.CausationID != arrival.String() || !raised[0].OccurredAt.Equal(at(62)) {
		t.Fatalf("raised %+v at %s caused by %s", x, raised[0].OccurredAt, raised[0].Metadata.CausationID)
	}

	// Leaving resolves it.
	e.fix("TRK-9", building, at(66))
	e.fix("TRK-9", building, at(67))
	waitUntil(t, "the resolution", func() bool { _, resolved := e.derived("TRK-9"); return len(resolved) == 1 })
	_, resolved := e.derived("TRK-9")
	var y tracking.ExceptionResolved
	json.Unmarshal(resolved[0].Data, &y)
	if y.ExceptionID != x.ExceptionID {
		t.Fatalf("resolved %+v, want %s", y, x.ExceptionID)
	}

	// A visit shorter than an hour raises nothing: leaving cancels its check.
	e.clock.Advance(20 * time.Minute) // at 85: the service refuses fixes from the future
	e.fix("TRK-9", yard, at(70))
	e.fix("TRK-9", yard, at(71))
	e.fix("TRK-9", building, at(80))
	e.fix("TRK-9", building, at(81))
	waitUntil(t, "the second visit", func() bool { return len(e.milestones("TRK-9")) == 4 })
	e.caughtUp()
	if _, ok, err := e.views.Next(e.ctx); err != nil || ok {
		t.Fatalf("checks pending after every visit ended: %v, %v", ok, err)
	}
	e.clock.Advance(3 * time.Hour)
	time.Sleep(300 * time.Millisecond)

	// The whole log evaluated again derives nothing twice (the first
	// visit's check, scheduled again, finds the visit over).
	e.replay()
	e.clock.Advance(time.Minute)
	time.Sleep(300 * time.Millisecond)
	raised, resolved = e.derived("TRK-9")
	if len(raised) != 1 || len(resolved) != 1 || len(e.milestones("TRK-9")) != 4 || len(e.milestones("TRK-8")) != 1 {
		t.Fatalf("after a replay: %d raised, %d resolved, %d and %d milestones; want 1, 1, 4, 1",
			len(raised), len(resolved), len(e.milestones("TRK-9")), len(e.milestones("TRK-8")))
	}
	state, err := e.svc.Entity(e.ctx, "acme", "TRK-9")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.OpenExceptions) != 0 {
		t.Fatalf("open exceptions: %+v", state.OpenExceptions)
	}
}
