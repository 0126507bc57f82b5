package tracking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// erasureJournal records what an erasure asks of the read models, the cache
// and the projections, in order, and fails the calls it is told to.
type erasureJournal struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]int // call → how many more times it fails
	// atCall, when set, is run at each call (to look at the store then).
	atCall func(call string)
	// block makes WaitPast wait until its context ends.
	block bool
}

var errReadModelsDown = fmt.Errorf("read models: %w", eventstore.ErrUnavailable)

func (j *erasureJournal) note(call string) error {
	j.mu.Lock()
	j.calls = append(j.calls, call)
	atCall := j.atCall
	fail := j.fail[call] > 0
	if fail {
		j.fail[call]--
	}
	j.mu.Unlock()
	if atCall != nil {
		atCall(call)
	}
	if fail {
		return fmt.Errorf("%s: %w", call, errReadModelsDown)
	}
	return nil
}

func (j *erasureJournal) took() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	calls := j.calls
	j.calls = nil
	return calls
}

type journalReadModels struct{ *erasureJournal }

func (r journalReadModels) EraseEntity(ctx context.Context, tenant, id string) error {
	return r.note("readmodels " + tenant + "/" + id)
}

type journalCache struct{ *erasureJournal }

func (c journalCache) Forget(ctx context.Context, tenant, id string) error {
	return c.note("cache " + tenant + "/" + id)
}

type journalProjections struct{ *erasureJournal }

func (p journalProjections) WaitPast(ctx context.Context) error {
	if err := p.note("wait"); err != nil {
		return err
	}
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func newJournaledEraser(f *fixture, settle time.Duration) (*Eraser, *erasureJournal) {
	j := &erasureJournal{fail: map[string]int{}}
	return NewEraser(f.svc, EraserOptions{ReadModels: journalReadModels{j}, Cache: journalCache{j},
		Projections: journalProjections{j}, SettleTimeout: settle}), j
}

// fullErasure is what every erasure of acme/PKG-1 asks, in order: the read
// models then the cache, and again once the projections are past the head.
var fullErasure = []string{"readmodels acme/PKG-1", "cache acme/PKG-1", "wait", "readmodels acme/PKG-1", "cache acme/PKG-1"}

// The stream goes first, then the read models and the cache, twice around
// the wait for the projections; the entity is gone, and so is its cached
// aggregate.
func TestEraseOrder(t *testing.T) {
	f := newFixture(t, ServiceOptions{AggregateCacheSize: 10})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), raise(1, "x1"), milestone(2, "departed"))...))
	f.record(t, command("PKG-2", eventstore.NoStream, newEvents(register(0))...))
	if n := f.svc.aggregates.len(); n != 2 {
		t.Fatalf("%d cached aggregates, want 2", n)
	}
	e, j := newJournaledEraser(f, time.Second)
	j.atCall = func(call string) {
		if _, err := f.svc.Entity(ctx, tenant, "PKG-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s before the stream was erased: %v", call, err)
		}
	}
	res, err := e.Erase(ctx, tenant, "PKG-1")
	if err != nil || res.Events != 3 {
		t.Fatalf("Erase = %+v, %v; want 3 events erased", res, err)
	}
	if calls := j.took(); !slices.Equal(calls, fullErasure) {
		t.Errorf("calls %q, want %q", calls, fullErasure)
	}
	if n := f.svc.aggregates.len(); n != 1 {
		t.Errorf("%d cached aggregates after erasure, want 1 (the other entity's)", n)
	}
	if _, err := f.svc.Entity(ctx, tenant, "PKG-2"); err != nil {
		t.Errorf("the other entity: %v", err)
	}
	// The id starts a new entity, decided on a fresh aggregate: registering
	// again is valid and the old exception is not open.
	res2 := f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(10))...))
	st, err := f.svc.Entity(ctx, tenant, "PKG-1")
	if res2.Version != 1 || err != nil || st.Version != 1 || len(st.OpenExceptions) != 0 {
		t.Errorf("re-created entity: version %d, state %+v, %v", res2.Version, st, err)
	}
}

// A failure after the stream is gone is returned for the caller to retry,
// and the retry, finding no stream, still cleans the read models and the
// cache before it answers ErrNotFound.
func TestEraseRetryCompletesAFailedCleanup(t *testing.T) {
	for _, failing := range []string{"readmodels acme/PKG-1", "cache acme/PKG-1", "second readmodels"} {
		t.Run(failing, func(t *testing.T) {
			f := newFixture(t, ServiceOptions{})
			ctx := context.Background()
			f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0))...))
			e, j := newJournaledEraser(f, time.Second)
			want := fullErasure[:2] // the first cleaning fails: no wait
			switch failing {
			case "second readmodels":
				j.atCall = func(call string) {
					if call == "wait" {
						j.mu.Lock()
						j.fail["readmodels acme/PKG-1"] = 1
						j.mu.Unlock()
					}
				}
				want = fullErasure
			default:
				j.fail[failing] = 1
			}
			_, err := e.Erase(ctx, tenant, "PKG-1")
			if !errors.Is(err, eventstore.ErrUnavailable) || errors.Is(err, ErrNotFound) {
				t.Fatalf("Erase with %s failing = %v, want the unavailability", failing, err)
			}
			if calls := j.took(); !slices.Equal(calls, want) {
				t.Errorf("calls %q, want %q (the cache is forgotten even when the read models fail)", calls, want)
			}
			if _, err := f.svc.Entity(ctx, tenant, "PKG-1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the stream survived a failed cleanup: %v", err)
			}
			j.atCall = nil
			if _, err := e.Erase(ctx, tenant, "PKG-1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("retry = %v, want ErrNotFound", err)
			}
			if calls := j.took(); !slices.Equal(calls, fullErasure) {
				t.Errorf("retry calls %q, want %q", calls, fullErasure)
			}
		})
	}
}

// Erasing what does not exist answers ErrNotFound: an unknown id is cleaned
// all the same (it may be a retry), a malformed one cannot exist.
func TestEraseUnknown(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0))...))
	e, j := newJournaledEraser(f, time.Second)
	if _, err := e.Erase(ctx, "other-tenant", "PKG-1"); !errors.Is(err, ErrNotFound) || !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("another tenant's erase = %v, want ErrNotFound", err)
	}
	want := []string{"readmodels other-tenant/PKG-1", "cache other-tenant/PKG-1", "wait", "readmodels other-tenant/PKG-1", "cache other-tenant/PKG-1"}
	if calls := j.took(); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	if _, err := f.svc.Entity(ctx, tenant, "PKG-1"); err != nil {
		t.Errorf("another tenant's erase touched the entity: %v", err)
	}
	if _, err := e.Erase(ctx, tenant, "not an id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("malformed id = %v, want ErrNotFound", err)
	}
	if calls := j.took(); len(calls) != 0 {
		t.Errorf("a malformed id made calls %q", calls)
	}
}

// failingEraseStore fails every erasure.
type failingEraseStore struct{ eventstore.Store }

func (failingEraseStore) Erase(context.Context, string, string) (int64, error) {
	return 0, fmt.Errorf("store: %w", eventstore.ErrUnavailable)
}

// When the store cannot erase the stream, nothing else is touched.
func TestEraseStoreFailure(t *testing.T) {
	f := &fixture{svc: NewService(failingEraseStore{newMemStore()}, ServiceOptions{})}
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0))...))
	e, j := newJournaledEraser(f, time.Second)
	if _, err := e.Erase(context.Background(), tenant, "PKG-1"); !errors.Is(err, eventstore.ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Erase = %v, want the store's unavailability", err)
	}
	if calls := j.took(); len(calls) != 0 {
		t.Errorf("a failed stream erasure went on to %q", calls)
	}
}

// A projection that lags longer than the settle timeout is not waited for:
// the read models are cleaned a second time anyway.
func TestEraseDoesNotWaitForeverForProjections(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0))...))
	e, j := newJournaledEraser(f, 20*time.Millisecond)
	j.block = true
	if _, err := e.Erase(context.Background(), tenant, "PKG-1"); err != nil {
		t.Fatal(err)
	}
	if calls := j.took(); !slices.Equal(calls, fullErasure) {
		t.Errorf("calls %q, want %q", calls, fullErasure)
	}
}

// Without read models, cache or projections (the event store alone), an
// erasure is the stream's.
func TestEraseStoreOnly(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), milestone(1, "departed"))...))
	res, err := NewEraser(f.svc, EraserOptions{}).Erase(context.Background(), tenant, "PKG-1")
	if err != nil || res.Events != 2 {
		t.Fatalf("Erase = %+v, %v", res, err)
	}
	if _, err := NewEraser(f.svc, EraserOptions{}).Erase(context.Background(), tenant, "PKG-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Erase = %v, want ErrNotFound", err)
	}
}
