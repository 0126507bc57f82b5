-- +goose Up
-- Where the log starts for a time (Store.CursorBefore): the smallest
-- position recorded at or after it. The clock may step back, so the
-- recording times are only nearly in position order, and a search by
-- position alone could miss an event; this index answers exactly, reading
-- only the entries recorded since (it covers the position, the rowid).
CREATE INDEX events_recorded_at ON events (recorded_at);

-- +goose Down
DROP INDEX events_recorded_at;
