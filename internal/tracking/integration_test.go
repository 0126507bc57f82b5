package tracking

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// What a domain event means for the public contract, from the entity's
// state before and after it.
func TestIntegrationEvents(t *testing.T) {
	t.Parallel()
	occurred := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	eta1 := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	eta1Paris := eta1.In(time.FixedZone("CET", 3600))
	eta2 := eta1.Add(24 * time.Hour)
	x1 := OpenException{ExceptionID: "x1", Code: "delay", Severity: "high", Description: "late truck", RaisedAt: occurred}
	x2 := OpenException{ExceptionID: "x2", Code: "damage", Severity: "low", RaisedAt: occurred.Add(time.Minute)}
	recorded := func(typ, data string) eventstore.Recorded {
		return eventstore.Recorded{Tenant: "acme", StreamID: "SHP-1", Version: 7, EntityType: "shipment",
			Type: typ, Data: json.RawMessage(data), OccurredAt: occurred}
	}
	base := IntegrationEvent{EntityID: "SHP-1", EntityType: "shipment", Version: 7, OccurredAt: occurred}
	with := func(f func(*IntegrationEvent)) IntegrationEvent {
		e := base
		f(&e)
		return e
	}
	state := func(status string, eta *time.Time, open ...OpenException) EntityState {
		return EntityState{EntityID: "SHP-1", EntityType: "shipment", Status: status, ETA: eta, OpenExceptions: open}
	}
	for _, tc := range []struct {
		name          string
		before, after EntityState
		event         eventstore.Recorded
		want          []IntegrationEvent
	}{{
		name:   "first event",
		before: EntityState{},
		after:  state("registered", nil),
		event:  recorded(TypeEntityRegistered, `{}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.Status = IntegrationEntityStatusChanged, "registered"
		})},
	}, {
		name:   "entity type from the event when the state has none",
		before: EntityState{},
		after:  EntityState{Status: "registered"},
		event:  recorded(TypeEntityRegistered, `{}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.Status = IntegrationEntityStatusChanged, "registered"
		})},
	}, {
		name:   "status changed",
		before: state("in_transit", nil),
		after:  state("delivered", nil),
		event:  recorded(TypeMilestoneReached, `{"milestone":"delivered"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.PreviousStatus, e.Status = IntegrationEntityStatusChanged, "in_transit", "delivered"
		})},
	}, {
		name:   "late event changes nothing",
		before: state("delivered", &eta1, x1),
		after:  state("delivered", &eta1Paris, x1),
		event:  recorded(TypeMilestoneReached, `{"milestone":"departed"}`),
	}, {
		name:   "exception raised",
		before: state("in_transit", nil, x1),
		after:  state("in_transit", nil, x1, x2),
		event:  recorded(TypeExceptionRaised, `{"exceptionId":"x2","code":"damage","severity":"low"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind = IntegrationExceptionRaised
			e.Exception = &IntegrationException{ExceptionID: "x2", Code: "damage", Severity: "low", RaisedAt: x2.RaisedAt}
		})},
	}, {
		name:   "exception resolved, with the resolution",
		before: state("in_transit", nil, x1, x2),
		after:  state("in_transit", nil, x2),
		event:  recorded(TypeExceptionResolved, `{"exceptionId":"x1","resolution":"waited"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind = IntegrationExceptionResolved
			e.Exception = &IntegrationException{ExceptionID: "x1", Code: "delay", Severity: "high", Description: "late truck",
				RaisedAt: x1.RaisedAt, Resolution: "waited"}
		})},
	}, {
		name:   "exception closed by another event: no resolution",
		before: state("in_transit", nil, x1),
		after:  state("in_transit", nil),
		event:  recorded("x-cleanup", `{"resolution":"not this"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind = IntegrationExceptionResolved
			e.Exception = &IntegrationException{ExceptionID: "x1", Code: "delay", Severity: "high", Description: "late truck",
				RaisedAt: x1.RaisedAt}
		})},
	}, {
		name:   "first ETA",
		before: state("in_transit", nil),
		after:  state("in_transit", &eta1),
		event:  recorded(TypeEtaUpdated, `{"eta":"2026-03-04T12:00:00Z"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.Eta = IntegrationEtaChanged, &eta1
		})},
	}, {
		name:   "ETA changed",
		before: state("in_transit", &eta1),
		after:  state("in_transit", &eta2),
		event:  recorded(TypeEtaUpdated, `{"eta":"2026-03-05T12:00:00Z"}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.PreviousEta, e.Eta = IntegrationEtaChanged, &eta1, &eta2
		})},
	}, {
		name:   "ETA gone",
		before: state("in_transit", &eta1),
		after:  state("in_transit", nil),
		event:  recorded("x-reset", `{}`),
		want: []IntegrationEvent{with(func(e *IntegrationEvent) {
			e.Kind, e.PreviousEta = IntegrationEtaChanged, &eta1
		})},
	}, {
		name:   "everything at once, in contract order",
		before: state("registered", &eta1, x1),
		after:  state("in_transit", &eta2, x2),
		event:  recorded(TypeExceptionResolved, `{"exceptionId":"x1","resolution":"r"}`),
		want: []IntegrationEvent{
			with(func(e *IntegrationEvent) {
				e.Kind, e.PreviousStatus, e.Status = IntegrationEntityStatusChanged, "registered", "in_transit"
			}),
			with(func(e *IntegrationEvent) {
				e.Kind = IntegrationExceptionRaised
				e.Exception = &IntegrationException{ExceptionID: "x2", Code: "damage", Severity: "low", RaisedAt: x2.RaisedAt}
			}),
			with(func(e *IntegrationEvent) {
				e.Kind = IntegrationExceptionResolved
				e.Exception = &IntegrationException{ExceptionID: "x1", Code: "delay", Severity: "high", Description: "late truck",
					RaisedAt: x1.RaisedAt, Resolution: "r"}
			}),
			with(func(e *IntegrationEvent) {
				e.Kind, e.PreviousEta, e.Eta = IntegrationEtaChanged, &eta1, &eta2
			}),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := IntegrationEvents(tc.before, tc.after, tc.event)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", dump(got), dump(tc.want))
			}
		})
	}
}

// Folding a stream event by event, each event's integration events follow
// from the aggregate's states: late facts are not news.
func TestIntegrationEventsOfAFoldedStream(t *testing.T) {
	t.Parallel()
	minute := func(m int) time.Time { return time.Date(2026, 3, 1, 8, m, 0, 0, time.UTC) }
	specs := []struct {
		typ  string
		at   time.Time
		data string
		want string
	}{
		{TypeEntityRegistered, minute(0), `{"reference":"R"}`, "[EntityStatusChanged]"},
		{TypeMilestoneReached, minute(10), `{"milestone":"picked_up"}`, "[EntityStatusChanged]"},
		{TypeExceptionRaised, minute(20), `{"exceptionId":"x1","code":"delay","severity":"high"}`, "[ExceptionRaised]"},
		{TypeEtaUpdated, minute(30), `{"eta":"2026-03-04T12:00:00Z"}`, "[EtaChanged]"},
		{TypeMilestoneReached, minute(5), `{"milestone":"departed"}`, "[]"},
		{TypeExceptionResolved, minute(40), `{"exceptionId":"x1","resolution":"waited"}`, "[ExceptionResolved]"},
		{TypeEtaUpdated, minute(25), `{"eta":"2026-03-09T12:00:00Z"}`, "[]"},
		{TypeLocationReported, minute(45), `{"lat":1,"lon":2}`, "[]"},
		{TypeMilestoneReached, minute(50), `{"milestone":"delivered"}`, "[EntityStatusChanged]"},
	}
	var state json.RawMessage
	var before EntityState
	for i, s := range specs {
		e := eventstore.Recorded{Tenant: "acme", StreamID: "SHP-1", Version: int64(i + 1), ID: uuid.New(), Type: s.typ,
			SchemaVersion: 1, Data: json.RawMessage(s.data), OccurredAt: s.at, EntityType: "shipment"}
		var after EntityState
		state, after = FoldEntity("SHP-1", state, []eventstore.Recorded{e})
		var kinds []string
		for _, ie := range IntegrationEvents(before, after, e) {
			kinds = append(kinds, ie.Kind)
		}
		if got := fmt.Sprintf("%v", kinds); got != s.want {
			t.Errorf("v%d %s: %s, want %s", e.Version, s.typ, got, s.want)
		}
		before = after
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
