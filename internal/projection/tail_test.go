package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendEvents appends n events to a stream, one append of each batch.
func appendEvents(t *testing.T, s eventstore.Store, stream string, n, batch int) {
	t.Helper()
	for n > 0 {
		k := min(n, batch)
		evs := make([]eventstore.Event, k)
		for i := range evs {
			evs[i] = eventstore.Event{ID: uuid.New(), Type: "Thing", Data: json.RawMessage(`{}`), OccurredAt: time.Now()}
		}
		if _, err := s.Append(context.Background(), eventstore.AppendRequest{Tenant: "t", StreamID: stream,
			EntityType: "shipment", Expected: eventstore.Any, Events: evs}); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// runTail starts the tail's loop for the test and waits, as a reader
// waiting for commits, until it follows the log.
func runTail(t *testing.T, tail *projection.Tail) {
	t.Helper()
	startTail(t, tail)
	eventually(t, "the tail runs", func() bool {
		tail.Committed()
		return tail.Stats().Running
	})
}

// startTail starts the tail's loop for the test.
func startTail(t *testing.T, tail *projection.Tail) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tail.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// caughtUp waits until the tail has read the store's log to its head.
func caughtUp(t *testing.T, s eventstore.Store, tail *projection.Tail) {
	t.Helper()
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tail reaches "+head.String(), func() bool { return tail.Stats().Through == head })
}

// readLog reads a feed's log after a cursor to its end, batch by batch.
func readLog(t *testing.T, f projection.Feed, after eventstore.Cursor, batch int) []eventstore.Recorded {
	t.Helper()
	var out []eventstore.Recorded
	for {
		page, err := f.ReadAll(context.Background(), after, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		if !after.Less(page[0].Cursor) {
			t.Fatalf("read after %v returned %v: the log went back", after, page[0].Cursor)
		}
		out = append(out, page...)
		after = page[len(page)-1].Cursor
	}
}

func sameLog(t *testing.T, what string, got, want []eventstore.Recorded) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b eventstore.Recorded) bool { return a.ID == b.ID && a.Cursor == b.Cursor }) {
		t.Fatalf("%s: the tail returned %d events %v, the store %d %v", what, len(got), positions(got), len(want), positions(want))
	}
}

func positions(rs []eventstore.Recorded) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Position
	}
	return out
}

// Readers behind, inside, at and ahead of the buffer get exactly the
// store's events after their cursor, in order; only those behind it (or
// ahead) reach the store.
func TestTailReadersGetTheLogInOrder(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendEvents(t, s, "before", 30, 4)
	tail := projection.NewTail(s, 40, projection.TailOptions{BatchSize: 7, Interval: time.Hour})
	runTail(t, tail)
	for i := range 10 {
		appendEvents(t, s, fmt.Sprintf("s%d", i%3), 10, 3)
	}
	caughtUp(t, s, tail)
	all := readLog(t, s, eventstore.Cursor{}, 1000)
	if len(all) != 130 {
		t.Fatalf("the store holds %d events, want 130", len(all))
	}
	st := tail.Stats()
	if st.Buffered != 40 || st.From != all[89].Cursor || st.Through != all[129].Cursor {
		t.Fatalf("stats %+v; want the newest 40 events, after %v through %v", st, all[89].Cursor, all[129].Cursor)
	}
	for _, c := range []struct {
		name  string
		after eventstore.Cursor
		store bool // served by the store
	}{
		{"from the beginning", eventstore.Cursor{}, true},
		{"from where the tail started", all[29].Cursor, true},
		{"just behind the buffer", all[88].Cursor, true},
		{"at the buffer's start", all[89].Cursor, false},
		{"inside the buffer", all[100].Cursor, false},
		{"between two events of the buffer", eventstore.Cursor{Position: all[110].Position - 1}, false},
		{"at the head", all[129].Cursor, false},
		{"ahead of the buffer", eventstore.Cursor{Position: all[129].Position + 100}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			misses := tail.Stats().Misses
			got := readLog(t, tail, c.after, 9)
			sameLog(t, c.name, got, readLog(t, s, c.after, 1000))
			if byStore := tail.Stats().Misses > misses; byStore != c.store {
				t.Fatalf("read by the store: %v, want %v", byStore, c.store)
			}
		})
	}
}

// Many readers following the tail while events are appended each get the
// whole log after their start, in order, without a gap or a repeat.
func TestTailConcurrentReaders(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendEvents(t, s, "before", 20, 5)
	tail := projection.NewTail(s, 50, projection.TailOptions{BatchSize: 16, Interval: 50 * time.Millisecond})
	runTail(t, tail)
	before := readLog(t, s, eventstore.Cursor{}, 100)
	const total = 20 + 300
	var wg sync.WaitGroup
	results := make([][]eventstore.Recorded, 24)
	starts := make([]eventstore.Cursor, len(results))
	for i := range results {
		if i%4 != 0 {
			starts[i] = before[(i*7)%len(before)].Cursor
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = follow(t, tail, starts[i], total)
		}()
	}
	for i := range 30 {
		appendEvents(t, s, fmt.Sprintf("s%d", i%5), 10, 1+i%4)
	}
	wg.Wait()
	for i, got := range results {
		sameLog(t, fmt.Sprintf("reader %d from %v", i, starts[i]), got, readLog(t, s, starts[i], 1000))
	}
	if st := tail.Stats(); st.Hits == 0 {
		t.Fatalf("no read was served from memory: %+v", st)
	}
}

// follow reads a feed after a cursor, waiting on its commit signal, until
// the event at position upTo has been read.
func follow(t *testing.T, f projection.Feed, after eventstore.Cursor, upTo int64) []eventstore.Recorded {
	var out []eventstore.Recorded
	deadline := time.After(20 * time.Second)
	for {
		committed := f.Committed()
		page, err := f.ReadAll(context.Background(), after, 13)
		if err != nil {
			t.Error(err)
			return out
		}
		if len(page) > 0 && !after.Less(page[0].Cursor) {
			t.Errorf("read after %v returned %v: the log went back", after, page[0].Cursor)
			return out
		}
		out = append(out, page...)
		if len(page) > 0 {
			after = page[len(page)-1].Cursor
			if after.Position >= upTo {
				return out
			}
			continue
		}
		select {
		case <-committed:
		case <-deadline:
			t.Errorf("reader stuck at %v", after)
			return out
		}
	}
}

// A reader waiting on the tail's signal is woken when the tail has read a
// new event, without polling.
func TestTailWakesReaders(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	tail := projection.NewTail(s, 10, projection.TailOptions{Interval: time.Hour})
	runTail(t, tail)
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	woken := tail.Committed()
	if got, _ := tail.ReadAll(context.Background(), head, 10); len(got) != 0 {
		t.Fatalf("%d events after the head", len(got))
	}
	appendEvents(t, s, "s", 1, 1)
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader was not woken by the new event")
	}
	if got, err := tail.ReadAll(context.Background(), head, 10); err != nil || len(got) != 1 {
		t.Fatalf("after the wake-up: %d events, %v; want the new one", len(got), err)
	}
}

// An erased stream's events are no longer served from memory once the
// tail has read the erasure marker: readers get what the store has.
func TestTailDropsErasedEvents(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	tail := projection.NewTail(s, 100, projection.TailOptions{Interval: 10 * time.Millisecond})
	runTail(t, tail)
	start := tail.Stats().From
	appendEvents(t, s, "gone", 3, 1)
	appendEvents(t, s, "kept", 2, 1)
	appendEvents(t, s, "gone", 1, 1)
	caughtUp(t, s, tail)
	if got := readLog(t, tail, start, 100); len(got) != 6 {
		t.Fatalf("%d events before the erasure, want 6", len(got))
	}
	if _, err := s.Erase(context.Background(), "t", "gone"); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, s, tail)
	for _, r := range readLog(t, tail, start, 100) {
		if r.StreamID == "gone" && !r.Erasure() {
			t.Fatalf("the tail still serves erased event %s v%d", r.StreamID, r.Version)
		}
	}
	sameLog(t, "after the erasure", readLog(t, tail, start, 100), readLog(t, s, start, 100))
	if st := tail.Stats(); st.Buffered != 3 {
		t.Fatalf("buffered %d, want the 2 kept events and the marker", st.Buffered)
	}
}

// Events older than MaxAge leave the buffer (retention may trim them
// without a trace in the log); readers then get them from the store.
func TestTailDropsOldEvents(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	tail := projection.NewTail(s, 100, projection.TailOptions{Interval: 10 * time.Millisecond, MaxAge: time.Minute, Now: now})
	runTail(t, tail)
	appendEvents(t, s, "s", 5, 1)
	caughtUp(t, s, tail)
	if st := tail.Stats(); st.Buffered != 5 {
		t.Fatalf("buffered %d, want 5", st.Buffered)
	}
	skew.Store(int64(2 * time.Minute))
	eventually(t, "old events leave the buffer", func() bool { return tail.Stats().Buffered == 0 })
	sameLog(t, "after the old events left", readLog(t, tail, eventstore.Cursor{}, 3), readLog(t, s, eventstore.Cursor{}, 100))
}

// Once Run has ended, every read goes to the store, and readers wait on the
// store's signal.
func TestTailAfterRun(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	tail := projection.NewTail(s, 10, projection.TailOptions{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tail.Run(ctx) }()
	eventually(t, "the tail runs", func() bool {
		tail.Committed()
		return tail.Stats().Running
	})
	appendEvents(t, s, "s", 3, 1)
	caughtUp(t, s, tail)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := tail.Stats(); st.Running || st.Buffered != 0 {
		t.Fatalf("after Run: %+v", st)
	}
	misses := tail.Stats().Misses
	sameLog(t, "after Run", readLog(t, tail, eventstore.Cursor{}, 2), readLog(t, s, eventstore.Cursor{}, 100))
	if tail.Stats().Misses == misses {
		t.Fatal("reads after Run were not passed to the store")
	}
	woken := tail.Committed()
	appendEvents(t, s, "s", 1, 1)
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("a reader of the stopped tail is not woken by a commit")
	}
}

// countingFeed counts the reads of the log that reach a Feed.
type countingFeed struct {
	projection.Feed
	reads atomic.Int64
}

func (c *countingFeed) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	c.reads.Add(1)
	return c.Feed.ReadAll(ctx, after, limit)
}

// A Tail nobody reads stops reading the log (commits go on), serves a
// reader from the store meanwhile, and follows the log again from that
// read on.
func TestTailIdlesWithoutReaders(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	inner := &countingFeed{Feed: s}
	tail := projection.NewTail(inner, 100, projection.TailOptions{Interval: 10 * time.Millisecond, IdleAfter: 50 * time.Millisecond})
	startTail(t, tail)
	time.Sleep(200 * time.Millisecond) // twenty polling intervals
	if st := tail.Stats(); st.Running || inner.reads.Load() != 0 {
		t.Fatalf("a tail nobody has read follows the log: %+v, %d reads", st, inner.reads.Load())
	}
	eventually(t, "a reader starts the tail", func() bool {
		tail.Committed()
		return tail.Stats().Running
	})
	eventually(t, "the unread tail idles", func() bool { return !tail.Stats().Running })
	reads := inner.reads.Load()
	appendEvents(t, s, "s", 5, 1)
	time.Sleep(200 * time.Millisecond) // twenty polling intervals
	if n := inner.reads.Load() - reads; n != 0 {
		t.Fatalf("the idle tail read the log %d times", n)
	}
	misses := tail.Stats().Misses
	sameLog(t, "while idle", readLog(t, tail, eventstore.Cursor{}, 2), readLog(t, s, eventstore.Cursor{}, 100))
	if tail.Stats().Misses == misses {
		t.Fatal("reads of the idle tail were not passed to the store")
	}
	eventually(t, "a read wakes the tail", func() bool { return tail.Stats().Running })
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s, "s", 3, 1)
	newHead, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A reader waiting for commits keeps the tail awake meanwhile.
	eventually(t, "the tail reaches "+newHead.String(), func() bool {
		tail.Committed()
		return tail.Stats().Through == newHead
	})
	hits := tail.Stats().Hits
	sameLog(t, "awake again", readLog(t, tail, head, 2), readLog(t, s, head, 100))
	if tail.Stats().Hits == hits {
		t.Fatal("reads at the head were not served from memory once the tail followed the log again")
	}
}
