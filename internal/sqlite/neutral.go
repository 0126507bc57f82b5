package sqlite

import (
	"context"
	"database/sql"

	"github.com/tlm/tracktrace/internal/readmodel"
)

// execQuerier is what *sql.DB and *sql.Tx share.
type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// neutralSQL runs readmodel.SQL statements: SQLite takes '?' as they are.
// Statements go to write, queries to read (the same handle in a
// transaction).
type neutralSQL struct{ write, read execQuerier }

func (n neutralSQL) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := n.write.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, classify(err)
	}
	affected, err := res.RowsAffected()
	return affected, classify(err)
}

func (n neutralSQL) Query(ctx context.Context, query string, args ...any) (readmodel.Rows, error) {
	rows, err := n.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close()     { r.Rows.Close() }
func (r sqlRows) Err() error { return classify(r.Rows.Err()) }

// SQL runs engine-neutral statements outside a transaction.
func (m *readModels) SQL() readmodel.SQL { return neutralSQL{write: m.store.write, read: m.store.read} }

// SQL runs engine-neutral statements in the transaction.
func (t *rmTx) SQL() readmodel.SQL { return neutralSQL{write: t.tx, read: t.tx} }
