-- +goose Up
-- The highest version of each stream a projection has applied: handlers are
-- idempotent per (stream, version) whatever feeds them (the global log, or a
-- Kafka partition that redelivers after a crash).
CREATE TABLE rm_stream_positions (
    projection text   NOT NULL,
    tenant_id  text   NOT NULL,
    entity_id  text   NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (projection, tenant_id, entity_id)
);

-- +goose Down
DROP TABLE rm_stream_positions;
