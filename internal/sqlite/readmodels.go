package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

//go:embed migrations_readmodels/*.sql
var readModelMigrations embed.FS

var (
	_ readmodel.Engine = (*readModels)(nil)
	_ readmodel.Tx     = (*rmTx)(nil)
)

// readModels is the SQLite engine of the read models, in the event store's
// file (the tables mirror PostgreSQL's). Writes go through the store's
// single writer connection (BEGIN IMMEDIATE transactions, which hold the
// file's write lock), reads through its read-only pool.
type readModels struct {
	store *Store
}

// OpenReadModels applies the read-model migrations (their own set, with the
// version table goose_readmodels_version) to the store's file and returns
// the read models on it. They share the store's connections: closing the
// store closes them.
func OpenReadModels(ctx context.Context, s *Store) (*readmodel.Store, error) {
	if err := s.migrate(ctx, readModelMigrations, "migrations_readmodels", "goose_readmodels_version"); err != nil {
		return nil, err
	}
	return readmodel.New(&readModels{store: s}, "sqlite"), nil
}

// Close releases nothing: the store owns the connections.
func (m *readModels) Close() error { return nil }

// Secret returns the value stored under name, storing candidate when there
// is none.
func (m *readModels) Secret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	if _, err := m.store.write.ExecContext(ctx, `INSERT INTO rm_secrets (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO NOTHING`, name, candidate); err != nil {
		return nil, classify(err)
	}
	var v []byte
	err := m.store.read.QueryRowContext(ctx, `SELECT value FROM rm_secrets WHERE name = ?`, name).Scan(&v)
	return v, classify(err)
}

// ClaimKey records an idempotency key's fingerprint unless it is recorded
// since expiredBefore, and returns the one recorded.
func (m *readModels) ClaimKey(ctx context.Context, tenant, key string, fingerprint []byte, now, expiredBefore time.Time) ([]byte, error) {
	if _, err := m.store.write.ExecContext(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, fingerprint, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, created_at = excluded.created_at
			WHERE idempotency_keys.created_at < ?`, tenant, key, fingerprint, now.UnixMicro(), expiredBefore.UnixMicro()); err != nil {
		return nil, classify(err)
	}
	var v []byte
	err := m.store.write.QueryRowContext(ctx, `SELECT fingerprint FROM idempotency_keys WHERE tenant_id = ? AND idempotency_key = ?`,
		tenant, key).Scan(&v)
	return v, classify(err)
}

// ReleaseKey forgets an idempotency key recorded with fingerprint.
func (m *readModels) ReleaseKey(ctx context.Context, tenant, key string, fingerprint []byte) error {
	_, err := m.store.write.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = ? AND idempotency_key = ? AND fingerprint = ?`,
		tenant, key, fingerprint)
	return classify(err)
}

// Ping checks that the database answers.
func (m *readModels) Ping(ctx context.Context) error {
	if err := m.store.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: read models: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// Update runs fn in a BEGIN IMMEDIATE transaction on the writer connection.
// Every commit waits for the disk: SQLite's synchronous setting is the
// file's, shared with the events.
func (m *readModels) Update(ctx context.Context, _ bool, fn func(readmodel.Tx) error) error {
	tx, err := m.store.write.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	defer tx.Rollback()
	if err := fn(&rmTx{tx: tx, now: m.store.now}); err != nil {
		return classify(err)
	}
	return classify(tx.Commit())
}

// Checkpoint returns a checkpoint (zero if it never moved).
func (m *readModels) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	var cp projection.Checkpoint
	var updated int64
	err := m.store.read.QueryRowContext(ctx, `SELECT tx_id, position, updated_at, generation FROM projection_checkpoints WHERE name = ?`, name).
		Scan(&cp.Cursor.TxID, &cp.Cursor.Position, &updated, &cp.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return projection.Checkpoint{}, nil
	}
	if err != nil {
		return projection.Checkpoint{}, fmt.Errorf("sqlite: checkpoint %s: %w", name, classify(err))
	}
	cp.UpdatedAt = time.UnixMicro(updated).UTC()
	return cp, nil
}

// rmTx is a read-model write transaction.
type rmTx struct {
	tx  *sql.Tx
	now func() time.Time
}

func (t *rmTx) LockCheckpoints(ctx context.Context, names []string) ([]eventstore.Cursor, error) {
	// The transaction holds the file's write lock: no other writer (in any
	// process) moves the checkpoints before it commits.
	ins, err := t.tx.PrepareContext(ctx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	for _, name := range names {
		if _, err := ins.ExecContext(ctx, name, t.now().UnixMicro()); err != nil {
			return nil, err
		}
	}
	found, err := t.LockExistingCheckpoints(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]eventstore.Cursor, len(names))
	for i, name := range names {
		out[i] = found[name]
	}
	return out, nil
}

// LockExistingCheckpoints reads the checkpoints that exist: the
// transaction's write lock holds them.
func (t *rmTx) LockExistingCheckpoints(ctx context.Context, names []string) (map[string]eventstore.Cursor, error) {
	sel, err := t.tx.PrepareContext(ctx, `SELECT tx_id, position FROM projection_checkpoints WHERE name = ?`)
	if err != nil {
		return nil, err
	}
	defer sel.Close()
	out := make(map[string]eventstore.Cursor, len(names))
	for _, name := range names {
		var c eventstore.Cursor
		switch err := sel.QueryRowContext(ctx, name).Scan(&c.TxID, &c.Position); {
		case err == nil:
			out[name] = c
		case !errors.Is(err, sql.ErrNoRows):
			return nil, err
		}
	}
	return out, nil
}

// LockAllCheckpoints has nothing to do: the transaction's write lock
// excludes every other writer.
func (t *rmTx) LockAllCheckpoints(context.Context) error { return nil }

func (t *rmTx) SetCheckpoints(ctx context.Context, names []string, to eventstore.Cursor) error {
	set, err := t.tx.PrepareContext(ctx, `UPDATE projection_checkpoints SET tx_id = ?, position = ?, updated_at = ? WHERE name = ?`)
	if err != nil {
		return err
	}
	defer set.Close()
	now := t.now().UnixMicro()
	for _, name := range names {
		if _, err := set.ExecContext(ctx, to.TxID, to.Position, now, name); err != nil {
			return err
		}
	}
	return nil
}

func (t *rmTx) CreateCheckpoint(ctx context.Context, name string) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		name, t.now().UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *rmTx) DeleteCheckpoint(ctx context.Context, name string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM projection_checkpoints WHERE name = ?`, name)
	return err
}

func (t *rmTx) NextGeneration(ctx context.Context, name string) (int64, error) {
	var gen int64
	err := t.tx.QueryRowContext(ctx, `UPDATE projection_checkpoints SET generation = generation + 1 WHERE name = ? RETURNING generation`,
		name).Scan(&gen)
	return gen, err
}

func (t *rmTx) CheckpointNames(ctx context.Context) ([]string, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT name FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// The read-model writes of a projection batch read and write one row per
// entity. They do so in statements of many rows each (reads by IN list,
// writes with readmodel.InsertRows): one statement per row spent most of
// its time in database/sql and the driver (a goroutine per query to watch
// its context), not in SQLite. keysPerStatement bounds an IN list (under
// SQLite's limit of 32,766 bound values).
const keysPerStatement = 500

// byTenant groups keys' entity ids by tenant, each id once, in first-seen
// order.
func byTenant(keys []readmodel.Key) (tenants []string, ids map[string][]string) {
	ids = map[string][]string{}
	seen := make(map[readmodel.Key]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if _, ok := ids[k.Tenant]; !ok {
			tenants = append(tenants, k.Tenant)
		}
		ids[k.Tenant] = append(ids[k.Tenant], k.EntityID)
	}
	return tenants, ids
}

// placeholders returns "(?, ?, ?), (?, ?, ?)" for rows rows of cols
// columns, or "?, ?, ?" for one column without parentheses (an IN list).
func placeholders(rows, cols int) string {
	if cols == 1 {
		return strings.TrimSuffix(strings.Repeat("?, ", rows), ", ")
	}
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + "), "
	return strings.TrimSuffix(strings.Repeat(one, rows), ", ")
}

// selectByKeys runs query (its one parameter the tenant, then an IN list
// written where %s is) for every tenant's ids, keysPerStatement at a time,
// handing each row to scan.
func (t *rmTx) selectByKeys(ctx context.Context, query string, keys []readmodel.Key, scan func(tenant string, rows *sql.Rows) error) error {
	tenants, ids := byTenant(keys)
	for _, tenant := range tenants {
		for chunk := range chunks(ids[tenant], keysPerStatement) {
			args := make([]any, 0, len(chunk)+1)
			args = append(args, tenant)
			for _, id := range chunk {
				args = append(args, id)
			}
			rows, err := t.tx.QueryContext(ctx, fmt.Sprintf(query, placeholders(len(chunk), 1)), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := scan(tenant, rows); err != nil {
					rows.Close()
					return err
				}
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *rmTx) StreamPositions(ctx context.Context, projections []string, keys []readmodel.Key) ([]readmodel.StreamPosition, error) {
	var out []readmodel.StreamPosition
	for _, name := range projections {
		err := t.selectByKeys(ctx, `SELECT entity_id, version FROM `+readmodel.PositionsTable(name)+` WHERE tenant_id = ? AND entity_id IN (%s)`,
			keys, func(tenant string, rows *sql.Rows) error {
				p := readmodel.StreamPosition{Projection: name, Key: readmodel.Key{Tenant: tenant}}
				if err := rows.Scan(&p.EntityID, &p.Version); err != nil {
					return err
				}
				out = append(out, p)
				return nil
			})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *rmTx) RaiseStreamPositions(ctx context.Context, positions []readmodel.StreamPosition) error {
	byProjection := map[string][][]any{}
	var names []string
	for _, p := range positions {
		if _, ok := byProjection[p.Projection]; !ok {
			names = append(names, p.Projection)
		}
		byProjection[p.Projection] = append(byProjection[p.Projection], []any{p.Tenant, p.EntityID, p.Version})
	}
	for _, name := range names {
		// Rows of one key in one statement are taken in turn: the
		// highest version stays.
		if err := readmodel.InsertRows(ctx, t.SQL(), readmodel.PositionsTable(name), []string{"tenant_id", "entity_id", "version"},
			byProjection[name], `ON CONFLICT (tenant_id, entity_id) DO UPDATE SET version = excluded.version WHERE version < excluded.version`); err != nil {
			return err
		}
	}
	return nil
}

func (t *rmTx) InsertTimeline(ctx context.Context, table string, events []eventstore.Recorded, _ bool) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			return err
		}
		rows[i] = []any{e.Tenant, e.StreamID, e.Version, e.ID.String(), e.Type,
			e.OccurredAt.UnixMicro(), e.RecordedAt.UnixMicro(), string(e.Data), string(meta)}
	}
	return readmodel.InsertRows(ctx, t.SQL(), table, timelineColumns, rows, "ON CONFLICT DO NOTHING")
}

// timelineColumns are the timeline's columns.
var timelineColumns = []string{"tenant_id", "entity_id", "version", "event_id", "event_type", "occurred_at", "recorded_at", "data", "metadata"}

func (t *rmTx) EntityStates(ctx context.Context, table string, keys []readmodel.Key) (map[readmodel.Key]json.RawMessage, error) {
	out := make(map[readmodel.Key]json.RawMessage, len(keys))
	err := t.selectByKeys(ctx, `SELECT entity_id, state FROM `+table+` WHERE tenant_id = ? AND entity_id IN (%s)`,
		keys, func(tenant string, rows *sql.Rows) error {
			var id, st string
			if err := rows.Scan(&id, &st); err != nil {
				return err
			}
			out[readmodel.Key{Tenant: tenant, EntityID: id}] = json.RawMessage(st)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *rmTx) UpsertEntities(ctx context.Context, table string, rows []readmodel.EntityRow) error {
	values := make([][]any, len(rows))
	for i, r := range rows {
		// parent_id is NULL without a parent: the index of children
		// holds only the entities that have one.
		var parent any
		if r.ParentID != "" {
			parent = r.ParentID
		}
		values[i] = []any{r.Tenant, r.EntityID, r.EntityType, r.Status, r.Version,
			r.UpdatedAt.UnixMicro(), string(r.State), string(r.View), parent}
	}
	// Rows of one entity in one statement are taken in turn: the highest
	// version stays.
	return readmodel.InsertRows(ctx, t.SQL(), table,
		[]string{"tenant_id", "entity_id", "entity_type", "status", "version", "updated_at", "state", "view", "parent_id"}, values,
		`ON CONFLICT (tenant_id, entity_id) DO UPDATE SET entity_type = excluded.entity_type, status = excluded.status,
			version = excluded.version, updated_at = excluded.updated_at, state = excluded.state, view = excluded.view,
			parent_id = excluded.parent_id
		WHERE `+table+`.version < excluded.version`)
}

func (t *rmTx) OperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) ([]tracking.OperationStart, error) {
	// An entity has few open operations: its rows are read by entity and
	// the asked-for ones kept.
	wanted := make(map[tracking.OperationKey]bool, len(keys))
	entities := make([]readmodel.Key, 0, len(keys))
	for _, k := range keys {
		wanted[k] = true
		entities = append(entities, readmodel.Key{Tenant: k.Tenant, EntityID: k.EntityID})
	}
	var out []tracking.OperationStart
	err := t.selectByKeys(ctx, `SELECT entity_id, kind, operation_id, operation, site_id, started_at FROM `+table+`
		WHERE tenant_id = ? AND entity_id IN (%s)`, entities, func(tenant string, rows *sql.Rows) error {
		s := tracking.OperationStart{Tenant: tenant}
		var at int64
		if err := rows.Scan(&s.EntityID, &s.Kind, &s.OperationID, &s.Operation, &s.SiteID, &at); err != nil {
			return err
		}
		if wanted[tracking.OperationKey{Tenant: tenant, EntityID: s.EntityID, Kind: s.Kind, OperationID: s.OperationID}] {
			s.StartedAt = time.UnixMicro(at).UTC()
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *rmTx) DeleteOperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) error {
	for chunk := range chunks(keys, keysPerStatement) {
		args := make([]any, 0, 4*len(chunk))
		for _, k := range chunk {
			args = append(args, k.Tenant, k.EntityID, k.Kind, k.OperationID)
		}
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+`
			WHERE (tenant_id, entity_id, kind, operation_id) IN (VALUES `+placeholders(len(chunk), 4)+`)`, args...); err != nil {
			return err
		}
	}
	return nil
}

func (t *rmTx) UpsertOperationStarts(ctx context.Context, table string, starts []tracking.OperationStart) error {
	rows := make([][]any, len(starts))
	for i, s := range starts {
		rows[i] = []any{s.Tenant, s.EntityID, s.Kind, s.OperationID, s.Operation, s.StartedAt.UnixMicro(), s.SiteID}
	}
	// Rows of one start in one statement are taken in turn: the last stays.
	return readmodel.InsertRows(ctx, t.SQL(), table, strings.Split(startColumns, ", "), rows,
		`ON CONFLICT (tenant_id, entity_id, kind, operation_id) DO UPDATE SET operation = excluded.operation,
			started_at = excluded.started_at, site_id = excluded.site_id`)
}

func (t *rmTx) InsertMetricPoints(ctx context.Context, table string, points []tracking.MetricPoint, _ bool) error {
	rows := make([][]any, len(points))
	for i, p := range points {
		rows[i] = []any{p.Tenant, p.EntityID, p.Version, p.Kind, p.EntityType, p.Name, p.Outcome,
			p.OccurredAt.UnixMicro(), p.Value, p.Site}
	}
	return readmodel.InsertRows(ctx, t.SQL(), table, strings.Split(metricColumns, ", "), rows, "ON CONFLICT DO NOTHING")
}

// metricColumns are rm_metric_points' columns.
const metricColumns = "tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value, site_id"

func (t *rmTx) CopyMetricPoints(ctx context.Context, from, to string, upTo []readmodel.StreamPosition) error {
	if len(upTo) == 0 {
		return nil
	}
	stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO `+to+` (`+metricColumns+`) SELECT `+metricColumns+` FROM `+from+`
		WHERE tenant_id = ? AND entity_id = ? AND version <= ? ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, p := range upTo {
		if _, err := stmt.ExecContext(ctx, p.Tenant, p.EntityID, p.Version); err != nil {
			return err
		}
	}
	return nil
}

func (t *rmTx) CopyOperationStarts(ctx context.Context, from, to string, keys []readmodel.Key) error {
	stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO `+to+` (`+startColumns+`) SELECT `+startColumns+` FROM `+from+`
		WHERE tenant_id = ? AND entity_id = ? ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, k := range keys {
		if _, err := stmt.ExecContext(ctx, k.Tenant, k.EntityID); err != nil {
			return err
		}
	}
	return nil
}

// startColumns are rm_operation_starts' columns.
const startColumns = "tenant_id, entity_id, kind, operation_id, operation, started_at, site_id"

func (t *rmTx) Horizon(ctx context.Context, name string) (time.Time, error) {
	var us int64
	err := t.tx.QueryRowContext(ctx, `SELECT recorded_before FROM rm_horizons WHERE name = ?`, name).Scan(&us)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	return time.UnixMicro(us).UTC(), err
}

func (t *rmTx) RaiseHorizon(ctx context.Context, name string, before time.Time) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO rm_horizons (name, recorded_before) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET recorded_before = excluded.recorded_before WHERE recorded_before < excluded.recorded_before`,
		name, before.UnixMicro())
	return err
}

func (t *rmTx) DeleteTimelineBefore(ctx context.Context, table string, before time.Time) (int64, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE recorded_at < ?`, micros(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// createStatement matches the head of a stored CREATE TABLE or CREATE INDEX
// statement up to the name of the table it creates or indexes.
var (
	createTable = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE\s+("[^"]+"|\S+)`)
	createIndex = regexp.MustCompile(`(?is)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+("[^"]+"|\S+)\s+ON\s+("[^"]+"|\S+)`)
)

// CreateShadow creates shadow from table's stored schema: its CREATE TABLE
// statement under the new name, and its indexes, each named after the
// table's own with "_rebuild" added or, once swapped in (SQLite cannot
// rename an index), taken off again.
func (t *rmTx) CreateShadow(ctx context.Context, table, shadow string) error {
	if _, err := t.tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+shadow); err != nil {
		return err
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT type, name, sql FROM sqlite_master
		WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type = 'index', name`, table)
	if err != nil {
		return err
	}
	var stmts []string
	for rows.Next() {
		var typ, name, stmt string
		if err := rows.Scan(&typ, &name, &stmt); err != nil {
			rows.Close()
			return err
		}
		switch typ {
		case "table":
			stmts = append(stmts, createTable.ReplaceAllLiteralString(stmt, `CREATE TABLE "`+shadow+`"`))
		case "index":
			renamed, ok := strings.CutSuffix(name, "_rebuild")
			if !ok {
				renamed = name + "_rebuild"
			}
			m := createIndex.FindStringSubmatch(stmt)
			if m == nil {
				rows.Close()
				return fmt.Errorf("index %s of %s: cannot read %q", name, table, stmt)
			}
			stmts = append(stmts, `CREATE `+m[1]+`INDEX "`+renamed+`" ON "`+shadow+`"`+stmt[len(m[0]):])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(stmts) == 0 {
		return fmt.Errorf("table %s: no schema", table)
	}
	for _, stmt := range stmts {
		if _, err := t.tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create %s: %w", shadow, err)
		}
	}
	return nil
}

// SwapTable drops table and renames shadow to its name. Readers keep the
// snapshot they started with (WAL); their next statement sees the new table.
func (t *rmTx) SwapTable(ctx context.Context, table, shadow string) error {
	if _, err := t.tx.ExecContext(ctx, `DROP TABLE `+table); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `ALTER TABLE `+shadow+` RENAME TO `+table)
	return err
}

func (t *rmTx) DeleteAll(ctx context.Context, table string) error {
	_, err := t.tx.ExecContext(ctx, "DELETE FROM "+table)
	return err
}

func (t *rmTx) DeleteEntity(ctx context.Context, table, tenant, id string) error {
	_, err := t.tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE tenant_id = ? AND entity_id = ?", tenant, id)
	return err
}

// TryLead takes a non-blocking exclusive flock(2) on
// "<file>.projection-<name>.lock", which every process sharing the file
// competes for. The lock holds until release (or the process's end), so lost
// is nil: leadership is never lost while held.
func (m *readModels) TryLead(_ context.Context, name string) (<-chan struct{}, func(), bool, error) {
	path := m.store.path + ".projection-" + lockFileName(name) + ".lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, false, fmt.Errorf("sqlite: projection lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, false, nil
		}
		return nil, nil, false, fmt.Errorf("sqlite: projection lock %s: %w", name, err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) } // closing the descriptor releases the flock
	return nil, release, true, nil
}

// lockFileName keeps a projection name to characters safe in a file name.
func lockFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
}

// EntityView returns an entity's view, or tracking.ErrNotFound.
func (m *readModels) EntityView(ctx context.Context, tenant, id string) (json.RawMessage, error) {
	var view string
	err := m.store.read.QueryRowContext(ctx, `SELECT view FROM rm_entities WHERE tenant_id = ? AND entity_id = ?`, tenant, id).Scan(&view)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tracking.ErrNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	return json.RawMessage(view), nil
}

// EntityViews returns up to limit entity views of a page, by entity id.
func (m *readModels) EntityViews(ctx context.Context, q tracking.EntityQuery, limit int) ([]json.RawMessage, error) {
	// Only the filters q sets are in the statement: a filter compared
	// with '' in SQL keeps the planner off its index, and a filter that
	// matches few entities then reads every entity of the tenant. The
	// children of an entity are served by the index of parents.
	query, args := `SELECT view FROM rm_entities WHERE tenant_id = ? AND entity_id > ?`, []any{q.Tenant, q.After}
	if q.EntityType != "" {
		query, args = query+` AND entity_type = ?`, append(args, q.EntityType)
	}
	if q.Status != "" {
		query, args = query+` AND status = ?`, append(args, q.Status)
	}
	if q.Parent != "" {
		query, args = query+` AND parent_id = ?`, append(args, q.Parent)
	}
	rows, err := m.store.read.QueryContext(ctx, query+` ORDER BY entity_id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var view string
		if err := rows.Scan(&view); err != nil {
			return nil, classify(err)
		}
		out = append(out, json.RawMessage(view))
	}
	return out, classify(rows.Err())
}

// TimelineEntries returns the timeline rows r selects.
func (m *readModels) TimelineEntries(ctx context.Context, r readmodel.TimelineRange) ([]tracking.TimelineEntry, error) {
	rows, err := m.store.read.QueryContext(ctx, `SELECT event_id, version, event_type, occurred_at, recorded_at, data, metadata
		FROM rm_timeline WHERE tenant_id = ? AND entity_id = ? AND occurred_at >= ? AND occurred_at < ?
		AND (occurred_at, version) > (?, ?) ORDER BY occurred_at, version LIMIT ?`,
		r.Tenant, r.EntityID, r.From.UnixMicro(), r.To.UnixMicro(), r.AfterAt.UnixMicro(), r.AfterVersion, r.Limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []tracking.TimelineEntry{}
	for rows.Next() {
		var e tracking.TimelineEntry
		var id, data, meta string
		var occurred, recorded int64
		if err := rows.Scan(&id, &e.Version, &e.Type, &occurred, &recorded, &data, &meta); err != nil {
			return nil, classify(err)
		}
		if e.EventID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("version %d: bad event id: %w", e.Version, err)
		}
		if e.Metadata, err = eventstore.DecodeMetadata(meta); err != nil {
			return nil, fmt.Errorf("version %d: bad metadata: %w", e.Version, err)
		}
		e.Data = json.RawMessage(data)
		e.OccurredAt, e.RecordedAt = time.UnixMicro(occurred).UTC(), time.UnixMicro(recorded).UTC()
		out = append(out, e)
	}
	return out, classify(rows.Err())
}

// StreamPosition returns the version of an entity a projection has applied.
func (m *readModels) StreamPosition(ctx context.Context, projection, tenant, id string) (int64, error) {
	var v int64
	err := m.store.read.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM `+readmodel.PositionsTable(projection)+`
		WHERE tenant_id = ? AND entity_id = ?`, tenant, id).Scan(&v)
	return v, classify(err)
}

// Checkpoints reads every checkpoint, by name.
func (m *readModels) Checkpoints(ctx context.Context) (map[string]projection.Checkpoint, error) {
	rows, err := m.store.read.QueryContext(ctx, `SELECT name, tx_id, position, updated_at, generation FROM projection_checkpoints`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := map[string]projection.Checkpoint{}
	for rows.Next() {
		var name string
		var updated int64
		var cp projection.Checkpoint
		if err := rows.Scan(&name, &cp.Cursor.TxID, &cp.Cursor.Position, &updated, &cp.Generation); err != nil {
			return nil, classify(err)
		}
		cp.UpdatedAt = time.UnixMicro(updated).UTC()
		out[name] = cp
	}
	return out, classify(rows.Err())
}

// MetricSamples returns the metric points q selects.
func (m *readModels) MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	rows, err := m.store.read.QueryContext(ctx, `SELECT occurred_at, value, name FROM rm_metric_points
		WHERE tenant_id = ?1 AND kind = ?2 AND occurred_at >= ?3 AND occurred_at < ?4
		AND (?5 = '' OR entity_type = ?5) AND (?6 = '' OR name = ?6) AND (?7 = '' OR site_id = ?7) ORDER BY occurred_at`,
		q.Tenant, q.Kind, q.From.UnixMicro(), q.To.UnixMicro(), q.EntityType, q.Name, q.Site)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []tracking.MetricSample
	for rows.Next() {
		var s tracking.MetricSample
		var at int64
		if err := rows.Scan(&at, &s.Value, &s.Name); err != nil {
			return nil, classify(err)
		}
		s.OccurredAt = time.UnixMicro(at).UTC()
		out = append(out, s)
	}
	return out, classify(rows.Err())
}

// DumpTable returns a table's rows as JSON arrays of their columns.
func (m *readModels) DumpTable(ctx context.Context, t readmodel.Table) ([]string, error) {
	rows, err := m.store.read.QueryContext(ctx, "SELECT json_array("+strings.Join(t.Columns, ", ")+") FROM "+t.Name+
		" ORDER BY "+strings.Join(t.Key, ", "))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	lines := []string{}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, classify(err)
		}
		lines = append(lines, line)
	}
	return lines, classify(rows.Err())
}
