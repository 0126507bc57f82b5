package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

//go:embed migrations_readmodels/*.sql
var readModelMigrations embed.FS

var (
	_ projection.Target = (*ReadModels)(nil)
	_ projection.Leader = (*ReadModels)(nil)
)

// ReadModels holds the projections' read models and checkpoints in the event
// store's SQLite file. The tables and their meaning are those of the
// PostgreSQL engine. Writes go through the store's single writer connection
// (BEGIN IMMEDIATE transactions), reads through its read-only pool.
type ReadModels struct {
	store *Store
}

// Close releases nothing: the read models share the store's connections
// (closing the store closes them). It exists so that both engines' read
// models can be closed alike.
func (m *ReadModels) Close() error { return nil }

// OpenReadModels applies the read-model migrations (their own set, with the
// version table goose_readmodels_version) to the store's file and returns
// its read models. They share the store's connections: closing the store
// closes them.
func OpenReadModels(ctx context.Context, s *Store) (*ReadModels, error) {
	if err := s.migrate(ctx, readModelMigrations, "migrations_readmodels", "goose_readmodels_version"); err != nil {
		return nil, err
	}
	return &ReadModels{store: s}, nil
}

// Ping checks that the read-model database answers.
func (m *ReadModels) Ping(ctx context.Context) error {
	if err := m.store.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: read models: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// Checkpoint returns a projection's checkpoint (zero if it never ran).
func (m *ReadModels) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	var cp projection.Checkpoint
	var updated int64
	err := m.store.read.QueryRowContext(ctx, `SELECT tx_id, position, updated_at FROM projection_checkpoints WHERE name = ?`, name).
		Scan(&cp.Cursor.TxID, &cp.Cursor.Position, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return projection.Checkpoint{}, nil
	}
	if err != nil {
		return projection.Checkpoint{}, fmt.Errorf("sqlite: checkpoint %s: %w", name, classify(err))
	}
	cp.UpdatedAt = time.UnixMicro(updated).UTC()
	return cp, nil
}

// applier applies a batch of one projection inside the transaction.
type applier func(ctx context.Context, tx *sql.Tx, events []eventstore.Recorded) error

func applierOf(name string) (applier, error) {
	switch name {
	case tracking.ProjectionTimeline:
		return applyTimeline, nil
	case tracking.ProjectionEntities:
		return applyEntities, nil
	case tracking.ProjectionMetrics:
		return applyMetrics, nil
	}
	return nil, fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
}

// Apply applies a batch to one projection and moves its checkpoint from
// `from` to the batch's last cursor, in one transaction; it returns
// projection.ErrCheckpointMoved when the checkpoint is not at `from`. Events
// at or before `from` were applied already (a re-delivery) and are skipped,
// so the checkpoint never moves backwards.
func (m *ReadModels) Apply(ctx context.Context, name string, from eventstore.Cursor, events []eventstore.Recorded) error {
	if len(events) == 0 {
		return nil
	}
	apply, err := applierOf(name)
	if err != nil {
		return err
	}
	pending := make([]eventstore.Recorded, 0, len(events))
	for _, e := range events {
		if from.Less(e.Cursor) {
			pending = append(pending, e)
		}
	}
	err = m.inTx(ctx, func(tx *sql.Tx) error {
		// Compare-and-set. The transaction is BEGIN IMMEDIATE: it holds the
		// file's write lock, so no other writer (in any process) moves the
		// checkpoint before it commits.
		if _, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			name, m.store.now().UnixMicro()); err != nil {
			return err
		}
		var cur eventstore.Cursor
		if err := tx.QueryRowContext(ctx, `SELECT tx_id, position FROM projection_checkpoints WHERE name = ?`, name).
			Scan(&cur.TxID, &cur.Position); err != nil {
			return err
		}
		if cur != from {
			return projection.ErrCheckpointMoved
		}
		if len(pending) == 0 {
			return nil
		}
		if err := applyNew(ctx, tx, name, apply, pending); err != nil {
			return err
		}
		to := pending[len(pending)-1].Cursor
		_, err := tx.ExecContext(ctx, `UPDATE projection_checkpoints SET tx_id = ?, position = ?, updated_at = ? WHERE name = ?`,
			to.TxID, to.Position, m.store.now().UnixMicro(), name)
		return err
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("sqlite: apply %s: %w", name, classify(err))
	}
	return err
}

// inTx runs f in a write transaction, committing when it returns nil.
// ApplyEvents applies events to a projection without a global-log
// checkpoint (a Kafka-fed projection commits its consumer offsets after
// this returns). Events of a stream must come in version order; those at or
// below the stream's applied version are skipped, so redelivery is harmless.
func (m *ReadModels) ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error {
	apply, err := applierOf(name)
	if err != nil {
		return err
	}
	if err := m.inTx(ctx, func(tx *sql.Tx) error { return applyNew(ctx, tx, name, apply, events) }); err != nil {
		return fmt.Errorf("sqlite: apply %s: %w", name, classify(err))
	}
	return nil
}

// MoveCheckpoint moves a checkpoint that guards no read model (the Kafka
// relay's) from `from` to `to`; projection.ErrCheckpointMoved if it is not at `from`.
func (m *ReadModels) MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error {
	err := m.inTx(ctx, func(tx *sql.Tx) error {
		now := m.store.now().UnixMicro()
		if _, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE projection_checkpoints SET tx_id = ?, position = ?, updated_at = ?
			WHERE name = ? AND tx_id = ? AND position = ?`, to.TxID, to.Position, now, name, from.TxID, from.Position)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return cmp.Or(err, projection.ErrCheckpointMoved)
		}
		return nil
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("sqlite: move checkpoint %s: %w", name, classify(err))
	}
	return err
}

// applyNew applies the events a projection has not applied yet (by stream
// version) and records the streams' new versions.
func applyNew(ctx context.Context, tx *sql.Tx, name string, apply applier, events []eventstore.Recorded) error {
	seen := map[entityKey]int64{}
	var order []entityKey
	get, err := tx.PrepareContext(ctx, `SELECT version FROM rm_stream_positions WHERE projection = ? AND tenant_id = ? AND entity_id = ?`)
	if err != nil {
		return err
	}
	defer get.Close()
	for _, e := range events {
		k := entityKey{e.Tenant, e.StreamID}
		if _, ok := seen[k]; ok {
			continue
		}
		var v int64
		if err := get.QueryRowContext(ctx, name, k.tenant, k.id).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		seen[k] = v
		order = append(order, k)
	}
	fresh := make([]eventstore.Recorded, 0, len(events))
	for _, e := range events {
		k := entityKey{e.Tenant, e.StreamID}
		if e.Version > seen[k] {
			fresh = append(fresh, e)
			seen[k] = e.Version
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := apply(ctx, tx, fresh); err != nil {
		return err
	}
	put, err := tx.PrepareContext(ctx, `INSERT INTO rm_stream_positions (projection, tenant_id, entity_id, version) VALUES (?, ?, ?, ?)
		ON CONFLICT (projection, tenant_id, entity_id) DO UPDATE SET version = excluded.version WHERE version < excluded.version`)
	if err != nil {
		return err
	}
	defer put.Close()
	for _, k := range order {
		if _, err := put.ExecContext(ctx, name, k.tenant, k.id, seen[k]); err != nil {
			return err
		}
	}
	return nil
}

func (m *ReadModels) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := m.store.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func applyTimeline(ctx context.Context, tx *sql.Tx, events []eventstore.Recorded) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO rm_timeline
		(tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data, metadata)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, e := range events {
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, e.Tenant, e.StreamID, e.Version, e.ID.String(), e.Type,
			e.OccurredAt.UnixMicro(), e.RecordedAt.UnixMicro(), string(e.Data), string(meta)); err != nil {
			return err
		}
	}
	return nil
}

type entityKey struct{ tenant, id string }

func applyEntities(ctx context.Context, tx *sql.Tx, events []eventstore.Recorded) error {
	byEntity := map[entityKey][]eventstore.Recorded{}
	var order []entityKey
	for _, e := range events {
		k := entityKey{e.Tenant, e.StreamID}
		if _, ok := byEntity[k]; !ok {
			order = append(order, k)
		}
		byEntity[k] = append(byEntity[k], e)
	}
	sel, err := tx.PrepareContext(ctx, `SELECT state FROM rm_entities WHERE tenant_id = ? AND entity_id = ?`)
	if err != nil {
		return err
	}
	defer sel.Close()
	up, err := tx.PrepareContext(ctx, `INSERT INTO rm_entities
		(tenant_id, entity_id, entity_type, status, version, updated_at, state, view) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, entity_id) DO UPDATE SET entity_type = excluded.entity_type, status = excluded.status,
			version = excluded.version, updated_at = excluded.updated_at, state = excluded.state, view = excluded.view
		WHERE rm_entities.version < excluded.version`)
	if err != nil {
		return err
	}
	defer up.Close()
	for _, k := range order {
		var state json.RawMessage
		var st string
		switch err := sel.QueryRowContext(ctx, k.tenant, k.id).Scan(&st); {
		case err == nil:
			state = json.RawMessage(st)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		newState, view := tracking.FoldEntity(k.id, state, byEntity[k])
		v, err := json.Marshal(view)
		if err != nil {
			return err
		}
		if _, err := up.ExecContext(ctx, k.tenant, k.id, view.EntityType, view.Status, view.Version,
			view.UpdatedAt.UnixMicro(), string(newState), string(v)); err != nil {
			return err
		}
	}
	return nil
}

func applyMetrics(ctx context.Context, tx *sql.Tx, events []eventstore.Recorded) error {
	open := map[tracking.OperationKey]tracking.OperationStart{}
	if keys := tracking.CompletedOperations(events); len(keys) > 0 {
		sel, err := tx.PrepareContext(ctx, `SELECT operation, started_at FROM rm_operation_starts
			WHERE tenant_id = ? AND entity_id = ? AND operation_id = ?`)
		if err != nil {
			return err
		}
		defer sel.Close()
		for _, k := range keys {
			s := tracking.OperationStart{Tenant: k.Tenant, EntityID: k.EntityID, OperationID: k.OperationID}
			var at int64
			switch err := sel.QueryRowContext(ctx, k.Tenant, k.EntityID, k.OperationID).Scan(&s.Operation, &at); {
			case err == nil:
				s.StartedAt = time.UnixMicro(at).UTC()
				open[k] = s
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
	}
	batch := tracking.FoldMetrics(events, open)
	for _, k := range batch.Completed {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rm_operation_starts WHERE tenant_id = ? AND entity_id = ? AND operation_id = ?`,
			k.Tenant, k.EntityID, k.OperationID); err != nil {
			return err
		}
	}
	if len(batch.Open) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO rm_operation_starts (tenant_id, entity_id, operation_id, operation, started_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, entity_id, operation_id) DO UPDATE SET operation = excluded.operation, started_at = excluded.started_at`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range batch.Open {
			if _, err := stmt.ExecContext(ctx, s.Tenant, s.EntityID, s.OperationID, s.Operation, s.StartedAt.UnixMicro()); err != nil {
				return err
			}
		}
	}
	points := batch.Points
	if len(points) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO rm_metric_points
		(tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, p := range points {
		if _, err := stmt.ExecContext(ctx, p.Tenant, p.EntityID, p.Version, p.Kind, p.EntityType, p.Name, p.Outcome,
			p.OccurredAt.UnixMicro(), p.Value); err != nil {
			return err
		}
	}
	return nil
}

// Reset empties a projection's tables and its checkpoint in one
// transaction. Readers keep seeing the old rows until it commits.
func (m *ReadModels) Reset(ctx context.Context, name string) error {
	var tables []string
	switch name {
	case tracking.ProjectionTimeline:
		tables = []string{"rm_timeline"}
	case tracking.ProjectionEntities:
		tables = []string{"rm_entities"}
	case tracking.ProjectionMetrics:
		tables = []string{"rm_metric_points", "rm_operation_starts"}
	default:
		return fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
	}
	err := m.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, tx_id, position, updated_at) VALUES (?, 0, 0, ?)
			ON CONFLICT (name) DO UPDATE SET tx_id = 0, position = 0, updated_at = excluded.updated_at`,
			name, m.store.now().UnixMicro()); err != nil {
			return err
		}
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM rm_stream_positions WHERE projection = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: reset %s: %w", name, classify(err))
	}
	return nil
}

// TryLead takes a non-blocking exclusive flock(2) on
// "<file>.projection-<name>.lock", which every process sharing the file
// competes for. The lock holds until release (or the process's end), so lost
// is nil: leadership is never lost while held.
func (m *ReadModels) TryLead(_ context.Context, name string) (<-chan struct{}, func(), bool, error) {
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

// Entity returns an entity's projected state, or tracking.ErrNotFound.
func (m *ReadModels) Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error) {
	var st tracking.EntityState
	var view string
	err := m.store.read.QueryRowContext(ctx, `SELECT view FROM rm_entities WHERE tenant_id = ? AND entity_id = ?`, tenant, id).Scan(&view)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("sqlite: entity %q: %w", id, tracking.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("sqlite: entity: %w", classify(err))
	}
	if err := json.Unmarshal([]byte(view), &st); err != nil {
		return st, fmt.Errorf("sqlite: entity %q: %w", id, err)
	}
	return st, nil
}

// ListEntities returns a page of a tenant's entities, by entity id,
// optionally of one entity type and in one status.
func (m *ReadModels) ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error) {
	if q.Limit <= 0 {
		return tracking.EntityPage{}, fmt.Errorf("sqlite: list entities: %w: limit must be positive", tracking.ErrInvalid)
	}
	rows, err := m.store.read.QueryContext(ctx, `SELECT entity_id, view FROM rm_entities
		WHERE tenant_id = ?1 AND (?2 = '' OR entity_type = ?2) AND (?3 = '' OR status = ?3) AND entity_id > ?4
		ORDER BY entity_id LIMIT ?5`, q.Tenant, q.EntityType, q.Status, q.After, q.Limit+1)
	if err != nil {
		return tracking.EntityPage{}, fmt.Errorf("sqlite: list entities: %w", classify(err))
	}
	defer rows.Close()
	page := tracking.EntityPage{Items: []tracking.EntityState{}}
	for rows.Next() {
		var id, view string
		if err := rows.Scan(&id, &view); err != nil {
			return tracking.EntityPage{}, fmt.Errorf("sqlite: list entities: %w", classify(err))
		}
		if len(page.Items) == q.Limit {
			page.Next = page.Items[len(page.Items)-1].EntityID
			break
		}
		var st tracking.EntityState
		if err := json.Unmarshal([]byte(view), &st); err != nil {
			return tracking.EntityPage{}, fmt.Errorf("sqlite: list entities: entity %q: %w", id, err)
		}
		page.Items = append(page.Items, st)
	}
	if err := rows.Err(); err != nil {
		return tracking.EntityPage{}, fmt.Errorf("sqlite: list entities: %w", classify(err))
	}
	return page, nil
}

// Timeline returns a page of an entity's timeline, ordered by occurredAt,
// then version, within [From, To) and after the cursor.
func (m *ReadModels) Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error) {
	if q.Limit <= 0 {
		return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: %w: limit must be positive", tracking.ErrInvalid)
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixMicro()
	}
	if !q.To.IsZero() {
		to = q.To.UnixMicro()
	}
	afterAt, afterVersion := int64(math.MinInt64), int64(math.MinInt64)
	if q.After != nil {
		afterAt, afterVersion = q.After.OccurredAt.UnixMicro(), q.After.Version
	}
	rows, err := m.store.read.QueryContext(ctx, `SELECT event_id, version, event_type, occurred_at, recorded_at, data, metadata
		FROM rm_timeline WHERE tenant_id = ? AND entity_id = ? AND occurred_at >= ? AND occurred_at < ?
		AND (occurred_at, version) > (?, ?) ORDER BY occurred_at, version LIMIT ?`,
		q.Tenant, q.EntityID, from, to, afterAt, afterVersion, q.Limit+1)
	if err != nil {
		return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: %w", classify(err))
	}
	defer rows.Close()
	page := tracking.TimelinePage{Entries: []tracking.TimelineEntry{}}
	for rows.Next() {
		var e tracking.TimelineEntry
		var id, data, meta string
		var occurred, recorded int64
		if err := rows.Scan(&id, &e.Version, &e.Type, &occurred, &recorded, &data, &meta); err != nil {
			return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: %w", classify(err))
		}
		if len(page.Entries) == q.Limit {
			last := page.Entries[len(page.Entries)-1]
			page.Next = &tracking.TimelineCursor{OccurredAt: last.OccurredAt, Version: last.Version}
			break
		}
		if e.EventID, err = uuid.Parse(id); err != nil {
			return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: version %d: bad event id: %w", e.Version, err)
		}
		if err := json.Unmarshal([]byte(meta), &e.Metadata); err != nil {
			return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: version %d: bad metadata: %w", e.Version, err)
		}
		e.Data = json.RawMessage(data)
		e.OccurredAt, e.RecordedAt = time.UnixMicro(occurred).UTC(), time.UnixMicro(recorded).UTC()
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return tracking.TimelinePage{}, fmt.Errorf("sqlite: timeline: %w", classify(err))
	}
	return page, nil
}

// ProjectedVersion returns the highest version of an entity a projection
// (timeline or entities) has applied, 0 when none.
func (m *ReadModels) ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error) {
	if _, err := applierOf(name); err != nil {
		return 0, err
	}
	var v int64
	err := m.store.read.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM rm_stream_positions
		WHERE projection = ? AND tenant_id = ? AND entity_id = ?`, name, tenant, id).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite: projected version: %w", classify(err))
	}
	return v, nil
}

// MetricSamples returns the metric points a query selects: of its tenant and
// kind, with occurredAt in [From, To), of the entity type and name when set.
func (m *ReadModels) MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	rows, err := m.store.read.QueryContext(ctx, `SELECT occurred_at, value FROM rm_metric_points
		WHERE tenant_id = ?1 AND kind = ?2 AND occurred_at >= ?3 AND occurred_at < ?4
		AND (?5 = '' OR entity_type = ?5) AND (?6 = '' OR name = ?6) ORDER BY occurred_at`,
		q.Tenant, q.Kind, q.From.UnixMicro(), q.To.UnixMicro(), q.EntityType, q.Name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: metrics: %w", classify(err))
	}
	defer rows.Close()
	var out []tracking.MetricSample
	for rows.Next() {
		var s tracking.MetricSample
		var at int64
		if err := rows.Scan(&at, &s.Value); err != nil {
			return nil, fmt.Errorf("sqlite: metrics: %w", classify(err))
		}
		s.OccurredAt = time.UnixMicro(at).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: metrics: %w", classify(err))
	}
	return out, nil
}

// Dump returns every row of the read-model tables, in key order, each as a
// JSON array of all its columns: tests compare a projection's tables with a
// rebuild's. Checkpoints are left out (their update times differ).
func (m *ReadModels) Dump(ctx context.Context) (map[string][]string, error) {
	queries := map[string]string{
		"rm_timeline": `SELECT json_array(tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data, metadata)
			FROM rm_timeline ORDER BY tenant_id, entity_id, version`,
		"rm_entities": `SELECT json_array(tenant_id, entity_id, entity_type, status, version, updated_at, state, view)
			FROM rm_entities ORDER BY tenant_id, entity_id`,
		"rm_operation_starts": `SELECT json_array(tenant_id, entity_id, operation_id, operation, started_at)
			FROM rm_operation_starts ORDER BY tenant_id, entity_id, operation_id`,
		"rm_metric_points": `SELECT json_array(tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
			FROM rm_metric_points ORDER BY tenant_id, entity_id, version`,
	}
	out := make(map[string][]string, len(queries))
	for table, q := range queries {
		rows, err := m.store.read.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite: dump %s: %w", table, classify(err))
		}
		lines := []string{}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: dump %s: %w", table, classify(err))
			}
			lines = append(lines, line)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: dump %s: %w", table, classify(err))
		}
		out[table] = lines
	}
	return out, nil
}

// EraseEntity deletes every read-model row of an entity in one transaction
// (which, holding the file's write lock, excludes every projection batch).
func (m *ReadModels) EraseEntity(ctx context.Context, tenant, id string) error {
	err := m.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"rm_timeline", "rm_entities", "rm_operation_starts", "rm_metric_points", "rm_stream_positions"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE tenant_id = ? AND entity_id = ?", tenant, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: erase read models: %w", classify(err))
	}
	return nil
}
