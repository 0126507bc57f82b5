package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// analyzed reports whether the planner has statistics of a table.
func analyzed(t *testing.T, s *Store, table string) bool {
	t.Helper()
	var n int
	err := s.read.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_stat1 WHERE tbl = ?`, table).Scan(&n)
	if err != nil {
		return false // no sqlite_stat1 yet: nothing was ever analyzed
	}
	return n > 0
}

// A store that grows from empty gets the planner's statistics while it
// stays open, not only at its next open: without them SQLite walks a
// tenant's rows by primary key where a selective index exists.
func TestStatisticsFollowAStoreThatGrowsWhileOpen(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "file:"+filepath.Join(t.TempDir(), "grow.db"), Options{OptimizeEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if analyzed(t, s, "events") {
		t.Fatal("an empty store has statistics of its events")
	}
	reqs := make([]eventstore.AppendRequest, 2000)
	for i := range reqs {
		reqs[i] = eventstore.AppendRequest{Tenant: "t", StreamID: fmt.Sprintf("s-%04d", i), EntityType: "shipment",
			Expected: eventstore.NoStream, Events: []eventstore.Event{{ID: uuid.New(), Type: "T", Data: []byte(`{}`),
				OccurredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	}
	for _, out := range s.AppendAll(ctx, reqs) {
		if out.Err != nil {
			t.Fatal(out.Err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !analyzed(t, s, "events"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("2,000 events later the store still has no statistics of them")
		}
	}
}
