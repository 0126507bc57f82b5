-- +goose Up
-- Each creation of a stream is an incarnation: appends and snapshots state
-- the one they were decided or folded on, so that a stream erased and
-- created again is never taken for its predecessor. Existing streams take
-- their creation time in microseconds, which no random incarnation of a
-- later creation will meet.
ALTER TABLE streams ADD COLUMN incarnation bigint NOT NULL DEFAULT 0;
UPDATE streams SET incarnation = (extract(epoch FROM created_at) * 1000000)::bigint;
ALTER TABLE snapshots ADD COLUMN incarnation bigint NOT NULL DEFAULT 0;
UPDATE snapshots sn SET incarnation = s.incarnation
    FROM streams s WHERE s.tenant_id = sn.tenant_id AND s.stream_id = sn.stream_id;

-- +goose Down
ALTER TABLE snapshots DROP COLUMN incarnation;
ALTER TABLE streams DROP COLUMN incarnation;
