package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Problem is an RFC 7807 problem details document. Extension members carry
// what a client can act on (the current version on a conflict, the offending
// fields of an invalid request); nothing internal is ever exposed.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// CurrentVersion is the stream's version on a 409 wrong-expected-version.
	CurrentVersion *int64 `json:"currentVersion,omitempty"`
	// Errors lists the offending fields of a 400.
	Errors []tracking.FieldError `json:"errors,omitempty"`
	// RetryAfter (seconds) is also sent as the Retry-After header.
	RetryAfter int `json:"-"`
}

const problemBase = "https://tracktrace.dev/problems/"

func newProblem(status int, slug, detail string) *Problem {
	return &Problem{Type: problemBase + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

// problemFor maps an error to the problem a client sees: the single table
// from domain and store errors to HTTP statuses. Errors it does not know are
// 500s whose detail says nothing about the cause (the log has it).
func problemFor(err error) *Problem {
	var (
		wrongVersion *eventstore.WrongExpectedVersionError
		invalid      *tracking.ValidationError
		violation    *tracking.ViolationError
		tooLarge     *http.MaxBytesError
		bigEvent     *tracking.EventTooLargeError
		reqErr       *requestError
	)
	switch {
	case errors.As(err, &reqErr):
		return reqErr.problem
	case errors.As(err, &tooLarge):
		return newProblem(http.StatusRequestEntityTooLarge, "body-too-large",
			"the request body exceeds "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes")
	case errors.As(err, &bigEvent):
		p := newProblem(http.StatusRequestEntityTooLarge, "event-too-large",
			fmt.Sprintf("event %d has %d bytes of data; an event may have at most %d", bigEvent.Event, bigEvent.Size, bigEvent.Limit))
		p.Errors = []tracking.FieldError{{Field: fmt.Sprintf("events/%d/data", bigEvent.Event),
			Message: fmt.Sprintf("at most %d bytes", bigEvent.Limit)}}
		return p
	case errors.As(err, &wrongVersion):
		p := newProblem(http.StatusConflict, "wrong-expected-version",
			"the entity is at version "+strconv.FormatInt(wrongVersion.Actual, 10)+", not at the expected "+wrongVersion.Expected.String())
		p.CurrentVersion = &wrongVersion.Actual
		return p
	case errors.Is(err, projection.ErrRebuildUnsupported):
		return newProblem(http.StatusConflict, "rebuild-unsupported", publicMessage(err))
	case errors.Is(err, projection.ErrRebuildInProgress):
		return newProblem(http.StatusConflict, "rebuild-in-progress",
			"the projection is being rebuilt already; its status shows the rebuild's progress")
	case errors.Is(err, errIdempotencyKeyReused):
		return newProblem(http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was used with another request; send a new key for a new request")
	case errors.Is(err, eventstore.ErrPartlyStored):
		return newProblem(http.StatusConflict, "partly-stored",
			"some events of this request are recorded already and others are not (an eventId differs from the first "+
				"attempt's, or is missing): send the same eventIds again, or use an Idempotency-Key")
	case errors.Is(err, eventstore.ErrDuplicateEvent):
		return newProblem(http.StatusConflict, "duplicate-event-id",
			"an eventId of the request is already recorded with different content")
	case errors.As(err, &invalid):
		p := newProblem(http.StatusBadRequest, "invalid-request", "the request is invalid; see errors")
		p.Errors = invalid.Errors
		return p
	case errors.As(err, &violation):
		return newProblem(http.StatusUnprocessableEntity, "rule-violation", violation.Error())
	case errors.Is(err, tracking.ErrRuleViolation), errors.Is(err, eventstore.ErrEntityTypeMismatch):
		return newProblem(http.StatusUnprocessableEntity, "rule-violation", publicMessage(err))
	case errors.Is(err, tracking.ErrInvalid), errors.Is(err, eventstore.ErrInvalid):
		return newProblem(http.StatusBadRequest, "invalid-request", publicMessage(err))
	case errors.Is(err, eventstore.ErrNotFound):
		return newProblem(http.StatusNotFound, "not-found", "no such entity")
	case errors.Is(err, alerting.ErrSiteNotFound):
		return newProblem(http.StatusNotFound, "not-found", "no such site")
	case errors.Is(err, alerting.ErrNotFound):
		return newProblem(http.StatusNotFound, "not-found", "no such rule")
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p := newProblem(http.StatusServiceUnavailable, "unavailable", "the service cannot complete the request now; retry later")
		p.RetryAfter = 1
		return p
	default:
		return newProblem(http.StatusInternalServerError, "internal", "an internal error occurred; it has been logged")
	}
}

// publicMessage returns the message of domain validation errors, which are
// written for clients. Adapter prefixes ("postgres: append: ") are cut.
func publicMessage(err error) string {
	msg := err.Error()
	for _, prefix := range []string{"sqlite: append: ", "postgres: append: "} {
		if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
			return msg[len(prefix):]
		}
	}
	return msg
}

// requestError is a problem found while reading the request.
type requestError struct{ problem *Problem }

func (e *requestError) Error() string { return e.problem.Detail }

func badRequest(detail string, fields ...tracking.FieldError) error {
	p := newProblem(http.StatusBadRequest, "invalid-request", detail)
	p.Errors = fields
	return &requestError{p}
}

// writeProblem answers with a problem; 5xx causes are logged with the request.
func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	if p.Status >= 500 {
		level, msg := slog.LevelError, "request failed"
		if clientGone(r, err) {
			// Nobody is listening, and nothing failed here: not an error.
			p.Status, p.Title = 499, "Client Closed Request"
			level, msg = slog.LevelDebug, "request canceled by the client"
		}
		s.log.LogAttrs(r.Context(), level, msg,
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", p.Status), slog.String("error", err.Error()))
	}
	writeProblemDoc(w, r, p)
}

// clientGone reports whether err is the request's own cancellation: the
// client went away.
func clientGone(r *http.Request, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled)
}

func writeProblemDoc(w http.ResponseWriter, r *http.Request, p *Problem) {
	p.Instance = r.URL.Path
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tracktrace"`)
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
