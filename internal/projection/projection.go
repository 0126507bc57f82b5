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
	// Apply applies events (in log order) to the projection's read models
	// and moves its checkpoint from `from` to the last event's cursor, in one
	// transaction; ErrCheckpointMoved if the checkpoint is not at `from`.
	Apply(ctx context.Context, name string, from eventstore.Cursor, events []eventstore.Recorded) error
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

// Manager runs a set of projections and reports on them.
type Manager struct {
	feed     Feed
	target   Target
	leader   Leader
	names    []string
	opts     Options
	log      *slog.Logger
	progress eventstore.Signal

	mu     sync.Mutex
	active map[string]bool
	errs   map[string]string
}

// NewManager returns a manager of the named projections.
func NewManager(feed Feed, target Target, leader Leader, names []string, opts Options) *Manager {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{feed: feed, target: target, leader: leader, names: names, opts: opts, log: log,
		active: map[string]bool{}, errs: map[string]string{}}
}

// Names returns the projections' names.
func (m *Manager) Names() []string { return m.names }

func (m *Manager) known(name string) bool {
	for _, n := range m.names {
		if n == name {
			return true
		}
	}
	return false
}

// Progress returns a channel closed when any projection next advances here.
func (m *Manager) Progress() <-chan struct{} { return m.progress.C() }

// Run runs every projection until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, name := range m.names {
		wg.Go(func() { m.runOne(ctx, name) })
	}
	wg.Wait()
	return nil
}

func (m *Manager) setActive(name string, active bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active[name] = active
	if err != nil {
		m.errs[name] = err.Error()
	} else {
		delete(m.errs, name)
	}
}

// runOne competes for leadership of one projection and, while leading,
// follows the log.
func (m *Manager) runOne(ctx context.Context, name string) {
	for ctx.Err() == nil {
		lost, release, ok, err := m.leader.TryLead(ctx, name)
		if err != nil {
			m.log.Warn("projection: leadership unavailable", "projection", name, "error", err)
		}
		if !ok {
			m.setActive(name, false, err)
			sleep(ctx, m.opts.Interval)
			continue
		}
		m.log.Info("projection: leading", "projection", name)
		m.setActive(name, true, nil)
		err = m.follow(ctx, name, lost)
		release()
		m.setActive(name, false, err)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("projection: stopped leading", "projection", name, "error", err)
			sleep(ctx, time.Second)
		}
	}
}

// follow applies batches until the context ends or leadership is lost.
func (m *Manager) follow(ctx context.Context, name string, lost <-chan struct{}) error {
	failures, retry := 0, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("leadership lost")
		default:
		}
		committed := m.feed.Committed()
		n, err := m.step(ctx, name)
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, ErrCheckpointMoved):
			continue // a rebuild reset it, or another runner moved it: re-read
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			m.setActive(name, true, err)
			m.log.Error("projection: batch failed", "projection", name, "error", err, "failures", failures)
			sleep(ctx, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second))
			continue
		}
		switch {
		case n == m.opts.BatchSize:
			retry = 0
		case n == 0 && retry > 0 && retry <= maxQuickRetries:
			// Woken by a commit that is not readable yet: on PostgreSQL an
			// event becomes readable when every older transaction of the
			// server has ended, which nobody announces. Look again soon, or
			// at the next commit.
			t := time.NewTimer(time.Duration(min(retry, 10)) * 5 * time.Millisecond)
			select {
			case <-committed:
			case <-t.C:
			case <-lost:
			case <-ctx.Done():
			}
			t.Stop()
			retry++
		default:
			// Caught up: wait for a commit, the polling interval, or the end.
			retry = 0
			t := time.NewTimer(m.opts.Interval)
			select {
			case <-committed:
				retry = 1
			case <-t.C:
			case <-lost:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
}

// step applies one batch and returns its size.
func (m *Manager) step(ctx context.Context, name string) (int, error) {
	cp, err := m.target.Checkpoint(ctx, name)
	if err != nil {
		return 0, err
	}
	events, err := m.feed.ReadAll(ctx, cp.Cursor, m.opts.BatchSize)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	if err := m.target.Apply(ctx, name, cp.Cursor, events); err != nil {
		return 0, err
	}
	if m.opts.OnApplied != nil {
		m.opts.OnApplied(name, events)
	}
	m.progress.Notify()
	return len(events), nil
}

// CatchUp applies batches of one projection in the calling goroutine until
// it reaches the head of the log as it was when called. It does not take
// leadership: the checkpoint's compare-and-set keeps a concurrent runner
// from applying anything twice. Used by tests and the CLI.
func (m *Manager) CatchUp(ctx context.Context, name string) error {
	if !m.known(name) {
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
		if _, err := m.step(ctx, name); err != nil && !errors.Is(err, ErrCheckpointMoved) {
			return err
		}
	}
}

// Rebuild resets a projection; its active runner (here or in another
// process) replays the log into it.
func (m *Manager) Rebuild(ctx context.Context, name string) error {
	if !m.known(name) {
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
	Name       string    `json:"name"`
	Checkpoint string    `json:"checkpoint"`
	Head       string    `json:"head"`
	LagEvents  int64     `json:"lagEvents"`
	LagSeconds float64   `json:"lagSeconds"`
	Active     bool      `json:"active"`
	LastError  string    `json:"lastError,omitempty"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
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
		st := Status{Name: name, Checkpoint: cp.Cursor.String(), Head: head.String(), LagEvents: bl.Events, UpdatedAt: cp.UpdatedAt}
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

// maxQuickRetries bounds the quick re-reads after a commit signal (5 ms
// growing to 50 ms: about 5 s in all).
const maxQuickRetries = 105

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// LocalLeader grants leadership to every caller: for a single process, or a
// Target whose engine has no shared lock.
type LocalLeader struct{}

// TryLead always succeeds.
func (LocalLeader) TryLead(context.Context, string) (<-chan struct{}, func(), bool, error) {
	return nil, func() {}, true, nil
}
