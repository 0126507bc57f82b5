// Package postgres is the production engine of tracktrace: the event store on
// PostgreSQL through pgx.
//
// Appends go through eventstore.GroupCommit with a few writers; this
// package's commit locks a batch's stream rows in key order, checks each
// append (AppendRequest.Check) and writes the accepted events of the whole
// batch with one multi-row INSERT, in two round trips. A mismatched version
// fails only its own append.
//
// The global log is read by transaction id and position, below the oldest
// running transaction, so that a reader never skips an event whose position
// was taken before, but committed after, those it has already seen.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tlm/tracktrace/internal/eventstore"
)

var _ eventstore.Store = (*Store)(nil)

//go:embed migrations
var migrations embed.FS

// maxBatchEvents bounds the events one group commit takes.
const maxBatchEvents = 10000

// Store is the PostgreSQL event store.
type Store struct {
	pool       *pgxpool.Pool
	committed  eventstore.Signal
	stopListen context.CancelFunc
	listening  sync.WaitGroup

	// GroupCommit provides Append and AppendAll: appends queue to the writers.
	*eventstore.GroupCommit
	closeOnce sync.Once
	// period is the time range of one partition of the events table.
	period PartitionPeriod
}

// Options tune a Store.
type Options struct {
	// Writers is the number of group-commit writers (default: one per core, at least 2).
	Writers int
	// SkipMigrations leaves the schema alone (for `migrate`-managed deployments).
	SkipMigrations bool
	// PartitionPeriod is the time range of each partition of the events
	// table that the store creates (default Monthly).
	PartitionPeriod PartitionPeriod
}

// leaderConns is how many connections the followers that lead hold for
// their session advisory locks (TryLead), when the read models share the
// store's pool: the projections, the Kafka relay, the EPCIS mapping, the
// subscriptions, the alert rules and their schedule, retention's lock during
// a rebuild, and the read models' change listener.
const leaderConns = 8

// Open connects to the database named by dsn (a postgres:// URL or a libpq
// keyword/value string), applies the migrations and starts the writers.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the whole connection string.
		return nil, errors.New("postgres: the connection string cannot be parsed")
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// Named in pg_stat_activity, and so in the warnings of every
		// replica about a transaction holding the read horizon back.
		cfg.ConnConfig.RuntimeParams["application_name"] = "tracktrace"
	}
	if opts.Writers <= 0 {
		opts.Writers = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.MaxConns < int32(opts.Writers)+leaderConns+4 {
		cfg.MaxConns = int32(opts.Writers) + leaderConns + 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w: %w", eventstore.ErrUnavailable, err)
	}
	if opts.PartitionPeriod == "" {
		opts.PartitionPeriod = Monthly
	}
	s := &Store{pool: pool, period: opts.PartitionPeriod}
	if !opts.SkipMigrations {
		if err := Migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if err := s.EnsurePartitions(ctx, time.Now()); err != nil {
		pool.Close()
		return nil, err
	}
	s.GroupCommit = eventstore.NewGroupCommit(s.commit, eventstore.GroupCommitOptions{
		Writers: opts.Writers, MaxBatchEvents: maxBatchEvents, Name: "postgres"})
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	s.listening.Go(func() { s.listen(lctx, cfg.ConnConfig) })
	s.listening.Go(func() { s.keepPartitionsAhead(lctx) })
	return s, nil
}

// Migrate applies the pending event-store migrations. Instances starting at
// once take turns on a PostgreSQL advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return migrate(ctx, pool, "events", "goose_db_version", 0x7472616b01)
}

// migrate applies one set of migrations (events or read models, which may
// live in different databases) with its own version table and lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, set, table string, lockID int64) error {
	return migrateTo(ctx, pool, set, table, lockID, goose.MaxVersion)
}

// migrateTo applies one set of migrations up to version.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, set, table string, lockID, version int64) error {
	sub, err := fs.Sub(migrations, "migrations/"+set)
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300), lock.WithLockID(lockID))
	if err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithTableName(table),
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: %s migrations: %w", set, err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", set, classify(err))
	}
	return nil
}

// Pool returns the connection pool, for packages that keep their tables in
// the same database (read models).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the writers, failing queued appends, and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopListen()
		s.listening.Wait()
		s.GroupCommit.Close()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// commit writes a group commit's batch; when the batch as a whole fails (a
// race with another writer on a new stream or an event id), each append is
// retried alone so that the failure stays with the append that caused it.
func (s *Store) commit(ctx context.Context, batch []eventstore.AppendRequest) []eventstore.Outcome {
	outs, err := s.commitBatch(ctx, batch)
	if isNoPartition(err) {
		// The partitions ahead ran out (the process creating them was
		// down): create them now and go on.
		if err = s.EnsurePartitions(ctx, time.Now()); err == nil {
			outs, err = s.commitBatch(ctx, batch)
		}
	}
	if err == nil {
		return outs
	}
	outs = make([]eventstore.Outcome, len(batch))
	for i, r := range batch {
		for attempt := 0; ; attempt++ {
			one, err := s.commitBatch(ctx, batch[i:i+1])
			if err == nil {
				outs[i] = one[0]
				break
			}
			if isUniqueViolation(err, "event_ids_pkey") {
				outs[i].Result, outs[i].Err = s.replayAfterConflict(ctx, r)
				break
			}
			if isUniqueViolation(err, "") && attempt < 3 {
				continue // lost a race creating the stream: now it exists
			}
			outs[i].Err = fmt.Errorf("postgres: append: %w", classify(err))
			break
		}
	}
	return outs
}

func (s *Store) replayAfterConflict(ctx context.Context, r eventstore.AppendRequest) (eventstore.AppendResult, error) {
	stored, err := s.Lookup(ctx, r.Tenant, r.EventIDs())
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append: %w", err)
	}
	if len(stored) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append: %w: event id conflict", eventstore.ErrUnavailable)
	}
	res, err := eventstore.ReplayResult(r, stored)
	if err != nil {
		return res, fmt.Errorf("postgres: append: %w", err)
	}
	return res, nil
}

type streamKey struct{ tenant, stream string }

type streamRow struct {
	version     int64
	entityType  string
	incarnation int64
	exists      bool
}

// commitBatch runs one group commit: round trip 1 begins and locks the
// batch's existing streams in key order; the appends are checked in queue
// order; round trip 2 writes the accepted ones and commits. The returned
// error concerns the batch as a whole; per-append failures are in the outcomes.
func (s *Store) commitBatch(ctx context.Context, batch []eventstore.AppendRequest) (outs []eventstore.Outcome, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	c := conn.Conn()
	inTx := false
	defer func() {
		if inTx {
			if _, rbErr := c.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				conn.Conn().Close(ctx) // a connection in an unknown state is not reused
			}
		}
	}()

	keys := make([]streamKey, 0, len(batch))
	for _, r := range batch {
		keys = append(keys, streamKey{r.Tenant, r.StreamID})
	}
	slices.SortFunc(keys, func(a, b streamKey) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.stream, b.stream))
	})
	keys = slices.Compact(keys)
	tenants, streamIDs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], streamIDs[i] = k.tenant, k.stream
	}

	// Round trip 1.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(`SELECT s.tenant_id, s.stream_id, s.version, s.entity_type, s.incarnation
		FROM streams s JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, stream_id) USING (tenant_id, stream_id)
		ORDER BY s.tenant_id, s.stream_id FOR UPDATE OF s`, tenants, streamIDs)
	br := c.SendBatch(ctx, b)
	inTx = true
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	state := make(map[streamKey]*streamRow, len(keys))
	for rows.Next() {
		var k streamKey
		r := &streamRow{exists: true}
		if err := rows.Scan(&k.tenant, &k.stream, &r.version, &r.entityType, &r.incarnation); err != nil {
			rows.Close()
			br.Close()
			return nil, err
		}
		state[k] = r
	}
	rows.Close()
	if err := errors.Join(rows.Err(), br.Close()); err != nil {
		return nil, err
	}

	// Checks, in queue order: appends to one stream see each other.
	outs = make([]eventstore.Outcome, len(batch))
	created := map[streamKey]*streamRow{}
	var w eventWriter
	var needLookup []int
	for i, r := range batch {
		k := streamKey{r.Tenant, r.StreamID}
		st := state[k]
		if st == nil {
			st = &streamRow{}
			state[k] = st
		}
		if replayable, err := r.Check(st.version, st.entityType, st.incarnation); err != nil {
			outs[i].Err = err
			if replayable {
				needLookup = append(needLookup, i)
			}
			continue
		}
		if st.version == 0 {
			st.entityType, st.incarnation = r.EntityType, eventstore.NewIncarnation()
			created[k] = st
		}
		res := eventstore.AppendResult{StreamID: r.StreamID, Incarnation: st.incarnation,
			Events: make([]eventstore.AppendedEvent, len(r.Events))}
		for j, e := range r.Events {
			st.version++
			res.Events[j] = eventstore.AppendedEvent{ID: e.ID, Version: st.version}
			if err := w.add(r, e, st.version); err != nil {
				return nil, err
			}
		}
		res.Version = st.version
		outs[i].Result = res
	}

	// A failed check may be a replay of a stored append: look the ids up in
	// this transaction, while the streams are locked.
	for _, i := range needLookup {
		r := batch[i]
		stored, err := lookup(ctx, c, r.Tenant, r.EventIDs())
		if err != nil {
			return nil, err
		}
		outs[i].Result, outs[i].Err = eventstore.Resolve(r, stored, outs[i].Err)
	}
	for i := range outs {
		if outs[i].Err != nil {
			outs[i].Err = fmt.Errorf("postgres: append: %w", outs[i].Err)
		}
	}

	// Round trip 2.
	b = &pgx.Batch{}
	var newTenants, newStreams, newTypes []string
	var newVersions, newIncarnations []int64
	var updTenants, updStreams []string
	var updVersions []int64
	for _, k := range keys {
		st := state[k]
		switch {
		case created[k] != nil:
			newTenants, newStreams = append(newTenants, k.tenant), append(newStreams, k.stream)
			newTypes, newVersions = append(newTypes, st.entityType), append(newVersions, st.version)
			newIncarnations = append(newIncarnations, st.incarnation)
		case st.exists && w.touched(k):
			updTenants, updStreams, updVersions = append(updTenants, k.tenant), append(updStreams, k.stream), append(updVersions, st.version)
		}
	}
	if len(newTenants) > 0 {
		b.Queue(`INSERT INTO streams (tenant_id, stream_id, entity_type, version, incarnation, created_at, updated_at)
			SELECT k.tenant_id, k.stream_id, k.entity_type, k.version, k.incarnation, now(), now()
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[]) AS k(tenant_id, stream_id, entity_type, version, incarnation)
			ORDER BY 1, 2`, newTenants, newStreams, newTypes, newVersions, newIncarnations)
	}
	if len(updTenants) > 0 {
		b.Queue(`UPDATE streams s SET version = k.version, updated_at = now()
			FROM unnest($1::text[], $2::text[], $3::int8[]) AS k(tenant_id, stream_id, version)
			WHERE s.tenant_id = k.tenant_id AND s.stream_id = k.stream_id`, updTenants, updStreams, updVersions)
	}
	if w.len() > 0 {
		// The event ids go to event_ids in the same statement: its primary
		// key makes them unique per tenant across the partitions.
		b.Queue(`WITH e AS (INSERT INTO events (tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at)
				SELECT k.tenant_id, k.stream_id, k.version, k.event_id, k.event_type, k.schema_version, k.data::json, k.metadata::json, k.occurred_at
				FROM unnest($1::text[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int4[], $7::text[], $8::text[], $9::timestamptz[])
					AS k(tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at)
				RETURNING tenant_id, event_id, stream_id, version, recorded_at, position),
			ids AS (INSERT INTO event_ids (tenant_id, event_id, stream_id, version, recorded_at)
				SELECT tenant_id, event_id, stream_id, version, recorded_at FROM e)
			SELECT tenant_id, event_id, position FROM e`,
			w.tenants, w.streams, w.versions, w.ids, w.types, w.schemas, w.data, w.meta, w.occurred)
	}
	if w.len() > 0 {
		b.Queue("SELECT pg_notify('" + commitChannel + "', '')") // delivered at commit
	}
	b.Queue("COMMIT")
	br = c.SendBatch(ctx, b)
	if len(newTenants) > 0 {
		// Fails with a unique violation if another writer created one of
		// the streams meanwhile; the error aborts the rest of the pipeline.
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	if len(updTenants) > 0 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	type eventKey struct {
		tenant string
		id     uuid.UUID
	}
	positions := make(map[eventKey]int64, w.len())
	if w.len() > 0 {
		defer s.committed.Notify()
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return nil, err
		}
		for rows.Next() {
			var tenant string
			var id uuid.UUID
			var pos int64
			if err := rows.Scan(&tenant, &id, &pos); err != nil {
				rows.Close()
				br.Close()
				return nil, err
			}
			positions[eventKey{tenant, id}] = pos
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			br.Close()
			return nil, err
		}
	}
	if w.len() > 0 {
		if _, err := br.Exec(); err != nil { // pg_notify
			br.Close()
			return nil, err
		}
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		br.Close()
		return nil, err
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	inTx = false
	for i, r := range batch {
		if outs[i].Err != nil || outs[i].Result.Replayed {
			continue
		}
		for j := range outs[i].Result.Events {
			outs[i].Result.Events[j].Position = positions[eventKey{r.Tenant, outs[i].Result.Events[j].ID}]
		}
	}
	return outs, nil
}

// eventWriter collects a batch's events as column arrays for unnest.
type eventWriter struct {
	tenants, streams, types, data, meta []string
	versions                            []int64
	ids                                 []pgtype.UUID // see pgUUIDs
	schemas                             []int32
	occurred                            []time.Time
	keys                                map[streamKey]bool
}

func (w *eventWriter) add(r eventstore.AppendRequest, e eventstore.Event, version int64) error {
	meta, err := json.Marshal(e.Metadata)
	if err != nil {
		return err
	}
	if w.keys == nil {
		w.keys = map[streamKey]bool{}
	}
	w.keys[streamKey{r.Tenant, r.StreamID}] = true
	w.tenants = append(w.tenants, r.Tenant)
	w.streams = append(w.streams, r.StreamID)
	w.versions = append(w.versions, version)
	w.ids = append(w.ids, pgtype.UUID{Bytes: e.ID, Valid: true})
	w.types = append(w.types, e.Type)
	w.schemas = append(w.schemas, int32(e.SchemaVersion))
	w.data = append(w.data, string(e.Data))
	w.meta = append(w.meta, string(meta))
	w.occurred = append(w.occurred, e.OccurredAt)
	return nil
}

func (w *eventWriter) len() int                 { return len(w.ids) }
func (w *eventWriter) touched(k streamKey) bool { return w.keys[k] }

const eventColumns = `e.position, e.tx_id::text, e.tenant_id, e.stream_id, e.version, e.event_id, e.event_type,
	e.schema_version, e.data::text, e.metadata::text, e.occurred_at, e.recorded_at`

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// scanEvents collects the events of rows selecting eventColumns (and the
// stream's entity type, with withEntityType).
func scanEvents(rows pgx.Rows, withEntityType bool) ([]eventstore.Recorded, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.Recorded, error) {
		var r eventstore.Recorded
		var after []any
		if withEntityType {
			after = []any{&r.EntityType}
		}
		err := scanEvent(row, &r, nil, after)
		return r, err
	})
}

// scanIndexedEvents scans rows of the 1-based index of a stream in out
// followed by eventColumns, appending each event to its stream's Events.
func scanIndexedEvents(rows pgx.Rows, out []eventstore.Loaded) error {
	defer rows.Close()
	for rows.Next() {
		var i int64
		var r eventstore.Recorded
		if err := scanEvent(rows, &r, []any{&i}, nil); err != nil {
			return err
		}
		out[i-1].Events = append(out[i-1].Events, r)
	}
	return rows.Err()
}

// scanEvent scans eventColumns into r, with the before and after
// destinations around them.
func scanEvent(row pgx.Row, r *eventstore.Recorded, before, after []any) error {
	var txid, data, meta string
	dest := append(before, &r.Position, &txid, &r.Tenant, &r.StreamID, &r.Version, &r.ID, &r.Type,
		&r.SchemaVersion, &data, &meta, &r.OccurredAt, &r.RecordedAt)
	if err := row.Scan(append(dest, after...)...); err != nil {
		return err
	}
	tx, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return fmt.Errorf("event at position %d: bad tx id %q", r.Position, txid)
	}
	if r.Metadata, err = eventstore.DecodeMetadata(meta); err != nil {
		return fmt.Errorf("event at position %d: bad metadata: %w", r.Position, err)
	}
	r.Data = json.RawMessage(data)
	r.OccurredAt, r.RecordedAt = r.OccurredAt.UTC(), r.RecordedAt.UTC()
	r.Cursor = eventstore.Cursor{TxID: tx, Position: r.Position}
	return nil
}

// Lookup returns the tenant's stored events with the given ids. Its errors
// read "lookup: …": it also serves the append path, which names the engine.
func (s *Store) Lookup(ctx context.Context, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	return lookup(ctx, s.pool, tenant, ids)
}

// pgUUIDs converts ids for a uuid[] parameter: pgx encodes a uuid.UUID
// through its driver.Valuer, as text parsed back, after failing a plan per
// element; a pgtype.UUID as its bytes.
func pgUUIDs(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgtype.UUID{Bytes: id, Valid: true}
	}
	return out
}

func lookup(ctx context.Context, q queryer, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	// event_ids leads to the event's partition (recorded_at) and stream index.
	rows, _ := q.Query(ctx, `SELECT `+eventColumns+` FROM event_ids k
		JOIN events e ON e.recorded_at = k.recorded_at AND e.tenant_id = k.tenant_id AND e.stream_id = k.stream_id
			AND e.version = k.version AND e.event_id = k.event_id
		WHERE k.tenant_id = $1 AND k.event_id = ANY($2::uuid[])`, tenant, pgUUIDs(ids))
	out, err := scanEvents(rows, false)
	if err != nil {
		return nil, fmt.Errorf("lookup: %w", classify(err))
	}
	return out, nil
}

// ReadStream returns events of one stream from a version on.
func (s *Store) ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error) {
	return eventstore.ReadStreamWith(ctx, s, tenant, streamID, limit, func() ([]eventstore.Recorded, error) {
		return s.queryEvents(ctx, "read stream", false, `SELECT `+eventColumns+` FROM events e
			WHERE e.tenant_id = $1 AND e.stream_id = $2 AND e.version >= $3 ORDER BY e.version LIMIT $4`, tenant, streamID, max(from, 1), limit)
	})
}

// queryEvents runs a query of events (and their stream's entity type, with
// withEntityType) and classifies its errors, from the rows' too.
func (s *Store) queryEvents(ctx context.Context, op string, withEntityType bool, sql string, args ...any) ([]eventstore.Recorded, error) {
	rows, _ := s.pool.Query(ctx, sql, args...) // a failed query's error is the rows'
	out, err := scanEvents(rows, withEntityType)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, classify(err))
	}
	return out, nil
}

// LoadStream implements eventstore.Store.LoadStream: the stream's
// incarnation, its latest snapshot of that incarnation and the events after
// it, read in one round trip within one repeatable-read transaction, so that
// the events continue the snapshot exactly. (One stream by key, not through
// LoadStreams: its plan is an index lookup whatever the table's size.)
func (s *Store) LoadStream(ctx context.Context, tenant, streamID string, limit int) (eventstore.Loaded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return eventstore.Loaded{}, fmt.Errorf("postgres: load stream: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	b.Queue(`SELECT s.incarnation, sn.version, sn.schema_version, sn.state::text, sn.created_at FROM streams s
		LEFT JOIN LATERAL (SELECT version, schema_version, state, created_at FROM snapshots
			WHERE tenant_id = s.tenant_id AND stream_id = s.stream_id AND incarnation = s.incarnation
			ORDER BY version DESC LIMIT 1) sn ON true
		WHERE s.tenant_id = $1 AND s.stream_id = $2`, tenant, streamID)
	b.Queue(`SELECT `+eventColumns+` FROM events e
		WHERE e.tenant_id = $1 AND e.stream_id = $2
		  AND e.version > coalesce((SELECT max(sn.version) FROM snapshots sn JOIN streams s USING (tenant_id, stream_id, incarnation)
			WHERE sn.tenant_id = $1 AND sn.stream_id = $2), 0)
		ORDER BY e.version LIMIT $3`, tenant, streamID, limit)
	b.Queue("COMMIT")
	// A failure leaves the connection inside the transaction; the pool
	// closes such connections instead of reusing them.
	br := s.pool.SendBatch(ctx, b)
	out, err := readLoadStream(br, tenant, streamID)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if errors.Is(err, eventstore.ErrNotFound) {
		return eventstore.Loaded{}, fmt.Errorf("postgres: stream %q: %w", streamID, err)
	}
	if err != nil {
		return eventstore.Loaded{}, fmt.Errorf("postgres: load stream: %w", classify(err))
	}
	return out, nil
}

func readLoadStream(br pgx.BatchResults, tenant, streamID string) (eventstore.Loaded, error) {
	var out eventstore.Loaded
	if _, err := br.Exec(); err != nil { // BEGIN
		return out, err
	}
	var (
		version   *int64
		schema    *int32
		state     *string
		createdAt *time.Time
	)
	err := br.QueryRow().Scan(&out.Incarnation, &version, &schema, &state, &createdAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, eventstore.ErrNotFound
	}
	if err != nil {
		return out, err
	}
	if version != nil {
		out.Snapshot = &eventstore.Snapshot{Tenant: tenant, StreamID: streamID, Version: *version,
			SchemaVersion: int(*schema), State: json.RawMessage(*state), Incarnation: out.Incarnation, CreatedAt: createdAt.UTC()}
	}
	rows, err := br.Query()
	if err != nil {
		return out, err
	}
	if out.Events, err = scanEvents(rows, false); err != nil {
		return out, err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		return out, err
	}
	return out, nil
}

// LoadStreams implements eventstore.Store.LoadStreams: every stream's
// incarnation and latest snapshot in one query, their events after the
// snapshots in another, in one round trip and one repeatable-read
// transaction.
func (s *Store) LoadStreams(ctx context.Context, refs []eventstore.StreamRef, limit int) ([]eventstore.Loaded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return nil, fmt.Errorf("postgres: load stream: %w", err)
	}
	tenants, ids := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		tenants[i], ids[i] = r.Tenant, r.StreamID
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	// Planned for each call: a plan cached while the tables were small
	// (a fresh database) joins the keys by scanning them whole for good.
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(`SELECT k.i, s.incarnation, sn.version, sn.schema_version, sn.state::text, sn.created_at
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tenant_id, stream_id, i)
		JOIN streams s USING (tenant_id, stream_id)
		LEFT JOIN LATERAL (SELECT version, schema_version, state, created_at FROM snapshots
			WHERE tenant_id = s.tenant_id AND stream_id = s.stream_id AND incarnation = s.incarnation
			ORDER BY version DESC LIMIT 1) sn ON true`, tenants, ids)
	b.Queue(`SELECT k.i, `+eventColumns+`
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tenant_id, stream_id, i)
		JOIN streams s USING (tenant_id, stream_id)
		CROSS JOIN LATERAL (SELECT * FROM events x
			WHERE x.tenant_id = k.tenant_id AND x.stream_id = k.stream_id
			  AND x.version > coalesce((SELECT max(sn.version) FROM snapshots sn WHERE sn.tenant_id = k.tenant_id
				AND sn.stream_id = k.stream_id AND sn.incarnation = s.incarnation), 0)
			ORDER BY x.version LIMIT $3) e
		ORDER BY k.i, e.version`, tenants, ids, limit)
	b.Queue("COMMIT")
	// A failure leaves the connection inside the transaction; the pool
	// closes such connections instead of reusing them.
	br := s.pool.SendBatch(ctx, b)
	out, err := readLoadStreams(br, refs)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: load stream: %w", classify(err))
	}
	return out, nil
}

func readLoadStreams(br pgx.BatchResults, refs []eventstore.StreamRef) ([]eventstore.Loaded, error) {
	for range 2 { // BEGIN, SET LOCAL
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	out := make([]eventstore.Loaded, len(refs))
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			i, incarnation int64
			version        *int64
			schema         *int32
			state          *string
			createdAt      *time.Time
		)
		if err := rows.Scan(&i, &incarnation, &version, &schema, &state, &createdAt); err != nil {
			rows.Close()
			return nil, err
		}
		l := &out[i-1]
		l.Incarnation = incarnation
		if version != nil {
			ref := refs[i-1]
			l.Snapshot = &eventstore.Snapshot{Tenant: ref.Tenant, StreamID: ref.StreamID, Version: *version,
				SchemaVersion: int(*schema), State: json.RawMessage(*state), Incarnation: incarnation, CreatedAt: createdAt.UTC()}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if rows, err = br.Query(); err != nil {
		return nil, err
	}
	if err := scanIndexedEvents(rows, out); err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		return nil, err
	}
	return out, nil
}

// ReadAll reads the global log after a cursor, in (tx_id, position) order,
// and only below the oldest transaction still running: an event whose
// transaction has not committed yet holds back every event after it.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	if err := eventstore.CheckLimit(limit); err != nil {
		return nil, fmt.Errorf("postgres: read all: %w", err)
	}
	// An erasure marker has no stream (left join), or a re-created one.
	return s.queryEvents(ctx, "read all", true, `SELECT `+eventColumns+`, CASE WHEN e.version > 0 THEN coalesce(s.entity_type, '') ELSE '' END
		FROM events e LEFT JOIN streams s ON s.tenant_id = e.tenant_id AND s.stream_id = e.stream_id
		WHERE (e.tx_id, e.position) > ($1::text::xid8, $2::int8)
		  AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY e.tx_id, e.position LIMIT $3`,
		strconv.FormatUint(after.TxID, 10), after.Position, limit)
}

// Head returns the cursor of the newest event a reader may see now.
func (s *Store) Head(ctx context.Context) (eventstore.Cursor, error) {
	var txid string
	var pos int64
	// events.tx_id, not tx_id: that would name the output column, the
	// text, whose order is not the log's ("99" > "100") and has no index.
	err := s.pool.QueryRow(ctx, `SELECT tx_id::text, position FROM events
		WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY events.tx_id DESC, position DESC LIMIT 1`).Scan(&txid, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Cursor{}, nil
	}
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: head: %w", classify(err))
	}
	tx, err := parseTxID(txid)
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: head: %w", err)
	}
	return eventstore.Cursor{TxID: tx, Position: pos}, nil
}

func parseTxID(s string) (uint64, error) {
	tx, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad tx id %q", s)
	}
	return tx, nil
}

// CursorAt returns the cursor of the tenant's record at a position, found
// by the position's BRIN index (events_position_brin) in every partition.
func (s *Store) CursorAt(ctx context.Context, tenant string, position int64) (eventstore.Cursor, error) {
	if err := eventstore.CheckPosition(position); err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: cursor at: %w", err)
	}
	var txid string
	err := s.pool.QueryRow(ctx, `SELECT tx_id::text FROM events WHERE position = $2 AND tenant_id = $1`,
		tenant, position).Scan(&txid)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Cursor{}, fmt.Errorf("postgres: position %d of tenant %q: %w", position, tenant, eventstore.ErrNotFound)
	}
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: cursor at: %w", classify(err))
	}
	tx, err := parseTxID(txid)
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: cursor at: %w", err)
	}
	return eventstore.Cursor{TxID: tx, Position: position}, nil
}

// CursorBefore returns (x, 0) where x is the oldest transaction that may
// have recorded events at or after t: of the stored ones, the smallest
// tx_id recorded since (recorded_at is the transaction's start, shared by
// all its events, so every smaller tx_id started before t); and of those
// still running or to come, whose events are not visible yet, none has a
// tx_id below the snapshot's xmin. A transaction's events all come after
// (x, 0), positions being positive.
//
// The smallest tx_id is aggregated over the rows recorded since, found by
// partition pruning and the BRIN index on recorded_at: OFFSET 0 keeps the
// planner from turning min() into a walk of events_log in tx_id order
// filtered by recorded_at, which would read, in the partition holding t,
// every row recorded before t. The smallest tx_id of all (the first entry
// of each partition's events_log) tells whether anything is before the
// cursor; MATERIALIZED keeps the aggregate from being planned twice.
func (s *Store) CursorBefore(ctx context.Context, t time.Time) (eventstore.Cursor, error) {
	var txid string
	err := s.pool.QueryRow(ctx, `WITH c AS MATERIALIZED (SELECT least(
			(SELECT min(tx_id) FROM (SELECT tx_id FROM events WHERE recorded_at >= $1 OFFSET 0) e),
			pg_snapshot_xmin(pg_current_snapshot())) AS tx)
		SELECT CASE WHEN (SELECT min(tx_id) FROM events) < c.tx THEN c.tx::text ELSE '0' END FROM c`,
		t).Scan(&txid)
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: cursor before: %w", classify(err))
	}
	tx, err := parseTxID(txid)
	if err != nil {
		return eventstore.Cursor{}, fmt.Errorf("postgres: cursor before: %w", err)
	}
	return eventstore.Cursor{TxID: tx}, nil
}

// StreamInfo returns a stream's metadata.
func (s *Store) StreamInfo(ctx context.Context, tenant, streamID string) (eventstore.StreamInfo, error) {
	info := eventstore.StreamInfo{Tenant: tenant, StreamID: streamID}
	err := s.pool.QueryRow(ctx, `SELECT entity_type, version, incarnation, created_at, updated_at FROM streams
		WHERE tenant_id = $1 AND stream_id = $2`, tenant, streamID).Scan(&info.EntityType, &info.Version, &info.Incarnation, &info.CreatedAt, &info.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("postgres: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("postgres: stream info: %w", classify(err))
	}
	info.CreatedAt, info.UpdatedAt = info.CreatedAt.UTC(), info.UpdatedAt.UTC()
	return info, nil
}

// SaveSnapshot stores a snapshot (replacing one of the same version).
// Without an incarnation it takes the stream's current one (nothing is
// stored when the stream does not exist).
func (s *Store) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	if err := snap.Validate(); err != nil {
		return fmt.Errorf("postgres: save snapshot: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (tenant_id, stream_id, version, schema_version, state, incarnation)
		SELECT $1, $2, $3, $4, $5::text::json, coalesce(nullif($6::int8, 0), s.incarnation)
		FROM streams s WHERE s.tenant_id = $1 AND s.stream_id = $2
		ON CONFLICT (tenant_id, stream_id, version) DO UPDATE SET
			schema_version = excluded.schema_version, state = excluded.state, created_at = now(),
			incarnation = excluded.incarnation`,
		snap.Tenant, snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.State), snap.Incarnation)
	if err != nil {
		return fmt.Errorf("postgres: save snapshot: %w", classify(err))
	}
	return nil
}

// LoadSnapshot returns the stream's snapshot of the highest version.
func (s *Store) LoadSnapshot(ctx context.Context, tenant, streamID string) (eventstore.Snapshot, error) {
	snap := eventstore.Snapshot{Tenant: tenant, StreamID: streamID}
	var state string
	err := s.pool.QueryRow(ctx, `SELECT sn.version, sn.schema_version, sn.state::text, sn.created_at, sn.incarnation
		FROM snapshots sn JOIN streams s USING (tenant_id, stream_id, incarnation)
		WHERE sn.tenant_id = $1 AND sn.stream_id = $2 ORDER BY sn.version DESC LIMIT 1`, tenant, streamID).
		Scan(&snap.Version, &snap.SchemaVersion, &state, &snap.CreatedAt, &snap.Incarnation)
	if errors.Is(err, pgx.ErrNoRows) {
		return snap, fmt.Errorf("postgres: snapshot of %q: %w", streamID, eventstore.ErrNotFound)
	}
	if err != nil {
		return snap, fmt.Errorf("postgres: load snapshot: %w", classify(err))
	}
	snap.State = json.RawMessage(state)
	snap.CreatedAt = snap.CreatedAt.UTC()
	return snap, nil
}

// isUniqueViolation reports a unique violation, on the named constraint when
// one is given.
func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

// classify marks connection failures, shutdowns and overload as
// ErrUnavailable, so that callers answer 503 rather than 500.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
	}
	// The server went away mid-exchange (a restart, a crash, a network
	// failure): "unexpected EOF", "connection reset by peer". For an append
	// the outcome is unknown, and a retry with the same event ids is safe.
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
		return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
	}
	return err
}

// commitChannel is the LISTEN/NOTIFY channel on which every commit of events
// is announced, so that projection runners in any process wake at once.
const commitChannel = "tracktrace_events"

// Committed returns a channel closed at the next commit of events by any
// process on this database.
func (s *Store) Committed() <-chan struct{} { return s.committed.C() }

// listen relays NOTIFYs of other processes' commits to Committed.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	listen(ctx, cfg, commitChannel, s.committed.Notify, func(string) { s.committed.Notify() })
}

// listen LISTENs on channel on a dedicated connection, re-established
// after failures, until ctx ends: it calls listening each time the LISTEN
// has taken effect (anything announced before is unknown to the caller) and
// notified with each notification's payload.
func listen(ctx context.Context, cfg *pgx.ConnConfig, channel string, listening func(), notified func(payload string)) {
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+channel); err == nil {
				listening()
			}
			for err == nil {
				var n *pgconn.Notification
				if n, err = conn.WaitForNotification(ctx); err == nil {
					notified(n.Payload)
				}
			}
			conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Backlog counts the readable events after a cursor.
func (s *Store) Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error) {
	var b eventstore.Backlog
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(recorded_at) FROM events
		WHERE (tx_id, position) > ($1::text::xid8, $2::int8) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())`,
		strconv.FormatUint(after.TxID, 10), after.Position).Scan(&b.Events, &oldest)
	if err != nil {
		return b, fmt.Errorf("postgres: backlog: %w", classify(err))
	}
	if oldest != nil {
		b.Oldest = oldest.UTC()
	}
	return b, nil
}

// Erase hard-deletes a stream in one transaction, holding its row lock so
// that no append interleaves.
func (s *Store) Erase(ctx context.Context, tenant, streamID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM streams WHERE tenant_id = $1 AND stream_id = $2`, tenant, streamID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return eventstore.ErrNotFound
		}
		// The events, their ids, and the marker of an earlier erasure of
		// the same id (version 0, not an event: not counted).
		if err := tx.QueryRow(ctx, `WITH e AS (DELETE FROM events WHERE tenant_id = $1 AND stream_id = $2 RETURNING event_id, version),
				k AS (DELETE FROM event_ids k USING e WHERE k.tenant_id = $1 AND k.event_id = e.event_id)
			SELECT count(*) FILTER (WHERE version > 0) FROM e`, tenant, streamID).Scan(&n); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `DELETE FROM snapshots WHERE tenant_id = $1 AND stream_id = $2`, tenant, streamID); err != nil {
			return err
		}
		// Written last, under the stream's lock: after every event of the stream in the log.
		_, err = tx.Exec(ctx, `INSERT INTO events (tenant_id, stream_id, version, event_id, event_type, schema_version,
			data, metadata, occurred_at) VALUES ($1, $2, 0, $3, $4, 1, $5, '{}', now())`,
			tenant, streamID, uuid.New(), eventstore.ErasureType, string(eventstore.ErasureData(n)))
		return err
	})
	if errors.Is(err, eventstore.ErrNotFound) {
		return 0, fmt.Errorf("postgres: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: erase: %w", classify(err))
	}
	return n, nil
}
