package sqlite_test

import (
	"testing"

	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

// Read models of before dwell points, with a rebuild of the metrics in
// progress, are upgraded in place.
func TestDwellUpgrade(t *testing.T) {
	t.Parallel()
	rm := upgradedFrom(t, 9, []string{
		`INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
			VALUES ('acme', 'PKG-1', 3, 'milestone', 'package', 'departed', '', unixepoch('2025-03-10T08:30:00Z') * 1000000, 600)`,
		`INSERT INTO rm_operation_starts (tenant_id, entity_id, operation_id, operation, started_at)
			VALUES ('acme', 'PKG-1', 'DC-1', 'loading', unixepoch('2025-03-10T08:00:00Z') * 1000000)`,
		// A rebuild in progress.
		`CREATE TABLE rm_metric_points_rebuild AS SELECT * FROM rm_metric_points WHERE 0`,
		`CREATE TABLE rm_operation_starts_rebuild AS SELECT * FROM rm_operation_starts WHERE 0`,
		`CREATE TABLE rm_positions_metrics_rebuild AS SELECT * FROM rm_positions_metrics WHERE 0`,
		`INSERT INTO projection_checkpoints (name) VALUES ('performance-metrics@rebuild')`,
	})
	projectiontest.CheckDwellUpgrade(t, rm)
}
