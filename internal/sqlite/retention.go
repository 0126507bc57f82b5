package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/retention"
)

var _ retention.EventStore = (*Store)(nil)

// StreamsToSnapshot lists streams whose newest snapshot is older than
// snapshotsBefore, or with events recorded before eventsBefore that no
// snapshot covers.
func (s *Store) StreamsToSnapshot(ctx context.Context, snapshotsBefore, eventsBefore time.Time, limit int) ([]retention.StreamRef, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT st.tenant_id, st.stream_id FROM streams st
		LEFT JOIN (SELECT tenant_id, stream_id, max(version) AS version FROM snapshots GROUP BY tenant_id, stream_id) s
			ON s.tenant_id = st.tenant_id AND s.stream_id = st.stream_id
		LEFT JOIN snapshots n ON n.tenant_id = s.tenant_id AND n.stream_id = s.stream_id AND n.version = s.version
		WHERE n.created_at < ?
		   OR EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id
		              AND e.version > coalesce(s.version, 0) AND e.recorded_at < ?)
		LIMIT ?`, micros(snapshotsBefore), micros(eventsBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: streams to snapshot: %w", classify(err))
	}
	defer rows.Close()
	var out []retention.StreamRef
	for rows.Next() {
		var r retention.StreamRef
		if err := rows.Scan(&r.Tenant, &r.StreamID); err != nil {
			return nil, fmt.Errorf("sqlite: streams to snapshot: %w", classify(err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: streams to snapshot: %w", classify(err))
	}
	return out, nil
}

// micros turns a time into the stored unix microseconds; the zero time
// (a bound that matches nothing) becomes the smallest value.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return t.UnixMicro()
}

// PruneSnapshots deletes (or counts) superseded snapshots created before `before`.
func (s *Store) PruneSnapshots(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	pred := `FROM snapshots WHERE created_at < ? AND EXISTS (SELECT 1 FROM snapshots n
		WHERE n.tenant_id = snapshots.tenant_id AND n.stream_id = snapshots.stream_id AND n.version > snapshots.version)`
	return countOrDelete(ctx, s.read, s.write, "prune snapshots", pred, dryRun, micros(before))
}

// TrimEvents deletes (or counts) old events that a current snapshot covers
// and every reader has passed.
func (s *Store) TrimEvents(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, error) {
	pred := `FROM events WHERE recorded_at < ? AND position <= ?
		AND version <= (SELECT max(sn.version) FROM snapshots sn
			WHERE sn.tenant_id = events.tenant_id AND sn.stream_id = events.stream_id AND sn.schema_version = ?)`
	return countOrDelete(ctx, s.read, s.write, "trim events", pred, dryRun, micros(before), below.Position, schemaVersion)
}

func countOrDelete(ctx context.Context, read, write *sql.DB, what, pred string, dryRun bool, args ...any) (int64, error) {
	var n int64
	var err error
	if dryRun {
		err = read.QueryRowContext(ctx, "SELECT count(*) "+pred, args...).Scan(&n)
	} else {
		var res sql.Result
		if res, err = write.ExecContext(ctx, "DELETE "+pred, args...); err == nil {
			n, err = res.RowsAffected()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", what, classify(err))
	}
	return n, nil
}

// TrimKeys deletes (or counts) idempotency keys bound before `before`.
func (m *readModels) TrimKeys(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	return countOrDelete(ctx, m.store.read, m.store.write, "trim idempotency keys",
		`FROM idempotency_keys WHERE created_at < ?`, dryRun, micros(before))
}
