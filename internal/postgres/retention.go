package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/retention"
)

var (
	_ retention.EventStore = (*Store)(nil)
)

// StreamsToSnapshot lists streams whose newest snapshot is older than
// snapshotsBefore, or with events recorded before eventsBefore that no
// snapshot covers.
func (s *Store) StreamsToSnapshot(ctx context.Context, snapshotsBefore, eventsBefore time.Time, limit int) ([]retention.StreamRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT st.tenant_id, st.stream_id FROM streams st
		LEFT JOIN LATERAL (SELECT version, created_at FROM snapshots sn
			WHERE sn.tenant_id = st.tenant_id AND sn.stream_id = st.stream_id ORDER BY version DESC LIMIT 1) s ON true
		WHERE s.created_at < $1
		   OR EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id
		              AND e.version > coalesce(s.version, 0) AND e.recorded_at < $2)
		LIMIT $3`, snapshotsBefore, eventsBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: streams to snapshot: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (retention.StreamRef, error) {
		var s retention.StreamRef
		return s, r.Scan(&s.Tenant, &s.StreamID)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: streams to snapshot: %w", classify(err))
	}
	return out, nil
}

// PruneSnapshots deletes (or counts) superseded snapshots created before `before`.
func (s *Store) PruneSnapshots(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	pred := `FROM snapshots s WHERE s.created_at < $1 AND EXISTS (SELECT 1 FROM snapshots n
		WHERE n.tenant_id = s.tenant_id AND n.stream_id = s.stream_id AND n.version > s.version)`
	return countOrDelete(ctx, s.pool, "prune snapshots", pred, dryRun, before)
}

// TrimEvents deletes (or counts) old events that a current snapshot covers
// and every reader has passed.
func (s *Store) TrimEvents(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, error) {
	pred := `FROM events e WHERE e.recorded_at < $1 AND (e.tx_id, e.position) <= ($2::text::xid8, $3::int8)
		AND e.version <= (SELECT max(sn.version) FROM snapshots sn
			WHERE sn.tenant_id = e.tenant_id AND sn.stream_id = e.stream_id AND sn.schema_version = $4)`
	return countOrDelete(ctx, s.pool, "trim events", pred, dryRun, before, strconv.FormatUint(below.TxID, 10), below.Position, schemaVersion)
}

// countOrDelete counts (dry) or deletes the rows pred ("FROM t x WHERE …")
// selects.
func countOrDelete(ctx context.Context, pool *pgxpool.Pool, what, pred string, dryRun bool, args ...any) (int64, error) {
	var n int64
	var err error
	if dryRun {
		err = pool.QueryRow(ctx, "SELECT count(*) "+pred, args...).Scan(&n)
	} else {
		// "FROM t x WHERE ..." → "DELETE FROM t x WHERE ...".
		var tag interface{ RowsAffected() int64 }
		tag, err = pool.Exec(ctx, "DELETE "+pred, args...)
		if err == nil {
			n = tag.RowsAffected()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", what, classify(err))
	}
	return n, nil
}

// TrimKeys deletes (or counts) idempotency keys bound before `before`.
func (m *readModels) TrimKeys(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	return countOrDelete(ctx, m.pool, "trim idempotency keys", `FROM idempotency_keys k WHERE k.created_at < $1`, dryRun, before)
}
