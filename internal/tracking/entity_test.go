package tracking

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus minutes.
func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// ev is a test event: type, business time (minutes after t0) and data.
type ev struct {
	typ  string
	min  int
	data string
}

// fold applies events as versions 1..n, recorded one second apart.
func fold(t *testing.T, events ...ev) *Entity {
	t.Helper()
	e := NewEntity("ENT-1")
	for i, x := range events {
		e.Apply(recorded(t, int64(i+1), x))
	}
	return e
}

func recorded(t *testing.T, version int64, x ev) eventstore.Recorded {
	t.Helper()
	if _, err := DecodePayload(x.typ, json.RawMessage(x.data)); err != nil {
		t.Fatalf("test event %d is invalid: %v", version, err)
	}
	return eventstore.Recorded{
		StreamID: "ENT-1", Version: version, Type: x.typ, SchemaVersion: 1,
		Data: json.RawMessage(x.data), OccurredAt: at(x.min), RecordedAt: t0.Add(time.Duration(version) * time.Second),
	}
}

func milestone(min int, m string) ev {
	return ev{TypeMilestoneReached, min, fmt.Sprintf(`{"milestone":%q}`, m)}
}

func milestoneAt(min int, m string, lat, lon float64, site string) ev {
	return ev{TypeMilestoneReached, min, fmt.Sprintf(`{"milestone":%q,"siteId":%q,"location":{"lat":%g,"lon":%g}}`, m, site, lat, lon)}
}

func located(min int, lat, lon float64) ev {
	return ev{TypeLocationReported, min, fmt.Sprintf(`{"lat":%g,"lon":%g}`, lat, lon)}
}

func etaEv(min, etaMin int) ev {
	return ev{TypeEtaUpdated, min, fmt.Sprintf(`{"eta":%q}`, at(etaMin).Format(time.RFC3339))}
}

func assoc(min int, parent string) ev {
	return ev{TypeEntityAssociated, min, fmt.Sprintf(`{"parentId":%q}`, parent)}
}

func dissoc(min int, parent string) ev {
	return ev{TypeEntityDissociated, min, fmt.Sprintf(`{"parentId":%q}`, parent)}
}

func raise(min int, id string) ev {
	return ev{TypeExceptionRaised, min, fmt.Sprintf(`{"exceptionId":%q,"code":"delay","severity":"low"}`, id)}
}

func resolve(min int, id string) ev {
	return ev{TypeExceptionResolved, min, fmt.Sprintf(`{"exceptionId":%q}`, id)}
}

func start(min int, op, id string) ev {
	return ev{TypeOperationStarted, min, fmt.Sprintf(`{"operation":%q,"operationId":%q}`, op, id)}
}

func complete(min int, op, id string) ev {
	return ev{TypeOperationCompleted, min, fmt.Sprintf(`{"operation":%q,"operationId":%q,"outcome":"succeeded"}`, op, id)}
}

func register(min int) ev {
	return ev{TypeEntityRegistered, min, `{"reference":"PO-7","origin":"Rotterdam","destination":"Berlin","attributes":{"k":"v"},"plannedArrival":"2025-06-02T12:00:00Z"}`}
}

func TestStatusOf(t *testing.T) {
	tests := map[string]string{
		MilestonePickedUp: StatusInTransit, MilestoneDeparted: StatusInTransit, MilestoneInTransit: StatusInTransit,
		MilestoneArrived: StatusInTransit, MilestoneCustomsCleared: StatusInTransit,
		MilestoneOutForDelivery: StatusOutForDelivery, MilestoneDelivered: StatusDelivered,
		MilestoneReturned: StatusReturned, MilestoneCancelled: StatusCancelled,
		"teleported": "",
	}
	if len(tests) != len(milestones())+1 {
		t.Fatalf("the table does not cover every milestone")
	}
	for m, want := range tests {
		t.Run(m, func(t *testing.T) {
			if got := StatusOf(m); got != want {
				t.Errorf("StatusOf(%q) = %q, want %q", m, got, want)
			}
			if want == "" {
				return
			}
			e := fold(t, register(0), milestone(1, m))
			if got := e.State().Status; got != want {
				t.Errorf("state status after %q = %q, want %q", m, got, want)
			}
		})
	}
}

func TestDerivedState(t *testing.T) {
	loc := func(lat, lon float64, site string, min int) *LastLocation {
		return &LastLocation{Lat: lat, Lon: lon, SiteID: site, OccurredAt: at(min)}
	}
	tests := []struct {
		name       string
		events     []ev
		status     string
		location   *LastLocation
		eta        *time.Time
		parent     string
		exceptions []string
	}{
		{name: "registered only", events: []ev{register(0)}, status: StatusRegistered},
		{name: "not registered, no milestone", events: []ev{located(5, 1, 2)}, status: StatusRegistered, location: loc(1, 2, "", 5)},
		{name: "custom events are ignored", events: []ev{register(0), {"x-note", 3, `{"text":"hi"}`}}, status: StatusRegistered},
		{name: "newest milestone wins", events: []ev{milestone(1, "picked_up"), milestone(2, "out_for_delivery"), milestone(3, "delivered")},
			status: StatusDelivered},
		{name: "late milestone does not overwrite", events: []ev{milestone(10, "delivered"), milestone(5, "out_for_delivery")},
			status: StatusDelivered},
		{name: "tie broken by higher version", events: []ev{milestone(10, "delivered"), milestone(10, "returned")},
			status: StatusReturned},
		{name: "late scan changes neither status nor location",
			events: []ev{milestoneAt(10, "arrived", 50, 8, "FRA"), milestoneAt(5, "departed", 52, 4, "AMS")},
			status: StatusInTransit, location: loc(50, 8, "FRA", 10)},
		{name: "late delivered scan does not beat newer returned",
			events: []ev{milestone(20, "returned"), milestoneAt(15, "delivered", 1, 1, "X")},
			status: StatusReturned, location: loc(1, 1, "X", 15)},
		{name: "location newest among reports and milestones",
			events: []ev{located(10, 1, 1), milestoneAt(12, "arrived", 2, 2, "S"), located(11, 3, 3), milestone(13, "departed")},
			status: StatusInTransit, location: loc(2, 2, "S", 12)},
		{name: "location tie broken by version",
			events: []ev{milestoneAt(10, "arrived", 2, 2, "S"), located(10, 3, 3)},
			status: StatusInTransit, location: loc(3, 3, "", 10)},
		{name: "eta from newest update", events: []ev{etaEv(10, 100), etaEv(5, 50), etaEv(11, 110)}, status: StatusRegistered,
			eta: ptr(at(110))},
		{name: "eta tie broken by version", events: []ev{etaEv(10, 100), etaEv(10, 90)}, status: StatusRegistered, eta: ptr(at(90))},
		{name: "late eta ignored", events: []ev{etaEv(10, 100), etaEv(9, 90)}, status: StatusRegistered, eta: ptr(at(100))},
		{name: "associated", events: []ev{assoc(1, "C1")}, status: StatusRegistered, parent: "C1"},
		{name: "re-associated", events: []ev{assoc(1, "C1"), assoc(2, "C2")}, status: StatusRegistered, parent: "C2"},
		{name: "late association ignored", events: []ev{assoc(5, "C2"), assoc(1, "C1")}, status: StatusRegistered, parent: "C2"},
		{name: "dissociated from current parent", events: []ev{assoc(1, "C1"), dissoc(2, "C1")}, status: StatusRegistered},
		{name: "dissociation of a non-current parent does nothing",
			events: []ev{assoc(1, "C1"), assoc(2, "C2"), dissoc(3, "C1")}, status: StatusRegistered, parent: "C2"},
		{name: "dissociation without parent does nothing", events: []ev{dissoc(1, "C1"), assoc(0, "C2")},
			status: StatusRegistered, parent: "C2"},
		{name: "late dissociation older than the association ignored",
			events: []ev{assoc(5, "C1"), dissoc(3, "C1")}, status: StatusRegistered, parent: "C1"},
		{name: "late association older than its dissociation stays dissociated",
			events: []ev{dissoc(5, "C1"), assoc(3, "C1")}, status: StatusRegistered},
		{name: "newer association after dissociation",
			events: []ev{assoc(1, "C1"), dissoc(2, "C1"), assoc(3, "C1")}, status: StatusRegistered, parent: "C1"},
		{name: "association tie broken by version", events: []ev{assoc(1, "C1"), assoc(1, "C2")}, status: StatusRegistered, parent: "C2"},
		{name: "dissociation tie with association: higher version wins",
			events: []ev{assoc(1, "C1"), dissoc(1, "C1")}, status: StatusRegistered},
		{name: "exceptions in raise order", events: []ev{raise(5, "b"), raise(1, "a"), raise(3, "c")},
			status: StatusRegistered, exceptions: []string{"b", "a", "c"}},
		{name: "resolved exceptions leave", events: []ev{raise(1, "a"), raise(2, "b"), raise(3, "c"), resolve(4, "b")},
			status: StatusRegistered, exceptions: []string{"a", "c"}},
		{name: "re-raised exception goes last", events: []ev{raise(1, "a"), raise(2, "b"), resolve(3, "a"), raise(4, "a")},
			status: StatusRegistered, exceptions: []string{"b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fold(t, tt.events...).State()
			if s.Status != tt.status {
				t.Errorf("status = %q, want %q", s.Status, tt.status)
			}
			if !reflect.DeepEqual(s.LastLocation, tt.location) {
				t.Errorf("lastLocation = %+v, want %+v", s.LastLocation, tt.location)
			}
			if !reflect.DeepEqual(s.ETA, tt.eta) {
				t.Errorf("eta = %v, want %v", s.ETA, tt.eta)
			}
			if s.ParentID != tt.parent {
				t.Errorf("parentId = %q, want %q", s.ParentID, tt.parent)
			}
			if s.OpenExceptions == nil {
				t.Errorf("openExceptions is nil")
			}
			var ids []string
			for _, x := range s.OpenExceptions {
				ids = append(ids, x.ExceptionID)
			}
			if !reflect.DeepEqual(ids, tt.exceptions) {
				t.Errorf("openExceptions = %q, want %q", ids, tt.exceptions)
			}
			if s.Version != int64(len(tt.events)) {
				t.Errorf("version = %d, want %d", s.Version, len(tt.events))
			}
		})
	}
}

// TestParentIsOrderIndependent checks the parent rule against its definition:
// the fold of every association and dissociation in (occurredAt, version)
// order, whatever order they arrived in.
func TestParentIsOrderIndependent(t *testing.T) {
	events := []ev{assoc(1, "A"), dissoc(2, "A"), assoc(3, "B"), dissoc(4, "A"), assoc(5, "A"), dissoc(6, "A"), dissoc(7, "B")}
	// Every permutation of up to 7 events is 5040 folds; keep it quick with
	// prefixes of growing length.
	for n := 1; n <= len(events); n++ {
		permute(events[:n], func(order []ev) {
			want := ""
			sorted := make([]ev, len(order))
			copy(sorted, order)
			// Business times are distinct, so sorting by them is the fold order.
			for i := range sorted {
				for j := i + 1; j < len(sorted); j++ {
					if sorted[j].min < sorted[i].min {
						sorted[i], sorted[j] = sorted[j], sorted[i]
					}
				}
			}
			for _, x := range sorted {
				var p struct{ ParentID string }
				_ = json.Unmarshal([]byte(x.data), &p)
				switch {
				case x.typ == TypeEntityAssociated:
					want = p.ParentID
				case p.ParentID == want:
					want = ""
				}
			}
			if got := fold(t, order...).ParentID(); got != want {
				t.Fatalf("arrival order %v: parent %q, want %q", order, got, want)
			}
		})
	}
}

func permute(xs []ev, visit func([]ev)) {
	var rec func(int)
	rec = func(k int) {
		if k == len(xs) {
			visit(xs)
			return
		}
		for i := k; i < len(xs); i++ {
			xs[k], xs[i] = xs[i], xs[k]
			rec(k + 1)
			xs[k], xs[i] = xs[i], xs[k]
		}
	}
	rec(0)
}

func TestRegistrationState(t *testing.T) {
	e := fold(t, register(3), milestone(4, "picked_up"), ev{TypeEntityRegistered, 5, `{"reference":"other"}`})
	s := e.State()
	if s.RegisteredAt == nil || !s.RegisteredAt.Equal(at(3)) || s.Reference != "PO-7" || s.Origin != "Rotterdam" ||
		s.Destination != "Berlin" || s.Attributes["k"] != "v" || s.PlannedArrival == nil || s.PlannedDeparture != nil {
		t.Fatalf("registration state %+v", s)
	}
	if !e.Registered() {
		t.Fatal("Registered() = false")
	}
	if want := t0.Add(3 * time.Second); !s.UpdatedAt.Equal(want) {
		t.Fatalf("updatedAt = %v, want the newest recordedAt %v", s.UpdatedAt, want)
	}
}

func TestApplyIgnoresRedeliveredAndUndecodable(t *testing.T) {
	e := fold(t, milestone(1, "delivered"))
	e.Apply(recorded(t, 1, milestone(2, "returned"))) // same version again
	if e.Status() != StatusDelivered || e.Version() != 1 {
		t.Fatalf("redelivered event changed the state: %s v%d", e.Status(), e.Version())
	}
	e.Apply(eventstore.Recorded{Version: 2, Type: TypeMilestoneReached, Data: json.RawMessage(`{"milestone":"nope"}`), OccurredAt: at(3)})
	e.Apply(eventstore.Recorded{Version: 3, Type: "SomethingNew", Data: json.RawMessage(`{}`), OccurredAt: at(3)})
	if e.Status() != StatusDelivered || e.Version() != 3 {
		t.Fatalf("undecodable events: %s v%d, want delivered v3", e.Status(), e.Version())
	}
}

func change(t *testing.T, x ev) Change {
	t.Helper()
	p, err := DecodePayload(x.typ, json.RawMessage(x.data))
	if err != nil {
		t.Fatal(err)
	}
	return Change{OccurredAt: at(x.min), Payload: p}
}

func TestDecideInvariants(t *testing.T) {
	tests := []struct {
		name     string
		history  []ev
		request  []ev
		badEvent int // index of the offending event, -1 when accepted
		message  string
	}{
		{"register once", nil, []ev{register(0)}, -1, ""},
		{"registered twice", []ev{register(0)}, []ev{register(1)}, 0, "already registered"},
		{"registered twice within one request", nil, []ev{register(0), milestone(1, "picked_up"), register(2)}, 2, "already registered"},
		{"start then complete in one request", nil, []ev{start(1, "loading", "op1"), complete(2, "loading", "op1")}, -1, ""},
		{"complete an operation started earlier", []ev{start(1, "loading", "op1")}, []ev{complete(2, "loading", "op1")}, -1, ""},
		{"complete with zero duration", []ev{start(1, "loading", "op1")}, []ev{complete(1, "loading", "op1")}, -1, ""},
		{"complete without start", nil, []ev{complete(2, "loading", "op1")}, 0, "has not been started"},
		{"complete another operation id", []ev{start(1, "loading", "op1")}, []ev{complete(2, "loading", "op2")}, 0, "has not been started"},
		{"complete before start in arrival order", nil, []ev{complete(2, "loading", "op1"), start(1, "loading", "op1")}, 0, "has not been started"},
		{"complete twice", []ev{start(1, "loading", "op1"), complete(2, "loading", "op1")}, []ev{complete(3, "loading", "op1")}, 0, "has not been started"},
		{"complete twice within one request", nil, []ev{start(1, "sorting", "o"), complete(2, "sorting", "o"), complete(3, "sorting", "o")}, 2, "has not been started"},
		{"complete before it started in time", []ev{start(10, "loading", "op1")}, []ev{complete(9, "loading", "op1")}, 0, "before it started"},
		{"complete before start in time within one request", nil, []ev{start(10, "loading", "op1"), complete(9, "loading", "op1")}, 1, "before it started"},
		{"complete under another operation name", []ev{start(1, "loading", "op1")}, []ev{complete(2, "unloading", "op1")}, 0, "was started as"},
		{"start an open operation again", []ev{start(1, "loading", "op1")}, []ev{start(2, "loading", "op1")}, 0, "already in progress"},
		{"start twice within one request", nil, []ev{start(1, "loading", "op1"), start(2, "loading", "op1")}, 1, "already in progress"},
		{"restart a completed operation id", []ev{start(1, "loading", "op1"), complete(2, "loading", "op1")}, []ev{start(3, "loading", "op1")}, -1, ""},
		{"resolve an open exception", []ev{raise(1, "e1")}, []ev{resolve(2, "e1")}, -1, ""},
		{"resolve an exception raised in the same request", nil, []ev{raise(1, "e1"), resolve(0, "e1")}, -1, ""},
		{"resolve an exception never raised", nil, []ev{resolve(1, "e1")}, 0, "is not open"},
		{"resolve twice", []ev{raise(1, "e1"), resolve(2, "e1")}, []ev{resolve(3, "e1")}, 0, "is not open"},
		{"resolve twice within one request", []ev{raise(1, "e1")}, []ev{resolve(2, "e1"), resolve(3, "e1")}, 1, "is not open"},
		{"raise an open exception again", []ev{raise(1, "e1")}, []ev{raise(2, "e1")}, 0, "already open"},
		{"raise a resolved exception again", []ev{raise(1, "e1"), resolve(2, "e1")}, []ev{raise(3, "e1")}, -1, ""},
		{"own parent", nil, []ev{assoc(1, "ENT-1")}, 0, "own parent"},
		{"late events are fine", []ev{milestone(10, "delivered")}, []ev{milestone(1, "picked_up"), located(0, 1, 1)}, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fold(t, tt.history...)
			var changes []Change
			for _, x := range tt.request {
				changes = append(changes, change(t, x))
			}
			err := e.Decide(changes...)
			if tt.badEvent < 0 {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if e.Version() != int64(len(tt.history)+len(tt.request)) {
					t.Fatalf("version after decide = %d", e.Version())
				}
				return
			}
			var ve *ViolationError
			if !errors.Is(err, ErrRuleViolation) || !errors.As(err, &ve) {
				t.Fatalf("Decide = %v, want a *ViolationError", err)
			}
			if ve.Event != tt.badEvent || !strings.Contains(ve.Message, tt.message) {
				t.Fatalf("violation %+v, want event %d containing %q", ve, tt.badEvent, tt.message)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	if d := OperationDuration(at(0), at(0).Add(90*time.Second+500*time.Millisecond)); d != 90.5 {
		t.Errorf("OperationDuration = %v, want 90.5", d)
	}
	tests := []struct {
		occurred, planned time.Time
		want              bool
	}{
		{at(10), at(0), true},  // exactly at tolerance
		{at(-60), at(0), true}, // early
		{at(10).Add(time.Nanosecond), at(0), false},
		{at(0), at(0), true},
	}
	for i, tt := range tests {
		if got := OnTime(tt.occurred, tt.planned, 10*time.Minute); got != tt.want {
			t.Errorf("case %d: OnTime = %v, want %v", i, got, tt.want)
		}
	}
}

func TestOpenOperationBookkeeping(t *testing.T) {
	e := fold(t, start(3, "loading", "op1"), start(4, "sorting", "op2"), complete(5, "sorting", "op2"))
	op, ok := e.OpenOperation("op1")
	if !ok || op.Operation != "loading" || !op.StartedAt.Equal(at(3)) || op.Version != 1 {
		t.Fatalf("OpenOperation(op1) = %+v, %v", op, ok)
	}
	if _, ok := e.OpenOperation("op2"); ok {
		t.Fatal("op2 is still open after completion")
	}
}

// history is a long, varied history that exercises every derived field and
// late events.
func history() []ev {
	var h []ev
	h = append(h, register(0))
	for i := range 60 {
		m := i * 10
		switch i % 12 {
		case 0:
			h = append(h, milestoneAt(m, milestones()[i%len(milestones())], float64(i%80), float64(i%170), fmt.Sprintf("S%d", i)))
		case 1:
			h = append(h, located(m-25, 1, 1)) // late
		case 2:
			h = append(h, start(m, "loading", fmt.Sprintf("op%d", i)))
		case 3:
			h = append(h, raise(m, fmt.Sprintf("e%d", i)))
		case 4:
			h = append(h, etaEv(m, m+100), etaEv(m-50, m+1))
		case 5:
			h = append(h, assoc(m, fmt.Sprintf("C%d", i%3)), dissoc(m+30, fmt.Sprintf("C%d", (i+1)%3)))
		case 6:
			h = append(h, complete(m, "loading", fmt.Sprintf("op%d", i-4)))
		case 7:
			h = append(h, resolve(m, fmt.Sprintf("e%d", i-4)))
		case 8:
			h = append(h, ev{"x-custom", m, `{"n":1}`}, milestone(m-500, "delivered")) // late
		case 9:
			h = append(h, dissoc(m-200, "C0"), assoc(m-300, "C2"))
		default:
			h = append(h, located(m, float64(i%90), -float64(i%180)))
		}
	}
	return append(h, start(900, "customs", "op-last"), raise(901, "e-last"), dissoc(950, "C9"))
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := history()
	full := fold(t, h...)
	wantState, _ := full.MarshalSnapshot()
	for _, k := range []int{1, 2, 7, 13, 31, len(h) / 2, len(h) - 1, len(h)} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			prefix := fold(t, h[:k]...)
			state, schema := prefix.MarshalSnapshot()
			restored, ok := RestoreEntity(eventstore.Snapshot{StreamID: "ENT-1", Version: int64(k), SchemaVersion: schema, State: state})
			if !ok {
				t.Fatal("RestoreEntity refused its own snapshot")
			}
			if !reflect.DeepEqual(restored, prefix) {
				t.Fatalf("restored aggregate differs from the original\n got %+v\nwant %+v", restored, prefix)
			}
			for i := k; i < len(h); i++ {
				restored.Apply(recorded(t, int64(i+1), h[i]))
			}
			got, _ := restored.MarshalSnapshot()
			if string(got) != string(wantState) {
				t.Fatalf("snapshot at %d + tail differs from full fold\n got %s\nwant %s", k, got, wantState)
			}
			if !reflect.DeepEqual(restored, full) || !reflect.DeepEqual(restored.State(), full.State()) {
				t.Fatalf("state differs:\n got %+v\nwant %+v", restored.State(), full.State())
			}
		})
	}
}

func TestRestoreEntityRefuses(t *testing.T) {
	e := fold(t, register(0), milestone(1, "picked_up"))
	state, schema := e.MarshalSnapshot()
	tests := []struct {
		name string
		snap eventstore.Snapshot
	}{
		{"unknown schema version", eventstore.Snapshot{StreamID: "ENT-1", Version: 2, SchemaVersion: schema + 1, State: state}},
		{"zero schema version", eventstore.Snapshot{StreamID: "ENT-1", Version: 2, State: state}},
		{"garbage", eventstore.Snapshot{StreamID: "ENT-1", Version: 2, SchemaVersion: schema, State: json.RawMessage(`[1]`)}},
		{"version mismatch", eventstore.Snapshot{StreamID: "ENT-1", Version: 3, SchemaVersion: schema, State: state}},
		{"other stream", eventstore.Snapshot{StreamID: "ENT-2", Version: 2, SchemaVersion: schema, State: state}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := RestoreEntity(tt.snap); ok {
				t.Fatal("RestoreEntity accepted it")
			}
		})
	}
}

func TestEntityTypes(t *testing.T) {
	types, err := NewEntityTypes("pallet", "trailer", "pallet", "Bad Type")
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEntityTypes with a bad name: %v", err)
	}
	for _, name := range []string{"shipment", "package", "container", "vehicle", "asset", "pallet", "trailer"} {
		if !types.Known(name) {
			t.Errorf("%q unknown", name)
		}
	}
	for _, name := range []string{"", "Shipment", "Bad Type", "drone"} {
		if types.Known(name) {
			t.Errorf("%q known", name)
		}
	}
	if got := len(types.List()); got != 7 {
		t.Errorf("List has %d types, want 7", got)
	}
	var zero EntityTypes
	if !zero.Known("asset") || zero.Known("pallet") {
		t.Error("zero EntityTypes should know the built-in types only")
	}
}
