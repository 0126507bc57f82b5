-- +goose Up
-- Alert rules (/api/v1/rules): a tenant's rules, each a kind (stale,
-- delay, dwell) and a definition (scope and thresholds) as JSON the API
-- writes. A replaced definition moves the generation, so that what was
-- evaluated under the old one can be told apart. Times are unix
-- microseconds.
CREATE TABLE alert_rules (
    tenant_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    definition TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The durable schedule of the time-based rules: one pending check per
-- (tenant, entity, rule, key), due at due_at, with the event that caused
-- it (a newer cause replaces an older one) and what the evaluator needs
-- then (payload, JSON). Claimed in due order from the second index.
CREATE TABLE alert_due (
    tenant_id      TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    rule_id        TEXT    NOT NULL,
    check_key      TEXT    NOT NULL,
    due_at         INTEGER NOT NULL,
    cause_event_id TEXT    NOT NULL,
    cause_position INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, rule_id, check_key)
);
CREATE INDEX alert_due_order ON alert_due (due_at, tenant_id, entity_id, rule_id, check_key);

-- +goose Down
DROP TABLE alert_due;
DROP TABLE alert_rules;
