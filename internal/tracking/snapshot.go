package tracking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// streamKey identifies a stream.
type streamKey struct {
	tenant, id string
}

// snapshotQueue is the bounded queue of streams to snapshot, with the
// bookkeeping Flush needs: how many are queued or being processed.
type snapshotQueue struct {
	jobs chan streamKey

	mu     sync.Mutex
	queued map[streamKey]struct{} // waiting in jobs; a stream is queued once
	busy   int                    // queued plus being processed
	idle   chan struct{}          // closed when busy drops to 0
}

func newSnapshotQueue(size int) *snapshotQueue {
	return &snapshotQueue{jobs: make(chan streamKey, size), queued: map[streamKey]struct{}{}}
}

// enqueue asks for a snapshot of k. It never blocks: when the queue is full
// the request is dropped, and the stream's next crossing asks again.
func (q *snapshotQueue) enqueue(k streamKey, log *slog.Logger) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.queued[k]; ok {
		return
	}
	select {
	case q.jobs <- k:
	default:
		log.Warn("tracking: snapshot queue full, dropping a snapshot request", "tenant", k.tenant, "entity", k.id)
		return
	}
	q.queued[k] = struct{}{}
	if q.busy == 0 {
		q.idle = make(chan struct{})
	}
	q.busy++
}

// take marks a received job as being processed: new crossings of the same
// stream queue it again.
func (q *snapshotQueue) take(k streamKey) {
	q.mu.Lock()
	delete(q.queued, k)
	q.mu.Unlock()
}

// done marks a taken job as finished or abandoned.
func (q *snapshotQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy--
	if q.busy == 0 {
		close(q.idle)
	}
}

// Run takes the snapshots requested by Record, one at a time, off the request
// path. It returns nil when ctx is done, after finishing the snapshot in
// progress (its store calls see ctx cancelled) and abandoning the queued ones.
// Run once per Service.
func (s *Service) Run(ctx context.Context) error {
	q := s.snaps
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case k := <-q.jobs:
					q.take(k)
					q.done()
				default:
					return nil
				}
			}
		case k := <-q.jobs:
			q.take(k)
			if err := s.snapshot(ctx, k, false); err != nil && ctx.Err() == nil {
				s.log.Error("tracking: snapshot failed", "tenant", k.tenant, "entity", k.id, "err", err)
			}
			q.done()
		}
	}
}

// Flush waits until the snapshotter has processed every snapshot requested so
// far (the queue is empty and nothing is in progress), or ctx is done. It
// needs Run to be running.
func (s *Service) Flush(ctx context.Context) error {
	q := s.snaps
	q.mu.Lock()
	if q.busy == 0 {
		q.mu.Unlock()
		return nil
	}
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snapshot loads a stream and saves a snapshot of its current version, unless
// the latest snapshot is already there.
func (s *Service) snapshot(ctx context.Context, k streamKey, refresh bool) error {
	ent, stats, err := s.load(ctx, k.tenant, k.id)
	if err != nil {
		return err
	}
	if ent.Version() == 0 || (stats.snapshotVersion == ent.Version() && !refresh) {
		return nil
	}
	if err := s.fillType(ctx, k.tenant, ent); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	state, schema := ent.MarshalSnapshot()
	err = s.store.SaveSnapshot(ctx, eventstore.Snapshot{
		Tenant: k.tenant, StreamID: k.id, Version: ent.Version(),
		SchemaVersion: schema, State: state, Incarnation: ent.incarnation, CreatedAt: s.now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("tracking: save snapshot of %q at version %d: %w", k.id, ent.Version(), err)
	}
	return nil
}

// Snapshot takes a snapshot of an entity now, at its current version, even
// when one of that version exists (the retention job refreshes old snapshots
// with it).
func (s *Service) Snapshot(ctx context.Context, tenant, entityID string) error {
	return s.snapshot(ctx, streamKey{tenant, entityID}, true)
}
