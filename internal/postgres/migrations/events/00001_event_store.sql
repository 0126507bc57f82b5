-- +goose Up
-- Streams: one row per (tenant, stream), locked by appends in key order.
CREATE TABLE streams (
    tenant_id   text        NOT NULL,
    stream_id   text        NOT NULL,
    entity_type text        NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);

-- Events: the global log and the outbox. Positions come from a sequence and
-- commit out of order, so readers follow (tx_id, position) and stop below the
-- oldest running transaction (see ReadAll). Three indexes, each earning its
-- place: stream reads and version uniqueness (the primary key), idempotency
-- by event id, and the global-log cursor.
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id      text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    schema_version int         NOT NULL,
    data           json        NOT NULL,
    metadata       json        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_id, version)
);
CREATE UNIQUE INDEX events_event_id ON events (tenant_id, event_id);
CREATE INDEX events_log ON events (tx_id, position);

CREATE TABLE snapshots (
    tenant_id      text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    schema_version int         NOT NULL,
    state          json        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_id, version)
);

-- +goose Down
DROP TABLE snapshots;
DROP TABLE events;
DROP TABLE streams;
