-- +goose Up
-- The request each Idempotency-Key was first used with (a hash of it), so
-- that the key sent again with another request is refused, on any replica.
CREATE TABLE idempotency_keys (
    tenant_id       text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- +goose Down
DROP TABLE idempotency_keys;
