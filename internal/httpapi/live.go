package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Live serves the live streams: Server-Sent Events of a tenant's events as
// the global log records them, filtered as webhook subscriptions are
// (GET /api/v1/stream, GET /api/v1/entities/{entityId}/stream). Each event's
// id is its global position, from which a client resumes with
// Last-Event-ID. Set the fields before serving; zero optional fields take
// their defaults. Call Close when the server shuts down.
type Live struct {
	// Feed is the log the streams follow: the store's, or better a Tail of
	// it, which every stream near the head shares.
	Feed projection.Feed
	// Log turns the global position a client resumes from into a cursor
	// of Feed's log.
	Log Positions
	// Changes makes a stream's deriver of the state changes that filters
	// with integration kinds ask for (each such stream has its own); nil:
	// such filters match nothing.
	Changes func() subscription.Changes
	// Heartbeat is the interval of the comments that keep an idle stream
	// (and the proxies on its way) open (default 15 s).
	Heartbeat time.Duration
	// Retry is the reconnection delay advertised to clients (default 2 s).
	Retry time.Duration
	// WriteTimeout bounds each write to a client (default 30 s): a client
	// that reads nothing for that long is dropped. It replaces the
	// server's WriteTimeout, which would end every stream.
	WriteTimeout time.Duration
	// MaxStreams bounds the streams open at once (default 1000); beyond,
	// a stream is refused with 503.
	MaxStreams int
	// Logger receives what ServeStream's streams log (nil: nothing).
	Logger *slog.Logger

	mu     sync.Mutex
	open   int
	closed bool
	done   chan struct{} // closed by Close
}

// Positions turns a global position into a log cursor
// (eventstore.Store.CursorAt).
type Positions interface {
	// CursorAt returns the cursor of the tenant's record at a position;
	// a wrapped eventstore.ErrNotFound when the tenant has none there.
	CursorAt(ctx context.Context, tenant string, position int64) (eventstore.Cursor, error)
}

// Defaults and bounds of a live stream.
const (
	defaultHeartbeat    = 15 * time.Second
	defaultRetry        = 2 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultMaxStreams   = 1000
	// defaultSetupTimeout bounds finding where a ServeStream stream starts.
	defaultSetupTimeout = 15 * time.Second
	// liveReadBatch is the number of log records read at once.
	liveReadBatch = 500
)

// Close ends every open stream and refuses new ones. An http.Server's
// Shutdown waits for requests to end, which streams never do on their own:
// register Close with RegisterOnShutdown.
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.doneLocked())
	}
}

func (l *Live) doneLocked() chan struct{} {
	if l.done == nil {
		l.done = make(chan struct{})
	}
	return l.done
}

// acquire takes a stream's place; release gives it back.
func (l *Live) acquire() (done <-chan struct{}, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.MaxStreams
	if limit <= 0 {
		limit = defaultMaxStreams
	}
	var p *Problem
	switch {
	case l.closed:
		p = newProblem(http.StatusServiceUnavailable, "unavailable", "the server is shutting down; retry later")
	case l.open >= limit:
		p = newProblem(http.StatusServiceUnavailable, "too-many-streams",
			fmt.Sprintf("this server has %d live streams open, its limit; retry later", limit))
	default:
		l.open++
		return l.doneLocked(), nil
	}
	p.RetryAfter = 5
	return nil, &requestError{p}
}

func (l *Live) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *server) liveRoutes(stream func(string, string, func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	stream("GET /api/v1/stream", tracking.ScopeRead, s.tenantStream)
	stream("GET /api/v1/entities/{entityId}/stream", tracking.ScopeRead, s.entityStream)
}

// The query parameters of the streams: lists may repeat and hold
// comma-separated values.
var (
	streamLists  = []string{"entityType", "eventType", "entityId", "integrationKind"}
	streamSingle = []string{"statusChanges", "exceptions", "lastEventId"}
)

func (s *server) tenantStream(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := queryLists(r, streamLists, streamSingle...)
	if err != nil {
		return err
	}
	f := subscription.Filter{EntityTypes: listParam(q, "entityType"), EventTypes: listParam(q, "eventType"),
		EntityIDs: listParam(q, "entityId"), IntegrationKinds: listParam(q, "integrationKind")}
	return s.stream(w, r, p, q, f)
}

func (s *server) entityStream(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := queryLists(r, []string{"eventType", "integrationKind"}, streamSingle...)
	if err != nil {
		return err
	}
	// An entity not created yet is no error: it may be created while the
	// stream is open.
	f := subscription.Filter{EntityIDs: []string{r.PathValue("entityId")}, EventTypes: listParam(q, "eventType"),
		IntegrationKinds: listParam(q, "integrationKind")}
	return s.stream(w, r, p, q, f)
}

// listParam returns the values of a list parameter: each occurrence split
// at commas (queryLists refused empty items).
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// stream checks the request, then streams the tenant's events that pass f
// after where the client resumes (or from the log's head) until the client
// goes or the server shuts down.
func (s *server) stream(w http.ResponseWriter, r *http.Request, p tracking.Principal, q url.Values, f subscription.Filter) error {
	statusChanges, err := boolParam(q, "statusChanges")
	if err != nil {
		return err
	}
	exceptions, err := boolParam(q, "exceptions")
	if err != nil {
		return err
	}
	if f, err = f.Normalize(statusChanges, exceptions); err != nil {
		return subscriptionProblem(err)
	}
	return s.Live.serve(w, r, p.Tenant, q, f, s.RequestTimeout, s.log, true)
}

// ServeStream streams a tenant's events that pass f to a caller
// authenticated elsewhere (the console's session), as the API's streams do:
// from the Last-Event-ID header or the log's head, with the same limits.
// Each event is sent without an event name, so that a browser's
// EventSource hands every one to onmessage. A refusal before the stream
// begins is answered as a problem document.
func (l *Live) ServeStream(w http.ResponseWriter, r *http.Request, tenant string, f subscription.Filter) {
	f, err := f.Normalize(false, false)
	if err == nil {
		log := l.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		err = l.serve(w, r, tenant, url.Values{}, f, defaultSetupTimeout, log, false)
	}
	if err != nil {
		writeProblemDoc(w, r, problemFor(subscriptionProblem(err)))
	}
}

// serve streams the tenant's events that pass f (normalized) after where
// the client resumes (or from the log's head) until the client goes or the
// server shuts down; setupTimeout bounds finding where to start. named
// sends each event's type as its SSE event name.
func (l *Live) serve(w http.ResponseWriter, r *http.Request, tenant string, q url.Values, f subscription.Filter,
	setupTimeout time.Duration, log *slog.Logger, named bool) error {
	resume, name, err := lastEventID(r, q)
	if err != nil {
		return err
	}
	if l.Feed == nil || l.Log == nil {
		return errors.New("httpapi: live streams have no Feed or Log")
	}
	done, err := l.acquire()
	if err != nil {
		return err
	}
	defer l.release()
	// The request's deadline bounds finding where to start, not the stream.
	setup, cancel := context.WithTimeout(r.Context(), setupTimeout)
	var after eventstore.Cursor
	if resume != nil {
		after, err = l.Log.CursorAt(setup, tenant, *resume)
		if errors.Is(err, eventstore.ErrNotFound) {
			err = badRequest(fmt.Sprintf("%s %d is no event of this tenant that can be resumed from (erased, trimmed by retention, "+
				"or not stored); open the stream without it to start from now", name, *resume),
				tracking.FieldError{Field: name, Message: "not an event of this tenant"})
		}
	} else {
		after, err = l.Feed.Head(setup)
	}
	cancel()
	if err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// The server's ReadTimeout does not apply once a request without a body
	// is being answered; its WriteTimeout does: send extends it.
	ls := &liveStream{Live: l, w: w, rc: http.NewResponseController(w), tenant: tenant, filter: f,
		candidates: f.Candidates(), after: after, log: log, named: named}
	if len(f.IntegrationKinds) > 0 && l.Changes != nil {
		ls.changes = l.Changes()
	}
	if ls.send(fmt.Appendf(nil, "retry: %d\n\n", orDefault(l.Retry, defaultRetry).Milliseconds())) != nil {
		return nil
	}
	if err := ls.follow(r.Context(), done); err != nil {
		log.DebugContext(r.Context(), "live stream ended", "tenant", tenant, "error", err)
	}
	return nil // the answer has begun: no problem can follow
}

// lastEventID reads where a client resumes: the Last-Event-ID header, or
// the lastEventId parameter for clients that cannot set headers (the
// header wins: an EventSource reconnecting keeps the URL it began with). It
// returns the position (nil: none) and the name it was given under.
func lastEventID(r *http.Request, q url.Values) (*int64, string, error) {
	name, v := "Last-Event-ID", r.Header.Get("Last-Event-ID")
	if v == "" {
		name, v = "lastEventId", q.Get("lastEventId")
	}
	if v == "" {
		return nil, "", nil
	}
	pos, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || pos < 1 {
		return nil, "", badRequest(name+" must be the id of an event of the stream (a global position, 1 or more)",
			tracking.FieldError{Field: name, Message: "must be an integer of 1 or more"})
	}
	return &pos, name, nil
}

// liveStream is one open stream.
type liveStream struct {
	*Live
	w      http.ResponseWriter
	rc     *http.ResponseController
	tenant string
	filter subscription.Filter
	// candidates picks the events the filter selects from (Select).
	candidates subscription.Filter
	changes    subscription.Changes // nil unless the filter names integration kinds
	after      eventstore.Cursor    // the last record read
	buf        []byte
	log        *slog.Logger
	named      bool // send each event's type as its SSE event name
}

// follow sends the events after ls.after as the log records them, and a
// heartbeat when idle, until ctx or done ends (nil) or a write to the
// client fails (its error).
func (ls *liveStream) follow(ctx context.Context, done <-chan struct{}) error {
	heartbeat := orDefault(ls.Heartbeat, defaultHeartbeat)
	idle := time.NewTimer(heartbeat)
	defer idle.Stop()
	failures := 0
	for {
		committed := ls.Feed.Committed()
		var retry <-chan time.Time
		sent, err := ls.catchUp(ctx, done)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, new(writeError)):
			return err // the client is gone, or reads nothing
		case err != nil:
			// The client keeps its stream (and heartbeats) while the log
			// cannot be read; reading again after a back-off, not at
			// every commit.
			committed = nil
			failures++
			if failures == 1 {
				ls.log.WarnContext(ctx, "live stream cannot read the log; retrying", "tenant", ls.tenant, "error", err)
			}
			retry = time.After(projection.Backoff(failures, heartbeat))
		default:
			failures = 0
		}
		if sent {
			idle.Reset(heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return nil
		case <-committed:
		case <-retry:
		case <-idle.C:
			// A comment: clients ignore it; it also reads the log again
			// should a commit signal have been missed.
			if err := ls.send([]byte(": ping\n\n")); err != nil {
				return err
			}
			idle.Reset(heartbeat)
		}
	}
}

// catchUp sends the events after ls.after up to the log's head (or until
// done); it reports whether it sent any.
func (ls *liveStream) catchUp(ctx context.Context, done <-chan struct{}) (bool, error) {
	sent := false
	for {
		page, err := ls.Feed.ReadAll(ctx, ls.after, liveReadBatch)
		if err != nil || len(page) == 0 {
			return sent, err
		}
		var candidates []eventstore.Recorded
		for _, r := range page {
			if r.Tenant == ls.tenant && ls.candidates.Match(r) {
				candidates = append(candidates, r)
			}
		}
		events, _, err := ls.filter.Select(ctx, ls.changes, candidates)
		if err != nil {
			return sent, err
		}
		if len(events) > 0 {
			if err := ls.sendEvents(ctx, events); err != nil {
				return sent, err
			}
			sent = true
		}
		ls.after = page[len(page)-1].Cursor
		if len(page) < liveReadBatch {
			return sent, nil
		}
		select {
		case <-done: // shutting down: no need to catch up first
			return sent, nil
		default:
		}
	}
}

// sendEvents writes events one by one (the memory a stream holds is one
// event's), each within the write timeout, and flushes them.
func (ls *liveStream) sendEvents(ctx context.Context, events []subscription.Event) error {
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			// Stored events are valid JSON: this is a bug, not the client's.
			ls.log.ErrorContext(ctx, "live stream: event left out", "tenant", ls.tenant, "position", e.Position, "error", err)
			continue
		}
		ls.buf = appendEvent(ls.buf[:0], e, data, ls.named)
		if err := ls.write(ls.buf); err != nil {
			return err
		}
	}
	return ls.flush()
}

// appendEvent appends an event in the stream's format: its position as id,
// its type as the event's name (when named), its delivered form (data, one
// line of JSON) as data.
func appendEvent(b []byte, e subscription.Event, data []byte, named bool) []byte {
	b = strconv.AppendInt(append(b, "id: "...), e.Position, 10)
	if named {
		b = append(append(b, "\nevent: "...), strings.Map(noLineBreak, e.Type)...)
	}
	b = append(append(b, "\ndata: "...), data...) // JSON has no raw line breaks
	return append(b, "\n\n"...)
}

func noLineBreak(r rune) rune {
	if r == '\n' || r == '\r' {
		return ' '
	}
	return r
}

// writeError is a failed write to the client: the stream is over.
type writeError struct{ err error }

func (e writeError) Error() string { return "write to the client: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// send writes b and flushes it.
func (ls *liveStream) send(b []byte) error {
	if err := ls.write(b); err != nil {
		return err
	}
	return ls.flush()
}

// write writes b within the write timeout, which each write extends.
func (ls *liveStream) write(b []byte) error {
	deadline := time.Now().Add(orDefault(ls.WriteTimeout, defaultWriteTimeout))
	if err := ls.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return writeError{err}
	}
	if _, err := ls.w.Write(b); err != nil {
		return writeError{err}
	}
	return nil
}

// flush sends what is written to the client at once.
func (ls *liveStream) flush() error {
	if err := ls.rc.Flush(); err != nil {
		return writeError{err}
	}
	return nil
}
