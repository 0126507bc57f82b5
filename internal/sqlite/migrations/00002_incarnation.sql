-- +goose Up
-- Each creation of a stream is an incarnation: appends and snapshots state
-- the one they were decided or folded on, so that a stream erased and
-- created again is never taken for its predecessor. Existing streams take
-- their creation time, which no random incarnation of a later creation
-- will meet.
ALTER TABLE streams ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
UPDATE streams SET incarnation = created_at;
ALTER TABLE snapshots ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
UPDATE snapshots SET incarnation = coalesce(
    (SELECT s.incarnation FROM streams s WHERE s.tenant_id = snapshots.tenant_id AND s.stream_id = snapshots.stream_id), 0);

-- +goose Down
ALTER TABLE snapshots DROP COLUMN incarnation;
ALTER TABLE streams DROP COLUMN incarnation;
