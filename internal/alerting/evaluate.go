package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
// the planned arrival plus the tolerance, or that deadline passing without
// the entity arriving → a "delay" exception, resolved when the ETA comes
// back within it or the entity arrives; see delay.go). A check scheduled
// under an older generation of its rule is evaluated under the current
// definition when it comes due (Fire). Position fixes of tenants with sites
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
	Level  time.Duration `json:"level"`
	Index  int           `json:"index"`
	Levels int           `json:"levels"`
	Status string        `json:"status"`
	// EntityType is the entity's when the check was scheduled.
	EntityType string    `json:"entityType,omitempty"`
	LastSeen   time.Time `json:"lastSeen"`
	// Generation is the rule's when the check was scheduled (0: before
	// generations were kept).
	Generation int64 `json:"generation,omitempty"`
}

// Handle evaluates a batch of the log and moves the follower's checkpoint.
func (e *Evaluator) Handle(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
	var (
		dues     []Due
		cancels  []Due
		resolves []tracking.RecordCommand
		delays   = newDelayBatch()
	)
	// cancel cancels a rule's checks of an entity, and drops those this
	// batch scheduled before: the entity's later event says so.
	cancel := func(c Due) {
		cancels = append(cancels, c)
		dues = slices.DeleteFunc(dues, func(d Due) bool {
			return d.Tenant == c.Tenant && d.EntityID == c.EntityID && d.RuleID == c.RuleID
		})
	}
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
				due, stop, err := e.delay(ctx, r, view, rule, delays)
				if err != nil {
					e.derive.Discard()
					return err
				}
				if stop {
					cancel(Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID})
				} else if due != nil {
					dues = append(dues, *due)
				}
				continue
			}
			if rule.Kind != KindStale {
				continue
			}
			entityType := firstNonEmpty(view.EntityType, r.EntityType)
			if !rule.Applies(entityType, view.Status) || now.Sub(r.RecordedAt) >= rule.ExpireAfter {
				cancel(Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID})
				continue
			}
			for i, level := range rule.Levels {
				p, _ := json.Marshal(stalePayload{Level: level, Index: i, Levels: len(rule.Levels), Status: view.Status, LastSeen: r.RecordedAt,
					EntityType: entityType, Generation: rule.Generation})
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
	if err := e.recordDelays(ctx, delays); err != nil {
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
	return allRules(ctx, e.rules, tenant)
}

// allRules returns every rule of a tenant.
func allRules(ctx context.Context, store RuleStore, tenant string) ([]Rule, error) {
	var out []Rule
	after := ""
	for {
		page, err := store.Rules(ctx, tenant, after, 500)
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

// resolve is the ExceptionResolved that the entity's event r causes for the
// exception x.
func (e *Evaluator) resolve(r eventstore.Recorded, x tracking.OpenException, resolution string) tracking.RecordCommand {
	data, _ := json.Marshal(tracking.ExceptionResolved{ExceptionID: x.ExceptionID, Resolution: resolution})
	return tracking.RecordCommand{Tenant: r.Tenant, EntityID: r.StreamID, Expected: eventstore.Any, Source: Source,
		Events: []tracking.NewEvent{{ID: derivedID("resolve", r.Tenant, r.StreamID, x.ExceptionID, r.ID.String()),
			Type: tracking.TypeExceptionResolved, OccurredAt: r.OccurredAt, Data: data,
			Metadata: eventstore.Metadata{Source: Source, CausationID: r.ID.String()}}}}
}

// Fire derives what due checks find: the Scheduler's handler. A check
// scheduled under an older generation of its rule is evaluated under the
// rule as it is now: a rule change applies to new evaluations only (see
// fireDelay and restale).
func (e *Evaluator) Fire(ctx context.Context, due []Due) error {
	var (
		cmds  []tracking.RecordCommand
		again []Due
	)
	// A claim holds many checks of few rules: each is read once.
	rules := map[[2]string]*Rule{} // by tenant and id; nil: deleted since
	for _, d := range due {
		read, ok := rules[[2]string{d.Tenant, d.RuleID}]
		if !ok {
			r, err := e.rules.Rule(ctx, d.Tenant, d.RuleID)
			switch {
			case errors.Is(err, ErrNotFound): // deleted since: its checks are dropped
			case err != nil:
				return fmt.Errorf("alerts: rule %s: %w", d.RuleID, err)
			default:
				read = &r
			}
			rules[[2]string{d.Tenant, d.RuleID}] = read
		}
		if read == nil {
			continue
		}
		rule := *read
		switch rule.Kind {
		case KindDelay:
			next, err := e.fireDelay(ctx, d, rule)
			if err != nil {
				return err
			}
			if next != nil {
				again = append(again, *next)
			}
			continue
		case KindDwell:
			cmd, ok, err := e.fireDwell(ctx, d)
			if err != nil {
				return err
			}
			if ok {
				cmds = append(cmds, cmd)
			}
			continue
		case KindStale:
		default:
			continue
		}
		var p stalePayload
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			e.log.Warn("a stale check without its payload is dropped", "tenant", d.Tenant, "entity", d.EntityID, "error", err)
			continue
		}
		if p.Generation != 0 && p.Generation != rule.Generation {
			again = append(again, e.restale(d, p, rule)...)
			continue
		}
		exceptionID := "stale-" + derivedID("stale", d.Tenant, d.EntityID, d.RuleID, d.Key, d.Cause.EventID).String()
		data, _ := json.Marshal(tracking.ExceptionRaised{ExceptionID: exceptionID, Code: KindStale, Severity: staleSeverity(p.Index, p.Levels),
			Description: fmt.Sprintf("no event for %s while %s (last at %s)", p.Level, p.Status, p.LastSeen.UTC().Format(time.RFC3339))})
		cmds = append(cmds, tracking.RecordCommand{Tenant: d.Tenant, EntityID: d.EntityID, Expected: eventstore.Any, Source: Source,
			Events: []tracking.NewEvent{{ID: derivedID("raise", exceptionID), Type: tracking.TypeExceptionRaised, OccurredAt: d.At,
				Data: data, Metadata: eventstore.Metadata{Source: Source, CausationID: d.Cause.EventID}}}})
	}
	if err := e.record(ctx, cmds); err != nil {
		return err
	}
	if len(again) > 0 {
		if err := e.schedule.Schedule(ctx, again); err != nil {
			return fmt.Errorf("alerts: schedule checks: %w", err)
		}
	}
	return nil
}

// restale replaces a stale check scheduled under an older generation of
// its rule by the current definition's checks of the same silence: the
// same level (and, from the old last level, the levels the definition
// added), at the current thresholds, when the current scope still takes
// the entity in. The old threshold raises nothing; a current one already
// passed raises at once (the change shortened it).
func (e *Evaluator) restale(d Due, p stalePayload, rule Rule) []Due {
	if !rule.Applies(p.EntityType, p.Status) || !e.clock.Now().Before(p.LastSeen.Add(rule.ExpireAfter)) {
		return nil
	}
	last := len(rule.Levels) - 1
	if p.Index < p.Levels-1 {
		last = min(last, p.Index)
	}
	var out []Due
	for i := p.Index; i <= last; i++ {
		q := p
		q.Level, q.Index, q.Levels, q.Generation = rule.Levels[i], i, len(rule.Levels), rule.Generation
		payload, _ := json.Marshal(q)
		out = append(out, Due{Tenant: d.Tenant, EntityID: d.EntityID, RuleID: d.RuleID, Key: "stale/" + strconv.Itoa(i),
			At: p.LastSeen.Add(q.Level), Cause: d.Cause, Payload: payload})
	}
	return out
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
		if err := e.outcome(ctx, cmds[i], out.Err); err != nil {
			return err
		}
	}
	return nil
}

// outcome classifies the error of a derived event's command: a store
// outage is returned (the caller fails and evaluates again), the domain's
// refusals are logged and passed over.
func (e *Evaluator) outcome(ctx context.Context, cmd tracking.RecordCommand, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventstore.ErrUnavailable), ctx.Err() != nil:
		return fmt.Errorf("alerts: record derived events: %w", err)
	}
	e.log.Warn("derived event not recorded", "tenant", cmd.Tenant, "entity", cmd.EntityID, "type", cmd.Events[0].Type, "error", err)
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
