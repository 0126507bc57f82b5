package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/readmodel"
)

// Read models of before parents, sites and exception points, with
// rebuilds in progress, are upgraded in place from the timeline.
func TestUpgrade13(t *testing.T) {
	t.Parallel()
	literal := func(at time.Time) string { return "'" + at.Format(time.RFC3339) + "'" }
	projectiontest.CheckUpgrade13(t, upgradedFrom(t, 12, projectiontest.Upgrade13Rows(literal)))
}

// upgradedFrom returns the read models of a new database migrated to
// version, then filled by stmts, then opened (migrated to the newest).
func upgradedFrom(t *testing.T, version int64, stmts []string) *readmodel.Store {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateReadModelsTo(ctx, pool, version); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range stmts {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pool.Close()

	s := open(t, dsn)
	rm, err := postgres.OpenReadModels(ctx, "", s.Pool())
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	return rm
}
