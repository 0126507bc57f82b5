-- +goose Up
-- The request each Idempotency-Key was first used with (a hash of it), so
-- that the key sent again with another request is refused, by any process.
CREATE TABLE idempotency_keys (
    tenant_id       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    fingerprint     BLOB    NOT NULL,
    created_at      INTEGER NOT NULL, -- unix microseconds
    PRIMARY KEY (tenant_id, idempotency_key)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE idempotency_keys;
