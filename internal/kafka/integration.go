package kafka

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// encodeIntegration encodes an integration event that the domain event r
// caused as a CloudEvent of type
// tracktrace.integration.<Kind>.v<IntegrationVersion>, with the
// deterministic id "<eventId>:<Kind>".
func encodeIntegration(source string, r eventstore.Recorded, d tracking.IntegrationEvent) ([]byte, error) {
	data, err := marshal(d)
	if err != nil {
		return nil, err
	}
	e := envelope{
		SpecVersion:     SpecVersion,
		ID:              r.ID.String() + ":" + d.Kind,
		Source:          source,
		Type:            IntegrationTypePrefix + d.Kind + ".v" + strconv.Itoa(tracking.IntegrationVersion),
		Subject:         r.StreamID,
		Time:            formatTime(r.OccurredAt),
		DataContentType: DataContentType,
		TenantID:        r.Tenant,
		EntityType:      d.EntityType,
		StreamVersion:   strconv.FormatInt(r.Version, 10),
		Position:        strconv.FormatInt(r.Position, 10),
		RecordedAt:      formatTime(r.RecordedAt),
		CorrelationID:   r.Metadata.CorrelationID,
		CausationID:     r.ID.String(),
		Principal:       r.Metadata.Principal,
		EventSource:     r.Metadata.Source,
		TraceID:         r.Metadata.TraceID,
		Data:            data,
	}
	return marshal(e)
}

// StreamReader reads one stream of the event store; the relay uses it to
// rebuild an entity's state when its cache does not hold it.
type StreamReader interface {
	ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error)
}

type entityKey struct{ tenant, id string }

// folded is an entity's projected state at a version.
type folded struct {
	version int64
	state   json.RawMessage
	view    tracking.EntityState
}

// stateCache is a bounded LRU of folded entity states. It is used by the
// relay's single goroutine only.
type stateCache struct {
	max   int
	order *list.List // front = most recent; values are entityKey
	items map[entityKey]*list.Element
	state map[entityKey]folded
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, order: list.New(), items: map[entityKey]*list.Element{}, state: map[entityKey]folded{}}
}

func (c *stateCache) get(k entityKey) (folded, bool) {
	el, ok := c.items[k]
	if !ok {
		return folded{}, false
	}
	c.order.MoveToFront(el)
	return c.state[k], true
}

func (c *stateCache) put(k entityKey, f folded) {
	if el, ok := c.items[k]; ok {
		c.order.MoveToFront(el)
		c.state[k] = f
		return
	}
	c.items[k] = c.order.PushFront(k)
	c.state[k] = f
	for c.order.Len() > c.max {
		old := c.order.Back()
		ok := old.Value.(entityKey)
		c.order.Remove(old)
		delete(c.items, ok)
		delete(c.state, ok)
	}
}

func (c *stateCache) len() int { return c.order.Len() }

// deriver derives the integration events of a batch of domain events
// (tracking.IntegrationEvents says which), keeping the entity states they
// are derived from. Folded states are staged per batch and enter the cache
// only once the batch is published (commit), so a failed batch is
// re-derived from the same states.
type deriver struct {
	cache   *stateCache
	streams StreamReader
	staged  map[entityKey]folded
}

// rebuildPage is the page size of stream reads when rebuilding a state.
const rebuildPage = 500

// before returns the entity's state just before version v.
func (d *deriver) before(ctx context.Context, r eventstore.Recorded) (folded, error) {
	k := entityKey{r.Tenant, r.StreamID}
	if f, ok := d.staged[k]; ok && f.version == r.Version-1 {
		return f, nil
	}
	if f, ok := d.cache.get(k); ok && f.version == r.Version-1 {
		return f, nil
	}
	if r.Version == 1 {
		return folded{}, nil
	}
	if d.streams == nil {
		return folded{}, errors.New("kafka: relay: no stream reader to rebuild entity state for integration events")
	}
	// A cache miss, a version gap or a replay after a failed batch: fold
	// the stream up to v-1 from the store.
	var f folded
	for from := int64(1); from < r.Version; {
		limit := int(min(int64(rebuildPage), r.Version-from))
		events, err := d.streams.ReadStream(ctx, r.Tenant, r.StreamID, from, limit)
		if errors.Is(err, eventstore.ErrNotFound) {
			break
		}
		if err != nil {
			return folded{}, fmt.Errorf("kafka: relay: rebuild %s/%s: %w", r.Tenant, r.StreamID, err)
		}
		if len(events) == 0 {
			break
		}
		for i := range events {
			if events[i].EntityType == "" {
				events[i].EntityType = r.EntityType
			}
		}
		f.state, f.view = tracking.FoldEntity(r.StreamID, f.state, events)
		last := events[len(events)-1].Version
		f.version = last
		from = last + 1
	}
	return f, nil
}

// derive folds one event and returns its integration events.
func (d *deriver) derive(ctx context.Context, r eventstore.Recorded) ([]tracking.IntegrationEvent, error) {
	prev, err := d.before(ctx, r)
	if err != nil {
		return nil, err
	}
	state, view := tracking.FoldEntity(r.StreamID, prev.state, []eventstore.Recorded{r})
	d.staged[entityKey{r.Tenant, r.StreamID}] = folded{version: r.Version, state: state, view: view}
	if prev.version == 0 && r.Version > 1 {
		// Nothing of the stream before v is readable (erased or truncated
		// by retention): the "before" view is unknown; say nothing rather
		// than announce changes that did not happen.
		return nil, nil
	}
	return tracking.IntegrationEvents(prev.view, view, r), nil
}

// forget stages an entity's erasure: its next life starts from nothing.
func (d *deriver) forget(tenant, id string) {
	d.staged[entityKey{tenant, id}] = folded{}
}

func (d *deriver) commit() {
	for k, f := range d.staged {
		d.cache.put(k, f)
	}
	clear(d.staged)
}

func (d *deriver) discard() { clear(d.staged) }
