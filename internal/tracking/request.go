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

// AppendEvent is one event of an AppendRequest. The id and the time are
// kept as the reporter wrote them, so that Command can say which field of
// which event is malformed.
type AppendEvent struct {
	// EventID, a UUID, absent asks for an id to be generated (see
	// NewEvent.ID); the nil UUID is rejected.
	EventID string `json:"eventId,omitempty"`
	Type    string `json:"type"`
	// OccurredAt is an RFC 3339 time.
	OccurredAt string          `json:"occurredAt"`
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
// A malformed eventId or occurredAt is an error (*ValidationError, under
// "events/<i>/eventId" or ".../occurredAt"), and so is the nil UUID as an
// eventId: it would silently mean "generate one".
func (r *AppendRequest) Command(tenant, entityID string) (RecordCommand, error) {
	exp := eventstore.Any
	if r.ExpectedVersion != nil {
		exp = *r.ExpectedVersion
	}
	cmd := RecordCommand{Tenant: tenant, EntityID: entityID, EntityType: r.EntityType, Expected: exp,
		Events: make([]NewEvent, len(r.Events))}
	var errs fieldErrors
	for i, e := range r.Events {
		path := "events/" + strconv.Itoa(i)
		ne := NewEvent{Type: e.Type, Data: e.Data}
		if e.EventID != "" {
			id, err := uuid.Parse(e.EventID)
			switch {
			case err != nil || len(e.EventID) != 36:
				errs.add(path+"/eventId", "must be a UUID, e.g. 0192f0c4-5d1e-7c3a-9b2e-3f4a5b6c7d01")
			case id == uuid.Nil:
				errs.add(path+"/eventId", "must not be the nil UUID")
			}
			ne.ID = id
		}
		if e.OccurredAt != "" {
			at, err := time.Parse(time.RFC3339Nano, e.OccurredAt)
			switch {
			case err != nil:
				errs.add(path+"/occurredAt", "must be an RFC 3339 time, e.g. 2026-03-01T08:00:00Z")
			case at.IsZero():
				errs.add(path+"/occurredAt", "must be a real time, not the zero time %s", e.OccurredAt)
			}
			ne.OccurredAt = at
		}
		if m := e.Metadata; m != nil {
			ne.Metadata = eventstore.Metadata{CorrelationID: m.CorrelationID, CausationID: m.CausationID,
				Source: m.Source, TraceID: m.TraceID}
		}
		cmd.Events[i] = ne
	}
	if err := errs.err(); err != nil {
		return RecordCommand{}, err
	}
	return cmd, nil
}
