-- +goose Up
-- Keys every replica serving the read models shares, made once by the first
-- to ask (for example the key that authenticates list cursors).
CREATE TABLE rm_secrets (
    name  text  NOT NULL PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE rm_secrets;
