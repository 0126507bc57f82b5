package tracking

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// AppendRequest is the one shape in which reporters ask to record events
// about an entity, whatever the interface: the body of
// POST /api/v1/entities/{entityId}/events, an item of
// POST /api/v1/events/batch and a message of the Kafka ingest topic (the
// last two name the entity in EntityID). Adapters decode it strictly,
// rejecting unknown fields, and turn it into a RecordCommand with Command.
type AppendRequest struct {
	EntityID   string `json:"entityId,omitempty"`
	EntityType string `json:"entityType,omitempty"`
	// ExpectedVersion absent means Any.
	ExpectedVersion *eventstore.ExpectedVersion `json:"expectedVersion,omitempty"`
	Events          []AppendEvent               `json:"events"`
}

// AppendEvent is one event of an AppendRequest.
type AppendEvent struct {
	// EventID absent asks for an id to be generated (see NewEvent.ID); the
	// nil UUID is rejected.
	EventID    *uuid.UUID      `json:"eventId,omitempty"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
	Metadata   *EventMetadata  `json:"metadata,omitempty"`
}

// EventMetadata is what a reporter may say about an event's context; the
// principal is always the authenticated subject (RecordCommand.Principal).
type EventMetadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Source        string `json:"source,omitempty"`
	TraceID       string `json:"traceId,omitempty"`
}

// Command returns the command that records the request's events about
// entityID in tenant: the expected version is Any when the request has none,
// and events without an eventId keep uuid.Nil, for Record to generate one
// (adapters that need replayable ids fill them in first). entityID is the
// caller's to choose (the URL's, or EntityID); the principal, source,
// correlation and trace ids are the adapter's to set on the result. Record
// validates the rest.
//
// An eventId given as the nil UUID is an error (*ValidationError, under
// "events/<i>/eventId"): it would silently mean "generate one".
func (r *AppendRequest) Command(tenant, entityID string) (RecordCommand, error) {
	exp := eventstore.Any
	if r.ExpectedVersion != nil {
		exp = *r.ExpectedVersion
	}
	cmd := RecordCommand{Tenant: tenant, EntityID: entityID, EntityType: r.EntityType, Expected: exp,
		Events: make([]NewEvent, len(r.Events))}
	for i, e := range r.Events {
		ne := NewEvent{Type: e.Type, OccurredAt: e.OccurredAt, Data: e.Data}
		if e.EventID != nil {
			if *e.EventID == uuid.Nil {
				return RecordCommand{}, &ValidationError{Errors: []FieldError{{
					Field: "events/" + strconv.Itoa(i) + "/eventId", Message: "must not be the nil UUID"}}}
			}
			ne.ID = *e.EventID
		}
		if m := e.Metadata; m != nil {
			ne.Metadata = eventstore.Metadata{CorrelationID: m.CorrelationID, CausationID: m.CausationID,
				Source: m.Source, TraceID: m.TraceID}
		}
		cmd.Events[i] = ne
	}
	return cmd, nil
}
