-- +goose Up
-- The events table partitioned by recorded_at (native range partitioning), so
-- that retention drops whole partitions instead of deleting rows.
--
-- A partitioned table's unique constraints must include the partition key,
-- so the two guarantees the old table's unique indexes gave move:
--   * versions: an append takes its stream's row in `streams` FOR UPDATE (or
--     creates it, under that table's primary key) and numbers its events
--     from the row's version, so two appends never take one version. Each
--     partition also keeps a unique (tenant_id, stream_id, version) index:
--     stream reads, and a guard within the partition.
--   * idempotency: event ids are unique per tenant in event_ids, a narrow
--     unpartitioned table written in the same statement as the events and
--     trimmed with them (retention, erasure). Its row leads a lookup to the
--     event's partition (recorded_at) and stream index.
--
-- An existing table is converted in place, without copying its events: it
-- becomes the partition events_legacy for everything recorded before the
-- conversion (keeping its own indexes), and later partitions, one per
-- EventStore.PartitionPeriod, are created by the service ahead of time. The
-- conversion fills event_ids from the existing rows and checks the legacy
-- table against its range: both read every row once, under a lock that makes
-- appends wait (README, "Partitioned event store"). Retention trims the
-- legacy partition row by row and drops it whole once all of it is old enough.
CREATE SEQUENCE event_positions AS bigint;
SELECT setval('event_positions', last_value, is_called) FROM events_position_seq;

LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
ALTER TABLE events RENAME TO events_legacy;
ALTER INDEX events_log RENAME TO events_legacy_log;
ALTER TABLE events_legacy ALTER COLUMN position DROP IDENTITY;

CREATE TABLE events (
    position       bigint      NOT NULL DEFAULT nextval('event_positions'),
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
    recorded_at    timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (recorded_at);
ALTER SEQUENCE event_positions OWNED BY events.position;
-- The global-log cursor, on every partition (the legacy table's is attached).
CREATE INDEX events_log ON events (tx_id, position);

-- Partitions by name and range (from_at NULL: unbounded below), kept by the
-- service (postgres.Store) as it creates and drops them.
CREATE TABLE event_partitions (
    name    text PRIMARY KEY,
    from_at timestamptz,
    to_at   timestamptz NOT NULL UNIQUE
);
-- The legacy partition ends now; the next one, created here so that appends
-- (of any replica) never meet a time without a partition, runs to the start
-- of the next month (UTC), from where the service continues by its period.
-- +goose StatementBegin
DO $$
DECLARE
    next_month timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 month';
    first text := 'events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', now());
    INSERT INTO event_partitions (name, from_at, to_at) VALUES ('events_legacy', NULL, now());
    EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', first, now(), next_month);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (tenant_id, stream_id, version)', first || '_stream', first);
    INSERT INTO event_partitions (name, from_at, to_at) VALUES (first, now(), next_month);
END $$;
-- +goose StatementEnd

CREATE TABLE event_ids (
    tenant_id   text        NOT NULL,
    event_id    uuid        NOT NULL,
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
INSERT INTO event_ids (tenant_id, event_id, stream_id, version, recorded_at)
    SELECT tenant_id, event_id, stream_id, version, recorded_at FROM events_legacy;

-- +goose Down
-- Back to one table: the partitions' rows are copied into it.
CREATE TABLE events_single (LIKE events INCLUDING DEFAULTS);
INSERT INTO events_single SELECT * FROM events;
DROP TABLE event_ids;
DROP TABLE event_partitions;
ALTER TABLE events_single ALTER COLUMN position DROP DEFAULT;
DROP TABLE events;
DROP SEQUENCE IF EXISTS event_positions;
ALTER TABLE events_single RENAME TO events;
ALTER TABLE events ALTER COLUMN position ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('events', 'position'), coalesce(max(position), 0) + 1, false) FROM events;
ALTER TABLE events ADD PRIMARY KEY (tenant_id, stream_id, version);
CREATE UNIQUE INDEX events_event_id ON events (tenant_id, event_id);
CREATE INDEX events_log ON events (tx_id, position);
