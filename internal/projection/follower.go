package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Checkpoints reads followers' checkpoints.
type Checkpoints interface {
	// Checkpoint returns the named checkpoint (zero if it never moved).
	Checkpoint(ctx context.Context, name string) (Checkpoint, error)
}

// HandleFunc is a follower's effect: it applies, publishes or delivers a
// batch of events read after `from`, in log order, and moves the follower's
// checkpoint from `from` to the last event's cursor only once the effect is
// durable (committed in the same transaction, or acknowledged). It returns
// ErrCheckpointMoved when the checkpoint is no longer at `from`.
type HandleFunc func(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error

// FollowerOptions tune a Follower.
type FollowerOptions struct {
	// Interval is the polling fallback when no commit signal arrives, and how
	// often a standby tries to take over (default 5s).
	Interval time.Duration
	// BatchSize is the number of events handed to the handler at once
	// (default 1000).
	BatchSize int
	// MaxBackoff caps the jittered, doubling wait after failed batches
	// (default 5s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// OnState, when set, is told whenever this process starts or stops
	// leading, of each failed attempt to lead (active false, err non-nil),
	// and of every failed batch (err non-nil) and the next success (err
	// nil), for status reports.
	OnState func(active bool, err error)
}

// Follower follows the store's global log for one handler (the Kafka
// relay, a subscription) or for a Manager's projections: it competes for
// leadership across processes (one active follower per name), reads
// batches after its checkpoint (or checkpoints), hands them to the handler,
// wakes on commits (with a polling fallback) and backs off after failures.
// Delivery is at least once: a batch whose checkpoint did not move is read
// again.
type Follower struct {
	name   string
	feed   Feed
	leader Leader
	step   func(ctx context.Context) (int, error)
	opts   FollowerOptions
	log    *slog.Logger
}

// NewFollower returns a follower named name (its checkpoint's and its
// leadership lock's name).
func NewFollower(name string, feed Feed, cps Checkpoints, leader Leader, handle HandleFunc, opts FollowerOptions) *Follower {
	f := newFollower(name, feed, leader, nil, opts)
	f.step = func(ctx context.Context) (int, error) {
		cp, err := cps.Checkpoint(ctx, name)
		if err != nil {
			return 0, fmt.Errorf("%s: checkpoint: %w", name, err)
		}
		events, err := feed.ReadAll(ctx, cp.Cursor, f.opts.BatchSize)
		if err != nil {
			return 0, fmt.Errorf("%s: read log: %w", name, err)
		}
		if len(events) == 0 {
			return 0, nil
		}
		if err := handle(ctx, cp.Cursor, events); err != nil {
			return 0, err
		}
		return len(events), nil
	}
	return f
}

// newFollower returns a follower whose every step is step: a Manager's,
// which serves several checkpoints.
func newFollower(name string, feed Feed, leader Leader, step func(context.Context) (int, error), opts FollowerOptions) *Follower {
	loopDefaults(&opts.Interval, &opts.BatchSize, &opts.MaxBackoff)
	if opts.OnState == nil {
		opts.OnState = func(bool, error) {}
	}
	return &Follower{name: name, feed: feed, leader: leader, step: step, opts: opts, log: orDiscard(opts.Logger).With("follower", name)}
}

// loopDefaults fills in a log-reading loop's defaults: a polling interval
// of 5s, batches of 1000 events, back-off capped at 5s.
func loopDefaults(interval *time.Duration, batchSize *int, maxBackoff *time.Duration) {
	if *interval <= 0 {
		*interval = 5 * time.Second
	}
	if *batchSize <= 0 {
		*batchSize = 1000
	}
	if *maxBackoff <= 0 {
		*maxBackoff = 5 * time.Second
	}
}

// orDiscard returns log, or a logger that discards when it is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// Name returns the follower's name.
func (f *Follower) Name() string { return f.name }

// Run competes for leadership and, while leading, follows the log until ctx
// is done. It returns nil then.
func (f *Follower) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		lost, release, ok, err := f.leader.TryLead(ctx, f.name)
		if err != nil && ctx.Err() != nil {
			return nil // shutting down
		}
		if err != nil {
			f.log.Warn("leadership unavailable", "error", err)
		}
		if !ok {
			f.opts.OnState(false, err)
			wait(ctx, nil, f.opts.Interval, nil)
			continue
		}
		f.log.Info("leading")
		f.opts.OnState(true, nil)
		err = f.follow(ctx, lost)
		release()
		f.opts.OnState(false, err)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("stopped leading", "error", err)
			wait(ctx, nil, time.Second, nil)
		}
	}
	return nil
}

// maxQuickRetries bounds the quick re-reads after a commit signal that found
// nothing readable yet (5 ms growing to 50 ms: about 5 s in all).
const maxQuickRetries = 105

var errLeadershipLost = errors.New("leadership lost")

// follow handles batches until ctx ends or leadership is lost.
func (f *Follower) follow(ctx context.Context, lost <-chan struct{}) error {
	failures, retry := 0, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errLeadershipLost
		default:
		}
		committed := f.feed.Committed()
		n, err := f.Step(ctx)
		switch {
		case err == nil:
			if failures > 0 {
				f.log.Info("handling again", "failures", failures)
				f.opts.OnState(true, nil)
			}
			failures = 0
		case errors.Is(err, ErrCheckpointMoved):
			continue // a rebuild reset it, or another follower moved it: re-read
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			f.opts.OnState(true, err)
			f.log.Error("batch failed; retrying from the checkpoint", "error", err, "failures", failures)
			wait(ctx, lost, Backoff(failures, f.opts.MaxBackoff), nil)
			continue
		}
		retry = pace(ctx, lost, n == f.opts.BatchSize, n, retry, f.opts.Interval, committed)
	}
}

// pace waits after a read of n events of the log (full: a whole batch, so
// more may be waiting) before the next, and returns the next read's retry
// count: 0, or the quick re-reads done since a commit signal (committed,
// taken before the read) found nothing readable.
func pace(ctx context.Context, lost <-chan struct{}, full bool, n, retry int, interval time.Duration, committed <-chan struct{}) int {
	switch {
	case full:
		return 0
	case n == 0 && retry > 0 && retry <= maxQuickRetries:
		// Woken by a commit that is not readable yet: on PostgreSQL an
		// event becomes readable when every older transaction of the
		// server has ended, which nobody announces. Look again soon, or
		// at the next commit.
		wait(ctx, lost, time.Duration(min(retry, 10))*5*time.Millisecond, committed)
		return retry + 1
	default:
		// Caught up: wait for a commit, the polling interval, or the end.
		if wait(ctx, lost, interval, committed) == woken {
			return 1
		}
		return 0
	}
}

// Step reads one batch after the checkpoint and hands it to the handler (a
// Manager's follower: Manager.step). It returns the batch's size
// (BatchSize: more may be waiting).
func (f *Follower) Step(ctx context.Context) (int, error) { return f.step(ctx) }

// Backoff is the jittered wait before retry n (1, 2, ...): 100 ms doubling,
// capped at ceiling, of which a random half.
func Backoff(n int, ceiling time.Duration) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 16), ceiling)
	return d/2 + rand.N(d/2+1)
}

type wakeReason int

const (
	elapsed wakeReason = iota
	woken
	stopped
)

// wait waits d, or until ctx ends, lost closes, or wakeup closes (nil
// channels never close).
func wait(ctx context.Context, lost <-chan struct{}, d time.Duration, wakeup <-chan struct{}) wakeReason {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return stopped
	case <-lost:
		return stopped
	case <-wakeup:
		return woken
	case <-t.C:
		return elapsed
	}
}
