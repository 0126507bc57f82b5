package projectiontest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/tracking"
)

// associate and dissociate put an entity into, or take it out of, a parent.
func associate(parent string, t time.Time) tracking.NewEvent {
	return ev(tracking.TypeEntityAssociated, t, fmt.Sprintf(`{"parentId":%q}`, parent))
}

func dissociate(parent string, t time.Time) tracking.NewEvent {
	return ev(tracking.TypeEntityDissociated, t, fmt.Sprintf(`{"parentId":%q}`, parent))
}

// childrenData: 15 events. By the newest association (occurredAt) not
// undone by a newer dissociation: CNT-C1 holds PKG-C1, PKG-C2 (delivered)
// and PKG-C6 (a dissociation older than its association); PKG-C3 was taken
// out again; PKG-C4 moved to CNT-C2; PKG-C5's association with CNT-C1
// arrived late and is older than its association with CNT-C2. CNT-C1 is on
// VEH-C1 (its children are CNT-C1 alone, not what CNT-C1 holds). globex's
// PKG-C8 is in globex's CNT-C1.
func childrenData() []step {
	return []step{
		{acme, "CNT-C1", tracking.EntityContainer, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(7, 0), `{}`),
			associate("VEH-C1", at(7, 30)),
		}},
		{acme, "PKG-C1", tracking.EntityPackage, []tracking.NewEvent{associate("CNT-C1", at(8, 0))}},
		{acme, "PKG-C2", tracking.EntityPackage, []tracking.NewEvent{
			associate("CNT-C1", at(8, 5)),
			milestone(tracking.MilestoneDelivered, at(8, 6), time.Time{}),
		}},
		{acme, "PKG-C3", tracking.EntityPackage, []tracking.NewEvent{associate("CNT-C1", at(8, 10))}},
		{acme, "PKG-C4", tracking.EntityPackage, []tracking.NewEvent{associate("CNT-C1", at(8, 0))}},
		{acme, "PKG-C3", "", []tracking.NewEvent{dissociate("CNT-C1", at(8, 20))}},
		{acme, "PKG-C5", tracking.EntityPackage, []tracking.NewEvent{associate("CNT-C2", at(9, 0))}},
		{acme, "PKG-C4", "", []tracking.NewEvent{associate("CNT-C2", at(8, 30))}},
		{acme, "PKG-C5", "", []tracking.NewEvent{associate("CNT-C1", at(8, 50))}}, // late: older than CNT-C2's
		{acme, "PKG-C6", tracking.EntityPackage, []tracking.NewEvent{
			dissociate("CNT-C1", at(7, 0)),
			associate("CNT-C1", at(8, 0)),
		}},
		{globex, "PKG-C8", tracking.EntityPackage, []tracking.NewEvent{associate("CNT-C1", at(8, 0))}},
		{acme, "VEH-C1", tracking.EntityVehicle, []tracking.NewEvent{ev(tracking.TypeEntityRegistered, at(7, 0), `{}`)}},
	}
}

// testChildren: the children of an entity are the entities whose current
// parent it is, by entity id, paged, with the other filters; they follow
// later associations and dissociations; a rebuild and a fold from scratch
// give the same tables.
func testChildren(t *testing.T, e *env) {
	e.record(childrenData())
	e.catchUp(e.mgr)
	e.wantRows(map[string]int{"rm_timeline": 15, "rm_entities": 9})

	cases := []struct {
		name  string
		q     tracking.EntityQuery
		pages [][]string
	}{
		{"container's children", tracking.EntityQuery{Tenant: acme, Parent: "CNT-C1", Limit: 10},
			[][]string{{"PKG-C1", "PKG-C2", "PKG-C6"}}},
		{"by 2", tracking.EntityQuery{Tenant: acme, Parent: "CNT-C1", Limit: 2},
			[][]string{{"PKG-C1", "PKG-C2"}, {"PKG-C6"}}},
		{"after a cursor", tracking.EntityQuery{Tenant: acme, Parent: "CNT-C1", After: "PKG-C1", Limit: 10},
			[][]string{{"PKG-C2", "PKG-C6"}}},
		{"delivered children", tracking.EntityQuery{Tenant: acme, Parent: "CNT-C1", Status: tracking.StatusDelivered, Limit: 10},
			[][]string{{"PKG-C2"}}},
		{"the other container", tracking.EntityQuery{Tenant: acme, Parent: "CNT-C2", Limit: 10},
			[][]string{{"PKG-C4", "PKG-C5"}}},
		{"the vehicle holds the container, not its packages", tracking.EntityQuery{Tenant: acme, Parent: "VEH-C1", Limit: 10},
			[][]string{{"CNT-C1"}}},
		{"the vehicle's containers", tracking.EntityQuery{Tenant: acme, Parent: "VEH-C1", EntityType: tracking.EntityContainer, Limit: 10},
			[][]string{{"CNT-C1"}}},
		{"the vehicle's packages", tracking.EntityQuery{Tenant: acme, Parent: "VEH-C1", EntityType: tracking.EntityPackage, Limit: 10},
			[][]string{{}}},
		{"a package has none", tracking.EntityQuery{Tenant: acme, Parent: "PKG-C1", Limit: 10}, [][]string{{}}},
		{"an unknown parent has none", tracking.EntityQuery{Tenant: acme, Parent: "NOPE", Limit: 10}, [][]string{{}}},
		{"another tenant's container", tracking.EntityQuery{Tenant: globex, Parent: "CNT-C1", Limit: 10},
			[][]string{{"PKG-C8"}}},
		{"initech's", tracking.EntityQuery{Tenant: initech, Parent: "CNT-C1", Limit: 10}, [][]string{{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := entityPages(t, e, tc.q); !reflect.DeepEqual(got, tc.pages) {
				t.Fatalf("pages = %v, want %v", got, tc.pages)
			}
		})
	}
	page, err := e.rm.ListEntities(e.ctx, tracking.EntityQuery{Tenant: acme, Parent: "CNT-C1", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range page.Items {
		if it.ParentID != "CNT-C1" || !sameState(it, e.entity(acme, it.EntityID)) {
			t.Errorf("child %+v, want the entity's state, inside CNT-C1", it)
		}
	}

	// PKG-C1 is taken out, PKG-C3 put back, PKG-C2 moved (a dissociation
	// of another parent changes nothing).
	e.record([]step{
		{acme, "PKG-C1", "", []tracking.NewEvent{dissociate("CNT-C1", at(10, 0))}},
		{acme, "PKG-C3", "", []tracking.NewEvent{associate("CNT-C1", at(10, 0))}},
		{acme, "PKG-C6", "", []tracking.NewEvent{dissociate("CNT-C2", at(10, 0))}},
		{acme, "PKG-C2", "", []tracking.NewEvent{associate("CNT-C2", at(10, 0))}},
	})
	e.catchUp(e.mgr)
	for parent, want := range map[string][][]string{
		"CNT-C1": {{"PKG-C3", "PKG-C6"}},
		"CNT-C2": {{"PKG-C2", "PKG-C4", "PKG-C5"}},
	} {
		if got := entityPages(t, e, tracking.EntityQuery{Tenant: acme, Parent: parent, Limit: 10}); !reflect.DeepEqual(got, want) {
			t.Errorf("children of %s after the moves = %v, want %v", parent, got, want)
		}
	}

	e.sameAfterRebuildAndReset("children")
}
