package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
