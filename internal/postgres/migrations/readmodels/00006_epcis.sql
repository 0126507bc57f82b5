-- +goose Up
-- The EPCIS index (projection "epcis"): what the EPCIS query language
-- filters on, one row per stored EPCIS event, keyed like every read model
-- by its stream (a capture stream) and version. Identifiers and quantities
-- are in canonical form (GS1 Digital Link, full CBV URIs). Times are
-- bigint unix microseconds. Statements on these tables are written once
-- for both engines (readmodel.SQL).
CREATE TABLE rm_epcis_events (
    tenant_id     text    NOT NULL,
    entity_id     text    NOT NULL,
    version       bigint NOT NULL,
    position      bigint NOT NULL,
    event_id      text    NOT NULL,
    event_type    text    NOT NULL,
    action        text,
    event_time    bigint NOT NULL,
    record_time   bigint NOT NULL,
    biz_step      text,
    disposition   text,
    read_point    text,
    biz_location  text,
    declared_at   bigint,
    error_reason  text,
    data          text    NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, version)
);
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
    tenant_id text    NOT NULL,
    entity_id text    NOT NULL,
    version   bigint NOT NULL,
    role      text    NOT NULL,
    id        text    COLLATE "C" NOT NULL,
    ord       bigint NOT NULL,
    quantity  double precision,
    uom       text,
    PRIMARY KEY (tenant_id, entity_id, version, role, ord)
);
CREATE INDEX rm_epcis_ids_id ON rm_epcis_ids (tenant_id, id, role);

-- Every other value a query can filter on: family (bizTransaction, source,
-- destination, persistentDisposition, sensor, ilmd, field, inner, ...),
-- name (a type, or an extension field's full IRI) and the value as text,
-- number or time.
CREATE TABLE rm_epcis_fields (
    tenant_id text    NOT NULL,
    entity_id text    NOT NULL,
    version   bigint NOT NULL,
    ord       bigint NOT NULL,
    family    text    NOT NULL,
    name      text    NOT NULL,
    text      text    COLLATE "C",
    num       double precision,
    at        bigint,
    PRIMARY KEY (tenant_id, entity_id, version, ord)
);
CREATE INDEX rm_epcis_fields_text ON rm_epcis_fields (tenant_id, family, name, text);
CREATE INDEX rm_epcis_fields_num ON rm_epcis_fields (tenant_id, family, name, num);

CREATE TABLE rm_positions_epcis (
    tenant_id text    NOT NULL,
    entity_id text    NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);

-- Capture jobs (GET /epcis/capture), newest first by capture id (UUIDv7).
CREATE TABLE epcis_capture_jobs (
    tenant_id  text    NOT NULL,
    capture_id text    NOT NULL,
    created_at bigint NOT NULL,
    job        text    NOT NULL,
    PRIMARY KEY (tenant_id, capture_id)
);

-- Named queries (POST /epcis/queries).
CREATE TABLE epcis_queries (
    tenant_id  text    NOT NULL,
    name       text    NOT NULL,
    created_at bigint NOT NULL,
    definition text    NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- +goose Down
DROP TABLE epcis_queries;
DROP TABLE epcis_capture_jobs;
DROP TABLE rm_positions_epcis;
DROP TABLE rm_epcis_fields;
DROP TABLE rm_epcis_ids;
DROP TABLE rm_epcis_events;
