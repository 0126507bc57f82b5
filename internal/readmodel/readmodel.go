// Package readmodel holds the projections' read models above the storage
// engines, once: what each projection owns, which events a batch still has
// to apply (by stream version), grouping by entity, checkpoints moved by
// compare-and-set in the batch's transaction, erasure, and paging. An
// engine (sqlite, postgres) provides an Engine: its SQL and its error
// classification, nothing else.
package readmodel

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// The read-model tables. Each projection owns its tables, the versions of
// the streams it has applied among them (rm_positions_*).
const (
	TableTimeline          = "rm_timeline"
	TableEntities          = "rm_entities"
	TableOperationStarts   = "rm_operation_starts"
	TableMetricPoints      = "rm_metric_points"
	TablePositionsTimeline = "rm_positions_timeline"
	TablePositionsEntities = "rm_positions_entities"
	TablePositionsMetrics  = "rm_positions_metrics"
	TableEPCISEvents       = "rm_epcis_events"
	TableEPCISIDs          = "rm_epcis_ids"
	TableEPCISFields       = "rm_epcis_fields"
	TablePositionsEPCIS    = "rm_positions_epcis"
)

// owned lists the tables each projection owns: a reset empties them, a
// rebuild builds a new generation of them (see shadowTable) and swaps it in.
// Every one has rows per entity (tenant_id, entity_id), which an erasure
// deletes.
var owned = map[string][]string{
	tracking.ProjectionTimeline: {TableTimeline, TablePositionsTimeline},
	tracking.ProjectionEntities: {TableEntities, TablePositionsEntities},
	tracking.ProjectionMetrics:  {TableMetricPoints, TableOperationStarts, TablePositionsMetrics},
	tracking.ProjectionEPCIS:    {TableEPCISEvents, TableEPCISIDs, TableEPCISFields, TablePositionsEPCIS},
}

// positionsTable is the table of the stream versions each projection has
// applied.
var positionsTable = map[string]string{
	tracking.ProjectionTimeline: TablePositionsTimeline,
	tracking.ProjectionEntities: TablePositionsEntities,
	tracking.ProjectionMetrics:  TablePositionsMetrics,
	tracking.ProjectionEPCIS:    TablePositionsEPCIS,
}

// shadowTable names a table of a projection's rebuild: the generation
// built beside the live one, renamed to the live name when switched in.
func shadowTable(table string) string { return table + "_rebuild" }

// tables maps a live table name to the one a checkpoint's read models are
// in: itself for a live projection, its shadow for a rebuild.
type tables func(string) string

// resolve returns the projection a checkpoint name belongs to (the live
// projection, or its rebuild: projection.Shadow) and where its tables are.
func resolve(name string) (string, tables, error) {
	base, shadow := projection.ShadowOf(name)
	if _, ok := owned[base]; !ok {
		return "", nil, fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
	}
	if shadow {
		return base, shadowTable, nil
	}
	return base, func(t string) string { return t }, nil
}

// Table describes a read-model table for Dump: its columns, and the columns
// its rows are ordered by.
type Table struct {
	Name    string
	Columns []string
	Key     []string
}

// dumped are the tables Dump returns, with every column.
var dumped = []Table{
	{TableTimeline, []string{"tenant_id", "entity_id", "version", "event_id", "event_type", "occurred_at", "recorded_at", "data", "metadata"},
		[]string{"tenant_id", "entity_id", "version"}},
	{TableEntities, []string{"tenant_id", "entity_id", "entity_type", "status", "version", "updated_at", "state", "view", "parent_id"},
		[]string{"tenant_id", "entity_id"}},
	{TableOperationStarts, []string{"tenant_id", "entity_id", "kind", "operation_id", "operation", "started_at", "site_id"},
		[]string{"tenant_id", "entity_id", "kind", "operation_id"}},
	{TableMetricPoints, []string{"tenant_id", "entity_id", "version", "kind", "entity_type", "name", "outcome", "occurred_at", "value", "site_id"},
		[]string{"tenant_id", "entity_id", "version", "kind"}},
	{TableEPCISEvents, []string{"tenant_id", "entity_id", "version", "event_id", "event_type", "action", "event_time",
		"record_time", "biz_step", "disposition", "read_point", "biz_location", "declared_at", "error_reason", "data"},
		[]string{"tenant_id", "entity_id", "version"}},
	{TableEPCISIDs, []string{"tenant_id", "entity_id", "version", "role", "id", "ord", "quantity", "uom"},
		[]string{"tenant_id", "entity_id", "version", "role", "ord"}},
	{TableEPCISFields, []string{"tenant_id", "entity_id", "version", "ord", "family", "name", "text", "num", "at"},
		[]string{"tenant_id", "entity_id", "version", "ord"}},
	{TablePositionsTimeline, []string{"tenant_id", "entity_id", "version"}, []string{"tenant_id", "entity_id"}},
	{TablePositionsEntities, []string{"tenant_id", "entity_id", "version"}, []string{"tenant_id", "entity_id"}},
	{TablePositionsMetrics, []string{"tenant_id", "entity_id", "version"}, []string{"tenant_id", "entity_id"}},
	{TablePositionsEPCIS, []string{"tenant_id", "entity_id", "version"}, []string{"tenant_id", "entity_id"}},
}

// Key identifies an entity of a tenant.
type Key struct{ Tenant, EntityID string }

// StreamPosition is the highest version of an entity a projection has
// applied: a row of its positions table (PositionsTable). Projection is a
// checkpoint's name: a live projection's, or its rebuild's
// (projection.Shadow).
type StreamPosition struct {
	Projection string
	Key
	Version int64
}

// PositionsTable returns the table of the stream positions of a checkpoint
// name (a live projection or its rebuild); "" for a name that is neither.
func PositionsTable(name string) string {
	base, tbl, err := resolve(name)
	if err != nil {
		return ""
	}
	return tbl(positionsTable[base])
}

// EntityRow is a row of the entities read model: the folded state the
// projection continues from, and the view the API serves. ParentID is the
// view's (its current parent, "" for none), which the children of an
// entity are listed by.
type EntityRow struct {
	Key
	EntityType string
	Status     string
	ParentID   string
	Version    int64
	UpdatedAt  time.Time
	State      json.RawMessage
	View       json.RawMessage
}

// TimelineRange selects timeline rows of one entity, ordered by
// (occurred_at, version): occurred_at in [From, To) and (occurred_at,
// version) after (AfterAt, AfterVersion); at most Limit rows.
type TimelineRange struct {
	Tenant, EntityID string
	From, To         time.Time
	AfterAt          time.Time
	AfterVersion     int64
	Limit            int
}

// Engine is a storage engine's side of the read models. Every error it
// returns for an unreachable database wraps eventstore.ErrUnavailable, from
// reading rows as well as from starting a query.
type Engine interface {
	// Update runs fn in a write transaction, committing when it returns
	// nil. derived says that everything fn writes derives from the durable
	// log and is written again if lost (the engine may then commit without
	// waiting for the disk, where that is safe).
	Update(ctx context.Context, derived bool, fn func(Tx) error) error
	// Checkpoint reads a checkpoint (zero if it never moved).
	Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error)
	// Checkpoints reads every checkpoint, by name.
	Checkpoints(ctx context.Context) (map[string]projection.Checkpoint, error)
	// TryLead implements projection.Leader.
	TryLead(ctx context.Context, name string) (lost <-chan struct{}, release func(), ok bool, err error)

	// EntityView returns an entity's view, or tracking.ErrNotFound.
	EntityView(ctx context.Context, tenant, id string) (json.RawMessage, error)
	// EntityViews returns up to limit views of q's entities, after
	// q.After, by entity id.
	EntityViews(ctx context.Context, q tracking.EntityQuery, limit int) ([]json.RawMessage, error)
	// TimelineEntries returns the timeline rows r selects.
	TimelineEntries(ctx context.Context, r TimelineRange) ([]tracking.TimelineEntry, error)
	// StreamPosition returns the version of an entity a projection has
	// applied (0 when none); its table is PositionsTable(projection).
	StreamPosition(ctx context.Context, projection, tenant, id string) (int64, error)
	// MetricSamples returns the metric points q selects.
	MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error)
	// DumpTable returns every row of a table, in key order, each as one
	// string of all its columns.
	DumpTable(ctx context.Context, t Table) ([]string, error)
	// TrimKeys deletes (or, with dryRun, counts) the idempotency keys bound
	// before `before`.
	TrimKeys(ctx context.Context, before time.Time, dryRun bool) (int64, error)

	// Secret returns the value stored under name, storing candidate first
	// when there is none: every caller gets the first value stored.
	Secret(ctx context.Context, name string, candidate []byte) ([]byte, error)
	// ClaimKey records fingerprint for a tenant's idempotency key, at now,
	// unless the key is recorded already since expiredBefore, and returns
	// the fingerprint recorded.
	ClaimKey(ctx context.Context, tenant, key string, fingerprint []byte, now, expiredBefore time.Time) ([]byte, error)
	// ReleaseKey forgets a tenant's idempotency key if it is recorded with
	// fingerprint.
	ReleaseKey(ctx context.Context, tenant, key string, fingerprint []byte) error

	// SQL runs engine-neutral statements outside a transaction.
	SQL() SQL

	Ping(ctx context.Context) error
	Close() error
}

// Tx is a write transaction of an Engine.
type Tx interface {
	// SQL runs engine-neutral statements in the transaction.
	SQL() SQL

	// LockCheckpoints creates the named checkpoints when missing, locks
	// them until the transaction ends and returns their cursors, in the
	// order of names. Callers name them in sorted order, so that two
	// transactions locking some of the same checkpoints never wait for
	// each other.
	LockCheckpoints(ctx context.Context, names []string) ([]eventstore.Cursor, error)
	// LockAllCheckpoints locks every checkpoint until the transaction ends.
	LockAllCheckpoints(ctx context.Context) error
	// LockExistingCheckpoints locks those of the named checkpoints that
	// exist (in the order of names, which callers sort) and returns their
	// cursors; a missing one is left out.
	LockExistingCheckpoints(ctx context.Context, names []string) (map[string]eventstore.Cursor, error)
	// SetCheckpoints moves locked checkpoints to one cursor.
	SetCheckpoints(ctx context.Context, names []string, to eventstore.Cursor) error
	// CreateCheckpoint creates a checkpoint at the beginning of the log and
	// reports whether it did (false: it exists).
	CreateCheckpoint(ctx context.Context, name string) (bool, error)
	// DeleteCheckpoint deletes a checkpoint.
	DeleteCheckpoint(ctx context.Context, name string) error
	// NextGeneration adds one to a locked checkpoint's generation and
	// returns it.
	NextGeneration(ctx context.Context, name string) (int64, error)
	// CheckpointNames returns the names of every checkpoint.
	CheckpointNames(ctx context.Context) ([]string, error)

	// StreamPositions returns the versions the given projections (checkpoint
	// names: see PositionsTable) have applied of the given entities (absent:
	// none), locked until the transaction ends.
	StreamPositions(ctx context.Context, projections []string, keys []Key) ([]StreamPosition, error)
	// RaiseStreamPositions records applied versions, never lowering one.
	RaiseStreamPositions(ctx context.Context, positions []StreamPosition) error

	// InsertTimeline inserts timeline rows into table, ignoring those
	// present. fresh says that none can be present (the engine may
	// bulk-load them).
	InsertTimeline(ctx context.Context, table string, events []eventstore.Recorded, fresh bool) error
	// EntityStates returns the folded states of the given entities.
	EntityStates(ctx context.Context, table string, keys []Key) (map[Key]json.RawMessage, error)
	// UpsertEntities writes entity rows, each only over an older version.
	UpsertEntities(ctx context.Context, table string, rows []EntityRow) error
	// OperationStarts returns the remembered starts of operations.
	OperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) ([]tracking.OperationStart, error)
	// DeleteOperationStarts forgets starts.
	DeleteOperationStarts(ctx context.Context, table string, keys []tracking.OperationKey) error
	// UpsertOperationStarts remembers starts.
	UpsertOperationStarts(ctx context.Context, table string, starts []tracking.OperationStart) error
	// InsertMetricPoints inserts metric points, ignoring those present;
	// fresh as for InsertTimeline.
	InsertMetricPoints(ctx context.Context, table string, points []tracking.MetricPoint, fresh bool) error
	// CopyMetricPoints copies into table `to` the rows of table `from` of
	// the given entities up to the given versions.
	CopyMetricPoints(ctx context.Context, from, to string, upTo []StreamPosition) error
	// CopyOperationStarts copies into table `to` the rows of table `from`
	// of the given entities.
	CopyOperationStarts(ctx context.Context, from, to string, keys []Key) error

	// Horizon returns the retention horizon of a read model: rows of
	// events recorded before it are not kept (zero: none).
	Horizon(ctx context.Context, name string) (time.Time, error)
	// RaiseHorizon moves a horizon to `before` unless it is later already.
	RaiseHorizon(ctx context.Context, name string, before time.Time) error
	// DeleteTimelineBefore deletes the rows of a timeline table recorded
	// before `before` and returns how many.
	DeleteTimelineBefore(ctx context.Context, table string, before time.Time) (int64, error)

	// CreateShadow creates an empty table named shadow with table's
	// columns, keys and indexes.
	CreateShadow(ctx context.Context, table, shadow string) error
	// SwapTable drops table and renames shadow to its name.
	SwapTable(ctx context.Context, table, shadow string) error
	// DeleteAll empties a table.
	DeleteAll(ctx context.Context, table string) error
	// DeleteEntity deletes an entity's rows from a table.
	DeleteEntity(ctx context.Context, table, tenant, id string) error
}

// Watcher is implemented by engines that several processes share
// (PostgreSQL): every committed write transaction announces which entities'
// rows it changed, so that each process can drop what it cached of them.
type Watcher interface {
	// Watch calls changed with the stream positions each committed
	// transaction of any process raised (an erased entity's at Erased),
	// and with all true when changes may have gone unannounced (the watch
	// (re)started, or a projection was reset), until ctx ends.
	Watch(ctx context.Context, changed func(positions []StreamPosition, all bool))
}

// Erased is the version of an erased entity's stream position in what a
// Watcher announces.
const Erased = -1

var (
	_ projection.Target = (*Store)(nil)
	_ projection.Leader = (*Store)(nil)
)

// Store is the read models of every projection on one Engine.
type Store struct {
	engine Engine
	name   string
}

// New returns the read models on an engine; name prefixes errors.
func New(engine Engine, name string) *Store { return &Store{engine: engine, name: name} }

// Engine returns the engine under the read models.
func (s *Store) Engine() Engine { return s.engine }

// Close closes the engine.
func (s *Store) Close() error { return s.engine.Close() }

// Ping checks that the read-model database answers.
func (s *Store) Ping(ctx context.Context) error { return s.engine.Ping(ctx) }

// Watch reports the changes other processes (and this one) commit to the
// read models, when the engine is shared by several (see Watcher), until
// ctx ends; it returns at once, reporting nothing, when it is not.
func (s *Store) Watch(ctx context.Context, changed func(positions []StreamPosition, all bool)) {
	if w, ok := s.engine.(Watcher); ok {
		w.Watch(ctx, changed)
	}
}

// Checkpoint returns a projection's (or another follower's) checkpoint.
func (s *Store) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	return s.engine.Checkpoint(ctx, name)
}

// TryLead implements projection.Leader with the engine's lock.
func (s *Store) TryLead(ctx context.Context, name string) (<-chan struct{}, func(), bool, error) {
	return s.engine.TryLead(ctx, name)
}

// Secret returns a 32-byte random key stored in the read-model database
// under name, made by the first caller: every replica on the database gets
// the same key.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	candidate := make([]byte, 32)
	rand.Read(candidate) // never fails: it crashes the program instead
	key, err := s.engine.Secret(ctx, name, candidate)
	if err != nil {
		return nil, fmt.Errorf("%s: secret %s: %w", s.name, name, err)
	}
	return key, nil
}

// IdempotencyKeyTTL is how long an Idempotency-Key stays bound to the
// request it was first used with.
const IdempotencyKeyTTL = 24 * time.Hour

// ClaimIdempotencyKey binds a tenant's Idempotency-Key to the fingerprint
// of a request, unless it is bound already (within IdempotencyKeyTTL), and
// returns the fingerprint it is bound to: another request's, when the key
// is reused.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) ([]byte, error) {
	now := time.Now()
	got, err := s.engine.ClaimKey(ctx, tenant, key, fingerprint, now, now.Add(-IdempotencyKeyTTL))
	if err != nil {
		return nil, fmt.Errorf("%s: idempotency key: %w", s.name, err)
	}
	return got, nil
}

// ReleaseIdempotencyKey unbinds a key from fingerprint (a request refused
// before anything was recorded), so that the fixed request may use it.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) error {
	if err := s.engine.ReleaseKey(ctx, tenant, key, fingerprint); err != nil {
		return fmt.Errorf("%s: idempotency key: %w", s.name, err)
	}
	return nil
}

// known checks that name is a live projection's.
func known(name string) error {
	if _, ok := owned[name]; !ok {
		return fmt.Errorf("%w: %q", projection.ErrUnknownProjection, name)
	}
	return nil
}

// Apply applies a batch read from the global log (events in log order) to
// the projections named in from, in one transaction: each projection gets
// the events after its own checkpoint, from[name], and its checkpoint moves
// from there to the batch's last cursor. It returns
// projection.ErrCheckpointMoved, having applied nothing, when any of the
// checkpoints is not where from says. Events at or before a projection's
// checkpoint were applied already (a re-delivery) and are skipped, so no
// checkpoint moves backwards.
func (s *Store) Apply(ctx context.Context, from map[string]eventstore.Cursor, events []eventstore.Recorded) error {
	if len(events) == 0 || len(from) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(from)) // the order checkpoints are locked in
	for _, name := range names {
		if _, _, err := resolve(name); err != nil {
			return err
		}
	}
	batches := make(map[string][]eventstore.Recorded, len(names))
	var moving []string
	for _, name := range names {
		pending := after(from[name], events)
		if len(pending) > 0 {
			batches[name] = pending
			moving = append(moving, name)
		}
	}
	// The batch and its checkpoints commit together and derive from events
	// already durable in the log: if all are lost, the batch is applied again.
	err := s.engine.Update(ctx, true, func(tx Tx) error {
		cur, err := tx.LockCheckpoints(ctx, names)
		if err != nil {
			return err
		}
		for i, name := range names {
			if cur[i] != from[name] {
				return projection.ErrCheckpointMoved
			}
		}
		if len(moving) == 0 {
			return nil
		}
		// Under the checkpoints' locks no other Apply writes these rows.
		if err := applyNew(ctx, tx, moving, batches, true); err != nil {
			return err
		}
		return tx.SetCheckpoints(ctx, moving, events[len(events)-1].Cursor)
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("%s: apply %s: %w", s.name, strings.Join(names, ", "), err)
	}
	return err
}

// after returns the events after cursor c.
func after(c eventstore.Cursor, events []eventstore.Recorded) []eventstore.Recorded {
	for i, e := range events {
		if c.Less(e.Cursor) {
			return events[i:]
		}
	}
	return nil
}

// ApplyEvents applies events to a projection without a global-log
// checkpoint (a Kafka-fed projection commits its consumer offsets after
// this returns). Events of a stream must come in version order; those at or
// below the stream's applied version are skipped, so redelivery is harmless.
func (s *Store) ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error {
	if err := known(name); err != nil {
		return err
	}
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		return applyNew(ctx, tx, []string{name}, map[string][]eventstore.Recorded{name: events}, false)
	})
	if err != nil {
		return fmt.Errorf("%s: apply %s: %w", s.name, name, err)
	}
	return nil
}

// MoveCheckpoint moves a checkpoint that guards no read model (the Kafka
// relay's) from `from` to `to`; projection.ErrCheckpointMoved if it is not
// at `from`.
func (s *Store) MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error {
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		if err := lockAt(ctx, tx, name, from); err != nil {
			return err
		}
		return tx.SetCheckpoints(ctx, []string{name}, to)
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("%s: move checkpoint %s: %w", s.name, name, err)
	}
	return err
}

// lockAt locks a checkpoint in tx and checks that it is at `from`
// (projection.ErrCheckpointMoved if not).
func lockAt(ctx context.Context, tx Tx, name string, from eventstore.Cursor) error {
	cur, err := tx.LockCheckpoints(ctx, []string{name})
	if err != nil {
		return err
	}
	if cur[0] != from {
		return projection.ErrCheckpointMoved
	}
	return nil
}

// Reset empties a projection's tables and its checkpoint in one
// transaction. Readers keep seeing the old rows until it commits. (A
// rebuild builds the new tables beside the live ones instead: Rebuild.)
func (s *Store) Reset(ctx context.Context, name string) error {
	if err := known(name); err != nil {
		return err
	}
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		// The checkpoint first: a concurrent Apply then fails its
		// compare-and-set instead of writing into the emptied tables.
		if _, err := tx.LockCheckpoints(ctx, []string{name}); err != nil {
			return err
		}
		if err := tx.SetCheckpoints(ctx, []string{name}, eventstore.Cursor{}); err != nil {
			return err
		}
		for _, t := range owned[name] {
			if err := tx.DeleteAll(ctx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: reset %s: %w", s.name, name, err)
	}
	return nil
}

// Rebuilding returns the projections being rebuilt: those with a
// rebuild's checkpoint (projection.Shadow).
func (s *Store) Rebuilding(ctx context.Context) ([]string, error) {
	cps, err := s.engine.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: rebuilds: %w", s.name, err)
	}
	return rebuilding(slices.Sorted(maps.Keys(cps))), nil
}

// Checkpoints returns every checkpoint, by name: the projections', their
// rebuilds' (Shadow) and the other followers'.
func (s *Store) Checkpoints(ctx context.Context) (map[string]projection.Checkpoint, error) {
	cps, err := s.engine.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: checkpoints: %w", s.name, err)
	}
	return cps, nil
}

// rebuilding picks the projections being rebuilt out of checkpoint names.
func rebuilding(checkpoints []string) []string {
	var out []string
	for _, name := range checkpoints {
		if base, ok := projection.ShadowOf(name); ok && known(base) == nil {
			out = append(out, base)
		}
	}
	slices.Sort(out)
	return out
}

// BeginRebuild creates the tables of a new generation of a projection's
// read models beside the live ones, empty but for the retained streams
// seeds pages through, and its checkpoint (projection.Shadow) at the
// beginning of the log, in one transaction that locks nothing the live
// projection or its readers use. projection.ErrRebuildInProgress when a
// rebuild of the projection exists.
//
// A retained stream is one whose oldest events retention has deleted,
// leaving a snapshot: the log can no longer give the rebuild its whole
// history. Each projection is seeded with what the snapshot, and the live
// read models, give it instead (see seed).
func (s *Store) BeginRebuild(ctx context.Context, name string, seeds projection.Seeds) error {
	if err := known(name); err != nil {
		return err
	}
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		created, err := tx.CreateCheckpoint(ctx, projection.Shadow(name))
		if err != nil {
			return err
		}
		if !created {
			return projection.ErrRebuildInProgress
		}
		for _, t := range owned[name] {
			if err := tx.CreateShadow(ctx, t, shadowTable(t)); err != nil {
				return err
			}
		}
		if seeds == nil {
			return nil
		}
		var after eventstore.StreamRef
		for {
			page, err := seeds(ctx, after)
			if err != nil {
				return fmt.Errorf("retained streams: %w", err)
			}
			if len(page) == 0 {
				return nil
			}
			if err := seed(ctx, tx, name, page); err != nil {
				return err
			}
			last := page[len(page)-1].Snapshot
			after = eventstore.StreamRef{Tenant: last.Tenant, StreamID: last.StreamID}
		}
	})
	if err != nil && !errors.Is(err, projection.ErrRebuildInProgress) {
		return fmt.Errorf("%s: begin rebuild of %s: %w", s.name, name, err)
	}
	return err
}

// seed writes into a rebuild's tables what each retained stream's snapshot
// stands in for, and the version the rebuild is to go on from:
//   - entities: the snapshot's state, at the snapshot's version; the
//     events after it are folded onto it.
//   - performance-metrics: the operations and visits open at the snapshot's version
//     (it keeps their starts), and the points the live read model holds up
//     to that version, which the log can no longer produce (an operation
//     whose start retention deleted); the events after it are folded on.
//     Where the live projection has not reached the snapshot's version yet
//     (a snapshot taken a moment ago), the live read model's own state of
//     the stream is taken instead (its open operations and points, at the
//     version it has reached: past every event retention deleted, which
//     were behind every checkpoint); the positions read lock the stream's
//     live rows until the rebuild is seeded.
//   - timeline: nothing (a snapshot holds no events); it goes on from the
//     version before the first event left in the log, so that every event
//     left is on the rebuilt timeline, as on the live one (retention
//     deletes the timeline rows of the events it deletes).
//   - epcis: nothing; snapshots are of tracking entities, not of capture
//     streams.
func seed(ctx context.Context, tx Tx, name string, page []projection.Retained) error {
	if name == tracking.ProjectionEPCIS {
		return nil
	}
	positions := make([]StreamPosition, 0, len(page))
	var rows []EntityRow
	var starts []tracking.OperationStart
	var fromLive []Key // metrics taken from the live read model's state
	pos := projection.Shadow(name)
	live := map[Key]int64{}
	if name == tracking.ProjectionMetrics {
		keys := make([]Key, len(page))
		for i, r := range page {
			keys[i] = Key{r.Snapshot.Tenant, r.Snapshot.StreamID}
		}
		stored, err := tx.StreamPositions(ctx, []string{name}, keys)
		if err != nil {
			return err
		}
		for _, p := range stored {
			live[p.Key] = p.Version
		}
	}
	for _, r := range page {
		snap := r.Snapshot
		if _, capture := epcis.CaptureIDOf(snap.StreamID); capture {
			continue // an EPCIS capture stream is no entity (retention snapshots it all the same)
		}
		k := Key{snap.Tenant, snap.StreamID}
		state, view, ok := tracking.SeedEntity(snap)
		if !ok {
			return fmt.Errorf("snapshot of %s/%s at version %d does not restore", k.Tenant, k.EntityID, snap.Version)
		}
		from := snap.Version
		switch name {
		case tracking.ProjectionTimeline:
			if r.First > 0 {
				from = r.First - 1
			}
		case tracking.ProjectionEntities:
			v, err := json.Marshal(view)
			if err != nil {
				return err
			}
			rows = append(rows, entityRow(k, view, state, v))
		case tracking.ProjectionMetrics:
			if at := live[k]; at < snap.Version {
				from = at
				fromLive = append(fromLive, k)
				break
			}
			starts = append(starts, tracking.OpenOperationStarts(snap)...)
		}
		if from > 0 {
			positions = append(positions, StreamPosition{Projection: pos, Key: k, Version: from})
		}
	}
	switch name {
	case tracking.ProjectionEntities:
		if err := tx.UpsertEntities(ctx, shadowTable(TableEntities), rows); err != nil {
			return err
		}
	case tracking.ProjectionMetrics:
		if len(starts) > 0 {
			if err := tx.UpsertOperationStarts(ctx, shadowTable(TableOperationStarts), starts); err != nil {
				return err
			}
		}
		if err := tx.CopyMetricPoints(ctx, TableMetricPoints, shadowTable(TableMetricPoints), positions); err != nil {
			return err
		}
		if len(fromLive) > 0 {
			if err := tx.CopyOperationStarts(ctx, TableOperationStarts, shadowTable(TableOperationStarts), fromLive); err != nil {
				return err
			}
		}
	}
	if len(positions) == 0 {
		return nil
	}
	return tx.RaiseStreamPositions(ctx, positions)
}

// Switch makes a projection's rebuild its live read models, in one
// transaction: holding the live checkpoint and the rebuild's, it applies
// to the rebuild the events fill reads between its checkpoint and the live
// one (none, when the runner has brought them level), swaps every table of
// the projection for the rebuild's, moves the live checkpoint to the
// rebuild's, adds one to its generation, and deletes the rebuild's
// checkpoint. Readers on any replica see the old tables until it commits
// and the new ones from then on. projection.ErrNotRebuilding when there is
// no rebuild (another process switched it in).
func (s *Store) Switch(ctx context.Context, name string, fill projection.FillFunc) (int64, error) {
	if err := known(name); err != nil {
		return 0, err
	}
	shadow := projection.Shadow(name)
	var gen int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		// In name order (name < shadow), as Apply locks them.
		live, err := tx.LockCheckpoints(ctx, []string{name})
		if err != nil {
			return err
		}
		cps, err := tx.LockExistingCheckpoints(ctx, []string{shadow})
		if err != nil {
			return err
		}
		at, ok := cps[shadow]
		if !ok {
			return projection.ErrNotRebuilding
		}
		if at.Less(live[0]) {
			events, err := fill(ctx, at, live[0])
			if err != nil {
				return fmt.Errorf("bring the rebuild level: %w", err)
			}
			if len(events) > 0 {
				if err := applyNew(ctx, tx, []string{shadow}, map[string][]eventstore.Recorded{shadow: events}, false); err != nil {
					return err
				}
				at = events[len(events)-1].Cursor
			}
			if at != live[0] {
				return fmt.Errorf("bring the rebuild level: it reached %s, not %s", at, live[0])
			}
		}
		for _, t := range owned[name] {
			if err := tx.SwapTable(ctx, t, shadowTable(t)); err != nil {
				return err
			}
		}
		if err := tx.SetCheckpoints(ctx, []string{name}, at); err != nil {
			return err
		}
		if gen, err = tx.NextGeneration(ctx, name); err != nil {
			return err
		}
		return tx.DeleteCheckpoint(ctx, shadow)
	})
	if err != nil && !errors.Is(err, projection.ErrNotRebuilding) {
		return 0, fmt.Errorf("%s: switch in the rebuild of %s: %w", s.name, name, err)
	}
	return gen, err
}

// EraseEntity deletes every read-model row of an entity, in the live read
// models and in those being rebuilt, in one transaction, holding every
// checkpoint so that no batch is applied meanwhile.
func (s *Store) EraseEntity(ctx context.Context, tenant, id string) error {
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		if err := tx.LockAllCheckpoints(ctx); err != nil {
			return err
		}
		names, err := tx.CheckpointNames(ctx)
		if err != nil {
			return err
		}
		var tables []string
		for _, name := range tracking.Projections() {
			tables = append(tables, owned[name]...)
		}
		for _, name := range rebuilding(names) {
			for _, t := range owned[name] {
				tables = append(tables, shadowTable(t))
			}
		}
		for _, t := range tables {
			if err := tx.DeleteEntity(ctx, t, tenant, id); err != nil {
				return err
			}
		}
		// Nothing is derived for an erased entity any more, nor kept of
		// its ETA changes, and where it was is forgotten.
		for _, t := range []string{"alert_due", "eta_decisions", "eta_announcements", "site_presence"} {
			if _, err := tx.SQL().Exec(ctx, `DELETE FROM `+t+` WHERE tenant_id = ? AND entity_id = ?`, tenant, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: erase read models: %w", s.name, err)
	}
	return nil
}

// applyNew applies to each named projection (a checkpoint name: a live
// projection or a rebuild) the events of its batch it has not applied yet
// (by stream version), and records the streams' new versions: the stream
// positions of every projection are read in one query and raised in one
// statement.
func applyNew(ctx context.Context, tx Tx, names []string, batches map[string][]eventstore.Recorded, fresh bool) error {
	var keys []Key
	seen := map[Key]bool{}
	for _, name := range names {
		for _, e := range batches[name] {
			if k := (Key{e.Tenant, e.StreamID}); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	type streamKey struct {
		projection string
		Key
	}
	bases := make([]string, len(names))
	where := make([]tables, len(names))
	// The read models that keep a row per event keep none of events
	// recorded before their retention horizon.
	horizons := map[string]time.Time{}
	for i, name := range names {
		base, tbl, err := resolve(name)
		if err != nil {
			return err
		}
		bases[i], where[i] = base, tbl
		if _, read := horizons[base]; !read && (base == tracking.ProjectionTimeline || base == tracking.ProjectionEPCIS) {
			if horizons[base], err = tx.Horizon(ctx, base); err != nil {
				return err
			}
		}
	}
	stored, err := tx.StreamPositions(ctx, names, keys)
	if err != nil {
		return err
	}
	applied := make(map[streamKey]int64, len(stored))
	for _, p := range stored {
		applied[streamKey{p.Projection, p.Key}] = p.Version
	}
	var raised []StreamPosition
	for i, name := range names {
		events := batches[name]
		epcisOnly := bases[i] == tracking.ProjectionEPCIS
		pending := make([]eventstore.Recorded, 0, len(events))
		first := len(raised)
		at := map[Key]int{} // index in raised
		for _, e := range events {
			// EPCIS capture streams are the EPCIS index's alone.
			if _, capture := epcis.CaptureIDOf(e.StreamID); capture != epcisOnly {
				continue
			}
			k := Key{e.Tenant, e.StreamID}
			sk := streamKey{name, k}
			if e.Version <= applied[sk] {
				continue
			}
			pending = append(pending, e)
			applied[sk] = e.Version
			if j, ok := at[k]; ok {
				raised[j].Version = e.Version
			} else {
				at[k] = len(raised)
				raised = append(raised, StreamPosition{Projection: name, Key: k, Version: e.Version})
			}
		}
		if len(raised) == first {
			continue
		}
		tbl := where[i]
		switch bases[i] {
		case tracking.ProjectionTimeline:
			if kept := recordedSince(pending, horizons[bases[i]]); len(kept) > 0 {
				err = tx.InsertTimeline(ctx, tbl(TableTimeline), kept, fresh)
			}
		case tracking.ProjectionEntities:
			err = applyEntities(ctx, tx, tbl, pending)
		case tracking.ProjectionMetrics:
			err = applyMetrics(ctx, tx, tbl, pending, fresh)
		case tracking.ProjectionEPCIS:
			err = applyEPCIS(ctx, tx.SQL(), tbl, recordedSince(pending, horizons[bases[i]]))
		}
		if err != nil {
			return err
		}
	}
	if len(raised) == 0 {
		return nil
	}
	return tx.RaiseStreamPositions(ctx, raised)
}

// recordedSince returns the events recorded at or after horizon: those a
// timeline keeps after retention (see TrimTimeline).
func recordedSince(events []eventstore.Recorded, horizon time.Time) []eventstore.Recorded {
	if horizon.IsZero() {
		return events
	}
	kept := events[:0:0]
	for _, e := range events {
		if !e.RecordedAt.Before(horizon) {
			kept = append(kept, e)
		}
	}
	return kept
}

// byEntity groups events by entity, keeping the order of first appearance.
func byEntity(events []eventstore.Recorded) ([]Key, map[Key][]eventstore.Recorded) {
	groups := map[Key][]eventstore.Recorded{}
	var keys []Key
	for _, e := range events {
		k := Key{e.Tenant, e.StreamID}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], e)
	}
	return keys, groups
}

func applyEntities(ctx context.Context, tx Tx, tbl tables, events []eventstore.Recorded) error {
	keys, groups := byEntity(events)
	states, err := tx.EntityStates(ctx, tbl(TableEntities), keys)
	if err != nil {
		return err
	}
	rows := make([]EntityRow, len(keys))
	for i, k := range keys {
		state, view := tracking.FoldEntity(k.EntityID, states[k], groups[k])
		v, err := json.Marshal(view)
		if err != nil {
			return err
		}
		rows[i] = entityRow(k, view, state, v)
	}
	return tx.UpsertEntities(ctx, tbl(TableEntities), rows)
}

// entityRow is the row of an entity's folded state and view (v, its JSON).
func entityRow(k Key, view tracking.EntityState, state, v json.RawMessage) EntityRow {
	return EntityRow{Key: k, EntityType: view.EntityType, Status: view.Status, ParentID: view.ParentID, Version: view.Version,
		UpdatedAt: view.UpdatedAt, State: state, View: v}
}

func applyMetrics(ctx context.Context, tx Tx, tbl tables, events []eventstore.Recorded, fresh bool) error {
	startsTable := tbl(TableOperationStarts)
	open := map[tracking.OperationKey]tracking.OperationStart{}
	if keys := tracking.CompletedOperations(events); len(keys) > 0 {
		starts, err := tx.OperationStarts(ctx, startsTable, keys)
		if err != nil {
			return err
		}
		for _, s := range starts {
			open[s.Key()] = s
		}
	}
	batch := tracking.FoldMetrics(events, open)
	if len(batch.Completed) > 0 {
		if err := tx.DeleteOperationStarts(ctx, startsTable, batch.Completed); err != nil {
			return err
		}
	}
	if len(batch.Open) > 0 {
		if err := tx.UpsertOperationStarts(ctx, startsTable, batch.Open); err != nil {
			return err
		}
	}
	if len(batch.Points) == 0 {
		return nil
	}
	return tx.InsertMetricPoints(ctx, tbl(TableMetricPoints), batch.Points, fresh)
}

// Entity returns an entity's projected state, or tracking.ErrNotFound.
func (s *Store) Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error) {
	var st tracking.EntityState
	view, err := s.engine.EntityView(ctx, tenant, id)
	if err != nil {
		return st, fmt.Errorf("%s: entity %q: %w", s.name, id, err)
	}
	if err := json.Unmarshal(view, &st); err != nil {
		return st, fmt.Errorf("%s: entity %q: %w", s.name, id, err)
	}
	return st, nil
}

// ListEntities returns a page of a tenant's entities, by entity id,
// optionally of one entity type, in one status, and inside one parent (its
// children).
func (s *Store) ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error) {
	if q.Limit <= 0 {
		return tracking.EntityPage{}, fmt.Errorf("%s: list entities: %w: limit must be positive", s.name, tracking.ErrInvalid)
	}
	views, err := s.engine.EntityViews(ctx, q, q.Limit+1)
	if err != nil {
		return tracking.EntityPage{}, fmt.Errorf("%s: list entities: %w", s.name, err)
	}
	page := tracking.EntityPage{Items: make([]tracking.EntityState, 0, min(len(views), q.Limit))}
	for _, v := range views[:min(len(views), q.Limit)] {
		var st tracking.EntityState
		if err := json.Unmarshal(v, &st); err != nil {
			return tracking.EntityPage{}, fmt.Errorf("%s: list entities: %w", s.name, err)
		}
		page.Items = append(page.Items, st)
	}
	if len(views) > q.Limit {
		page.Next = page.Items[len(page.Items)-1].EntityID
	}
	return page, nil
}

// Unbounded ends of a timeline's occurredAt range.
var (
	minTime = time.Date(-2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Timeline returns a page of an entity's timeline, ordered by occurredAt,
// then version, within [From, To) and after the cursor.
func (s *Store) Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error) {
	if q.Limit <= 0 {
		return tracking.TimelinePage{}, fmt.Errorf("%s: timeline: %w: limit must be positive", s.name, tracking.ErrInvalid)
	}
	r := TimelineRange{Tenant: q.Tenant, EntityID: q.EntityID, From: q.From, To: q.To, Limit: q.Limit + 1}
	if r.From.IsZero() {
		r.From = minTime
	}
	if r.To.IsZero() {
		r.To = maxTime
	}
	r.AfterAt, r.AfterVersion = r.From.Add(-time.Microsecond), 0
	if q.After != nil {
		r.AfterAt, r.AfterVersion = q.After.OccurredAt, q.After.Version
	}
	entries, err := s.engine.TimelineEntries(ctx, r)
	if err != nil {
		return tracking.TimelinePage{}, fmt.Errorf("%s: timeline: %w", s.name, err)
	}
	page := tracking.TimelinePage{Entries: entries[:min(len(entries), q.Limit)]}
	if len(entries) > q.Limit {
		last := page.Entries[len(page.Entries)-1]
		page.Next = &tracking.TimelineCursor{OccurredAt: last.OccurredAt, Version: last.Version}
	}
	return page, nil
}

// ProjectedVersion returns the highest version of an entity a projection
// has applied, 0 when none.
func (s *Store) ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error) {
	if err := known(name); err != nil {
		return 0, err
	}
	v, err := s.engine.StreamPosition(ctx, name, tenant, id)
	if err != nil {
		return 0, fmt.Errorf("%s: projected version: %w", s.name, err)
	}
	return v, nil
}

// MetricSamples returns the metric points a query selects: of its tenant and
// kind, with occurredAt in [From, To), of the entity type, name and site
// when set.
func (s *Store) MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	out, err := s.engine.MetricSamples(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", s.name, err)
	}
	return out, nil
}

// TrimIdempotencyKeys deletes (or, with dryRun, counts) the idempotency
// keys that expired (IdempotencyKeyTTL) as of now.
func (s *Store) TrimIdempotencyKeys(ctx context.Context, now time.Time, dryRun bool) (int64, error) {
	return s.engine.TrimKeys(ctx, now.Add(-IdempotencyKeyTTL), dryRun)
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// TrimTimeline deletes (or, with dryRun, counts) the timeline rows recorded
// before `before` (retention), in the live timeline and in its rebuild, if
// one is in progress, and raises the timeline's horizon to `before`: from
// then on the timeline projection, live or rebuilding, keeps no row of an
// event recorded before it. So the timeline holds the events recorded at
// or after the last retention run's cutoff, whatever order the trim, a
// lagging projection and a rebuild's replay come in, and a rebuild folds
// the same timeline as the live projection holds. It holds the timeline's
// checkpoints meanwhile, so that no batch is applied with the old horizon.
func (s *Store) TrimTimeline(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	return s.trimBefore(ctx, tracking.ProjectionTimeline, before, dryRun, func(tx Tx, tbl tables) (int64, error) {
		return tx.DeleteTimelineBefore(ctx, tbl(TableTimeline), before)
	})
}

// trimBefore is a retention trim of a projection whose rows are per event
// (the timeline, the EPCIS index): in one transaction holding the
// projection's checkpoints (live and rebuild), it raises the projection's
// horizon to `before` and runs del on the live tables and on a rebuild's,
// whose deleted rows it counts; with dryRun it rolls everything back.
func (s *Store) trimBefore(ctx context.Context, name string, before time.Time, dryRun bool, del func(tx Tx, tbl tables) (int64, error)) (int64, error) {
	var n int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		names, err := tx.CheckpointNames(ctx)
		if err != nil {
			return err
		}
		gens := []tables{func(t string) string { return t }}
		if slices.Contains(rebuilding(names), name) {
			gens = append(gens, shadowTable)
		}
		if _, err := tx.LockExistingCheckpoints(ctx, []string{name, projection.Shadow(name)}); err != nil {
			return err
		}
		if err := tx.RaiseHorizon(ctx, name, before); err != nil {
			return err
		}
		for _, tbl := range gens {
			d, err := del(tx, tbl)
			if err != nil {
				return err
			}
			n += d
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return 0, fmt.Errorf("%s: trim %s: %w", s.name, name, err)
	}
	return n, nil
}

// Dump returns every row of the read-model tables, in key order, each as one
// string of all its columns: tests compare a projection's tables with a
// rebuild's. Checkpoints are left out (their update times differ).
func (s *Store) Dump(ctx context.Context) (map[string][]string, error) {
	out := make(map[string][]string, len(dumped))
	for _, t := range dumped {
		rows, err := s.engine.DumpTable(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("%s: dump %s: %w", s.name, t.Name, err)
		}
		out[t.Name] = rows
	}
	return out, nil
}
