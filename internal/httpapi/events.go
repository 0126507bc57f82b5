package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Limits of the request vocabulary.
const (
	maxBatchItems      = 1000
	batchParallelism   = 8 // batches in flight, server-wide: bounds the memory of a burst of batches
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// batchBody is the body of POST /api/v1/events/batch: append requests that
// name their entity.
type batchBody struct {
	Items []tracking.AppendRequest `json:"items"`
}

// requireJSON answers 415 unless the body is declared as JSON.
func requireJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !(mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return &requestError{newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
			"the request body must be application/json")}
	}
	return nil
}

// decodeStrict decodes exactly one JSON document into v, rejecting unknown
// fields and trailing data, and turns decoder errors into 400 problems that
// name the field.
func decodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return badRequest("the body must hold a single JSON document")
	}
	return nil
}

func jsonProblem(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		timeParse *time.ParseError
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is truncated JSON")
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d", syntax.Offset))
	case errors.As(err, &typeErr):
		field := strings.ReplaceAll(typeErr.Field, ".", "/")
		return badRequest("a field has the wrong JSON type",
			tracking.FieldError{Field: field, Message: "must be a JSON " + jsonKind(typeErr.Type.String()) + ", not " + typeErr.Value})
	case errors.As(err, &timeParse):
		return badRequest("a time is not RFC 3339", tracking.FieldError{Message: "times must be RFC 3339, e.g. 2026-03-01T08:00:00Z"})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest("unknown field "+name, tracking.FieldError{Field: strings.Trim(name, `"`), Message: "unknown field"})
	default:
		// Errors of our own UnmarshalJSON methods (expectedVersion, uuid) are
		// written for clients.
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return badRequest(msg)
	}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "struct"), strings.HasPrefix(goType, "httpapi."),
		strings.HasPrefix(goType, "tracking."):
		return "object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "bool":
		return "boolean"
	default:
		return "string"
	}
}

// readBody enforces the content type and the size limit and decodes.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if r.ContentLength > s.MaxBodyBytes {
		return &http.MaxBytesError{Limit: s.MaxBodyBytes}
	}
	return decodeStrict(http.MaxBytesReader(w, r.Body, s.MaxBodyBytes), v)
}

// command turns a decoded append request into a tracking command: If-Match
// may stand in for expectedVersion (and is checked first); the principal,
// the request id and the trace id are stamped on the events.
func command(b *tracking.AppendRequest, p tracking.Principal, entityID, ifMatch, corrID, traceID string) (tracking.RecordCommand, error) {
	var ifMatchVersion eventstore.ExpectedVersion
	if ifMatch != "" {
		v, err := parseIfMatch(ifMatch)
		if err != nil {
			return tracking.RecordCommand{}, err
		}
		if b.ExpectedVersion != nil && *b.ExpectedVersion != v {
			return tracking.RecordCommand{}, badRequest("If-Match and expectedVersion disagree")
		}
		ifMatchVersion = v
	}
	cmd, err := b.Command(p.Tenant, entityID)
	if err != nil {
		return tracking.RecordCommand{}, invalidBody(err)
	}
	if ifMatch != "" {
		cmd.Expected = ifMatchVersion
	}
	cmd.Principal, cmd.CorrelationID, cmd.TraceID = p.Subject, corrID, traceID
	return cmd, nil
}

// invalidBody is the 400 of a body that the request conversion rejects,
// whose detail names the (first) offending field like the other problems
// found while reading a body.
func invalidBody(err error) error {
	var invalid *tracking.ValidationError
	if !errors.As(err, &invalid) || len(invalid.Errors) == 0 {
		return err
	}
	fe := invalid.Errors[0]
	return badRequest(path.Base(fe.Field)+" "+fe.Message, invalid.Errors...)
}

// sampledTraceID is the request's trace id when its trace is recorded: the
// events carry it, so that the relay and the projections join the trace.
func sampledTraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return sc.TraceID().String()
	}
	return ""
}

// parseIfMatch reads `"3"` (an exact version) or `*` (the entity exists).
func parseIfMatch(h string) (eventstore.ExpectedVersion, error) {
	h = strings.TrimSpace(h)
	if h == "*" {
		return eventstore.StreamExists, nil
	}
	h = strings.TrimPrefix(h, "W/")
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		if v, err := strconv.ParseInt(h[1:len(h)-1], 10, 64); err == nil && v >= 0 {
			return eventstore.Exact(v), nil
		}
	}
	return 0, badRequest(`If-Match must be a version ETag such as "3", or *`)
}

type appendedEvent struct {
	EventID  uuid.UUID `json:"eventId"`
	Version  int64     `json:"version"`
	Position int64     `json:"position"`
}

type appendResponse struct {
	EntityID string          `json:"entityId"`
	Version  int64           `json:"version"`
	Events   []appendedEvent `json:"events"`
}

func toAppendResponse(entityID string, res eventstore.AppendResult) appendResponse {
	out := appendResponse{EntityID: entityID, Version: res.Version, Events: make([]appendedEvent, len(res.Events))}
	for i, e := range res.Events {
		out.Events[i] = appendedEvent{EventID: e.ID, Version: e.Version, Position: e.Position}
	}
	return out
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func (s *server) appendEvents(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	var body tracking.AppendRequest
	if err := s.readBody(w, r, &body); err != nil {
		return err
	}
	entityID := r.PathValue("entityId")
	if body.EntityID != "" && body.EntityID != entityID {
		return badRequest("entityId in the body differs from the path")
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	cmd, err := command(&body, p, entityID, r.Header.Get("If-Match"), requestID(r), sampledTraceID(r.Context()))
	if err != nil {
		return err
	}
	release, err := s.claimIdempotencyKey(r, p, key, &body)
	if err != nil {
		return err
	}
	applyIdempotencyKey(&cmd, key, 0)
	res, err := s.Tracker.Record(r.Context(), cmd)
	if err != nil {
		if errors.Is(err, tracking.ErrInvalid) {
			release() // a malformed request leaves its key free for the fixed one
		}
		return keyedError(key, err)
	}
	w.Header().Set("ETag", etag(res.Version))
	w.Header().Set("Location", "/api/v1/entities/"+url.PathEscape(entityID))
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusCreated, toAppendResponse(entityID, res))
	return nil
}

type batchResult struct {
	EntityID string   `json:"entityId"`
	Status   int      `json:"status"`
	Version  *int64   `json:"version,omitempty"`
	Error    *Problem `json:"error,omitempty"`
}

// batch records independent items concurrently (so that the store can
// coalesce them) and reports each item's outcome.
func (s *server) batch(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	var body batchBody
	if err := s.readBody(w, r, &body); err != nil {
		return err
	}
	switch {
	case len(body.Items) == 0:
		return badRequest("items must hold at least one item", tracking.FieldError{Field: "items", Message: "empty"})
	case len(body.Items) > maxBatchItems:
		return badRequest(fmt.Sprintf("at most %d items per batch", maxBatchItems),
			tracking.FieldError{Field: "items", Message: fmt.Sprintf("more than %d items", maxBatchItems)})
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	if _, err := s.claimIdempotencyKey(r, p, key, &body); err != nil {
		return err
	}
	corr := requestID(r)
	results := make([]batchResult, len(body.Items))
	cmds := make([]tracking.RecordCommand, 0, len(body.Items))
	index := make([]int, 0, len(body.Items)) // cmds[j] is item index[j]
	for i := range body.Items {
		item := &body.Items[i]
		results[i].EntityID = item.EntityID
		cmd, err := command(item, p, item.EntityID, "", corr, sampledTraceID(r.Context()))
		if err == nil && item.EntityID == "" {
			err = badRequest("entityId is required", tracking.FieldError{Field: fmt.Sprintf("items/%d/entityId", i), Message: "required"})
		}
		if err != nil {
			results[i].fail(err)
			continue
		}
		applyIdempotencyKey(&cmd, key, i)
		cmds, index = append(cmds, cmd), append(index, i)
	}
	select {
	case s.batchSlots <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	outs := s.Tracker.RecordBatch(r.Context(), cmds)
	<-s.batchSlots
	for j, o := range outs {
		i := index[j]
		if o.Err != nil {
			err := keyedError(key, o.Err)
			results[i].fail(err)
			if results[i].Status >= 500 && !clientGone(r, err) {
				s.log.ErrorContext(r.Context(), "batch item failed", "entityId", body.Items[i].EntityID, "error", err)
			}
			continue
		}
		results[i].Status = http.StatusCreated
		results[i].Version = &o.Result.Version
	}
	if err := r.Context().Err(); err != nil && errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

func (b *batchResult) fail(err error) {
	p := problemFor(err)
	b.Status, b.Error = p.Status, p
}

type eventResponse struct {
	EventID    uuid.UUID           `json:"eventId"`
	Version    int64               `json:"version"`
	Position   int64               `json:"position"`
	Type       string              `json:"type"`
	OccurredAt time.Time           `json:"occurredAt"`
	RecordedAt time.Time           `json:"recordedAt"`
	Data       json.RawMessage     `json:"data"`
	Metadata   eventstore.Metadata `json:"metadata"`
}

func (s *server) getEvents(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "fromVersion", "limit")
	if err != nil {
		return err
	}
	from, err := intParam(q, "fromVersion", 1, 1, 1<<62)
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", defaultEventsLimit, 1, maxEventsLimit)
	if err != nil {
		return err
	}
	recs, err := s.Tracker.Events(r.Context(), p.Tenant, r.PathValue("entityId"), from, int(limit))
	if err != nil {
		return err
	}
	out := struct {
		Events          []eventResponse `json:"events"`
		NextFromVersion *int64          `json:"nextFromVersion,omitempty"`
		// FirstRetainedVersion says the stream was truncated by the
		// retention policy: older versions are gone (a snapshot holds them).
		FirstRetainedVersion *int64 `json:"firstRetainedVersion,omitempty"`
	}{Events: make([]eventResponse, len(recs))}
	if len(recs) > 0 && recs[0].Version > from {
		out.FirstRetainedVersion = &recs[0].Version
	}
	for i, e := range recs {
		out.Events[i] = eventResponse{EventID: e.ID, Version: e.Version, Position: e.Position, Type: e.Type,
			OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Data: e.Data, Metadata: e.Metadata}
	}
	if len(recs) == int(limit) {
		next := recs[len(recs)-1].Version + 1
		out.NextFromVersion = &next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// maxQueryValue bounds a query parameter's value, in bytes.
const maxQueryValue = 1024

// query parses the query string and rejects parameters the endpoint does not
// know, so that a typo is an error rather than silently ignored; each may
// appear once and must be UTF-8 text without control characters.
func query(r *http.Request, known ...string) (url.Values, error) {
	return queryLists(r, nil, known...)
}

// queryLists is query where the parameters named in lists may also repeat,
// and each value is a comma-separated list without empty items.
func queryLists(r *http.Request, lists []string, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	for k, v := range q {
		list := slices.Contains(lists, k)
		if !list && !slices.Contains(known, k) {
			return nil, badRequest("unknown query parameter "+strconv.Quote(k), tracking.FieldError{Field: k, Message: "unknown parameter"})
		}
		if len(v) > 1 && !list {
			return nil, badRequest("query parameter "+strconv.Quote(k)+" is repeated", tracking.FieldError{Field: k, Message: "repeated"})
		}
		for _, s := range v {
			if !tracking.IsText(s) || len(s) > maxQueryValue {
				return nil, badRequest("query parameter "+strconv.Quote(k)+" must be UTF-8 text without control characters, at most "+
					strconv.Itoa(maxQueryValue)+" bytes", tracking.FieldError{Field: k, Message: "must be UTF-8 text without control characters"})
			}
			if list && slices.Contains(strings.Split(s, ","), "") {
				return nil, badRequest("query parameter "+strconv.Quote(k)+" has an empty value (a list's values are separated by single commas)",
					tracking.FieldError{Field: k, Message: "empty value"})
			}
		}
	}
	return q, nil
}

func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, badRequest(fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi),
			tracking.FieldError{Field: name, Message: fmt.Sprintf("must be an integer from %d to %d", lo, hi)})
	}
	return v, nil
}
