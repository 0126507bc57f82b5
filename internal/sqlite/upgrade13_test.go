package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

// Read models of before parents, sites and exception points, with
// rebuilds in progress, are upgraded in place from the timeline.
func TestUpgrade13(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "tracktrace.db"))
	if err := s.MigrateReadModelsTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	micros := func(at time.Time) string { return "unixepoch('" + at.Format(time.RFC3339) + "') * 1000000" }
	for _, stmt := range projectiontest.Upgrade13Rows(micros) {
		if _, err := s.WriteDB().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	projectiontest.CheckUpgrade13(t, openReadModels(t, s))
}
