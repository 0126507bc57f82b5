package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The store's hot statements, prepared once per connection. Parsing SQL
// (sqlite3_prepare_v2) cost more than running these small statements: the
// driver prepares and finalizes every statement run through Exec or Query,
// so the mapping of EPCIS events onto entities (a stream lookup and three
// writes per entity) spent most of its time in SQLite's parser.
const (
	sqlStreamHead  = `SELECT version, entity_type, incarnation FROM streams WHERE tenant_id = ? AND stream_id = ?`
	sqlInsertEvent = `INSERT INTO events
		(tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING position`
	sqlInsertStream = `INSERT INTO streams (tenant_id, stream_id, entity_type, version, created_at, updated_at, incarnation)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlUpdateStream = `UPDATE streams SET version = ?, updated_at = ? WHERE tenant_id = ? AND stream_id = ?`
	sqlSavepoint    = `SAVEPOINT append`
	sqlRollbackTo   = `ROLLBACK TO append`
	sqlRelease      = `RELEASE append`

	sqlLoadHead = `SELECT s.incarnation, sn.version, sn.schema_version, sn.state, sn.created_at
		FROM streams s LEFT JOIN snapshots sn ON sn.tenant_id = s.tenant_id AND sn.stream_id = s.stream_id
			AND sn.incarnation = s.incarnation
			AND sn.version = (SELECT max(version) FROM snapshots x WHERE x.tenant_id = s.tenant_id
				AND x.stream_id = s.stream_id AND x.incarnation = s.incarnation)
		WHERE s.tenant_id = ? AND s.stream_id = ?`
	sqlLoadEvents = `SELECT ` + eventColumns + ` FROM events e
		WHERE e.tenant_id = ? AND e.stream_id = ? AND e.version >= ? ORDER BY e.version LIMIT ?`
)

// writeSQL are the statements of the writer's transactions (appends), readSQL
// those of the read pool's (stream loads).
var (
	writeSQL = []string{sqlStreamHead, sqlInsertEvent, sqlInsertStream, sqlUpdateStream, sqlSavepoint, sqlRollbackTo, sqlRelease}
	readSQL  = []string{sqlLoadHead, sqlLoadEvents}
)

// prepared holds statements prepared on a handle. database/sql prepares a
// statement again on each connection of the pool the first time it runs
// there, and keeps it for the connection's life.
type prepared map[string]*sql.Stmt

// prepare prepares queries on db. It runs in Open, after the migrations
// (the tables must exist) and before the writer starts: preparing on the
// one write connection while a transaction holds it would wait forever.
func prepare(ctx context.Context, db *sql.DB, queries []string) (prepared, error) {
	p := make(prepared, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("sqlite: prepare: %w", err), p.close())
		}
		p[q] = st
	}
	return p, nil
}

func (p prepared) close() error {
	var errs []error
	for _, st := range p {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// txStatements are prepared statements bound to one transaction, each
// bound the first time the transaction runs it.
type txStatements struct {
	tx    *sql.Tx
	all   prepared
	bound map[string]*sql.Stmt
}

func (p prepared) in(tx *sql.Tx) *txStatements {
	return &txStatements{tx: tx, all: p, bound: make(map[string]*sql.Stmt, len(p))}
}

// stmt returns the transaction's statement of query, which must be one
// of the prepared ones.
func (t *txStatements) stmt(ctx context.Context, query string) *sql.Stmt {
	st, ok := t.bound[query]
	if !ok {
		st = t.tx.StmtContext(ctx, t.all[query])
		t.bound[query] = st
	}
	return st
}

func (t *txStatements) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.stmt(ctx, query).ExecContext(ctx, args...)
}

func (t *txStatements) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.stmt(ctx, query).QueryRowContext(ctx, args...)
}

func (t *txStatements) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.stmt(ctx, query).QueryContext(ctx, args...)
}
