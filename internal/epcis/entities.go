package epcis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EntitiesCheckpoint names the follower that maps EPCIS events onto
// tracking entities: its checkpoint in the global log and its leadership.
const EntitiesCheckpoint = "epcis-entities"

// Recorder records tracking commands (tracking.Service).
type Recorder interface {
	RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome
}

// CheckpointMover moves a follower's checkpoint by compare-and-set
// (readmodel.Store.MoveCheckpoint).
type CheckpointMover interface {
	MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error
}

// Mapper maps each stored EPCIS event onto the tracking entities of the
// objects it names, as tracking events recorded through the tracking
// service (so under the domain's rules): a milestone for a business step
// that is one, a position for a geo: location, an association for an
// aggregation, a correction for an error declaration, and otherwise an
// "x-epcis-event" that references the EPCIS event. Every derived event's
// causationId is the EPCIS eventID, and its id is derived from the stored
// event and the object, so mapping an event again records nothing twice.
// See MapEvent for the table.
type Mapper struct {
	rec Recorder
	cps CheckpointMover
	log *slog.Logger
	// OnSkipped, when set, is told of every derived command the domain
	// refused (counted as a metric).
	OnSkipped func(reason string)
	// BatchCommands bounds the commands recorded at once (default
	// DefaultBatchCommands): the events of one batch of the log can name
	// tens of thousands of objects, and one RecordBatch holds its commands,
	// their aggregates and their appends in memory together. On an engine
	// with one writer it also bounds how long a capture's append waits
	// behind the mapping's.
	BatchCommands int
}

// NewMapper returns a Mapper; log may be nil.
func NewMapper(rec Recorder, cps CheckpointMover, log *slog.Logger) *Mapper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mapper{rec: rec, cps: cps, log: log}
}

// DefaultBatchCommands is Mapper.BatchCommands' default.
const DefaultBatchCommands = 2000

// Handle is the follower's handler (projection.HandleFunc): it records the
// batch's derived commands, at most BatchCommands at a time (an event's
// commands together, the events in log order), and then moves the
// checkpoint. A failure of the store fails the batch, which the follower
// retries (what was recorded is recorded again as nothing: the derived
// events' ids are fixed); a command the domain refuses is logged and
// skipped.
func (m *Mapper) Handle(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
	bound := m.BatchCommands
	if bound <= 0 {
		bound = DefaultBatchCommands
	}
	var cmds []tracking.RecordCommand
	for i, e := range events {
		if _, capture := CaptureIDOf(e.StreamID); capture {
			cmds = append(cmds, MapEvent(e)...)
		}
		if len(cmds) >= bound || i == len(events)-1 {
			if err := m.record(ctx, cmds); err != nil {
				return err
			}
			cmds = cmds[:0]
		}
	}
	return m.cps.MoveCheckpoint(ctx, EntitiesCheckpoint, from, events[len(events)-1].Cursor)
}

// record records commands, again without its type those whose entity has
// a type of its own.
func (m *Mapper) record(ctx context.Context, cmds []tracking.RecordCommand) error {
	for len(cmds) > 0 {
		var retry []tracking.RecordCommand
		for i, out := range m.rec.RecordBatch(ctx, cmds) {
			switch err := out.Err; {
			case err == nil:
			case errors.Is(err, eventstore.ErrEntityTypeMismatch) && cmds[i].EntityType != "":
				// The entity exists with a type of its own: keep it.
				c := cmds[i]
				c.EntityType = ""
				retry = append(retry, c)
			case errors.Is(err, eventstore.ErrUnavailable), ctx.Err() != nil:
				return fmt.Errorf("epcis: map onto entities: %w", err)
			default:
				m.log.WarnContext(ctx, "EPCIS event not mapped onto its entity", "tenant", cmds[i].Tenant,
					"entity", cmds[i].EntityID, "cause", cmds[i].CorrelationID, "error", err)
				if m.OnSkipped != nil {
					m.OnSkipped(skipReason(err))
				}
			}
		}
		cmds = retry
	}
	return nil
}

func skipReason(err error) string {
	switch {
	case errors.Is(err, tracking.ErrRuleViolation):
		return "rule-violation"
	case errors.Is(err, tracking.ErrInvalid):
		return "invalid"
	default:
		return "other"
	}
}

// milestones maps CBV business steps onto tracking milestones.
var milestones = map[string]string{
	"shipping":       tracking.MilestoneDeparted,
	"departing":      tracking.MilestoneDeparted,
	"transporting":   tracking.MilestoneInTransit,
	"arriving":       tracking.MilestoneArrived,
	"receiving":      tracking.MilestoneArrived,
	"accepting":      tracking.MilestoneArrived,
	"retail_selling": tracking.MilestoneDelivered,
	"dispensing":     tracking.MilestoneDelivered,
}

// MilestoneOf returns the tracking milestone of a business step (in any CBV
// form), "" for a step that is none.
func MilestoneOf(bizStep string) string {
	if bare, ok := epc.BizStep.Bare(bizStep); ok {
		return milestones[bare]
	}
	return ""
}

// EntityTypeOf is the tracking entity type of an identified object: its
// GS1 key decides (an SSCC is a logistic unit, so a container; returnable
// and individual assets are assets; trade items, lots and everything else
// are packages).
func EntityTypeOf(entityID string) string {
	scheme := entityID
	for _, p := range []string{"urn:epc:id:", "urn:epc:class:", "urn:epc:idpat:"} {
		if rest, ok := strings.CutPrefix(entityID, p); ok {
			scheme, _, _ = strings.Cut(rest, ":")
			break
		}
	}
	switch scheme {
	case "sscc":
		return tracking.EntityContainer
	case "grai", "giai":
		return tracking.EntityAsset
	}
	return tracking.EntityPackage
}

// EntityID is the tracking entity id of an identifier an event names: an
// EPC URN as captured, a GS1 Digital Link URI as its EPC URN (the GS1
// Company Prefix length taken as 7 digits where the key does not tell),
// any other identifier as it is. ok is false when the result is not a
// valid entity id (such objects are queryable through EPCIS, but have no
// tracking entity).
func EntityID(id string) (string, bool) {
	if !epc.IsURN(id) {
		if urn, ok := epc.ToURN(id); ok {
			id = urn
		}
	}
	return id, tracking.IsEntityID(id)
}

// object is an identified object of an event and its role.
type object struct{ id, role string }

// namedObjects lists the objects an event names, each once.
func namedObjects(ev map[string]json.RawMessage) []object {
	var out []object
	seen := map[string]bool{}
	add := func(id, role string) {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, object{id, role})
		}
	}
	add(text(ev["parentID"]), RoleParent)
	for _, l := range []struct{ key, role string }{
		{"epcList", RoleEPC}, {"childEPCs", RoleChild}, {"inputEPCList", RoleInput}, {"outputEPCList", RoleOutput},
	} {
		for _, s := range strings_(ev[l.key]) {
			add(s, l.role)
		}
	}
	for _, l := range []struct{ key, role string }{
		{"quantityList", RoleClass}, {"childQuantityList", RoleChildClass},
		{"inputQuantityList", RoleInputClass}, {"outputQuantityList", RoleOutputClass},
	} {
		for _, q := range objects(ev[l.key]) {
			add(text(q["epcClass"]), l.role)
		}
	}
	return out
}

// Reference is the data of an "x-epcis-event" (and the EPCIS part of every
// derived event's timeline entry): which EPCIS event named the object, and
// how.
type Reference struct {
	EventID     string `json:"eventID"`
	EventType   string `json:"eventType"`
	Action      string `json:"action,omitempty"`
	BizStep     string `json:"bizStep,omitempty"`
	Disposition string `json:"disposition,omitempty"`
	ReadPoint   string `json:"readPoint,omitempty"`
	BizLocation string `json:"bizLocation,omitempty"`
	// Role is the list of the event the object is in (epc, child, parent,
	// input, output, class, ...).
	Role string `json:"role"`
}

// Custom tracking event types the mapping derives.
const (
	TypeReference        = "x-epcis-event"
	TypeErrorDeclaration = "x-epcis-error-declaration"
)

// derivedSpace is the namespace of the ids of derived tracking events.
var derivedSpace = uuid.MustParse("3c0d1c84-5d6e-5f0b-8a8e-8e1f2d0b7c55")

// MapEvent returns the tracking commands a stored EPCIS event derives: one
// per object it names, each with the events below (in this order), all
// occurring at the event's eventTime:
//
//	errorDeclaration            x-epcis-error-declaration (the correction; nothing else)
//	bizStep with a milestone    MilestoneReached (siteId: bizLocation, else readPoint; location: a geo: URI's point)
//	geo: location, no milestone LocationReported
//	AggregationEvent/AssociationEvent ADD, child or child class: EntityAssociated with the parent
//	... DELETE:                 EntityDissociated
//	anything else               x-epcis-event (the Reference)
func MapEvent(rec eventstore.Recorded) []tracking.RecordCommand {
	t, ok := TypeOf(rec.Type)
	if !ok {
		return nil
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(rec.Data, &ev) != nil {
		return nil
	}
	ref := Reference{EventID: text(ev["eventID"]), EventType: t, Action: text(ev["action"]),
		BizStep: text(ev["bizStep"]), Disposition: text(ev["disposition"]),
		ReadPoint: text(member(ev["readPoint"], "id")), BizLocation: text(member(ev["bizLocation"], "id"))}
	site := ref.BizLocation
	if site == "" {
		site = ref.ReadPoint
	}
	point := geoPoint(ref.BizLocation)
	if point == nil {
		point = geoPoint(ref.ReadPoint)
	}
	siteID, _ := EntityID(site)
	if !tracking.IsEntityID(siteID) {
		siteID = ""
	}
	parentID := ""
	if p := text(ev["parentID"]); p != "" {
		parentID, _ = EntityID(p)
	}
	var cmds []tracking.RecordCommand
	for _, o := range namedObjects(ev) {
		id, ok := EntityID(o.id)
		if !ok {
			continue
		}
		ref := ref
		ref.Role = o.role
		newEvent := func(kind, typ string, data any) tracking.NewEvent {
			b, _ := json.Marshal(data)
			return tracking.NewEvent{ID: uuid.NewSHA1(derivedSpace, []byte(rec.ID.String()+"\x00"+id+"\x00"+kind)),
				Type: typ, OccurredAt: rec.OccurredAt, Data: b}
		}
		var events []tracking.NewEvent
		if ed := ev["errorDeclaration"]; ed != nil {
			var decl map[string]any
			_ = json.Unmarshal(ed, &decl)
			events = append(events, newEvent("error", TypeErrorDeclaration, map[string]any{"reference": ref, "errorDeclaration": decl}))
		} else {
			if m := MilestoneOf(ref.BizStep); m != "" {
				events = append(events, newEvent("milestone", tracking.TypeMilestoneReached,
					tracking.MilestoneReached{Milestone: m, SiteID: siteID, Location: point}))
			} else if point != nil {
				events = append(events, newEvent("location", tracking.TypeLocationReported,
					tracking.LocationReported{Lat: point.Lat, Lon: point.Lon, SiteID: siteID}))
			}
			if parentID != "" && parentID != id && (t == AggregationEvent || t == AssociationEvent) &&
				(o.role == RoleChild || o.role == RoleChildClass) {
				switch ref.Action {
				case "ADD":
					events = append(events, newEvent("associate", tracking.TypeEntityAssociated, tracking.EntityAssociated{ParentID: parentID}))
				case "DELETE":
					events = append(events, newEvent("dissociate", tracking.TypeEntityDissociated, tracking.EntityDissociated{ParentID: parentID}))
				}
			}
			if len(events) == 0 {
				events = append(events, newEvent("reference", TypeReference, ref))
			}
		}
		for i := range events {
			events[i].Metadata = eventstore.Metadata{CausationID: ref.EventID, Source: "epcis"}
		}
		cmds = append(cmds, tracking.RecordCommand{Tenant: rec.Tenant, EntityID: id, EntityType: EntityTypeOf(id),
			Expected: eventstore.Any, Events: events, Principal: rec.Metadata.Principal, Source: "epcis",
			CorrelationID: rec.Metadata.CorrelationID})
	}
	return cmds
}

// geoPoint reads a geo: URI (RFC 5870) location, nil for any other.
func geoPoint(uri string) *tracking.GeoPoint {
	rest, ok := strings.CutPrefix(uri, "geo:")
	if !ok {
		return nil
	}
	coords, _, _ := strings.Cut(rest, ";")
	parts := strings.Split(coords, ",")
	if len(parts) < 2 {
		return nil
	}
	lat, err1 := strconv.ParseFloat(parts[0], 64)
	lon, err2 := strconv.ParseFloat(parts[1], 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return nil
	}
	return &tracking.GeoPoint{Lat: lat, Lon: lon}
}
