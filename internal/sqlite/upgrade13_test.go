package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/readmodel"
)

// Read models of before parents, sites and exception points, with
// rebuilds in progress, are upgraded in place from the timeline.
func TestUpgrade13(t *testing.T) {
	t.Parallel()
	micros := func(at time.Time) string { return "unixepoch('" + at.Format(time.RFC3339) + "') * 1000000" }
	projectiontest.CheckUpgrade13(t, upgradedFrom(t, 12, projectiontest.Upgrade13Rows(micros)))
}

// upgradedFrom returns the read models of a new file migrated to version,
// then filled by stmts, then opened (migrated to the newest).
func upgradedFrom(t *testing.T, version int64, stmts []string) *readmodel.Store {
	t.Helper()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "tracktrace.db"))
	if err := s.MigrateReadModelsTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range stmts {
		if _, err := s.WriteDB().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return openReadModels(t, s)
}
