package tracking

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types of the tracking vocabulary (DESIGN §4).
const (
	TypeEntityRegistered   = "EntityRegistered"
	TypeMilestoneReached   = "MilestoneReached"
	TypeLocationReported   = "LocationReported"
	TypeOperationStarted   = "OperationStarted"
	TypeOperationCompleted = "OperationCompleted"
	TypeExceptionRaised    = "ExceptionRaised"
	TypeExceptionResolved  = "ExceptionResolved"
	TypeEtaUpdated         = "EtaUpdated"
	TypeEntityAssociated   = "EntityAssociated"
	TypeEntityDissociated  = "EntityDissociated"

	// CustomTypePrefix starts the type of a custom event, "x-<name>". Custom
	// events carry any JSON object; they are stored and shown on the timeline
	// but ignored by derived state.
	CustomTypePrefix = "x-"
)

// EventSchemaVersion is the schema version recorded with every event written
// by this package.
const EventSchemaVersion = 1

// Milestones of MilestoneReached.
const (
	MilestonePickedUp       = "picked_up"
	MilestoneDeparted       = "departed"
	MilestoneArrived        = "arrived"
	MilestoneInTransit      = "in_transit"
	MilestoneCustomsCleared = "customs_cleared"
	MilestoneOutForDelivery = "out_for_delivery"
	MilestoneDelivered      = "delivered"
	MilestoneReturned       = "returned"
	MilestoneCancelled      = "cancelled"
)

// Outcomes of OperationCompleted.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
)

// Exception codes of ExceptionRaised.
const (
	ExceptionDelay       = "delay"
	ExceptionDamage      = "damage"
	ExceptionLost        = "lost"
	ExceptionTemperature = "temperature"
	ExceptionAddress     = "address"
	ExceptionCustoms     = "customs"
	ExceptionOther       = "other"
	// ExceptionStale and ExceptionDwell are the codes of exceptions alert
	// rules derive (no news for too long; too long at a site); a derived
	// delay has ExceptionDelay.
	ExceptionStale = "stale"
	ExceptionDwell = "dwell"
)

// Severities of ExceptionRaised.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Bounds on payload strings, in characters.
const (
	MaxIDLength       = 200  // ids, references, site ids, sources
	MaxTextLength     = 2000 // free text: descriptions, origin, attribute values
	MaxAttributes     = 50   // keys of EntityRegistered.attributes
	maxOperationName  = 64
	maxCustomTypeName = 100
)

func milestones() []string {
	return []string{MilestonePickedUp, MilestoneDeparted, MilestoneArrived, MilestoneInTransit,
		MilestoneCustomsCleared, MilestoneOutForDelivery, MilestoneDelivered, MilestoneReturned, MilestoneCancelled}
}

func outcomes() []string { return []string{OutcomeSucceeded, OutcomeFailed} }

// ExceptionCodes lists the codes an ExceptionRaised may carry (the alert
// rules' kinds among them).
func ExceptionCodes() []string { return exceptionCodes() }

func exceptionCodes() []string {
	return []string{ExceptionDelay, ExceptionDamage, ExceptionLost, ExceptionTemperature,
		ExceptionAddress, ExceptionCustoms, ExceptionOther, ExceptionStale, ExceptionDwell}
}

func severities() []string {
	return []string{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// Payload is the decoded data of one event: one of the value types of this
// file (EntityRegistered, MilestoneReached, ..., CustomPayload). The set is
// closed; switch on the concrete type.
type Payload interface {
	// EventType returns the event type the payload belongs to.
	EventType() string
	isPayload()
}

// GeoPoint is a WGS 84 coordinate.
type GeoPoint struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// EntityRegistered introduces an entity. Every field is optional; an entity is
// registered at most once.
type EntityRegistered struct {
	Reference        string            `json:"reference,omitempty"`
	Attributes       map[string]string `json:"attributes,omitempty"`
	Origin           string            `json:"origin,omitempty"`
	Destination      string            `json:"destination,omitempty"`
	PlannedDeparture time.Time         `json:"plannedDeparture,omitzero"`
	PlannedArrival   time.Time         `json:"plannedArrival,omitzero"`
}

// MilestoneReached reports a milestone of the entity's journey, optionally
// where it happened and when it was planned.
type MilestoneReached struct {
	Milestone string    `json:"milestone"`
	SiteID    string    `json:"siteId,omitempty"`
	Location  *GeoPoint `json:"location,omitempty"`
	PlannedAt time.Time `json:"plannedAt,omitzero"`
	// CarrierStatus is the reporting carrier's own status code or text,
	// kept as reported beside the milestone it maps to (README: the status
	// model).
	CarrierStatus string `json:"carrierStatus,omitempty"`
}

// LocationReported reports a position fix.
type LocationReported struct {
	Lat            float64  `json:"lat"`
	Lon            float64  `json:"lon"`
	AccuracyMeters *float64 `json:"accuracyMeters,omitempty"`
	SpeedKph       *float64 `json:"speedKph,omitempty"`
	SiteID         string   `json:"siteId,omitempty"`
}

// OperationStarted reports the start of an operation (loading, sorting, ...),
// identified by OperationID.
type OperationStarted struct {
	Operation   string `json:"operation"`
	OperationID string `json:"operationId"`
	SiteID      string `json:"siteId,omitempty"`
}

// OperationCompleted reports the end of an operation started earlier.
type OperationCompleted struct {
	Operation   string `json:"operation"`
	OperationID string `json:"operationId"`
	SiteID      string `json:"siteId,omitempty"`
	Outcome     string `json:"outcome"`
}

// ExceptionRaised opens an exception (delay, damage, ...).
type ExceptionRaised struct {
	ExceptionID string `json:"exceptionId"`
	Code        string `json:"code"`
	Severity    string `json:"severity"`
	Description string `json:"description,omitempty"`
}

// ExceptionResolved closes an open exception.
type ExceptionResolved struct {
	ExceptionID string `json:"exceptionId"`
	Resolution  string `json:"resolution,omitempty"`
}

// EtaUpdated reports a new estimated time of arrival.
type EtaUpdated struct {
	ETA    time.Time `json:"eta"`
	Source string    `json:"source,omitempty"`
}

// EntityAssociated puts the entity into or onto a parent entity (a package
// into a container, a container onto a vehicle).
type EntityAssociated struct {
	ParentID string `json:"parentId"`
}

// EntityDissociated takes the entity out of a parent entity.
type EntityDissociated struct {
	ParentID string `json:"parentId"`
}

// CustomPayload is the data of a custom "x-<name>" event: any JSON object,
// kept compacted.
type CustomPayload struct {
	Type string
	Data json.RawMessage
}

// MarshalJSON returns the custom data itself.
func (p CustomPayload) MarshalJSON() ([]byte, error) { return p.Data, nil }

// EventType implements Payload.
func (EntityRegistered) EventType() string { return TypeEntityRegistered }

// EventType implements Payload.
func (MilestoneReached) EventType() string { return TypeMilestoneReached }

// EventType implements Payload.
func (LocationReported) EventType() string { return TypeLocationReported }

// EventType implements Payload.
func (OperationStarted) EventType() string { return TypeOperationStarted }

// EventType implements Payload.
func (OperationCompleted) EventType() string { return TypeOperationCompleted }

// EventType implements Payload.
func (ExceptionRaised) EventType() string { return TypeExceptionRaised }

// EventType implements Payload.
func (ExceptionResolved) EventType() string { return TypeExceptionResolved }

// EventType implements Payload.
func (EtaUpdated) EventType() string { return TypeEtaUpdated }

// EventType implements Payload.
func (EntityAssociated) EventType() string { return TypeEntityAssociated }

// EventType implements Payload.
func (EntityDissociated) EventType() string { return TypeEntityDissociated }

// EventType implements Payload.
func (p CustomPayload) EventType() string { return p.Type }

func (EntityRegistered) isPayload()   {}
func (MilestoneReached) isPayload()   {}
func (LocationReported) isPayload()   {}
func (OperationStarted) isPayload()   {}
func (OperationCompleted) isPayload() {}
func (ExceptionRaised) isPayload()    {}
func (ExceptionResolved) isPayload()  {}
func (EtaUpdated) isPayload()         {}
func (EntityAssociated) isPayload()   {}
func (EntityDissociated) isPayload()  {}
func (CustomPayload) isPayload()      {}

// IsCustomType reports whether t is a well-formed custom event type
// "x-<name>", name matching ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$.
func IsCustomType(t string) bool {
	name, ok := strings.CutPrefix(t, CustomTypePrefix)
	if !ok || name == "" || len(name) > maxCustomTypeName || !isASCIIAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isASCIIAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// IsOperationName reports whether s is a valid operation name: the vocabulary
// is open (loading, unloading, sorting, customs, transit, delivery, ...) but
// names match ^[a-z][a-z0-9_]{0,63}$.
func IsOperationName(s string) bool {
	if s == "" || len(s) > maxOperationName || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

// IsEntityID reports whether s is a valid entity id:
// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$.
func IsEntityID(s string) bool {
	if s == "" || len(s) > MaxIDLength || !isASCIIAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isASCIIAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// DecodePayload decodes and validates the data of one event, strictly: the
// data must be one JSON object with no trailing data, field names must match
// exactly (case-sensitive) and appear once, unknown fields are rejected, enums,
// ranges, lengths and required fields are checked. Custom "x-<name>" types
// accept any JSON object. Any other type is invalid.
//
// Errors are a *ValidationError whose field paths are relative to the event:
// "type", "data", "data/lat", "data/location/lon", ...
func DecodePayload(eventType string, data json.RawMessage) (Payload, error) {
	var errs fieldErrors
	p := decodePayload(eventType, data, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeStored decodes the data of a stored event. Stored data passed
// DecodePayload when it was appended, so the standard library's decoder is
// enough, and it is several times faster than the strict decoder, which
// reports every field error of a request; the result is the same (a test
// holds the two to it). Data that does not decode or has a value outside an
// enumeration the fold keys on (milestone, outcome, exception code and
// severity), and custom or unknown types, go through DecodePayload; other
// bounds are not checked again.
func DecodeStored(eventType string, data json.RawMessage) (Payload, error) {
	var (
		p   Payload
		err error
	)
	switch eventType {
	case TypeEntityRegistered:
		var v EntityRegistered
		if err = json.Unmarshal(data, &v); err == nil {
			v.PlannedDeparture, v.PlannedArrival = utc(v.PlannedDeparture), utc(v.PlannedArrival)
			if len(v.Attributes) == 0 {
				v.Attributes = nil
			}
			p = v
		}
	case TypeMilestoneReached:
		var v MilestoneReached
		err = json.Unmarshal(data, &v)
		v.PlannedAt = utc(v.PlannedAt)
		p = v
		if !slices.Contains(milestones(), v.Milestone) {
			err = errNotStored
		}
	case TypeLocationReported:
		p, err = unmarshalStored[LocationReported](data)
	case TypeOperationStarted:
		p, err = unmarshalStored[OperationStarted](data)
	case TypeOperationCompleted:
		var v OperationCompleted
		err = json.Unmarshal(data, &v)
		p = v
		if !slices.Contains(outcomes(), v.Outcome) {
			err = errNotStored
		}
	case TypeExceptionRaised:
		var v ExceptionRaised
		err = json.Unmarshal(data, &v)
		p = v
		if !slices.Contains(exceptionCodes(), v.Code) || !slices.Contains(severities(), v.Severity) {
			err = errNotStored
		}
	case TypeExceptionResolved:
		p, err = unmarshalStored[ExceptionResolved](data)
	case TypeEtaUpdated:
		var v EtaUpdated
		err = json.Unmarshal(data, &v)
		v.ETA = utc(v.ETA)
		p = v
	case TypeEntityAssociated:
		p, err = unmarshalStored[EntityAssociated](data)
	case TypeEntityDissociated:
		p, err = unmarshalStored[EntityDissociated](data)
	default:
		return DecodePayload(eventType, data)
	}
	if err != nil {
		return DecodePayload(eventType, data)
	}
	return p, nil
}

// errNotStored marks data that DecodePayload would not have accepted.
var errNotStored = errors.New("not valid stored data")

func unmarshalStored[T Payload](data json.RawMessage) (Payload, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// utc returns t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func decodePayload(eventType string, data json.RawMessage, errs *fieldErrors) Payload {
	const root = "data"
	decode, known := decoders(eventType)
	if !known && !IsCustomType(eventType) {
		if eventType == "" {
			errs.add("type", "is required")
		} else {
			errs.add("type", "unknown event type %q: expected one of %s, or x-<name> for a custom event", eventType,
				strings.Join(EventTypes(), ", "))
		}
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		errs.add(root, "is required")
		return nil
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		errs.add(root, "is not valid UTF-8 JSON (or has trailing data)")
		return nil
	}
	if !known {
		if firstByte(data) != '{' {
			errs.add(root, "must be a JSON object")
			return nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			errs.add(root, "is not valid JSON")
			return nil
		}
		return CustomPayload{Type: eventType, Data: json.RawMessage(buf.Bytes())}
	}
	before := len(errs.list)
	p := decode(data, root, errs)
	if len(errs.list) > before {
		return nil
	}
	return p
}

// decoders returns the decoder of a vocabulary type.
// EventTypes lists the standard event types.
func EventTypes() []string {
	return []string{TypeEntityRegistered, TypeMilestoneReached, TypeLocationReported, TypeOperationStarted,
		TypeOperationCompleted, TypeExceptionRaised, TypeExceptionResolved, TypeEtaUpdated,
		TypeEntityAssociated, TypeEntityDissociated}
}

func decoders(eventType string) (func(json.RawMessage, string, *fieldErrors) Payload, bool) {
	switch eventType {
	case TypeEntityRegistered:
		return decodeRegistered, true
	case TypeMilestoneReached:
		return decodeMilestone, true
	case TypeLocationReported:
		return decodeLocation, true
	case TypeOperationStarted:
		return decodeOperationStarted, true
	case TypeOperationCompleted:
		return decodeOperationCompleted, true
	case TypeExceptionRaised:
		return decodeExceptionRaised, true
	case TypeExceptionResolved:
		return decodeExceptionResolved, true
	case TypeEtaUpdated:
		return decodeEta, true
	case TypeEntityAssociated:
		return func(d json.RawMessage, path string, errs *fieldErrors) Payload {
			o := parseObject(d, path, errs, "parentId")
			return EntityAssociated{ParentID: o.entityID("parentId", true)}
		}, true
	case TypeEntityDissociated:
		return func(d json.RawMessage, path string, errs *fieldErrors) Payload {
			o := parseObject(d, path, errs, "parentId")
			return EntityDissociated{ParentID: o.entityID("parentId", true)}
		}, true
	}
	return nil, false
}

func decodeRegistered(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "reference", "attributes", "origin", "destination", "plannedDeparture", "plannedArrival")
	p := EntityRegistered{
		Reference:        o.str("reference", false, MaxIDLength),
		Attributes:       o.attributes("attributes"),
		Origin:           o.str("origin", false, MaxTextLength),
		Destination:      o.str("destination", false, MaxTextLength),
		PlannedDeparture: o.time("plannedDeparture", false),
		PlannedArrival:   o.time("plannedArrival", false),
	}
	if !p.PlannedDeparture.IsZero() && !p.PlannedArrival.IsZero() && p.PlannedArrival.Before(p.PlannedDeparture) {
		errs.add(joinPath(path, "plannedArrival"), "must not be before plannedDeparture")
	}
	return p
}

func decodeMilestone(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "milestone", "siteId", "location", "plannedAt", "carrierStatus")
	p := MilestoneReached{
		Milestone:     o.enum("milestone", true, milestones()),
		SiteID:        o.str("siteId", false, MaxIDLength),
		PlannedAt:     o.time("plannedAt", false),
		CarrierStatus: o.str("carrierStatus", false, MaxIDLength),
	}
	if loc := o.object("location", "lat", "lon"); loc != nil {
		p.Location = &GeoPoint{Lat: loc.latitude("lat"), Lon: loc.longitude("lon")}
	}
	return p
}

func decodeLocation(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "lat", "lon", "accuracyMeters", "speedKph", "siteId")
	return LocationReported{
		Lat:            o.latitude("lat"),
		Lon:            o.longitude("lon"),
		AccuracyMeters: o.nonNegative("accuracyMeters"),
		SpeedKph:       o.nonNegative("speedKph"),
		SiteID:         o.str("siteId", false, MaxIDLength),
	}
}

func decodeOperationStarted(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "operation", "operationId", "siteId")
	return OperationStarted{
		Operation:   o.operation("operation"),
		OperationID: o.str("operationId", true, MaxIDLength),
		SiteID:      o.str("siteId", false, MaxIDLength),
	}
}

func decodeOperationCompleted(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "operation", "operationId", "siteId", "outcome")
	return OperationCompleted{
		Operation:   o.operation("operation"),
		OperationID: o.str("operationId", true, MaxIDLength),
		SiteID:      o.str("siteId", false, MaxIDLength),
		Outcome:     o.enum("outcome", true, outcomes()),
	}
}

func decodeExceptionRaised(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "exceptionId", "code", "severity", "description")
	return ExceptionRaised{
		ExceptionID: o.str("exceptionId", true, MaxIDLength),
		Code:        o.enum("code", true, exceptionCodes()),
		Severity:    o.enum("severity", true, severities()),
		Description: o.str("description", false, MaxTextLength),
	}
}

func decodeExceptionResolved(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "exceptionId", "resolution")
	return ExceptionResolved{
		ExceptionID: o.str("exceptionId", true, MaxIDLength),
		Resolution:  o.str("resolution", false, MaxTextLength),
	}
}

func decodeEta(d json.RawMessage, path string, errs *fieldErrors) Payload {
	o := parseObject(d, path, errs, "eta", "source")
	return EtaUpdated{
		ETA:    o.time("eta", true),
		Source: o.str("source", false, MaxIDLength),
	}
}
