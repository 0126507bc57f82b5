package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

var (
	_ readmodel.Engine = (*readModels)(nil)
	_ readmodel.Tx     = (*rmTx)(nil)
)

// readModels is the PostgreSQL engine of the read models, in the event
// store's database or one of their own.
type readModels struct {
	pool  *pgxpool.Pool
	owned bool // the pool was opened for the read models: Close closes it
}

// OpenReadModels connects to the read-model database and applies its
// migrations. With pool non-nil (the event store's database) it uses that.
func OpenReadModels(ctx context.Context, dsn string, pool *pgxpool.Pool) (*readmodel.Store, error) {
	owned := pool == nil
	if owned {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, errors.New("postgres: the read-model connection string cannot be parsed")
		}
		if cfg.MaxConns < leaderConns+4 {
			cfg.MaxConns = leaderConns + 4 // the leaders' locks, and the projections' and readers' work
		}
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("postgres: read models: %w: %w", eventstore.ErrUnavailable, err)
		}
	}
	if err := migrate(ctx, pool, "readmodels", "goose_readmodels_version", 0x7472616b02); err != nil {
		if owned {
			pool.Close()
		}
		return nil, err
	}
	return readmodel.New(&readModels{pool: pool, owned: owned}, "postgres"), nil
}

// Close closes the read models' own pool; read models on the event store's
// pool leave it to the store.
func (m *readModels) Close() error {
	if m.owned {
		m.pool.Close()
	}
	return nil
}

// Secret returns the value stored under name, storing candidate when there
// is none.
func (m *readModels) Secret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	if _, err := m.pool.Exec(ctx, `INSERT INTO rm_secrets (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, candidate); err != nil {
		return nil, classify(err)
	}
	var v []byte
	err := m.pool.QueryRow(ctx, `SELECT value FROM rm_secrets WHERE name = $1`, name).Scan(&v)
	return v, classify(err)
}

// ClaimKey records an idempotency key's fingerprint unless it is recorded
// since expiredBefore, and returns the one recorded.
func (m *readModels) ClaimKey(ctx context.Context, tenant, key string, fingerprint []byte, now, expiredBefore time.Time) ([]byte, error) {
	if _, err := m.pool.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, fingerprint, created_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, created_at = excluded.created_at
			WHERE idempotency_keys.created_at < $5`, tenant, key, fingerprint, now, expiredBefore); err != nil {
		return nil, classify(err)
	}
	var v []byte
	err := m.pool.QueryRow(ctx, `SELECT fingerprint FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2`,
		tenant, key).Scan(&v)
	return v, classify(err)
}

// ReleaseKey forgets an idempotency key recorded with fingerprint.
func (m *readModels) ReleaseKey(ctx context.Context, tenant, key string, fingerprint []byte) error {
	_, err := m.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2 AND fingerprint = $3`,
		tenant, key, fingerprint)
	return classify(err)
}

// Ping checks that the read-model database answers.
func (m *readModels) Ping(ctx context.Context) error {
	if err := m.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: read models: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// Update runs fn in a transaction.
func (m *readModels) Update(ctx context.Context, derived bool, fn func(readmodel.Tx) error) error {
	return classify(pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		// What derives from the durable log is written again if a crash
		// loses it, so its commit need not wait for the WAL flush, which
		// spares the events' own commits one fsync per batch. Only on the
		// event store's own server, though: there a checkpoint is durable
		// before any later synchronous commit (WAL order), such as the
		// retention job's, which trims events behind the checkpoints; a
		// read-model server of its own could lose a checkpoint that
		// retention has already acted on.
		if derived && !m.owned {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
		}
		return fn(rmTx{tx})
	}))
}

// Checkpoint returns a checkpoint (zero if it never moved).
func (m *readModels) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	var cp projection.Checkpoint
	var txid string
	err := m.pool.QueryRow(ctx, `SELECT tx_id::text, position, updated_at, generation FROM projection_checkpoints WHERE name = $1`, name).
		Scan(&txid, &cp.Cursor.Position, &cp.UpdatedAt, &cp.Generation)
	if errors.Is(err, pgx.ErrNoRows) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("postgres: checkpoint %s: %w", name, classify(err))
	}
	if cp.Cursor.TxID, err = strconv.ParseUint(txid, 10, 64); err != nil {
		return cp, fmt.Errorf("postgres: checkpoint %s: bad tx id %q", name, txid)
	}
	return cp, nil
}

// rmTx is a read-model write transaction.
type rmTx struct{ tx pgx.Tx }

func (t rmTx) LockCheckpoints(ctx context.Context, names []string) ([]eventstore.Cursor, error) {
	found, err := t.LockExistingCheckpoints(ctx, names)
	if err != nil {
		return nil, err
	}
	if len(found) != len(names) {
		// A checkpoint's first batch: create the missing rows (in names'
		// order), then lock them all.
		if _, err := t.tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`,
			names); err != nil {
			return nil, err
		}
		if found, err = t.LockExistingCheckpoints(ctx, names); err != nil {
			return nil, err
		}
		if len(found) != len(names) {
			return nil, fmt.Errorf("checkpoints %v: %d of %d found after creating them", names, len(found), len(names))
		}
	}
	out := make([]eventstore.Cursor, len(names))
	for i, name := range names {
		out[i] = found[name]
	}
	return out, nil
}

// LockExistingCheckpoints locks the named checkpoints that exist, in name
// order, and returns their cursors.
func (t rmTx) LockExistingCheckpoints(ctx context.Context, names []string) (map[string]eventstore.Cursor, error) {
	rows, err := t.tx.Query(ctx, `SELECT name, tx_id::text, position FROM projection_checkpoints WHERE name = ANY($1)
		ORDER BY name FOR UPDATE`, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]eventstore.Cursor, len(names))
	for rows.Next() {
		var name, txid string
		var pos int64
		if err := rows.Scan(&name, &txid, &pos); err != nil {
			return nil, err
		}
		id, err := strconv.ParseUint(txid, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: bad tx id %q", name, txid)
		}
		out[name] = eventstore.Cursor{TxID: id, Position: pos}
	}
	return out, rows.Err()
}

func (t rmTx) LockAllCheckpoints(ctx context.Context) error {
	// In name order, as LockCheckpoints locks them.
	_, err := t.tx.Exec(ctx, `SELECT 1 FROM projection_checkpoints ORDER BY name FOR UPDATE`)
	return err
}

func (t rmTx) SetCheckpoints(ctx context.Context, names []string, to eventstore.Cursor) error {
	_, err := t.tx.Exec(ctx, `UPDATE projection_checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now()
		WHERE name = ANY($1)`, names, strconv.FormatUint(to.TxID, 10), to.Position)
	return err
}

func (t rmTx) CreateCheckpoint(ctx context.Context, name string) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`, name)
	return tag.RowsAffected() == 1, err
}

func (t rmTx) DeleteCheckpoint(ctx context.Context, name string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, name)
	return err
}

func (t rmTx) NextGeneration(ctx context.Context, name string) (int64, error) {
	var gen int64
	err := t.tx.QueryRow(ctx, `UPDATE projection_checkpoints SET generation = generation + 1 WHERE name = $1 RETURNING generation`,
		name).Scan(&gen)
	return gen, err
}

func (t rmTx) CheckpointNames(ctx context.Context) ([]string, error) {
	rows, _ := t.tx.Query(ctx, `SELECT name FROM projection_checkpoints ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func splitKeys(keys []readmodel.Key) (tenants, ids []string) {
	tenants, ids = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.Tenant, k.EntityID
	}
	return tenants, ids
}

// StreamPositions reads the positions of every table in one round trip.
func (t rmTx) StreamPositions(ctx context.Context, projections []string, keys []readmodel.Key) ([]readmodel.StreamPosition, error) {
	tenants, ids := splitKeys(keys)
	var b pgx.Batch
	for _, name := range projections {
		b.Queue(`SELECT p.tenant_id, p.entity_id, p.version FROM `+readmodel.PositionsTable(name)+` p
			JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, entity_id) USING (tenant_id, entity_id)
			FOR UPDATE OF p`, tenants, ids)
	}
	res := t.tx.SendBatch(ctx, &b)
	defer res.Close()
	var out []readmodel.StreamPosition
	for _, name := range projections {
		rows, _ := res.Query()
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (readmodel.StreamPosition, error) {
			p := readmodel.StreamPosition{Projection: name}
			return p, r.Scan(&p.Tenant, &p.EntityID, &p.Version)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, res.Close()
}

// RaiseStreamPositions writes the positions of every table in one round trip.
func (t rmTx) RaiseStreamPositions(ctx context.Context, positions []readmodel.StreamPosition) error {
	type cols struct {
		tenants, ids []string
		versions     []int64
	}
	var order []string
	byTable := map[string]*cols{}
	for _, p := range positions {
		table := readmodel.PositionsTable(p.Projection)
		c, ok := byTable[table]
		if !ok {
			c = &cols{}
			byTable[table] = c
			order = append(order, table)
		}
		c.tenants, c.ids, c.versions = append(c.tenants, p.Tenant), append(c.ids, p.EntityID), append(c.versions, p.Version)
	}
	var b pgx.Batch
	for _, table := range order {
		c := byTable[table]
		b.Queue(`INSERT INTO `+table+` (tenant_id, entity_id, version)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
			ON CONFLICT (tenant_id, entity_id) DO UPDATE SET version = excluded.version
			WHERE `+table+`.version < excluded.version`, c.tenants, c.ids, c.versions)
	}
	if err := t.tx.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	return t.announce(ctx, positions)
}

// changesChannel is the LISTEN/NOTIFY channel on which every read-model
// transaction announces, at its commit, the stream positions it raised (see
// readmodel.Watcher): each replica's in-process response cache drops what it
// holds of those entities, whichever replica applied them.
const changesChannel = "tracktrace_readmodels"

// maxAnnouncement keeps each NOTIFY payload under PostgreSQL's 8000 bytes.
const maxAnnouncement = 7000

// resetAnnouncement says that any entity may have changed.
const resetAnnouncement = "*"

// announce queues NOTIFYs of positions, delivered when the transaction
// commits (and never if it does not): JSON arrays of [projection, tenant,
// entity id, version], as many as the payload limit needs.
func (t rmTx) announce(ctx context.Context, positions []readmodel.StreamPosition) error {
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		buf = append(buf, ']')
		_, err := t.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, string(buf))
		buf = buf[:0]
		return err
	}
	for _, p := range positions {
		if _, rebuild := projection.ShadowOf(p.Projection); rebuild {
			continue // nobody reads a rebuild before it is switched in (SwapTable)
		}
		item, err := json.Marshal([]any{p.Projection, p.Tenant, p.EntityID, p.Version})
		if err != nil {
			return err
		}
		if len(buf)+len(item)+2 > maxAnnouncement {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			buf = append(buf, '[')
		} else {
			buf = append(buf, ',')
		}
		buf = append(buf, item...)
	}
	return flush()
}

// Watch implements readmodel.Watcher.
func (m *readModels) Watch(ctx context.Context, changed func([]readmodel.StreamPosition, bool)) {
	listen(ctx, m.pool.Config().ConnConfig, changesChannel, func() { changed(nil, true) }, func(payload string) {
		if payload == resetAnnouncement {
			changed(nil, true)
			return
		}
		var items [][4]json.RawMessage
		if err := json.Unmarshal([]byte(payload), &items); err != nil {
			changed(nil, true) // not ours to read: assume the worst
			return
		}
		positions := make([]readmodel.StreamPosition, 0, len(items))
		for _, it := range items {
			var p readmodel.StreamPosition
			if json.Unmarshal(it[0], &p.Projection) != nil || json.Unmarshal(it[1], &p.Tenant) != nil ||
				json.Unmarshal(it[2], &p.EntityID) != nil || json.Unmarshal(it[3], &p.Version) != nil {
				changed(nil, true)
				return
			}
			positions = append(positions, p)
		}
		changed(positions, false)
	})
}

// bulkInsert reports whether n rows are worth a COPY, which fresh allows:
// the rows are known to be new.
func bulkInsert(fresh bool, n int) bool { return fresh && n >= 64 }

func (t rmTx) InsertTimeline(ctx context.Context, table string, events []eventstore.Recorded, fresh bool) error {
	n := len(events)
	cols := [9][]any{}
	for i := range cols {
		cols[i] = make([]any, n)
	}
	for i, e := range events {
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return err
		}
		for c, v := range []any{e.Tenant, e.StreamID, e.Version, e.ID, e.Type, e.OccurredAt, e.RecordedAt, string(e.Data), string(m)} {
			cols[c][i] = v
		}
	}
	names := []string{"tenant_id", "entity_id", "version", "event_id", "event_type", "occurred_at", "recorded_at", "data", "metadata"}
	if bulkInsert(fresh, n) {
		_, err := t.tx.CopyFrom(ctx, pgx.Identifier{table}, names, copyRows(cols[:]))
		return err
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data, metadata)
		SELECT t, e, v, i, ty, o, r, d::json, m::json
		FROM unnest($1::text[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[])
			AS u(t, e, v, i, ty, o, r, d, m)
		ON CONFLICT DO NOTHING`, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8])
	return err
}

// copyRows turns columns into COPY rows.
func copyRows(cols [][]any) pgx.CopyFromSource {
	n := len(cols[0])
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = make([]any, len(cols))
		for c := range cols {
			rows[i][c] = cols[c][i]
		}
	}
	return pgx.CopyFromRows(rows)
}

func (t rmTx) EntityStates(ctx context.Context, table string, keys []readmodel.Key) (map[readmodel.Key]json.RawMessage, error) {
	tenants, ids := splitKeys(keys)
	rows, err := t.tx.Query(ctx, `SELECT r.tenant_id, r.entity_id, r.state::text FROM `+table+` r
		JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, entity_id) USING (tenant_id, entity_id)`, tenants, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[readmodel.Key]json.RawMessage, len(keys))
	for rows.Next() {
		var k readmodel.Key
		var st string
		if err := rows.Scan(&k.Tenant, &k.EntityID, &st); err != nil {
			return nil, err
		}
		out[k] = json.RawMessage(st)
	}
	return out, rows.Err()
}

func (t rmTx) UpsertEntities(ctx context.Context, table string, rows []readmodel.EntityRow) error {
	n := len(rows)
	tenants, ids, types, statuses, states, views := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	parents := make([]string, n)
	versions := make([]int64, n)
	updated := make([]time.Time, n)
	for i, r := range rows {
		tenants[i], ids[i], types[i], statuses[i], versions[i], updated[i] = r.Tenant, r.EntityID, r.EntityType, r.Status, r.Version, r.UpdatedAt
		states[i], views[i], parents[i] = string(r.State), string(r.View), r.ParentID
	}
	// parent_id is NULL without a parent: the index of children holds
	// only the entities that have one.
	_, err := t.tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, entity_id, entity_type, status, version, updated_at, state, view, parent_id)
		SELECT t, e, ty, s, v, u, st::json, vw::json, nullif(p, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::timestamptz[], $7::text[], $8::text[], $9::text[])
			AS x(t, e, ty, s, v, u, st, vw, p)
		ON CONFLICT (tenant_id, entity_id) DO UPDATE SET entity_type = excluded.entity_type, status = excluded.status,
			version = excluded.version, updated_at = excluded.updated_at, state = excluded.state, view = excluded.view,
			parent_id = excluded.parent_id
		WHERE `+table+`.version < excluded.version`, tenants, ids, types, statuses, versions, updated, states, views, parents)
	return err
}

func splitOperationKeys(keys []tracking.OperationKey) (tenants, entities, kinds, ops []string) {
	n := len(keys)
	tenants, entities, kinds, ops = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, k := range keys {
		tenants[i], entities[i], kinds[i], ops[i] = k.Tenant, k.EntityID, k.Kind, k.OperationID
	}
	return tenants, entities, kinds, ops
}

func (t rmTx) OperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) ([]tracking.OperationStart, error) {
	qt, qe, qk, qo := splitOperationKeys(keys)
	rows, err := t.tx.Query(ctx, `SELECT s.tenant_id, s.entity_id, s.kind, s.operation_id, s.operation, s.site_id, s.started_at FROM `+table+` s
		JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(tenant_id, entity_id, kind, operation_id)
			USING (tenant_id, entity_id, kind, operation_id)`, qt, qe, qk, qo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tracking.OperationStart
	for rows.Next() {
		var s tracking.OperationStart
		if err := rows.Scan(&s.Tenant, &s.EntityID, &s.Kind, &s.OperationID, &s.Operation, &s.SiteID, &s.StartedAt); err != nil {
			return nil, err
		}
		s.StartedAt = s.StartedAt.UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}

func (t rmTx) DeleteOperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) error {
	dt, de, dk, do := splitOperationKeys(keys)
	_, err := t.tx.Exec(ctx, `DELETE FROM `+table+` s USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(t, e, k, o)
		WHERE s.tenant_id = k.t AND s.entity_id = k.e AND s.kind = k.k AND s.operation_id = k.o`, dt, de, dk, do)
	return err
}

func (t rmTx) UpsertOperationStarts(ctx context.Context, table string, starts []tracking.OperationStart) error {
	keys := make([]tracking.OperationKey, len(starts))
	ops, sites, at := make([]string, len(starts)), make([]string, len(starts)), make([]time.Time, len(starts))
	for i, s := range starts {
		keys[i], ops[i], sites[i], at[i] = s.Key(), s.Operation, s.SiteID, s.StartedAt
	}
	st, se, sk, so := splitOperationKeys(keys)
	_, err := t.tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, entity_id, kind, operation_id, operation, started_at, site_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[])
		ON CONFLICT (tenant_id, entity_id, kind, operation_id) DO UPDATE SET operation = excluded.operation, started_at = excluded.started_at,
			site_id = excluded.site_id`,
		st, se, sk, so, ops, at, sites)
	return err
}

// metricColumns are rm_metric_points' columns.
const metricColumns = "tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value, site_id"

func (t rmTx) InsertMetricPoints(ctx context.Context, table string, points []tracking.MetricPoint, fresh bool) error {
	n := len(points)
	cols := [10][]any{}
	for i := range cols {
		cols[i] = make([]any, n)
	}
	for i, p := range points {
		for c, v := range []any{p.Tenant, p.EntityID, p.Version, p.Kind, p.EntityType, p.Name, p.Outcome, p.OccurredAt, p.Value, p.Site} {
			cols[c][i] = v
		}
	}
	if bulkInsert(fresh, n) {
		_, err := t.tx.CopyFrom(ctx, pgx.Identifier{table}, strings.Split(metricColumns, ", "), copyRows(cols[:]))
		return err
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO `+table+` (`+metricColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::float8[], $10::text[])
		ON CONFLICT DO NOTHING`, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9])
	return err
}

func (t rmTx) CopyMetricPoints(ctx context.Context, from, to string, upTo []readmodel.StreamPosition) error {
	if len(upTo) == 0 {
		return nil
	}
	tenants, ids, versions := make([]string, len(upTo)), make([]string, len(upTo)), make([]int64, len(upTo))
	for i, p := range upTo {
		tenants[i], ids[i], versions[i] = p.Tenant, p.EntityID, p.Version
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO `+to+` (`+metricColumns+`) SELECT `+strings.ReplaceAll("m."+metricColumns, ", ", ", m.")+`
		FROM `+from+` m JOIN unnest($1::text[], $2::text[], $3::int8[]) AS k(tenant_id, entity_id, version)
			ON m.tenant_id = k.tenant_id AND m.entity_id = k.entity_id AND m.version <= k.version
		ON CONFLICT DO NOTHING`, tenants, ids, versions)
	return err
}

func (t rmTx) CopyOperationStarts(ctx context.Context, from, to string, keys []readmodel.Key) error {
	tenants, ids := splitKeys(keys)
	_, err := t.tx.Exec(ctx, `INSERT INTO `+to+` (tenant_id, entity_id, kind, operation_id, operation, started_at, site_id)
		SELECT s.tenant_id, s.entity_id, s.kind, s.operation_id, s.operation, s.started_at, s.site_id
		FROM `+from+` s JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, entity_id) USING (tenant_id, entity_id)
		ON CONFLICT DO NOTHING`, tenants, ids)
	return err
}

func (t rmTx) Horizon(ctx context.Context, name string) (time.Time, error) {
	var at time.Time
	err := t.tx.QueryRow(ctx, `SELECT recorded_before FROM rm_horizons WHERE name = $1`, name).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	return at.UTC(), err
}

func (t rmTx) RaiseHorizon(ctx context.Context, name string, before time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO rm_horizons (name, recorded_before) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET recorded_before = excluded.recorded_before
		WHERE rm_horizons.recorded_before < excluded.recorded_before`, name, before)
	return err
}

func (t rmTx) DeleteTimelineBefore(ctx context.Context, table string, before time.Time) (int64, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM `+table+` WHERE recorded_at < $1`, before)
	return tag.RowsAffected(), err
}

// CreateShadow creates shadow like table: its columns, keys and indexes
// (PostgreSQL names the indexes).
func (t rmTx) CreateShadow(ctx context.Context, table, shadow string) error {
	_, err := t.tx.Exec(ctx, `DROP TABLE IF EXISTS `+shadow+`; CREATE TABLE `+shadow+` (LIKE `+table+` INCLUDING ALL)`)
	return err
}

// SwapTable drops table and renames shadow to its name. Readers wait for
// the transaction's commit (the DROP's exclusive lock) and then read the
// new table: a statement resolves the name again once the lock is granted.
// Any entity may read otherwise now: every replica's cache is told so at
// the commit.
func (t rmTx) SwapTable(ctx context.Context, table, shadow string) error {
	_, err := t.tx.Exec(ctx, `DROP TABLE `+table+`; ALTER TABLE `+shadow+` RENAME TO `+table)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, resetAnnouncement)
	return err
}

// DeleteAll empties a table (a projection's reset): any entity may have
// changed, as every replica's cache is told at the commit.
func (t rmTx) DeleteAll(ctx context.Context, table string) error {
	// DELETE, not TRUNCATE: readers keep seeing the old rows until commit.
	if _, err := t.tx.Exec(ctx, "DELETE FROM "+table); err != nil {
		return err
	}
	_, err := t.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, resetAnnouncement)
	return err
}

func (t rmTx) DeleteEntity(ctx context.Context, table, tenant, id string) error {
	if _, err := t.tx.Exec(ctx, "DELETE FROM "+table+" WHERE tenant_id = $1 AND entity_id = $2", tenant, id); err != nil {
		return err
	}
	if table != readmodel.TablePositionsEntities {
		return nil
	}
	return t.announce(ctx, []readmodel.StreamPosition{{Key: readmodel.Key{Tenant: tenant, EntityID: id}, Version: readmodel.Erased}})
}

// TryLead takes the projection's session advisory lock on a dedicated
// connection; leadership is lost when that connection fails.
func (m *readModels) TryLead(ctx context.Context, name string) (<-chan struct{}, func(), bool, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, false, classify(err)
	}
	h := fnv.New64a()
	h.Write([]byte("tracktrace.projection." + name))
	key := int64(h.Sum64())
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, nil, false, classify(err)
	}
	lost := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // watch the connection that holds the lock
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					close(lost)
					return
				}
			}
		}
	}()
	release := func() {
		close(stop)
		<-done
		uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			conn.Conn().Close(uctx) // closing the session releases the lock
		}
		conn.Release()
	}
	return lost, release, true, nil
}

// EntityView returns an entity's view, or tracking.ErrNotFound.
func (m *readModels) EntityView(ctx context.Context, tenant, id string) (json.RawMessage, error) {
	rows, _ := m.pool.Query(ctx, `SELECT view::text FROM rm_entities WHERE tenant_id = $1 AND entity_id = $2`, tenant, id)
	view, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tracking.ErrNotFound
	}
	return json.RawMessage(view), classify(err)
}

// EntityViews returns up to limit entity views of a page, by entity id.
func (m *readModels) EntityViews(ctx context.Context, q tracking.EntityQuery, limit int) ([]json.RawMessage, error) {
	// Only the filters q sets are in the statement: a filter compared
	// with '' in SQL makes a generic plan that walks the tenant's entities
	// by id, and a filter that matches few entities then reads them all.
	// The children of an entity are served by the index of parents.
	query, args := `SELECT view::text FROM rm_entities WHERE tenant_id = $1 AND entity_id > $2`, []any{q.Tenant, q.After}
	if q.EntityType != "" {
		args = append(args, q.EntityType)
		query += ` AND entity_type = $` + strconv.Itoa(len(args))
	}
	if q.Status != "" {
		args = append(args, q.Status)
		query += ` AND status = $` + strconv.Itoa(len(args))
	}
	if q.Parent != "" {
		args = append(args, q.Parent)
		query += ` AND parent_id = $` + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	rows, err := m.pool.Query(ctx, query+` ORDER BY entity_id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, classify(err)
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (json.RawMessage, error) {
		var v string
		err := r.Scan(&v)
		return json.RawMessage(v), err
	})
	return views, classify(err)
}

// TimelineEntries returns the timeline rows r selects.
func (m *readModels) TimelineEntries(ctx context.Context, r readmodel.TimelineRange) ([]tracking.TimelineEntry, error) {
	rows, err := m.pool.Query(ctx, `SELECT event_id, version, event_type, occurred_at, recorded_at, data::text, metadata::text
		FROM rm_timeline WHERE tenant_id = $1 AND entity_id = $2 AND occurred_at >= $3 AND occurred_at < $4
		AND (occurred_at, version) > ($5, $6) ORDER BY occurred_at, version LIMIT $7`,
		r.Tenant, r.EntityID, r.From, r.To, r.AfterAt, r.AfterVersion, r.Limit)
	if err != nil {
		return nil, classify(err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tracking.TimelineEntry, error) {
		var e tracking.TimelineEntry
		var data, meta string
		if err := row.Scan(&e.EventID, &e.Version, &e.Type, &e.OccurredAt, &e.RecordedAt, &data, &meta); err != nil {
			return e, err
		}
		var err error
		if e.Metadata, err = eventstore.DecodeMetadata(meta); err != nil {
			return e, fmt.Errorf("version %d: bad metadata: %w", e.Version, err)
		}
		e.Data = json.RawMessage(data)
		e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
		return e, nil
	})
	if err != nil {
		return nil, classify(err)
	}
	if entries == nil {
		entries = []tracking.TimelineEntry{}
	}
	return entries, nil
}

// StreamPosition returns the version of an entity a projection has applied.
func (m *readModels) StreamPosition(ctx context.Context, projection, tenant, id string) (int64, error) {
	var v int64
	err := m.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+readmodel.PositionsTable(projection)+`
		WHERE tenant_id = $1 AND entity_id = $2`, tenant, id).Scan(&v)
	return v, classify(err)
}

// Checkpoints reads every checkpoint, by name.
func (m *readModels) Checkpoints(ctx context.Context) (map[string]projection.Checkpoint, error) {
	rows, err := m.pool.Query(ctx, `SELECT name, tx_id::text, position, updated_at, generation FROM projection_checkpoints`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := map[string]projection.Checkpoint{}
	for rows.Next() {
		var name, txid string
		var cp projection.Checkpoint
		if err := rows.Scan(&name, &txid, &cp.Cursor.Position, &cp.UpdatedAt, &cp.Generation); err != nil {
			return nil, classify(err)
		}
		if cp.Cursor.TxID, err = strconv.ParseUint(txid, 10, 64); err != nil {
			return nil, fmt.Errorf("postgres: checkpoint %s: bad tx id %q", name, txid)
		}
		out[name] = cp
	}
	return out, classify(rows.Err())
}

// MetricSamples returns the metric points q selects.
func (m *readModels) MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	rows, err := m.pool.Query(ctx, `SELECT occurred_at, value, name FROM rm_metric_points
		WHERE tenant_id = $1 AND kind = $2 AND occurred_at >= $3 AND occurred_at < $4
		AND ($5 = '' OR entity_type = $5) AND ($6 = '' OR name = $6) AND ($7 = '' OR site_id = $7)`,
		q.Tenant, q.Kind, q.From, q.To, q.EntityType, q.Name, q.Site)
	if err != nil {
		return nil, classify(err)
	}
	samples, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tracking.MetricSample, error) {
		var s tracking.MetricSample
		err := r.Scan(&s.OccurredAt, &s.Value, &s.Name)
		return s, err
	})
	return samples, classify(err)
}

// DumpTable returns a table's rows as PostgreSQL row literals.
func (m *readModels) DumpTable(ctx context.Context, t readmodel.Table) ([]string, error) {
	rows, err := m.pool.Query(ctx, "SELECT row("+strings.Join(t.Columns, ", ")+")::text FROM "+t.Name+
		" ORDER BY "+strings.Join(t.Key, ", "))
	if err != nil {
		return nil, classify(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify(err)
	}
	if lines == nil {
		lines = []string{}
	}
	return lines, nil
}
