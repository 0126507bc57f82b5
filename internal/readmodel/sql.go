package readmodel

import (
	"context"
	"strings"
)

// SQL runs statements written once for every engine: standard SQL with
// '?' placeholders, which an engine rewrites to its own (see Rebind), and
// arguments of the types both drivers take alike (string, int64, float64,
// []byte, nil for NULL). Times are unix microseconds (int64); a nullable
// column is read into a sql.Null* value. The read models of capabilities
// whose queries are built from what a client asks (EPCIS) use it, so that
// the query builder exists once above the engines.
type SQL interface {
	// Exec runs a statement and returns the rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query. The caller closes the rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Rows is the result of SQL.Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Rebind rewrites the '?' placeholders of a statement to $1, $2, ...
// (PostgreSQL's). Statements given to SQL never put '?' in a literal.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		writeInt(&b, n)
	}
	return b.String()
}

func writeInt(b *strings.Builder, n int) {
	var d [20]byte
	i := len(d)
	for n >= 10 {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	d[i] = byte('0' + n)
	b.Write(d[i:])
}
