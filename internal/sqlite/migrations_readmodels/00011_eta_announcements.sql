-- +goose Up
-- The decisions on entities' ETA changes for tenants whose delay rules set
-- an etaDelta (alerting.EtaAnnouncer): the highest global position decided
-- per entity, and each change announced (EtaChanged) with the ETA it
-- announced (unix microseconds; NULL: withdrawn). A change at or before
-- decided_position is answered from here, so that publishing again or
-- replaying announces the same changes.
CREATE TABLE eta_decisions (
    tenant_id        TEXT    NOT NULL,
    entity_id        TEXT    NOT NULL,
    decided_position INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);

CREATE TABLE eta_announcements (
    tenant_id TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    eta       INTEGER,
    PRIMARY KEY (tenant_id, entity_id, position)
);

-- +goose Down
DROP TABLE eta_announcements;
DROP TABLE eta_decisions;
