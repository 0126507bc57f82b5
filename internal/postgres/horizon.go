package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// maxWaitingCounted bounds the count of events a held horizon keeps from
// readers: enough to say "many" without scanning a large backlog.
const maxWaitingCounted = 10000

// HorizonHolder returns the transaction that holds the global log's read
// horizon back (see ReadAll): of every transaction on the server that has
// taken a transaction id, running or prepared, in any database, the one
// with the oldest id. Transactions without an id (read-only ones, whatever
// their snapshot) do not hold it back. ok is false when none runs.
//
// Without pg_read_all_stats (or pg_monitor) the server hides the state and
// start of other roles' sessions; the holder is still found, without them.
func (s *Store) HorizonHolder(ctx context.Context) (h eventstore.HorizonHolder, ok bool, err error) {
	var started *time.Time
	err = s.pool.QueryRow(ctx, `WITH holder AS (
			SELECT pid, coalesce(application_name, '') AS app, coalesce(usename::text, '') AS usr,
				coalesce(state, '') AS state, coalesce(backend_type, '') AS backend_type, '' AS gid,
				backend_xid::text AS xid, xact_start AS started, age(backend_xid) AS xid_age
			FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
			UNION ALL
			SELECT 0, '', owner::text, 'prepared', '', gid, transaction::text, prepared, age(transaction)
			FROM pg_prepared_xacts
			ORDER BY xid_age DESC LIMIT 1)
		SELECT pid, app, usr, state, backend_type, gid, xid, started,
			(SELECT count(*) FROM (SELECT FROM events WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()) LIMIT $1) w)
		FROM holder`, maxWaitingCounted).
		Scan(&h.PID, &h.ApplicationName, &h.User, &h.State, &h.BackendType, &h.PreparedID, &h.XID, &started, &h.Waiting)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.HorizonHolder{}, false, nil
	}
	if err != nil {
		return eventstore.HorizonHolder{}, false, fmt.Errorf("postgres: horizon holder: %w", classify(err))
	}
	if started != nil {
		h.Started = started.UTC()
	}
	return h, true, nil
}
