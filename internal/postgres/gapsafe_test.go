package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// insertInTx inserts one event (and its stream) in an open transaction and
// returns its position.
func insertInTx(t *testing.T, tx pgx.Tx, stream string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := tx.Exec(ctx, `INSERT INTO streams (tenant_id, stream_id, entity_type, version, created_at, updated_at)
		VALUES ('gap', $1, 'shipment', 1, now(), now())`, stream); err != nil {
		t.Fatal(err)
	}
	var pos int64
	err := tx.QueryRow(ctx, `INSERT INTO events (tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at)
		VALUES ('gap', $1, 1, $2, 'T', 1, '{}', '{}', now()) RETURNING position`, stream, uuid.New()).Scan(&pos)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func begin(t *testing.T, dsn string) pgx.Tx {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// The global-log reader never skips an event: transaction A takes a lower
// position than B, B commits first; the reader does not pass A's position
// until A commits, then returns both in position order. A rolled-back
// transaction does not stall it.
func TestReadAllNeverSkipsOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)

	read := func() []eventstore.Recorded {
		t.Helper()
		got, err := s.ReadAll(ctx, eventstore.Cursor{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Transactions of other tests on the same server also hold the reader
	// back (the snapshot's xmin is server-wide), so "returns" means "returns
	// once they are done".
	readUntil := func(after eventstore.Cursor, n int) []eventstore.Recorded {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := s.ReadAll(ctx, after, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	a, b := begin(t, dsn), begin(t, dsn)
	posA := insertInTx(t, a, "a")
	posB := insertInTx(t, b, "b")
	if posA >= posB {
		t.Fatalf("setup: A's position %d is not below B's %d", posA, posB)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// B is committed and its position is the highest, but A may still commit
	// below it: a reader polling now must not return B (it would then never
	// go back for A).
	for range 20 {
		if got := read(); len(got) != 0 {
			t.Fatalf("reader returned %d events (first at position %d) while A (position %d) is uncommitted", len(got), got[0].Position, posA)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if head, err := s.Head(ctx); err != nil || head != (eventstore.Cursor{}) {
		t.Fatalf("head = %v, %v while A is uncommitted; want the empty cursor", head, err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := readUntil(eventstore.Cursor{}, 2)
	if len(got) != 2 || got[0].Position != posA || got[1].Position != posB {
		t.Fatalf("after A commits: %d events %v, want positions %d then %d", len(got), positions(got), posA, posB)
	}

	// A transaction that rolls back holds the reader only while it runs.
	c := begin(t, dsn)
	insertInTx(t, c, "c")
	d := begin(t, dsn)
	posD := insertInTx(t, d, "d")
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if rest, _ := s.ReadAll(ctx, got[1].Cursor, 100); len(rest) != 0 {
		t.Fatalf("reader passed the running transaction C: %v", positions(rest))
	}
	if err := c.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	rest := readUntil(got[1].Cursor, 1)
	if len(rest) != 1 || rest[0].Position != posD {
		t.Fatalf("after C rolled back: %v; want D at %d", positions(rest), posD)
	}
}

func positions(rs []eventstore.Recorded) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Position
	}
	return out
}

// A subscription started from a time gets the events of a transaction that
// began at that time even when it commits after a later one: the cursor
// before the time is before every transaction still running, not only
// before the committed events recorded since.
func TestCursorBeforeWaitsForRunningTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)

	z := begin(t, dsn)
	posZ := insertInTx(t, z, "z")
	if err := z.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a := begin(t, dsn)
	posA := insertInTx(t, a, "a")
	var since time.Time
	if err := a.QueryRow(ctx, `SELECT now()`).Scan(&since); err != nil {
		t.Fatal(err)
	}
	b := begin(t, dsn)
	posB := insertInTx(t, b, "b")
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := s.CursorBefore(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Z, recorded before, may be after the cursor too (while some other
	// transaction of the server runs).
	want := []int64{posA, posB}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.ReadAll(ctx, c, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && got[0].Position == posZ {
			got = got[1:]
		}
		if slices.Equal(positions(got), want) {
			return
		}
		if len(got) > 2 || time.Now().After(deadline) {
			t.Fatalf("after the cursor %v before A's start: %v, want A's %d then B's %d", c, positions(got), posA, posB)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The head is the last event in the log's order, (transaction, position)
// as numbers: an event of transaction 100 is after one of transaction 99,
// though "99" sorts after "100" as text.
func TestHeadOrdersTransactionsAsNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)
	tx := begin(t, dsn)
	var last int64
	for i, txID := range []string{"99", "100"} {
		stream := "head-" + txID
		if _, err := tx.Exec(ctx, `INSERT INTO streams (tenant_id, stream_id, entity_type, version, created_at, updated_at)
			VALUES ('head', $1, 'shipment', 1, now(), now())`, stream); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO events (tx_id, tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at)
			VALUES ($1::text::xid8, 'head', $2, 1, $3, 'T', 1, '{}', '{}', now()) RETURNING position`, txID, stream, uuid.New()).Scan(&last); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	head, err := s.Head(ctx)
	if err != nil || head != (eventstore.Cursor{TxID: 100, Position: last}) {
		t.Fatalf("head = %+v, %v; want transaction 100, position %d", head, err, last)
	}
}
