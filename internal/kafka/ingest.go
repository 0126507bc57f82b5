package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Recorder records events under the domain's rules (tracking.Service).
type Recorder interface {
	Record(ctx context.Context, cmd tracking.RecordCommand) (eventstore.AppendResult, error)
	// RecordBatch records many commands, each answered as Record would.
	RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome
}

// DecodeIngestMessage decodes one message of the ingest topic, the body of
// POST /api/v1/events/batch's items (the REST append body plus entityId),
// strictly: one JSON document, unknown fields rejected, as the REST API does.
func DecodeIngestMessage(b []byte) (tracking.AppendRequest, error) {
	var m tracking.AppendRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return tracking.AppendRequest{}, fmt.Errorf("kafka: ingest message: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tracking.AppendRequest{}, errors.New("kafka: ingest message: trailing data after the JSON document")
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

// IngestCommand turns an ingest message into a tracking command for a
// tenant, with source "kafka:<topic>". Events without an eventId get
// IngestEventID(topic, partition, offset, index).
func IngestCommand(m *tracking.AppendRequest, tenant, topic string, partition int32, offset int64) (tracking.RecordCommand, error) {
	cmd, err := m.Command(tenant, m.EntityID)
	if err != nil {
		return tracking.RecordCommand{}, fmt.Errorf("kafka: ingest message: %w", err)
	}
	cmd.Source = "kafka:" + topic
	for i := range cmd.Events {
		if cmd.Events[i].ID == uuid.Nil {
			cmd.Events[i].ID = IngestEventID(topic, partition, offset, i)
		}
	}
	return cmd, nil
}

// NewIngestConsumer returns a consumer of the ingest topic that records each
// message through rec. A message's tenant is one its producer cannot choose
// unless told to trust it:
//
//   - with opts.TenantTopics (a topic per tenant), the tenant whose topic
//     it is: Kafka ACLs that let each tenant's producer write its own
//     topic only make the tenant the producer's;
//   - on a single topic, opts.DefaultTenant;
//   - on a single topic with opts.TrustTenantHeader, its "tenant" header
//     (opts.DefaultTenant without one): any producer of the topic can
//     record events for any tenant.
//
// A "tenant" header naming another tenant than the message's goes to
// <topic>.dlq (ReasonTenantMismatch). A traceparent header's trace id is
// stamped on events without their own. Invalid messages (undecodable,
// failing validation or a domain rule, conflicting with the stream) go to
// <topic>.dlq at once; failures of an unavailable store are retried until
// it is back. The client must be created with IngestConsumerOpts; the
// caller closes it after Run.
func NewIngestConsumer(client *kgo.Client, rec Recorder, opts ConsumerOptions) *Consumer {
	c := newConsumer(client, nil, opts)
	c.h = &ingestHandler{rec: rec, defaultTenant: c.opts.DefaultTenant, tenantTopics: opts.TenantTopics,
		trustHeader: opts.TrustTenantHeader && opts.TenantTopics == ""}
	return c
}

// errTenantMismatch: an ingest message's tenant header names another
// tenant than the message's.
var errTenantMismatch = errors.New("the tenant header names another tenant than the message's")

type ingestHandler struct {
	rec           Recorder
	defaultTenant string
	tenantTopics  string
	trustHeader   bool
}

// tenant returns the tenant of an ingest message (see NewIngestConsumer).
func (h *ingestHandler) tenant(rec *kgo.Record) (string, error) {
	claimed := header(rec, HeaderIngestTenant)
	owner := h.defaultTenant
	switch {
	case h.tenantTopics != "":
		t, ok := TenantOfIngestTopic(h.tenantTopics, rec.Topic)
		if !ok {
			return "", fmt.Errorf("kafka: topic %s is no tenant's ingest topic (%s)", rec.Topic, h.tenantTopics)
		}
		owner = t
	case h.trustHeader && claimed != "":
		return claimed, nil
	}
	if claimed != "" && claimed != owner {
		return "", fmt.Errorf("kafka: ingest message: %w: topic %s is tenant %q's, the header names %q",
			errTenantMismatch, rec.Topic, owner, claimed)
	}
	return owner, nil
}

// errBatchItemFailed: an item of an ingest batch failed; the partition's
// records are handled one by one (the recorded ones replay: their event ids
// derive from their offsets), which retries or dead-letters the failed one.
// (It is an errNoBatch: the per-message handling reports what failed.)
var errBatchItemFailed = fmt.Errorf("%w: an ingest item failed", errNoBatch)

// batch records a partition's poll with one RecordBatch (its entities loaded
// together, its appends in one group commit). Any message that does not
// decode or record fails the batch, and the consumer takes the messages one
// by one.
func (h *ingestHandler) batch(ctx context.Context, recs []*kgo.Record, ds []Delivery) error {
	cmds := make([]tracking.RecordCommand, len(recs))
	for i, rec := range recs {
		cmd, err := h.command(rec, &ds[i])
		if err != nil {
			return errBatchItemFailed
		}
		cmds[i] = cmd
	}
	outs := h.rec.RecordBatch(ctx, cmds)
	for _, o := range outs {
		if o.Err != nil {
			return fmt.Errorf("%w: %w", errBatchItemFailed, o.Err)
		}
	}
	for i, o := range outs {
		ds[i].Result = o.Result
	}
	return nil
}

// command turns a message into the command it asks for.
func (h *ingestHandler) command(rec *kgo.Record, d *Delivery) (tracking.RecordCommand, error) {
	m, err := DecodeIngestMessage(rec.Value)
	if err != nil {
		return tracking.RecordCommand{}, &permanentError{err}
	}
	tenant, err := h.tenant(rec)
	if err != nil {
		return tracking.RecordCommand{}, &permanentError{err}
	}
	cmd, err := IngestCommand(&m, tenant, rec.Topic, rec.Partition, rec.Offset)
	if err != nil {
		return tracking.RecordCommand{}, &permanentError{err}
	}
	if traceID, _, ok := ParseTraceParent(d.TraceParent); ok {
		cmd.TraceID = traceID
	}
	return cmd, nil
}

func (h *ingestHandler) one(ctx context.Context, rec *kgo.Record, d *Delivery) error {
	cmd, err := h.command(rec, d)
	if err != nil {
		return err
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
