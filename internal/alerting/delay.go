package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// The delay rule raises a "delay" exception (ids "delay-<ruleId>-…") when
// an entity in its scope is late: an ETA later than the planned arrival
// plus the tolerance (the deadline), or the deadline passed without the
// entity arriving (delivered, returned or cancelled). Two paths raise it:
// an event that shows the entity late (Handle), and the due check that
// every event of an entity in scope schedules at its deadline (Fire), for
// the entity that says nothing. Both raise only when none of the rule's
// delay exceptions is open, and append with the stream's version they
// checked as the expected one, so that they never raise twice for one
// episode; a raise's id derives from its cause (the event, or the
// deadline), so that evaluating again records nothing new. The exception
// is resolved by an ETA back within the deadline (before it passed) and by
// the entity's arrival.

// delayKey is the key of a delay rule's due check.
const delayKey = "delay"

// delayPayload is what a delay check carries to its firing.
type delayPayload struct {
	Generation int64     `json:"generation"`
	Deadline   time.Time `json:"deadline"`
}

// delayBatch is what a batch of the log derives for delay rules, in the
// order derived, and the open delay exception of each (entity, rule) as
// the batch leaves it: its events are evaluated as if each were a batch
// of its own, so that evaluating the log again in other batches (a
// replay) derives the same events.
type delayBatch struct {
	open map[[3]string]*tracking.OpenException
	cmds []delayCmd
}

// delayCmd is a raise or a resolve of a rule's delay exception.
type delayCmd struct {
	rule  string
	raise bool
	cmd   tracking.RecordCommand
}

func newDelayBatch() *delayBatch { return &delayBatch{open: map[[3]string]*tracking.OpenException{}} }

// arrived reports whether an entity in a status is no longer on its way:
// delivered, returned or cancelled. A milestone "arrived" is a stop on the
// way (in transit).
func arrived(status string) bool {
	return status == tracking.StatusDelivered || status == tracking.StatusReturned || status == tracking.StatusCancelled
}

// delayDeadline returns the time after which an entity in the rule's scope
// is late, false when it has none (out of scope, arrived, or no planned
// arrival).
func delayDeadline(rule Rule, entityType string, s tracking.EntityState) (time.Time, bool) {
	if s.PlannedArrival == nil || arrived(s.Status) || !rule.Applies(entityType, s.Status) {
		return time.Time{}, false
	}
	return s.PlannedArrival.Add(rule.Tolerance), true
}

func delayPrefix(ruleID string) string { return "delay-" + ruleID + "-" }

// openDelay returns the rule's open delay exception of an entity.
func openDelay(s tracking.EntityState, ruleID string) *tracking.OpenException {
	for i, x := range s.OpenExceptions {
		if x.Code == tracking.ExceptionDelay && strings.HasPrefix(x.ExceptionID, delayPrefix(ruleID)) {
			return &s.OpenExceptions[i]
		}
	}
	return nil
}

// delay evaluates a delay rule on an event of the log: it returns the
// check to schedule at the entity's deadline (or cancel, when it has
// none), raises when an ETA, a registration or a milestone shows the
// entity late, unless the rule's exception is open, and resolves the open
// one when the ETA is back within the deadline or the entity arrived.
// Whether it is open is read from the entity as it is now (the exception
// may have been raised after this event), then from what the batch
// derived.
func (e *Evaluator) delay(ctx context.Context, r eventstore.Recorded, view tracking.EntityState, rule Rule, b *delayBatch) (due *Due, cancel bool, err error) {
	entityType := firstNonEmpty(view.EntityType, r.EntityType)
	deadline, watched := delayDeadline(rule, entityType, view)
	if watched {
		p, _ := json.Marshal(delayPayload{Generation: rule.Generation, Deadline: deadline})
		due = &Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID, Key: delayKey, At: deadline,
			Cause: Cause{EventID: r.ID.String(), Position: r.Position}, Payload: p}
	}
	if r.Type != tracking.TypeEtaUpdated && r.Type != tracking.TypeEntityRegistered && r.Type != tracking.TypeMilestoneReached {
		return due, !watched, nil
	}
	// An event after the deadline shows the entity late whatever its ETA
	// says: an ETA within it would be in the past.
	late := watched && (view.ETA != nil && view.ETA.After(deadline) || r.OccurredAt.After(deadline))
	key := [3]string{r.Tenant, r.StreamID, rule.ID}
	open, known := b.open[key]
	if !known {
		now, err := e.rec.Entity(ctx, r.Tenant, r.StreamID)
		if err != nil {
			return nil, false, fmt.Errorf("alerts: entity %s: %w", r.StreamID, err)
		}
		open = openDelay(now, rule.ID)
	}
	switch {
	case late && open == nil:
		exceptionID := delayPrefix(rule.ID) + derivedID("delay", r.Tenant, r.StreamID, rule.ID, r.ID.String()).String()
		why := notArrived(*view.PlannedArrival, rule.Tolerance)
		if view.ETA != nil && view.ETA.After(deadline) {
			why = fmt.Sprintf("the ETA %s is %s after the planned arrival %s", view.ETA.UTC().Format(time.RFC3339),
				view.ETA.Sub(*view.PlannedArrival).Round(time.Minute), view.PlannedArrival.UTC().Format(time.RFC3339))
		}
		b.cmds = append(b.cmds, delayCmd{rule: rule.ID, raise: true,
			cmd: delayRaise(r.Tenant, r.StreamID, exceptionID, r.OccurredAt, r.ID.String(), why)})
		open = &tracking.OpenException{ExceptionID: exceptionID, Code: tracking.ExceptionDelay, RaisedAt: r.OccurredAt}
	case !late && open != nil && (arrived(view.Status) || !open.RaisedAt.After(r.OccurredAt)): // not one a later event raised (a replay)
		resolution := "the ETA is within the tolerance of the planned arrival again"
		switch {
		case arrived(view.Status):
			resolution = "the entity is " + view.Status
		case !watched:
			resolution = "the entity is out of the rule's scope"
		}
		b.cmds = append(b.cmds, delayCmd{rule: rule.ID, cmd: e.resolve(r, *open, resolution)})
		open = nil
	}
	b.open[key] = open
	return due, !watched, nil
}

// recordDelays records what a batch derived for delay rules, in order.
func (e *Evaluator) recordDelays(ctx context.Context, b *delayBatch) error {
	for _, c := range b.cmds {
		var err error
		if c.raise {
			err = e.raiseDelay(ctx, c.rule, c.cmd)
		} else {
			err = e.record(ctx, []tracking.RecordCommand{c.cmd})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func notArrived(planned time.Time, tolerance time.Duration) string {
	return fmt.Sprintf("not arrived %s after the planned arrival %s", tolerance.Round(time.Minute), planned.UTC().Format(time.RFC3339))
}

// delayRaise is the command that raises a delay exception.
func delayRaise(tenant, entityID, exceptionID string, at time.Time, causation, description string) tracking.RecordCommand {
	data, _ := json.Marshal(tracking.ExceptionRaised{ExceptionID: exceptionID, Code: tracking.ExceptionDelay,
		Severity: tracking.SeverityMedium, Description: description})
	return tracking.RecordCommand{Tenant: tenant, EntityID: entityID, Expected: eventstore.Any, Source: Source,
		Events: []tracking.NewEvent{{ID: derivedID("raise", exceptionID), Type: tracking.TypeExceptionRaised, OccurredAt: at,
			Data: data, Metadata: eventstore.Metadata{Source: Source, CausationID: causation}}}}
}

// maxRaiseAttempts bounds how often a delay raise is tried again when the
// entity's stream moved between the check and the append.
const maxRaiseAttempts = 10

// raiseDelay records a delay exception of a rule unless one of the rule's
// is open: the stream's version read with that check is the append's
// expected version, and a stream that moved is checked again. A raise
// recorded already (same id, same content) is a replay, not a second one.
func (e *Evaluator) raiseDelay(ctx context.Context, ruleID string, cmd tracking.RecordCommand) error {
	for attempt := 1; ; attempt++ {
		state, err := e.rec.Entity(ctx, cmd.Tenant, cmd.EntityID)
		if errors.Is(err, tracking.ErrNotFound) {
			return nil // erased since
		}
		if err != nil {
			return fmt.Errorf("alerts: entity %s: %w", cmd.EntityID, err)
		}
		if openDelay(state, ruleID) != nil {
			return nil
		}
		cmd.Expected = eventstore.Exact(state.Version)
		err = e.rec.RecordBatch(ctx, []tracking.RecordCommand{cmd})[0].Err
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) && attempt < maxRaiseAttempts && ctx.Err() == nil {
			continue
		}
		return e.outcome(ctx, cmd, err)
	}
}

// fireDelay evaluates a delay rule's due check against the entity as it is
// now and the rule as it is now (so that a check scheduled under an older
// generation applies the current deadline): a deadline still ahead (a
// longer tolerance since) schedules the check again, one passed raises the
// exception unless the rule's is open.
func (e *Evaluator) fireDelay(ctx context.Context, d Due, rule Rule) (*Due, error) {
	state, err := e.rec.Entity(ctx, d.Tenant, d.EntityID)
	if errors.Is(err, tracking.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("alerts: entity %s: %w", d.EntityID, err)
	}
	deadline, watched := delayDeadline(rule, state.EntityType, state)
	if !watched || openDelay(state, rule.ID) != nil {
		return nil, nil
	}
	if deadline.After(e.clock.Now()) {
		p, _ := json.Marshal(delayPayload{Generation: rule.Generation, Deadline: deadline})
		again := d
		again.At, again.Payload = deadline, p
		return &again, nil
	}
	// One id per deadline: firing again (a restart, a replayed schedule)
	// records nothing new.
	exceptionID := delayPrefix(rule.ID) + derivedID("delay", d.Tenant, d.EntityID, rule.ID,
		"deadline", deadline.UTC().Format(time.RFC3339Nano)).String()
	cmd := delayRaise(d.Tenant, d.EntityID, exceptionID, deadline, d.Cause.EventID, notArrived(*state.PlannedArrival, rule.Tolerance))
	return nil, e.raiseDelay(ctx, rule.ID, cmd)
}
