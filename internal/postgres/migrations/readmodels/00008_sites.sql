-- +goose Up
-- Each tenant's sites (/api/v1/sites/{siteId}): a name and a GeoJSON
-- geometry (a circle or polygon) the API validated. Times are unix
-- microseconds. Ids are ordered bytewise (paging), as SQLite orders them.
CREATE TABLE sites (
    tenant_id  text    NOT NULL,
    id         text    COLLATE "C" NOT NULL,
    name       text    NOT NULL,
    geometry   text    NOT NULL,
    updated_at bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- +goose Down
DROP TABLE sites;
