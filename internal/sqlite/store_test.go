package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/sqlite"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "file:"+path, sqlite.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, filepath.Join(t.TempDir(), "events.db"))
	})
}

// Two processes (here: two stores) starting at once on one file must both
// come up with the schema applied once.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "events.db")
	eventstoretest.RunConcurrentOpen(t, func() (eventstore.Store, error) {
		return sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
	})
	s := open(t, path)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each migration ran once: goose recorded each version once.
	var twice int
	if err := s.ReadDB().QueryRowContext(context.Background(), `SELECT count(*) FROM (SELECT version_id FROM goose_db_version
		WHERE version_id > 0 GROUP BY version_id HAVING count(*) > 1)`).Scan(&twice); err != nil || twice != 0 {
		t.Fatalf("%d migrations recorded more than once (%v)", twice, err)
	}
}

func TestRejectsMemoryAndBadDSN(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"file::memory:", "postgres://x", "file:", "file:x.db?%zz"} {
		if _, err := sqlite.Open(context.Background(), dsn, sqlite.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded, want an error", dsn)
		}
	}
}

// Data survives closing and reopening the file.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlite.Open(context.Background(), "file:"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := eventstore.AppendRequest{Tenant: "t", StreamID: "s", EntityType: "shipment", Expected: eventstore.NoStream,
		Events: []eventstore.Event{{ID: [16]byte{1}, Type: "T", Data: []byte(`{}`), OccurredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	if _, err := s.Append(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	info, err := s.StreamInfo(context.Background(), "t", "s")
	if err != nil || info.Version != 1 {
		t.Fatalf("after reopen: %+v, %v", info, err)
	}
}

// An append that fails after writing part of itself shares its batch's
// transaction with others: written without savepoints first, the batch is
// written again with them, and the others commit whole while it leaves
// nothing. (The conformance suite cannot choose what shares a batch.)
func TestPartlyWrittenAppendInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	event := func() eventstore.Event {
		return eventstore.Event{ID: uuid.New(), Type: "x", SchemaVersion: 1, Data: json.RawMessage(`{}`), OccurredAt: time.Now()}
	}
	stored := event()
	if _, err := s.Append(ctx, eventstore.AppendRequest{Tenant: "t", StreamID: "stored", EntityType: "e",
		Expected: eventstore.NoStream, Events: []eventstore.Event{stored}}); err != nil {
		t.Fatal(err)
	}
	fresh := event()
	out := s.CommitBatch(ctx, []eventstore.AppendRequest{
		{Tenant: "t", StreamID: "before", EntityType: "e", Expected: eventstore.NoStream, Events: []eventstore.Event{event(), event()}},
		{Tenant: "t", StreamID: "partly", EntityType: "e", Expected: eventstore.NoStream, Events: []eventstore.Event{fresh, stored}},
		{Tenant: "t", StreamID: "stored", Expected: eventstore.Exact(1), Events: []eventstore.Event{event()}},
		{Tenant: "t", StreamID: "stored", Expected: eventstore.Exact(1), Events: []eventstore.Event{event()}}, // a conflict: refused before writing
	})
	if !errors.Is(out[1].Err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("the append reusing a stored id: %+v, %v", out[1].Result, out[1].Err)
	}
	if out[0].Err != nil || out[0].Result.Version != 2 || out[2].Err != nil || out[2].Result.Version != 2 {
		t.Fatalf("the appends beside it: %+v", out)
	}
	if !errors.Is(out[3].Err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("the conflicting append: %v", out[3].Err)
	}
	if got, err := s.Lookup(ctx, "t", []uuid.UUID{fresh.ID}); err != nil || len(got) != 0 {
		t.Fatalf("the failed append's first event is stored: %+v, %v", got, err)
	}
	for stream, want := range map[string]int{"before": 2, "stored": 2} {
		if got, err := s.ReadStream(ctx, "t", stream, 1, 10); err != nil || len(got) != want {
			t.Fatalf("stream %s: %d events, %v; want %d", stream, len(got), err, want)
		}
	}
}
