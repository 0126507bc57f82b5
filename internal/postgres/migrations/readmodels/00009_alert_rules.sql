-- +goose Up
-- Alert rules (/api/v1/rules): a tenant's rules, each a kind (stale,
-- delay, dwell) and a definition (scope and thresholds) as JSON the API
-- writes. A replaced definition moves the generation, so that what was
-- evaluated under the old one can be told apart. Times are unix
-- microseconds.
CREATE TABLE alert_rules (
    tenant_id  text    NOT NULL,
    id         text    NOT NULL,
    kind       text    NOT NULL,
    created_at bigint  NOT NULL,
    updated_at bigint  NOT NULL,
    generation bigint  NOT NULL,
    definition text    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The durable schedule of the time-based rules: one pending check per
-- (tenant, entity, rule, key), due at due_at, with the event that caused
-- it (a newer cause replaces an older one) and what the evaluator needs
-- then (payload, JSON). Claimed in due order from the second index.
CREATE TABLE alert_due (
    tenant_id      text    NOT NULL,
    entity_id      text    NOT NULL,
    rule_id        text    NOT NULL,
    check_key      text    NOT NULL,
    due_at         bigint  NOT NULL,
    cause_event_id text    NOT NULL,
    cause_position bigint  NOT NULL,
    payload        text    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, rule_id, check_key)
);
CREATE INDEX alert_due_order ON alert_due (due_at, tenant_id, entity_id, rule_id, check_key);

-- +goose Down
DROP TABLE alert_due;
DROP TABLE alert_rules;
