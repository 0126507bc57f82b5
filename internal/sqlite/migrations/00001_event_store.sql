-- +goose Up
-- Streams: one row per (tenant, stream), the optimistic-concurrency anchor.
CREATE TABLE streams (
    tenant_id   TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL, -- unix microseconds
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
) WITHOUT ROWID;

-- Events: the global log. AUTOINCREMENT so that a position is never reused,
-- even after the newest events were erased: readers' cursors stay valid.
-- SQLite has one writer, so position order is commit order.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL, -- unix microseconds
    recorded_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_stream_version ON events (tenant_id, stream_id, version);
CREATE UNIQUE INDEX events_event_id ON events (tenant_id, event_id);

CREATE TABLE snapshots (
    tenant_id      TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream_id, version)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE snapshots;
DROP TABLE events;
DROP TABLE streams;
