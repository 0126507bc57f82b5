package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Checkpoint is the name of the rules' follower of the log (its checkpoint
// and its leadership lock).
const Checkpoint = "alerts"

// Source marks the events the rules derive (their metadata's source): the
// rules do not take their own events for news of the entity.
const Source = "tracktrace/alerts"

// Recorder records derived events under the domain's rules, and reads an
// entity's current state (the tracking service).
type Recorder interface {
	RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome
	Entity(ctx context.Context, tenant, entityID string) (tracking.EntityState, error)
}

// CheckpointMover moves the follower's checkpoint once its effects are
// stored (the read models' store).
type CheckpointMover interface {
	MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error
}

// Evaluator applies each tenant's rules: to the events of the log as they
// are stored (Handle, a follower's handler), scheduling due checks and
// resolving what an entity's news resolves, and to the checks that come due
// (Fire, the Scheduler's handler), deriving exceptions. Derived events are
// real events of the entity, with the event that caused them as causation
// and ids derived from it, so that evaluating twice records once.
//
// The kinds evaluated: stale (no event for a level's duration while in a
// status of the rule's scope → an ExceptionRaised with code "stale" at each
// level, resolved by the entity's next event; entities silent for longer
// than the rule's ExpireAfter are not checked) and delay (an ETA later than
// the planned arrival plus the tolerance → a "delay" exception, resolved
// when the ETA comes back within it). Position fixes of tenants with sites
// are measured against the sites (geofence_eval.go): entering and leaving
// derive arrived and departed milestones, and a dwell rule raises a "dwell"
// exception when a visit lasts longer than its After.
type Evaluator struct {
	rules    RuleStore
	schedule ScheduleStore
	rec      Recorder
	cps      CheckpointMover
	derive   *tracking.Deriver
	clock    clockwork.Clock
	log      *slog.Logger

	// The geofences: the tenants' sites (parsed, per tenant) and where the
	// entities are.
	sites     Sites
	presence  PresenceStore
	siteCache siteCache

	// Wake, when set, is called after checks were scheduled (the
	// Scheduler's Wake: one may be due earlier than it sleeps).
	Wake func()
}

// NewEvaluator returns an evaluator of the rules in rules and the sites in
// sites (with the entities' presences at them in presence), reading entity
// states with derive (a tracking.Deriver of its own).
func NewEvaluator(rules RuleStore, schedule ScheduleStore, sites Sites, presence PresenceStore, rec Recorder, cps CheckpointMover,
	derive *tracking.Deriver, clock clockwork.Clock, log *slog.Logger) *Evaluator {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{rules: rules, schedule: schedule, sites: sites, presence: presence, siteCache: siteCache{}, rec: rec, cps: cps,
		derive: derive, clock: clock, log: log.With("component", "alerts")}
}

// stalePayload is what a stale check carries to its firing.
type stalePayload struct {
	Level    time.Duration `json:"level"`
	Index    int           `json:"index"`
	Levels   int           `json:"levels"`
	Status   string        `json:"status"`
	LastSeen time.Time     `json:"lastSeen"`
}

// Handle evaluates a batch of the log and moves the follower's checkpoint.
func (e *Evaluator) Handle(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
	var (
		dues     []Due
		cancels  []Due
		resolves []tracking.RecordCommand
	)
	tenantRules := map[string][]Rule{}
	// What this batch derived already: its events' states do not show it
	// yet (it is recorded at the batch's end).
	derived := map[string]bool{}
	once := func(key ...string) bool {
		k := strings.Join(key, "\x00")
		if derived[k] {
			return false
		}
		derived[k] = true
		return true
	}
	now := e.clock.Now()
	geo := e.geofences(events)
	for _, r := range events {
		if r.Erasure() {
			e.derive.Forget(r.Tenant, r.StreamID)
			geo.erase(r.Tenant, r.StreamID)
			continue
		}
		if strings.HasPrefix(r.EntityType, "$") {
			continue
		}
		rules, ok := tenantRules[r.Tenant]
		if !ok {
			var err error
			if rules, err = e.allRules(ctx, r.Tenant); err != nil {
				e.derive.Discard()
				return err
			}
			tenantRules[r.Tenant] = rules
		}
		hasSites, err := geo.tenant(ctx, r.Tenant)
		if err != nil {
			e.derive.Discard()
			return err
		}
		if len(rules) == 0 && !hasSites {
			continue // nothing to evaluate: the tenant's entities are not folded
		}
		view, known, _, err := e.derive.DeriveState(ctx, r)
		if err != nil {
			e.derive.Discard()
			return fmt.Errorf("alerts: entity state: %w", err)
		}
		if !known {
			continue
		}
		if err := geo.observe(ctx, r, view, rules); err != nil {
			e.derive.Discard()
			return err
		}
		if r.Metadata.Source == Source {
			continue
		}
		// The entity's news resolves the stale exceptions the rules raised.
		for _, x := range view.OpenExceptions {
			if x.Code == KindStale && once("resolve", r.Tenant, r.StreamID, x.ExceptionID) {
				resolves = append(resolves, e.resolve(r, x, "the entity reported again"))
			}
		}
		for _, rule := range rules {
			if rule.Kind == KindDelay {
				cmds, err := e.delay(ctx, r, view, rule, once)
				if err != nil {
					e.derive.Discard()
					return err
				}
				resolves = append(resolves, cmds...)
				continue
			}
			if rule.Kind != KindStale {
				continue
			}
			entityType := firstNonEmpty(view.EntityType, r.EntityType)
			if !rule.Applies(entityType, view.Status) || now.Sub(r.RecordedAt) >= rule.ExpireAfter {
				cancels = append(cancels, Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID})
				continue
			}
			for i, level := range rule.Levels {
				p, _ := json.Marshal(stalePayload{Level: level, Index: i, Levels: len(rule.Levels), Status: view.Status, LastSeen: r.RecordedAt})
				dues = append(dues, Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID, Key: "stale/" + strconv.Itoa(i),
					At: r.RecordedAt.Add(level), Cause: Cause{EventID: r.ID.String(), Position: r.Position}, Payload: p})
			}
		}
	}
	for _, c := range cancels {
		if err := e.schedule.Cancel(ctx, c.Tenant, c.EntityID, c.RuleID); err != nil {
			e.derive.Discard()
			return fmt.Errorf("alerts: cancel checks: %w", err)
		}
	}
	if len(dues) > 0 {
		if err := e.schedule.Schedule(ctx, dues); err != nil {
			e.derive.Discard()
			return fmt.Errorf("alerts: schedule checks: %w", err)
		}
	}
	if err := e.record(ctx, append(resolves, geo.cmds...)); err != nil {
		e.derive.Discard()
		return err
	}
	e.derive.Commit()
	if len(dues) > 0 && e.Wake != nil {
		e.Wake()
	}
	return geo.commit(ctx, from, events[len(events)-1].Cursor)
}

func (e *Evaluator) allRules(ctx context.Context, tenant string) ([]Rule, error) {
	var out []Rule
	after := ""
	for {
		page, err := e.rules.Rules(ctx, tenant, after, 500)
		if err != nil {
			return nil, fmt.Errorf("alerts: rules: %w", err)
		}
		out = append(out, page...)
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// derivedSpace names the ids of derived events.
var derivedSpace = uuid.MustParse("8f3b6c3e-2f41-5a57-9d0e-6b1f7a0c2d19")

func derivedID(parts ...string) uuid.UUID {
	return uuid.NewSHA1(derivedSpace, []byte(strings.Join(parts, "\x00")))
}

// delay evaluates a delay rule when an event sets the ETA or the planned
// arrival: an ETA later than the planned arrival by more than the rule's
// tolerance raises a "delay" exception, unless the rule's exception is
// open; an ETA back within it resolves the open one. Whether it is open is
// read from the entity as it is now (the exception may have been raised
// after this event) and from what this batch derived.
func (e *Evaluator) delay(ctx context.Context, r eventstore.Recorded, view tracking.EntityState, rule Rule, once func(...string) bool) ([]tracking.RecordCommand, error) {
	if r.Type != tracking.TypeEtaUpdated && r.Type != tracking.TypeEntityRegistered {
		return nil, nil
	}
	inScope := rule.Applies(firstNonEmpty(view.EntityType, r.EntityType), view.Status)
	late := inScope && view.ETA != nil && view.PlannedArrival != nil && view.ETA.After(view.PlannedArrival.Add(rule.Tolerance))
	now, err := e.rec.Entity(ctx, r.Tenant, r.StreamID)
	if err != nil {
		return nil, fmt.Errorf("alerts: entity %s: %w", r.StreamID, err)
	}
	prefix := "delay-" + rule.ID + "-"
	var open *tracking.OpenException
	for i, x := range now.OpenExceptions {
		if x.Code == tracking.ExceptionDelay && strings.HasPrefix(x.ExceptionID, prefix) {
			open = &now.OpenExceptions[i]
		}
	}
	key := []string{r.Tenant, r.StreamID, rule.ID}
	switch {
	case late && open == nil && !derivedOpen(once, key):
		exceptionID := prefix + derivedID("delay", r.Tenant, r.StreamID, rule.ID, r.ID.String()).String()
		data, _ := json.Marshal(tracking.ExceptionRaised{ExceptionID: exceptionID, Code: tracking.ExceptionDelay, Severity: tracking.SeverityMedium,
			Description: fmt.Sprintf("the ETA %s is %s after the planned arrival %s", view.ETA.UTC().Format(time.RFC3339),
				view.ETA.Sub(*view.PlannedArrival).Round(time.Minute), view.PlannedArrival.UTC().Format(time.RFC3339))})
		return []tracking.RecordCommand{{Tenant: r.Tenant, EntityID: r.StreamID, Expected: eventstore.Any, Source: Source,
			Events: []tracking.NewEvent{{ID: derivedID("raise", exceptionID), Type: tracking.TypeExceptionRaised, OccurredAt: r.OccurredAt,
				Data: data, Metadata: eventstore.Metadata{Source: Source, CausationID: r.ID.String()}}}}}, nil
	case !late && open != nil && !open.RaisedAt.After(r.OccurredAt) && // not one a later event raised (a replay)
		once(append([]string{"resolve"}, append(key, open.ExceptionID)...)...):
		return []tracking.RecordCommand{e.resolve(r, *open, "the ETA is within the tolerance of the planned arrival again")}, nil
	}
	return nil, nil
}

// derivedOpen reports whether the batch raised the rule's exception for
// the entity already (and records that it does now, when it did not).
func derivedOpen(once func(...string) bool, key []string) bool {
	return !once(append([]string{"raise"}, key...)...)
}

// resolve is the ExceptionResolved that the entity's event r causes for the
// exception x.
func (e *Evaluator) resolve(r eventstore.Recorded, x tracking.OpenException, resolution string) tracking.RecordCommand {
	data, _ := json.Marshal(tracking.ExceptionResolved{ExceptionID: x.ExceptionID, Resolution: resolution})
	return tracking.RecordCommand{Tenant: r.Tenant, EntityID: r.StreamID, Expected: eventstore.Any, Source: Source,
		Events: []tracking.NewEvent{{ID: derivedID("resolve", r.Tenant, r.StreamID, x.ExceptionID, r.ID.String()),
			Type: tracking.TypeExceptionResolved, OccurredAt: r.OccurredAt, Data: data,
			Metadata: eventstore.Metadata{Source: Source, CausationID: r.ID.String()}}}}
}

// Fire derives what due checks find: the Scheduler's handler.
func (e *Evaluator) Fire(ctx context.Context, due []Due) error {
	var cmds []tracking.RecordCommand
	for _, d := range due {
		rule, err := e.rules.Rule(ctx, d.Tenant, d.RuleID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return fmt.Errorf("alerts: rule %s: %w", d.RuleID, err)
		}
		if rule.Kind == KindDwell {
			cmd, ok, err := e.fireDwell(ctx, d)
			if err != nil {
				return err
			}
			if ok {
				cmds = append(cmds, cmd)
			}
			continue
		}
		if rule.Kind != KindStale {
			continue
		}
		var p stalePayload
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			e.log.Warn("a stale check without its payload is dropped", "tenant", d.Tenant, "entity", d.EntityID, "error", err)
			continue
		}
		exceptionID := "stale-" + derivedID("stale", d.Tenant, d.EntityID, d.RuleID, d.Key, d.Cause.EventID).String()
		data, _ := json.Marshal(tracking.ExceptionRaised{ExceptionID: exceptionID, Code: KindStale, Severity: staleSeverity(p.Index, p.Levels),
			Description: fmt.Sprintf("no event for %s while %s (last at %s)", p.Level, p.Status, p.LastSeen.UTC().Format(time.RFC3339))})
		cmds = append(cmds, tracking.RecordCommand{Tenant: d.Tenant, EntityID: d.EntityID, Expected: eventstore.Any, Source: Source,
			Events: []tracking.NewEvent{{ID: derivedID("raise", exceptionID), Type: tracking.TypeExceptionRaised, OccurredAt: d.At,
				Data: data, Metadata: eventstore.Metadata{Source: Source, CausationID: d.Cause.EventID}}}})
	}
	return e.record(ctx, cmds)
}

// staleSeverity grows with the levels: the last is high.
func staleSeverity(index, levels int) string {
	switch {
	case index >= levels-1:
		return tracking.SeverityHigh
	case index == 0:
		return tracking.SeverityLow
	default:
		return tracking.SeverityMedium
	}
}

// record records derived events; a store outage fails the batch (it is
// evaluated again), the domain's refusals are logged and passed over.
func (e *Evaluator) record(ctx context.Context, cmds []tracking.RecordCommand) error {
	if len(cmds) == 0 {
		return nil
	}
	for i, out := range e.rec.RecordBatch(ctx, cmds) {
		switch err := out.Err; {
		case err == nil:
		case errors.Is(err, eventstore.ErrUnavailable), ctx.Err() != nil:
			return fmt.Errorf("alerts: record derived events: %w", err)
		default:
			e.log.Warn("derived event not recorded", "tenant", cmds[i].Tenant, "entity", cmds[i].EntityID,
				"type", cmds[i].Events[0].Type, "error", err)
		}
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
