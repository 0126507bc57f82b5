-- +goose Up
-- Each tenant's sites (/api/v1/sites/{siteId}): a name and a GeoJSON
-- geometry (a circle or polygon) the API validated. Times are unix
-- microseconds.
CREATE TABLE sites (
    tenant_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    geometry   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- +goose Down
DROP TABLE sites;
