package subscription

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// worker delivers one subscription: it reads the log after the
// subscription's checkpoint (or its replay's), forms a batch of the events
// that match, posts it until it is acknowledged or the subscription is
// suspended, and moves the checkpoint past it.
type worker struct {
	d       *Dispatcher
	updates chan Subscription
	done    chan struct{}
	cancel  context.CancelFunc

	sub Subscription
	// generation is sub.Generation, for offer: the dispatcher's goroutine
	// reads it while the worker's changes sub.
	generation atomic.Int64
	pending    *batch
	// replaying: the pending batch belongs to the replay.
	replaying bool
	dirty     bool // progress not saved yet
	// skipped: the checkpoint moved past events the filter left out only;
	// saved at most every skipSaveEvery (reading them again after a crash
	// delivers nothing), or at the end.
	skipped  bool
	savedAt  time.Time
	caughtUp bool
	lagAt    time.Time
	failing  bool // told the observer that it is retrying
	// page is what is left of the log's page read last, the events after
	// pageAfter.
	page      []eventstore.Recorded
	pageAfter eventstore.Cursor
	// unsaved: the last save failed; nothing more is delivered until one
	// succeeds (a checkpoint far behind what was delivered would be
	// delivered again).
	unsaved bool
	changes Changes
	epcis   *epcisState
}

// setFailing tells the observer when the subscription starts or stops
// retrying.
func (w *worker) setFailing(failing bool) {
	if failing != w.failing {
		w.failing = failing
		w.d.opts.Observer.Failing(w.sub.Tenant, w.sub.ID, failing)
	}
}

func newWorker(d *Dispatcher, s Subscription) *worker {
	w := &worker{d: d, sub: s, updates: make(chan Subscription, 1), done: make(chan struct{})}
	w.generation.Store(s.Generation)
	return w
}

// offer hands the worker the subscription as stored; it takes it when its
// generation moved. It runs on the dispatcher's goroutine.
func (w *worker) offer(s Subscription) {
	if s.Generation == w.generation.Load() {
		return // the worker's own progress is newer than the store's
	}
	select {
	case <-w.updates: // replace an update not taken yet
	default:
	}
	w.updates <- s
}

func (w *worker) stop() {
	w.cancel()
}

// start runs the worker in a goroutine of wg until ctx ends or stop.
func (w *worker) start(ctx context.Context, wg *sync.WaitGroup) {
	ctx, w.cancel = context.WithCancel(ctx)
	wg.Go(func() {
		defer w.cancel()
		w.run(ctx)
	})
}

func (w *worker) run(ctx context.Context) {
	defer func() {
		w.dirty = w.dirty || w.skipped
		w.save(context.WithoutCancel(ctx))
	}()
	defer w.setFailing(false)
	w.setFailing(w.sub.FailingSince != nil && w.sub.Status == StatusActive)
	for ctx.Err() == nil {
		w.step(ctx)
	}
}

// take applies a new definition of the subscription.
func (w *worker) take(s Subscription) {
	if err := w.d.open(&s); err != nil {
		w.d.log.Error("subscription not reloaded", "tenant", s.Tenant, "subscription", s.ID, "error", err)
		return
	}
	old := w.sub
	s.Progress = old.Progress // the worker's is the newest
	if old.Status != StatusActive && s.Status == StatusActive {
		// Resumed: try now.
		s.FailingSince, s.NextAttemptAt, s.Attempts = nil, nil, 0
		w.setFailing(false)
	}
	if s.Replay != nil && old.Replay != nil && s.Replay.ID == old.Replay.ID {
		s.Replay = old.Replay // the worker's progress of the same replay
	}
	if s.URL != old.URL || s.MaxBatch != old.MaxBatch || !reflect.DeepEqual(s.Filter, old.Filter) ||
		(w.replaying && (s.Replay == nil || s.Replay.ID != old.Replay.ID)) {
		w.pending, w.replaying = nil, false // formed under the old definition
	}
	w.sub = s
	w.generation.Store(s.Generation)
}

// wait waits for d, a new definition, a commit (when commits is not nil),
// or the end.
func (w *worker) wait(ctx context.Context, d time.Duration, commits <-chan struct{}) {
	select {
	case <-ctx.Done():
	case s := <-w.updates:
		w.take(s)
	case <-commits:
	case <-w.d.opts.Clock.After(d):
	}
}

func (w *worker) step(ctx context.Context) {
	select {
	case s := <-w.updates:
		w.take(s)
	default:
	}
	clock := w.d.opts.Clock
	if w.unsaved && !w.save(ctx) {
		select { // the store is away: try again in a second
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return
	}
	if w.sub.Status != StatusActive {
		w.save(ctx)
		w.wait(ctx, time.Hour, nil)
		return
	}
	if at := w.sub.NextAttemptAt; at != nil && clock.Now().Before(*at) {
		w.wait(ctx, at.Sub(clock.Now()), nil)
		return
	}
	if w.pending == nil {
		commits := w.d.feed.Committed()
		found, err := w.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.d.log.Warn("cannot read the log", "tenant", w.sub.Tenant, "subscription", w.sub.ID, "error", err)
				w.wait(ctx, w.d.opts.Interval, nil)
			}
			return
		}
		if !found {
			w.save(ctx)
			w.reportLag(ctx)
			w.wait(ctx, w.idle(), commits)
			return
		}
	}
	w.deliver(ctx)
	w.reportLag(ctx)
}

// next forms the next batch from the log, moving the checkpoint (in memory)
// past events that do not match. It reports whether a batch is pending.
func (w *worker) next(ctx context.Context) (bool, error) {
	for ctx.Err() == nil {
		if w.sub.Replay != nil {
			found, more, err := w.nextReplay(ctx)
			if err != nil || found {
				return found, err
			}
			if more {
				continue
			}
		}
		found, more, err := w.read(ctx, w.sub.Cursor, nil, w.sub.Since, nil)
		if err != nil || found || !more {
			w.caughtUp = !found && !more && err == nil
			return found, err
		}
	}
	return false, ctx.Err()
}

// nextReplay forms the next batch of the replay; when the replay has
// nothing more it ends it.
func (w *worker) nextReplay(ctx context.Context) (found, more bool, err error) {
	r := w.sub.Replay
	until := w.sub.Cursor
	if r.Until != nil && r.Until.Less(until) {
		until = *r.Until
	}
	found, more, err = w.read(ctx, r.After, &until, r.Since, r.UntilTime)
	if err != nil || found {
		w.replaying = found
		return found, false, err
	}
	if more {
		return false, true, nil
	}
	// Done: say so.
	if err := w.d.store.SaveReplay(ctx, w.sub.Tenant, w.sub.ID, r.ID, nil); err != nil {
		return false, false, err
	}
	w.d.log.Info("replay done", "tenant", w.sub.Tenant, "subscription", w.sub.ID, "events", r.Delivered)
	w.sub.Replay = nil
	return false, true, nil
}

// read reads one page of the log after `after` and forms a batch of the
// matching events (up to `until` when set). It reports whether a batch is
// pending, and whether the page moved the cursor without one (more to
// read at once).
func (w *worker) read(ctx context.Context, after eventstore.Cursor, until *eventstore.Cursor, since, before *time.Time) (found, more bool, err error) {
	page, err := w.pageFrom(ctx, after)
	if err == nil && w.sub.EPCIS != nil {
		return w.readEPCIS(ctx, page, until, since, before)
	}
	if err != nil || len(page) == 0 {
		return false, false, err
	}
	s := &w.sub
	if len(s.Filter.IntegrationKinds) > 0 && w.changes == nil && w.d.opts.Changes != nil {
		w.changes = w.d.opts.Changes()
	}
	entities := s.Filter.Candidates()
	var candidates []eventstore.Recorded
	end := page[len(page)-1].Cursor
	reachedUntil := false
	for _, r := range page {
		if until != nil && until.Less(r.Cursor) {
			reachedUntil = true
			end = *until
			break
		}
		if r.Tenant != s.Tenant || !entities.Match(r) || (since != nil && r.RecordedAt.Before(*since)) ||
			(before != nil && !r.RecordedAt.Before(*before)) {
			continue
		}
		candidates = append(candidates, r)
	}
	// The states folded are kept at once: a batch that fails is retried as
	// formed, and a state folded twice is only read again.
	events, at, err := s.Filter.Select(ctx, w.changes, candidates)
	if err != nil {
		return false, false, err
	}
	if n := batchLen(events, s.MaxBatch); n < len(events) {
		events = events[:n]
		end = candidates[at[n-1]].Cursor // the rest of the page is taken next
		reachedUntil = false
	}
	w.consume(end)
	var first time.Time
	if len(events) > 0 {
		first = events[0].RecordedAt
	}
	if len(events) == 0 {
		w.advance(until != nil, end, 0, 0)
		return false, !reachedUntil, nil
	}
	w.pending = &batch{id: webhookID(events), events: events, end: end, oldest: first}
	return true, false, nil
}

// MaxRequestBytes bounds the body of a request: a batch takes events while
// their data and metadata stay under it (one event at least, which the
// event store bounds by EventStore.MaxEventBytes).
const MaxRequestBytes = 1 << 20

// batchLen is how many of events one request takes: at most max, and no
// more than fit in MaxRequestBytes.
func batchLen(events []Event, max int) int {
	size := 0
	for i, e := range events {
		if i == max {
			return i
		}
		// The envelope of an event (ids, times, names) is a few hundred bytes.
		size += len(e.Data) + len(e.EntityID) + len(e.Type) + 400
		if i > 0 && size > MaxRequestBytes {
			return i
		}
	}
	return len(events)
}

// pageFrom returns events of the log after `after`: what is left of the
// page read last when it goes on from there (a batch smaller than a page
// takes the rest of it next time, rather than reading it again), otherwise
// a new page.
func (w *worker) pageFrom(ctx context.Context, after eventstore.Cursor) ([]eventstore.Recorded, error) {
	if len(w.page) > 0 && w.pageAfter == after {
		return w.page, nil
	}
	page, err := w.d.feed.ReadAll(ctx, after, w.d.opts.ReadBatch)
	if err != nil {
		w.page = nil
		return nil, err
	}
	w.page, w.pageAfter = page, after
	return page, nil
}

// consume drops the page's events up to end, which the batch formed took
// (or left out).
func (w *worker) consume(end eventstore.Cursor) {
	i := 0
	for i < len(w.page) && !end.Less(w.page[i].Cursor) {
		i++
	}
	w.page, w.pageAfter = w.page[i:], end
}

// advance moves the checkpoint (or the replay's) to end after n events
// up to position pos were acknowledged.
func (w *worker) advance(replay bool, end eventstore.Cursor, n int, pos int64) {
	if replay {
		r := *w.sub.Replay
		r.After = end
		r.Delivered += int64(n)
		w.sub.Replay = &r
		w.dirty = true
		return
	}
	w.sub.Cursor = end
	if n == 0 {
		w.skipped = true
		return
	}
	w.sub.Position = pos
	w.sub.Delivered += int64(n)
	w.dirty = true
}

// skipSaveEvery spaces the saves of a checkpoint that moved only past
// events the filter left out: with many subscriptions, every commit moves
// every other subscription's checkpoint so.
const skipSaveEvery = 10 * time.Second

// deliver posts the pending batch once and acts on the answer.
func (w *worker) deliver(ctx context.Context) {
	b, s, clock := w.pending, &w.sub, w.d.opts.Clock
	b.attempts++
	now := clock.Now()
	o := w.d.post(ctx, s, b)
	if ctx.Err() != nil && !o.ok() {
		return // shutting down: this attempt does not count
	}
	w.d.record(Delivery{Tenant: s.Tenant, SubscriptionID: s.ID, WebhookID: b.id, AttemptedAt: now, Attempt: b.attempts,
		Events: len(b.events), FirstPosition: b.first(), LastPosition: b.last(),
		Replay: w.replaying, Status: o.status, Latency: o.latency, Error: o.err})
	s.LastAttemptAt = &now
	if o.ok() {
		w.setFailing(false)
		s.FailingSince, s.NextAttemptAt, s.Attempts, s.LastError = nil, nil, 0, ""
		s.LastSuccessAt = &now
		replaying := w.replaying
		w.advance(replaying, b.end, len(b.events), b.last())
		w.caughtUp = false
		w.pending, w.replaying = nil, false
		if replaying {
			w.saveReplay(ctx)
		}
		if clock.Since(w.savedAt) >= w.d.opts.SaveEvery {
			w.save(ctx)
		}
		return
	}
	if s.FailingSince == nil {
		s.FailingSince = &now
	}
	w.setFailing(true)
	s.Attempts++
	s.LastError = o.err
	w.dirty = true
	reason := ""
	switch {
	case o.gone:
		reason = "the destination answered 410 Gone"
	case now.Sub(*s.FailingSince) >= w.d.opts.RetryFor:
		reason = fmt.Sprintf("no delivery acknowledged for %s: %s", w.d.opts.RetryFor, o.err)
	}
	if reason != "" {
		s.NextAttemptAt = nil
		w.save(ctx)
		err := w.d.store.Suspend(ctx, s.Tenant, s.ID, s.Generation, reason)
		if err == nil {
			w.d.log.Warn("subscription suspended", "tenant", s.Tenant, "subscription", s.ID, "reason", reason)
			s.Status, s.Reason = StatusSuspended, reason
			s.Generation++
			w.generation.Store(s.Generation)
			w.setFailing(false)
			return
		}
		// Changed meanwhile (its new definition is on its way) or the store
		// is away: retry on the schedule, and suspend at the next failure.
		if !errors.Is(err, ErrConflict) {
			w.d.log.Warn("subscription not suspended", "tenant", s.Tenant, "subscription", s.ID, "error", err)
		}
	}
	wait := backoff(s.Attempts, w.d.opts.MinBackoff, w.d.opts.MaxBackoff)
	if o.retryAfter > 0 {
		wait = min(max(wait, o.retryAfter), w.d.opts.MaxBackoff*6)
	}
	// Never wait past the end of the retries: the last attempt falls on it.
	if deadline := s.FailingSince.Add(w.d.opts.RetryFor); now.Add(wait).After(deadline) && deadline.After(now) {
		wait = deadline.Sub(now)
	}
	// The stores keep microseconds: so does the schedule.
	next := now.Add(wait).Truncate(time.Microsecond)
	s.NextAttemptAt = &next
	w.save(ctx)
}

// backoff is the wait after failed attempt n (1, 2, ...): min doubling,
// capped at ceiling, of which a random part between 75 % and 100 %.
func backoff(n int, floor, ceiling time.Duration) time.Duration {
	d := min(floor<<min(n-1, 30), ceiling)
	if d <= 0 {
		d = ceiling
	}
	return d - rand.N(d/4+1)
}

// save records the progress if it changed.
func (w *worker) save(ctx context.Context) bool {
	if w.skipped && w.d.opts.Clock.Since(w.savedAt) >= skipSaveEvery {
		w.dirty = true
	}
	if !w.dirty {
		return true
	}
	if err := w.d.store.SaveProgress(ctx, w.sub.Tenant, w.sub.ID, w.sub.Progress); err != nil {
		if !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
			w.d.log.Warn("subscription progress not saved", "tenant", w.sub.Tenant, "subscription", w.sub.ID, "error", err)
		}
		w.unsaved = true
		return false
	}
	if w.sub.Replay != nil {
		w.saveReplay(ctx)
	}
	w.dirty, w.skipped, w.unsaved, w.savedAt = false, false, false, w.d.opts.Clock.Now()
	return true
}

func (w *worker) saveReplay(ctx context.Context) {
	if r := w.sub.Replay; r != nil {
		if err := w.d.store.SaveReplay(ctx, w.sub.Tenant, w.sub.ID, r.ID, r); err != nil && ctx.Err() == nil {
			w.d.log.Warn("replay progress not saved", "tenant", w.sub.Tenant, "subscription", w.sub.ID, "error", err)
		}
	}
}

// reportLag tells the observer how far behind the subscription is, at most
// every 10 s while behind.
func (w *worker) reportLag(ctx context.Context) {
	now := w.d.opts.Clock.Now()
	if w.caughtUp {
		if !w.lagAt.IsZero() {
			w.d.opts.Observer.Lag(w.sub.Tenant, w.sub.ID, 0, 0)
			w.lagAt = time.Time{}
		}
		return
	}
	if now.Sub(w.lagAt) < 10*time.Second {
		return
	}
	w.lagAt = now
	b, err := w.d.feed.Backlog(ctx, w.sub.Cursor)
	if err != nil {
		return
	}
	secs := 0.0
	if !b.Oldest.IsZero() {
		secs = now.Sub(b.Oldest).Seconds()
	}
	w.d.opts.Observer.Lag(w.sub.Tenant, w.sub.ID, b.Events, secs)
}
