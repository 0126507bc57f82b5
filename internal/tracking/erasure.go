package tracking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// DefaultSettleTimeout bounds how long an erasure waits for the projections
// before cleaning the read models a second time.
const DefaultSettleTimeout = 10 * time.Second

// ReadModelEraser deletes every read-model row of one entity. Deleting an
// entity that has no rows succeeds.
type ReadModelEraser interface {
	EraseEntity(ctx context.Context, tenant, entityID string) error
}

// CacheForgetter drops every cached value of one entity, so that none is
// served after the erasure.
type CacheForgetter interface {
	Forget(ctx context.Context, tenant, entityID string) error
}

// ProjectionWaiter waits until every projection has applied the event log
// as it is at the call (every batch read before it), or until ctx ends.
type ProjectionWaiter interface {
	WaitPast(ctx context.Context) error
}

// EraserOptions are an Eraser's collaborators and settings; nil
// collaborators are skipped.
type EraserOptions struct {
	ReadModels  ReadModelEraser
	Cache       CacheForgetter
	Projections ProjectionWaiter
	// SettleTimeout bounds the wait for the projections between the two
	// cleanings of the read models. Default DefaultSettleTimeout.
	SettleTimeout time.Duration
	// Logger receives the warning of a projection that did not catch up.
	// Default: the service's.
	Logger *slog.Logger
}

// ErasureResult says what an erasure removed.
type ErasureResult struct {
	// Events is the number of events deleted from the event store.
	Events int64
}

// Eraser is the erasure use case: an administrator hard-deletes one entity
// from the event store (events, snapshots), the read models and the caches.
// It is safe for concurrent use.
type Eraser struct {
	svc         *Service
	readModels  ReadModelEraser
	cache       CacheForgetter
	projections ProjectionWaiter
	settle      time.Duration
	log         *slog.Logger
}

// NewEraser returns the erasure use case on svc's event store and the given
// read models and caches.
func NewEraser(svc *Service, opts EraserOptions) *Eraser {
	e := &Eraser{svc: svc, readModels: opts.ReadModels, cache: opts.Cache, projections: opts.Projections,
		settle: opts.SettleTimeout, log: opts.Logger}
	if e.settle <= 0 {
		e.settle = DefaultSettleTimeout
	}
	if e.log == nil {
		e.log = svc.log
	}
	return e
}

// Erase hard-deletes an entity, in this order:
//
//  1. its stream in the event store (events, snapshots, metadata), in the
//     entity's turn so that no command of this process interleaves, and
//     its aggregate in the service's cache;
//  2. its read-model rows, then its cached values;
//  3. once every projection has applied the log as it was after step 1
//     (waiting at most the settle timeout; a projection that lags longer
//     is logged, not waited for), step 2 again: a projection batch read
//     before the stream was deleted may have been applied after step 2.
//
// A failure of step 1 leaves everything in place and is returned. A failure
// of step 2 or 3 is returned with the stream already gone, for the caller
// to retry: a retry finds no stream and still runs steps 2 and 3, so that
// it completes the erasure, then reports ErrNotFound. ErrNotFound is
// likewise what erasing an unknown entity returns, once its (absent) rows
// and cached values are cleaned.
func (e *Eraser) Erase(ctx context.Context, tenant, entityID string) (ErasureResult, error) {
	if !IsEntityID(entityID) {
		return ErasureResult{}, fmt.Errorf("tracking: erase: %w: %q", ErrNotFound, entityID)
	}
	n, err := e.svc.eraseStream(ctx, tenant, entityID)
	notFound := errors.Is(err, ErrNotFound)
	if err != nil && !notFound {
		return ErasureResult{}, err
	}
	if err := e.clean(ctx, tenant, entityID); err != nil {
		return ErasureResult{Events: n}, err
	}
	if e.projections != nil {
		wctx, cancel := context.WithTimeout(ctx, e.settle)
		werr := e.projections.WaitPast(wctx)
		cancel()
		if werr != nil {
			e.log.WarnContext(ctx, "erasure: projections did not catch up; cleaning the read models anyway",
				"tenant", tenant, "entity", entityID, "error", werr)
		}
		if err := e.clean(ctx, tenant, entityID); err != nil {
			return ErasureResult{Events: n}, err
		}
	}
	if notFound {
		return ErasureResult{}, err
	}
	return ErasureResult{Events: n}, nil
}

// clean deletes the entity's read-model rows, then its cached values (also
// when the read models failed: a cache must not serve what is erased).
func (e *Eraser) clean(ctx context.Context, tenant, entityID string) error {
	var errs []error
	if e.readModels != nil {
		if err := e.readModels.EraseEntity(ctx, tenant, entityID); err != nil {
			errs = append(errs, fmt.Errorf("tracking: erase %q from the read models: %w", entityID, err))
		}
	}
	if e.cache != nil {
		if err := e.cache.Forget(ctx, tenant, entityID); err != nil {
			errs = append(errs, fmt.Errorf("tracking: erase %q from the cache: %w", entityID, err))
		}
	}
	return errors.Join(errs...)
}

// eraseStream hard-deletes an entity's stream (events, snapshots), taking
// the entity's turn so that no command of this process interleaves, and
// forgets its cached aggregate. ErrNotFound when there is no stream.
func (s *Service) eraseStream(ctx context.Context, tenant, entityID string) (int64, error) {
	unlock, err := s.writers.lock(ctx, tenant, entityID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	s.aggregates.drop(streamKey{tenant, entityID})
	n, err := s.store.Erase(ctx, tenant, entityID)
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		return 0, fmt.Errorf("tracking: erase %q: %w", entityID, ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("tracking: erase %q: %w", entityID, err)
	}
	return n, nil
}
