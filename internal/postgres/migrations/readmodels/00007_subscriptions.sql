-- +goose Up
-- Webhook subscriptions (/api/v1/subscriptions). The definition (url,
-- filter, batch size, start time, sealed secrets) is JSON the API writes;
-- status, reason, generation and replay change with it. The progress
-- columns are the dispatcher's: the checkpoint (a log cursor, "txid:pos")
-- and the run of failed attempts. Times are unix microseconds.
CREATE TABLE subscriptions (
    tenant_id       text    NOT NULL,
    id              text    NOT NULL,
    created_at      bigint  NOT NULL,
    generation      bigint  NOT NULL,
    status          text    NOT NULL,
    reason          text    NOT NULL,
    definition      text    NOT NULL,
    replay_id       text    NOT NULL,
    replay          TEXT,
    cursor          text    NOT NULL,
    position        bigint  NOT NULL,
    failing_since   bigint ,
    attempts        bigint  NOT NULL,
    next_attempt_at bigint ,
    last_attempt_at bigint ,
    last_success_at bigint ,
    last_error      text    NOT NULL,
    delivered       bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Each subscription's delivery log: one row per attempt.
CREATE TABLE subscription_deliveries (
    tenant_id       text    NOT NULL,
    subscription_id text    NOT NULL,
    attempted_at    bigint  NOT NULL,
    webhook_id      text    NOT NULL,
    attempt         bigint  NOT NULL,
    events          bigint  NOT NULL,
    first_position  bigint  NOT NULL,
    last_position   bigint  NOT NULL,
    replay          bigint  NOT NULL,
    status          bigint  NOT NULL,
    latency_us      bigint  NOT NULL,
    error           text    NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, attempted_at, webhook_id, attempt)
);
CREATE INDEX subscription_deliveries_age ON subscription_deliveries (attempted_at);

-- +goose Down
DROP TABLE subscription_deliveries;
DROP TABLE subscriptions;
