package subscription

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Event is an event as subscribers receive it (webhooks and live
// streams): the API's event shape, with its entity, and the state changes
// it caused when the subscription asks for them.
type Event struct {
	EventID     uuid.UUID           `json:"eventId"`
	EntityID    string              `json:"entityId"`
	EntityType  string              `json:"entityType"`
	Version     int64               `json:"version"`
	Position    int64               `json:"position"`
	Type        string              `json:"type"`
	OccurredAt  time.Time           `json:"occurredAt"`
	RecordedAt  time.Time           `json:"recordedAt"`
	Data        json.RawMessage     `json:"data"`
	Metadata    eventstore.Metadata `json:"metadata"`
	Integration []Change            `json:"integration,omitempty"`
}

// Change is a state change an event caused: an integration event and its
// kind (tracking.Integration*).
type Change struct {
	Kind string `json:"kind"`
	tracking.IntegrationEvent
}

// NewEvent returns the delivered form of a recorded event.
func NewEvent(r eventstore.Recorded, changes []tracking.IntegrationEvent) Event {
	e := Event{EventID: r.ID, EntityID: r.StreamID, EntityType: r.EntityType, Version: r.Version, Position: r.Position,
		Type: r.Type, OccurredAt: r.OccurredAt, RecordedAt: r.RecordedAt, Data: r.Data, Metadata: r.Metadata}
	for _, c := range changes {
		e.Integration = append(e.Integration, Change{Kind: c.Kind, IntegrationEvent: c})
	}
	return e
}

// batch is a request being delivered: its events, and the cursor the
// checkpoint moves to once it is acknowledged (past the events read and
// left out by the filter, too).
type batch struct {
	id     string // webhook-id
	events []Event
	end    eventstore.Cursor
	oldest time.Time // the first event's recording time
	// attempts made of this batch
	attempts int
	// body, when set, is the request's body (an EPCIS query subscription's
	// document) instead of {"events": [...]}.
	body []byte
}

// first and last are the positions of the batch's first and last events
// (0 for an empty EPCIS report).
func (b *batch) first() int64 {
	if len(b.events) == 0 {
		return 0
	}
	return b.events[0].Position
}

func (b *batch) last() int64 {
	if len(b.events) == 0 {
		return 0
	}
	return b.events[len(b.events)-1].Position
}

// webhookID is the batch's webhook-id: the event's id for one event; for
// several, a UUIDv5 of their ids, the same on every attempt.
func webhookID(events []Event) string {
	if len(events) == 1 {
		return events[0].EventID.String()
	}
	b := make([]byte, 0, 16*len(events))
	for _, e := range events {
		b = append(b, e.EventID[:]...)
	}
	return uuid.NewSHA1(uuid.NameSpaceOID, b).String()
}

// Bounds of a delivery.
const (
	maxAnswerKept = 512      // bytes of an error answer kept in the log
	maxAnswerRead = 64 << 10 // bytes of an answer read before the connection is dropped
)

// outcome is what one attempt came to.
type outcome struct {
	status     int
	latency    time.Duration
	err        string
	retryAfter time.Duration // asked for by 429/503
	gone       bool          // 410: the endpoint wants no more
}

func (o outcome) ok() bool { return o.err == "" }

// post sends a batch once.
func (d *Dispatcher) post(ctx context.Context, s *Subscription, b *batch) outcome {
	body := b.body
	if body == nil {
		var err error
		if body, err = json.Marshal(struct {
			Events []Event `json:"events"`
		}{b.events}); err != nil {
			return outcome{err: "encode: " + err.Error()}
		}
	}
	now := d.opts.Clock.Now()
	ctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: "request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opts.UserAgent)
	req.Header.Set("webhook-id", b.id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(signing(s.Secrets, now), b.id, now, body))
	if s.EPCIS != nil && s.EPCIS.Signed && len(s.Secrets) > 0 {
		req.Header.Set(SignatureHeader, GS1Signature(s.Secrets[0].Key, body))
	}
	start := time.Now()
	resp, err := d.opts.Client.Do(req)
	o := outcome{}
	if err != nil {
		o.latency = time.Since(start)
		o.err = describe(err)
		return o
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerRead))
	resp.Body.Close()
	o.status, o.latency = resp.StatusCode, time.Since(start)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return o
	}
	o.err = fmt.Sprintf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if excerpt := printable(answer); excerpt != "" {
		o.err += ": " + excerpt
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	case http.StatusGone:
		o.gone = true
	}
	return o
}

// describe says why a request got no answer, without the URL (which
// net/http puts in its errors and a subscriber's log need not repeat).
func describe(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the request timeout"
	}
	return err.Error()
}

// printable returns the start of an answer as log text.
func printable(b []byte) string {
	if len(b) > maxAnswerKept {
		b = b[:maxAnswerKept]
	}
	s := strings.ToValidUTF8(string(b), "�")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date (0 when
// absent or unreadable).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
