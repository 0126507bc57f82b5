// Package projection runs projections: it reads the event store's gap-safe
// global log once for the projections at one checkpoint and hands each
// batch to a Target, which applies it to their read models and moves their
// checkpoints in the same transaction. Delivery is at least once (a batch
// may be read twice after a crash); the checkpoints' compare-and-set makes
// the effects exactly once, even when two runners briefly believe they lead.
package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// ErrRebuildInProgress is returned by a rebuild of a projection that is
// being rebuilt already.
var ErrRebuildInProgress = errors.New("projection: a rebuild of this projection is in progress")

// ErrNotRebuilding is returned by Target.Switch when the projection has no
// rebuild in progress (another process switched it already).
var ErrNotRebuilding = errors.New("projection: no rebuild of this projection is in progress")

// shadowSuffix ends the checkpoint name of a projection's rebuild.
const shadowSuffix = "@rebuild"

// Shadow returns the checkpoint name of a projection's rebuild: the
// generation of its read models being built beside the live one.
func Shadow(name string) string { return name + shadowSuffix }

// ShadowOf returns the projection a rebuild's checkpoint name belongs to,
// and whether checkpoint names a rebuild.
func ShadowOf(checkpoint string) (string, bool) { return strings.CutSuffix(checkpoint, shadowSuffix) }

// RetentionLock is the name of the lock (Leader.TryLead) that retention's
// trimming of the log and the start of a rebuild take in turn: a rebuild
// is seeded from the snapshots of the streams retention has trimmed, and
// no stream may be trimmed between that seeding and the rebuild's
// checkpoint holding retention back.
const RetentionLock = "retention"

// Retained is a stream whose oldest events retention has deleted: its
// newest snapshot of the current incarnation, which stands in for them.
type Retained struct {
	Snapshot eventstore.Snapshot
	// First is the lowest version of the stream left in the log (0 when
	// none is left).
	First int64
}

// Seeds pages through the retained streams, in (tenant, stream) order
// after `after`: what a rebuild is seeded with.
type Seeds func(ctx context.Context, after eventstore.StreamRef) ([]Retained, error)

// RetainedSource is the event store's side of seeding: it lists the
// streams whose log no longer starts at version 1, with their newest
// snapshot of schemaVersion, at most limit after `after`.
type RetainedSource interface {
	RetainedSnapshots(ctx context.Context, after eventstore.StreamRef, schemaVersion, limit int) ([]Retained, error)
}

// FillFunc reads the log's events after `from` up to and including `to`,
// in log order: what Target.Switch applies to a rebuild to bring it level
// with the live projection.
type FillFunc func(ctx context.Context, from, to eventstore.Cursor) ([]eventstore.Recorded, error)

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
	// Generation counts the rebuilds switched in: readers' caches keep
	// answers of one generation apart from another's.
	Generation int64
}

// Target holds read models and their checkpoints.
type Target interface {
	// Checkpoint returns the projection's checkpoint (zero if it never ran).
	Checkpoint(ctx context.Context, name string) (Checkpoint, error)
	// Checkpoints returns every checkpoint, by name (a rebuild's under
	// Shadow of its projection's name).
	Checkpoints(ctx context.Context) (map[string]Checkpoint, error)
	// Apply applies events read from the log (in log order) to the read
	// models of the projections named in from, in one transaction: each
	// projection gets the events after its own checkpoint, from[name], and
	// its checkpoint moves from there to the last event's cursor. It
	// returns ErrCheckpointMoved, having applied nothing, when any of the
	// checkpoints is not where from says.
	Apply(ctx context.Context, from map[string]eventstore.Cursor, events []eventstore.Recorded) error
	// BeginRebuild creates, beside the live read models of a projection,
	// an empty generation of them with its own checkpoint (Shadow(name)) at
	// the beginning of the log, seeded with the retained streams seeds
	// pages through, in one transaction. The live read models are neither
	// changed nor locked. ErrRebuildInProgress when one exists.
	BeginRebuild(ctx context.Context, name string, seeds Seeds) error
	// Rebuilding returns the projections being rebuilt.
	Rebuilding(ctx context.Context) ([]string, error)
	// Switch makes a rebuild the live read models of its projection in one
	// transaction: holding both checkpoints, it applies to the rebuild the
	// events fill reads between its checkpoint and the live one, swaps the
	// read models, drops the old ones and returns the new generation.
	// Readers see the old read models or the new, never a mix or neither.
	// ErrNotRebuilding when no rebuild is in progress.
	Switch(ctx context.Context, name string, fill FillFunc) (int64, error)
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
	// BatchSize is the number of events read from the log at once and
	// applied in one transaction (default 1000).
	BatchSize int
	// MaxBackoff caps the jittered, doubling wait before a projection whose
	// batch failed is tried again (default 5s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// OnApplied, when set, is called for each projection after every
	// applied batch, with the events it applied (metrics, cache
	// invalidation).
	OnApplied func(name string, events []eventstore.Recorded)
	// OnSwitched, when set, is called when a projection's generation
	// changes: a rebuild was switched in here, or this process noticed one
	// switched in elsewhere (cache keys).
	OnSwitched func(name string, generation int64)
	// Retained, when set, lists the streams retention has trimmed: a
	// rebuild seeds each from its snapshot (of SnapshotSchemaVersion)
	// instead of folding the part of its history that is left.
	Retained              RetainedSource
	SnapshotSchemaVersion int
}

// leaderName names the leadership of a Manager's runner: one lock for all
// its projections.
const leaderName = "projections"

// Manager runs a set of projections with one follower of the log (one
// leadership lock, one wake-up, one back-off) and reports on each of them.
// Projections at the same checkpoint share every read of the log and every
// transaction of the target; a projection that is replaying from far behind
// (a rebuild) is served by reads of its own, without holding back the
// others, until it reaches them (see step).
type Manager struct {
	feed     Feed
	target   Target
	leader   Leader
	names    []string
	follower *Follower
	opts     Options
	log      *slog.Logger
	progress eventstore.Signal

	mu       sync.Mutex
	active   bool
	errs     map[string]string
	failures map[string]int       // consecutive failed batches, per projection
	retryAt  map[string]time.Time // when a projection that failed is tried again
	gens     map[string]int64     // the generation last seen of each projection
}

// NewManager returns a manager of the named projections.
func NewManager(feed Feed, target Target, leader Leader, names []string, opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	m := &Manager{feed: feed, target: target, leader: leader, names: names, opts: opts, log: log,
		errs: map[string]string{}, failures: map[string]int{}, retryAt: map[string]time.Time{}, gens: map[string]int64{}}
	m.follower = newFollower(leaderName, feed, leader, m.runStep, FollowerOptions{
		Interval: opts.Interval, BatchSize: opts.BatchSize, Logger: log, OnState: m.setState,
	})
	return m
}

// Names returns the projections' names.
func (m *Manager) Names() []string { return m.names }

// Progress returns a channel closed when any projection next advances here.
func (m *Manager) Progress() <-chan struct{} { return m.progress.C() }

// Run runs every projection, and every rebuild, until ctx is done. A
// process that does not lead still watches the projections' generations
// (OnSwitched), so that its caches follow a rebuild switched in elsewhere.
func (m *Manager) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.follower.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, name := range m.names {
					if cp, err := m.target.Checkpoint(ctx, name); err == nil {
						m.noteGeneration(name, cp.Generation)
					}
				}
			}
		}
	}()
	err := m.follower.Run(ctx)
	<-done
	return err
}

// noteGeneration records the generation of a projection seen, and tells
// OnSwitched when it is not the one seen before (or the first seen).
func (m *Manager) noteGeneration(name string, gen int64) {
	m.mu.Lock()
	last, seen := m.gens[name]
	m.gens[name] = gen
	m.mu.Unlock()
	if (!seen || last != gen) && m.opts.OnSwitched != nil {
		m.opts.OnSwitched(name, gen)
	}
}

// stepResult is what a step did.
type stepResult struct {
	largest int              // the size of the largest batch read
	applied []string         // the projections that applied a batch
	failed  map[string]error // the projections whose batch failed
	moved   bool             // a batch was refused: a checkpoint had moved
	atHead  map[string]bool  // the projections whose read found fewer events than a batch
}

// step brings the named projections one batch further. It reads their
// checkpoints; then, from the lowest, it reads one batch after the lowest
// checkpoint not yet served and applies it, in one transaction, to every
// projection whose checkpoint lies before the batch's end, each from its
// own checkpoint. So projections at one checkpoint share one read and one
// transaction, and a projection far behind (rebuilding) gets a read of its
// own while the others keep following the head, until its batch passes
// their checkpoint and it joins them. A transaction of several projections
// that fails is retried for each alone, so that one failing projection
// holds back none of the others. The error concerns them all (a checkpoint
// or the log could not be read).
func (m *Manager) step(ctx context.Context, names []string) (stepResult, error) {
	r := stepResult{failed: map[string]error{}, atHead: map[string]bool{}}
	cps := make(map[string]eventstore.Cursor, len(names))
	for _, name := range names {
		cp, err := m.target.Checkpoint(ctx, name)
		if err != nil {
			return r, fmt.Errorf("projection %s: checkpoint: %w", name, err)
		}
		cps[name] = cp.Cursor
		if _, shadow := ShadowOf(name); !shadow {
			m.noteGeneration(name, cp.Generation)
		}
	}
	waiting := slices.Clone(names)
	slices.SortStableFunc(waiting, func(a, b string) int {
		switch {
		case cps[a].Less(cps[b]):
			return -1
		case cps[b].Less(cps[a]):
			return 1
		}
		return 0
	})
	for len(waiting) > 0 {
		events, err := m.feed.ReadAll(ctx, cps[waiting[0]], m.opts.BatchSize)
		if err != nil {
			return r, fmt.Errorf("projections: read log: %w", err)
		}
		if len(events) == 0 {
			break // nothing after the lowest checkpoint, so nothing after the others
		}
		r.largest = max(r.largest, len(events))
		end := events[len(events)-1].Cursor
		n := 1
		for n < len(waiting) && cps[waiting[n]].Less(end) {
			n++
		}
		if len(events) < m.opts.BatchSize {
			for _, name := range waiting[:n] {
				r.atHead[name] = true
			}
		}
		m.apply(ctx, waiting[:n], cps, events, &r)
		waiting = waiting[n:]
	}
	return r, nil
}

// apply applies a batch to a group of projections in one transaction.
func (m *Manager) apply(ctx context.Context, group []string, cps map[string]eventstore.Cursor, events []eventstore.Recorded, r *stepResult) {
	from := make(map[string]eventstore.Cursor, len(group))
	for _, name := range group {
		from[name] = cps[name]
	}
	err := m.target.Apply(ctx, from, events)
	switch {
	case err != nil && len(group) > 1 && !errors.Is(err, ErrCheckpointMoved) && ctx.Err() == nil:
		for _, name := range group {
			m.apply(ctx, []string{name}, cps, events, r)
		}
	case errors.Is(err, ErrCheckpointMoved):
		r.moved = true
	case err != nil:
		for _, name := range group {
			r.failed[name] = err
		}
	default:
		r.applied = append(r.applied, group...)
		if m.opts.OnApplied != nil {
			for _, name := range group {
				m.opts.OnApplied(name, after(cps[name], events))
			}
		}
		m.progress.Notify()
	}
}

// after returns the events after cursor c (events in log order).
func after(c eventstore.Cursor, events []eventstore.Recorded) []eventstore.Recorded {
	for i, e := range events {
		if c.Less(e.Cursor) {
			return events[i:]
		}
	}
	return nil
}

// runStep is the runner's step: the projections, and the rebuilds in
// progress, not waiting to be retried after a failure. Their failures are
// reported per projection, and each failing projection waits, backing off,
// before it is tried again; the follower backs off only when the
// checkpoints or the log cannot be read. A rebuild that has caught up with
// its live projection (they share every batch once it has) is switched in.
func (m *Manager) runStep(ctx context.Context) (int, error) {
	rebuilding, err := m.target.Rebuilding(ctx)
	if err != nil {
		return 0, fmt.Errorf("projections: rebuilds: %w", err)
	}
	names := m.names
	for _, name := range rebuilding {
		names = append(slices.Clip(names), Shadow(name))
	}
	r, err := m.step(ctx, m.due(names))
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	m.settle(r)
	switch {
	case err != nil:
		return 0, err
	case r.moved:
		return r.largest, ErrCheckpointMoved // another runner moved one: read again
	}
	var atHead, others []string
	for _, name := range rebuilding {
		if r.atHead[Shadow(name)] && r.failed[Shadow(name)] == nil {
			atHead = append(atHead, name)
		} else {
			others = append(others, name)
		}
	}
	if err := m.finishRebuilds(ctx, atHead, true); err != nil {
		return 0, err
	}
	if err := m.finishRebuilds(ctx, others, false); err != nil {
		return 0, err
	}
	return r.largest, nil
}

// due returns the named projections that are not waiting to be retried.
func (m *Manager) due(names []string) []string {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(names))
	for _, name := range names {
		if !m.retryAt[name].After(now) {
			out = append(out, name)
		}
	}
	return out
}

// finishRebuilds switches in each of the rebuilds whose checkpoint has
// reached its live projection's; with force, every one, after bringing it
// level with the live projection while holding its checkpoint (the runner
// forces a rebuild whose last read reached the head of the log: what it
// lacks is at most what was written since, so that it is switched in
// under a steady stream of writes too).
func (m *Manager) finishRebuilds(ctx context.Context, rebuilding []string, force bool) error {
	for _, name := range rebuilding {
		if !force {
			live, err := m.target.Checkpoint(ctx, name)
			if err != nil {
				return fmt.Errorf("projection %s: checkpoint: %w", name, err)
			}
			shadow, err := m.target.Checkpoint(ctx, Shadow(name))
			if err != nil {
				return fmt.Errorf("projection %s: rebuild checkpoint: %w", name, err)
			}
			if shadow.Cursor.Less(live.Cursor) {
				continue
			}
		}
		gen, err := m.target.Switch(ctx, name, m.fill)
		switch {
		case errors.Is(err, ErrNotRebuilding):
			continue // switched in by another process
		case err != nil:
			return fmt.Errorf("projection %s: switch the rebuild in: %w", name, err)
		}
		m.log.Info("projection: rebuild switched in", "projection", name, "generation", gen)
		m.noteGeneration(name, gen)
		m.progress.Notify()
	}
	return nil
}

// fill reads the log's events after from, up to and including to.
func (m *Manager) fill(ctx context.Context, from, to eventstore.Cursor) ([]eventstore.Recorded, error) {
	var out []eventstore.Recorded
	for from.Less(to) {
		events, err := m.feed.ReadAll(ctx, from, m.opts.BatchSize)
		if err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, fmt.Errorf("projection: the log's readable events end at %s, before %s", from, to)
		}
		for _, e := range events {
			if to.Less(e.Cursor) {
				return out, nil
			}
			out = append(out, e)
		}
		from = events[len(events)-1].Cursor
	}
	return out, nil
}

// settle records a step's outcome per projection.
func (m *Manager) settle(r stepResult) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range r.applied {
		if n := m.failures[name]; n > 0 {
			m.log.Info("projection: applying again", "projection", name, "failures", n)
		}
		delete(m.errs, name)
		delete(m.failures, name)
		delete(m.retryAt, name)
	}
	for _, name := range m.names {
		err, ok := r.failed[name]
		if !ok {
			continue
		}
		m.failures[name]++
		m.errs[name] = err.Error()
		m.retryAt[name] = now.Add(Backoff(m.failures[name], m.opts.MaxBackoff))
		m.log.Error("projection: batch failed; retrying from the checkpoint", "projection", name, "error", err,
			"failures", m.failures[name])
	}
}

// setState records the runner's leadership, and failures that concern every
// projection (leadership, checkpoints, the log).
func (m *Manager) setState(active bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active = active
	for _, name := range m.names {
		switch {
		case m.failures[name] > 0:
			// Its own batch's error stands until it applies one.
		case err != nil:
			m.errs[name] = err.Error()
		default:
			delete(m.errs, name)
		}
	}
}

// known returns the named projections, each once, in the Manager's order
// (all of them when none is named); ErrUnknownProjection for a name that is
// not one.
func (m *Manager) known(names []string) ([]string, error) {
	if len(names) == 0 {
		return m.names, nil
	}
	for _, name := range names {
		if !slices.Contains(m.names, name) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownProjection, name)
		}
	}
	out := make([]string, 0, len(names))
	for _, name := range m.names {
		if slices.Contains(names, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// CatchUp applies batches of the named projections (of every projection
// when none is named), and of their rebuilds in progress, in the calling
// goroutine until each reaches the head of the log as it was when called,
// reading each batch once for the projections at one checkpoint, as the
// runner does; then it switches those rebuilds in. It does not take
// leadership: the checkpoints' compare-and-set keeps a concurrent runner
// from applying anything twice. Used by tests and the CLI.
func (m *Manager) CatchUp(ctx context.Context, names ...string) error {
	names, err := m.known(names)
	if err != nil {
		return err
	}
	all, err := m.target.Rebuilding(ctx)
	if err != nil {
		return err
	}
	var rebuilding []string
	for _, name := range all {
		if slices.Contains(names, name) {
			rebuilding = append(rebuilding, name)
			names = append(slices.Clip(names), Shadow(name))
		}
	}
	head, err := m.feed.Head(ctx)
	if err != nil {
		return err
	}
	for {
		var behind []string
		for _, name := range names {
			cp, err := m.target.Checkpoint(ctx, name)
			if err != nil {
				return err
			}
			if cp.Cursor.Less(head) {
				behind = append(behind, name)
			}
		}
		if len(behind) == 0 {
			return m.finishRebuilds(ctx, rebuilding, true)
		}
		r, err := m.step(ctx, behind)
		if err != nil {
			return err
		}
		for _, name := range behind {
			if err := r.failed[name]; err != nil {
				return err
			}
		}
	}
}

// Rebuild starts a rebuild of a projection: a new generation of its read
// models beside the live one, seeded with the snapshots of the streams
// retention has trimmed (Options.Retained). The active runner (here or in
// another process), or CatchUp, replays the log into it while the live
// projection goes on following the log and serving reads, and switches it
// in once it has caught up. Nothing but read models is written: no other
// follower of the log sees the replay. ErrRebuildInProgress when the
// projection is being rebuilt already.
func (m *Manager) Rebuild(ctx context.Context, name string) error {
	if _, err := m.known([]string{name}); err != nil {
		return err
	}
	release, err := m.holdRetention(ctx)
	if err != nil {
		return fmt.Errorf("projection: rebuild %s: %w", name, err)
	}
	defer release()
	var seeds Seeds
	if src := m.opts.Retained; src != nil {
		seeds = func(ctx context.Context, after eventstore.StreamRef) ([]Retained, error) {
			return src.RetainedSnapshots(ctx, after, m.opts.SnapshotSchemaVersion, 1000)
		}
	}
	if err := m.target.BeginRebuild(ctx, name, seeds); err != nil {
		return fmt.Errorf("projection: rebuild %s: %w", name, err)
	}
	m.log.Info("projection: rebuild started", "projection", name)
	m.progress.Notify()
	return nil
}

// retentionWait bounds how long a rebuild waits for a retention run to
// finish trimming the log.
const retentionWait = time.Minute

// holdRetention takes the lock retention's trimming holds (waiting for a
// run in progress to finish), so that no stream is trimmed while a rebuild
// is seeded: from then on the rebuild's checkpoint holds retention back.
func (m *Manager) holdRetention(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, retentionWait)
	defer cancel()
	for {
		_, release, ok, err := m.leader.TryLead(ctx, RetentionLock)
		if err != nil {
			return nil, fmt.Errorf("retention lock: %w", err)
		}
		if ok {
			return release, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("retention lock: a retention run is trimming the log: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
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
	// Generation counts the rebuilds switched in.
	Generation int64 `json:"generation"`
	// Rebuild is the rebuild in progress, if any: readers are served the
	// live generation until it is switched in.
	Rebuild *RebuildStatus `json:"rebuild,omitempty"`
}

// RebuildStatus describes a rebuild in progress: its checkpoint and how
// far behind the log's head it is.
type RebuildStatus struct {
	Checkpoint string `json:"checkpoint"`
	LagEvents  int64  `json:"lagEvents"`
}

// Status reports every projection: checkpoint, head, lag in events and in
// seconds (the age of the oldest event not yet applied), and whether this
// process runs it.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	head, err := m.feed.Head(ctx)
	if err != nil {
		return nil, err
	}
	cps, err := m.target.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	// The projections are mostly at the same checkpoint: the log is read
	// once per checkpoint, not once per projection.
	backlogs := map[eventstore.Cursor]eventstore.Backlog{}
	backlog := func(c eventstore.Cursor) (eventstore.Backlog, error) {
		if bl, ok := backlogs[c]; ok {
			return bl, nil
		}
		bl, err := m.feed.Backlog(ctx, c)
		if err == nil {
			backlogs[c] = bl
		}
		return bl, err
	}
	out := make([]Status, 0, len(m.names))
	for _, name := range m.names {
		cp := cps[name]
		bl, err := backlog(cp.Cursor)
		if err != nil {
			return nil, err
		}
		st := Status{Name: name, Checkpoint: cp.Cursor.String(), Head: head.String(), LagEvents: bl.Events, UpdatedAt: cp.UpdatedAt,
			Feed: "log", Generation: cp.Generation}
		if scp, rebuilding := cps[Shadow(name)]; rebuilding {
			sbl, err := backlog(scp.Cursor)
			if err != nil {
				return nil, err
			}
			st.Rebuild = &RebuildStatus{Checkpoint: scp.Cursor.String(), LagEvents: sbl.Events}
		}
		if !bl.Oldest.IsZero() {
			st.LagSeconds = max(0, time.Since(bl.Oldest).Seconds())
		}
		m.mu.Lock()
		st.Active, st.LastError = m.active, m.errs[name]
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
