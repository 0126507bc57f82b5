package postgres_test

import (
	"testing"

	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

// Read models of before dwell points, in metrics tables a rebuild had
// switched in (their primary keys named after the rebuild's tables) and
// with another rebuild in progress, are upgraded in place.
func TestDwellUpgrade(t *testing.T) {
	t.Parallel()
	rm := upgradedFrom(t, 9, []string{
		// A rebuild switched in, as SwapTable does it.
		`CREATE TABLE rm_metric_points_rebuild (LIKE rm_metric_points INCLUDING ALL)`,
		`DROP TABLE rm_metric_points`,
		`ALTER TABLE rm_metric_points_rebuild RENAME TO rm_metric_points`,
		`CREATE TABLE rm_operation_starts_rebuild (LIKE rm_operation_starts INCLUDING ALL)`,
		`DROP TABLE rm_operation_starts`,
		`ALTER TABLE rm_operation_starts_rebuild RENAME TO rm_operation_starts`,
		`INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
			VALUES ('acme', 'PKG-1', 3, 'milestone', 'package', 'departed', '', '2025-03-10T08:30:00Z', 600)`,
		`INSERT INTO rm_operation_starts (tenant_id, entity_id, operation_id, operation, started_at)
			VALUES ('acme', 'PKG-1', 'DC-1', 'loading', '2025-03-10T08:00:00Z')`,
		// A rebuild in progress.
		`CREATE TABLE rm_metric_points_rebuild (LIKE rm_metric_points INCLUDING ALL)`,
		`CREATE TABLE rm_operation_starts_rebuild (LIKE rm_operation_starts INCLUDING ALL)`,
		`CREATE TABLE rm_positions_metrics_rebuild (LIKE rm_positions_metrics INCLUDING ALL)`,
		`INSERT INTO projection_checkpoints (name) VALUES ('performance-metrics@rebuild')`,
	})
	projectiontest.CheckDwellUpgrade(t, rm)
}
