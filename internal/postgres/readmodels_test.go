package postgres_test

import (
	"context"
	"testing"

	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

func TestReadModelsConformance(t *testing.T) {
	t.Parallel()
	projectiontest.Run(t, func(t *testing.T) projectiontest.Harness {
		// Through a proxy that can cut the connections mid-reply.
		proxy, dsn := pgtest.NewProxy(t, pgtest.NewDatabase(t))
		s := open(t, dsn)
		rm, err := postgres.OpenReadModels(context.Background(), "", s.Pool())
		if err != nil {
			t.Fatalf("open read models: %v", err)
		}
		return projectiontest.Harness{Store: s, ReadModels: rm, Sever: func() { proxy.SeverAfter(16 << 10) }}
	})
}
