package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// CloudEvents attributes and conventions of tracktrace's messages.
const (
	// SpecVersion is the CloudEvents version of every message.
	SpecVersion = "1.0"
	// DefaultSource is the CloudEvents source of every message unless
	// RelayOptions.Source says otherwise.
	DefaultSource = "tracktrace"
	// TypePrefix starts the CloudEvents type of a domain event:
	// tracktrace.<EventType>.v<schemaVersion>.
	TypePrefix = "tracktrace."
	// IntegrationTypePrefix starts the CloudEvents type of an integration
	// event: tracktrace.integration.<Kind>.v<n>.
	IntegrationTypePrefix = "tracktrace.integration."
	// ContentType is the Kafka content-type header of structured-mode
	// CloudEvents (CloudEvents Kafka protocol binding, 3.2).
	ContentType = "application/cloudevents+json"
	// DataContentType is the datacontenttype of every message.
	DataContentType = "application/json"
)

// envelope is a CloudEvent in the structured JSON format, with tracktrace's
// extension attributes. Stream version and position are strings: the
// CloudEvents Integer type is 32-bit, and a global position may outgrow it.
type envelope struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject,omitempty"`
	Time            string `json:"time,omitempty"`
	DataContentType string `json:"datacontenttype,omitempty"`

	TenantID      string `json:"tenantid,omitempty"`
	EntityType    string `json:"entitytype,omitempty"`
	StreamVersion string `json:"streamversion,omitempty"`
	Position      string `json:"position,omitempty"`
	RecordedAt    string `json:"recordedat,omitempty"`
	CorrelationID string `json:"correlationid,omitempty"`
	CausationID   string `json:"causationid,omitempty"`
	Principal     string `json:"principal,omitempty"`
	// EventSource is the reporting system named in the event's metadata
	// (Metadata.Source), not the CloudEvents source (the producer).
	EventSource string `json:"eventsource,omitempty"`
	// TraceID is the event's metadata trace id as recorded, which need not
	// be a W3C trace id (the traceparent header carries that).
	TraceID string `json:"traceid,omitempty"`

	Data json.RawMessage `json:"data,omitempty"`
}

// EncodeCloudEvent encodes a recorded event as a CloudEvents 1.0 structured
// JSON message with source DefaultSource. See EncodeCloudEventFrom.
func EncodeCloudEvent(r eventstore.Recorded) ([]byte, error) {
	return EncodeCloudEventFrom(DefaultSource, r)
}

// EncodeCloudEventFrom encodes a recorded event as a CloudEvents 1.0
// structured JSON message: id = event id, the given source, type
// tracktrace.<EventType>.v<schemaVersion>, subject = entity id, time =
// occurredAt, data = the event data as JSON, and the extensions tenantid,
// entitytype, streamversion, position, recordedat, correlationid,
// causationid, principal, eventsource and traceid (empty ones omitted).
// Data is embedded byte for byte (compacted JSON stays as stored), so
// DecodeCloudEvent returns the stored event.
func EncodeCloudEventFrom(source string, r eventstore.Recorded) ([]byte, error) {
	e, err := envelopeOf(source, r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(e.Data)) == 0 {
		e.Data = json.RawMessage("null")
	}
	return marshal(e)
}

// encodeIdentity encodes an event as EncodeCloudEventFrom does, without its
// data: what a dead letter of an event too large to publish carries.
func encodeIdentity(source string, r eventstore.Recorded) ([]byte, error) {
	e, err := envelopeOf(source, r)
	if err != nil {
		return nil, err
	}
	e.Data = nil
	return marshal(e)
}

// envelopeOf is the CloudEvent of a recorded event.
func envelopeOf(source string, r eventstore.Recorded) (envelope, error) {
	if r.ID == uuid.Nil || r.Type == "" || r.Tenant == "" || r.StreamID == "" || r.Version < 1 {
		return envelope{}, errors.New("kafka: encode: the event lacks an id, type, tenant, stream id or version")
	}
	if source == "" {
		source = DefaultSource
	}
	sv := r.SchemaVersion
	if sv < 1 {
		sv = 1
	}
	e := envelope{
		SpecVersion:     SpecVersion,
		ID:              r.ID.String(),
		Source:          source,
		Type:            TypePrefix + r.Type + ".v" + strconv.Itoa(sv),
		Subject:         r.StreamID,
		Time:            formatTime(r.OccurredAt),
		DataContentType: DataContentType,
		TenantID:        r.Tenant,
		EntityType:      r.EntityType,
		StreamVersion:   strconv.FormatInt(r.Version, 10),
		Position:        strconv.FormatInt(r.Position, 10),
		RecordedAt:      formatTime(r.RecordedAt),
		CorrelationID:   r.Metadata.CorrelationID,
		CausationID:     r.Metadata.CausationID,
		Principal:       r.Metadata.Principal,
		EventSource:     r.Metadata.Source,
		TraceID:         r.Metadata.TraceID,
		Data:            r.Data,
	}
	return e, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// marshal encodes without HTML escaping, so data keeps its stored bytes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("kafka: encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeCloudEvent decodes a domain event written by EncodeCloudEvent back
// into the recorded event (its Cursor holds only the position). It rejects
// messages that are not valid CloudEvents or lack tracktrace's attributes.
func DecodeCloudEvent(b []byte) (eventstore.Recorded, error) {
	if err := ValidateCloudEvent(b); err != nil {
		return eventstore.Recorded{}, err
	}
	var e envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return eventstore.Recorded{}, fmt.Errorf("kafka: decode cloudevent: %w", err)
	}
	var r eventstore.Recorded
	var err error
	if r.ID, err = uuid.Parse(e.ID); err != nil || r.ID == uuid.Nil {
		return r, fmt.Errorf("kafka: decode cloudevent: id %q is not a UUID (other than the nil UUID)", e.ID)
	}
	if r.Type, r.SchemaVersion, err = parseDomainType(e.Type); err != nil {
		return r, err
	}
	if e.TenantID == "" || e.Subject == "" {
		return r, errors.New("kafka: decode cloudevent: tenantid and subject are required")
	}
	r.Tenant, r.StreamID, r.EntityType = e.TenantID, e.Subject, e.EntityType
	if r.Version, err = strconv.ParseInt(e.StreamVersion, 10, 64); err != nil || r.Version < 1 {
		return r, fmt.Errorf("kafka: decode cloudevent: streamversion %q is not a positive integer", e.StreamVersion)
	}
	if e.Position != "" {
		if r.Position, err = strconv.ParseInt(e.Position, 10, 64); err != nil || r.Position < 0 {
			return r, fmt.Errorf("kafka: decode cloudevent: position %q is not a non-negative integer", e.Position)
		}
	}
	r.Cursor = eventstore.Cursor{Position: r.Position}
	if e.Time == "" {
		return r, errors.New("kafka: decode cloudevent: time is required")
	}
	if r.OccurredAt, err = time.Parse(time.RFC3339Nano, e.Time); err != nil {
		return r, fmt.Errorf("kafka: decode cloudevent: time %q is not RFC 3339", e.Time)
	}
	r.OccurredAt = r.OccurredAt.UTC()
	if e.RecordedAt != "" {
		if r.RecordedAt, err = time.Parse(time.RFC3339Nano, e.RecordedAt); err != nil {
			return r, fmt.Errorf("kafka: decode cloudevent: recordedat %q is not RFC 3339", e.RecordedAt)
		}
		r.RecordedAt = r.RecordedAt.UTC()
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return r, errors.New("kafka: decode cloudevent: data is required")
	}
	r.Data = e.Data
	r.Metadata = eventstore.Metadata{CorrelationID: e.CorrelationID, CausationID: e.CausationID,
		Source: e.EventSource, Principal: e.Principal, TraceID: e.TraceID}
	return r, nil
}

// parseDomainType splits tracktrace.<EventType>.v<n>.
func parseDomainType(t string) (string, int, error) {
	bad := fmt.Errorf("kafka: decode cloudevent: type %q is not tracktrace.<EventType>.v<n>", t)
	if !strings.HasPrefix(t, TypePrefix) || strings.HasPrefix(t, IntegrationTypePrefix) {
		return "", 0, bad
	}
	rest := strings.TrimPrefix(t, TypePrefix)
	i := strings.LastIndex(rest, ".v")
	if i <= 0 {
		return "", 0, bad
	}
	n, err := strconv.Atoi(rest[i+2:])
	if err != nil || n < 1 || rest[i+2] == '+' {
		return "", 0, bad
	}
	return rest[:i], n, nil
}

// ValidateCloudEvent checks a structured-mode JSON CloudEvent against the
// CloudEvents 1.0 specification: one JSON object; specversion "1.0"; id,
// source and type non-empty strings; optional subject non-empty, time an
// RFC 3339 timestamp, datacontenttype a string; data and data_base64 not
// both present; every other attribute named with 1 to 20 lowercase ASCII
// letters or digits, with a string, boolean or 32-bit integer value. It also
// requires the datacontenttype of JSON data to be a JSON media type.
func ValidateCloudEvent(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("cloudevent: not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var attrs map[string]any
	if err := dec.Decode(&attrs); err != nil {
		return fmt.Errorf("cloudevent: not a JSON object: %w", err)
	}
	if attrs == nil {
		return errors.New("cloudevent: not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("cloudevent: trailing data after the JSON object")
	}
	var errs []error
	str := func(name string, required bool) string {
		v, ok := attrs[name]
		if !ok || v == nil {
			if required {
				errs = append(errs, fmt.Errorf("cloudevent: %s is required", name))
			}
			return ""
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Errorf("cloudevent: %s must be a string", name))
			return ""
		}
		if s == "" {
			errs = append(errs, fmt.Errorf("cloudevent: %s must not be empty", name))
		}
		return s
	}
	if sv := str("specversion", true); sv != "" && sv != SpecVersion {
		errs = append(errs, fmt.Errorf("cloudevent: specversion %q, want %q", sv, SpecVersion))
	}
	str("id", true)
	str("source", true)
	str("type", true)
	str("subject", false)
	if t := str("time", false); t != "" {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			errs = append(errs, fmt.Errorf("cloudevent: time %q is not RFC 3339", t))
		}
	}
	ct := str("datacontenttype", false)
	str("dataschema", false)
	_, hasData := attrs["data"]
	_, hasB64 := attrs["data_base64"]
	if hasData && hasB64 {
		errs = append(errs, errors.New("cloudevent: data and data_base64 are mutually exclusive"))
	}
	if hasData && ct != "" && !isJSONMediaType(ct) {
		if _, isString := attrs["data"].(string); !isString {
			errs = append(errs, fmt.Errorf("cloudevent: JSON data with datacontenttype %q", ct))
		}
	}
	for name, v := range attrs {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64":
			continue
		}
		if !validAttributeName(name) {
			errs = append(errs, fmt.Errorf("cloudevent: attribute name %q must be 1 to 20 lowercase letters or digits", name))
			continue
		}
		switch x := v.(type) {
		case string, bool, nil:
		case json.Number:
			n, err := x.Int64()
			if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
				errs = append(errs, fmt.Errorf("cloudevent: attribute %s: %s is not a 32-bit integer", name, x))
			}
		default:
			errs = append(errs, fmt.Errorf("cloudevent: attribute %s must be a string, boolean or integer", name))
		}
	}
	return errors.Join(errs...)
}

func validAttributeName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isJSONMediaType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
