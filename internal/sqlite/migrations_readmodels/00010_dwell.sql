-- +goose Up
-- Dwell time per site (performance-metrics). A departure from a site can
-- yield two points, its punctuality against plannedAt and the visit's
-- dwell time, so a point's identity includes its kind. The projection
-- remembers the visits' starts beside the operations' starts, apart by
-- kind: operation (operation_id is the client's operationId) or dwell
-- (operation_id is the site id); an operationId may be any string, a site
-- id among them. SQLite changes a primary key by copying the table.
-- A rebuild of the metrics in progress has tables of the old shape: it is
-- abandoned (start it again).
DROP TABLE IF EXISTS rm_metric_points_rebuild;
DROP TABLE IF EXISTS rm_operation_starts_rebuild;
DROP TABLE IF EXISTS rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name = 'performance-metrics@rebuild';

CREATE TABLE rm_metric_points_v10 (
    tenant_id   TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    kind        TEXT    NOT NULL, -- operation (duration_seconds) | milestone (delay_seconds) | dwell (dwell_seconds)
    entity_type TEXT    NOT NULL,
    name        TEXT    NOT NULL, -- the operation, milestone or site id
    outcome     TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    value       REAL    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version, kind)
) WITHOUT ROWID;
INSERT INTO rm_metric_points_v10 (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
    SELECT tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value FROM rm_metric_points;
DROP TABLE rm_metric_points;
ALTER TABLE rm_metric_points_v10 RENAME TO rm_metric_points;
CREATE INDEX rm_metric_points_query ON rm_metric_points (tenant_id, kind, occurred_at);

CREATE TABLE rm_operation_starts_v10 (
    tenant_id    TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    operation_id TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    kind         TEXT    NOT NULL, -- operation | dwell (operation_id and operation: the site id)
    PRIMARY KEY (tenant_id, entity_id, kind, operation_id)
) WITHOUT ROWID;
INSERT INTO rm_operation_starts_v10 (tenant_id, entity_id, operation_id, operation, started_at, kind)
    SELECT tenant_id, entity_id, operation_id, operation, started_at, 'operation' FROM rm_operation_starts;
DROP TABLE rm_operation_starts;
ALTER TABLE rm_operation_starts_v10 RENAME TO rm_operation_starts;

-- +goose Down
DROP TABLE IF EXISTS rm_metric_points_rebuild;
DROP TABLE IF EXISTS rm_operation_starts_rebuild;
DROP TABLE IF EXISTS rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name = 'performance-metrics@rebuild';

CREATE TABLE rm_metric_points_v9 (
    tenant_id   TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    kind        TEXT    NOT NULL, -- operation (duration_seconds) | milestone (delay_seconds)
    entity_type TEXT    NOT NULL,
    name        TEXT    NOT NULL, -- the operation or milestone
    outcome     TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    value       REAL    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
) WITHOUT ROWID;
INSERT INTO rm_metric_points_v9 (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
    SELECT tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value FROM rm_metric_points
    WHERE kind <> 'dwell';
DROP TABLE rm_metric_points;
ALTER TABLE rm_metric_points_v9 RENAME TO rm_metric_points;
CREATE INDEX rm_metric_points_query ON rm_metric_points (tenant_id, kind, occurred_at);

CREATE TABLE rm_operation_starts_v9 (
    tenant_id    TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    operation_id TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, operation_id)
) WITHOUT ROWID;
INSERT INTO rm_operation_starts_v9 (tenant_id, entity_id, operation_id, operation, started_at)
    SELECT tenant_id, entity_id, operation_id, operation, started_at FROM rm_operation_starts WHERE kind = 'operation';
DROP TABLE rm_operation_starts;
ALTER TABLE rm_operation_starts_v9 RENAME TO rm_operation_starts;
