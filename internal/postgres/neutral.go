package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tlm/tracktrace/internal/readmodel"
)

// pgQuerier is what *pgxpool.Pool and pgx.Tx share.
type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// neutralSQL runs readmodel.SQL statements, their '?' placeholders
// rewritten to PostgreSQL's.
type neutralSQL struct{ q pgQuerier }

func (n neutralSQL) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := n.q.Exec(ctx, readmodel.Rebind(query), args...)
	if err != nil {
		return 0, classify(err)
	}
	return tag.RowsAffected(), nil
}

func (n neutralSQL) Query(ctx context.Context, query string, args ...any) (readmodel.Rows, error) {
	rows, err := n.q.Query(ctx, readmodel.Rebind(query), args...)
	if err != nil {
		return nil, classify(err)
	}
	return pgRows{rows}, nil
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Err() error { return classify(r.Rows.Err()) }

// SQL runs engine-neutral statements outside a transaction.
func (m *readModels) SQL() readmodel.SQL { return neutralSQL{m.pool} }

// SQL runs engine-neutral statements in the transaction.
func (t rmTx) SQL() readmodel.SQL { return neutralSQL{t.tx} }
