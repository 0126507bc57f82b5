package postgres_test

import (
	"context"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

func TestReadModelsConformance(t *testing.T) {
	t.Parallel()
	projectiontest.Run(t, func(t *testing.T) (eventstore.Store, projectiontest.ReadModels) {
		s := open(t, pgtest.NewDatabase(t))
		rm, err := postgres.OpenReadModels(context.Background(), "", s.Pool())
		if err != nil {
			t.Fatalf("open read models: %v", err)
		}
		return s, rm
	})
}
