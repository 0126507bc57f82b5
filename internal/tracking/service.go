package tracking

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Defaults and bounds of ServiceOptions.
const (
	DefaultSnapshotFrequency = 100
	MaxSnapshotFrequency     = 1000
	DefaultOnTimeTolerance   = 15 * time.Minute
	DefaultMaxFutureSkew     = 5 * time.Minute
	DefaultMaxRetries        = 10
	// DefaultMaxEventBytes bounds an event's data: below the 1 MB a Kafka
	// broker takes in one message by default, with room for the CloudEvents
	// envelope the relay wraps it in.
	DefaultMaxEventBytes = 900 << 10
	// MaxEventsPerCommand bounds the events of one RecordCommand.
	MaxEventsPerCommand = 1000
	// maxMetadataLength bounds each client-supplied metadata string.
	maxMetadataLength = 200
	// readPageSize is the page size of stream reads when loading an entity.
	readPageSize = 500
	// snapshotQueueSize bounds the snapshot queue; crossings beyond it are dropped.
	snapshotQueueSize = 1024
	// defaultEventsLimit and maxEventsLimit bound Service.Events.
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// ServiceOptions configure a Service. Zero values take the defaults.
type ServiceOptions struct {
	// SnapshotFrequency: a snapshot is taken each time the stream version
	// crosses a multiple of it. 1..1000, default 100; out-of-range values are
	// clamped.
	SnapshotFrequency int
	// OnTimeTolerance is how late a milestone may be and still be on time.
	// Default 15m.
	OnTimeTolerance time.Duration
	// MaxFutureSkew: events whose occurredAt is later than now plus this are
	// rejected. Default 5m.
	MaxFutureSkew time.Duration
	// ExtraEntityTypes are accepted beside the built-in entity types. Misspelled
	// ones are ignored with a logged error; check them with
	// ValidateEntityTypeName when loading configuration.
	ExtraEntityTypes []string
	// MaxRetries bounds the reload-and-retry loop on version conflicts when the
	// client did not ask for an exact version. Default 10; negative means no
	// retry.
	MaxRetries int
	// MaxEventBytes bounds the size of one event's data (default
	// DefaultMaxEventBytes); a larger one fails the command with an
	// *EventTooLargeError.
	MaxEventBytes int
	// AggregateCacheSize bounds the aggregates of recently written entities
	// kept in memory between commands (see Record); 0 turns the cache off,
	// so that every command loads its entity from the store.
	//
	// Appends state the cached version and stream incarnation, so an entry
	// made stale by another replica costs one reload: an append by another
	// replica fails the version, an erasure and re-creation up to the same
	// version fails the incarnation. Any number of replicas may share a
	// store with the cache on.
	AggregateCacheSize int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives background errors. Default: discard.
	Logger *slog.Logger
}

// RecordCommand records events about one entity.
type RecordCommand struct {
	Tenant   string
	EntityID string
	// EntityType is required when the entity does not exist yet and must match
	// its type otherwise; empty means "whatever it is".
	EntityType string
	Expected   eventstore.ExpectedVersion
	Events     []NewEvent
	// Principal is the authenticated subject; it is stamped on every event
	// (overriding what the client sent).
	Principal string
	// Source, CorrelationID and TraceID are stamped on events whose own
	// metadata does not have them.
	Source        string
	CorrelationID string
	TraceID       string
}

// NewEvent is one event of a RecordCommand.
type NewEvent struct {
	// ID identifies the event for idempotent retries. uuid.Nil makes the
	// service generate a UUIDv7 (and such an event cannot be replayed).
	ID         uuid.UUID
	Type       string
	OccurredAt time.Time
	Data       json.RawMessage
	Metadata   eventstore.Metadata
}

// Service implements the tracking use cases on an event store: recording
// events under the domain invariants, and consistent reads of an entity's
// state and events. It takes snapshots in the background (see Run). A Service
// is safe for concurrent use. Unless its aggregate cache is on (see
// ServiceOptions.AggregateCacheSize) it keeps no per-entity state between
// commands, so any number of replicas can share one store.
type Service struct {
	store     eventstore.Store
	freq      int64
	tolerance time.Duration
	skew      time.Duration
	retries   int
	maxEvent  int
	now       func() time.Time
	log       *slog.Logger
	types     EntityTypes
	snaps     *snapshotQueue
	writers   *stripedLock
	// aggregates caches the aggregates of recently written entities; nil
	// when disabled.
	aggregates *aggregateCache
}

// NewService returns a Service on store. Options are defaulted and clamped as
// documented on ServiceOptions.
func NewService(store eventstore.Store, opts ServiceOptions) *Service {
	s := &Service{
		store:     store,
		freq:      int64(min(max(opts.SnapshotFrequency, 0), MaxSnapshotFrequency)),
		tolerance: opts.OnTimeTolerance,
		skew:      opts.MaxFutureSkew,
		retries:   opts.MaxRetries,
		maxEvent:  opts.MaxEventBytes,
		now:       opts.Now,
		log:       opts.Logger,
		snaps:     newSnapshotQueue(snapshotQueueSize),
		writers:   newStripedLock(1024),
	}
	s.aggregates = newAggregateCache(opts.AggregateCacheSize)
	if s.freq == 0 {
		s.freq = DefaultSnapshotFrequency
	}
	if s.tolerance <= 0 {
		s.tolerance = DefaultOnTimeTolerance
	}
	if s.skew <= 0 {
		s.skew = DefaultMaxFutureSkew
	}
	if s.maxEvent <= 0 {
		s.maxEvent = DefaultMaxEventBytes
	}
	switch {
	case s.retries == 0:
		s.retries = DefaultMaxRetries
	case s.retries < 0:
		s.retries = 0
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	types, err := NewEntityTypes(opts.ExtraEntityTypes...)
	if err != nil {
		s.log.Error("tracking: ignoring misspelled extra entity types", "err", err)
	}
	s.types = types
	return s
}

// EntityTypes returns the entity types the service accepts.
func (s *Service) EntityTypes() EntityTypes { return s.types }

// OnTime reports whether a milestone is on time under the configured
// tolerance (see the package function OnTime).
func (s *Service) OnTime(occurredAt, plannedAt time.Time) bool {
	return OnTime(occurredAt, plannedAt, s.tolerance)
}

// Record validates the command, loads the entity (snapshot and the events
// after it), checks the client's expected version (409 before 422), decides
// the events against the invariants and appends them with the exact version
// it loaded, so invariants hold under concurrency. With Expected Any or
// StreamExists a version conflict reloads and retries (bounded, jittered
// backoff); with NoStream or an exact version it returns the store's
// *eventstore.WrongExpectedVersionError.
//
// Re-sending a stored request (same event ids and content) returns the
// original result with Replayed set, even where the invariants or the expected
// version would now reject it; a request whose ids are stored with other
// content, or only partly stored, fails with eventstore.ErrDuplicateEvent.
//
// Errors: *ValidationError (ErrInvalid), *ViolationError (ErrRuleViolation;
// also for an entityType other than the stream's), eventstore conflicts
// wrapped with %w, or store failures.
func (s *Service) Record(ctx context.Context, cmd RecordCommand) (eventstore.AppendResult, error) {
	events, changes, clientIDs, err := s.prepare(cmd)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	// Commands on one entity take turns within this process: contention is
	// then resolved by waiting rather than by conflicts and retries, which
	// remain for races with other replicas.
	unlock, err := s.writers.lock(ctx, cmd.Tenant, cmd.EntityID)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	defer unlock()
	key := streamKey{cmd.Tenant, cmd.EntityID}
	ent := s.aggregates.take(key)
	for attempt := 0; ; attempt++ {
		fromCache := ent != nil
		if !fromCache {
			if ent, _, err = s.load(ctx, cmd.Tenant, cmd.EntityID); err != nil {
				return eventstore.AppendResult{}, err
			}
		}
		v := ent.Version()
		if err := s.decide(cmd, ent, changes); err != nil {
			if fromCache {
				// The cached aggregate may be stale (another replica wrote):
				// decide again on the store's state before rejecting.
				ent, attempt = nil, attempt-1
				continue
			}
			var invalid *ValidationError
			if errors.As(err, &invalid) {
				return eventstore.AppendResult{}, err
			}
			return s.replayOr(ctx, cmd, events, clientIDs, err)
		}
		res, err := s.store.Append(ctx, eventstore.AppendRequest{
			Tenant: cmd.Tenant, StreamID: cmd.EntityID, EntityType: cmd.EntityType,
			Expected: eventstore.Exact(v), Incarnation: ent.incarnation, Events: events,
		})
		switch {
		case err == nil:
			s.appended(key, cmd.EntityType, ent, res, len(events))
			return res, nil
		case errors.Is(err, eventstore.ErrWrongExpectedVersion):
			ent = nil // decided on a stale version: reload
			if fromCache {
				attempt--
				continue
			}
			retryable := cmd.Expected == eventstore.Any || cmd.Expected == eventstore.StreamExists
			if retryable && attempt < s.retries {
				if err := backoff(ctx, attempt); err != nil {
					return eventstore.AppendResult{}, err
				}
				continue
			}
			if retryable {
				err = fmt.Errorf("tracking: record %q: still conflicting after %d retries: %w", cmd.EntityID, attempt, err)
			} else {
				err = fmt.Errorf("tracking: record %q: %w", cmd.EntityID, err)
			}
			return s.replayOr(ctx, cmd, events, clientIDs, err)
		case errors.Is(err, eventstore.ErrEntityTypeMismatch):
			return s.replayOr(ctx, cmd, events, clientIDs, typeMismatch(cmd.EntityType, ""))
		default:
			return eventstore.AppendResult{}, fmt.Errorf("tracking: record %q: %w", cmd.EntityID, err)
		}
	}
}

// appended keeps what an append of n events decided on ent taught: the
// aggregate goes back to the cache at the stream's incarnation, and a
// snapshot is queued when the append crossed a multiple of the snapshot
// frequency. A replay taught nothing.
func (s *Service) appended(key streamKey, entityType string, ent *Entity, res eventstore.AppendResult, n int) {
	if res.Replayed {
		return
	}
	ent.incarnation = res.Incarnation
	if entityType != "" {
		ent.SetEntityType(entityType)
	}
	s.aggregates.put(key, ent)
	if (res.Version-int64(n))/s.freq != res.Version/s.freq {
		s.snaps.enqueue(key, s.log)
	}
}

// decide checks a command against the aggregate ent: the client's expected
// version (409 before 422), the entity type, then the invariants, applying the
// command's changes to ent. ent must not be used for another decision after an
// error.
func (s *Service) decide(cmd RecordCommand, ent *Entity, changes []Change) error {
	v := ent.Version()
	if !cmd.Expected.Allows(v) {
		return &eventstore.WrongExpectedVersionError{
			Tenant: cmd.Tenant, StreamID: cmd.EntityID, Expected: cmd.Expected, Actual: v,
		}
	}
	if v == 0 && cmd.EntityType == "" {
		return &ValidationError{Errors: []FieldError{{
			Field: "entityType", Message: "entityType is required on the first event of an entity",
		}}}
	}
	if cmd.EntityType != "" && ent.EntityType() != "" && ent.EntityType() != cmd.EntityType {
		return typeMismatch(cmd.EntityType, ent.EntityType())
	}
	return ent.Decide(changes...)
}

func typeMismatch(asked, actual string) error {
	msg := fmt.Sprintf("entityType %q does not match the entity's type", asked)
	if actual != "" {
		msg += fmt.Sprintf(" %q", actual)
	}
	return &ViolationError{Event: -1, Message: msg}
}

// backoff waits a jittered, exponentially growing delay before retry attempt+1.
func backoff(ctx context.Context, attempt int) error {
	ceiling := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
	t := time.NewTimer(ceiling/2 + rand.N(ceiling/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// prepare validates the command and builds the events to append and the
// changes to decide. clientIDs is false for ids the service generated.
func (s *Service) prepare(cmd RecordCommand) ([]eventstore.Event, []Change, []bool, error) {
	var errs fieldErrors
	switch {
	case cmd.Tenant == "":
		errs.add("tenant", "is required")
	case len(cmd.Tenant) > eventstore.MaxTenantLength:
		errs.add("tenant", "must have at most %d bytes", eventstore.MaxTenantLength)
	}
	if !IsEntityID(cmd.EntityID) {
		errs.add("entityId", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
	}
	if cmd.EntityType != "" && !s.types.Known(cmd.EntityType) {
		errs.add("entityType", "unknown entity type %q; known types: %v", cmd.EntityType, s.types.List())
	}
	if !cmd.Expected.Valid() {
		errs.add("expectedVersion", "must be a version, \"any\", \"none\" or \"exists\"")
	}
	switch n := len(cmd.Events); {
	case n == 0:
		errs.add("events", "at least one event is required")
	case n > MaxEventsPerCommand:
		errs.add("events", "at most %d events per request", MaxEventsPerCommand)
	}
	if err := errs.err(); err != nil {
		return nil, nil, nil, err
	}
	for i, ne := range cmd.Events {
		if len(ne.Data) > s.maxEvent {
			return nil, nil, nil, &EventTooLargeError{Event: i, Size: len(ne.Data), Limit: s.maxEvent}
		}
	}

	latest := s.now().Add(s.skew)
	events := make([]eventstore.Event, len(cmd.Events))
	changes := make([]Change, len(cmd.Events))
	clientIDs := make([]bool, len(cmd.Events))
	seen := make(map[uuid.UUID]int, len(cmd.Events))
	for i, ne := range cmd.Events {
		path := "events/" + strconv.Itoa(i)
		var perr fieldErrors
		p := decodePayload(ne.Type, ne.Data, &perr)
		for _, fe := range perr.list {
			errs.add(joinPath(path, fe.Field), "%s", fe.Message)
		}
		if len(perr.list) == 0 {
			if problem := jsonTextProblem(ne.Data); problem != "" {
				errs.add(path+"/data", "%s", problem)
			}
		}
		at := eventstore.NormalizeTime(ne.OccurredAt)
		switch {
		case ne.OccurredAt.IsZero():
			errs.add(path+"/occurredAt", "is required")
		case at.Year() < 1:
			errs.add(path+"/occurredAt", "is out of range")
		case ne.OccurredAt.After(latest):
			errs.add(path+"/occurredAt", "must not be more than %s in the future", s.skew)
		}
		if ne.ID != uuid.Nil {
			if j, dup := seen[ne.ID]; dup {
				errs.add(path+"/eventId", "repeats the id of events/%d", j)
			}
			seen[ne.ID] = i
		}
		md := ne.Metadata
		for _, f := range []struct{ name, value string }{
			{"correlationId", md.CorrelationID}, {"causationId", md.CausationID},
			{"source", md.Source}, {"traceId", md.TraceID},
		} {
			switch {
			case len(f.value) > maxMetadataLength:
				errs.add(path+"/metadata/"+f.name, "must have at most %d bytes", maxMetadataLength)
			case !cleanText(f.value):
				errs.add(path+"/metadata/"+f.name, "must be UTF-8 text without NUL characters")
			}
		}
		md.Principal = cmd.Principal
		md.Source = firstNonEmpty(md.Source, cmd.Source)
		md.CorrelationID = firstNonEmpty(md.CorrelationID, cmd.CorrelationID)
		md.TraceID = firstNonEmpty(md.TraceID, cmd.TraceID)

		id := ne.ID
		clientIDs[i] = id != uuid.Nil
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, nil, nil, fmt.Errorf("tracking: generate event id: %w", err)
			}
		}
		var data bytes.Buffer
		if p != nil {
			if err := json.Compact(&data, ne.Data); err != nil {
				errs.add(path+"/data", "is not valid JSON")
			}
		}
		events[i] = eventstore.Event{
			ID: id, Type: ne.Type, SchemaVersion: EventSchemaVersion,
			Data: json.RawMessage(data.Bytes()), Metadata: md, OccurredAt: at,
		}
		changes[i] = Change{OccurredAt: at, Payload: p}
	}
	if err := errs.err(); err != nil {
		return nil, nil, nil, err
	}
	return events, changes, clientIDs, nil
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// replayOr returns the original result when the command's events are all
// stored already with the same content (an idempotent retry), an
// eventstore.ErrDuplicateEvent error when they are stored with other content
// or only partly, and orig when none is stored. Only client-supplied ids are
// looked up: generated ones cannot be stored yet.
func (s *Service) replayOr(ctx context.Context, cmd RecordCommand, events []eventstore.Event, clientIDs []bool, orig error) (eventstore.AppendResult, error) {
	ids := make([]uuid.UUID, 0, len(events))
	for i, e := range events {
		if clientIDs[i] {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return eventstore.AppendResult{}, orig
	}
	stored, err := s.store.Lookup(ctx, cmd.Tenant, ids)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("tracking: look up event ids of %q: %w", cmd.EntityID, err)
	}
	if len(stored) == 0 {
		return eventstore.AppendResult{}, orig
	}
	res, err := eventstore.ReplayResult(eventstore.AppendRequest{
		Tenant: cmd.Tenant, StreamID: cmd.EntityID, EntityType: cmd.EntityType, Events: events,
	}, stored)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("tracking: record %q: %w", cmd.EntityID, err)
	}
	return res, nil
}

// Entity returns the current state of an entity, read consistently from the
// event store (latest snapshot plus the events after it). ErrNotFound when the
// entity has no events in the tenant (or the id is malformed, so it cannot
// exist).
func (s *Service) Entity(ctx context.Context, tenant, entityID string) (EntityState, error) {
	if !IsEntityID(entityID) {
		return EntityState{}, fmt.Errorf("%w: entity %q", ErrNotFound, entityID)
	}
	ent, _, err := s.load(ctx, tenant, entityID)
	if err != nil {
		return EntityState{}, err
	}
	if ent.Version() == 0 {
		return EntityState{}, fmt.Errorf("%w: %q", ErrNotFound, entityID)
	}
	if err := s.fillType(ctx, tenant, ent); err != nil {
		return EntityState{}, err
	}
	return ent.State(), nil
}

// fillType sets the entity type from the stream's metadata when the events and
// snapshot did not carry it.
func (s *Service) fillType(ctx context.Context, tenant string, ent *Entity) error {
	if ent.EntityType() != "" {
		return nil
	}
	info, err := s.store.StreamInfo(ctx, tenant, ent.ID())
	if err != nil {
		if errors.Is(err, eventstore.ErrNotFound) {
			return fmt.Errorf("%w: %q: %w", ErrNotFound, ent.ID(), err)
		}
		return fmt.Errorf("tracking: stream info of %q: %w", ent.ID(), err)
	}
	ent.SetEntityType(info.EntityType)
	return nil
}

// Events returns up to limit (default 100, at most 1000) events of an entity
// from fromVersion (default 1), in version order. ErrNotFound when the entity
// does not exist; an empty, non-nil slice past the end.
func (s *Service) Events(ctx context.Context, tenant, entityID string, fromVersion int64, limit int) ([]eventstore.Recorded, error) {
	if fromVersion < 0 {
		return nil, &ValidationError{Errors: []FieldError{{Field: "fromVersion", Message: "must be at least 1"}}}
	}
	if !IsEntityID(entityID) {
		return nil, fmt.Errorf("%w: entity %q", ErrNotFound, entityID)
	}
	fromVersion = max(fromVersion, 1)
	if limit <= 0 {
		limit = defaultEventsLimit
	}
	limit = min(limit, maxEventsLimit)
	recs, err := s.store.ReadStream(ctx, tenant, entityID, fromVersion, limit)
	if err != nil {
		if errors.Is(err, eventstore.ErrNotFound) {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotFound, entityID, err)
		}
		return nil, fmt.Errorf("tracking: read events of %q: %w", entityID, err)
	}
	if recs == nil {
		recs = []eventstore.Recorded{}
	}
	return recs, nil
}

// loadStats says how an entity was loaded.
type loadStats struct {
	snapshotVersion int64 // 0 when loaded from scratch
	eventsRead      int
}

// load returns the aggregate at the stream's current version (0 when the
// stream does not exist): the latest snapshot of a known schema, then the
// events after it, page by page.
func (s *Service) load(ctx context.Context, tenant, entityID string) (*Entity, loadStats, error) {
	loaded, err := s.store.LoadStream(ctx, tenant, entityID, readPageSize)
	if errors.Is(err, eventstore.ErrNotFound) {
		// No stream: a snapshot without its stream is an erasure in progress.
		return NewEntity(entityID), loadStats{}, nil
	}
	if err != nil {
		return nil, loadStats{}, fmt.Errorf("tracking: load %q: %w", entityID, err)
	}
	return s.restore(ctx, tenant, entityID, loaded)
}

// restore builds the aggregate from what LoadStream (or LoadStreams) read,
// reading the stream's further pages where the first did not hold it all.
func (s *Service) restore(ctx context.Context, tenant, entityID string, loaded eventstore.Loaded) (*Entity, loadStats, error) {
	var stats loadStats
	if loaded.Incarnation == 0 {
		return NewEntity(entityID), stats, nil // no stream
	}
	var err error
	snap, recs := loaded.Snapshot, loaded.Events
	var ent *Entity
	readNext := false // whether the next page is still to be read
	if snap != nil {
		if e, ok := RestoreEntity(*snap); ok {
			ent, stats.snapshotVersion = e, e.Version()
		} else {
			s.log.Debug("tracking: ignoring snapshot", "tenant", tenant, "entity", entityID,
				"version", snap.Version, "schemaVersion", snap.SchemaVersion)
			recs = nil // they continue the snapshot: read from the start instead
			readNext = true
		}
	}
	if ent == nil {
		ent = NewEntity(entityID)
	}
	// Later pages are read without it: should the stream be erased and
	// re-created meanwhile, an append stating it conflicts, and a snapshot
	// saved with it is never loaded for the new stream.
	ent.incarnation = loaded.Incarnation
	for {
		if readNext {
			recs, err = s.store.ReadStream(ctx, tenant, entityID, ent.Version()+1, readPageSize)
			if errors.Is(err, eventstore.ErrNotFound) {
				return NewEntity(entityID), loadStats{}, nil
			}
			if err != nil {
				return nil, stats, fmt.Errorf("tracking: read stream %q: %w", entityID, err)
			}
		}
		for _, r := range recs {
			ent.Apply(r)
		}
		stats.eventsRead += len(recs)
		if len(recs) < readPageSize {
			return ent, stats, nil
		}
		readNext = true
	}
}
