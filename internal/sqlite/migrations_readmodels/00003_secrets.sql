-- +goose Up
-- Keys every process serving the read models shares, made once by the first
-- to ask (for example the key that authenticates list cursors).
CREATE TABLE rm_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE rm_secrets;
