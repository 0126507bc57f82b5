-- +goose Up
-- The read models, in the event store's file, mirroring PostgreSQL's
-- (internal/postgres/migrations/readmodels). Times are INTEGER unix
-- microseconds, JSON is TEXT.

-- Each projection's position in the global log, moved in the same
-- transaction as its read models (compare-and-set: exactly-once effects).
-- SQLite has one writer, so tx_id is always 0.
CREATE TABLE projection_checkpoints (
    name       TEXT    NOT NULL PRIMARY KEY,
    tx_id      INTEGER NOT NULL DEFAULT 0,
    position   INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- EntityTimelineProjection: an entity's events by occurredAt, then version.
CREATE TABLE rm_timeline (
    tenant_id   TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
) WITHOUT ROWID;
CREATE INDEX rm_timeline_order ON rm_timeline (tenant_id, entity_id, occurred_at, version);

-- Entity current state: the folded aggregate (state) and its view.
CREATE TABLE rm_entities (
    tenant_id   TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    view        TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
) WITHOUT ROWID;
CREATE INDEX rm_entities_type ON rm_entities (tenant_id, entity_type, entity_id);
CREATE INDEX rm_entities_status ON rm_entities (tenant_id, status, entity_id);

-- PerformanceMetricsProjection: operational_performance points, and the
-- starts of operations not yet completed.
CREATE TABLE rm_operation_starts (
    tenant_id    TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    operation_id TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, operation_id)
) WITHOUT ROWID;
CREATE TABLE rm_metric_points (
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
CREATE INDEX rm_metric_points_query ON rm_metric_points (tenant_id, kind, occurred_at);

-- +goose Down
DROP TABLE rm_metric_points;
DROP TABLE rm_operation_starts;
DROP TABLE rm_entities;
DROP TABLE rm_timeline;
DROP TABLE projection_checkpoints;
