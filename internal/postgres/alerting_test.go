package postgres_test

import (
	"testing"

	"github.com/tlm/tracktrace/internal/alerting/alertingtest"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

func TestAlertingConformance(t *testing.T) {
	t.Parallel()
	alertingtest.Run(t, func(t *testing.T) alertingtest.Store {
		s := open(t, pgtest.NewDatabase(t))
		rm, err := postgres.OpenReadModels(t.Context(), "", s.Pool())
		if err != nil {
			t.Fatalf("open read models: %v", err)
		}
		return rm
	})
}
