-- +goose Up
-- Dwell time per site (performance-metrics). A departure from a site can
-- yield two points, its punctuality against plannedAt and the visit's
-- dwell time, so a point's identity includes its kind. The projection
-- remembers the visits' starts beside the operations' starts, apart by
-- kind: operation (operation_id is the client's operationId) or dwell
-- (operation_id is the site id); an operationId may be any string, a site
-- id among them.
-- A rebuild of the metrics in progress has tables of the old shape: it is
-- abandoned (start it again).
DROP TABLE IF EXISTS rm_metric_points_rebuild, rm_operation_starts_rebuild, rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name = 'performance-metrics@rebuild';
-- The primary keys' names depend on how many rebuilds were switched in.
-- +goose StatementBegin
DO $$
DECLARE
    t text;
    pk text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_metric_points', 'rm_operation_starts'] LOOP
        SELECT conname INTO STRICT pk FROM pg_constraint WHERE conrelid = t::regclass AND contype = 'p';
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t, pk);
    END LOOP;
END $$;
-- +goose StatementEnd
ALTER TABLE rm_metric_points ADD PRIMARY KEY (tenant_id, entity_id, version, kind);
ALTER TABLE rm_operation_starts ADD COLUMN kind text NOT NULL DEFAULT 'operation';
ALTER TABLE rm_operation_starts ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE rm_operation_starts ADD PRIMARY KEY (tenant_id, entity_id, kind, operation_id);

-- +goose Down
DROP TABLE IF EXISTS rm_metric_points_rebuild, rm_operation_starts_rebuild, rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name = 'performance-metrics@rebuild';
DELETE FROM rm_metric_points WHERE kind = 'dwell';
DELETE FROM rm_operation_starts WHERE kind <> 'operation';
-- +goose StatementBegin
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO STRICT pk FROM pg_constraint WHERE conrelid = 'rm_metric_points'::regclass AND contype = 'p';
    EXECUTE format('ALTER TABLE rm_metric_points DROP CONSTRAINT %I', pk);
END $$;
-- +goose StatementEnd
ALTER TABLE rm_metric_points ADD PRIMARY KEY (tenant_id, entity_id, version);
ALTER TABLE rm_operation_starts DROP COLUMN kind;
ALTER TABLE rm_operation_starts ADD PRIMARY KEY (tenant_id, entity_id, operation_id);
