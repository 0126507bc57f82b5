-- +goose Up
-- Positions and recording times for Store.CursorAt (the cursor of the event
-- at a global position: a subscription's start, an SSE Last-Event-ID) and
-- Store.CursorBefore (where the log starts for a time).
--
-- A BRIN index, not a B-tree: positions come from a sequence and
-- recorded_at is the transaction's start, so both grow with the table's
-- physical order (an insert-only heap, out of order only by the few
-- transactions in flight together). A range of 32 pages (256 kB) is
-- summarised by the smallest and largest value of each column, so a lookup
-- reads the summaries (kilobytes for millions of rows) and the few ranges
-- that can hold its value, while an append costs next to nothing: no
-- B-tree to descend and split for every row, where every index on this
-- table costs appends CPU per row (DESIGN §3). autosummarize summarises a
-- range as soon as appends have moved past it, rather than at the next
-- VACUUM: the ranges not summarised yet, all read by every lookup, stay
-- few. Declared on the partitioned table, it is built on every partition,
-- and on each new one with it.
--
-- Building it reads every partition once (no sort), under a lock that
-- makes appends wait meanwhile.
CREATE INDEX events_position_brin ON events USING brin (position, recorded_at)
    WITH (pages_per_range = 32, autosummarize = on);

-- +goose Down
DROP INDEX events_position_brin;
