// Package eventstoretest is the conformance suite of the eventstore contract.
// Every Store implementation runs it:
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newStore(t) })
//	}
//
// Tests use a fresh random tenant each, so one store may serve several tests;
// global-log tests filter the log by their tenant.
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// NewStore returns a store for one test. The suite does not close it: the
// factory registers its own cleanup.
type NewStore func(t *testing.T) eventstore.Store

// Run runs the whole conformance suite against the stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"NoStreamOnNewStream", testNoStream},
		{"ExactVersion", testExactVersion},
		{"StreamExists", testStreamExists},
		{"Any", testAny},
		{"AtomicAppendFailsWhole", testAtomic},
		{"IdempotentReplay", testIdempotentReplay},
		{"DuplicateIDDifferentContent", testDuplicateDifferentContent},
		{"ReadStreamFromVersionWithLimit", testReadStream},
		{"ReadAllInOrderPagedByCursor", testReadAll},
		{"Head", testHead},
		{"Snapshots", testSnapshots},
		{"LoadStream", testLoadStream},
		{"TenantsAreSeparate", testTenants},
		{"EntityType", testEntityType},
		{"StreamInfo", testStreamInfo},
		{"Lookup", testLookup},
		{"InvalidRequests", testInvalid},
		{"ConcurrentExactVersionWriters", testConcurrentExact},
		{"ConflictInCoalescedBatchFailsAlone", testConflictFailsAlone},
		{"PartlyWrittenAppendIsUndoneAlone", testPartlyWrittenUndone},
		{"LargeAndNonASCIIPayloadsRoundTrip", testPayloadRoundTrip},
		{"CanceledContext", testCanceledContext},
		{"Erase", testErase},
		{"EraseAndRecreateIsAnotherIncarnation", testEraseAndRecreate},
		{"LoadStreamsAndAppendAll", testLoadStreamsAppendAll},
		{"CursorAtPosition", testCursorAt},
		{"CursorBeforeTime", testCursorBefore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

var epoch = time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC)

func tenant() string { return "t-" + uuid.NewString()[:8] }

func event(typ string, data string) eventstore.Event {
	return eventstore.Event{
		ID:         uuid.New(),
		Type:       typ,
		Data:       json.RawMessage(data),
		Metadata:   eventstore.Metadata{CorrelationID: "corr-1", Source: "conformance"},
		OccurredAt: epoch,
	}
}

func events(n int) []eventstore.Event {
	out := make([]eventstore.Event, n)
	for i := range out {
		out[i] = event("Thing", fmt.Sprintf(`{"n":%d}`, i))
		out[i].OccurredAt = epoch.Add(time.Duration(i) * time.Minute)
	}
	return out
}

func req(ten, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.Event) eventstore.AppendRequest {
	return eventstore.AppendRequest{Tenant: ten, StreamID: stream, EntityType: "shipment", Expected: exp, Events: evs}
}

func mustAppend(t *testing.T, s eventstore.Store, r eventstore.AppendRequest) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("append %s/%s expected %s: %v", r.Tenant, r.StreamID, r.Expected, err)
	}
	return res
}

func readAllStream(t *testing.T, s eventstore.Store, ten, stream string) []eventstore.Recorded {
	t.Helper()
	got, err := s.ReadStream(context.Background(), ten, stream, 1, 100000)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return got
}

func wantWrongVersion(t *testing.T, err error, actual int64) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("err = %v, want ErrWrongExpectedVersion", err)
	}
	var wv *eventstore.WrongExpectedVersionError
	if !errors.As(err, &wv) {
		t.Fatalf("err %v is not a *WrongExpectedVersionError", err)
	}
	if wv.Actual != actual {
		t.Fatalf("actual version in error = %d, want %d", wv.Actual, actual)
	}
}

func testNoStream(t *testing.T, s eventstore.Store) {
	ten := tenant()
	res := mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(2)...))
	if res.Version != 2 || len(res.Events) != 2 || res.Events[0].Version != 1 || res.Events[1].Version != 2 {
		t.Fatalf("result = %+v, want versions 1,2", res)
	}
	if res.Events[0].Position >= res.Events[1].Position {
		t.Fatalf("positions not increasing: %+v", res.Events)
	}
	_, err := s.Append(context.Background(), req(ten, "s1", eventstore.NoStream, events(1)...))
	wantWrongVersion(t, err, 2)
}

func testExactVersion(t *testing.T, s eventstore.Store) {
	ten := tenant()
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(3)...))
	res := mustAppend(t, s, req(ten, "s1", eventstore.Exact(3), events(1)...))
	if res.Version != 4 {
		t.Fatalf("version = %d, want 4", res.Version)
	}
	for _, exp := range []int64{2, 5, 1} {
		_, err := s.Append(context.Background(), req(ten, "s1", eventstore.Exact(exp), events(1)...))
		wantWrongVersion(t, err, 4)
	}
	_, err := s.Append(context.Background(), req(ten, "missing", eventstore.Exact(1), events(1)...))
	wantWrongVersion(t, err, 0)
}

func testStreamExists(t *testing.T, s eventstore.Store) {
	ten := tenant()
	_, err := s.Append(context.Background(), req(ten, "s1", eventstore.StreamExists, events(1)...))
	wantWrongVersion(t, err, 0)
	mustAppend(t, s, req(ten, "s1", eventstore.Any, events(1)...))
	if res := mustAppend(t, s, req(ten, "s1", eventstore.StreamExists, events(1)...)); res.Version != 2 {
		t.Fatalf("version = %d, want 2", res.Version)
	}
}

func testAny(t *testing.T, s eventstore.Store) {
	ten := tenant()
	for i := 1; i <= 3; i++ {
		if res := mustAppend(t, s, req(ten, "s1", eventstore.Any, events(2)...)); res.Version != int64(2*i) {
			t.Fatalf("append %d: version = %d, want %d", i, res.Version, 2*i)
		}
	}
}

func testAtomic(t *testing.T, s eventstore.Store) {
	ten := tenant()
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(2)...))
	_, err := s.Append(context.Background(), req(ten, "s1", eventstore.Exact(1), events(5)...))
	wantWrongVersion(t, err, 2)
	if got := readAllStream(t, s, ten, "s1"); len(got) != 2 {
		t.Fatalf("stream has %d events after a failed append, want 2", len(got))
	}
	// A request that reuses a stored id with other content fails whole too.
	stored := readAllStream(t, s, ten, "s1")
	evs := events(3)
	evs[2].ID = stored[0].ID
	_, err = s.Append(context.Background(), req(ten, "s1", eventstore.Any, evs...))
	if !errors.Is(err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("err = %v, want ErrDuplicateEvent", err)
	}
	if got := readAllStream(t, s, ten, "s1"); len(got) != 2 {
		t.Fatalf("stream has %d events after a failed append, want 2", len(got))
	}
}

func testIdempotentReplay(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	first := req(ten, "s1", eventstore.NoStream, events(3)...)
	orig := mustAppend(t, s, first)
	mustAppend(t, s, req(ten, "s1", eventstore.Any, events(1)...))

	// The same request again, although NoStream no longer holds, and with
	// other metadata and whitespace: the original result, nothing written.
	replay := first
	replay.Events = slices.Clone(first.Events)
	for i := range replay.Events {
		replay.Events[i].Metadata.TraceID = "another-trace"
		replay.Events[i].Data = json.RawMessage(" " + string(replay.Events[i].Data) + "\n")
	}
	again, err := s.Append(ctx, replay)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !again.Replayed || again.Version != orig.Version || !slices.Equal(again.Events, orig.Events) {
		t.Fatalf("replay result = %+v, want the original %+v, replayed", again, orig)
	}
	if got := readAllStream(t, s, ten, "s1"); len(got) != 4 {
		t.Fatalf("stream has %d events, want 4: the replay stored something", len(got))
	}
	// Nothing reached the global log either.
	if log := waitTenantLog(t, s, ten, eventstore.Cursor{}, 4); len(log) != 4 {
		t.Fatalf("global log has %d events of the tenant, want 4", len(log))
	}
	// A replay of the second half only is also a replay.
	part := req(ten, "s1", eventstore.Exact(1), first.Events[1:]...)
	res, err := s.Append(ctx, part)
	if err != nil || !res.Replayed || res.Version != 3 {
		t.Fatalf("partial replay = %+v, %v; want replayed at version 3", res, err)
	}
}

func testDuplicateDifferentContent(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	evs := events(2)
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, evs...))
	changes := map[string]func(e *eventstore.Event){
		"data":       func(e *eventstore.Event) { e.Data = json.RawMessage(`{"n":99}`) },
		"type":       func(e *eventstore.Event) { e.Type = "Other" },
		"occurredAt": func(e *eventstore.Event) { e.OccurredAt = e.OccurredAt.Add(time.Second) },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			e := evs[0]
			change(&e)
			_, err := s.Append(ctx, req(ten, "s1", eventstore.Any, e))
			if !errors.Is(err, eventstore.ErrDuplicateEvent) {
				t.Fatalf("err = %v, want ErrDuplicateEvent", err)
			}
		})
	}
	t.Run("otherStream", func(t *testing.T) {
		_, err := s.Append(ctx, req(ten, "s2", eventstore.Any, evs[0]))
		if !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("err = %v, want ErrDuplicateEvent", err)
		}
	})
	t.Run("storedAndNew", func(t *testing.T) {
		_, err := s.Append(ctx, req(ten, "s1", eventstore.Any, evs[0], events(1)[0]))
		if !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("err = %v, want ErrDuplicateEvent", err)
		}
	})
	if got := readAllStream(t, s, ten, "s1"); len(got) != 2 {
		t.Fatalf("stream has %d events, want 2", len(got))
	}
}

func testReadStream(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	evs := events(10)
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, evs...))
	cases := []struct {
		from       int64
		limit      int
		wantFirst  int64
		wantLength int
	}{
		{1, 100, 1, 10},
		{4, 3, 4, 3},
		{9, 5, 9, 2},
		{11, 5, 0, 0},
		{0, 2, 1, 2},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, ten, "s1", c.from, c.limit)
		if err != nil {
			t.Fatalf("from %d limit %d: %v", c.from, c.limit, err)
		}
		if len(got) != c.wantLength {
			t.Fatalf("from %d limit %d: %d events, want %d", c.from, c.limit, len(got), c.wantLength)
		}
		for i, r := range got {
			v := c.wantFirst + int64(i)
			if r.Version != v || r.ID != evs[v-1].ID || r.Tenant != ten || r.StreamID != "s1" {
				t.Fatalf("from %d: event %d = v%d %s, want v%d %s", c.from, i, r.Version, r.ID, v, evs[v-1].ID)
			}
		}
	}
	got, _ := s.ReadStream(ctx, ten, "s1", 1, 1)
	r, e := got[0], evs[0]
	if r.Type != e.Type || r.SchemaVersion != 1 || !r.OccurredAt.Equal(e.OccurredAt) ||
		r.Metadata != e.Metadata || string(r.Data) != string(e.Data) || r.RecordedAt.IsZero() || r.Position <= 0 {
		t.Fatalf("recorded %+v does not match appended %+v", r, e)
	}
	if _, err := s.ReadStream(ctx, ten, "nope", 1, 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("missing stream: err = %v, want ErrNotFound", err)
	}
}

// readTenantLog reads the global log after a cursor to its head, in small
// pages, and keeps the tenant's events.
func readTenantLog(t *testing.T, s eventstore.Store, ten string, after eventstore.Cursor) []eventstore.Recorded {
	t.Helper()
	var out []eventstore.Recorded
	for range 100000 {
		page, err := s.ReadAll(context.Background(), after, 7)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		for _, r := range page {
			if !after.Less(r.Cursor) {
				t.Fatalf("cursor %v does not advance past %v", r.Cursor, after)
			}
			after = r.Cursor
			if r.Tenant == ten {
				out = append(out, r)
			}
		}
	}
	t.Fatal("global log does not end")
	return nil
}

// waitTenantLog reads the tenant's events of the global log after a cursor
// until it has at least n: an engine may hold back committed events while an
// older transaction is still running (another test's, in a shared database).
// Having more than n is returned as is, for the caller to judge.
func waitTenantLog(t *testing.T, s eventstore.Store, ten string, after eventstore.Cursor, n int) []eventstore.Recorded {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := readTenantLog(t, s, ten, after)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testReadAll(t *testing.T, s eventstore.Store) {
	ten := tenant()
	var want []uuid.UUID
	for i := range 12 {
		stream := fmt.Sprintf("s%d", i%3)
		evs := events(1 + i%2)
		mustAppend(t, s, req(ten, stream, eventstore.Any, evs...))
		for _, e := range evs {
			want = append(want, e.ID)
		}
	}
	got := waitTenantLog(t, s, ten, eventstore.Cursor{}, len(want))
	if len(got) != len(want) {
		t.Fatalf("global log has %d events of the tenant, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.ID != want[i] {
			t.Fatalf("event %d = %s, want %s (log order must be append order)", i, r.ID, want[i])
		}
		if r.EntityType != "shipment" {
			t.Fatalf("event %d entity type = %q, want shipment", i, r.EntityType)
		}
		if i > 0 && r.Position <= got[i-1].Position && r.Cursor.TxID == got[i-1].Cursor.TxID {
			t.Fatalf("positions not increasing within a transaction")
		}
	}
	// Resuming from a cursor in the middle returns exactly the rest.
	rest := waitTenantLog(t, s, ten, got[4].Cursor, len(got)-5)
	if len(rest) != len(got)-5 || rest[0].ID != got[5].ID {
		t.Fatalf("resume from the 5th cursor returned %d events, want %d starting at %s", len(rest), len(got)-5, got[5].ID)
	}
	// Cursors survive their string form.
	c, err := eventstore.ParseCursor(got[4].Cursor.String())
	if err != nil || c != got[4].Cursor {
		t.Fatalf("cursor round trip: %v, %v", c, err)
	}
}

func testHead(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	mustAppend(t, s, req(ten, "s1", eventstore.Any, events(3)...))
	got := waitTenantLog(t, s, ten, eventstore.Cursor{}, 3)
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Less(got[2].Cursor) {
		t.Fatalf("head %v is before the last readable event %v", head, got[2].Cursor)
	}
	// Reading after the head returns only events appended later.
	if got := readTenantLog(t, s, ten, head); len(got) != 0 {
		t.Fatalf("%d events of the tenant after the head, want 0", len(got))
	}
}

func testSnapshots(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(5)...))
	if _, err := s.LoadSnapshot(ctx, ten, "s1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("no snapshot yet: err = %v, want ErrNotFound", err)
	}
	save := func(v int64, state string) {
		t.Helper()
		err := s.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: ten, StreamID: "s1", Version: v, SchemaVersion: 2, State: json.RawMessage(state)})
		if err != nil {
			t.Fatalf("save snapshot v%d: %v", v, err)
		}
	}
	save(2, `{"v":2}`)
	save(4, `{"v":4,"name":"Zürich"}`)
	save(3, `{"v":3}`) // older: stored, but not the latest
	save(4, `{"v":4,"name":"Zürich"}`)
	got, err := s.LoadSnapshot(ctx, ten, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 4 || got.SchemaVersion != 2 || string(got.State) != `{"v":4,"name":"Zürich"}` || got.CreatedAt.IsZero() {
		t.Fatalf("latest snapshot = %+v, want version 4", got)
	}
	if _, err := s.LoadSnapshot(ctx, tenant(), "s1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("another tenant's snapshot: err = %v, want ErrNotFound", err)
	}
}

func testLoadStream(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	versions := func(recs []eventstore.Recorded) []int64 {
		var vs []int64
		for _, r := range recs {
			vs = append(vs, r.Version)
		}
		return vs
	}
	if _, err := s.LoadStream(ctx, ten, "s1", 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("missing stream: err = %v, want ErrNotFound", err)
	}
	created := mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(5)...))
	l, err := s.LoadStream(ctx, ten, "s1", 3)
	if err != nil || l.Snapshot != nil || !slices.Equal(versions(l.Events), []int64{1, 2, 3}) {
		t.Fatalf("without a snapshot, limit 3: %v, versions %v, %v; want no snapshot and versions 1-3", l.Snapshot, versions(l.Events), err)
	}
	if l.Incarnation == 0 || l.Incarnation != created.Incarnation {
		t.Fatalf("loaded incarnation %d, the creating append's %d: want the same, not 0", l.Incarnation, created.Incarnation)
	}
	recs := l.Events
	if recs[0].Type != "Thing" || string(recs[0].Data) != `{"n":0}` || recs[0].Tenant != ten || recs[0].Position == 0 {
		t.Fatalf("first event = %+v", recs[0])
	}
	for _, v := range []int64{3, 2} { // the latest wins, whatever the order saved
		if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: ten, StreamID: "s1", Version: v, SchemaVersion: 1, State: json.RawMessage(`{"v":3}`)}); err != nil {
			t.Fatal(err)
		}
	}
	l, err = s.LoadStream(ctx, ten, "s1", 10)
	if err != nil || l.Snapshot == nil || l.Snapshot.Version != 3 || string(l.Snapshot.State) != `{"v":3}` || !slices.Equal(versions(l.Events), []int64{4, 5}) {
		t.Fatalf("with a snapshot at 3: %+v, versions %v, %v; want the snapshot and versions 4, 5", l.Snapshot, versions(l.Events), err)
	}
	if l.Snapshot.Incarnation != created.Incarnation {
		t.Fatalf("snapshot saved without an incarnation has %d, want the stream's %d", l.Snapshot.Incarnation, created.Incarnation)
	}
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: ten, StreamID: "s1", Version: 5, SchemaVersion: 1, State: json.RawMessage(`{"v":5}`)}); err != nil {
		t.Fatal(err)
	}
	l, err = s.LoadStream(ctx, ten, "s1", 10)
	if err != nil || l.Snapshot == nil || l.Snapshot.Version != 5 || len(l.Events) != 0 {
		t.Fatalf("with a snapshot of the current version: %+v, %d events, %v", l.Snapshot, len(l.Events), err)
	}
	if _, err := s.LoadStream(ctx, tenant(), "s1", 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("another tenant's stream: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Erase(ctx, ten, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadStream(ctx, ten, "s1", 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("erased stream: err = %v, want ErrNotFound", err)
	}
}

// testEraseAndRecreate is the race an aggregate cached by one replica runs
// into when another replica erases the entity and creates it again up to
// the same version: an append decided on the old stream states its
// incarnation and must conflict, though the version matches; a snapshot
// folded from the old stream is never loaded for the new one.
func testEraseAndRecreate(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	old := mustAppend(t, s, req(ten, "e1", eventstore.NoStream, events(3)...))
	loaded, err := s.LoadStream(ctx, ten, "e1", 10)
	if err != nil || loaded.Incarnation != old.Incarnation || old.Incarnation == 0 {
		t.Fatalf("load: incarnation %d, %v; the append said %d", loaded.Incarnation, err, old.Incarnation)
	}
	if _, err := s.Erase(ctx, ten, "e1"); err != nil {
		t.Fatal(err)
	}
	// A slow snapshot writer saves what it folded from the old stream.
	stale := eventstore.Snapshot{Tenant: ten, StreamID: "e1", Version: 3, SchemaVersion: 1, State: json.RawMessage(`{"old":true}`), Incarnation: old.Incarnation}
	if err := s.SaveSnapshot(ctx, stale); err != nil {
		t.Fatalf("saving a snapshot of an erased stream: %v", err)
	}
	renewed := mustAppend(t, s, req(ten, "e1", eventstore.NoStream, events(3)...))
	if renewed.Version != 3 || renewed.Incarnation == 0 || renewed.Incarnation == old.Incarnation {
		t.Fatalf("re-created stream: version %d, incarnation %d (old %d); want version 3 and a new incarnation",
			renewed.Version, renewed.Incarnation, old.Incarnation)
	}
	if err := s.SaveSnapshot(ctx, stale); err != nil {
		t.Fatalf("saving a stale snapshot again: %v", err)
	}

	// Decided on the old stream at version 3: the version matches, the
	// incarnation does not.
	decided := req(ten, "e1", eventstore.Exact(3), events(1)...)
	decided.Incarnation = old.Incarnation
	_, err = s.Append(ctx, decided)
	var wrong *eventstore.WrongExpectedVersionError
	if !errors.As(err, &wrong) || !wrong.Replaced || wrong.Actual != 3 {
		t.Fatalf("append decided on the erased stream: %v; want a WrongExpectedVersionError that says it was replaced", err)
	}
	if got := readAllStream(t, s, ten, "e1"); len(got) != 3 {
		t.Fatalf("the refused append wrote: the stream has %d events, want 3", len(got))
	}
	if info, err := s.StreamInfo(ctx, ten, "e1"); err != nil || info.Incarnation != renewed.Incarnation {
		t.Fatalf("stream info: incarnation %d, %v; want %d", info.Incarnation, err, renewed.Incarnation)
	}
	l, err := s.LoadStream(ctx, ten, "e1", 10)
	if err != nil || l.Incarnation != renewed.Incarnation || l.Snapshot != nil || len(l.Events) != 3 {
		t.Fatalf("load of the new stream: incarnation %d, snapshot %+v, %d events, %v; want the new incarnation, no snapshot, 3 events",
			l.Incarnation, l.Snapshot, len(l.Events), err)
	}
	if sn, err := s.LoadSnapshot(ctx, ten, "e1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("LoadSnapshot returned the old stream's snapshot %+v (%v)", sn, err)
	}

	// Decided on the new stream: accepted, and it keeps the incarnation.
	decided.Incarnation = renewed.Incarnation
	res, err := s.Append(ctx, decided)
	if err != nil || res.Version != 4 || res.Incarnation != renewed.Incarnation {
		t.Fatalf("append decided on the new stream: %+v, %v", res, err)
	}
	// Retried with the old incarnation, the same events are a replay.
	decided.Incarnation = old.Incarnation
	if res, err := s.Append(ctx, decided); err != nil || !res.Replayed {
		t.Fatalf("retry of a stored append: %+v, %v; want a replay", res, err)
	}
	// An incarnation stated for a stream that does not exist conflicts.
	gone := req(ten, "never", eventstore.Any, events(1)...)
	gone.Incarnation = old.Incarnation
	if _, err := s.Append(ctx, gone); !errors.As(err, &wrong) || !wrong.Replaced {
		t.Fatalf("append stating an incarnation of a missing stream: %v; want replaced", err)
	}
}

// testLoadStreamsAppendAll: many streams load as each alone would, missing
// ones included; AppendAll's requests succeed and fail each on its own.
func testLoadStreamsAppendAll(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten, other := tenant(), tenant()
	a := mustAppend(t, s, req(ten, "a", eventstore.NoStream, events(5)...))
	b := mustAppend(t, s, req(other, "b", eventstore.NoStream, events(2)...))
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: ten, StreamID: "a", Version: 3, SchemaVersion: 1, State: json.RawMessage(`{"v":3}`)}); err != nil {
		t.Fatal(err)
	}
	refs := []eventstore.StreamRef{{Tenant: ten, StreamID: "a"}, {Tenant: ten, StreamID: "missing"},
		{Tenant: other, StreamID: "b"}, {Tenant: ten, StreamID: "b"}}
	got, err := s.LoadStreams(ctx, refs, 10)
	if err != nil || len(got) != len(refs) {
		t.Fatalf("LoadStreams: %d results, %v", len(got), err)
	}
	for i, ref := range refs {
		single, err := s.LoadStream(ctx, ref.Tenant, ref.StreamID, 10)
		if errors.Is(err, eventstore.ErrNotFound) {
			if got[i].Incarnation != 0 || got[i].Snapshot != nil || len(got[i].Events) != 0 {
				t.Errorf("%v does not exist, LoadStreams says %+v", ref, got[i])
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Incarnation != single.Incarnation || (got[i].Snapshot == nil) != (single.Snapshot == nil) ||
			len(got[i].Events) != len(single.Events) {
			t.Errorf("%v: LoadStreams %+v, LoadStream %+v", ref, got[i], single)
			continue
		}
		for j := range single.Events {
			if got[i].Events[j].ID != single.Events[j].ID || got[i].Events[j].Version != single.Events[j].Version {
				t.Errorf("%v event %d: %+v, want %+v", ref, j, got[i].Events[j], single.Events[j])
			}
		}
	}
	if got[0].Incarnation != a.Incarnation || got[0].Snapshot == nil || got[0].Snapshot.Version != 3 || len(got[0].Events) != 2 ||
		got[2].Incarnation != b.Incarnation || len(got[2].Events) != 2 {
		t.Fatalf("LoadStreams: a %+v, b %+v", got[0], got[2])
	}
	if got, err := s.LoadStreams(ctx, refs, 1); err != nil || len(got[2].Events) != 1 {
		t.Fatalf("LoadStreams with limit 1: %+v, %v", got, err)
	}

	stale := req(ten, "a", eventstore.Exact(4), events(1)...)
	fresh := req(ten, "c", eventstore.NoStream, events(2)...)
	next := req(other, "b", eventstore.Exact(2), events(1)...)
	invalid := req(ten, "d", eventstore.NoStream)
	out := s.AppendAll(ctx, []eventstore.AppendRequest{stale, fresh, next, invalid})
	if len(out) != 4 {
		t.Fatalf("AppendAll answered %d outcomes for 4 requests", len(out))
	}
	var wrong *eventstore.WrongExpectedVersionError
	if !errors.As(out[0].Err, &wrong) || wrong.Actual != 5 {
		t.Errorf("stale request: %v, want a conflict at version 5", out[0].Err)
	}
	if out[1].Err != nil || out[1].Result.Version != 2 || out[1].Result.Incarnation == 0 {
		t.Errorf("new stream: %+v, %v", out[1].Result, out[1].Err)
	}
	if out[2].Err != nil || out[2].Result.Version != 3 || out[2].Result.Incarnation != b.Incarnation {
		t.Errorf("append to b: %+v, %v", out[2].Result, out[2].Err)
	}
	if !errors.Is(out[3].Err, eventstore.ErrInvalid) {
		t.Errorf("request without events: %v, want ErrInvalid", out[3].Err)
	}
	if n := len(readAllStream(t, s, ten, "a")); n != 5 {
		t.Errorf("the refused request wrote: a has %d events", n)
	}
	// Sent again, the stored requests are replays.
	again := s.AppendAll(ctx, []eventstore.AppendRequest{fresh, next})
	for i, o := range again {
		if o.Err != nil || !o.Result.Replayed {
			t.Errorf("resent request %d: %+v, %v; want a replay", i, o.Result, o.Err)
		}
	}
}

func testTenants(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	a, b := tenant(), tenant()
	evs := events(2)
	mustAppend(t, s, req(a, "same", eventstore.NoStream, evs...))
	// The same event ids are fine in another tenant: ids are unique per tenant.
	res := mustAppend(t, s, req(b, "same", eventstore.NoStream, evs[0]))
	if res.Version != 1 || res.Replayed {
		t.Fatalf("tenant b result = %+v, want a new stream at version 1", res)
	}
	if got := readAllStream(t, s, a, "same"); len(got) != 2 {
		t.Fatalf("tenant a has %d events, want 2", len(got))
	}
	if got := readAllStream(t, s, b, "same"); len(got) != 1 || got[0].Tenant != b {
		t.Fatalf("tenant b has %v, want its own single event", got)
	}
	if info, err := s.StreamInfo(ctx, b, "same"); err != nil || info.Version != 1 {
		t.Fatalf("tenant b info = %+v, %v", info, err)
	}
	found, err := s.Lookup(ctx, b, []uuid.UUID{evs[0].ID, evs[1].ID})
	if err != nil || len(found) != 1 || found[0].Tenant != b {
		t.Fatalf("lookup in tenant b = %v, %v; want only b's event", found, err)
	}
}

func testEntityType(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	r := req(ten, "s1", eventstore.Any, events(1)...)
	r.EntityType = ""
	if _, err := s.Append(ctx, r); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("new stream without entity type: err = %v, want ErrInvalid", err)
	}
	mustAppend(t, s, req(ten, "s1", eventstore.Any, events(1)...))
	r = req(ten, "s1", eventstore.Any, events(1)...)
	r.EntityType = "vehicle"
	if _, err := s.Append(ctx, r); !errors.Is(err, eventstore.ErrEntityTypeMismatch) {
		t.Fatalf("other entity type: err = %v, want ErrEntityTypeMismatch", err)
	}
	r.EntityType = ""
	if res := mustAppend(t, s, r); res.Version != 2 {
		t.Fatalf("append without entity type to an existing stream: version %d, want 2", res.Version)
	}
}

func testStreamInfo(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	before := time.Now().Add(-time.Minute)
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(2)...))
	mustAppend(t, s, req(ten, "s1", eventstore.Exact(2), events(1)...))
	info, err := s.StreamInfo(ctx, ten, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Tenant != ten || info.StreamID != "s1" || info.EntityType != "shipment" || info.Version != 3 {
		t.Fatalf("info = %+v", info)
	}
	if info.CreatedAt.Before(before) || info.UpdatedAt.Before(info.CreatedAt) {
		t.Fatalf("info times = %v / %v", info.CreatedAt, info.UpdatedAt)
	}
	if _, err := s.StreamInfo(ctx, ten, "nope"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("missing stream info: err = %v, want ErrNotFound", err)
	}
}

func testLookup(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	evs := events(3)
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, evs...))
	got, err := s.Lookup(ctx, ten, []uuid.UUID{evs[2].ID, uuid.New(), evs[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("lookup found %d events, want 2", len(got))
	}
	byID := map[uuid.UUID]eventstore.Recorded{got[0].ID: got[0], got[1].ID: got[1]}
	if r := byID[evs[2].ID]; r.Version != 3 || !eventstore.SameContent(r, "s1", evs[2]) {
		t.Fatalf("lookup of the third event = %+v", r)
	}
	if got, err := s.Lookup(ctx, ten, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty lookup = %v, %v", got, err)
	}
}

func testInvalid(t *testing.T, s eventstore.Store) {
	ten := tenant()
	bad := map[string]func(r *eventstore.AppendRequest){
		"noEvents":      func(r *eventstore.AppendRequest) { r.Events = nil },
		"noTenant":      func(r *eventstore.AppendRequest) { r.Tenant = "" },
		"noStream":      func(r *eventstore.AppendRequest) { r.StreamID = "" },
		"longStream":    func(r *eventstore.AppendRequest) { r.StreamID = strings.Repeat("x", 1000) },
		"nilID":         func(r *eventstore.AppendRequest) { r.Events[0].ID = uuid.Nil },
		"noType":        func(r *eventstore.AppendRequest) { r.Events[0].Type = "" },
		"badJSON":       func(r *eventstore.AppendRequest) { r.Events[0].Data = json.RawMessage(`{"a":`) },
		"noTime":        func(r *eventstore.AppendRequest) { r.Events[0].OccurredAt = time.Time{} },
		"dupIDs":        func(r *eventstore.AppendRequest) { r.Events[1].ID = r.Events[0].ID },
		"badExpected":   func(r *eventstore.AppendRequest) { r.Expected = -7 },
		"negSchemaVers": func(r *eventstore.AppendRequest) { r.Events[0].SchemaVersion = -1 },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			r := req(ten, "s1", eventstore.Any, events(2)...)
			mutate(&r)
			if _, err := s.Append(context.Background(), r); !errors.Is(err, eventstore.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.StreamInfo(context.Background(), ten, "s1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("invalid requests created the stream: %v", err)
	}
}

// testConcurrentExact: 50 writers race to append at the version they read;
// each version has exactly one winner and the stream has no gaps.
func testConcurrentExact(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	const writers, perWriter = 50, 4
	var mu sync.Mutex
	winners := map[int64]uuid.UUID{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for done := 0; done < perWriter; {
				var v int64
				info, err := s.StreamInfo(ctx, ten, "hot")
				switch {
				case errors.Is(err, eventstore.ErrNotFound):
				case err != nil:
					errs <- err
					return
				default:
					v = info.Version
				}
				e := event("Tick", `{}`)
				res, err := s.Append(ctx, req(ten, "hot", eventstore.Exact(v), e))
				if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if res.Version != v+1 {
					errs <- fmt.Errorf("append at %d returned version %d", v, res.Version)
					return
				}
				mu.Lock()
				if prev, dup := winners[res.Version]; dup {
					errs <- fmt.Errorf("version %d won twice: %s and %s", res.Version, prev, e.ID)
				}
				winners[res.Version] = e.ID
				mu.Unlock()
				done++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAllStream(t, s, ten, "hot")
	if len(got) != writers*perWriter {
		t.Fatalf("stream has %d events, want %d", len(got), writers*perWriter)
	}
	for i, r := range got {
		if r.Version != int64(i+1) {
			t.Fatalf("event %d has version %d: versions are not contiguous", i, r.Version)
		}
		if winners[r.Version] != r.ID {
			t.Fatalf("version %d holds %s, but %s was told it won", r.Version, r.ID, winners[r.Version])
		}
	}
}

// testConflictFailsAlone: many appends in flight at once (which a group-commit
// store coalesces), one of them with a wrong expected version: only that one
// fails.
func testConflictFailsAlone(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	mustAppend(t, s, req(ten, "victim", eventstore.NoStream, events(1)...))
	const n = 64
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				_, results[i] = s.Append(ctx, req(ten, "victim", eventstore.Exact(7), events(1)...))
				return
			}
			_, results[i] = s.Append(ctx, req(ten, fmt.Sprintf("s%d", i), eventstore.NoStream, events(2)...))
		})
	}
	wg.Wait()
	for i, err := range results {
		if i == n/2 {
			wantWrongVersion(t, err, 1)
			continue
		}
		if err != nil {
			t.Fatalf("append %d failed with a neighbour's conflict: %v", i, err)
		}
		if got := readAllStream(t, s, ten, fmt.Sprintf("s%d", i)); len(got) != 2 {
			t.Fatalf("stream s%d has %d events, want 2", i, len(got))
		}
	}
	if got := readAllStream(t, s, ten, "victim"); len(got) != 1 {
		t.Fatalf("victim has %d events, want 1", len(got))
	}
}

// testPartlyWrittenUndone: an append that fails after writing part of
// itself (its second event's id is stored already) leaves nothing behind,
// and the appends committed with it are kept whole.
func testPartlyWrittenUndone(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	stored := events(1)
	mustAppend(t, s, req(ten, "stored", eventstore.NoStream, stored...))
	fresh := events(1)[0]
	reqs := []eventstore.AppendRequest{
		req(ten, "before", eventstore.NoStream, events(2)...),
		req(ten, "partly", eventstore.NoStream, fresh, stored[0]),
		req(ten, "after", eventstore.NoStream, events(3)...),
		req(ten, "stored", eventstore.Exact(1), events(1)...),
	}
	out := s.AppendAll(ctx, reqs)
	if !errors.Is(out[1].Err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("append reusing a stored id: %+v, %v; want ErrDuplicateEvent", out[1].Result, out[1].Err)
	}
	for i, want := range map[int]int64{0: 2, 2: 3, 3: 2} {
		if out[i].Err != nil || out[i].Result.Version != want {
			t.Errorf("append %d beside it: %+v, %v; want version %d", i, out[i].Result, out[i].Err, want)
		}
		if got := readAllStream(t, s, ten, reqs[i].StreamID); int64(len(got)) != want {
			t.Errorf("stream %s has %d events, want %d", reqs[i].StreamID, len(got), want)
		}
	}
	if got, err := s.ReadStream(ctx, ten, "partly", 1, 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the failed append left its stream: %d events, %v", len(got), err)
	}
	if got, err := s.Lookup(ctx, ten, []uuid.UUID{fresh.ID}); err != nil || len(got) != 0 {
		t.Fatalf("the failed append's first event is stored: %+v, %v", got, err)
	}
	// Nothing of it holds the stream or the id: written again alone, it is new.
	if res := mustAppend(t, s, req(ten, "partly", eventstore.NoStream, fresh)); res.Version != 1 || res.Replayed {
		t.Fatalf("the first event alone: %+v", res)
	}
	// The stored id reused in its own stream, after a new event: what the
	// append wrote of itself is not taken for a stored event (which would
	// answer a replay and lose the new one).
	lost := events(1)[0]
	res, err := s.Append(ctx, req(ten, "stored", eventstore.Any, lost, stored[0]))
	if !errors.Is(err, eventstore.ErrDuplicateEvent) || res.Replayed {
		t.Fatalf("a new event and a stored one of the same stream: %+v, %v; want ErrDuplicateEvent", res, err)
	}
	if got, err := s.Lookup(ctx, ten, []uuid.UUID{lost.ID}); err != nil || len(got) != 0 {
		t.Fatalf("the refused append's new event is stored: %+v, %v", got, err)
	}
	if got := readAllStream(t, s, ten, "stored"); len(got) != 2 {
		t.Fatalf("stream stored has %d events, want 2", len(got))
	}
}

func testPayloadRoundTrip(t *testing.T, s eventstore.Store) {
	ten := tenant()
	big := `{"blob":"` + strings.Repeat("0123456789abcdef", 256*1024/16) + `"}`
	texts := []string{
		big,
		`{"city":"Zürich","note":"Ελληνικά, 日本語, emoji 🚚📦, RTL עברית"}`,
		`{"escaped":"line\nbreak \"quoted\" \\ back\u00e9","spaces": [ 1,  2 ]}`,
	}
	evs := make([]eventstore.Event, len(texts))
	for i, txt := range texts {
		evs[i] = event("Payload", txt)
	}
	evs[1].Metadata.Source = "scanner Göteborg 📡"
	mustAppend(t, s, req(ten, "Ünïcødé-stream/1", eventstore.NoStream, evs...))
	got := readAllStream(t, s, ten, "Ünïcødé-stream/1")
	for i, txt := range texts {
		if string(got[i].Data) != txt {
			t.Fatalf("payload %d (%d bytes) changed on the way: got %d bytes", i, len(txt), len(got[i].Data))
		}
	}
	if got[1].Metadata.Source != "scanner Göteborg 📡" {
		t.Fatalf("metadata changed: %q", got[1].Metadata.Source)
	}
	if len(got[0].Data) < 256*1024 {
		t.Fatalf("large payload shrank to %d bytes", len(got[0].Data))
	}
}

func testCanceledContext(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ten := tenant()
	if _, err := s.Append(ctx, req(ten, "s1", eventstore.Any, events(1)...)); err == nil {
		t.Fatal("append with a canceled context succeeded")
	}
	if _, err := s.StreamInfo(context.Background(), ten, "s1"); !errors.Is(err, eventstore.ErrNotFound) {
		// The append may have been committed before the cancellation was seen
		// only if it reported success; it reported an error, so nothing is stored.
		t.Fatalf("canceled append left a stream behind: %v", err)
	}
}

func testErase(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	evs := events(3)
	mustAppend(t, s, req(ten, "gone", eventstore.NoStream, evs...))
	mustAppend(t, s, req(ten, "kept", eventstore.NoStream, events(2)...))
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: ten, StreamID: "gone", Version: 2, SchemaVersion: 1, State: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Erase(ctx, ten, "gone")
	if err != nil || n != 3 {
		t.Fatalf("erase = %d, %v; want 3 events deleted", n, err)
	}
	if _, err := s.StreamInfo(ctx, ten, "gone"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("stream info after erase: %v", err)
	}
	if _, err := s.ReadStream(ctx, ten, "gone", 1, 10); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("read after erase: %v", err)
	}
	if _, err := s.LoadSnapshot(ctx, ten, "gone"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("snapshot after erase: %v", err)
	}
	if found, err := s.Lookup(ctx, ten, []uuid.UUID{evs[0].ID}); err != nil || len(found) != 0 {
		t.Fatalf("lookup after erase = %v, %v", found, err)
	}
	// Of the stream, the log keeps only its erasure marker, after
	// everything appended before the erasure.
	checkMarker := func(after int) {
		t.Helper()
		log := waitTenantLog(t, s, ten, eventstore.Cursor{}, after+1)
		if len(log) == 0 {
			t.Fatal("the tenant's log is empty")
		}
		var markers []eventstore.Recorded
		for _, r := range log {
			if r.StreamID == "gone" && !r.Erasure() {
				t.Fatalf("the global log still holds %s v%d (%s)", r.StreamID, r.Version, r.Type)
			}
			if r.Erasure() {
				markers = append(markers, r)
			}
		}
		if len(markers) != 1 || len(log) != after+1 || !log[after].Erasure() {
			t.Fatalf("the log holds %d erasure markers, the last of %d records being %+v; want one, after the %d records appended before",
				len(markers), len(log), log[len(log)-1], after)
		}
		m := markers[0]
		if m.Tenant != ten || m.StreamID != "gone" || m.Version != 0 || m.Type != eventstore.ErasureType || m.RecordedAt.IsZero() {
			t.Fatalf("erasure marker %+v", m)
		}
	}
	checkMarker(2)
	if got := readAllStream(t, s, ten, "kept"); len(got) != 2 {
		t.Fatalf("the other stream has %d events after erasure, want 2", len(got))
	}
	if _, err := s.Erase(ctx, ten, "gone"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("second erase: %v, want ErrNotFound", err)
	}
	checkMarker(2)
	// The id can be used again: a new stream from version 1, without the marker.
	if res := mustAppend(t, s, req(ten, "gone", eventstore.NoStream, events(1)...)); res.Version != 1 {
		t.Fatalf("append after erase: version %d, want 1", res.Version)
	}
	for _, from := range []int64{0, 1} {
		if got, err := s.ReadStream(ctx, ten, "gone", from, 10); err != nil || len(got) != 1 || got[0].Version != 1 {
			t.Fatalf("re-created stream read from %d = %+v, %v; want its one event", from, got, err)
		}
	}
	if l, err := s.LoadStream(ctx, ten, "gone", 10); err != nil || len(l.Events) != 1 || l.Events[0].Version != 1 {
		t.Fatalf("re-created stream loads as %+v, %v; want its one event", l, err)
	}
	// Erased again: one marker, the new one, after the new life's event.
	if _, err := s.Erase(ctx, ten, "gone"); err != nil {
		t.Fatal(err)
	}
	checkMarker(2)
}

func testCursorAt(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten, other := tenant(), tenant()
	mustAppend(t, s, req(ten, "s1", eventstore.NoStream, events(3)...))
	mustAppend(t, s, req(other, "s1", eventstore.NoStream, events(1)...))
	mustAppend(t, s, req(ten, "s2", eventstore.NoStream, events(2)...))
	mustAppend(t, s, req(ten, "gone", eventstore.NoStream, events(2)...))
	log := waitTenantLog(t, s, ten, eventstore.Cursor{}, 7)
	if len(log) != 7 {
		t.Fatalf("the tenant's log has %d records, want 7", len(log))
	}
	// Every position of the tenant resumes the log just after its event.
	for i, r := range log {
		c, err := s.CursorAt(ctx, ten, r.Position)
		if err != nil {
			t.Fatalf("cursor at %d: %v", r.Position, err)
		}
		if c != r.Cursor {
			t.Fatalf("cursor at %d = %v, want the event's cursor %v", r.Position, c, r.Cursor)
		}
		if rest := readTenantLog(t, s, ten, c); !sameIDs(rest, log[i+1:]) {
			t.Fatalf("after the cursor at %d the log holds %d records of the tenant, want the %d after it", r.Position, len(rest), len(log)-i-1)
		}
	}
	// Another tenant's position, or a position of nothing, is not found.
	theirs := waitTenantLog(t, s, other, eventstore.Cursor{}, 1)
	notFound := func(tenant string, pos int64, what string) {
		t.Helper()
		if c, err := s.CursorAt(ctx, tenant, pos); !errors.Is(err, eventstore.ErrNotFound) {
			t.Fatalf("cursor at %s = %v, %v; want ErrNotFound", what, c, err)
		}
	}
	notFound(ten, theirs[0].Position, "another tenant's position")
	notFound(other, log[0].Position, "a position of another tenant")
	notFound(ten, 0, "position 0")
	notFound(ten, log[6].Position+1_000_000_000, "a position not used yet")
	if _, err := s.CursorAt(ctx, ten, -1); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("cursor at -1: %v, want ErrInvalid", err)
	}
	// Erased events are not found; the erasure marker, in the log, is.
	if _, err := s.Erase(ctx, ten, "gone"); err != nil {
		t.Fatal(err)
	}
	notFound(ten, log[5].Position, "an erased event")
	notFound(ten, log[6].Position, "an erased event")
	after := waitTenantLog(t, s, ten, log[4].Cursor, 1)
	if len(after) != 1 || !after[0].Erasure() {
		t.Fatalf("after the erasure the log holds %+v, want its marker", after)
	}
	if c, err := s.CursorAt(ctx, ten, after[0].Position); err != nil || c != after[0].Cursor {
		t.Fatalf("cursor at the erasure marker = %v, %v; want %v", c, err, after[0].Cursor)
	}
}

func sameIDs(a, b []eventstore.Recorded) bool {
	return slices.EqualFunc(a, b, func(x, y eventstore.Recorded) bool { return x.ID == y.ID })
}

func testCursorBefore(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	ten := tenant()
	mustAppend(t, s, req(ten, "old", eventstore.NoStream, events(2)...))
	old := waitTenantLog(t, s, ten, eventstore.Cursor{}, 2)
	// The next events are recorded strictly later.
	for time.Now().Before(old[1].RecordedAt.Add(2 * time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	mustAppend(t, s, req(ten, "new", eventstore.NoStream, events(2)...))
	mustAppend(t, s, req(ten, "old", eventstore.Exact(2), events(1)...))
	log := waitTenantLog(t, s, ten, eventstore.Cursor{}, 5)
	if len(log) != 5 {
		t.Fatalf("the tenant's log has %d records, want 5", len(log))
	}
	since := log[2].RecordedAt
	if !since.After(old[1].RecordedAt) {
		t.Fatalf("recorded at %v, not after %v", since, old[1].RecordedAt)
	}
	cursorBefore := func(at time.Time) eventstore.Cursor {
		t.Helper()
		c, err := s.CursorBefore(ctx, at)
		if err != nil {
			t.Fatalf("cursor before %v: %v", at, err)
		}
		return c
	}
	// Everything recorded since is after the cursor, in log order. An
	// engine may put older records after it too while some transaction
	// runs (PostgreSQL), but not for long.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := readTenantLog(t, s, ten, cursorBefore(since))
		if len(got) < 3 || !sameIDs(got[len(got)-3:], log[2:]) {
			t.Fatalf("after the cursor before %v the tenant's log holds %d records, want the 3 recorded since at its end", since, len(got))
		}
		if len(got) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cursor before %v still has %d older records after it", since, len(got)-3)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Before everything: the beginning of the log.
	if c := cursorBefore(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); c != (eventstore.Cursor{}) {
		t.Fatalf("cursor before 2000 = %v, want the beginning of the log", c)
	}
	// After everything: what is appended next is after it.
	future := cursorBefore(time.Now().Add(time.Hour))
	mustAppend(t, s, req(ten, "new", eventstore.Exact(2), events(1)...))
	if got := waitTenantLog(t, s, ten, future, 1); len(got) == 0 || got[len(got)-1].StreamID != "new" || got[len(got)-1].Version != 3 {
		t.Fatalf("an event appended later is not after the cursor before an hour from now: %+v", got)
	}
}

// RunConcurrentOpen opens several stores on one database at once, as
// replicas starting together do: every one must come up (the migrations
// run once), and close cleanly.
func RunConcurrentOpen(t *testing.T, open func() (eventstore.Store, error)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := open()
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
}
