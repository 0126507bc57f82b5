-- +goose Up
-- The EPCIS index (projection "epcis"): what the EPCIS query language
-- filters on, one row per stored EPCIS event, keyed like every read model
-- by its stream (a capture stream) and version. Identifiers and quantities
-- are in canonical form (GS1 Digital Link, full CBV URIs). Times are
-- INTEGER unix microseconds. Statements on these tables are written once
-- for both engines (readmodel.SQL).
CREATE TABLE rm_epcis_events (
    tenant_id     TEXT    NOT NULL,
    entity_id     TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    action        TEXT,
    event_time    INTEGER NOT NULL,
    record_time   INTEGER NOT NULL,
    biz_step      TEXT,
    disposition   TEXT,
    read_point    TEXT,
    biz_location  TEXT,
    declared_at   INTEGER,
    error_reason  TEXT,
    data          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
); -- a rowid table: its rows hold the event's JSON, too large for WITHOUT ROWID to pay
CREATE INDEX rm_epcis_events_time ON rm_epcis_events (tenant_id, event_time, position);
CREATE INDEX rm_epcis_events_record ON rm_epcis_events (tenant_id, record_time, position);
CREATE INDEX rm_epcis_events_id ON rm_epcis_events (tenant_id, event_id);
CREATE INDEX rm_epcis_events_location ON rm_epcis_events (tenant_id, biz_location, event_time);
CREATE INDEX rm_epcis_events_read_point ON rm_epcis_events (tenant_id, read_point, event_time);
CREATE INDEX rm_epcis_events_biz_step ON rm_epcis_events (tenant_id, biz_step, event_time);

-- The identifiers an event names, by role: epc (epcList), child
-- (childEPCs), parent (parentID), input, output, and the quantity classes
-- class, child_class, input_class, output_class with their quantity.
CREATE TABLE rm_epcis_ids (
    tenant_id TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    role      TEXT    NOT NULL,
    id        TEXT    NOT NULL,
    ord       INTEGER NOT NULL,
    quantity  REAL,
    uom       TEXT,
    PRIMARY KEY (tenant_id, entity_id, version, role, ord)
) WITHOUT ROWID;
CREATE INDEX rm_epcis_ids_id ON rm_epcis_ids (tenant_id, id, role);

-- Every other value a query can filter on: family (bizTransaction, source,
-- destination, persistentDisposition, sensor, ilmd, field, inner, ...),
-- name (a type, or an extension field's full IRI) and the value as text,
-- number or time.
CREATE TABLE rm_epcis_fields (
    tenant_id TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    ord       INTEGER NOT NULL,
    family    TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    text      TEXT,
    num       REAL,
    at        INTEGER,
    PRIMARY KEY (tenant_id, entity_id, version, ord)
) WITHOUT ROWID;
CREATE INDEX rm_epcis_fields_text ON rm_epcis_fields (tenant_id, family, name, text);
CREATE INDEX rm_epcis_fields_num ON rm_epcis_fields (tenant_id, family, name, num);

CREATE TABLE rm_positions_epcis (
    tenant_id TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
) WITHOUT ROWID;

-- Capture jobs (GET /epcis/capture), newest first by capture id (UUIDv7).
CREATE TABLE epcis_capture_jobs (
    tenant_id  TEXT    NOT NULL,
    capture_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    job        TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, capture_id)
) WITHOUT ROWID;

-- Named queries (POST /epcis/queries).
CREATE TABLE epcis_queries (
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    definition TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, name)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE epcis_queries;
DROP TABLE epcis_capture_jobs;
DROP TABLE rm_positions_epcis;
DROP TABLE rm_epcis_fields;
DROP TABLE rm_epcis_ids;
DROP TABLE rm_epcis_events;
