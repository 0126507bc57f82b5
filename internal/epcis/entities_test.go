package epcis_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

func TestMilestoneOf(t *testing.T) {
	for step, want := range map[string]string{
		"shipping": "departed", "urn:epcglobal:cbv:bizstep:shipping": "departed",
		"https://ref.gs1.org/cbv/BizStep-receiving": "arrived", "transporting": "in_transit",
		"commissioning": "", "https://example.com/steps/shipping": "", "": "",
	} {
		if got := epcis.MilestoneOf(step); got != want {
			t.Errorf("MilestoneOf(%q) = %q, want %q", step, got, want)
		}
	}
}

func TestEntityID(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2017", true},
		{"https://id.gs1.org/01/10614141073464/21/2017", "urn:epc:id:sgtin:0614141.107346.2017", true},
		{"urn:epc:id:sgtin:0614141.107346.20%2F17", "", false}, // an escape: not an entity id
		{"https://example.com/things/1", "", false},
	}
	for _, c := range cases {
		got, ok := epcis.EntityID(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("EntityID(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// mapped returns the commands an event derives, as entity → event types.
func mapped(t *testing.T, typ, event string) map[string][]string {
	t.Helper()
	rec := eventstore.Recorded{Tenant: "t", StreamID: epcis.StreamID("c1"), Version: 1, ID: uuid.New(),
		Type: epcis.StoredType(typ), Data: json.RawMessage(event), OccurredAt: time.Unix(1e9, 0).UTC()}
	out := map[string][]string{}
	for _, c := range epcis.MapEvent(rec) {
		for _, e := range c.Events {
			if e.Metadata.CausationID != "urn:uuid:e1" {
				t.Errorf("%s: causationId %q", c.EntityID, e.Metadata.CausationID)
			}
			if _, err := tracking.DecodePayload(e.Type, e.Data); err != nil {
				t.Errorf("%s: derived %s does not decode: %v", c.EntityID, e.Type, err)
			}
			out[c.EntityID] = append(out[c.EntityID], e.Type)
		}
	}
	return out
}

func TestMapEvent(t *testing.T) {
	got := mapped(t, "ObjectEvent", `{"eventID": "urn:uuid:e1", "type": "ObjectEvent", "action": "OBSERVE",
		"readPoint": {"id": "geo:91,4"}, "epcList": ["urn:epc:id:sgtin:0614141.107346.1", "https://example.com/x"]}`)
	if len(got) != 1 || got["urn:epc:id:sgtin:0614141.107346.1"][0] != epcis.TypeReference {
		t.Errorf("a geo: URI off the globe and an identifier that is no entity id: %v", got)
	}
	got = mapped(t, "AggregationEvent", `{"eventID": "urn:uuid:e1", "type": "AggregationEvent", "action": "DELETE",
		"parentID": "urn:epc:id:sscc:0614141.1234567890", "childEPCs": ["urn:epc:id:sgtin:0614141.107346.1"],
		"bizStep": "shipping", "bizLocation": {"id": "geo:52.5,13.4;u=10"}}`)
	if c := got["urn:epc:id:sgtin:0614141.107346.1"]; len(c) != 2 || c[0] != tracking.TypeMilestoneReached || c[1] != tracking.TypeEntityDissociated {
		t.Errorf("an unpacking shipped: %v", got)
	}
	if p := got["urn:epc:id:sscc:0614141.1234567890"]; len(p) != 1 || p[0] != tracking.TypeMilestoneReached {
		t.Errorf("the parent of an unpacking shipped: %v", got)
	}
	// Mapping the same stored event twice derives the same event ids.
	rec := eventstore.Recorded{Tenant: "t", StreamID: epcis.StreamID("c1"), Version: 1, ID: uuid.New(), Type: epcis.StoredType("ObjectEvent"),
		Data: json.RawMessage(`{"eventID": "urn:uuid:e1", "type": "ObjectEvent", "action": "OBSERVE", "epcList": ["urn:epc:id:sgtin:0614141.107346.1"]}`)}
	a, b := epcis.MapEvent(rec), epcis.MapEvent(rec)
	if a[0].Events[0].ID != b[0].Events[0].ID || a[0].Events[0].ID == uuid.Nil {
		t.Errorf("derived ids %v and %v", a[0].Events[0].ID, b[0].Events[0].ID)
	}
}

func TestParseRefusesNUL(t *testing.T) {
	ok := `{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "note": "a \\\\u0000 is text"}`
	if _, err := epcis.ParseEvent([]byte(ok)); err != nil {
		t.Errorf("an escaped backslash before u0000: %v", err)
	}
	for _, bad := range []string{
		`{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "example:x": "nul \u0000 here"}`,
		`{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "example:\u0000": 1}`,
		`{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "ilmd": {"a": ["\u0000"]}}`,
	} {
		if _, err := epcis.ParseEvent([]byte(bad)); !errors.Is(err, epcis.ErrMalformed) {
			t.Errorf("%s: %v, want refused", bad, err)
		}
	}
	if _, err := epcis.ParseEvent([]byte(`{"type": "ObjectEvent", "eventTime": "0001-01-01T00:00:00Z"}`)); !errors.Is(err, epcis.ErrMalformed) {
		t.Errorf("the zero time: %v, want refused", err)
	}
}

// batchRecorder records the sizes of the batches it is given and what was
// in them.
type batchRecorder struct {
	sizes    []int
	entities []string
}

func (r *batchRecorder) RecordBatch(_ context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome {
	r.sizes = append(r.sizes, len(cmds))
	for _, c := range cmds {
		r.entities = append(r.entities, c.EntityID)
	}
	return make([]eventstore.Outcome, len(cmds))
}

type checkpointRecorder struct{ to eventstore.Cursor }

func (c *checkpointRecorder) MoveCheckpoint(_ context.Context, _ string, _, to eventstore.Cursor) error {
	c.to = to
	return nil
}

// A batch of the log whose events name 5,000 objects is recorded in
// bounded steps, every object once and in log order, and the checkpoint
// moves to the batch's end.
func TestMapperBoundsItsBatches(t *testing.T) {
	var events []eventstore.Recorded
	var want []string
	for i := range 500 {
		var epcs []string
		for j := range 10 {
			epcs = append(epcs, fmt.Sprintf(`"urn:epc:id:sgtin:0614141.107346.%d"`, i*10+j))
			want = append(want, fmt.Sprintf("urn:epc:id:sgtin:0614141.107346.%d", i*10+j))
		}
		events = append(events, eventstore.Recorded{Tenant: "t", StreamID: epcis.StreamID("c1"), Version: int64(i + 1), ID: uuid.New(),
			Type: epcis.StoredType("ObjectEvent"), Cursor: eventstore.Cursor{TxID: 9, Position: int64(i)},
			Data: json.RawMessage(fmt.Sprintf(`{"eventID": "urn:uuid:e%d", "type": "ObjectEvent", "action": "OBSERVE", "epcList": [%s]}`, i, strings.Join(epcs, ",")))})
	}
	// A tracking event of the log (no capture's) is passed over.
	events = append(events, eventstore.Recorded{Tenant: "t", StreamID: "PKG-1", Version: 1, ID: uuid.New(), Type: tracking.TypeEntityRegistered,
		Cursor: eventstore.Cursor{TxID: 9, Position: 500}, Data: json.RawMessage(`{}`)})
	for _, bound := range []int{0, 500} {
		rec, cps := &batchRecorder{}, &checkpointRecorder{}
		m := epcis.NewMapper(rec, cps, nil)
		m.BatchCommands = bound
		if err := m.Handle(t.Context(), eventstore.Cursor{}, events); err != nil {
			t.Fatal(err)
		}
		limit := cmp.Or(bound, epcis.DefaultBatchCommands)
		for _, n := range rec.sizes {
			if n > limit {
				t.Errorf("bound %d: a batch of %d commands (sizes %v)", bound, n, rec.sizes)
			}
		}
		if len(rec.sizes) < len(want)/limit {
			t.Errorf("bound %d: %d batches for %d commands (sizes %v)", bound, len(rec.sizes), len(want), rec.sizes)
		}
		if !slices.Equal(rec.entities, want) {
			t.Errorf("bound %d: recorded %d commands, want %d in log order", bound, len(rec.entities), len(want))
		}
		if cps.to != events[len(events)-1].Cursor {
			t.Errorf("bound %d: checkpoint moved to %v, want %v", bound, cps.to, events[len(events)-1].Cursor)
		}
	}
}
