package tracking

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// StreamReader reads one stream of the event store and its latest snapshot,
// as eventstore.Store does; a Deriver reads through it to rebuild an
// entity's state that its cache does not hold. Every eventstore.Store
// implements it.
type StreamReader interface {
	ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error)
	LoadSnapshot(ctx context.Context, tenant, streamID string) (eventstore.Snapshot, error)
}

// DefaultDeriverCacheSize is the number of entities whose state a Deriver
// keeps when NewDeriver is given no positive size.
const DefaultDeriverCacheSize = 10_000

// deriverRebuildPage is the page size of stream reads when rebuilding a
// state.
const deriverRebuildPage = 500

// Deriver derives the integration events (see IntegrationEvents) of the
// events of the global log, read in log order, by followers of the log (the
// Kafka relay, webhook subscriptions). It folds each entity's state event by
// event and keeps the folded states of up to a bounded number of entities,
// least recently used first out; an event whose state just before it is not
// kept (a cache miss, a version gap, a replayed batch) has it rebuilt from
// the store.
//
// A follower handles its log in batches, and a batch may fail and be
// handled again from the follower's checkpoint. So the states a batch folds
// are staged: Derive, Forget and DeriveBatch stage, Commit (once the batch's
// effect is durable or acknowledged, with the checkpoint moved) keeps the
// staged states, and Discard (the batch failed) drops them. A batch handled
// again then derives the same integration events from the same states.
//
// A state is rebuilt from the stream's first event, or, when retention
// trimmed the events before the one derived, from the stream's snapshot
// that covers them. Events say nothing when the entity's stream before them
// can no longer be read (erased, or trimmed with no snapshot to start from
// before them), nor do the entity's later events as long as that holds: the
// state before them is unknown, and announcing changes from an empty or
// partial state would report changes that did not happen.
//
// A Deriver is not safe for concurrent use: each follower owns one and
// calls it from its handler only.
type Deriver struct {
	streams StreamReader
	cache   *stateCache
	staged  map[streamKey]foldedState
	eta     EtaPolicy
}

// EtaPolicy decides which ETA changes are announced (EtaChanged), for a
// tenant that wants only those that move the ETA far enough. It must
// answer the same for the same event however often it is asked (a
// follower of the log publishes at least once, and may derive a batch
// again), and whichever follower asks.
type EtaPolicy interface {
	// AnnounceEta reports whether the ETA change that the event at a
	// global position makes, from previous to eta (either may be nil), is
	// announced, and the ETA announced before it: the EtaChanged's
	// previousEta.
	AnnounceEta(ctx context.Context, tenant, entityID string, position int64, previous, eta *time.Time) (announce bool, announced *time.Time, err error)
}

// UseEtaPolicy makes the deriver announce only the ETA changes p
// announces (nil: every change).
func (d *Deriver) UseEtaPolicy(p EtaPolicy) *Deriver {
	d.eta = p
	return d
}

// NewDeriver returns a Deriver that rebuilds states through streams and keeps
// those of up to cacheSize entities (DefaultDeriverCacheSize when cacheSize is
// not positive). A nil streams is allowed while no state needs rebuilding:
// deriving an event whose earlier state is not kept then fails.
func NewDeriver(streams StreamReader, cacheSize int) *Deriver {
	if cacheSize <= 0 {
		cacheSize = DefaultDeriverCacheSize
	}
	return &Deriver{streams: streams, cache: newStateCache(cacheSize), staged: map[streamKey]foldedState{}}
}

// DeriveBatch derives the integration events of a batch of the global log
// and stages the states it folds: out[i] holds the integration events of
// events[i], nil for an event that causes none, for an erasure marker (whose
// entity it forgets, see Forget) and for an event of a stream that is no
// tracking entity's (an EPCIS capture stream, whose id is no entity id).
//
// The caller calls Commit once the batch's effect is durable (the
// checkpoint moved past it), or Discard when it failed. Committing earlier
// costs reads, not correctness: a batch handled again then finds newer
// states kept and rebuilds its entities from the store.
func (d *Deriver) DeriveBatch(ctx context.Context, events []eventstore.Recorded) ([][]IntegrationEvent, error) {
	out := make([][]IntegrationEvent, len(events))
	for i, e := range events {
		var err error
		if out[i], err = d.Derive(ctx, e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Derive folds one event of the global log onto its entity's state, stages
// the new state and returns the event's integration events (see
// DeriveBatch for which events cause none). Events of one entity must be
// derived in their stream's order; some may be left out (a filtered log),
// at the cost of rebuilding the state from the store at each gap.
func (d *Deriver) Derive(ctx context.Context, r eventstore.Recorded) ([]IntegrationEvent, error) {
	_, _, ies, err := d.DeriveState(ctx, r)
	return ies, err
}

// DeriveState is Derive that also returns the entity's state just after
// the event, and whether it is known (false for events that are not a
// tracking entity's, and when the stream before the event cannot be read).
func (d *Deriver) DeriveState(ctx context.Context, r eventstore.Recorded) (EntityState, bool, []IntegrationEvent, error) {
	if r.Erasure() {
		d.Forget(r.Tenant, r.StreamID)
		return EntityState{}, false, nil, nil
	}
	if !IsEntityID(r.StreamID) {
		return EntityState{}, false, nil, nil
	}
	prev, err := d.before(ctx, r)
	if err != nil {
		return EntityState{}, false, nil, err
	}
	k := streamKey{r.Tenant, r.StreamID}
	if prev.unknown {
		d.staged[k] = foldedState{version: r.Version, unknown: true}
		return EntityState{}, false, nil, nil
	}
	state, view := FoldEntity(r.StreamID, prev.state, []eventstore.Recorded{r})
	d.staged[k] = foldedState{version: r.Version, state: state, view: view}
	ies := IntegrationEvents(prev.view, view, r)
	if d.eta != nil {
		for i := 0; i < len(ies); i++ {
			if ies[i].Kind != IntegrationEtaChanged {
				continue
			}
			announce, previous, err := d.eta.AnnounceEta(ctx, r.Tenant, r.StreamID, r.Position, ies[i].PreviousEta, ies[i].Eta)
			if err != nil {
				return EntityState{}, false, nil, fmt.Errorf("tracking: derive integration events: ETA policy: %w", err)
			}
			if !announce {
				ies = slices.Delete(ies, i, i+1)
				i--
				continue
			}
			ies[i].PreviousEta = previous
		}
	}
	return view, true, ies, nil
}

// Forget stages an entity's erasure: the state of its next life starts from
// nothing, whatever version its last life reached.
func (d *Deriver) Forget(tenant, entityID string) {
	d.staged[streamKey{tenant, entityID}] = foldedState{}
}

// Commit keeps the states staged since the last Commit or Discard.
func (d *Deriver) Commit() {
	for k, f := range d.staged {
		d.cache.put(k, f)
	}
	clear(d.staged)
}

// Discard drops the states staged since the last Commit or Discard.
func (d *Deriver) Discard() { clear(d.staged) }

// foldedState is an entity's folded state (its snapshot form and its view)
// at a version; version 0 is the state before the entity's first event.
// An unknown state is one whose events could not all be read: it stands
// for an entity's state in a batch, until its stream is read again.
type foldedState struct {
	version int64
	state   json.RawMessage
	view    EntityState
	unknown bool
}

// before returns the entity's state just before r's version: staged, kept,
// or rebuilt from the stream.
func (d *Deriver) before(ctx context.Context, r eventstore.Recorded) (foldedState, error) {
	k := streamKey{r.Tenant, r.StreamID}
	// An unknown state is no start: the stream may be readable now (a
	// snapshot newer than the event before).
	if f, ok := d.staged[k]; ok && f.version == r.Version-1 && !f.unknown {
		return f, nil
	}
	if f, ok := d.cache.get(k); ok && f.version == r.Version-1 && !f.unknown {
		return f, nil
	}
	if r.Version <= 1 {
		return foldedState{}, nil
	}
	if d.streams == nil {
		return foldedState{}, errors.New("tracking: derive integration events: no stream reader to rebuild entity state")
	}
	f, err := d.rebuild(ctx, r)
	if err != nil {
		return foldedState{}, fmt.Errorf("tracking: derive integration events: rebuild %s/%s: %w", r.Tenant, r.StreamID, err)
	}
	return f, nil
}

// unknownState is the state of a stream whose events before the one derived
// cannot all be read.
var unknownState = foldedState{unknown: true}

// rebuild folds r's stream up to the version before r's, from its first
// event or, over a gap that retention trimmed, from its snapshot.
func (d *Deriver) rebuild(ctx context.Context, r eventstore.Recorded) (foldedState, error) {
	var f foldedState
	snapshotTried := false
	for f.version < r.Version-1 {
		from := f.version + 1
		limit := int(min(deriverRebuildPage, r.Version-from))
		events, err := d.streams.ReadStream(ctx, r.Tenant, r.StreamID, from, limit)
		if errors.Is(err, eventstore.ErrNotFound) {
			return unknownState, nil // erased since
		}
		if err != nil {
			return foldedState{}, err
		}
		if len(events) == 0 || events[0].Version != from {
			// Retention trimmed the events from `from` on (a stream read
			// from there starts at its first kept version), or the stream
			// is shorter than r says: start again from a snapshot that
			// covers the gap, before r.
			if snapshotTried {
				return unknownState, nil
			}
			snapshotTried = true
			snap, err := d.streams.LoadSnapshot(ctx, r.Tenant, r.StreamID)
			if errors.Is(err, eventstore.ErrNotFound) {
				return unknownState, nil
			}
			if err != nil {
				return foldedState{}, err
			}
			if snap.Version < from || snap.Version >= r.Version {
				return unknownState, nil
			}
			state, view, ok := SeedEntity(snap)
			if !ok {
				return unknownState, nil
			}
			f = foldedState{version: snap.Version, state: state, view: view}
			continue
		}
		for i := range events {
			if events[i].Version >= r.Version {
				events = events[:i]
				break
			}
			if events[i].EntityType == "" {
				events[i].EntityType = r.EntityType
			}
		}
		f.state, f.view = FoldEntity(r.StreamID, f.state, events)
		f.version = events[len(events)-1].Version
	}
	return f, nil
}

// stateCache is a bounded LRU of folded entity states.
type stateCache struct {
	max   int
	order *list.List // front = most recent; values are streamKey
	items map[streamKey]*list.Element
	state map[streamKey]foldedState
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, order: list.New(), items: map[streamKey]*list.Element{}, state: map[streamKey]foldedState{}}
}

func (c *stateCache) get(k streamKey) (foldedState, bool) {
	el, ok := c.items[k]
	if !ok {
		return foldedState{}, false
	}
	c.order.MoveToFront(el)
	return c.state[k], true
}

func (c *stateCache) put(k streamKey, f foldedState) {
	if el, ok := c.items[k]; ok {
		c.order.MoveToFront(el)
		c.state[k] = f
		return
	}
	c.items[k] = c.order.PushFront(k)
	c.state[k] = f
	for c.order.Len() > c.max {
		old := c.order.Back()
		k := old.Value.(streamKey)
		c.order.Remove(old)
		delete(c.items, k)
		delete(c.state, k)
	}
}
