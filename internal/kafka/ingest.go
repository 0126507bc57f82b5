package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Recorder records events under the domain's rules (tracking.Service).
type Recorder interface {
	Record(ctx context.Context, cmd tracking.RecordCommand) (eventstore.AppendResult, error)
}

// IngestMessage is a message of the ingest topic: the body of
// POST /api/v1/events/batch's items (the REST append body plus entityId).
type IngestMessage struct {
	EntityID        string                      `json:"entityId"`
	EntityType      string                      `json:"entityType,omitempty"`
	ExpectedVersion *eventstore.ExpectedVersion `json:"expectedVersion,omitempty"` // absent: any
	Events          []IngestEvent               `json:"events"`
}

// IngestEvent is one event of an IngestMessage.
type IngestEvent struct {
	EventID    *uuid.UUID      `json:"eventId,omitempty"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
	Metadata   *IngestMetadata `json:"metadata,omitempty"`
}

// IngestMetadata is what a reporter may say about an event's context.
type IngestMetadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Source        string `json:"source,omitempty"`
	TraceID       string `json:"traceId,omitempty"`
}

// DecodeIngestMessage decodes one ingest message strictly: one JSON
// document, unknown fields rejected, as the REST API does.
func DecodeIngestMessage(b []byte) (IngestMessage, error) {
	var m IngestMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return IngestMessage{}, fmt.Errorf("kafka: ingest message: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return IngestMessage{}, errors.New("kafka: ingest message: trailing data after the JSON document")
	}
	for i, e := range m.Events {
		if e.EventID != nil && *e.EventID == uuid.Nil {
			return IngestMessage{}, fmt.Errorf("kafka: ingest message: events/%d/eventId must not be the nil UUID", i)
		}
	}
	return m, nil
}

// ingestNamespace is the UUIDv5 namespace of the event ids given to ingest
// events that have none.
func ingestNamespace() uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:tracktrace:kafka-ingest"))
}

// IngestEventID is the id given to the index-th event of the ingest record
// at topic/partition/offset when it has none: a UUIDv5 of those, so that a
// redelivered record is an idempotent replay.
func IngestEventID(topic string, partition int32, offset int64, index int) uuid.UUID {
	name := topic + "/" + strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10) + "/" + strconv.Itoa(index)
	return uuid.NewSHA1(ingestNamespace(), []byte(name))
}

// Command turns the message into a tracking command for a tenant. Events
// without an eventId get IngestEventID(topic, partition, offset, index).
func (m IngestMessage) Command(tenant, topic string, partition int32, offset int64) tracking.RecordCommand {
	exp := eventstore.Any
	if m.ExpectedVersion != nil {
		exp = *m.ExpectedVersion
	}
	cmd := tracking.RecordCommand{Tenant: tenant, EntityID: m.EntityID, EntityType: m.EntityType, Expected: exp,
		Source: "kafka:" + topic, Events: make([]tracking.NewEvent, len(m.Events))}
	for i, e := range m.Events {
		ne := tracking.NewEvent{Type: e.Type, OccurredAt: e.OccurredAt, Data: e.Data}
		if e.EventID != nil {
			ne.ID = *e.EventID
		} else {
			ne.ID = IngestEventID(topic, partition, offset, i)
		}
		if e.Metadata != nil {
			ne.Metadata = eventstore.Metadata{CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID,
				Source: e.Metadata.Source, TraceID: e.Metadata.TraceID}
		}
		cmd.Events[i] = ne
	}
	return cmd
}

// NewIngestConsumer returns a consumer of the ingest topic that records each
// message through rec. The tenant is the record's "tenant" header (default
// opts.DefaultTenant); a traceparent header's trace id is stamped on events
// without their own. Invalid messages (undecodable, failing validation or a
// domain rule, conflicting with the stream) go to <topic>.dlq at once;
// failures of an unavailable store are retried until it is back. The client
// must be created with IngestConsumerOpts; the caller closes it after Run.
func NewIngestConsumer(client *kgo.Client, rec Recorder, opts ConsumerOptions) *Consumer {
	c := newConsumer(client, nil, opts)
	c.h = &ingestHandler{rec: rec, defaultTenant: c.opts.DefaultTenant}
	return c
}

type ingestHandler struct {
	rec           Recorder
	defaultTenant string
}

func (h *ingestHandler) batch(context.Context, []*kgo.Record, []Delivery) error { return errNoBatch }

func (h *ingestHandler) one(ctx context.Context, rec *kgo.Record, d *Delivery) error {
	m, err := DecodeIngestMessage(rec.Value)
	if err != nil {
		return &permanentError{err}
	}
	tenant := header(rec, HeaderIngestTenant)
	if tenant == "" {
		tenant = h.defaultTenant
	}
	cmd := m.Command(tenant, rec.Topic, rec.Partition, rec.Offset)
	if traceID, _, ok := ParseTraceParent(d.TraceParent); ok {
		cmd.TraceID = traceID
	}
	res, err := h.rec.Record(ctx, cmd)
	if err != nil {
		if invalid(err) {
			return &permanentError{err}
		}
		return err
	}
	d.Result = res
	return nil
}

// invalid reports the 4xx-class errors of recording: retrying cannot help.
func invalid(err error) bool {
	for _, target := range []error{tracking.ErrInvalid, tracking.ErrRuleViolation, tracking.ErrNotFound,
		eventstore.ErrInvalid, eventstore.ErrWrongExpectedVersion, eventstore.ErrDuplicateEvent, eventstore.ErrEntityTypeMismatch} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
