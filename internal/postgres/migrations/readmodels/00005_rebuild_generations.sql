-- +goose Up
-- Rebuilds without read downtime: a rebuild builds a new generation of a
-- projection's tables beside the live ones (rm_*_rebuild) and swaps them in
-- by renaming, in one transaction. So each projection owns the versions of
-- the streams it has applied, in a table of its own.
CREATE TABLE rm_positions_timeline (
    tenant_id text   NOT NULL,
    entity_id text   NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);
CREATE TABLE rm_positions_entities (LIKE rm_positions_timeline INCLUDING ALL);
CREATE TABLE rm_positions_metrics (LIKE rm_positions_timeline INCLUDING ALL);
INSERT INTO rm_positions_timeline SELECT tenant_id, entity_id, version FROM rm_stream_positions WHERE projection = 'timeline';
INSERT INTO rm_positions_entities SELECT tenant_id, entity_id, version FROM rm_stream_positions WHERE projection = 'entities';
INSERT INTO rm_positions_metrics SELECT tenant_id, entity_id, version FROM rm_stream_positions WHERE projection = 'performance-metrics';
DROP TABLE rm_stream_positions;

-- The generation of a projection's read models: one more at each rebuild
-- switched in (response caches keep generations apart).
ALTER TABLE projection_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;

-- Retention horizons: a read model keeps no row of an event recorded
-- before its horizon (the timeline's is the last retention cutoff).
CREATE TABLE rm_horizons (
    name            text        PRIMARY KEY,
    recorded_before timestamptz NOT NULL
);

-- +goose Down
DROP TABLE rm_horizons;
ALTER TABLE projection_checkpoints DROP COLUMN generation;
CREATE TABLE rm_stream_positions (
    projection text   NOT NULL,
    tenant_id  text   NOT NULL,
    entity_id  text   NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (projection, tenant_id, entity_id)
);
INSERT INTO rm_stream_positions SELECT 'timeline', tenant_id, entity_id, version FROM rm_positions_timeline;
INSERT INTO rm_stream_positions SELECT 'entities', tenant_id, entity_id, version FROM rm_positions_entities;
INSERT INTO rm_stream_positions SELECT 'performance-metrics', tenant_id, entity_id, version FROM rm_positions_metrics;
DROP TABLE rm_positions_metrics;
DROP TABLE rm_positions_entities;
DROP TABLE rm_positions_timeline;
