package postgres_test

import (
	"context"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// One database and store for the whole suite: the suite isolates its
	// tests by tenant, and sharing exercises the group commit across tests.
	s := open(t, pgtest.NewDatabase(t))
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return s })
}

// Several instances starting at once against one database must not break
// each other: the migrations run once, under an advisory lock.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	eventstoretest.RunConcurrentOpen(t, func() (eventstore.Store, error) {
		return postgres.Open(context.Background(), dsn, postgres.Options{})
	})
	// Each migration ran once: goose recorded each version once.
	s := open(t, dsn)
	var twice int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM (SELECT version_id FROM goose_db_version
		WHERE version_id > 0 GROUP BY version_id HAVING count(*) > 1) d`).Scan(&twice); err != nil || twice != 0 {
		t.Fatalf("%d migrations recorded more than once (%v)", twice, err)
	}
}
