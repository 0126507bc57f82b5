package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

type partition struct {
	Name     string
	From, To *time.Time
}

// partitions lists the events table's partitions as PostgreSQL has them
// attached, with the ranges the store recorded, oldest first.
func partitions(t *testing.T, pool *pgxpool.Pool) []partition {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT c.relname, p.from_at, p.to_at
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		LEFT JOIN event_partitions p ON p.name = c.relname
		WHERE i.inhparent = 'events'::regclass AND c.relkind = 'r' ORDER BY p.to_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []partition
	for rows.Next() {
		var p partition
		if err := rows.Scan(&p.Name, &p.From, &p.To); err != nil {
			t.Fatal(err)
		}
		if p.To == nil {
			t.Fatalf("partition %s is attached but not recorded in event_partitions", p.Name)
		}
		out = append(out, p)
	}
	return out
}

// The events table is partitioned by recorded_at: the partitions cover the
// time from the store's start on without a gap, the periods ahead exist
// before any event needs them, each of the configured period, and an event
// lands in the partition of its time.
func TestPartitionsAheadOfTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{PartitionPeriod: postgres.Daily})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The migration's partition runs to the next month; the daily ones
	// follow it. Forty days on covers at least one of them.
	now := time.Now().UTC()
	if err := s.EnsurePartitions(ctx, now.AddDate(0, 0, 40)); err != nil {
		t.Fatal(err)
	}
	parts := partitions(t, s.Pool())
	if len(parts) < 3 {
		t.Fatalf("partitions %+v: want the legacy one, the migration's and daily ones", parts)
	}
	daily := 0
	for i, p := range parts {
		if i == 0 {
			if p.From != nil {
				t.Errorf("the first partition %s starts at %v, want unbounded", p.Name, p.From)
			}
			continue
		}
		if p.From == nil || !p.From.Equal(*parts[i-1].To) {
			t.Errorf("partition %s starts at %v, not where %s ends (%v)", p.Name, p.From, parts[i-1].Name, parts[i-1].To)
			continue
		}
		if p.From.After(now) {
			daily++
			if got := p.To.Sub(*p.From); got != 24*time.Hour || p.From.UTC().Hour() != 0 {
				t.Errorf("partition %s is [%v, %v), want a UTC day", p.Name, p.From, p.To)
			}
		}
	}
	last := *parts[len(parts)-1].To
	if want := now.AddDate(0, 0, 41); last.Before(want) {
		t.Errorf("the partitions end at %v, want at least the day after %v covered", last, want)
	}
	if daily < 10 {
		t.Errorf("%d daily partitions ahead, want at least 10", daily)
	}
	// Running it again creates nothing new.
	if err := s.EnsurePartitions(ctx, now.AddDate(0, 0, 40)); err != nil {
		t.Fatal(err)
	}
	if again := partitions(t, s.Pool()); len(again) != len(parts) {
		t.Errorf("a second run changed the partitions from %d to %d", len(parts), len(again))
	}

	if _, err := s.Append(ctx, eventstore.AppendRequest{Tenant: "t", StreamID: "P-1", EntityType: "shipment",
		Expected: eventstore.NoStream, Events: []eventstore.Event{{ID: uuid.New(), Type: "T", SchemaVersion: 1,
			Data: json.RawMessage(`{}`), OccurredAt: now}}}); err != nil {
		t.Fatal(err)
	}
	var table string
	var from, to *time.Time
	if err := s.Pool().QueryRow(ctx, `SELECT e.tableoid::regclass::text, p.from_at, p.to_at FROM events e
		JOIN event_partitions p ON p.name = e.tableoid::regclass::text`).Scan(&table, &from, &to); err != nil {
		t.Fatal(err)
	}
	if from == nil || from.After(now) || !to.After(now) {
		t.Errorf("the event landed in %s [%v, %v), which does not hold its time %v", table, from, to, now)
	}
}

// Retention drops a partition whose every event is old, covered by a
// snapshot and read, instead of deleting its rows; the partitions after it
// are trimmed row by row as before; what is left reads the same, state is
// unchanged, the dropped events' ids are forgotten, and appends go on.
func TestRetentionDropsWholePartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{PartitionPeriod: postgres.Daily})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rm, svc := runService(t, store, 1000)
	record := func(entity string, n int) {
		t.Helper()
		var events []tracking.NewEvent
		for i := range n {
			d, _ := json.Marshal(map[string]float64{"lat": float64(i), "lon": 1})
			events = append(events, tracking.NewEvent{Type: "LocationReported", OccurredAt: time.Now().Add(time.Duration(i-10) * time.Minute), Data: d})
		}
		if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t", EntityID: entity, EntityType: "vehicle", Expected: eventstore.Any, Events: events}); err != nil {
			t.Fatal(err)
		}
	}
	record("OLD", 4)
	record("NEW", 3)
	// OLD's events were recorded long ago: they move to the oldest
	// partition, with their ids' record.
	for _, table := range []string{"events", "event_ids"} {
		if _, err := store.Pool().Exec(ctx, `UPDATE `+table+` SET recorded_at = recorded_at - interval '500 days' WHERE stream_id = 'OLD'`); err != nil {
			t.Fatal(err)
		}
	}
	catchUp(t, store, rm, map[string]int64{"OLD": 4, "NEW": 3})
	// NEW's fourth event is not read yet: it and its partition stay.
	record("NEW", 1)
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := map[string]tracking.EntityState{}
	for _, id := range []string{"OLD", "NEW"} {
		if before[id], err = svc.Entity(ctx, "t", id); err != nil {
			t.Fatal(err)
		}
	}
	newBefore, err := store.ReadStream(ctx, "t", "NEW", 1, 100)
	if err != nil || len(newBefore) != 4 {
		t.Fatalf("NEW reads %d events (%v), want 4", len(newBefore), err)
	}
	partsBefore := partitions(t, store.Pool())
	if partsBefore[0].Name != "events_legacy" {
		t.Fatalf("the oldest partition is %s, want events_legacy", partsBefore[0].Name)
	}

	// Snapshots now, so that the dry run finds the events covered.
	for _, id := range []string{"OLD", "NEW"} {
		if err := svc.Snapshot(ctx, "t", id); err != nil {
			t.Fatal(err)
		}
	}
	deps := retention.Deps{Store: store, ReadModels: rm, Snapshotter: svc, Readers: tracking.Projections(),
		SnapshotSchemaVersion: tracking.SnapshotSchemaVersion}
	policy := retention.Policy{MaxAge: 365 * 24 * time.Hour, SnapshotAge: 30 * 24 * time.Hour}
	later := time.Now().Add(400 * 24 * time.Hour)
	dry, err := retention.Run(ctx, deps, policy, later, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.EventsDeleted != 7 {
		t.Errorf("dry run counts %d events, want 7 (4 in the dropped partition, 3 trimmed)", dry.EventsDeleted)
	}
	if got := partitions(t, store.Pool()); !reflect.DeepEqual(got, partsBefore) {
		t.Fatalf("the dry run changed the partitions: %+v", got)
	}
	rep, err := retention.Run(ctx, deps, policy, later, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EventsDeleted != 7 || rep.SnapshotsTaken != 2 {
		t.Errorf("report %+v, want 7 events deleted and 2 snapshots taken", rep)
	}
	parts := partitions(t, store.Pool())
	if len(parts) != len(partsBefore)-1 || parts[0].Name == "events_legacy" || !reflect.DeepEqual(parts, partsBefore[1:]) {
		t.Fatalf("partitions after retention %+v, want %+v without events_legacy", parts, partsBefore)
	}
	for _, id := range []string{"OLD", "NEW"} {
		if after, err := svc.Entity(ctx, "t", id); err != nil || !reflect.DeepEqual(before[id], after) {
			t.Errorf("%s changed by retention:\n%+v\n%+v (%v)", id, before[id], after, err)
		}
	}
	if recs, err := store.ReadStream(ctx, "t", "OLD", 1, 100); err != nil || len(recs) != 0 {
		t.Errorf("OLD reads %d events (%v), want none", len(recs), err)
	}
	newAfter, err := store.ReadStream(ctx, "t", "NEW", 1, 100)
	if err != nil || !reflect.DeepEqual(newAfter, newBefore[3:]) {
		t.Errorf("NEW reads %+v (%v), want its unread event as before: %+v", newAfter, err, newBefore[3:])
	}
	var ids int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM event_ids`).Scan(&ids); err != nil || ids != 1 {
		t.Errorf("%d event ids kept (%v), want 1 (NEW's unread event)", ids, err)
	}
	record("OLD", 1)
	record("NEW", 1)
	for id, want := range map[string]int64{"OLD": 5, "NEW": 5} {
		if info, err := store.StreamInfo(ctx, "t", id); err != nil || info.Version != want {
			t.Errorf("after appending, %s is at %d (%v), want %d", id, info.Version, err, want)
		}
	}
}

// legacyEvent is an event written with the schema before partitioning.
type legacyEvent struct {
	stream   string
	version  int64
	id       uuid.UUID
	data     string
	occurred time.Time
}

// A store of the unpartitioned schema, filled, converts in place: every
// event reads the same (log order and cursors, streams, snapshots, lookups
// by id), old event ids still deduplicate appends, and appends go on.
func TestConversionToPartitionedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateTo(ctx, pool, 2); err != nil {
		t.Fatal(err)
	}
	var legacy []legacyEvent
	occurred := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	for i := range 3 {
		stream := fmt.Sprintf("S-%d", i)
		if _, err := pool.Exec(ctx, `INSERT INTO streams (tenant_id, stream_id, entity_type, version, created_at, updated_at, incarnation)
			VALUES ('t', $1, 'shipment', 5, now(), now(), $2)`, stream, 100+i); err != nil {
			t.Fatal(err)
		}
		for v := int64(1); v <= 5; v++ {
			e := legacyEvent{stream: stream, version: v, id: uuid.New(), data: fmt.Sprintf(`{"n": %d}`, v), occurred: occurred}
			// Recorded over the last 400 days, one transaction each.
			if _, err := pool.Exec(ctx, `INSERT INTO events (tenant_id, stream_id, version, event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at)
				VALUES ('t', $1, $2, $3, 'T', 1, $4::json, '{"source": "legacy"}', $5, now() - make_interval(days => $6))`,
				stream, v, e.id, e.data, e.occurred, 400-int(v)*50-i); err != nil {
				t.Fatal(err)
			}
			legacy = append(legacy, e)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO snapshots (tenant_id, stream_id, version, schema_version, state, incarnation)
		VALUES ('t', 'S-1', 3, 1, '{"at": 3}', 101)`); err != nil {
		t.Fatal(err)
	}
	pool.Close()

	s := open(t, dsn) // converts
	all, err := s.ReadAll(ctx, eventstore.Cursor{}, 100)
	for deadline := time.Now().Add(20 * time.Second); err == nil && len(all) < len(legacy) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // other tests' transactions hold the horizon
		all, err = s.ReadAll(ctx, eventstore.Cursor{}, 100)
	}
	if err != nil || len(all) != len(legacy) {
		t.Fatalf("after the conversion the log reads %d events (%v), want %d", len(all), err, len(legacy))
	}
	for i, r := range all {
		e := legacy[i]
		if r.StreamID != e.stream || r.Version != e.version || r.ID != e.id || string(r.Data) != e.data ||
			!r.OccurredAt.Equal(e.occurred) || r.Metadata.Source != "legacy" || r.EntityType != "shipment" ||
			(i > 0 && !all[i-1].Cursor.Less(r.Cursor)) {
			t.Fatalf("log event %d reads %+v, want %+v in log order", i, r, e)
		}
	}
	loaded, err := s.LoadStream(ctx, "t", "S-1", 100)
	if err != nil || loaded.Snapshot == nil || loaded.Snapshot.Version != 3 || len(loaded.Events) != 2 || loaded.Events[0].Version != 4 {
		t.Fatalf("S-1 loads %+v (%v), want its snapshot at 3 and events 4 and 5", loaded, err)
	}
	found, err := s.Lookup(ctx, "t", []uuid.UUID{legacy[0].id, legacy[14].id})
	if err != nil || len(found) != 2 {
		t.Fatalf("looking up two converted ids found %d (%v)", len(found), err)
	}
	parts := partitions(t, s.Pool())
	if len(parts) < 2 || parts[0].Name != "events_legacy" {
		t.Fatalf("partitions %+v, want events_legacy first", parts)
	}

	// An append of a converted event again is a replay; its id with other
	// content a conflict; new events follow the old ones in the log.
	old := legacy[4] // S-0, version 5
	replay := eventstore.AppendRequest{Tenant: "t", StreamID: old.stream, EntityType: "shipment", Expected: eventstore.Any,
		Events: []eventstore.Event{{ID: old.id, Type: "T", SchemaVersion: 1, Data: json.RawMessage(old.data),
			Metadata: eventstore.Metadata{Source: "legacy"}, OccurredAt: old.occurred}}}
	res, err := s.Append(ctx, replay)
	if err != nil || !res.Replayed || res.Version != 5 {
		t.Fatalf("re-appending a converted event: %+v, %v; want a replay at version 5", res, err)
	}
	replay.Events[0].Data = json.RawMessage(`{"n": 99}`)
	replay.StreamID = "S-2"
	if _, err := s.Append(ctx, replay); !errors.Is(err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("a converted id with other content: %v, want ErrDuplicateEvent", err)
	}
	res, err = s.Append(ctx, eventstore.AppendRequest{Tenant: "t", StreamID: "S-0", EntityType: "shipment", Expected: eventstore.Exact(5),
		Events: []eventstore.Event{{ID: uuid.New(), Type: "T", SchemaVersion: 1, Data: json.RawMessage(`{}`), OccurredAt: occurred}}})
	if err != nil || res.Version != 6 {
		t.Fatalf("appending to a converted stream: %+v, %v; want version 6", res, err)
	}
	var next []eventstore.Recorded
	for deadline := time.Now().Add(20 * time.Second); len(next) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if next, err = s.ReadAll(ctx, all[len(all)-1].Cursor, 100); err != nil {
			t.Fatal(err)
		}
	}
	if len(next) != 1 || next[0].Version != 6 || next[0].Position <= all[len(all)-1].Position {
		t.Fatalf("after the converted events the log reads %+v, want S-0's version 6 at a later position", next)
	}
}
