// Package sqlite is the embedded engine of tracktrace: the event store and
// the read models in one SQLite file, through the pure-Go driver
// modernc.org/sqlite, in WAL mode with durable (synchronous=FULL) commits.
//
// SQLite has one writer. Appends go through eventstore.GroupCommit with one
// writer; this package's commit writes a batch in one transaction, so one
// fsync serves many appends, each under its own savepoint, so a failing
// append fails alone.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tlm/tracktrace/internal/eventstore"
)

var _ eventstore.Store = (*Store)(nil)

// maxBatchEvents bounds the events one group commit takes.
const maxBatchEvents = 20000

// Store is the SQLite event store.
type Store struct {
	path    string
	created bool    // Open created the file
	write   *sql.DB // one connection: SQLite has one writer
	read    *sql.DB // a pool of read-only connections (WAL readers do not block the writer)
	// writeStmts and readStmts are the hot statements, prepared once.
	writeStmts, readStmts prepared
	now                   func() time.Time

	committed eventstore.Signal
	// GroupCommit provides Append and AppendAll: appends queue to the writers.
	*eventstore.GroupCommit

	readConns      int
	stopOptimizing chan struct{}
	stopOnce       sync.Once
	optimizing     sync.WaitGroup
}

// Options tune a Store.
type Options struct {
	// ReadConns is the size of the read pool (default 8).
	ReadConns int
	// Now returns the current time (default time.Now); tests inject clocks.
	Now func() time.Time
	// OptimizeEvery is how often the planner's statistics are brought up
	// to date (PRAGMA optimize) while the store is open: a store that
	// grows from empty has none at open, and without them SQLite walks a
	// tenant's rows by primary key where a selective index exists (the
	// console's entity page at 100,000 entities: 150 ms instead of 2).
	// Default DefaultOptimizeEvery; negative: only at open.
	OptimizeEvery time.Duration
}

// DefaultOptimizeEvery is Options.OptimizeEvery's default. Optimizing
// analyzes only tables that grew much since their last analysis, each
// sampled, so a run that finds nothing to do costs a few table lookups.
const DefaultOptimizeEvery = time.Minute

// Open opens (creating when needed) the database named by dsn, a
// "file:path?query" or "sqlite:path?query" string, applies the migrations and
// starts the writer. Close releases it.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	path, query, err := splitDSN(dsn)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create directory of %s: %w", path, err)
		}
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pragmas, err := withDefaultPragmas(query)
	if err != nil {
		return nil, err
	}
	write, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	read, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(ON)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	s := &Store{path: path, write: write, read: read, now: opts.Now, created: created, readConns: opts.ReadConns}
	if err := s.Migrate(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	if err := s.Optimize(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	if s.writeStmts, err = prepare(ctx, write, writeSQL); err == nil {
		s.readStmts, err = prepare(ctx, read, readSQL)
	}
	if err != nil {
		return nil, errors.Join(err, s.writeStmts.close(), write.Close(), read.Close())
	}
	s.GroupCommit = eventstore.NewGroupCommit(s.commit, eventstore.GroupCommitOptions{
		Writers: 1, MaxBatchEvents: maxBatchEvents, Name: "sqlite"})
	s.stopOptimizing = make(chan struct{})
	if every := cmp.Or(opts.OptimizeEvery, DefaultOptimizeEvery); every > 0 {
		s.optimizing.Go(func() { s.optimizeEvery(every) })
	}
	return s, nil
}

// Optimize brings the planner's statistics up to date, as SQLite advises
// for long-lived connections: without them it walks a table by its
// primary key for an ORDER BY … LIMIT rather than a selective index (the
// entity list of one status read every entity of the tenant). Only tables
// that grew much since their last analysis are analyzed, each sampled
// (analysis_limit). A connection reads the statistics only with the
// schema, so when they changed the idle read connections are let go: the
// pool opens new ones, which plan with them (one still busy goes on with
// the old until it is let go the next time).
func (s *Store) Optimize(ctx context.Context) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: optimize: %w", err)
	}
	defer conn.Close()
	digest := func() string {
		var d string // no sqlite_stat1 yet reads as ""
		_ = conn.QueryRowContext(ctx, `SELECT coalesce(group_concat(tbl || idx || stat), '') FROM sqlite_stat1`).Scan(&d)
		return d
	}
	before := digest()
	for _, pragma := range []string{"PRAGMA analysis_limit=1000", "PRAGMA optimize=0x10002"} {
		if _, err := conn.ExecContext(ctx, pragma); err != nil {
			return fmt.Errorf("sqlite: %s: %w", pragma, err)
		}
	}
	if digest() != before {
		s.read.SetMaxIdleConns(0)
		s.read.SetMaxIdleConns(s.readConns)
	}
	return nil
}

// optimizeEvery runs Optimize every period until Close.
func (s *Store) optimizeEvery(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stopOptimizing:
			return
		case <-t.C:
			// Stale statistics slow queries down, they break none: a
			// failed run is tried again the next period. A run waits for
			// the writer, which may be busy for a while: it gets at
			// least a few seconds, however short the period.
			ctx, cancel := context.WithTimeout(context.Background(), max(period, 10*time.Second))
			_ = s.Optimize(ctx)
			cancel()
		}
	}
}

// defaultPragmas make the file durable (synchronous=FULL: a commit is on disk
// when Append returns) and concurrent (WAL, a busy timeout).
var defaultPragmas = []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"}

// withDefaultPragmas adds the default pragmas the user's query does not set
// itself. (The driver runs pragmas in its own order, so a default and the
// user's value for the same pragma must not both be given.)
func withDefaultPragmas(query string) (string, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sqlite: bad query in connection string: %w", err)
	}
	set := map[string]bool{}
	for _, p := range q["_pragma"] {
		name, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(p)), "(")
		name, _, _ = strings.Cut(name, "=")
		set[strings.TrimSpace(name)] = true
	}
	for _, p := range defaultPragmas {
		name, _, _ := strings.Cut(p, "(")
		if !set[name] {
			q.Add("_pragma", p)
		}
	}
	return q.Encode(), nil
}

// splitDSN turns "file:data/x.db?a=b" or "sqlite:data/x.db" into a path and
// the query string.
func splitDSN(dsn string) (path, query string, err error) {
	rest, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		rest, ok = strings.CutPrefix(dsn, "file:")
	}
	if !ok {
		return "", "", fmt.Errorf("sqlite: %q is not a file: or sqlite: connection string", dsn)
	}
	rest = strings.TrimPrefix(rest, "file:")
	path, query, _ = strings.Cut(rest, "?")
	if path == "" || path == ":memory:" || strings.HasPrefix(path, ":memory:") {
		return "", "", errors.New("sqlite: the event store needs a file; in-memory databases are not supported")
	}
	if _, err := url.ParseQuery(query); err != nil {
		return "", "", fmt.Errorf("sqlite: bad query in connection string: %w", err)
	}
	return path, query, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Created reports whether Open created the file: a new, empty database.
func (s *Store) Created() bool { return s.created }

// DB returns the write handle (its pool statistics are exported).
func (s *Store) DB() *sql.DB { return s.write }

// ReadDB returns the read-only pool.
func (s *Store) ReadDB() *sql.DB { return s.read }

// Close stops the writer, failing queued appends, and closes the database.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stopOptimizing) })
	s.optimizing.Wait()
	s.GroupCommit.Close()
	return errors.Join(s.writeStmts.close(), s.readStmts.close(), s.write.Close(), s.read.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// commit writes a group commit's batch in one transaction, so that one
// fsync serves every append of it, and each append fails alone.
//
// Most appends succeed, or fail before writing anything (a version
// conflict, a replay found by its stream's head or its first event's id):
// those need no savepoint. A savepoint per append is not free: SQLite
// copies each page an append first changes into the savepoint's journal,
// which was a third of the writer's time under the EPCIS mapping's appends
// of one event each. So the batch is written without savepoints first;
// only when an append fails after writing part of itself (or the database
// fails) is that transaction rolled back and the batch written again, each
// append under its own savepoint.
func (s *Store) commit(ctx context.Context, batch []eventstore.AppendRequest) []eventstore.Outcome {
	now := eventstore.NormalizeTime(s.now())
	outs, err := s.commitTx(ctx, batch, now, false)
	if errors.Is(err, errUndo) {
		outs, err = s.commitTx(ctx, batch, now, true)
	}
	if err != nil {
		for i := range outs {
			outs[i] = eventstore.Outcome{Err: fmt.Errorf("sqlite: commit append: %w", classify(err))}
		}
		return outs
	}
	s.committed.Notify()
	return outs
}

// errUndo stops a batch written without savepoints: an append must be
// taken back, and only a savepoint (or the whole transaction) can.
var errUndo = errors.New("an append must be undone")

// commitTx writes batch in one transaction, each append under a savepoint
// or (savepoints false) none, failing with errUndo where one was needed.
func (s *Store) commitTx(ctx context.Context, batch []eventstore.AppendRequest, now time.Time, savepoints bool) ([]eventstore.Outcome, error) {
	outs := make([]eventstore.Outcome, len(batch))
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return outs, err
	}
	defer tx.Rollback()
	st := s.writeStmts.in(tx)
	for i, r := range batch {
		if savepoints {
			if _, err := st.exec(ctx, sqlSavepoint); err != nil {
				return outs, err
			}
		}
		var undo bool
		outs[i].Result, undo, outs[i].Err = s.appendTx(ctx, st, r, now)
		if outs[i].Err != nil {
			outs[i].Err = fmt.Errorf("sqlite: append: %w", classify(outs[i].Err))
		}
		if !savepoints {
			if undo {
				return outs, errUndo
			}
			continue
		}
		if outs[i].Err != nil || outs[i].Result.Replayed {
			if _, err := st.exec(ctx, sqlRollbackTo); err != nil {
				return outs, err
			}
		}
		if _, err := st.exec(ctx, sqlRelease); err != nil {
			return outs, err
		}
	}
	return outs, tx.Commit()
}

// appendTx checks and writes one append inside the writer's transaction.
// undo reports that a failed or replayed append may have left something in
// the transaction (part of itself, or a failed statement of the database's
// own) that must be taken back before the transaction goes on; an append
// refused by its checks, or found to be a replay before its first write,
// leaves nothing.
func (s *Store) appendTx(ctx context.Context, st *txStatements, r eventstore.AppendRequest, now time.Time) (res eventstore.AppendResult, undo bool, err error) {
	var version, incarnation int64
	var entityType string
	err = st.queryRow(ctx, sqlStreamHead, r.Tenant, r.StreamID).Scan(&version, &entityType, &incarnation)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return eventstore.AppendResult{}, true, err
	}
	if replayable, err := r.Check(version, entityType, incarnation); err != nil {
		if !replayable {
			return eventstore.AppendResult{}, false, err
		}
		return s.resolve(ctx, st.tx, r, err, 0)
	}
	res = eventstore.AppendResult{StreamID: r.StreamID, Events: make([]eventstore.AppendedEvent, len(r.Events))}
	stmt := st.stmt(ctx, sqlInsertEvent)
	for i, e := range r.Events {
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			return eventstore.AppendResult{}, i > 0, err
		}
		v := version + int64(i) + 1
		var pos int64
		err = stmt.QueryRowContext(ctx, r.Tenant, r.StreamID, v, e.ID.String(), e.Type, e.SchemaVersion,
			string(e.Data), string(meta), e.OccurredAt.UnixMicro(), now.UnixMicro()).Scan(&pos)
		if isUniqueViolation(err) {
			// An event id is stored already: a replay, or a reuse of the
			// id. (A constraint failure ends its statement alone: before
			// the append's first write there is nothing to take back.)
			return s.resolve(ctx, st.tx, r, err, i)
		}
		if err != nil {
			return eventstore.AppendResult{}, true, err
		}
		res.Events[i] = eventstore.AppendedEvent{ID: e.ID, Version: v, Position: pos}
	}
	res.Version = version + int64(len(r.Events))
	res.Incarnation = incarnation
	if version == 0 {
		res.Incarnation = eventstore.NewIncarnation()
		_, err = st.exec(ctx, sqlInsertStream, r.Tenant, r.StreamID, r.EntityType, res.Version, now.UnixMicro(), now.UnixMicro(), res.Incarnation)
	} else {
		_, err = st.exec(ctx, sqlUpdateStream, res.Version, now.UnixMicro(), r.Tenant, r.StreamID)
	}
	if err != nil {
		return eventstore.AppendResult{}, true, err
	}
	return res, false, nil
}

// resolve decides a replayable failure by looking the request's event ids
// up. wrote is the number of the request's events it inserted in this
// transaction before failing: those the lookup finds are its own, not a
// replay's, and they must be undone whatever the answer.
func (s *Store) resolve(ctx context.Context, q querier, r eventstore.AppendRequest, failure error, wrote int) (eventstore.AppendResult, bool, error) {
	stored, err := lookup(ctx, q, r.Tenant, r.EventIDs())
	if err != nil {
		return eventstore.AppendResult{}, true, err
	}
	if wrote > 0 {
		own := make(map[uuid.UUID]bool, wrote)
		for _, e := range r.Events[:wrote] {
			own[e.ID] = true
		}
		stored = slices.DeleteFunc(stored, func(e eventstore.Recorded) bool { return own[e.ID] })
	}
	res, err := eventstore.Resolve(r, stored, failure)
	return res, wrote > 0, err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const eventColumns = `e.position, e.tenant_id, e.stream_id, e.version, e.event_id, e.event_type, e.schema_version,
	e.data, e.metadata, e.occurred_at, e.recorded_at`

func scanEvents(rows *sql.Rows, withEntityType bool) ([]eventstore.Recorded, error) {
	defer rows.Close()
	var out []eventstore.Recorded
	for rows.Next() {
		var r eventstore.Recorded
		var id, data, meta string
		var occurred, recorded int64
		dest := []any{&r.Position, &r.Tenant, &r.StreamID, &r.Version, &id, &r.Type, &r.SchemaVersion,
			&data, &meta, &occurred, &recorded}
		if withEntityType {
			dest = append(dest, &r.EntityType)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var err error
		if r.ID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("event at position %d: bad id: %w", r.Position, err)
		}
		if r.Metadata, err = eventstore.DecodeMetadata(meta); err != nil {
			return nil, fmt.Errorf("event at position %d: bad metadata: %w", r.Position, err)
		}
		r.Data = json.RawMessage(data)
		r.OccurredAt = time.UnixMicro(occurred).UTC()
		r.RecordedAt = time.UnixMicro(recorded).UTC()
		r.Cursor = eventstore.Cursor{Position: r.Position}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Lookup returns the tenant's stored events with the given ids. Its errors
// read "lookup: …": it also serves the append path, which names the engine.
func (s *Store) Lookup(ctx context.Context, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	return lookup(ctx, s.read, tenant, ids)
}

func lookup(ctx context.Context, q querier, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	var out []eventstore.Recorded
	// Keep well under SQLite's bound-parameter limit.
	for chunk := range chunks(ids, 500) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenant)
		for _, id := range chunk {
			args = append(args, id.String())
		}
		rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM events e
			WHERE e.tenant_id = ? AND e.event_id IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("lookup: %w", classify(err))
		}
		found, err := scanEvents(rows, false)
		if err != nil {
			return nil, fmt.Errorf("lookup: %w", classify(err))
		}
		out = append(out, found...)
	}
	return out, nil
}

func chunks[T any](s []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// ReadStream returns events of one stream from a version on.
func (s *Store) ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error) {
	return eventstore.ReadStreamWith(ctx, s, tenant, streamID, limit, func() ([]eventstore.Recorded, error) {
		return s.queryEvents(ctx, "read stream", false, `SELECT `+eventColumns+` FROM events e
			WHERE e.tenant_id = ? AND e.stream_id = ? AND e.version >= ? ORDER BY e.version LIMIT ?`, tenant, streamID, max(from, 1), limit)
	})
}

// queryEvents runs a query of events (and their stream's entity type, with
// withEntityType) on the read pool and classifies its errors.
func (s *Store) queryEvents(ctx context.Context, op string, withEntityType bool, query string, args ...any) ([]eventstore.Recorded, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err == nil {
		var out []eventstore.Recorded
		if out, err = scanEvents(rows, withEntityType); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("sqlite: %s: %w", op, classify(err))
}

// ReadAll reads the global log after a cursor. With one writer, positions
// commit in order, so position order is safe to follow.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return nil, fmt.Errorf("sqlite: read all: %w", err)
	}
	// An erasure marker has no stream (left join), or a re-created one.
	return s.queryEvents(ctx, "read all", true, `SELECT `+eventColumns+`, CASE WHEN e.version > 0 THEN coalesce(s.entity_type, '') ELSE '' END
		FROM events e LEFT JOIN streams s ON s.tenant_id = e.tenant_id AND s.stream_id = e.stream_id
		WHERE e.position > ? ORDER BY e.position LIMIT ?`, after.Position, limit)
}

// Head returns the cursor of the newest event.
func (s *Store) Head(ctx context.Context) (eventstore.Cursor, error) {
	var pos sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT max(position) FROM events`).Scan(&pos); err != nil {
		return eventstore.Cursor{}, fmt.Errorf("sqlite: head: %w", classify(err))
	}
	return eventstore.Cursor{Position: pos.Int64}, nil
}

// StreamInfo returns a stream's metadata.
func (s *Store) StreamInfo(ctx context.Context, tenant, streamID string) (eventstore.StreamInfo, error) {
	info := eventstore.StreamInfo{Tenant: tenant, StreamID: streamID}
	var created, updated int64
	err := s.read.QueryRowContext(ctx, `SELECT entity_type, version, incarnation, created_at, updated_at FROM streams
		WHERE tenant_id = ? AND stream_id = ?`, tenant, streamID).Scan(&info.EntityType, &info.Version, &info.Incarnation, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return info, fmt.Errorf("sqlite: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("sqlite: stream info: %w", classify(err))
	}
	info.CreatedAt, info.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return info, nil
}

// SaveSnapshot stores a snapshot (replacing one of the same version and
// incarnation). Without an incarnation it takes the stream's current one
// (nothing is stored when the stream does not exist).
func (s *Store) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	if err := snap.Validate(); err != nil {
		return fmt.Errorf("sqlite: save snapshot: %w", err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO snapshots (tenant_id, stream_id, version, schema_version, state, created_at, incarnation)
		SELECT ?, ?, ?, ?, ?, ?, coalesce(nullif(?, 0), s.incarnation) FROM streams s WHERE s.tenant_id = ?1 AND s.stream_id = ?2
		ON CONFLICT (tenant_id, stream_id, version) DO UPDATE SET
			schema_version = excluded.schema_version, state = excluded.state, created_at = excluded.created_at,
			incarnation = excluded.incarnation`,
		snap.Tenant, snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.State), s.now().UnixMicro(), snap.Incarnation); err != nil {
		return fmt.Errorf("sqlite: save snapshot: %w", classify(err))
	}
	return nil
}

// LoadStream implements eventstore.Store.LoadStream in one read transaction:
// the stream's incarnation, its latest snapshot of that incarnation and the
// events after it, all of one state of the file.
func (s *Store) LoadStream(ctx context.Context, tenant, streamID string, limit int) (eventstore.Loaded, error) {
	out, err := s.LoadStreams(ctx, []eventstore.StreamRef{{Tenant: tenant, StreamID: streamID}}, limit)
	if err != nil {
		return eventstore.Loaded{}, err
	}
	if out[0].Incarnation == 0 {
		return eventstore.Loaded{}, fmt.Errorf("sqlite: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	return out[0], nil
}

// LoadStreams implements eventstore.Store.LoadStreams in one read
// transaction.
func (s *Store) LoadStreams(ctx context.Context, refs []eventstore.StreamRef, limit int) ([]eventstore.Loaded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return nil, fmt.Errorf("sqlite: load stream: %w", err)
	}
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: load stream: %w", classify(err))
	}
	defer tx.Rollback()
	st := s.readStmts.in(tx)
	out := make([]eventstore.Loaded, len(refs))
	for i, ref := range refs {
		if out[i], err = loadStream(ctx, st, ref, limit); err != nil {
			return nil, fmt.Errorf("sqlite: load stream: %w", classify(err))
		}
	}
	return out, nil
}

// loadStream reads one stream for LoadStreams (a zero Loaded when it does
// not exist).
func loadStream(ctx context.Context, st *txStatements, ref eventstore.StreamRef, limit int) (eventstore.Loaded, error) {
	var out eventstore.Loaded
	var snapVersion, snapSchema, snapCreated sql.NullInt64
	var snapState sql.NullString
	err := st.queryRow(ctx, sqlLoadHead, ref.Tenant, ref.StreamID).
		Scan(&out.Incarnation, &snapVersion, &snapSchema, &snapState, &snapCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Loaded{}, nil
	}
	if err != nil {
		return eventstore.Loaded{}, err
	}
	from := int64(1)
	if snapVersion.Valid {
		out.Snapshot = &eventstore.Snapshot{Tenant: ref.Tenant, StreamID: ref.StreamID, Version: snapVersion.Int64,
			SchemaVersion: int(snapSchema.Int64), State: json.RawMessage(snapState.String),
			Incarnation: out.Incarnation, CreatedAt: time.UnixMicro(snapCreated.Int64).UTC()}
		from = snapVersion.Int64 + 1
	}
	rows, err := st.query(ctx, sqlLoadEvents, ref.Tenant, ref.StreamID, from, limit)
	if err != nil {
		return eventstore.Loaded{}, err
	}
	out.Events, err = scanEvents(rows, false)
	return out, err
}

// LoadSnapshot returns the stream's snapshot of the highest version.
func (s *Store) LoadSnapshot(ctx context.Context, tenant, streamID string) (eventstore.Snapshot, error) {
	snap := eventstore.Snapshot{Tenant: tenant, StreamID: streamID}
	var state string
	var created int64
	err := s.read.QueryRowContext(ctx, `SELECT sn.version, sn.schema_version, sn.state, sn.created_at, sn.incarnation
		FROM snapshots sn JOIN streams s USING (tenant_id, stream_id, incarnation)
		WHERE sn.tenant_id = ? AND sn.stream_id = ? ORDER BY sn.version DESC LIMIT 1`, tenant, streamID).
		Scan(&snap.Version, &snap.SchemaVersion, &state, &created, &snap.Incarnation)
	if errors.Is(err, sql.ErrNoRows) {
		return snap, fmt.Errorf("sqlite: snapshot of %q: %w", streamID, eventstore.ErrNotFound)
	}
	if err != nil {
		return snap, fmt.Errorf("sqlite: load snapshot: %w", classify(err))
	}
	snap.State = json.RawMessage(state)
	snap.CreatedAt = time.UnixMicro(created).UTC()
	return snap, nil
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// classify marks errors of an unreachable or locked database as ErrUnavailable
// so that callers answer 503 rather than 500.
func classify(err error) error {
	if errors.Is(err, sql.ErrConnDone) || err != nil && err.Error() == "sql: database is closed" {
		return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
		}
	}
	return err
}

// Committed returns a channel closed at the next commit of events by this
// process (SQLite has no cross-process notification; other processes'
// commits are seen by polling).
func (s *Store) Committed() <-chan struct{} { return s.committed.C() }

// Backlog counts the events after a cursor.
func (s *Store) Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error) {
	var b eventstore.Backlog
	var oldest sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT count(*), min(recorded_at) FROM events WHERE position > ?`, after.Position).
		Scan(&b.Events, &oldest)
	if err != nil {
		return b, fmt.Errorf("sqlite: backlog: %w", classify(err))
	}
	if oldest.Valid {
		b.Oldest = time.UnixMicro(oldest.Int64).UTC()
	}
	return b, nil
}

// CursorAt returns the cursor of the tenant's record at a position.
func (s *Store) CursorAt(ctx context.Context, tenant string, position int64) (eventstore.Cursor, error) {
	if err := eventstore.CheckPosition(position); err != nil {
		return eventstore.Cursor{}, fmt.Errorf("sqlite: cursor at: %w", err)
	}
	var pos int64
	err := s.read.QueryRowContext(ctx, `SELECT position FROM events WHERE position = ? AND tenant_id = ?`, position, tenant).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Cursor{}, fmt.Errorf("sqlite: position %d of tenant %q: %w", position, tenant, eventstore.ErrNotFound)
	}
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("sqlite: cursor at: %w", classify(err))
	}
	return eventstore.Cursor{Position: pos}, nil
}

// CursorBefore returns the position before the first one recorded at or
// after t (events_recorded_at), or the newest position when there is none:
// with one writer, whatever comes later takes a higher position.
func (s *Store) CursorBefore(ctx context.Context, t time.Time) (eventstore.Cursor, error) {
	var pos int64
	err := s.read.QueryRowContext(ctx, `WITH c AS (SELECT coalesce(
			(SELECT min(position) FROM events WHERE recorded_at >= ?) - 1,
			(SELECT max(position) FROM events), 0) AS pos)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM events WHERE position <= c.pos) THEN c.pos ELSE 0 END FROM c`,
		eventstore.NormalizeTime(t).UnixMicro()).Scan(&pos)
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("sqlite: cursor before: %w", classify(err))
	}
	return eventstore.Cursor{Position: pos}, nil
}

// Erase hard-deletes a stream in one transaction.
func (s *Store) Erase(ctx context.Context, tenant, streamID string) (int64, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: erase: %w", classify(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM streams WHERE tenant_id = ? AND stream_id = ?`, tenant, streamID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: erase: %w", classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("sqlite: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM events WHERE tenant_id = ? AND stream_id = ?`, tenant, streamID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: erase: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM snapshots WHERE tenant_id = ? AND stream_id = ?`, tenant, streamID); err != nil {
		return 0, fmt.Errorf("sqlite: erase: %w", classify(err))
	}
	now := time.Now().UnixMicro()
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (tenant_id, stream_id, version, event_id, event_type, schema_version,
		data, metadata, occurred_at, recorded_at) VALUES (?, ?, 0, ?, ?, 1, ?, '{}', ?, ?)`,
		tenant, streamID, uuid.NewString(), eventstore.ErasureType, string(eventstore.ErasureData(n)), now, now); err != nil {
		return 0, fmt.Errorf("sqlite: erase: marker: %w", classify(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: erase: %w", classify(err))
	}
	return n, nil
}
