-- +goose Up
-- The entity list filtered by type and status at once walks the entities
-- of both, in id order, without reading one of the other type or status
-- (a rare combination read every entity of the status before).
CREATE INDEX rm_entities_type_status ON rm_entities (tenant_id, entity_type, status, entity_id);

-- +goose Down
DROP INDEX rm_entities_type_status;
