-- +goose Up
-- The decisions on entities' ETA changes for tenants whose delay rules set
-- an etaDelta (alerting.EtaAnnouncer): the highest global position decided
-- per entity, and each change announced (EtaChanged) with the ETA it
-- announced (unix microseconds; NULL: withdrawn). A change at or before
-- decided_position is answered from here, so that publishing again or
-- replaying announces the same changes.
CREATE TABLE eta_decisions (
    tenant_id        text   NOT NULL,
    entity_id        text   NOT NULL,
    decided_position bigint NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);

CREATE TABLE eta_announcements (
    tenant_id text   NOT NULL,
    entity_id text   NOT NULL,
    position  bigint NOT NULL,
    eta       bigint,
    PRIMARY KEY (tenant_id, entity_id, position)
);

-- +goose Down
DROP TABLE eta_announcements;
DROP TABLE eta_decisions;
