// Package projection runs projections: it reads the event store's gap-safe
// global log and hands batches of events to a Target, which applies them to
// its read models and moves the projection's checkpoint in the same
// transaction. Delivery is at least once (a batch may be read twice after a
// crash); the checkpoint's compare-and-set makes the effects exactly once,
// even when two runners briefly believe they lead.
package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// ErrCheckpointMoved is returned by Target.Apply when the checkpoint is no
// longer where the batch started (a rebuild or another runner moved it).
var ErrCheckpointMoved = errors.New("projection: checkpoint moved")

// ErrRebuildUnsupported is returned by a rebuild the projections' feed
// cannot do (a Kafka-fed projection replays by resetting its group's offsets).
var ErrRebuildUnsupported = errors.New("projection: rebuild not supported with this feed")

// ErrUnknownProjection is returned for a name that is not a projection.
var ErrUnknownProjection = errors.New("projection: unknown projection")

// Feed is the ordered source of events: the event store's global log.
type Feed interface {
	ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error)
	Head(ctx context.Context) (eventstore.Cursor, error)
	Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error)
	Committed() <-chan struct{}
}

// Checkpoint is a projection's position in the global log.
type Checkpoint struct {
	Cursor    eventstore.Cursor
	UpdatedAt time.Time
}

// Target holds read models and their checkpoints.
type Target interface {
	// Checkpoint returns the projection's checkpoint (zero if it never ran).
	Checkpoint(ctx context.Context, name string) (Checkpoint, error)
	// Apply applies events read from the log (in log order) to the read
	// models of the projections named in from, in one transaction: each
	// projection gets the events after its own checkpoint, from[name], and
	// its checkpoint moves from there to the last event's cursor. It
	// returns ErrCheckpointMoved, having applied nothing, when any of the
	// checkpoints is not where from says.
	Apply(ctx context.Context, from map[string]eventstore.Cursor, events []eventstore.Recorded) error
	// Reset empties the projection's read models and checkpoint, in one transaction.
	Reset(ctx context.Context, name string) error
}

// Leader grants leadership of a projection across processes.
type Leader interface {
	// TryLead tries to become the projection's active runner. When it
	// succeeds, lost is closed if leadership is lost, and release gives it up.
	TryLead(ctx context.Context, name string) (lost <-chan struct{}, release func(), ok bool, err error)
}

// Options tune a Manager.
type Options struct {
	// Interval is the polling fallback when no commit signal arrives, and how
	// often a standby tries to take over (ReadModels.RefreshInterval).
	Interval time.Duration
	// BatchSize is the number of events applied per transaction (default 1000).
	BatchSize int
	Logger    *slog.Logger
	// OnApplied, when set, is called after every applied batch (metrics, cache invalidation).
	OnApplied func(name string, events []eventstore.Recorded)
}

// Manager runs a set of projections, each a Follower of the log whose
// effect is Target.Apply, and reports on them.
type Manager struct {
	feed      Feed
	target    Target
	names     []string
	followers map[string]*Follower
	opts      Options
	log       *slog.Logger
	progress  eventstore.Signal

	mu     sync.Mutex
	active map[string]bool
	errs   map[string]string
}

// NewManager returns a manager of the named projections.
func NewManager(feed Feed, target Target, leader Leader, names []string, opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{feed: feed, target: target, names: names, opts: opts, log: log,
		followers: make(map[string]*Follower, len(names)), active: map[string]bool{}, errs: map[string]string{}}
	for _, name := range names {
		m.followers[name] = NewFollower(name, feed, target, leader, m.applier(name), FollowerOptions{
			Interval: opts.Interval, BatchSize: opts.BatchSize, Logger: log.With("projection", name),
			OnState: func(active bool, err error) { m.setState(name, active, err) },
		})
	}
	return m
}

// applier is a projection's effect: the batch and its checkpoint in one
// transaction of the target.
func (m *Manager) applier(name string) HandleFunc {
	return func(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
		if err := m.target.Apply(ctx, map[string]eventstore.Cursor{name: from}, events); err != nil {
			return err
		}
		if m.opts.OnApplied != nil {
			m.opts.OnApplied(name, events)
		}
		m.progress.Notify()
		return nil
	}
}

// Names returns the projections' names.
func (m *Manager) Names() []string { return m.names }

// Progress returns a channel closed when any projection next advances here.
func (m *Manager) Progress() <-chan struct{} { return m.progress.C() }

// Run runs every projection until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range m.followers {
		wg.Go(func() { f.Run(ctx) })
	}
	wg.Wait()
	return nil
}

func (m *Manager) setState(name string, active bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active[name] = active
	if err != nil {
		m.errs[name] = err.Error()
	} else {
		delete(m.errs, name)
	}
}

// CatchUp applies batches of one projection in the calling goroutine until
// it reaches the head of the log as it was when called. It does not take
// leadership: the checkpoint's compare-and-set keeps a concurrent runner
// from applying anything twice. Used by tests and the CLI.
func (m *Manager) CatchUp(ctx context.Context, name string) error {
	f, ok := m.followers[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownProjection, name)
	}
	head, err := m.feed.Head(ctx)
	if err != nil {
		return err
	}
	for {
		cp, err := m.target.Checkpoint(ctx, name)
		if err != nil {
			return err
		}
		if !cp.Cursor.Less(head) {
			return nil
		}
		if _, err := f.Step(ctx); err != nil && !errors.Is(err, ErrCheckpointMoved) {
			return err
		}
	}
}

// Rebuild resets a projection; its active runner (here or in another
// process) replays the log into it.
func (m *Manager) Rebuild(ctx context.Context, name string) error {
	if _, ok := m.followers[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownProjection, name)
	}
	if err := m.target.Reset(ctx, name); err != nil {
		return fmt.Errorf("projection: rebuild %s: %w", name, err)
	}
	m.log.Info("projection: rebuild started", "projection", name)
	m.progress.Notify()
	return nil
}

// WaitPast waits until every projection's checkpoint has reached the log's
// head as it is now (every batch read before the call has been applied), or
// until ctx ends.
func (m *Manager) WaitPast(ctx context.Context) error {
	head, err := m.feed.Head(ctx)
	if err != nil {
		return err
	}
	for _, name := range m.names {
		for {
			cp, err := m.target.Checkpoint(ctx, name)
			if err != nil {
				return err
			}
			if !cp.Cursor.Less(head) {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-m.progress.C():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Status describes one projection.
type Status struct {
	Name       string  `json:"name"`
	Checkpoint string  `json:"checkpoint"`
	Head       string  `json:"head"`
	LagEvents  int64   `json:"lagEvents"`
	LagSeconds float64 `json:"lagSeconds"`
	Active     bool    `json:"active"`
	// Feed is what feeds the projection: "log" (the event store's global
	// log, through this Manager) or "kafka" (the projection consumer group;
	// Checkpoint and Head do not apply, LagEvents is the group's lag).
	Feed      string    `json:"feed"`
	LastError string    `json:"lastError,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// Status reports every projection: checkpoint, head, lag in events and in
// seconds (the age of the oldest event not yet applied), and whether this
// process runs it.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	head, err := m.feed.Head(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(m.names))
	for _, name := range m.names {
		cp, err := m.target.Checkpoint(ctx, name)
		if err != nil {
			return nil, err
		}
		bl, err := m.feed.Backlog(ctx, cp.Cursor)
		if err != nil {
			return nil, err
		}
		st := Status{Name: name, Checkpoint: cp.Cursor.String(), Head: head.String(), LagEvents: bl.Events, UpdatedAt: cp.UpdatedAt,
			Feed: "log"}
		if !bl.Oldest.IsZero() {
			st.LagSeconds = max(0, time.Since(bl.Oldest).Seconds())
		}
		m.mu.Lock()
		st.Active, st.LastError = m.active[name], m.errs[name]
		m.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

// LocalLeader grants leadership to every caller: for a single process, or a
// Target whose engine has no shared lock.
type LocalLeader struct{}

// TryLead always succeeds.
func (LocalLeader) TryLead(context.Context, string) (<-chan struct{}, func(), bool, error) {
	return nil, func() {}, true, nil
}
