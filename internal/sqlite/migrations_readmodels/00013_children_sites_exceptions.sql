-- +goose Up
-- The console's entity page lists an entity's children, its performance
-- page shows operation durations per site and exception counts.
--
-- rm_entities.parent_id is the entity's current parent (its view's
-- parentId), NULL for none: the children of an entity are listed by it.
-- rm_metric_points.site_id is where a point happened: an operation's
-- completion's siteId, else its start's (rm_operation_starts.site_id), a
-- milestone's siteId, a visit's site; '' for none. A point of kind
-- exception is an ExceptionRaised (name: its code, value: 1).
--
-- What the read models hold already is brought level from the timeline
-- where it still holds the events (retention may have trimmed them: their
-- points keep no site, their exceptions are not counted).
-- A rebuild of the entities or of the metrics in progress has tables of
-- the old shape: it is abandoned (start it again).
DROP TABLE IF EXISTS rm_entities_rebuild;
DROP TABLE IF EXISTS rm_positions_entities_rebuild;
DROP TABLE IF EXISTS rm_metric_points_rebuild;
DROP TABLE IF EXISTS rm_operation_starts_rebuild;
DROP TABLE IF EXISTS rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name IN ('entities@rebuild', 'performance-metrics@rebuild');

ALTER TABLE rm_entities ADD COLUMN parent_id TEXT;
UPDATE rm_entities SET parent_id = json_extract(view, '$.parentId') WHERE json_extract(view, '$.parentId') IS NOT NULL;
CREATE INDEX rm_entities_parent ON rm_entities (tenant_id, parent_id, entity_id) WHERE parent_id IS NOT NULL;

ALTER TABLE rm_metric_points ADD COLUMN site_id TEXT NOT NULL DEFAULT '';
ALTER TABLE rm_operation_starts ADD COLUMN site_id TEXT NOT NULL DEFAULT '';

UPDATE rm_metric_points SET site_id = name WHERE kind = 'dwell';
UPDATE rm_operation_starts SET site_id = operation_id WHERE kind = 'dwell';
UPDATE rm_metric_points SET site_id = coalesce((
        SELECT json_extract(t.data, '$.siteId') FROM rm_timeline t
        WHERE t.tenant_id = rm_metric_points.tenant_id AND t.entity_id = rm_metric_points.entity_id
        AND t.version = rm_metric_points.version), '')
    WHERE kind = 'milestone';
-- An operation's start is the newest start of its operationId before it.
UPDATE rm_metric_points SET site_id = coalesce((
        SELECT nullif(json_extract(c.data, '$.siteId'), '') FROM rm_timeline c
        WHERE c.tenant_id = rm_metric_points.tenant_id AND c.entity_id = rm_metric_points.entity_id
        AND c.version = rm_metric_points.version), (
        SELECT json_extract(s.data, '$.siteId') FROM rm_timeline c
        JOIN rm_timeline s ON s.tenant_id = c.tenant_id AND s.entity_id = c.entity_id AND s.version < c.version
            AND s.event_type = 'OperationStarted' AND json_extract(s.data, '$.operationId') = json_extract(c.data, '$.operationId')
        WHERE c.tenant_id = rm_metric_points.tenant_id AND c.entity_id = rm_metric_points.entity_id
        AND c.version = rm_metric_points.version
        ORDER BY s.version DESC LIMIT 1), '')
    WHERE kind = 'operation';
-- An open operation's start is the newest start of its operationId the
-- metrics have applied.
UPDATE rm_operation_starts SET site_id = coalesce((
        SELECT json_extract(s.data, '$.siteId') FROM rm_timeline s
        JOIN rm_positions_metrics p ON p.tenant_id = s.tenant_id AND p.entity_id = s.entity_id AND s.version <= p.version
        WHERE s.tenant_id = rm_operation_starts.tenant_id AND s.entity_id = rm_operation_starts.entity_id
        AND s.event_type = 'OperationStarted' AND json_extract(s.data, '$.operationId') = rm_operation_starts.operation_id
        ORDER BY s.version DESC LIMIT 1), '')
    WHERE kind = 'operation';

INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value, site_id)
    SELECT t.tenant_id, t.entity_id, t.version, 'exception', e.entity_type, json_extract(t.data, '$.code'), '', t.occurred_at, 1, ''
    FROM rm_timeline t
    JOIN rm_positions_metrics p ON p.tenant_id = t.tenant_id AND p.entity_id = t.entity_id AND t.version <= p.version
    JOIN rm_entities e ON e.tenant_id = t.tenant_id AND e.entity_id = t.entity_id
    WHERE t.event_type = 'ExceptionRaised'
    ON CONFLICT DO NOTHING;

-- +goose Down
DROP TABLE IF EXISTS rm_entities_rebuild;
DROP TABLE IF EXISTS rm_positions_entities_rebuild;
DROP TABLE IF EXISTS rm_metric_points_rebuild;
DROP TABLE IF EXISTS rm_operation_starts_rebuild;
DROP TABLE IF EXISTS rm_positions_metrics_rebuild;
DELETE FROM projection_checkpoints WHERE name IN ('entities@rebuild', 'performance-metrics@rebuild');
DELETE FROM rm_metric_points WHERE kind = 'exception';
ALTER TABLE rm_metric_points DROP COLUMN site_id;
ALTER TABLE rm_operation_starts DROP COLUMN site_id;
-- A rebuild switched in names the index with "_rebuild" (see CreateShadow).
DROP INDEX IF EXISTS rm_entities_parent;
DROP INDEX IF EXISTS rm_entities_parent_rebuild;
ALTER TABLE rm_entities DROP COLUMN parent_id;
