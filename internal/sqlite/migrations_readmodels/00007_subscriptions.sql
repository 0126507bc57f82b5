-- +goose Up
-- Webhook subscriptions (/api/v1/subscriptions). The definition (url,
-- filter, batch size, start time, sealed secrets) is JSON the API writes;
-- status, reason, generation and replay change with it. The progress
-- columns are the dispatcher's: the checkpoint (a log cursor, "txid:pos")
-- and the run of failed attempts. Times are unix microseconds.
CREATE TABLE subscriptions (
    tenant_id       TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    definition      TEXT    NOT NULL,
    replay_id       TEXT    NOT NULL,
    replay          TEXT,
    cursor          TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    failing_since   INTEGER,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    last_error      TEXT    NOT NULL,
    delivered       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Each subscription's delivery log: one row per attempt.
CREATE TABLE subscription_deliveries (
    tenant_id       TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    attempted_at    INTEGER NOT NULL,
    webhook_id      TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    first_position  INTEGER NOT NULL,
    last_position   INTEGER NOT NULL,
    replay          INTEGER NOT NULL,
    status          INTEGER NOT NULL,
    latency_us      INTEGER NOT NULL,
    error           TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, attempted_at, webhook_id, attempt)
);
CREATE INDEX subscription_deliveries_age ON subscription_deliveries (attempted_at);

-- +goose Down
DROP TABLE subscription_deliveries;
DROP TABLE subscriptions;
