package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

// Read models of before parents, sites and exception points, with
// rebuilds in progress, are upgraded in place from the timeline.
func TestUpgrade13(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateReadModelsTo(ctx, pool, 12); err != nil {
		t.Fatal(err)
	}
	literal := func(at time.Time) string { return "'" + at.Format(time.RFC3339) + "'" }
	for _, stmt := range projectiontest.Upgrade13Rows(literal) {
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
	projectiontest.CheckUpgrade13(t, rm)
}
