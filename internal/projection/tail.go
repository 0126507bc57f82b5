package projection

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// DefaultTailSize is the number of events a Tail keeps when NewTail is
// given no positive size.
const DefaultTailSize = 10000

// TailOptions tune a Tail.
type TailOptions struct {
	// Interval is the polling fallback when no commit signal arrives
	// (default 5s).
	Interval time.Duration
	// BatchSize is the number of events the loop reads at once (default
	// 1000).
	BatchSize int
	// MaxBackoff caps the jittered, doubling wait after failed reads
	// (default 5s).
	MaxBackoff time.Duration
	// MaxAge drops buffered events recorded longer ago than this (default
	// 1h), so that events trimmed by retention (EventStore.RetentionPolicy
	// MaxAge, days at least) are never in the buffer: a trim, unlike an
	// erasure, leaves nothing in the log to tell.
	MaxAge time.Duration
	// IdleAfter stops following the log when nobody has read the Tail
	// for this long (default 1m; negative: never, and Run follows the log
	// from its start): the buffer is emptied, reads go to the inner Feed,
	// and the next read starts the loop again at the head. Without subscriptions or live streams nothing reads the
	// Tail, and following the log for nobody cost a tenth of the server's
	// CPU under EPCIS capture.
	IdleAfter time.Duration
	// Now returns the current time (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// TailStats describes a Tail's buffer and how its reads were served.
type TailStats struct {
	// Buffered is the number of events in memory: the log's events after
	// From through Through.
	Buffered int
	From     eventstore.Cursor
	Through  eventstore.Cursor
	// Running is true while Run follows the log (reads are served from
	// memory only then): not before Run, after it, or while idle.
	Running bool
	// Hits counts reads answered from memory, Misses reads passed to the
	// inner Feed.
	Hits, Misses uint64
}

// Tail is a Feed that keeps the newest events of another Feed's log in
// memory, read once by one loop (Run), so that many readers near the head
// (subscriptions, live streams) do not each query the store.
//
// The buffer is one contiguous run of the log: the events after a cursor
// From through the last one read, as the loop's ReadAll calls returned them.
// ReadAll(after) is answered from it when From <= after < Through (the
// events after `after` in the log up to Through are exactly the buffered
// ones after it: ReadAll never returns an event that another could still
// precede), and by the inner Feed otherwise.
//
// Erasures: when the loop reads an erasure marker, it removes from the
// buffer every record of the erased stream (its events and an earlier
// marker, all deleted from the log with the erasure), so the buffer stays
// the log's run as it now is, and memory serves no erased data once the
// marker is read. Until then a reader may be served events erased a moment
// ago, as one reading the store just before the erasure would; the marker
// follows them in either case. Trims by retention leave no marker: MaxAge
// keeps old events out of the buffer instead.
type Tail struct {
	inner Feed
	size  int
	opts  TailOptions
	log   *slog.Logger

	mu      sync.RWMutex
	running bool
	from    eventstore.Cursor // the buffer holds the log's events after from...
	through eventstore.Cursor // ...through this one (from when empty)
	buf     []eventstore.Recorded
	signal  eventstore.Signal

	hits, misses atomic.Uint64
	lastRead     atomic.Int64      // when a reader last called ReadAll or Committed (Unix ns)
	wake         eventstore.Signal // a reader arrived while the loop was idle
}

var _ Feed = (*Tail)(nil)

// NewTail returns a Tail of inner keeping its newest size events
// (DefaultTailSize when size <= 0). It serves every read from inner until
// Run is started.
func NewTail(inner Feed, size int, opts TailOptions) *Tail {
	if size <= 0 {
		size = DefaultTailSize
	}
	loopDefaults(&opts.Interval, &opts.BatchSize, &opts.MaxBackoff)
	if opts.MaxAge <= 0 {
		opts.MaxAge = time.Hour
	}
	if opts.IdleAfter == 0 {
		opts.IdleAfter = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Tail{inner: inner, size: size, opts: opts, log: orDiscard(opts.Logger).With("tail", size)}
}

// Run follows the inner Feed's log from its head until ctx ends, keeping
// the newest events in memory; it returns nil then, having emptied the
// buffer (reads go to the inner Feed again). It starts at the first read
// (ReadAll or Committed, before Run or after), and while nobody reads the
// Tail (IdleAfter) it pauses the same way, starting again at the head of
// the log at the next read. Run once at a time.
func (t *Tail) Run(ctx context.Context) error {
	defer t.stop()
	if !t.awaitReader(ctx) || !t.anchor(ctx) {
		return nil
	}
	failures, retry := 0, 0
	for ctx.Err() == nil {
		if t.idle() {
			t.stop()
			if !t.awaitReader(ctx) || !t.anchor(ctx) {
				return nil
			}
			retry = 0
		}
		committed := t.inner.Committed()
		n, err := t.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			t.log.Warn("tail: read of the log failed", "error", err, "failures", failures)
			wait(ctx, nil, Backoff(failures, t.opts.MaxBackoff), nil)
			continue
		}
		failures = 0
		retry = pace(ctx, nil, n == t.opts.BatchSize, n, retry, t.opts.Interval, committed)
	}
	return nil
}

// anchor starts the buffer at the head of the log, retrying until the head
// is read; false when ctx ended first.
func (t *Tail) anchor(ctx context.Context) bool {
	for failures := 0; ; failures++ {
		head, err := t.inner.Head(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			t.start(head)
			return true
		}
		t.log.Warn("tail: head of the log unavailable", "error", err)
		wait(ctx, nil, Backoff(failures+1, t.opts.MaxBackoff), nil)
	}
}

// idle reports whether nobody has read the Tail for IdleAfter.
func (t *Tail) idle() bool {
	return t.opts.IdleAfter > 0 && time.Since(time.Unix(0, t.lastRead.Load())) > t.opts.IdleAfter
}

// awaitReader waits, while the loop is idle, until a reader arrives; false
// when ctx ended first.
func (t *Tail) awaitReader(ctx context.Context) bool {
	for {
		woken := t.wake.C()
		if !t.idle() {
			return true
		}
		select {
		case <-woken:
		case <-ctx.Done():
			return false
		}
	}
}

// read notes a reader's call, waking an idle loop.
func (t *Tail) read(running bool) {
	t.lastRead.Store(time.Now().UnixNano())
	if !running {
		t.wake.Notify()
	}
}

// start anchors an empty buffer at the head of the log.
func (t *Tail) start(head eventstore.Cursor) {
	t.mu.Lock()
	t.running, t.from, t.through, t.buf = true, head, head, nil
	t.mu.Unlock()
	t.signal.Notify()
}

// stop empties the buffer and wakes the readers, who go to the inner Feed.
func (t *Tail) stop() {
	t.mu.Lock()
	t.running, t.buf = false, nil
	t.mu.Unlock()
	t.signal.Notify()
}

// step reads the events after the buffer's last one into the buffer.
func (t *Tail) step(ctx context.Context) (int, error) {
	t.mu.RLock()
	after := t.through // only this loop moves it
	t.mu.RUnlock()
	events, err := t.inner.ReadAll(ctx, after, t.opts.BatchSize)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	changed := t.add(events)
	t.mu.Unlock()
	if changed {
		t.signal.Notify()
	}
	return len(events), nil
}

// add appends events read after t.through, applying erasures and dropping
// what exceeds the size or MaxAge from the front. It reports whether the
// buffer changed.
func (t *Tail) add(events []eventstore.Recorded) bool {
	changed := len(events) > 0
	for _, r := range events {
		if r.Erasure() {
			// Readers get copies: the buffer can change in place.
			t.buf = slices.DeleteFunc(t.buf, func(b eventstore.Recorded) bool {
				return b.Tenant == r.Tenant && b.StreamID == r.StreamID
			})
		}
		t.buf = append(t.buf, r)
		t.through = r.Cursor
	}
	drop := max(len(t.buf)-t.size, 0)
	cutoff := t.opts.Now().Add(-t.opts.MaxAge)
	for i := len(t.buf) - 1; i >= drop; i-- {
		if t.buf[i].RecordedAt.Before(cutoff) {
			drop = i + 1
			break
		}
	}
	if drop > 0 {
		t.from = t.buf[drop-1].Cursor
		clear(t.buf[:drop]) // let the dropped events' data go
		t.buf = t.buf[drop:]
		changed = true
	}
	return changed
}

// ReadAll returns up to limit events of the log after a cursor: from memory
// when the cursor lies within the buffer, from the inner Feed otherwise.
// The events' Data is shared with other readers: do not modify it.
func (t *Tail) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return nil, err
	}
	t.mu.RLock()
	running, from, through := t.running, t.from, t.through
	t.read(running)
	if running && !after.Less(from) && after.Less(through) || running && after == through {
		i := sort.Search(len(t.buf), func(i int) bool { return after.Less(t.buf[i].Cursor) })
		out := make([]eventstore.Recorded, min(limit, len(t.buf)-i))
		copy(out, t.buf[i:])
		t.mu.RUnlock()
		t.hits.Add(1)
		return out, nil
	}
	t.mu.RUnlock()
	t.misses.Add(1)
	events, err := t.inner.ReadAll(ctx, after, limit)
	if err != nil || !running || !after.Less(from) {
		return events, err
	}
	// A reader behind the buffer stops at its end, where memory takes it
	// on, rather than run ahead of the loop and read the store at the head.
	n := sort.Search(len(events), func(i int) bool { return through.Less(events[i].Cursor) })
	if n > 0 {
		events = events[:n]
	}
	return events, nil
}

// Committed returns a channel closed when the buffer has new events (or
// when Run starts or ends); the inner Feed's while Run is not running.
func (t *Tail) Committed() <-chan struct{} {
	t.mu.RLock()
	running := t.running
	t.mu.RUnlock()
	t.read(running)
	if !running {
		return t.inner.Committed()
	}
	return t.signal.C()
}

// Head returns the inner Feed's head.
func (t *Tail) Head(ctx context.Context) (eventstore.Cursor, error) { return t.inner.Head(ctx) }

// Backlog returns the inner Feed's backlog.
func (t *Tail) Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error) {
	return t.inner.Backlog(ctx, after)
}

// Stats reports the buffer and the reads served so far.
func (t *Tail) Stats() TailStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return TailStats{Buffered: len(t.buf), From: t.from, Through: t.through, Running: t.running,
		Hits: t.hits.Load(), Misses: t.misses.Load()}
}
