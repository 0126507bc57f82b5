package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

var (
	_ projection.Target = (*ReadModels)(nil)
	_ projection.Leader = (*ReadModels)(nil)
)

// ReadModels holds the projections' read models and checkpoints in a
// PostgreSQL database (the event store's, or one of their own).
type ReadModels struct {
	pool  *pgxpool.Pool
	owned bool // the pool was opened for the read models: Close closes it
}

// Close closes the read models' own pool, opened when OpenReadModels was
// given a connection string; read models on the event store's pool leave it
// to the store.
func (m *ReadModels) Close() error {
	if m.owned {
		m.pool.Close()
	}
	return nil
}

// OpenReadModels connects to the read-model database and applies its
// migrations. With pool non-nil (the event store's database) it uses that.
func OpenReadModels(ctx context.Context, dsn string, pool *pgxpool.Pool) (*ReadModels, error) {
	owned := pool == nil
	if owned {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, errors.New("postgres: the read-model connection string cannot be parsed")
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
	return &ReadModels{pool: pool, owned: owned}, nil
}

// Ping checks that the read-model database answers.
func (m *ReadModels) Ping(ctx context.Context) error {
	if err := m.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: read models: %w: %w", eventstore.ErrUnavailable, err)
	}
	return nil
}

// Checkpoint returns a projection's checkpoint.
func (m *ReadModels) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	var cp projection.Checkpoint
	var txid string
	err := m.pool.QueryRow(ctx, `SELECT tx_id::text, position, updated_at FROM projection_checkpoints WHERE name = $1`, name).
		Scan(&txid, &cp.Cursor.Position, &cp.UpdatedAt)
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

// Apply applies a batch to one projection and moves its checkpoint, in one
// transaction. Events at or before `from` were applied already (a
// re-delivery) and are skipped, so the checkpoint never moves backwards.
func (m *ReadModels) Apply(ctx context.Context, name string, from eventstore.Cursor, events []eventstore.Recorded) error {
	if len(events) == 0 {
		return nil
	}
	pending := make([]eventstore.Recorded, 0, len(events))
	for _, e := range events {
		if from.Less(e.Cursor) {
			pending = append(pending, e)
		}
	}
	events = pending
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		// The batch and its checkpoint commit together, and both derive from
		// events already durable in the log: if the server crashes before
		// this commit reaches the disk, both are lost together and the batch
		// is applied again. So the commit need not wait for the WAL flush,
		// which spares the events' own commits one fsync per batch and
		// projection. Only on the event store's own server, though: there a
		// checkpoint is durable before any later synchronous commit (WAL
		// order), such as the retention job's, which trims events behind the
		// checkpoints; a read-model server of its own could lose a checkpoint
		// that retention has already acted on.
		if !m.owned {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
		}
		// Compare-and-set: lock the checkpoint row and check where it is.
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`, name); err != nil {
			return err
		}
		var txid string
		var pos int64
		if err := tx.QueryRow(ctx, `SELECT tx_id::text, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name).
			Scan(&txid, &pos); err != nil {
			return err
		}
		if txid != strconv.FormatUint(from.TxID, 10) || pos != from.Position {
			return projection.ErrCheckpointMoved
		}
		if len(events) == 0 {
			return nil
		}
		to := events[len(events)-1].Cursor
		if err := applyNew(ctx, tx, name, events, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now() WHERE name = $1`,
			name, strconv.FormatUint(to.TxID, 10), to.Position)
		return err
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("postgres: apply %s: %w", name, classify(err))
	}
	return err
}

// ApplyEvents applies events to a projection without a global-log
// checkpoint (a Kafka-fed projection commits its consumer offsets after
// this returns). Events of a stream must come in version order; those at or
// below the stream's applied version are skipped, so redelivery is harmless.
func (m *ReadModels) ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error { return applyNew(ctx, tx, name, events, false) })
	if err != nil {
		return fmt.Errorf("postgres: apply %s: %w", name, classify(err))
	}
	return nil
}

// MoveCheckpoint moves a checkpoint that guards no read model (the Kafka
// relay's) from `from` to `to`; projection.ErrCheckpointMoved if it is not at `from`.
func (m *ReadModels) MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET tx_id = $4::text::xid8, position = $5, updated_at = now()
			WHERE name = $1 AND tx_id = $2::text::xid8 AND position = $3`,
			name, strconv.FormatUint(from.TxID, 10), from.Position, strconv.FormatUint(to.TxID, 10), to.Position)
		if err == nil && tag.RowsAffected() != 1 {
			return projection.ErrCheckpointMoved
		}
		return err
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("postgres: move checkpoint %s: %w", name, classify(err))
	}
	return err
}

// applyNew applies the events a projection has not applied yet (by stream
// version) and records the streams' new versions.
func applyNew(ctx context.Context, tx pgx.Tx, name string, events []eventstore.Recorded, bulk bool) error {
	var apply func(context.Context, pgx.Tx, []eventstore.Recorded, bool) error
	switch name {
	case tracking.ProjectionTimeline:
		apply = applyTimeline
	case tracking.ProjectionEntities:
		apply = applyEntities
	case tracking.ProjectionMetrics:
		apply = applyMetrics
	default:
		return fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
	}
	seen := map[entityKey]int64{}
	var tenants, ids []string
	for _, e := range events {
		k := entityKey{e.Tenant, e.StreamID}
		if _, ok := seen[k]; !ok {
			seen[k] = 0
			tenants, ids = append(tenants, k.tenant), append(ids, k.id)
		}
	}
	rows, err := tx.Query(ctx, `SELECT p.tenant_id, p.entity_id, p.version FROM rm_stream_positions p
		JOIN unnest($2::text[], $3::text[]) AS k(tenant_id, entity_id) USING (tenant_id, entity_id)
		WHERE p.projection = $1 FOR UPDATE OF p`, name, tenants, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k entityKey
		var v int64
		if err := rows.Scan(&k.tenant, &k.id, &v); err != nil {
			rows.Close()
			return err
		}
		seen[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
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
	if err := apply(ctx, tx, fresh, bulk); err != nil {
		return err
	}
	versions := make([]int64, len(tenants))
	for i := range tenants {
		versions[i] = seen[entityKey{tenants[i], ids[i]}]
	}
	_, err = tx.Exec(ctx, `INSERT INTO rm_stream_positions (projection, tenant_id, entity_id, version)
		SELECT $1, t, e, v FROM unnest($2::text[], $3::text[], $4::int8[]) AS k(t, e, v)
		ON CONFLICT (projection, tenant_id, entity_id) DO UPDATE SET version = excluded.version
		WHERE rm_stream_positions.version < excluded.version`, name, tenants, ids, versions)
	return err
}

func applyTimeline(ctx context.Context, tx pgx.Tx, events []eventstore.Recorded, bulk bool) error {
	n := len(events)
	tenants, entities, types, data, meta := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions := make([]int64, n)
	ids := make([]uuid.UUID, n)
	occurred, recorded := make([]time.Time, n), make([]time.Time, n)
	for i, e := range events {
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return err
		}
		tenants[i], entities[i], versions[i], ids[i], types[i] = e.Tenant, e.StreamID, e.Version, e.ID, e.Type
		occurred[i], recorded[i], data[i], meta[i] = e.OccurredAt, e.RecordedAt, string(e.Data), string(m)
	}
	if bulkInsert(bulk, len(events)) {
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{tenants[i], entities[i], versions[i], ids[i], types[i], occurred[i], recorded[i], data[i], meta[i]}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"rm_timeline"},
			[]string{"tenant_id", "entity_id", "version", "event_id", "event_type", "occurred_at", "recorded_at", "data", "metadata"},
			pgx.CopyFromRows(rows))
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO rm_timeline (tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data, metadata)
		SELECT t, e, v, i, ty, o, r, d::json, m::json
		FROM unnest($1::text[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[])
			AS u(t, e, v, i, ty, o, r, d, m)
		ON CONFLICT DO NOTHING`, tenants, entities, versions, ids, types, occurred, recorded, data, meta)
	return err
}

type entityKey struct{ tenant, id string }

// bulkInsert reports whether n rows are worth a COPY, which bulk allows:
// the rows are known to be new (applyNew filtered them by stream version
// under the checkpoint's row lock, so no concurrent Apply writes them).
func bulkInsert(bulk bool, n int) bool { return bulk && n >= 64 }

func applyEntities(ctx context.Context, tx pgx.Tx, events []eventstore.Recorded, _ bool) error {
	byEntity := map[entityKey][]eventstore.Recorded{}
	var order []entityKey
	for _, e := range events {
		k := entityKey{e.Tenant, e.StreamID}
		if _, ok := byEntity[k]; !ok {
			order = append(order, k)
		}
		byEntity[k] = append(byEntity[k], e)
	}
	tenants, ids := make([]string, len(order)), make([]string, len(order))
	for i, k := range order {
		tenants[i], ids[i] = k.tenant, k.id
	}
	rows, err := tx.Query(ctx, `SELECT r.tenant_id, r.entity_id, r.state::text FROM rm_entities r
		JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, entity_id) USING (tenant_id, entity_id)`, tenants, ids)
	if err != nil {
		return err
	}
	states := map[entityKey]json.RawMessage{}
	for rows.Next() {
		var k entityKey
		var st string
		if err := rows.Scan(&k.tenant, &k.id, &st); err != nil {
			rows.Close()
			return err
		}
		states[k] = json.RawMessage(st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	n := len(order)
	types, statuses, stateCol, views := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions := make([]int64, n)
	updated := make([]time.Time, n)
	for i, k := range order {
		state, view := tracking.FoldEntity(k.id, states[k], byEntity[k])
		v, err := json.Marshal(view)
		if err != nil {
			return err
		}
		types[i], statuses[i], versions[i], updated[i] = view.EntityType, view.Status, view.Version, view.UpdatedAt
		stateCol[i], views[i] = string(state), string(v)
	}
	_, err = tx.Exec(ctx, `INSERT INTO rm_entities (tenant_id, entity_id, entity_type, status, version, updated_at, state, view)
		SELECT t, e, ty, s, v, u, st::json, vw::json
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::timestamptz[], $7::text[], $8::text[])
			AS x(t, e, ty, s, v, u, st, vw)
		ON CONFLICT (tenant_id, entity_id) DO UPDATE SET entity_type = excluded.entity_type, status = excluded.status,
			version = excluded.version, updated_at = excluded.updated_at, state = excluded.state, view = excluded.view
		WHERE rm_entities.version < excluded.version`, tenants, ids, types, statuses, versions, updated, stateCol, views)
	return err
}

func applyMetrics(ctx context.Context, tx pgx.Tx, events []eventstore.Recorded, bulk bool) error {
	open := map[tracking.OperationKey]tracking.OperationStart{}
	if keys := tracking.CompletedOperations(events); len(keys) > 0 {
		qt, qe, qo := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			qt[i], qe[i], qo[i] = k.Tenant, k.EntityID, k.OperationID
		}
		rows, err := tx.Query(ctx, `SELECT s.tenant_id, s.entity_id, s.operation_id, s.operation, s.started_at FROM rm_operation_starts s
			JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, entity_id, operation_id) USING (tenant_id, entity_id, operation_id)`, qt, qe, qo)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s tracking.OperationStart
			if err := rows.Scan(&s.Tenant, &s.EntityID, &s.OperationID, &s.Operation, &s.StartedAt); err != nil {
				rows.Close()
				return err
			}
			open[s.Key()] = s
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	batch := tracking.FoldMetrics(events, open)
	if len(batch.Completed) > 0 {
		var dt, de, do []string
		for _, k := range batch.Completed {
			dt, de, do = append(dt, k.Tenant), append(de, k.EntityID), append(do, k.OperationID)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rm_operation_starts s USING unnest($1::text[], $2::text[], $3::text[]) AS k(t, e, o)
			WHERE s.tenant_id = k.t AND s.entity_id = k.e AND s.operation_id = k.o`, dt, de, do); err != nil {
			return err
		}
	}
	if len(batch.Open) > 0 {
		var st, se, so, sn []string
		var sa []time.Time
		for _, s := range batch.Open {
			st, se, so, sn, sa = append(st, s.Tenant), append(se, s.EntityID), append(so, s.OperationID), append(sn, s.Operation), append(sa, s.StartedAt)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rm_operation_starts (tenant_id, entity_id, operation_id, operation, started_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			ON CONFLICT (tenant_id, entity_id, operation_id) DO UPDATE SET operation = excluded.operation, started_at = excluded.started_at`,
			st, se, so, sn, sa); err != nil {
			return err
		}
	}
	points := batch.Points
	if len(points) == 0 {
		return nil
	}
	n := len(points)
	pt, pe, pk, pty, pn, po := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	pv := make([]int64, n)
	pat := make([]time.Time, n)
	pval := make([]float64, n)
	for i, p := range points {
		pt[i], pe[i], pv[i], pk[i], pty[i], pn[i], po[i], pat[i], pval[i] = p.Tenant, p.EntityID, p.Version, p.Kind, p.EntityType, p.Name, p.Outcome, p.OccurredAt, p.Value
	}
	if bulkInsert(bulk, n) {
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{pt[i], pe[i], pv[i], pk[i], pty[i], pn[i], po[i], pat[i], pval[i]}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"rm_metric_points"},
			[]string{"tenant_id", "entity_id", "version", "kind", "entity_type", "name", "outcome", "occurred_at", "value"},
			pgx.CopyFromRows(rows))
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::float8[])
		ON CONFLICT DO NOTHING`, pt, pe, pv, pk, pty, pn, po, pat, pval)
	return err
}

// Reset empties a projection and its checkpoint in one transaction. DELETE,
// not TRUNCATE: readers keep seeing the old rows until it commits.
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
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		// Take the checkpoint row first: a concurrent Apply then fails its
		// compare-and-set instead of writing into the emptied tables.
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO UPDATE
			SET tx_id = '0', position = 0, updated_at = now()`, name); err != nil {
			return err
		}
		for _, t := range tables {
			if _, err := tx.Exec(ctx, "DELETE FROM "+t); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM rm_stream_positions WHERE projection = $1`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: reset %s: %w", name, classify(err))
	}
	return nil
}

// TryLead takes the projection's session advisory lock on a dedicated
// connection; leadership is lost when that connection fails.
func (m *ReadModels) TryLead(ctx context.Context, name string) (<-chan struct{}, func(), bool, error) {
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

// Entity returns an entity's projected state.
func (m *ReadModels) Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error) {
	var st tracking.EntityState
	var view string
	err := m.pool.QueryRow(ctx, `SELECT view::text FROM rm_entities WHERE tenant_id = $1 AND entity_id = $2`, tenant, id).Scan(&view)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("postgres: entity %q: %w", id, tracking.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("postgres: entity: %w", classify(err))
	}
	return st, json.Unmarshal([]byte(view), &st)
}

// ListEntities returns a page of a tenant's entities, by entity id.
func (m *ReadModels) ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error) {
	rows, err := m.pool.Query(ctx, `SELECT entity_id, view::text FROM rm_entities
		WHERE tenant_id = $1 AND ($2 = '' OR entity_type = $2) AND ($3 = '' OR status = $3) AND entity_id > $4
		ORDER BY entity_id LIMIT $5`, q.Tenant, q.EntityType, q.Status, q.After, q.Limit+1)
	if err != nil {
		return tracking.EntityPage{}, fmt.Errorf("postgres: list entities: %w", classify(err))
	}
	defer rows.Close()
	page := tracking.EntityPage{Items: []tracking.EntityState{}}
	for rows.Next() {
		var id, view string
		if err := rows.Scan(&id, &view); err != nil {
			return page, err
		}
		if len(page.Items) == q.Limit {
			page.Next = page.Items[len(page.Items)-1].EntityID
			break
		}
		var st tracking.EntityState
		if err := json.Unmarshal([]byte(view), &st); err != nil {
			return page, err
		}
		page.Items = append(page.Items, st)
	}
	return page, rows.Err()
}

// Timeline returns a page of an entity's timeline.
func (m *ReadModels) Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error) {
	from, to := q.From, q.To
	if from.IsZero() {
		from = time.Unix(0, 0).AddDate(-2000, 0, 0)
	}
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	after := tracking.TimelineCursor{OccurredAt: from.Add(-time.Microsecond), Version: 1 << 62}
	if q.After != nil {
		after = *q.After
	}
	rows, err := m.pool.Query(ctx, `SELECT event_id, version, event_type, occurred_at, recorded_at, data::text, metadata::text
		FROM rm_timeline WHERE tenant_id = $1 AND entity_id = $2 AND occurred_at >= $3 AND occurred_at < $4
		AND (occurred_at, version) > ($5, $6) ORDER BY occurred_at, version LIMIT $7`,
		q.Tenant, q.EntityID, from, to, after.OccurredAt, after.Version, q.Limit+1)
	if err != nil {
		return tracking.TimelinePage{}, fmt.Errorf("postgres: timeline: %w", classify(err))
	}
	defer rows.Close()
	page := tracking.TimelinePage{Entries: []tracking.TimelineEntry{}}
	for rows.Next() {
		var e tracking.TimelineEntry
		var data, meta string
		if err := rows.Scan(&e.EventID, &e.Version, &e.Type, &e.OccurredAt, &e.RecordedAt, &data, &meta); err != nil {
			return page, err
		}
		if len(page.Entries) == q.Limit {
			last := page.Entries[len(page.Entries)-1]
			page.Next = &tracking.TimelineCursor{OccurredAt: last.OccurredAt, Version: last.Version}
			break
		}
		e.Data = json.RawMessage(data)
		if err := json.Unmarshal([]byte(meta), &e.Metadata); err != nil {
			return page, err
		}
		e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
		page.Entries = append(page.Entries, e)
	}
	return page, rows.Err()
}

// ProjectedVersion returns the highest version of an entity a projection
// has applied (0 when none).
func (m *ReadModels) ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error) {
	switch name {
	case tracking.ProjectionTimeline, tracking.ProjectionEntities, tracking.ProjectionMetrics:
	default:
		return 0, fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
	}
	var v int64
	err := m.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM rm_stream_positions
		WHERE projection = $1 AND tenant_id = $2 AND entity_id = $3`, name, tenant, id).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("postgres: projected version: %w", classify(err))
	}
	return v, nil
}

// MetricSamples returns the metric points a query selects.
func (m *ReadModels) MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	rows, err := m.pool.Query(ctx, `SELECT occurred_at, value FROM rm_metric_points
		WHERE tenant_id = $1 AND kind = $2 AND occurred_at >= $3 AND occurred_at < $4
		AND ($5 = '' OR entity_type = $5) AND ($6 = '' OR name = $6)`,
		q.Tenant, q.Kind, q.From, q.To, q.EntityType, q.Name)
	if err != nil {
		return nil, fmt.Errorf("postgres: metrics: %w", classify(err))
	}
	defer rows.Close()
	var out []tracking.MetricSample
	for rows.Next() {
		var s tracking.MetricSample
		if err := rows.Scan(&s.OccurredAt, &s.Value); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Dump returns every read-model row of the tables, in key order, as text:
// tests compare a projection's tables with a rebuild's.
func (m *ReadModels) Dump(ctx context.Context) (map[string][]string, error) {
	queries := map[string]string{
		"rm_timeline":         `SELECT row(tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data::text, metadata::text)::text FROM rm_timeline ORDER BY 1`,
		"rm_entities":         `SELECT row(tenant_id, entity_id, entity_type, status, version, updated_at, view::text)::text FROM rm_entities ORDER BY 1`,
		"rm_operation_starts": `SELECT row(tenant_id, entity_id, operation_id, operation, started_at)::text FROM rm_operation_starts ORDER BY 1`,
		"rm_metric_points":    `SELECT row(tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)::text FROM rm_metric_points ORDER BY 1`,
	}
	out := map[string][]string{}
	for table, q := range queries {
		rows, err := m.pool.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		out[table], err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EraseEntity deletes every read-model row of an entity, holding every
// projection's checkpoint row so that no batch is applied meanwhile.
func (m *ReadModels) EraseEntity(ctx context.Context, tenant, id string) error {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM projection_checkpoints FOR UPDATE`); err != nil {
			return err
		}
		for _, table := range []string{"rm_timeline", "rm_entities", "rm_operation_starts", "rm_metric_points", "rm_stream_positions"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE tenant_id = $1 AND entity_id = $2", tenant, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: erase read models: %w", classify(err))
	}
	return nil
}
