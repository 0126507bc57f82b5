// Package eventstore defines the event store contract that every storage engine
// of tracktrace implements: append-only streams with optimistic concurrency,
// idempotent appends, a gap-safe global log and snapshots.
//
// A stream is identified by (tenant, stream id). Stream versions start at 1 and
// are contiguous. Each creation of a stream is a new incarnation: after an
// erasure the same id starts again at version 1 under another incarnation,
// and an append that states the incarnation it was decided on conflicts
// with any other. Every recorded event also has a position in the store-wide
// global log; the log is read with a Cursor that never skips a committed event.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ExpectedVersion states what the writer believes the stream version to be.
// Non-negative values are exact versions (0 is the same as NoStream); the
// negative constants below have special meanings.
type ExpectedVersion int64

const (
	// Any accepts the append whatever the stream's version, including a new stream.
	Any ExpectedVersion = -1
	// NoStream requires that the stream does not exist yet.
	NoStream ExpectedVersion = 0
	// StreamExists requires that the stream has at least one event.
	StreamExists ExpectedVersion = -2
)

// Exact returns the ExpectedVersion that requires the stream to be at version v.
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// Valid reports whether e is one of the constants or an exact version.
func (e ExpectedVersion) Valid() bool { return e >= StreamExists }

// Allows reports whether a stream at version current (0 when it does not exist)
// satisfies e.
func (e ExpectedVersion) Allows(current int64) bool {
	switch {
	case e == Any:
		return true
	case e == StreamExists:
		return current > 0
	default:
		return int64(e) == current
	}
}

// String returns "any", "none", "exists" or the exact version.
func (e ExpectedVersion) String() string {
	switch e {
	case Any:
		return "any"
	case NoStream:
		return "none"
	case StreamExists:
		return "exists"
	default:
		return strconv.FormatInt(int64(e), 10)
	}
}

// MarshalJSON writes the JSON union the APIs use: a version number, or
// "any", "none", "exists".
func (e ExpectedVersion) MarshalJSON() ([]byte, error) {
	if e >= 0 && e != NoStream {
		return []byte(strconv.FormatInt(int64(e), 10)), nil
	}
	return json.Marshal(e.String())
}

// UnmarshalJSON reads a version number (>= 0) or "any", "none", "exists".
func (e *ExpectedVersion) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case "any":
			*e = Any
		case "none":
			*e = NoStream
		case "exists":
			*e = StreamExists
		default:
			return errors.New(`expectedVersion must be a version number, "any", "none" or "exists"`)
		}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil || n < 0 {
		return errors.New(`expectedVersion must be a version number (>= 0), "any", "none" or "exists"`)
	}
	*e = Exact(n)
	return nil
}

// Metadata is the context recorded with every event. It is not part of an
// event's identity: an idempotent retry may carry different metadata.
type Metadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Source        string `json:"source,omitempty"`
	Principal     string `json:"principal,omitempty"`
	TraceID       string `json:"traceId,omitempty"`
}

// Event is an event to append.
type Event struct {
	ID            uuid.UUID
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
	// OccurredAt is the business time reported by the source of the event.
	OccurredAt time.Time
}

// Recorded is an event as stored.
type Recorded struct {
	Position      int64
	Tenant        string
	StreamID      string
	Version       int64
	ID            uuid.UUID
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
	OccurredAt    time.Time
	RecordedAt    time.Time
	// EntityType is the stream's entity type. It is filled by global-log reads.
	EntityType string
	// Cursor is the global-log cursor just after this event.
	Cursor Cursor
}

// ErasureType is the type of the erasure marker Store.Erase leaves in the
// global log: a Recorded of version 0 naming the erased stream's tenant and
// id, after every event of the erased stream, and carrying nothing else of
// it. It is how readers of the log (the Kafka relay, which publishes it as
// a tombstone) learn of an erasure in order. The "$" keeps it apart from
// every event type the domain accepts.
const ErasureType = "$erased"

// Erasure reports whether r is an erasure marker (see ErasureType) rather
// than an event of its stream.
func (r Recorded) Erasure() bool { return r.Version == 0 && r.Type == ErasureType }

// ErasureData is the data of the erasure marker of a stream that had n
// events.
func ErasureData(n int64) json.RawMessage {
	return json.RawMessage(`{"events":` + strconv.FormatInt(n, 10) + `}`)
}

// AppendRequest appends events to one stream, atomically.
type AppendRequest struct {
	Tenant   string
	StreamID string
	// EntityType is required when the append creates the stream and must match
	// the stream's entity type otherwise (empty means "whatever it is").
	EntityType string
	Expected   ExpectedVersion
	// Incarnation, when not 0, is the stream incarnation the writer decided
	// on (LoadStream's or an earlier append's): the append then conflicts
	// (ErrWrongExpectedVersion) unless the stream exists under it, so a
	// stream erased and re-created since is never mistaken for the one read.
	Incarnation int64
	Events      []Event
}

// AppendedEvent is the position of one appended event.
type AppendedEvent struct {
	ID       uuid.UUID
	Version  int64
	Position int64
}

// AppendResult is the outcome of a successful append.
type AppendResult struct {
	StreamID string
	// Version is the stream version after the append (the last event's version).
	Version int64
	Events  []AppendedEvent
	// Incarnation is the stream's incarnation after the append.
	Incarnation int64
	// Replayed is true when every event of the request was already stored with
	// the same content: nothing was written and the original result is returned.
	Replayed bool
}

// StreamInfo describes a stream.
type StreamInfo struct {
	Tenant     string
	StreamID   string
	EntityType string
	Version    int64
	// Incarnation identifies this creation of the stream (never 0).
	Incarnation int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Snapshot is the serialized state of a stream's aggregate at a version.
type Snapshot struct {
	Tenant        string
	StreamID      string
	Version       int64
	SchemaVersion int
	State         json.RawMessage
	// Incarnation is the stream incarnation the state was folded from. A
	// snapshot is only ever returned for that incarnation; saving one with
	// 0 takes the stream's current incarnation.
	Incarnation int64
	CreatedAt   time.Time
}

// Cursor is a resumable position in the global log. The zero Cursor is the
// beginning of the log. TxID is the committing transaction's id where the
// engine's positions can commit out of order (PostgreSQL) and 0 otherwise.
type Cursor struct {
	TxID     uint64
	Position int64
}

// Less orders cursors in log order.
func (c Cursor) Less(o Cursor) bool {
	if c.TxID != o.TxID {
		return c.TxID < o.TxID
	}
	return c.Position < o.Position
}

// String encodes the cursor as "txid:position".
func (c Cursor) String() string {
	return strconv.FormatUint(c.TxID, 10) + ":" + strconv.FormatInt(c.Position, 10)
}

// ParseCursor decodes a cursor written by Cursor.String. The empty string is
// the beginning of the log.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	tx, pos, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, fmt.Errorf("%w: cursor %q is not txid:position", ErrInvalid, s)
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: cursor %q: bad transaction id", ErrInvalid, s)
	}
	p, err := strconv.ParseInt(pos, 10, 64)
	if err != nil || p < 0 {
		return Cursor{}, fmt.Errorf("%w: cursor %q: bad position", ErrInvalid, s)
	}
	return Cursor{TxID: t, Position: p}, nil
}

// Store is the event store contract.
type Store interface {
	// Append writes the request's events atomically, or returns an error and
	// writes nothing. See ErrWrongExpectedVersion and ErrDuplicateEvent.
	Append(ctx context.Context, req AppendRequest) (AppendResult, error)
	// ReadStream returns up to limit events of one stream with version >= from,
	// in version order. A missing stream returns ErrNotFound.
	ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]Recorded, error)
	// ReadAll returns up to limit events of the global log after the cursor,
	// across all tenants, in log order. It never returns an event after one
	// that is still uncommitted with a lower position: when it returns, every
	// event before the last returned cursor has been returned or never will be.
	// The log holds erasure markers too (Recorded.Erasure).
	ReadAll(ctx context.Context, after Cursor, limit int) ([]Recorded, error)
	// Head returns the cursor of the newest readable event of the global log.
	Head(ctx context.Context) (Cursor, error)
	// Backlog counts the readable events after a cursor.
	Backlog(ctx context.Context, after Cursor) (Backlog, error)
	// CursorAt returns the log cursor of the tenant's event (or erasure
	// marker) stored at a global position: reading the log after it yields
	// exactly the records after that one. ErrNotFound when the tenant has
	// nothing there: another tenant's position, an erased or trimmed
	// event, a position not (yet) used. It turns a position a client saw
	// (an SSE id, a subscription's start) into where to resume.
	CursorAt(ctx context.Context, tenant string, position int64) (Cursor, error)
	// CursorBefore returns a cursor such that every record of the log
	// recorded at or after t (RecordedAt), stored or still to come, is
	// after it; records a little older may be after it too, and readers
	// filter by RecordedAt. It is the zero Cursor when nothing in the log
	// is before it. It costs at most a scan of what was recorded since t,
	// which a reader starting there reads anyway.
	CursorBefore(ctx context.Context, t time.Time) (Cursor, error)
	// Committed returns a channel closed when events are next committed (by
	// this process, or by any process where the engine can tell).
	Committed() <-chan struct{}
	// Lookup returns the stored events of a tenant with the given ids, in no
	// particular order; ids that are not stored are left out.
	Lookup(ctx context.Context, tenant string, ids []uuid.UUID) ([]Recorded, error)
	// StreamInfo returns a stream's metadata, or ErrNotFound.
	StreamInfo(ctx context.Context, tenant, streamID string) (StreamInfo, error)
	// SaveSnapshot stores a snapshot. Saving an older version than the newest
	// stored one is allowed and does not replace it as the latest.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the snapshot of the highest version of the
	// stream's current incarnation, or ErrNotFound.
	LoadSnapshot(ctx context.Context, tenant, streamID string) (Snapshot, error)
	// LoadStream returns what deciding a command on a stream needs, as of
	// one point in time: its incarnation, its snapshot of the highest
	// version (nil when there is none) and up to limit events after it
	// (from version 1 without a snapshot), in version order. A missing
	// stream returns ErrNotFound, even when a snapshot is left.
	LoadStream(ctx context.Context, tenant, streamID string, limit int) (Loaded, error)
	// LoadStreams is LoadStream for many streams at once, in one round trip
	// (or one read transaction): out[i] is refs[i]'s, and a stream that does
	// not exist has a zero Loaded (Incarnation 0).
	LoadStreams(ctx context.Context, refs []StreamRef, limit int) ([]Loaded, error)
	// AppendAll appends several requests, each atomically and on its own
	// (one's failure does not fail another), in one group commit where the
	// engine can: out[i] is reqs[i]'s outcome. Requests to one stream may
	// be applied in any order.
	AppendAll(ctx context.Context, reqs []AppendRequest) []Outcome
	// Erase hard-deletes a stream: its events, snapshots and metadata. It
	// returns the number of events deleted, or ErrNotFound. Appends to the
	// stream id afterwards start a new stream. In the same transaction it
	// appends the stream's erasure marker to the global log (ErasureType),
	// replacing the marker of an earlier erasure of the same id; ReadStream
	// and LoadStream never return markers.
	Erase(ctx context.Context, tenant, streamID string) (int64, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// StreamRef names a stream.
type StreamRef struct{ Tenant, StreamID string }

// Loaded is a stream as LoadStream reads it.
type Loaded struct {
	Incarnation int64
	Snapshot    *Snapshot
	Events      []Recorded
}

// NewIncarnation returns a random incarnation for a stream being created:
// positive, so never 0 ("not stated"), and with 62 random bits, so that a
// re-created stream does not meet its predecessor's.
func NewIncarnation() int64 { return rand.Int64N(1<<62) + 1 }

// Sentinel errors. Implementations wrap them with %w.
var (
	// ErrNotFound: the stream (or snapshot) does not exist in this tenant.
	ErrNotFound = errors.New("not found")
	// ErrWrongExpectedVersion: the stream is not at the expected version. The
	// concrete error is a *WrongExpectedVersionError.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrDuplicateEvent: an event id of the request is already stored with
	// different content, or only some of the request's ids are stored.
	ErrDuplicateEvent = errors.New("event id already used with different content")
	// ErrPartlyStored: some events of the request are stored, with the same
	// content, and others are not (a retry that changed or dropped event
	// ids). It comes wrapped together with ErrDuplicateEvent.
	ErrPartlyStored = errors.New("the request is partly stored")
	// ErrEntityTypeMismatch: the request names another entity type than the stream's.
	ErrEntityTypeMismatch = errors.New("entity type does not match the stream")
	// ErrInvalid: the request is malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the storage engine cannot be reached.
	ErrUnavailable = errors.New("event store unavailable")
)

// WrongExpectedVersionError is returned when the stream is not at the
// expected version. errors.Is(err, ErrWrongExpectedVersion) holds.
type WrongExpectedVersionError struct {
	Tenant   string
	StreamID string
	Expected ExpectedVersion
	// Actual is the stream's current version, 0 when it does not exist.
	Actual int64
	// Replaced says that the append stated an incarnation the stream no
	// longer has: it was erased (and maybe created again) since.
	Replaced bool
}

func (e *WrongExpectedVersionError) Error() string {
	if e.Replaced {
		return fmt.Sprintf("stream %q was erased since the append's decision (now at version %d)", e.StreamID, e.Actual)
	}
	return fmt.Sprintf("stream %q: expected version %s, actual %d", e.StreamID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// Limits on identifiers, shared by every engine so that they behave alike.
const (
	MaxTenantLength    = 128
	MaxStreamIDLength  = 200
	MaxTypeLength      = 200
	MaxEventsPerAppend = 10000
)

// Prepare validates a request against the contract before any I/O and returns
// a copy whose times are normalized the way every engine stores them: UTC,
// microsecond precision. Engines compare and store the prepared request.
func (r AppendRequest) Prepare() (AppendRequest, error) {
	if err := r.validate(); err != nil {
		return AppendRequest{}, err
	}
	events := make([]Event, len(r.Events))
	for i, e := range r.Events {
		e.OccurredAt = NormalizeTime(e.OccurredAt)
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		events[i] = e
	}
	r.Events = events
	return r, nil
}

// ReadStreamWith is ReadStream's contract around an engine's query: the
// limit is checked before read runs, and when read finds no events,
// ErrNotFound says the stream does not exist (reading past the end of an
// existing stream is not an error).
func ReadStreamWith(ctx context.Context, s Store, tenant, streamID string, limit int, read func() ([]Recorded, error)) ([]Recorded, error) {
	if err := CheckLimit(limit); err != nil {
		return nil, err
	}
	recs, err := read()
	if err != nil || len(recs) > 0 {
		return recs, err
	}
	if _, err := s.StreamInfo(ctx, tenant, streamID); err != nil {
		return nil, err
	}
	return recs, nil
}

// Validate checks a snapshot to save: a positive version and JSON state.
func (s Snapshot) Validate() error {
	if s.Version <= 0 || !json.Valid(s.State) {
		return fmt.Errorf("%w: a snapshot needs a positive version and JSON state", ErrInvalid)
	}
	return nil
}

// CheckLimit rejects a read of no events (limit <= 0) with ErrInvalid.
func CheckLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit must be positive", ErrInvalid)
	}
	return nil
}

// CheckPosition rejects a negative global position with ErrInvalid.
func CheckPosition(position int64) error {
	if position < 0 {
		return fmt.Errorf("%w: position %d is negative", ErrInvalid, position)
	}
	return nil
}

// NormalizeTime returns t in UTC truncated to microseconds, the precision every
// engine stores.
func NormalizeTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (r *AppendRequest) validate() error {
	switch {
	case r.Tenant == "" || len(r.Tenant) > MaxTenantLength:
		return fmt.Errorf("%w: tenant must have 1 to %d bytes", ErrInvalid, MaxTenantLength)
	case r.StreamID == "" || len(r.StreamID) > MaxStreamIDLength:
		return fmt.Errorf("%w: stream id must have 1 to %d bytes", ErrInvalid, MaxStreamIDLength)
	case len(r.EntityType) > MaxTypeLength:
		return fmt.Errorf("%w: entity type longer than %d bytes", ErrInvalid, MaxTypeLength)
	case !r.Expected.Valid():
		return fmt.Errorf("%w: expected version %d", ErrInvalid, int64(r.Expected))
	case r.Incarnation < 0:
		return fmt.Errorf("%w: incarnation %d", ErrInvalid, r.Incarnation)
	case len(r.Events) == 0:
		return fmt.Errorf("%w: no events", ErrInvalid)
	case len(r.Events) > MaxEventsPerAppend:
		return fmt.Errorf("%w: more than %d events in one append", ErrInvalid, MaxEventsPerAppend)
	}
	for _, f := range []struct{ name, v string }{{"tenant", r.Tenant}, {"stream id", r.StreamID}, {"entity type", r.EntityType}} {
		if !cleanText(f.v) {
			return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalid, f.name)
		}
	}
	seen := make(map[uuid.UUID]struct{}, len(r.Events))
	for i := range r.Events {
		e := &r.Events[i]
		switch {
		case e.ID == uuid.Nil:
			return fmt.Errorf("%w: event %d has no id", ErrInvalid, i)
		case e.Type == "" || len(e.Type) > MaxTypeLength:
			return fmt.Errorf("%w: event %d: type must have 1 to %d bytes", ErrInvalid, i, MaxTypeLength)
		case e.OccurredAt.IsZero():
			return fmt.Errorf("%w: event %d has no occurrence time", ErrInvalid, i)
		case e.SchemaVersion < 0:
			return fmt.Errorf("%w: event %d: negative schema version", ErrInvalid, i)
		case len(e.Data) == 0 || !utf8.Valid(e.Data) || !json.Valid(e.Data):
			return fmt.Errorf("%w: event %d: data is not valid UTF-8 JSON", ErrInvalid, i)
		case !cleanText(e.Type) || !cleanText(e.Metadata.CorrelationID) || !cleanText(e.Metadata.CausationID) ||
			!cleanText(e.Metadata.Source) || !cleanText(e.Metadata.Principal) || !cleanText(e.Metadata.TraceID):
			return fmt.Errorf("%w: event %d: type or metadata is not valid UTF-8 text", ErrInvalid, i)
		}
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("%w: event id %s appears twice in one append", ErrInvalid, e.ID)
		}
		seen[e.ID] = struct{}{}
	}
	return nil
}

// cleanText reports whether s can be stored as text by every engine: valid
// UTF-8 without NUL bytes.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// SameContent reports whether a stored event is the same fact as an event to
// append: same stream, type, schema version, occurrence time and data. Data is
// compared as JSON values, so formatting differences do not matter.
func SameContent(stored Recorded, streamID string, e Event) bool {
	if e.SchemaVersion == 0 {
		e.SchemaVersion = 1
	}
	if stored.StreamID != streamID || stored.Type != e.Type ||
		stored.SchemaVersion != e.SchemaVersion || !stored.OccurredAt.Equal(NormalizeTime(e.OccurredAt)) {
		return false
	}
	return JSONEqual(stored.Data, e.Data)
}

// JSONEqual compares two JSON documents as values.
func JSONEqual(a, b json.RawMessage) bool {
	if string(a) == string(b) {
		return true
	}
	var va, vb any
	da := json.NewDecoder(strings.NewReader(string(a)))
	da.UseNumber()
	db := json.NewDecoder(strings.NewReader(string(b)))
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return jsonValueEqual(va, vb)
}

func jsonValueEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonValueEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonValueEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	default:
		return a == b
	}
}

// ReplayResult decides what an append whose event ids are (partly) stored
// already means. stored holds the request's events found in the store (by
// Lookup). It returns the original result when every event of the request is
// stored with the same content in the same stream, and ErrDuplicateEvent when
// any is stored with other content or only some are stored. It must only be
// called with a non-empty stored slice.
func ReplayResult(r AppendRequest, stored []Recorded) (AppendResult, error) {
	byID := make(map[uuid.UUID]Recorded, len(stored))
	for _, s := range stored {
		byID[s.ID] = s
	}
	res := AppendResult{StreamID: r.StreamID, Replayed: true, Events: make([]AppendedEvent, len(r.Events))}
	var missing []uuid.UUID
	for i, e := range r.Events {
		s, ok := byID[e.ID]
		if !ok {
			missing = append(missing, e.ID)
			continue
		}
		if !SameContent(s, r.StreamID, e) {
			return AppendResult{}, fmt.Errorf("%w: event %s", ErrDuplicateEvent, e.ID)
		}
		res.Events[i] = AppendedEvent{ID: e.ID, Version: s.Version, Position: s.Position}
		res.Version = max(res.Version, s.Version)
	}
	if len(missing) > 0 {
		return AppendResult{}, fmt.Errorf("%w: %w: %d of %d events are stored, event %s is not",
			ErrDuplicateEvent, ErrPartlyStored, len(r.Events)-len(missing), len(r.Events), missing[0])
	}
	return res, nil
}

// EventIDs returns the ids of the request's events.
func (r *AppendRequest) EventIDs() []uuid.UUID {
	ids := make([]uuid.UUID, len(r.Events))
	for i, e := range r.Events {
		ids[i] = e.ID
	}
	return ids
}

// Backlog is what a reader of the global log has still to read.
type Backlog struct {
	Events int64
	// Oldest is the recording time of the oldest unread event (zero if none).
	Oldest time.Time
}

// Signal tells waiters that something changed (events were committed, a
// projection advanced). A waiter takes C() before checking the state it
// waits for, then waits for the channel to close: no change is missed.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel closed at the next Notify.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
