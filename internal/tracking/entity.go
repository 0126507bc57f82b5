package tracking

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Status values of an entity.
const (
	StatusRegistered     = "registered"
	StatusInTransit      = "in_transit"
	StatusOutForDelivery = "out_for_delivery"
	StatusDelivered      = "delivered"
	StatusReturned       = "returned"
	StatusCancelled      = "cancelled"
)

// Statuses lists the status values, in the order an entity usually goes.
func Statuses() []string {
	return []string{StatusRegistered, StatusInTransit, StatusOutForDelivery, StatusDelivered, StatusReturned, StatusCancelled}
}

// StatusOf maps a milestone to the status it puts an entity in: picked_up,
// departed, in_transit, arrived and customs_cleared → in_transit; the other
// milestones are statuses of the same name. An unknown milestone maps to "".
func StatusOf(milestone string) string {
	switch milestone {
	case MilestonePickedUp, MilestoneDeparted, MilestoneInTransit, MilestoneArrived, MilestoneCustomsCleared:
		return StatusInTransit
	case MilestoneOutForDelivery:
		return StatusOutForDelivery
	case MilestoneDelivered:
		return StatusDelivered
	case MilestoneReturned:
		return StatusReturned
	case MilestoneCancelled:
		return StatusCancelled
	}
	return ""
}

// OperationDuration returns completed − started in seconds (negative when
// completed is earlier, which the aggregate never accepts).
func OperationDuration(started, completed time.Time) float64 {
	return completed.Sub(started).Seconds()
}

// OnTime reports whether a milestone that occurred at occurredAt and was
// planned at plannedAt is on time: occurredAt − plannedAt ≤ tolerance. Early is
// on time.
func OnTime(occurredAt, plannedAt time.Time, tolerance time.Duration) bool {
	return occurredAt.Sub(plannedAt) <= tolerance
}

// LastLocation is the newest known position of an entity.
type LastLocation struct {
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	SiteID     string    `json:"siteId,omitempty"`
	OccurredAt time.Time `json:"occurredAt"`
}

// OpenException is an exception raised and not yet resolved.
type OpenException struct {
	ExceptionID string    `json:"exceptionId"`
	Code        string    `json:"code"`
	Severity    string    `json:"severity"`
	Description string    `json:"description,omitempty"`
	RaisedAt    time.Time `json:"raisedAt"`
}

// OpenOperation is an operation started and not yet completed.
type OpenOperation struct {
	Operation string    `json:"operation"`
	SiteID    string    `json:"siteId,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	// Version is the stream version of the OperationStarted event.
	Version int64 `json:"version"`
}

// EntityState is the current state of an entity, ready to be rendered as JSON
// (GET /api/v1/entities/{entityId}). OpenExceptions is never nil.
type EntityState struct {
	EntityID         string            `json:"entityId"`
	EntityType       string            `json:"entityType"`
	Version          int64             `json:"version"`
	Status           string            `json:"status"`
	LastLocation     *LastLocation     `json:"lastLocation,omitempty"`
	OpenExceptions   []OpenException   `json:"openExceptions"`
	ETA              *time.Time        `json:"eta,omitempty"`
	ParentID         string            `json:"parentId,omitempty"`
	UpdatedAt        time.Time         `json:"updatedAt"`
	RegisteredAt     *time.Time        `json:"registeredAt,omitempty"`
	Reference        string            `json:"reference,omitempty"`
	Origin           string            `json:"origin,omitempty"`
	Destination      string            `json:"destination,omitempty"`
	PlannedDeparture *time.Time        `json:"plannedDeparture,omitempty"`
	PlannedArrival   *time.Time        `json:"plannedArrival,omitempty"`
	Attributes       map[string]string `json:"attributes,omitempty"`
}

// mark remembers which event set a derived field: its business time and
// version. The zero mark means "never set".
type mark struct {
	At      time.Time `json:"at"`
	Version int64     `json:"v"`
}

// supersededBy reports whether an event at (at, version) is newer than the one
// that set the mark: later occurredAt, ties broken by the higher version.
func (m mark) supersededBy(at time.Time, version int64) bool {
	if m.Version == 0 {
		return true
	}
	return at.After(m.At) || at.Equal(m.At) && version > m.Version
}

// registration is what EntityRegistered sets.
type registration struct {
	At      time.Time        `json:"at"`
	Payload EntityRegistered `json:"payload"`
}

// Entity is the aggregate of one tracked entity. Its state is derived from the
// entity's events by Apply; its command method Decide checks new events
// against the invariants before they are appended. An Entity is not safe for
// concurrent use.
//
// Every field is also the snapshot schema (see MarshalSnapshot), so that a
// restored Entity equals the one it was taken from.
type Entity struct {
	id         string
	entityType string
	version    int64
	updatedAt  time.Time

	registered *registration

	milestone     string // newest milestone by occurredAt; "" → status registered
	milestoneMark mark

	location     *LastLocation
	locationMark mark

	exceptions []OpenException // in raise (arrival) order

	eta     time.Time
	etaMark mark

	// parent is the parentId of the newest association by occurredAt;
	// dissociations holds, by parent id, the newest dissociation that is newer
	// than that association. The current parent is parent unless dissociations
	// names it: exactly the fold of every association and dissociation in
	// (occurredAt, version) order, whatever order they arrived in.
	parent        string
	parentMark    mark
	dissociations map[string]mark

	operations map[string]OpenOperation // open operations by operationId
	// visits are the open visits to sites: the occurredAt of an arrived
	// with a siteId, by site id, until a departed with it (the metrics
	// projection's visit starts, kept so that a snapshot carries them).
	visits map[string]time.Time

	// incarnation is the stream incarnation the aggregate was loaded from
	// (0 before the stream exists): appends decided on it state it.
	incarnation int64
}

// NewEntity returns the aggregate of an entity that has no events yet.
func NewEntity(entityID string) *Entity {
	return &Entity{id: entityID}
}

// ID returns the entity id (the stream id).
func (e *Entity) ID() string { return e.id }

// Version returns the version of the newest applied event, 0 for none.
func (e *Entity) Version() int64 { return e.version }

// EntityType returns the entity type when known. Stream reads do not carry it;
// the Service fills it from the stream's metadata.
func (e *Entity) EntityType() string { return e.entityType }

// SetEntityType records the entity type of the stream, known from its metadata.
func (e *Entity) SetEntityType(t string) { e.entityType = t }

// Registered reports whether the entity has been registered.
func (e *Entity) Registered() bool { return e.registered != nil }

// Status returns the derived status (see StatusOf); "registered" until the
// first milestone.
func (e *Entity) Status() string {
	if e.milestone == "" {
		return StatusRegistered
	}
	return StatusOf(e.milestone)
}

// ParentID returns the current parent, "" for none.
func (e *Entity) ParentID() string {
	if _, gone := e.dissociations[e.parent]; gone {
		return ""
	}
	return e.parent
}

// OpenOperation returns the open operation with the given id. Projections use
// it to compute an operation's duration before applying its completion.
func (e *Entity) OpenOperation(operationID string) (OpenOperation, bool) {
	op, ok := e.operations[operationID]
	return op, ok
}

// IsExceptionOpen reports whether the exception is raised and not resolved.
func (e *Entity) IsExceptionOpen(exceptionID string) bool {
	return e.exceptionIndex(exceptionID) >= 0
}

func (e *Entity) exceptionIndex(id string) int {
	return slices.IndexFunc(e.exceptions, func(x OpenException) bool { return x.ExceptionID == id })
}

// State returns the derived state as its read type.
func (e *Entity) State() EntityState {
	s := EntityState{
		EntityID:       e.id,
		EntityType:     e.entityType,
		Version:        e.version,
		Status:         e.Status(),
		OpenExceptions: slices.Clone(e.exceptions),
		ParentID:       e.ParentID(),
		UpdatedAt:      e.updatedAt,
	}
	if s.OpenExceptions == nil {
		s.OpenExceptions = []OpenException{}
	}
	if e.location != nil {
		l := *e.location
		s.LastLocation = &l
	}
	if e.etaMark.Version != 0 {
		eta := e.eta
		s.ETA = &eta
	}
	if r := e.registered; r != nil {
		s.RegisteredAt = timePtr(r.At)
		s.Reference = r.Payload.Reference
		s.Origin = r.Payload.Origin
		s.Destination = r.Payload.Destination
		s.PlannedDeparture = timePtr(r.Payload.PlannedDeparture)
		s.PlannedArrival = timePtr(r.Payload.PlannedArrival)
		s.Attributes = maps.Clone(r.Payload.Attributes)
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Apply folds a stored event into the state. It cannot fail: events whose
// type is custom or unknown, or whose data does not decode, only advance the
// version. Events at or below the current version are ignored, so applying a
// redelivered event is harmless.
func (e *Entity) Apply(r eventstore.Recorded) {
	if r.Version <= e.version {
		return
	}
	p, err := DecodeStored(r.Type, r.Data)
	if err != nil {
		p = nil
	}
	if r.EntityType != "" {
		e.entityType = r.EntityType
	}
	if t := r.RecordedAt.UTC(); t.After(e.updatedAt) {
		e.updatedAt = t
	}
	e.apply(r.Version, r.OccurredAt.UTC(), p)
}

// apply is the pure state transition of one event.
func (e *Entity) apply(version int64, at time.Time, p Payload) {
	e.version = version
	switch p := p.(type) {
	case EntityRegistered:
		if e.registered == nil {
			e.registered = &registration{At: at, Payload: p}
		}
	case MilestoneReached:
		if e.milestoneMark.supersededBy(at, version) {
			e.milestone, e.milestoneMark = p.Milestone, mark{at, version}
		}
		if p.Location != nil {
			e.locate(LastLocation{Lat: p.Location.Lat, Lon: p.Location.Lon, SiteID: p.SiteID, OccurredAt: at}, version)
		}
		e.visit(p, at)
	case LocationReported:
		e.locate(LastLocation{Lat: p.Lat, Lon: p.Lon, SiteID: p.SiteID, OccurredAt: at}, version)
	case OperationStarted:
		if e.operations == nil {
			e.operations = map[string]OpenOperation{}
		}
		e.operations[p.OperationID] = OpenOperation{Operation: p.Operation, SiteID: p.SiteID, StartedAt: at, Version: version}
	case OperationCompleted:
		delete(e.operations, p.OperationID)
		if len(e.operations) == 0 {
			e.operations = nil
		}
	case ExceptionRaised:
		if e.exceptionIndex(p.ExceptionID) < 0 {
			e.exceptions = append(e.exceptions, OpenException{
				ExceptionID: p.ExceptionID, Code: p.Code, Severity: p.Severity, Description: p.Description, RaisedAt: at,
			})
		}
	case ExceptionResolved:
		if i := e.exceptionIndex(p.ExceptionID); i >= 0 {
			e.exceptions = slices.Delete(e.exceptions, i, i+1)
			if len(e.exceptions) == 0 {
				e.exceptions = nil
			}
		}
	case EtaUpdated:
		if e.etaMark.supersededBy(at, version) {
			e.eta, e.etaMark = p.ETA, mark{at, version}
		}
	case EntityAssociated:
		if e.parentMark.supersededBy(at, version) {
			e.parent, e.parentMark = p.ParentID, mark{at, version}
			// Dissociations older than the newest association no longer matter.
			maps.DeleteFunc(e.dissociations, func(_ string, m mark) bool {
				return !e.parentMark.supersededBy(m.At, m.Version)
			})
			if len(e.dissociations) == 0 {
				e.dissociations = nil
			}
		}
	case EntityDissociated:
		if e.parentMark.supersededBy(at, version) {
			if old, ok := e.dissociations[p.ParentID]; !ok || old.supersededBy(at, version) {
				if e.dissociations == nil {
					e.dissociations = map[string]mark{}
				}
				e.dissociations[p.ParentID] = mark{at, version}
			}
		}
	}
}

func (e *Entity) locate(l LastLocation, version int64) {
	if e.locationMark.supersededBy(l.OccurredAt, version) {
		e.location, e.locationMark = &l, mark{l.OccurredAt, version}
	}
}

// visit opens or closes a visit to a site, in the order events are applied
// (as MetricsOf does): an arrival replaces an open visit's start.
func (e *Entity) visit(p MilestoneReached, at time.Time) {
	if p.SiteID == "" {
		return
	}
	switch p.Milestone {
	case MilestoneArrived:
		if e.visits == nil {
			e.visits = map[string]time.Time{}
		}
		e.visits[p.SiteID] = at
	case MilestoneDeparted:
		delete(e.visits, p.SiteID)
		if len(e.visits) == 0 {
			e.visits = nil
		}
	}
}

// Change is a new event the aggregate is asked to accept: its decoded payload
// and its business time.
type Change struct {
	OccurredAt time.Time
	Payload    Payload
}

// Decide checks the changes one by one against the invariants, applying each
// accepted one as the next version, so a command can start and then complete
// an operation. It returns a *ViolationError (errors.Is ErrRuleViolation)
// naming the first offending change. Decide leaves the aggregate holding the
// pending changes (or some of them, on error): callers discard it afterwards.
//
// Invariants: registered at most once; an operation id already open cannot
// start again; an operation completes only while open (started earlier in
// arrival order), with the operation name it started with, and not before it
// started in business time; an exception id already open cannot be raised
// again and resolves only while open; an entity is not its own parent.
func (e *Entity) Decide(changes ...Change) error {
	for i, c := range changes {
		at := c.OccurredAt.UTC()
		if msg := e.check(at, c.Payload); msg != "" {
			return &ViolationError{Event: i, Message: msg}
		}
		e.apply(e.version+1, at, c.Payload)
	}
	return nil
}

// check returns the invariant a change would break, or "".
func (e *Entity) check(at time.Time, p Payload) string {
	switch p := p.(type) {
	case EntityRegistered:
		if e.registered != nil {
			return "the entity is already registered"
		}
	case OperationStarted:
		if _, open := e.operations[p.OperationID]; open {
			return fmt.Sprintf("operation %q is already in progress", p.OperationID)
		}
	case OperationCompleted:
		op, open := e.operations[p.OperationID]
		switch {
		case !open:
			return fmt.Sprintf("operation %q has not been started (or is already completed)", p.OperationID)
		case op.Operation != p.Operation:
			return fmt.Sprintf("operation %q was started as %q, not %q", p.OperationID, op.Operation, p.Operation)
		case at.Before(op.StartedAt):
			return fmt.Sprintf("operation %q cannot complete at %s, before it started at %s",
				p.OperationID, at.Format(time.RFC3339Nano), op.StartedAt.Format(time.RFC3339Nano))
		}
	case ExceptionRaised:
		if e.exceptionIndex(p.ExceptionID) >= 0 {
			return fmt.Sprintf("exception %q is already open", p.ExceptionID)
		}
	case ExceptionResolved:
		if e.exceptionIndex(p.ExceptionID) < 0 {
			return fmt.Sprintf("exception %q is not open", p.ExceptionID)
		}
	case EntityAssociated:
		if p.ParentID == e.id {
			return "an entity cannot be its own parent"
		}
	}
	return ""
}

// SnapshotSchemaVersion is the schema version of the state MarshalSnapshot
// writes. Snapshots of any other schema version are ignored on load.
const SnapshotSchemaVersion = 1

// snapshotV1 is the serialized Entity. Every field of Entity is here.
type snapshotV1 struct {
	ID            string                   `json:"id"`
	EntityType    string                   `json:"entityType,omitempty"`
	Version       int64                    `json:"version"`
	UpdatedAt     time.Time                `json:"updatedAt,omitzero"`
	Registered    *registration            `json:"registered,omitempty"`
	Milestone     string                   `json:"milestone,omitempty"`
	MilestoneMark mark                     `json:"milestoneMark,omitzero"`
	Location      *LastLocation            `json:"location,omitempty"`
	LocationMark  mark                     `json:"locationMark,omitzero"`
	Exceptions    []OpenException          `json:"exceptions,omitempty"`
	ETA           time.Time                `json:"eta,omitzero"`
	ETAMark       mark                     `json:"etaMark,omitzero"`
	Parent        string                   `json:"parent,omitempty"`
	ParentMark    mark                     `json:"parentMark,omitzero"`
	Dissociations map[string]mark          `json:"dissociations,omitempty"`
	Operations    map[string]OpenOperation `json:"operations,omitempty"`
	Visits        map[string]time.Time     `json:"visits,omitempty"`
}

// MarshalSnapshot serializes the whole aggregate, including the bookkeeping
// that derived fields need (which event set them), and returns it with its
// schema version.
func (e *Entity) MarshalSnapshot() (json.RawMessage, int) {
	s := snapshotV1{
		ID: e.id, EntityType: e.entityType, Version: e.version, UpdatedAt: e.updatedAt,
		Registered: e.registered,
		Milestone:  e.milestone, MilestoneMark: e.milestoneMark,
		Location: e.location, LocationMark: e.locationMark,
		Exceptions: e.exceptions,
		ETA:        e.eta, ETAMark: e.etaMark,
		Parent: e.parent, ParentMark: e.parentMark, Dissociations: e.dissociations,
		Operations: e.operations, Visits: e.visits,
	}
	// Every value is a string, a finite number or a time within years 1..9999
	// (occurredAt is validated on the way in), so Marshal cannot fail.
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("tracking: marshal snapshot of %q: %v", e.id, err))
	}
	return b, SnapshotSchemaVersion
}

// RestoreEntity rebuilds an aggregate from a snapshot written by
// MarshalSnapshot. It returns false when the snapshot has an unknown schema
// version or does not decode, in which case the caller loads from scratch.
func RestoreEntity(snap eventstore.Snapshot) (*Entity, bool) {
	if snap.SchemaVersion != SnapshotSchemaVersion {
		return nil, false
	}
	var s snapshotV1
	if err := json.Unmarshal(snap.State, &s); err != nil || s.Version != snap.Version || s.Version < 1 ||
		(snap.StreamID != "" && s.ID != snap.StreamID) {
		return nil, false
	}
	return &Entity{
		id: s.ID, entityType: s.EntityType, version: s.Version, updatedAt: s.UpdatedAt,
		registered: s.Registered,
		milestone:  s.Milestone, milestoneMark: s.MilestoneMark,
		location: s.Location, locationMark: s.LocationMark,
		exceptions: s.Exceptions,
		eta:        s.ETA, etaMark: s.ETAMark,
		parent: s.Parent, parentMark: s.ParentMark, dissociations: s.Dissociations,
		operations: s.Operations, visits: s.Visits,
	}, true
}
