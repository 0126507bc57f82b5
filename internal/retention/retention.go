// Package retention applies EventStore.RetentionPolicy: events older than
// MaxAge are deleted only where a snapshot covers them (so no entity's state
// changes), timeline rows older than MaxAge go too, superseded snapshots older
// than SnapshotAge are pruned, and streams whose newest snapshot is older than
// SnapshotAge (or whose old events no snapshot covers) get a fresh snapshot.
// Events are deleted only behind every reader of the log (projections, relay,
// rebuilds in progress), and the timeline keeps no row recorded before the
// cutoff (its horizon), so that a rebuild folds what the live read models hold.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

// StreamRef names a stream.
type StreamRef struct{ Tenant, StreamID string }

// EventStore is what retention needs of an event store engine.
type EventStore interface {
	// StreamsToSnapshot lists up to limit streams whose newest snapshot was
	// created before snapshotsBefore, or that have events recorded before
	// eventsBefore which no snapshot covers.
	StreamsToSnapshot(ctx context.Context, snapshotsBefore, eventsBefore time.Time, limit int) ([]StreamRef, error)
	// PruneSnapshots deletes (or counts) snapshots created before `before`
	// that a newer snapshot of their stream supersedes.
	PruneSnapshots(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	// TrimEvents deletes (or counts) events recorded before `before`, at or
	// below the version of their stream's newest snapshot of schemaVersion,
	// and whose log cursor is at or before `below` (applied by every reader).
	TrimEvents(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, error)
}

// ReadModels is what retention needs of the read models.
type ReadModels interface {
	Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error)
	// Rebuilding returns the projections being rebuilt: their rebuilds'
	// checkpoints (projection.Shadow) are readers of the log too.
	Rebuilding(ctx context.Context) ([]string, error)
	// TryLead takes a lock shared by every process on the read models
	// (projection.RetentionLock: a rebuild being seeded holds it).
	TryLead(ctx context.Context, name string) (lost <-chan struct{}, release func(), ok bool, err error)
	// TrimTimeline deletes (or counts) timeline rows recorded before
	// `before`, and keeps the timeline from taking such rows again.
	TrimTimeline(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	// TrimEPCIS does the same for the EPCIS index.
	TrimEPCIS(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	// TrimIdempotencyKeys deletes (or counts) the Idempotency-Keys expired
	// as of now.
	TrimIdempotencyKeys(ctx context.Context, now time.Time, dryRun bool) (int64, error)
	// TrimCaptureJobs deletes (or counts) the EPCIS capture jobs created
	// before `before`.
	TrimCaptureJobs(ctx context.Context, before time.Time, dryRun bool) (int64, error)
}

// Snapshotter takes a fresh snapshot of one entity (tracking.Service).
type Snapshotter interface {
	Snapshot(ctx context.Context, tenant, entityID string) error
}

// Policy is EventStore.RetentionPolicy.
type Policy struct {
	MaxAge      time.Duration // 0 keeps events forever
	SnapshotAge time.Duration // 0 keeps snapshots forever
	// CaptureJobAge is how long EPCIS capture jobs are kept (0: forever);
	// they are trimmed on every run whatever the other ages.
	CaptureJobAge time.Duration
}

// Deps are the collaborators of a run.
type Deps struct {
	Store       EventStore
	ReadModels  ReadModels
	Snapshotter Snapshotter
	// Readers are the checkpoints events must be behind before deletion
	// (every projection, and the Kafka relay when it runs).
	Readers []string
	// SnapshotSchemaVersion is the schema of snapshots that may stand in for
	// deleted events.
	SnapshotSchemaVersion int
	Logger                *slog.Logger
}

// Report says what a run did (or, dry, would do).
type Report struct {
	DryRun              bool  `json:"dryRun"`
	SnapshotsTaken      int64 `json:"snapshotsTaken"`
	SnapshotsPruned     int64 `json:"snapshotsPruned"`
	EventsDeleted       int64 `json:"eventsDeleted"`
	TimelineRowsDeleted int64 `json:"timelineRowsDeleted"`
	// EPCISEventsDeleted are EPCIS index entries of deleted events.
	EPCISEventsDeleted int64 `json:"epcisEventsDeleted"`
	// IdempotencyKeysDeleted are expired Idempotency-Keys, trimmed on every
	// run whatever the policy.
	IdempotencyKeysDeleted int64 `json:"idempotencyKeysDeleted"`
	// CaptureJobsDeleted are EPCIS capture jobs older than CaptureJobAge.
	CaptureJobsDeleted int64 `json:"captureJobsDeleted"`
}

// maxSnapshotsPerRun bounds the work of one run; the next run continues.
const maxSnapshotsPerRun = 10000

// Run applies the policy as of now.
func Run(ctx context.Context, d Deps, p Policy, now time.Time, dryRun bool) (Report, error) {
	r := Report{DryRun: dryRun}
	var err error
	if r.IdempotencyKeysDeleted, err = d.ReadModels.TrimIdempotencyKeys(ctx, now, dryRun); err != nil {
		return r, fmt.Errorf("retention: trim idempotency keys: %w", err)
	}
	if p.CaptureJobAge > 0 {
		if r.CaptureJobsDeleted, err = d.ReadModels.TrimCaptureJobs(ctx, now.Add(-p.CaptureJobAge), dryRun); err != nil {
			return r, fmt.Errorf("retention: trim capture jobs: %w", err)
		}
	}
	if p.MaxAge <= 0 && p.SnapshotAge <= 0 {
		return r, nil
	}
	far := time.Time{} // "before the zero time": matches nothing
	snapBefore, eventsBefore := far, far
	if p.SnapshotAge > 0 {
		snapBefore = now.Add(-p.SnapshotAge)
	}
	if p.MaxAge > 0 {
		eventsBefore = now.Add(-p.MaxAge)
	}
	// 1. Fresh snapshots first: they are what lets old events go.
	streams, err := d.Store.StreamsToSnapshot(ctx, snapBefore, eventsBefore, maxSnapshotsPerRun)
	if err != nil {
		return r, fmt.Errorf("retention: streams to snapshot: %w", err)
	}
	for _, s := range streams {
		if dryRun {
			r.SnapshotsTaken++
			continue
		}
		if err := d.Snapshotter.Snapshot(ctx, s.Tenant, s.StreamID); err != nil {
			if errors.Is(err, eventstore.ErrNotFound) {
				continue // erased meanwhile
			}
			return r, fmt.Errorf("retention: snapshot %s/%s: %w", s.Tenant, s.StreamID, err)
		}
		r.SnapshotsTaken++
	}
	// 2. Superseded snapshots.
	if p.SnapshotAge > 0 {
		if r.SnapshotsPruned, err = d.Store.PruneSnapshots(ctx, snapBefore, dryRun); err != nil {
			return r, fmt.Errorf("retention: prune snapshots: %w", err)
		}
	}
	if p.MaxAge <= 0 {
		return r, nil
	}
	// 3. Old events, behind every reader: rebuilds in progress among them,
	// which replay the log from its beginning and were seeded with the
	// snapshots of the streams trimmed before they began. The lock keeps a
	// rebuild from being seeded while events are trimmed.
	_, release, ok, err := d.ReadModels.TryLead(ctx, projection.RetentionLock)
	if err != nil {
		return r, fmt.Errorf("retention: lock: %w", err)
	}
	if !ok {
		if d.Logger != nil {
			d.Logger.Info("retention: a rebuild is starting or another run is trimming; events and timeline rows are left to the next run")
		}
		return r, nil
	}
	defer release()
	readers := d.Readers
	rebuilding, err := d.ReadModels.Rebuilding(ctx)
	if err != nil {
		return r, fmt.Errorf("retention: rebuilds: %w", err)
	}
	for _, name := range rebuilding {
		readers = append(slices.Clip(readers), projection.Shadow(name))
	}
	var below eventstore.Cursor
	for i, name := range readers {
		cp, err := d.ReadModels.Checkpoint(ctx, name)
		if err != nil {
			return r, fmt.Errorf("retention: checkpoint %s: %w", name, err)
		}
		if i == 0 || cp.Cursor.Less(below) {
			below = cp.Cursor
		}
	}
	if r.EventsDeleted, err = d.Store.TrimEvents(ctx, eventsBefore, below, d.SnapshotSchemaVersion, dryRun); err != nil {
		return r, fmt.Errorf("retention: trim events: %w", err)
	}
	// 4. Old timeline rows.
	if r.TimelineRowsDeleted, err = d.ReadModels.TrimTimeline(ctx, eventsBefore, dryRun); err != nil {
		return r, fmt.Errorf("retention: trim timeline: %w", err)
	}
	if r.EPCISEventsDeleted, err = d.ReadModels.TrimEPCIS(ctx, eventsBefore, dryRun); err != nil {
		return r, fmt.Errorf("retention: trim EPCIS index: %w", err)
	}
	if d.Logger != nil {
		d.Logger.Info("retention run", "dryRun", dryRun, "snapshotsTaken", r.SnapshotsTaken, "snapshotsPruned", r.SnapshotsPruned,
			"eventsDeleted", r.EventsDeleted, "timelineRowsDeleted", r.TimelineRowsDeleted,
			"epcisEventsDeleted", r.EPCISEventsDeleted, "idempotencyKeysDeleted", r.IdempotencyKeysDeleted)
	}
	return r, nil
}

// Loop runs the policy every interval until ctx ends (with no age set, it
// still trims expired Idempotency-Keys).
func Loop(ctx context.Context, d Deps, p Policy, interval time.Duration, now func() time.Time) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := Run(ctx, d, p, now(), false); err != nil && ctx.Err() == nil && d.Logger != nil {
				d.Logger.Error("retention run failed", "error", err)
			}
		}
	}
}
