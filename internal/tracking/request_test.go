package tracking

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// An append request becomes the command Record validates: the expected
// version defaults to Any, a missing eventId stays uuid.Nil (Record
// generates one), metadata is carried over, and the nil UUID given as an
// eventId is invalid, named by its path.
func TestAppendRequestCommand(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0d")
	occurred := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		doc     string
		want    RecordCommand
		invalid string // the field of the expected *ValidationError
	}{{
		name: "defaults",
		doc:  `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":"R"}}]}`,
		want: RecordCommand{Tenant: "t", EntityID: "E-1", EntityType: "shipment", Expected: eventstore.Any, Events: []NewEvent{
			{Type: "EntityRegistered", OccurredAt: occurred, Data: json.RawMessage(`{"reference":"R"}`)}}},
	}, {
		name: "everything",
		doc: `{"entityId":"ignored","expectedVersion":3,"events":[{"eventId":"` + id.String() + `","type":"x-note","occurredAt":"2026-03-01T08:00:00Z","data":{},` +
			`"metadata":{"correlationId":"c","causationId":"k","source":"s","traceId":"tr"}}]}`,
		want: RecordCommand{Tenant: "t", EntityID: "E-1", Expected: eventstore.Exact(3), Events: []NewEvent{
			{ID: id, Type: "x-note", OccurredAt: occurred, Data: json.RawMessage(`{}`),
				Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "k", Source: "s", TraceID: "tr"}}}},
	}, {
		name: "exists",
		doc:  `{"expectedVersion":"exists","events":[]}`,
		want: RecordCommand{Tenant: "t", EntityID: "E-1", Expected: eventstore.StreamExists, Events: []NewEvent{}},
	}, {
		name:    "nil event id",
		doc:     `{"events":[{"type":"x-note"},{"eventId":"00000000-0000-0000-0000-000000000000","type":"x-note"}]}`,
		invalid: "events/1/eventId",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var req AppendRequest
			if err := json.Unmarshal([]byte(tc.doc), &req); err != nil {
				t.Fatal(err)
			}
			cmd, err := req.Command("t", "E-1")
			if tc.invalid != "" {
				var invalid *ValidationError
				if !errors.As(err, &invalid) || !errors.Is(err, ErrInvalid) || len(invalid.Errors) != 1 ||
					invalid.Errors[0] != (FieldError{Field: tc.invalid, Message: "must not be the nil UUID"}) {
					t.Fatalf("err %v, want a validation error of %s", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cmd, tc.want) {
				t.Errorf("command\n%+v\nwant\n%+v", cmd, tc.want)
			}
		})
	}
}
