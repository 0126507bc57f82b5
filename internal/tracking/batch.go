package tracking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// batchSlowParallelism bounds the items of one RecordBatch that take the
// single-command path at once.
const batchSlowParallelism = 16

// RecordBatch records many commands, each on its own: out[i] is cmds[i]'s
// result or error, exactly as Record would answer it. It is Record for bulk
// ingest: the entities of the batch come from the aggregate cache or are
// loaded together (Store.LoadStreams, one round trip), every command is
// decided in memory, and all accepted appends go to the store at once
// (Store.AppendAll, one group commit).
//
// A command that this fast path cannot settle takes Record's path: one
// decided on a stale aggregate (a version or incarnation conflict at the
// store), one the invariants reject (Record re-decides on a fresh load and
// tells a replay from a violation), every command after the first on the
// same entity (each decided on the state its predecessors left), and one
// whose entity has its turn taken in this process (by a Record or another
// batch: the fast path takes free turns only, so it never waits and never
// deadlocks, and Record then waits for the turn instead of conflicting).
// So a batch's answers are the same as from its commands recorded one by one.
func (s *Service) RecordBatch(ctx context.Context, cmds []RecordCommand) []eventstore.Outcome {
	out := make([]eventstore.Outcome, len(cmds))
	type item struct {
		i       int
		key     streamKey
		events  []eventstore.Event
		changes []Change
		ent     *Entity
		version int64 // the aggregate's version when decided
	}
	var fast []*item
	var slow []int
	first := make(map[streamKey]bool, len(cmds))
	held := map[int]bool{} // the entities' turns this batch holds
	defer func() {
		for i := range held {
			s.writers.unlock(i)
		}
	}()
	for i, cmd := range cmds {
		events, changes, _, err := s.prepare(cmd)
		if err != nil {
			out[i].Err = err
			continue
		}
		key := streamKey{cmd.Tenant, cmd.EntityID}
		if first[key] {
			slow = append(slow, i)
			continue
		}
		first[key] = true
		turn := s.writers.stripe(cmd.Tenant, cmd.EntityID)
		if !held[turn] {
			if !s.writers.tryLock(turn) {
				slow = append(slow, i)
				continue
			}
			held[turn] = true
		}
		fast = append(fast, &item{i: i, key: key, events: events, changes: changes})
	}

	// The aggregates: cached ones are taken (this batch owns them until it
	// puts them back), the others loaded in one round trip.
	var refs []eventstore.StreamRef
	var cold []*item
	for _, it := range fast {
		if it.ent = s.aggregates.take(it.key); it.ent == nil {
			refs = append(refs, eventstore.StreamRef{Tenant: it.key.tenant, StreamID: it.key.id})
			cold = append(cold, it)
		}
	}
	if len(refs) > 0 {
		loaded, err := s.store.LoadStreams(ctx, refs, readPageSize)
		for j, it := range cold {
			if err == nil {
				it.ent, _, err = s.restore(ctx, it.key.tenant, it.key.id, loaded[j])
			}
			if err != nil {
				out[it.i].Err = fmt.Errorf("tracking: load %q: %w", it.key.id, err)
				it.ent = nil
			}
		}
	}

	// Decide each command; what the invariants reject is settled by Record.
	var reqs []eventstore.AppendRequest
	var appending []*item
	for _, it := range fast {
		if it.ent == nil {
			continue // its load failed
		}
		cmd := cmds[it.i]
		it.version = it.ent.Version()
		if err := s.decide(cmd, it.ent, it.changes); err != nil {
			slow = append(slow, it.i)
			continue
		}
		reqs = append(reqs, eventstore.AppendRequest{Tenant: cmd.Tenant, StreamID: cmd.EntityID, EntityType: cmd.EntityType,
			Expected: eventstore.Exact(it.version), Incarnation: it.ent.incarnation, Events: it.events})
		appending = append(appending, it)
	}
	for j, o := range s.store.AppendAll(ctx, reqs) {
		it := appending[j]
		cmd := cmds[it.i]
		switch {
		case o.Err == nil:
			out[it.i] = o
			s.appended(it.key, cmd.EntityType, it.ent, o.Result, len(it.events))
		case errors.Is(o.Err, eventstore.ErrWrongExpectedVersion), errors.Is(o.Err, eventstore.ErrEntityTypeMismatch):
			// Decided on a stale aggregate, or a type Record words better.
			slow = append(slow, it.i)
		default:
			out[it.i].Err = fmt.Errorf("tracking: record %q: %w", cmd.EntityID, o.Err)
		}
	}

	// The turns go back before Record takes them one at a time.
	for i := range held {
		s.writers.unlock(i)
	}
	clear(held)

	// The rest through Record, a few at a time, in batch order per entity
	// (Record takes the entity's turn; the ones of one entity run in order).
	byEntity := map[streamKey][]int{}
	var order []streamKey
	for _, i := range slow {
		k := streamKey{cmds[i].Tenant, cmds[i].EntityID}
		if _, ok := byEntity[k]; !ok {
			order = append(order, k)
		}
		byEntity[k] = append(byEntity[k], i)
	}
	sem := make(chan struct{}, batchSlowParallelism)
	var wg sync.WaitGroup
	for _, k := range order {
		idx := byEntity[k]
		slices.Sort(idx)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, i := range idx {
				out[i].Result, out[i].Err = s.Record(ctx, cmds[i])
			}
		})
	}
	wg.Wait()
	return out
}
