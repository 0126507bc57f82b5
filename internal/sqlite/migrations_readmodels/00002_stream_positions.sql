-- +goose Up
-- The highest version of each stream a projection has applied: handlers are
-- idempotent per (stream, version) whatever feeds them (the global log, or a
-- Kafka partition that redelivers after a crash).
CREATE TABLE rm_stream_positions (
    projection TEXT    NOT NULL,
    tenant_id  TEXT    NOT NULL,
    entity_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (projection, tenant_id, entity_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE rm_stream_positions;
