package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting/alertingtest"
)

func TestAlertingConformance(t *testing.T) {
	t.Parallel()
	alertingtest.Run(t, func(t *testing.T) alertingtest.Store {
		return openReadModels(t, open(t, filepath.Join(t.TempDir(), "tracktrace.db")))
	})
}
