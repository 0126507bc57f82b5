package alerting

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/projection"
)

// ScheduleLeaderName is the lock under which one replica runs the schedule.
const ScheduleLeaderName = "alerts-schedule"

// Due is a pending check of the durable schedule: at At, rule RuleID is
// evaluated again for an entity. Key tells apart the checks of one rule on
// one entity (a stale rule's level, "PT48H"). Cause is the event that
// scheduled it: a check scheduled again by a newer cause replaces the
// older one, and the cause tells the versions of one check apart.
type Due struct {
	Tenant   string
	EntityID string
	RuleID   string
	Key      string
	At       time.Time
	Cause    Cause
	// Payload is what the evaluator wants back when the check is due
	// (JSON; empty means null).
	Payload json.RawMessage
}

// Cause is the event a due check derives from.
type Cause struct {
	EventID  string
	Position int64 // its global position
}

// ScheduleStore keeps the schedule (the read models' database). Times are
// kept to the microsecond.
type ScheduleStore interface {
	// Schedule stores due checks. A check already pending under the same
	// (tenant, entity, rule, key) is replaced when the new one's cause is
	// not older (by position), and kept otherwise.
	Schedule(ctx context.Context, due []Due) error
	// Cancel deletes the pending checks of an entity: those of one rule,
	// or of every rule when ruleID is "".
	Cancel(ctx context.Context, tenant, entityID, ruleID string) error
	// Claim returns up to limit checks due at or before now, in due order.
	// It does not lock them: one scheduler runs at a time (leadership), and
	// a check claimed twice is evaluated twice, idempotently.
	Claim(ctx context.Context, now time.Time, limit int) ([]Due, error)
	// Done deletes claimed checks, each only in the version claimed (same
	// due time and cause): one scheduled again meanwhile stays.
	Done(ctx context.Context, due []Due) error
	// Next returns the earliest due time (ok false: nothing is pending).
	Next(ctx context.Context) (at time.Time, ok bool, err error)
}

// Handler evaluates due checks, idempotently: a check may be handed over
// again after a crash (at least once). It returns an error only when
// nothing should be marked done (the store is unavailable, say); a check
// that can never be evaluated (its rule is gone) is handled by dropping it.
type Handler func(ctx context.Context, due []Due) error

// SchedulerOptions tune a Scheduler.
type SchedulerOptions struct {
	Clock clockwork.Clock
	// Interval bounds every sleep: a check scheduled by another replica is
	// noticed within it, and a standby tries to take over as often
	// (default 5 s).
	Interval time.Duration
	// Batch is the number of checks claimed and handled at once (default
	// 500).
	Batch int
	// MaxBackoff caps the doubling wait after a failure (default 1 min).
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Scheduler runs the due checks of a ScheduleStore while this process
// leads: it claims what is due, hands it to a Handler, and marks it done
// only after the handler succeeded, so that a crash in between hands the
// same checks over again after a restart.
type Scheduler struct {
	store  ScheduleStore
	leader projection.Leader
	handle Handler
	opts   SchedulerOptions
	log    *slog.Logger
	wake   chan struct{}
}

// NewScheduler returns a scheduler of store's checks, handled by handle.
func NewScheduler(store ScheduleStore, leader projection.Leader, handle Handler, opts SchedulerOptions) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{store: store, leader: leader, handle: handle, opts: opts, log: log.With("component", "alerts-schedule"),
		wake: make(chan struct{}, 1)}
}

// Wake tells the scheduler that checks were scheduled (perhaps earlier
// than it sleeps until): it looks again now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run competes for leadership and runs the schedule while leading, until
// ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		lost, release, ok, err := s.leader.TryLead(ctx, ScheduleLeaderName)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("leadership unavailable", "error", err)
		}
		if !ok {
			s.sleep(ctx, nil, s.opts.Interval)
			continue
		}
		s.log.Info("running the alerts' schedule")
		s.lead(ctx, lost)
		release()
	}
	return nil
}

// lead runs the schedule until ctx ends or leadership is lost.
func (s *Scheduler) lead(ctx context.Context, lost <-chan struct{}) {
	var backoff time.Duration
	fail := func(what string, err error) {
		backoff = min(max(2*backoff, time.Second), s.opts.MaxBackoff)
		s.log.Warn(what, "error", err, "retry_in", backoff)
		s.sleep(ctx, lost, backoff)
	}
	for ctx.Err() == nil && !closed(lost) {
		due, err := s.store.Claim(ctx, s.opts.Clock.Now(), s.opts.Batch)
		if err != nil {
			fail("cannot read the schedule", err)
			continue
		}
		if len(due) > 0 {
			if err := s.handle(ctx, due); err != nil {
				fail("due checks failed; they stay scheduled", err)
				continue
			}
			if err := s.store.Done(ctx, due); err != nil {
				// They are handed over again: the handler is idempotent.
				fail("cannot mark due checks done", err)
				continue
			}
			backoff = 0
			if len(due) == s.opts.Batch {
				continue
			}
		}
		backoff = 0
		wait := s.opts.Interval
		next, ok, err := s.store.Next(ctx)
		if err != nil {
			fail("cannot read the schedule", err)
			continue
		}
		if ok {
			wait = min(wait, max(next.Sub(s.opts.Clock.Now()), 0))
		}
		if wait > 0 {
			s.sleep(ctx, lost, wait)
		}
	}
}

// sleep waits for d, a wake-up, the loss of leadership or the end of ctx.
func (s *Scheduler) sleep(ctx context.Context, lost <-chan struct{}, d time.Duration) {
	t := s.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-lost:
	case <-s.wake:
	case <-t.Chan():
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
