-- +goose Up
-- Where the alerts' evaluator found each entity against its tenant's
-- sites: one row per (tenant, entity, site) while the entity is inside or
-- an arrival is pending (outside with nothing pending is no row). state is
-- JSON: the hysteresis' state (inside, pending, pendingSince, lastFix) and,
-- while inside, the visit (the entering fix's event id, arrivedAt). Written
-- with the alerts' checkpoint in one transaction.
CREATE TABLE site_presence (
    tenant_id  TEXT  NOT NULL,
    entity_id  TEXT  NOT NULL,
    site_id    TEXT  NOT NULL,
    state      TEXT  NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, site_id)
) WITHOUT ROWID;
-- A deleted site's rows go with it.
CREATE INDEX site_presence_site ON site_presence (tenant_id, site_id);

-- +goose Down
DROP TABLE site_presence;
