package postgres

import (
	"context"
	"errors"
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
// and every reader has passed. Whole partitions of the events table go
// first: from the oldest, each partition whose range ends by `before` and
// every row of which may go is detached and dropped (its rows are counted,
// not deleted one by one). The rows that may go in the partitions after
// them are deleted as before; their event ids go from event_ids with them.
func (s *Store) TrimEvents(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, error) {
	dropped, keptFrom, err := s.dropPartitions(ctx, before, below, schemaVersion, dryRun)
	if err != nil {
		return dropped, err
	}
	pred := `FROM events e WHERE e.recorded_at < $1 AND e.recorded_at >= $5 AND (e.tx_id, e.position) <= ($2::text::xid8, $3::int8)
		AND ` + coveredBySnapshot("$4")
	args := []any{before, strconv.FormatUint(below.TxID, 10), below.Position, schemaVersion, keptFrom}
	var n int64
	if dryRun {
		err = s.pool.QueryRow(ctx, "SELECT count(*) "+pred, args...).Scan(&n)
	} else {
		err = s.pool.QueryRow(ctx, `WITH d AS (DELETE `+pred+` RETURNING e.tenant_id, e.event_id),
				k AS (DELETE FROM event_ids k USING d WHERE k.tenant_id = d.tenant_id AND k.event_id = d.event_id)
			SELECT count(*) FROM d`, args...).Scan(&n)
	}
	if err != nil {
		return dropped, fmt.Errorf("postgres: trim events: %w", classify(err))
	}
	return dropped + n, nil
}

// coveredBySnapshot is a condition on an event e: at or below its stream's
// newest snapshot of the schema version in the parameter schema ("$4").
func coveredBySnapshot(schema string) string {
	return `e.version <= (SELECT max(sn.version) FROM snapshots sn
		WHERE sn.tenant_id = e.tenant_id AND sn.stream_id = e.stream_id AND sn.schema_version = ` + schema + `)`
}

// dropPartitions detaches and drops (or, dry, counts) the oldest partitions
// of events whose range ends by `before` and whose every event is covered by
// a snapshot and passed by every reader; it stops at the first that keeps
// one. It returns the events dropped and where the partitions left begin.
func (s *Store) dropPartitions(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, time.Time, error) {
	var keptFrom time.Time // the zero time: below every partition
	rows, _ := s.pool.Query(ctx, `SELECT name, to_at FROM event_partitions WHERE to_at <= $1 ORDER BY to_at`, before)
	type partition struct {
		name string
		to   time.Time
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partition, error) {
		var p partition
		return p, r.Scan(&p.name, &p.to)
	})
	if err != nil {
		return 0, keptFrom, fmt.Errorf("postgres: trim events: partitions: %w", classify(err))
	}
	var dropped int64
	for _, p := range parts {
		table := pgx.Identifier{p.name}.Sanitize()
		var total, kept int64
		// One read of the partition, without a transaction id: it holds
		// no follower back, however long it takes.
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ((e.tx_id, e.position) <= ($1::text::xid8, $2::int8)
				AND coalesce(`+coveredBySnapshot("$3")+`, false))) FROM `+table+` e`,
				strconv.FormatUint(below.TxID, 10), below.Position, schemaVersion).Scan(&total, &kept)
		})
		if err != nil {
			return dropped, keptFrom, fmt.Errorf("postgres: trim events: check %s: %w", p.name, classify(err))
		}
		if kept > 0 {
			break
		}
		if !dryRun {
			if err := s.dropPartition(ctx, p.name); err != nil {
				return dropped, keptFrom, err
			}
		}
		dropped += total
		keptFrom = p.to
	}
	return dropped, keptFrom, nil
}

// idBatch is the number of event ids forgotten in one transaction.
const idBatch = 10000

// dropPartition forgets a partition's event ids, then detaches and drops
// it. Its events were all read and covered: no transaction writes to a range
// that old.
func (s *Store) dropPartition(ctx context.Context, name string) error {
	table := pgx.Identifier{name}.Sanitize()
	// In batches along the log index, each a short transaction: one long
	// one would hold the followers back (see HorizonHolder). b.tx_id, not
	// tx_id: that would order by the output column, the text ("99" > "100").
	after, pos := "0", int64(0)
	for {
		err := s.pool.QueryRow(ctx, `WITH b AS (SELECT tenant_id, event_id, tx_id, position FROM `+table+`
				WHERE (tx_id, position) > ($1::text::xid8, $2::int8) ORDER BY tx_id, position LIMIT $3),
			d AS (DELETE FROM event_ids k USING b WHERE k.tenant_id = b.tenant_id AND k.event_id = b.event_id)
			SELECT tx_id::text, position FROM b ORDER BY b.tx_id DESC, position DESC LIMIT 1`, after, pos, idBatch).Scan(&after, &pos)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("postgres: trim events: forget the ids of %s: %w", name, classify(err))
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Detaching waits for the queries reading events; appends would
		// queue behind it meanwhile. Give up soon: the next run tries again.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE events DETACH PARTITION `+table); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+table); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM event_partitions WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: trim events: drop %s: %w", name, classify(err))
	}
	return nil
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
