package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

const tenant = "acme"

// now is the service's clock in these tests: a day after t0.
var now = t0.Add(24 * time.Hour)

type fixture struct {
	svc   *Service
	mem   *memStore
	count *countingStore
}

// newFixture returns a Service on a counting in-memory store, with its
// snapshotter running until the test ends.
func newFixture(t *testing.T, opts ServiceOptions) *fixture {
	t.Helper()
	mem := newMemStore()
	count := &countingStore{Store: mem}
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	svc := NewService(count, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &fixture{svc: svc, mem: mem, count: count}
}

// newEvent turns a test event into a NewEvent with a fresh client id.
func newEvent(x ev) NewEvent {
	return NewEvent{ID: uuid.Must(uuid.NewV7()), Type: x.typ, OccurredAt: at(x.min), Data: json.RawMessage(x.data)}
}

func newEvents(xs ...ev) []NewEvent {
	out := make([]NewEvent, len(xs))
	for i, x := range xs {
		out[i] = newEvent(x)
	}
	return out
}

func command(entityID string, expected eventstore.ExpectedVersion, events ...NewEvent) RecordCommand {
	return RecordCommand{Tenant: tenant, EntityID: entityID, EntityType: EntityPackage, Expected: expected, Events: events, Principal: "alice"}
}

func (f *fixture) record(t *testing.T, cmd RecordCommand) eventstore.AppendResult {
	t.Helper()
	res, err := f.svc.Record(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	return res
}

func TestRecordAndRead(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	res := f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), milestoneAt(5, "picked_up", 52, 4, "AMS"))...))
	if res.Version != 2 || len(res.Events) != 2 || res.Events[1].Version != 2 || res.Replayed {
		t.Fatalf("result %+v", res)
	}
	// A later command may leave the entity type out, or repeat it.
	cmd := command("PKG-1", eventstore.Exact(2), newEvents(raise(6, "e1"), etaEv(7, 600), assoc(8, "CONT-1"))...)
	cmd.EntityType = ""
	f.record(t, cmd)

	s, err := f.svc.Entity(ctx, tenant, "PKG-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.EntityID != "PKG-1" || s.EntityType != EntityPackage || s.Version != 5 || s.Status != StatusInTransit ||
		s.LastLocation == nil || s.LastLocation.SiteID != "AMS" || len(s.OpenExceptions) != 1 ||
		s.ETA == nil || !s.ETA.Equal(at(600)) || s.ParentID != "CONT-1" || s.UpdatedAt.IsZero() || s.Reference != "PO-7" {
		t.Fatalf("state %+v", s)
	}
	b, _ := json.Marshal(s)
	for _, key := range []string{`"entityId"`, `"entityType"`, `"version"`, `"status"`, `"lastLocation"`, `"openExceptions"`, `"eta"`, `"parentId"`, `"updatedAt"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}

	evs, err := f.svc.Events(ctx, tenant, "PKG-1", 2, 2)
	if err != nil || len(evs) != 2 || evs[0].Version != 2 || evs[1].Version != 3 {
		t.Fatalf("Events = %+v, %v", evs, err)
	}
	if evs, err := f.svc.Events(ctx, tenant, "PKG-1", 99, 0); err != nil || evs == nil || len(evs) != 0 {
		t.Fatalf("Events past the end = %#v, %v", evs, err)
	}

	for _, tc := range []struct{ tenant, id string }{{tenant, "PKG-2"}, {"other-tenant", "PKG-1"}, {tenant, "not an id"}} {
		if _, err := f.svc.Entity(ctx, tc.tenant, tc.id); !errors.Is(err, ErrNotFound) || !errors.Is(err, eventstore.ErrNotFound) {
			t.Errorf("Entity(%s, %s) = %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
		if _, err := f.svc.Events(ctx, tc.tenant, tc.id, 1, 10); !errors.Is(err, ErrNotFound) {
			t.Errorf("Events(%s, %s) = %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
	}
}

func TestRecordStampsMetadata(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	own := newEvent(milestone(2, "departed"))
	own.Metadata = eventstore.Metadata{Source: "scanner-7", CorrelationID: "c-own", TraceID: "t-own", CausationID: "x", Principal: "mallory"}
	cmd := command("PKG-1", eventstore.Any, newEvent(register(0)), own)
	cmd.Source, cmd.CorrelationID, cmd.TraceID = "api", "c-cmd", "t-cmd"
	f.record(t, cmd)
	evs, err := f.svc.Events(context.Background(), tenant, "PKG-1", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []eventstore.Metadata{
		{Source: "api", CorrelationID: "c-cmd", TraceID: "t-cmd", Principal: "alice"},
		{Source: "scanner-7", CorrelationID: "c-own", TraceID: "t-own", CausationID: "x", Principal: "alice"},
	}
	for i := range want {
		if evs[i].Metadata != want[i] {
			t.Errorf("event %d metadata %+v, want %+v", i, evs[i].Metadata, want[i])
		}
		if evs[i].SchemaVersion != EventSchemaVersion {
			t.Errorf("event %d schema version %d", i, evs[i].SchemaVersion)
		}
	}
}

func TestRecordGeneratesIDs(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	e := newEvent(register(0))
	e.ID = uuid.Nil
	res := f.record(t, command("PKG-1", eventstore.Any, e))
	if id := res.Events[0].ID; id == uuid.Nil || id.Version() != 7 {
		t.Fatalf("generated id %s is not a UUIDv7", id)
	}
}

func TestRecordValidation(t *testing.T) {
	f := newFixture(t, ServiceOptions{MaxFutureSkew: 5 * time.Minute, ExtraEntityTypes: []string{"pallet"}})
	valid := func() RecordCommand { return command("PKG-1", eventstore.Any, newEvent(register(0))) }
	future := func(d time.Duration) RecordCommand {
		c := valid()
		c.Events[0].OccurredAt = now.Add(d)
		return c
	}
	many := func(n int) RecordCommand {
		c := valid()
		c.Events = nil
		for i := range n {
			c.Events = append(c.Events, newEvent(located(i, 1, 1)))
		}
		return c
	}
	tests := []struct {
		name  string
		cmd   func() RecordCommand
		field string // "" means accepted
	}{
		{"valid", valid, ""},
		{"extra entity type", func() RecordCommand { c := valid(); c.EntityType = "pallet"; return c }, ""},
		{"occurredAt at the skew limit", func() RecordCommand { return future(5 * time.Minute) }, ""},
		{"old occurredAt", func() RecordCommand {
			c := valid()
			c.Events[0].OccurredAt = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
			return c
		}, ""},
		{"1000 events", func() RecordCommand { return many(1000) }, ""},
		{"occurredAt beyond the skew", func() RecordCommand { return future(5*time.Minute + time.Microsecond) }, "events/0/occurredAt"},
		{"occurredAt missing", func() RecordCommand { c := valid(); c.Events[0].OccurredAt = time.Time{}; return c }, "events/0/occurredAt"},
		{"no tenant", func() RecordCommand { c := valid(); c.Tenant = ""; return c }, "tenant"},
		{"bad entity id", func() RecordCommand { c := valid(); c.EntityID = "-PKG"; return c }, "entityId"},
		{"entity id too long", func() RecordCommand { c := valid(); c.EntityID = strings.Repeat("a", 201); return c }, "entityId"},
		{"unknown entity type", func() RecordCommand { c := valid(); c.EntityType = "drone"; return c }, "entityType"},
		{"bad expected version", func() RecordCommand { c := valid(); c.Expected = -3; return c }, "expectedVersion"},
		{"no events", func() RecordCommand { c := valid(); c.Events = nil; return c }, "events"},
		{"1001 events", func() RecordCommand { return many(1001) }, "events"},
		{"bad payload", func() RecordCommand {
			c := valid()
			c.Events = append(c.Events, newEvent(ev{TypeLocationReported, 1, `{"lat":91,"lon":0}`}))
			return c
		}, "events/1/data/lat"},
		{"bad type", func() RecordCommand { c := valid(); c.Events[0].Type = "Nope"; return c }, "events/0/type"},
		{"duplicate event ids", func() RecordCommand {
			c := valid()
			dup := newEvent(located(1, 1, 1))
			dup.ID = c.Events[0].ID
			c.Events = append(c.Events, dup)
			return c
		}, "events/1/eventId"},
		{"metadata too long", func() RecordCommand {
			c := valid()
			c.Events[0].Metadata.CorrelationID = strings.Repeat("c", 201)
			return c
		}, "events/0/metadata/correlationId"},
		{"metadata not UTF-8", func() RecordCommand { c := valid(); c.Events[0].Metadata.Source = "\xff"; return c }, "events/0/metadata/source"},
		{"entity type missing on a new entity", func() RecordCommand { c := valid(); c.EntityID = "NEW-1"; c.EntityType = ""; return c }, "entityType"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := tt.cmd()
			if cmd.EntityID == "PKG-1" {
				cmd.EntityID = fmt.Sprintf("PKG-%d", i) // a fresh entity per case
			}
			_, err := f.svc.Record(context.Background(), cmd)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Record: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) {
				t.Fatalf("Record = %v, want a *ValidationError", err)
			}
			if !slices.ContainsFunc(ve.Errors, func(fe FieldError) bool { return fe.Field == tt.field }) {
				t.Fatalf("errors %+v do not name %q", ve.Errors, tt.field)
			}
		})
	}
}

func TestRecordRuleViolations(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), start(1, "loading", "op1"), raise(1, "e1"))...))
	tests := []struct {
		name   string
		cmd    RecordCommand
		want   error
		status string
	}{
		{"registered twice", command("PKG-1", eventstore.Any, newEvent(register(2))), ErrRuleViolation, ""},
		{"registered twice in one request on a new entity",
			command("PKG-2", eventstore.Any, newEvents(register(0), register(1))...), ErrRuleViolation, ""},
		{"complete without start", command("PKG-1", eventstore.Any, newEvent(complete(3, "loading", "op2"))), ErrRuleViolation, ""},
		{"complete before start", command("PKG-1", eventstore.Any, newEvent(complete(0, "loading", "op1"))), ErrRuleViolation, ""},
		{"start an open operation", command("PKG-1", eventstore.Any, newEvent(start(3, "loading", "op1"))), ErrRuleViolation, ""},
		{"resolve an unknown exception", command("PKG-1", eventstore.Any, newEvent(resolve(3, "e9"))), ErrRuleViolation, ""},
		{"raise an open exception", command("PKG-1", eventstore.Any, newEvent(raise(3, "e1"))), ErrRuleViolation, ""},
		{"other entity type", func() RecordCommand {
			c := command("PKG-1", eventstore.Any, newEvent(located(3, 1, 1)))
			c.EntityType = EntityVehicle
			return c
		}(), ErrRuleViolation, ""},
		{"409 wins over 422", command("PKG-1", eventstore.Exact(1), newEvent(register(2))), eventstore.ErrWrongExpectedVersion, ""},
		{"no stream on an existing entity", command("PKG-1", eventstore.NoStream, newEvent(located(3, 1, 1))), eventstore.ErrWrongExpectedVersion, ""},
		{"stream exists on a new entity", command("PKG-3", eventstore.StreamExists, newEvent(register(0))), eventstore.ErrWrongExpectedVersion, ""},
		{"start and complete in one request", command("PKG-1", eventstore.Exact(3),
			newEvents(start(3, "sorting", "op3"), complete(4, "sorting", "op3"), complete(5, "loading", "op1"), resolve(5, "e1"))...), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.svc.Entity(ctx, tenant, "PKG-1")
			_, err := f.svc.Record(ctx, tt.cmd)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Record: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Record = %v, want %v", err, tt.want)
			}
			if after, _ := f.svc.Entity(ctx, tenant, "PKG-1"); after.Version != before.Version {
				t.Fatalf("a rejected command changed the version %d → %d", before.Version, after.Version)
			}
		})
	}
	// A 409 carries the stream's actual version.
	_, err := f.svc.Record(ctx, command("PKG-1", eventstore.Exact(1), newEvent(located(9, 1, 1))))
	var wev *eventstore.WrongExpectedVersionError
	if !errors.As(err, &wev) || wev.Actual != 7 || wev.Expected != eventstore.Exact(1) {
		t.Fatalf("conflict %v (%+v), want actual 7", err, wev)
	}
}

func TestIdempotentReplay(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	reg := command("PKG-1", eventstore.NoStream, newEvents(register(0), milestone(1, "picked_up"))...)
	orig := f.record(t, reg)
	f.record(t, command("PKG-1", eventstore.Any, newEvent(milestone(2, "departed"))))
	if _, lookups := f.count.reset(); lookups != 0 {
		t.Fatalf("the happy path did %d lookups, want 0", lookups)
	}

	t.Run("replay of a registration returns the original result", func(t *testing.T) {
		for _, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any, eventstore.Exact(2), eventstore.StreamExists} {
			again := reg
			again.Expected = expected
			// Retries may carry other metadata and formatting: not part of the identity.
			again.Events = slices.Clone(reg.Events)
			again.Events[0].Metadata.CorrelationID = "retry"
			again.Events[0].Data = json.RawMessage(" " + string(reg.Events[0].Data) + "\n")
			got, err := f.svc.Record(ctx, again)
			if err != nil {
				t.Fatalf("expected %s: replay failed: %v", expected, err)
			}
			want := orig
			want.Replayed = true
			if got.Version != want.Version || !slices.Equal(got.Events, want.Events) || !got.Replayed || got.StreamID != "PKG-1" {
				t.Fatalf("expected %s: replay %+v, want %+v", expected, got, want)
			}
		}
		if s, _ := f.svc.Entity(ctx, tenant, "PKG-1"); s.Version != 3 {
			t.Fatalf("replays changed the stream: version %d", s.Version)
		}
	})

	t.Run("same ids with other content", func(t *testing.T) {
		other := reg
		other.Events = slices.Clone(reg.Events)
		other.Events[1].Data = json.RawMessage(`{"milestone":"departed"}`)
		if _, err := f.svc.Record(ctx, other); !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("Record = %v, want ErrDuplicateEvent", err)
		}
	})

	t.Run("partial replay", func(t *testing.T) {
		partial := reg
		partial.Expected = eventstore.Any
		partial.Events = []NewEvent{reg.Events[0], newEvent(milestone(9, "arrived"))}
		if _, err := f.svc.Record(ctx, partial); !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("Record = %v, want ErrDuplicateEvent", err)
		}
	})

	t.Run("a stored id in another stream", func(t *testing.T) {
		elsewhere := reg
		elsewhere.EntityID = "PKG-2"
		elsewhere.Expected = eventstore.Any
		if _, err := f.svc.Record(ctx, elsewhere); !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("Record = %v, want ErrDuplicateEvent", err)
		}
	})

	t.Run("no id stored keeps the original error", func(t *testing.T) {
		_, err := f.svc.Record(ctx, command("PKG-1", eventstore.Any, newEvent(register(5))))
		if !errors.Is(err, ErrRuleViolation) {
			t.Fatalf("Record = %v, want ErrRuleViolation", err)
		}
	})
}

func TestConcurrentRecordsAny(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvent(register(0))))
	const writers = 32
	var wg sync.WaitGroup
	results := make(chan eventstore.AppendResult, writers)
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			res, err := f.svc.Record(ctx, command("PKG-1", eventstore.Any, newEvent(located(i, 1, 1))))
			if err != nil {
				errs <- err
				return
			}
			results <- res
		})
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Record: %v", err)
	}
	var versions []int64
	for r := range results {
		versions = append(versions, r.Version)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+2) {
			t.Fatalf("versions %v are not contiguous 2..%d", versions, writers+1)
		}
	}
	evs, err := f.svc.Events(ctx, tenant, "PKG-1", 1, 1000)
	if err != nil || len(evs) != writers+1 {
		t.Fatalf("Events: %d, %v", len(evs), err)
	}
	for i, e := range evs {
		if e.Version != int64(i+1) {
			t.Fatalf("stream versions not contiguous at %d: %d", i, e.Version)
		}
	}
}

// TestConcurrentOperations races starts and completions on one entity and
// checks the invariant on what was stored: no completion without a start.
func TestConcurrentOperations(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), start(1, "sorting", "shared"))...))
	const workers = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	sharedCompletions, unexpected := 0, []error{}
	for i := range workers {
		wg.Go(func() {
			op := fmt.Sprintf("op%d", i)
			// Half complete first (rejected unless someone else started it: nobody
			// does), half start then complete.
			if i%2 == 0 {
				if _, err := f.svc.Record(ctx, command("PKG-1", eventstore.Any, newEvent(complete(i+10, "loading", op)))); !errors.Is(err, ErrRuleViolation) {
					mu.Lock()
					unexpected = append(unexpected, fmt.Errorf("completion without start: %v", err))
					mu.Unlock()
				}
			}
			for _, x := range []ev{start(i+2, "loading", op), complete(i+3, "loading", op)} {
				if _, err := f.svc.Record(ctx, command("PKG-1", eventstore.Any, newEvent(x))); err != nil {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
			// Everybody races to complete the shared operation: one wins.
			_, err := f.svc.Record(ctx, command("PKG-1", eventstore.Any, newEvent(complete(100, "sorting", "shared"))))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sharedCompletions++
			case !errors.Is(err, ErrRuleViolation):
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	if sharedCompletions != 1 {
		t.Errorf("the shared operation completed %d times", sharedCompletions)
	}
	evs, err := f.svc.Events(ctx, tenant, "PKG-1", 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]time.Time{}
	completions := 0
	for i, e := range evs {
		if e.Version != int64(i+1) {
			t.Fatalf("versions not contiguous at %d", i)
		}
		p, err := DecodePayload(e.Type, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case OperationStarted:
			if _, dup := open[p.OperationID]; dup {
				t.Fatalf("v%d starts %s twice", e.Version, p.OperationID)
			}
			open[p.OperationID] = e.OccurredAt
		case OperationCompleted:
			started, ok := open[p.OperationID]
			if !ok || e.OccurredAt.Before(started) {
				t.Fatalf("v%d completes %s without a start before it", e.Version, p.OperationID)
			}
			delete(open, p.OperationID)
			completions++
		}
	}
	if completions != workers+1 || len(open) != 0 {
		t.Fatalf("%d completions, %d still open; want %d and 0", completions, len(open), workers+1)
	}
}

func TestSnapshotsEveryFrequency(t *testing.T) {
	const freq = 100
	f := newFixture(t, ServiceOptions{SnapshotFrequency: freq})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvent(register(0))))
	var want []int64
	version := int64(1)
	for version < 1000 {
		var batch []NewEvent
		for range 7 {
			batch = append(batch, newEvent(located(int(version), float64(version%90), 0)))
		}
		res := f.record(t, command("PKG-1", eventstore.Exact(version), batch...))
		if version/freq != res.Version/freq {
			want = append(want, res.Version)
		}
		version = res.Version
		if err := f.svc.Flush(ctx); err != nil { // so that each snapshot is at the crossing version
			t.Fatal(err)
		}
	}
	if got := f.mem.snapshotVersions(tenant, "PKG-1"); !slices.Equal(got, want) {
		t.Fatalf("snapshots at %v, want %v", got, want)
	}

	f.count.reset()
	s, err := f.svc.Entity(ctx, tenant, "PKG-1")
	if err != nil {
		t.Fatal(err)
	}
	if read, _ := f.count.reset(); read > freq {
		t.Fatalf("loading %d events read %d, want at most %d", s.Version, read, freq)
	}
	if s.Version != version || s.EntityType != EntityPackage {
		t.Fatalf("state %+v", s)
	}

	// The state loaded through snapshots equals the full fold.
	evs, err := f.mem.ReadStream(ctx, tenant, "PKG-1", 1, 5000)
	if err != nil {
		t.Fatal(err)
	}
	full := NewEntity("PKG-1")
	for _, e := range evs {
		full.Apply(e)
	}
	full.SetEntityType(EntityPackage)
	if got, want := mustJSON(t, s), mustJSON(t, full.State()); got != want {
		t.Fatalf("loaded %s\nwant %s", got, want)
	}
}

func TestSnapshotBatchOfThousand(t *testing.T) {
	f := newFixture(t, ServiceOptions{SnapshotFrequency: 100})
	ctx := context.Background()
	batch := []NewEvent{newEvent(register(0))}
	for i := range 999 {
		batch = append(batch, newEvent(located(i, 1, 1)))
	}
	f.record(t, command("PKG-1", eventstore.NoStream, batch...))
	f.record(t, command("PKG-1", eventstore.Any, newEvents(located(1300, 2, 2), milestone(1301, "delivered"))...))
	if err := f.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.count.reset()
	s, err := f.svc.Entity(ctx, tenant, "PKG-1")
	if err != nil {
		t.Fatal(err)
	}
	if read, _ := f.count.reset(); read > 100 {
		t.Fatalf("loading read %d events", read)
	}
	if s.Version != 1002 || s.Status != StatusDelivered || s.LastLocation.Lat != 2 {
		t.Fatalf("state %+v", s)
	}
}

func TestUnknownSnapshotSchemaIgnored(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	ctx := context.Background()
	f.record(t, command("PKG-1", eventstore.NoStream, newEvents(register(0), milestone(1, "delivered"), located(2, 3, 4))...))
	err := f.mem.SaveSnapshot(ctx, eventstore.Snapshot{
		Tenant: tenant, StreamID: "PKG-1", Version: 3, SchemaVersion: SnapshotSchemaVersion + 1,
		State: json.RawMessage(`{"from":"the future"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.count.reset()
	s, err := f.svc.Entity(ctx, tenant, "PKG-1")
	if err != nil {
		t.Fatal(err)
	}
	if read, _ := f.count.reset(); read != 3 {
		t.Fatalf("read %d events, want all 3 (from scratch)", read)
	}
	if s.Version != 3 || s.Status != StatusDelivered || s.LastLocation == nil || s.LastLocation.Lat != 3 {
		t.Fatalf("state %+v", s)
	}
	// Recording still works on top of it.
	f.record(t, command("PKG-1", eventstore.Exact(3), newEvent(milestone(3, "returned"))))
}

func TestFlushAndRun(t *testing.T) {
	svc := NewService(newMemStore(), ServiceOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Flush(ctx); err != nil {
		t.Fatalf("Flush with nothing queued: %v", err)
	}
	// Queued work is abandoned when Run stops, releasing Flush.
	svc.snaps.enqueue(streamKey{tenant, "X"}, svc.log)
	cancel()
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := svc.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Run abandoned the queue: %v", err)
	}
}

func TestServiceOptions(t *testing.T) {
	svc := NewService(newMemStore(), ServiceOptions{SnapshotFrequency: 5000, MaxRetries: -1})
	if svc.freq != MaxSnapshotFrequency || svc.retries != 0 || svc.skew != DefaultMaxFutureSkew || svc.tolerance != DefaultOnTimeTolerance {
		t.Fatalf("defaults: %+v", svc)
	}
	if !svc.OnTime(at(15), at(0)) || svc.OnTime(at(16), at(0)) {
		t.Fatal("OnTime does not use the 15m default tolerance")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConcurrentReplays sends one registration request many times at once, as
// a client retrying on timeouts would: one append wins, the others are
// replays of it, whichever way they meet the invariants.
func TestConcurrentReplays(t *testing.T) {
	f := newFixture(t, ServiceOptions{})
	reg := command("PKG-1", eventstore.Any, newEvents(register(0), start(1, "loading", "op1"))...)
	const senders = 16
	var wg sync.WaitGroup
	results := make([]eventstore.AppendResult, senders)
	errs := make([]error, senders)
	for i := range senders {
		wg.Go(func() { results[i], errs[i] = f.svc.Record(context.Background(), reg) })
	}
	wg.Wait()
	originals := 0
	for i := range senders {
		if errs[i] != nil {
			t.Fatalf("sender %d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			originals++
		}
		if results[i].Version != 2 || !slices.Equal(results[i].Events, results[0].Events) {
			t.Fatalf("sender %d got %+v, sender 0 %+v", i, results[i], results[0])
		}
	}
	if originals != 1 {
		t.Fatalf("%d senders appended, want 1", originals)
	}
}

// NUL and lone surrogates written as JSON escapes are refused in every
// event's data, standard and custom alike; a proper pair is text.
func TestDataTextRule(t *testing.T) {
	svc := NewService(newMemStore(), ServiceOptions{})
	record := func(typ, data string) error {
		_, err := svc.Record(t.Context(), RecordCommand{Tenant: "t", EntityID: "E-" + uuid.NewString(), EntityType: "shipment",
			Expected: eventstore.Any, Events: []NewEvent{{Type: typ, OccurredAt: time.Now(), Data: json.RawMessage(data)}}})
		return err
	}
	for _, text := range []string{`\\u0000`, `\\ud800`, `\ud83d\ude00`, `\\\ud83d\ude00`} {
		if err := record("x-note", `{"note":"`+text+`"}`); err != nil {
			t.Errorf("x-note with %s: %v, want accepted", text, err)
		}
	}
	for _, bad := range []string{`\u0000`, `a\ud800b`, `\udfff`, `\ud800\u0041`, `\ud800`} {
		for typ, field := range map[string]string{"x-note": "note", TypeEntityRegistered: "reference"} {
			var invalid *ValidationError
			if err := record(typ, `{"`+field+`":"`+bad+`"}`); !errors.As(err, &invalid) {
				t.Errorf("%s with %s: %v, want a validation error", typ, bad, err)
			}
		}
	}
	var invalid *ValidationError
	if err := record("x-note", `{"\u0000":1}`); !errors.As(err, &invalid) {
		t.Errorf("a NUL in a member name: %v, want a validation error", err)
	}
}

// An event whose data is larger than MaxEventBytes (default 900 KiB, below
// a Kafka broker's 1 MB message) fails the whole command as too large,
// naming the event; nothing is appended.
func TestEventTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	svc := NewService(store, ServiceOptions{})
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", DefaultMaxEventBytes) + `"}`)
	_, err := svc.Record(ctx, RecordCommand{Tenant: "t", EntityID: "E-1", EntityType: "package", Events: []NewEvent{
		{Type: "EntityRegistered", OccurredAt: time.Now().Add(-time.Minute), Data: json.RawMessage(`{}`)},
		{Type: "x-big", OccurredAt: time.Now().Add(-time.Minute), Data: big}}})
	var tooLarge *EventTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Event != 1 || tooLarge.Limit != DefaultMaxEventBytes || !errors.Is(err, ErrInvalid) {
		t.Fatalf("a %d-byte event: %v, want an EventTooLargeError for event 1 that is ErrInvalid", len(big), err)
	}
	if _, err := store.StreamInfo(ctx, "t", "E-1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the refused command wrote: %v", err)
	}
	small := NewService(store, ServiceOptions{MaxEventBytes: 1024})
	if _, err := small.Record(ctx, RecordCommand{Tenant: "t", EntityID: "E-2", EntityType: "package", Events: []NewEvent{
		{Type: "x-note", OccurredAt: time.Now().Add(-time.Minute), Data: json.RawMessage(`{"note":"` + strings.Repeat("y", 1100) + `"}`)}}}); !errors.As(err, &tooLarge) {
		t.Fatalf("MaxEventBytes 1024, an 1.1 KB event: %v, want too large", err)
	}
}
