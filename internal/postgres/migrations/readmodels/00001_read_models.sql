-- +goose Up
-- Each projection's position in the global log, moved in the same
-- transaction as its read models (compare-and-set: exactly-once effects).
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    tx_id      xid8        NOT NULL DEFAULT '0',
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- EntityTimelineProjection: an entity's events by occurredAt, then version.
CREATE TABLE rm_timeline (
    tenant_id   text        NOT NULL,
    entity_id   text        NOT NULL,
    version     bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    data        json        NOT NULL,
    metadata    json        NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
);
CREATE INDEX rm_timeline_order ON rm_timeline (tenant_id, entity_id, occurred_at, version);

-- Entity current state: the folded aggregate (state) and its view.
CREATE TABLE rm_entities (
    tenant_id   text        NOT NULL,
    entity_id   text        NOT NULL,
    entity_type text        NOT NULL,
    status      text        NOT NULL,
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL,
    state       json        NOT NULL,
    view        json        NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);
CREATE INDEX rm_entities_type ON rm_entities (tenant_id, entity_type, entity_id);
CREATE INDEX rm_entities_status ON rm_entities (tenant_id, status, entity_id);

-- PerformanceMetricsProjection: operational_performance points, and the
-- starts of operations not yet completed.
CREATE TABLE rm_operation_starts (
    tenant_id    text        NOT NULL,
    entity_id    text        NOT NULL,
    operation_id text        NOT NULL,
    operation    text        NOT NULL,
    started_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, operation_id)
);
CREATE TABLE rm_metric_points (
    tenant_id   text             NOT NULL,
    entity_id   text             NOT NULL,
    version     bigint           NOT NULL,
    kind        text             NOT NULL, -- operation (duration_seconds) | milestone (delay_seconds)
    entity_type text             NOT NULL,
    name        text             NOT NULL, -- the operation or milestone
    outcome     text             NOT NULL,
    occurred_at timestamptz      NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
);
CREATE INDEX rm_metric_points_query ON rm_metric_points (tenant_id, kind, occurred_at);

-- +goose Down
DROP TABLE rm_metric_points;
DROP TABLE rm_operation_starts;
DROP TABLE rm_entities;
DROP TABLE rm_timeline;
DROP TABLE projection_checkpoints;
