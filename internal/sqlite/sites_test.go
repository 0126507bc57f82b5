package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/alerting/alertingtest"
)

func TestSitesConformance(t *testing.T) {
	t.Parallel()
	alertingtest.RunSites(t, func(t *testing.T) alerting.Sites {
		return openReadModels(t, open(t, filepath.Join(t.TempDir(), "tracktrace.db")))
	})
}
