package subscription

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EPCIS query subscriptions (GS1's EPCIS 2.0 REST binding, POST
// /queries/{queryName}/subscriptions) are subscriptions of this package:
// the same store, dispatcher, worker, retries, suspension, delivery log and
// destination checks as webhooks. What differs is how a batch is formed
// (readEPCIS: the events of the log that the named query selects, matched
// by the query's SQL on the EPCIS index once its projection has passed
// them), when (as they are captured, or at the times of a schedule), and
// the body: an EPCISQueryDocument, signed in a GS1-Signature header besides
// the Standard Webhooks headers.

// EPCISQuery is what makes a subscription an EPCIS query subscription.
type EPCISQuery struct {
	// QueryName is the named query subscribed to; Params are its
	// parameters (epcis.QueryValues) when the subscription was made, and
	// Namespaces the extension prefixes they use (GS1-Extensions).
	QueryName  string           `json:"queryName"`
	Params     url.Values       `json:"params"`
	Namespaces epcis.Namespaces `json:"namespaces,omitempty"`
	// Stream: every matching event is delivered as it is captured.
	// Otherwise Schedule says when the matching events recorded since the
	// last run are delivered.
	Stream   bool      `json:"stream,omitempty"`
	Schedule *Schedule `json:"schedule,omitempty"`
	// ReportIfEmpty: a scheduled run that found nothing delivers an empty
	// document.
	ReportIfEmpty bool `json:"reportIfEmpty,omitempty"`
	// InitialRecordTime: events recorded before it are never delivered
	// (nil: from the subscription's creation).
	InitialRecordTime *time.Time `json:"initialRecordTime,omitempty"`
	// Signed: the client gave a signatureToken, which is the
	// subscription's signing secret: requests carry GS1-Signature.
	Signed bool `json:"signed,omitempty"`
	// EPCFormat and CBVFormat are the GS1-EPC-Format and
	// GS1-CBV-XML-Format the client asked for ("" for the defaults).
	EPCFormat string `json:"epcFormat,omitempty"`
	CBVFormat string `json:"cbvFormat,omitempty"`
}

// SignatureHeader is the header carrying an EPCIS query subscription's
// signature: the base64 (standard, padded) of the HMAC-SHA256 of the
// request body keyed by the signatureToken's UTF-8 bytes. GS1 leaves the
// form to implementations; this is the one other EPCIS 2.0 repositories
// send.
const SignatureHeader = "GS1-Signature"

// GS1Signature returns the GS1-Signature of a body under a signatureToken.
func GS1Signature(token, body []byte) string {
	m := hmac.New(sha256.New, token)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// EPCISBatch is how many events one document of an EPCIS query
// subscription carries at most.
const EPCISBatch = 100

// maxSignatureToken bounds a signatureToken.
const maxSignatureToken = 512

// EPCISDefinition is what a client sends to subscribe to a named query.
type EPCISDefinition struct {
	Dest  string
	Query EPCISQuery
	// SignatureToken is the client's secret ("": none; the subscription
	// still signs by the Standard Webhooks convention, with a key of its
	// own).
	SignatureToken string
}

// SubscribeEPCIS checks and stores an EPCIS query subscription. Its
// refusals wrap ErrInvalid (and an *epcis.QueryParameterError for the
// query's parameters).
func (s *Service) SubscribeEPCIS(ctx context.Context, tenant string, d EPCISDefinition) (Subscription, error) {
	q := d.Query
	if err := s.checkDest(ctx, "dest", d.Dest); err != nil {
		return Subscription{}, err
	}
	if q.QueryName == "" {
		return Subscription{}, fmt.Errorf("%w: a query subscription names its query", ErrInvalid)
	}
	if _, err := epcis.ParseQuery(q.Params, q.Namespaces); err != nil {
		return Subscription{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := epc.ParseEPCFormat(q.EPCFormat); err != nil {
		return Subscription{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := epc.ParseCBVFormat(q.CBVFormat); err != nil {
		return Subscription{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	now := s.clock.Now()
	var due *time.Time
	switch {
	case q.Stream == (q.Schedule != nil):
		return Subscription{}, fmt.Errorf("%w: give either stream: true or a schedule", ErrInvalid)
	case q.Schedule != nil:
		t, err := q.Schedule.Next(now)
		if err != nil {
			return Subscription{}, err
		}
		due = &t
	case q.ReportIfEmpty:
		return Subscription{}, fmt.Errorf("%w: reportIfEmpty applies to scheduled subscriptions", ErrInvalid)
	}
	secret := NewSecret()
	q.Signed = d.SignatureToken != ""
	if q.Signed {
		if len(d.SignatureToken) > maxSignatureToken || strings.ContainsFunc(d.SignatureToken, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return Subscription{}, fmt.Errorf("%w: signatureToken: 1 to %d printable characters", ErrInvalid, maxSignatureToken)
		}
		secret = Secret{Key: []byte(d.SignatureToken)}
	}
	start := Start("now")
	if q.InitialRecordTime != nil {
		t := q.InitialRecordTime.UTC()
		q.InitialRecordTime = &t
		start = Start(t.Format(time.RFC3339Nano))
	}
	sub := Subscription{Tenant: tenant, ID: uuid.Must(uuid.NewV7()).String(), URL: d.Dest, MaxBatch: EPCISBatch,
		Secrets: []Secret{secret}, Status: StatusActive, CreatedAt: now, Generation: 1, EPCIS: &q}
	var err error
	if sub.Cursor, sub.Position, sub.Since, err = s.start(ctx, tenant, start); err != nil {
		return Subscription{}, err
	}
	sub.NextAttemptAt = due
	return s.create(ctx, sub)
}

// EPCISSubscriptions returns up to limit of a tenant's subscriptions to a
// named query, by id, after `after`.
func (s *Service) EPCISSubscriptions(ctx context.Context, tenant, queryName, after string, limit int) ([]Subscription, error) {
	var out []Subscription
	for len(out) < limit {
		page, err := s.store.Subscriptions(ctx, tenant, after, 500)
		if err != nil {
			return nil, err
		}
		for _, sub := range page {
			if sub.EPCIS != nil && sub.EPCIS.QueryName == queryName && len(out) < limit {
				out = append(out, sub)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// EPCISSubscription returns a tenant's subscription to a named query, or
// ErrNotFound (also when it is another query's, or a webhook).
func (s *Service) EPCISSubscription(ctx context.Context, tenant, queryName, id string) (Subscription, error) {
	sub, err := s.store.Subscription(ctx, tenant, id)
	if err != nil {
		return Subscription{}, err
	}
	if sub.EPCIS == nil || sub.EPCIS.QueryName != queryName {
		return Subscription{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return sub, nil
}

// Unsubscribe deletes a tenant's subscription to a named query.
func (s *Service) Unsubscribe(ctx context.Context, tenant, queryName, id string) error {
	if _, err := s.EPCISSubscription(ctx, tenant, queryName, id); err != nil {
		return err
	}
	return s.Delete(ctx, tenant, id)
}

// UnsubscribeQuery deletes every subscription of a tenant to a named query
// (the query is being deleted), and returns how many there were.
func (s *Service) UnsubscribeQuery(ctx context.Context, tenant, queryName string) (int, error) {
	n := 0
	for {
		subs, err := s.EPCISSubscriptions(ctx, tenant, queryName, "", 100)
		if err != nil || len(subs) == 0 {
			return n, err
		}
		for _, sub := range subs {
			if err := s.Delete(ctx, tenant, sub.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return n, err
			}
			n++
		}
	}
}

// EPCISIndex is what EPCIS query subscriptions need of the read models
// (readmodel.Store).
type EPCISIndex interface {
	// Checkpoint returns a projection's checkpoint: the EPCIS index's
	// (tracking.ProjectionEPCIS) says which events it holds.
	Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error)
	// EPCISMatching returns the positions of those of events that are a
	// tenant's EPCIS events q selects.
	EPCISMatching(ctx context.Context, tenant string, q epcis.Query, events []eventstore.Recorded) ([]int64, error)
}

// epcisState is a worker's state of an EPCIS query subscription.
type epcisState struct {
	generation int64
	query      epcis.Query
	formats    epcis.Formats
	schedule   *schedule
	// run is the scheduled run in progress (nil between runs).
	run *epcisRun
}

// epcisRun is a run of a scheduled subscription: it delivers the matching
// events recorded before its due time.
type epcisRun struct {
	due time.Time
	// reported: the run delivered a document.
	reported bool
}

// epcisState returns the worker's EPCIS state for the subscription's
// current definition.
func (w *worker) epcisState() (*epcisState, error) {
	q := w.sub.EPCIS
	if st := w.epcis; st != nil && st.generation == w.sub.Generation {
		return st, nil
	}
	parsed, err := epcis.ParseQuery(q.Params, q.Namespaces)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q.QueryName, err)
	}
	ef, _ := epc.ParseEPCFormat(q.EPCFormat) // checked at creation; the default otherwise
	cf, _ := epc.ParseCBVFormat(q.CBVFormat)
	st := &epcisState{generation: w.sub.Generation, query: parsed, formats: epcis.Formats{EPC: ef, CBV: cf}}
	if q.Schedule != nil {
		sc, err := q.Schedule.parse()
		if err != nil {
			return nil, err
		}
		st.schedule = &sc
	}
	if w.epcis != nil {
		st.run = w.epcis.run
	}
	w.epcis = st
	return st, nil
}

// readEPCIS forms the next batch of an EPCIS query subscription from a page
// of the log read after its checkpoint (or its replay's cursor, up to
// until), as read does for webhooks: the tenant's EPCIS events the query
// selects, in log order, up to MaxBatch, as one EPCISQueryDocument. Only
// events the EPCIS index holds are considered. A scheduled subscription
// delivers only in a run (from its due time on) the events recorded before
// the run's due time; a run that delivered nothing reports an empty
// document when asked to, and a finished run schedules the next.
func (w *worker) readEPCIS(ctx context.Context, page []eventstore.Recorded, until *eventstore.Cursor, since, before *time.Time) (found, more bool, err error) {
	st, err := w.epcisState()
	if err != nil {
		return false, false, err
	}
	idx := w.d.opts.EPCIS
	if idx == nil {
		return false, false, errors.New("no EPCIS index configured to match query subscriptions")
	}
	s, clock := &w.sub, w.d.opts.Clock
	replay := until != nil
	var run *epcisRun
	if st.schedule != nil && !replay {
		if st.run == nil {
			due := clock.Now()
			if at := s.NextAttemptAt; at != nil && at.Before(due) {
				due = *at
			}
			st.run = &epcisRun{due: due}
		}
		run = st.run
	}
	bounded := page
	ended := len(page) == 0 // the range (the log, the replay, the run) ends in this page
	for i, r := range page {
		if (until != nil && until.Less(r.Cursor)) || (run != nil && !r.RecordedAt.Before(run.due)) {
			bounded, ended = page[:i], true
			break
		}
	}
	covered, err := w.awaitIndex(ctx, idx, bounded)
	if err != nil {
		return false, false, err
	}
	if len(covered) < len(bounded) {
		ended = false // the index is behind: what it has, then wait
	}
	var candidates []eventstore.Recorded
	for _, r := range covered {
		if isEPCIS(r, s.Tenant) && (since == nil || !r.RecordedAt.Before(*since)) && (before == nil || r.RecordedAt.Before(*before)) {
			candidates = append(candidates, r)
		}
	}
	matching := map[int64]bool{}
	if len(candidates) > 0 {
		positions, err := idx.EPCISMatching(ctx, s.Tenant, st.query, candidates)
		if err != nil {
			return false, false, err
		}
		for _, p := range positions {
			matching[p] = true
		}
	}
	var picked []eventstore.Recorded
	var end eventstore.Cursor
	for _, r := range covered {
		if matching[r.Position] {
			picked = append(picked, r)
		}
		end = r.Cursor
		if len(picked) == s.MaxBatch {
			break
		}
	}
	if len(picked) > 0 {
		w.pending, err = w.epcisBatch(st, picked, end, "")
		if run != nil && err == nil {
			run.reported = true
		}
		return err == nil, false, err
	}
	if len(covered) > 0 {
		w.advance(replay, end, 0, 0)
	}
	if !ended {
		// More of the log (or, the index behind, its next part) at once;
		// with nothing indexed, after the worker's wait.
		return false, len(covered) > 0, nil
	}
	if run == nil {
		return false, false, nil
	}
	// The run is over.
	if !run.reported && s.EPCIS.ReportIfEmpty {
		w.pending, err = w.epcisBatch(st, nil, s.Cursor, uuid.NewSHA1(uuid.NameSpaceURL,
			[]byte(s.Tenant+"/"+s.ID+"/"+run.due.UTC().Format(time.RFC3339Nano))).String())
		run.reported = err == nil
		return err == nil, false, err
	}
	st.run = nil
	from := clock.Now()
	if run.due.After(from) {
		from = run.due
	}
	if next, ok := st.schedule.next(from); ok {
		s.NextAttemptAt = &next
	}
	w.dirty = true
	return false, false, nil
}

// isEPCIS reports whether a logged event is one of a tenant's EPCIS events.
func isEPCIS(r eventstore.Recorded, tenant string) bool {
	_, ok := epcis.TypeOf(r.Type)
	return ok && r.Tenant == tenant && r.EntityType == epcis.StreamType
}

// indexWait bounds how long a read waits for the EPCIS index to reach the
// log before it lets the worker wait for the next commit or interval.
const indexWait = 5 * time.Second

// awaitIndex returns the longest prefix of events whose EPCIS events the
// index holds (its projection's checkpoint has passed them), waiting
// (real time, up to indexWait) while it holds none of them.
func (w *worker) awaitIndex(ctx context.Context, idx EPCISIndex, events []eventstore.Recorded) ([]eventstore.Recorded, error) {
	if len(events) == 0 {
		return events, nil
	}
	deadline := time.Now().Add(indexWait)
	pause := 5 * time.Millisecond
	for {
		cp, err := idx.Checkpoint(ctx, tracking.ProjectionEPCIS)
		if err != nil {
			return nil, fmt.Errorf("EPCIS index checkpoint: %w", err)
		}
		n := len(events)
		for i, r := range events {
			if isEPCIS(r, w.sub.Tenant) && cp.Cursor.Less(r.Cursor) {
				n = i
				break
			}
		}
		if n > 0 || time.Now().After(deadline) {
			return events[:n], nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// epcisBatch forms a batch of events (none: an empty report, whose
// webhook-id is id) as an EPCISQueryDocument.
func (w *worker) epcisBatch(st *epcisState, events []eventstore.Recorded, end eventstore.Cursor, id string) (*batch, error) {
	b := &batch{id: id, end: end, events: make([]Event, 0, len(events))}
	docs := make([]json.RawMessage, 0, len(events))
	for _, r := range events {
		doc, err := epcis.Format(r.Data, r.RecordedAt, st.formats)
		if err != nil {
			// Capture stores only events the index reads: this is not one.
			w.d.log.Warn("EPCIS event left out of a query subscription", "tenant", r.Tenant, "subscription", w.sub.ID,
				"position", r.Position, "error", err)
			continue
		}
		docs = append(docs, doc)
		b.events = append(b.events, NewEvent(r, nil))
	}
	if len(events) > 0 {
		b.oldest = events[0].RecordedAt
		if len(b.events) == 0 {
			return nil, fmt.Errorf("no event of positions %d–%d can be formatted", events[0].Position, events[len(events)-1].Position)
		}
		b.id = webhookID(b.events)
	}
	body, err := epcis.QueryDocument(w.sub.EPCIS.QueryName, docs, w.d.opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	b.body = body
	return b, nil
}

// idle is how long a worker with nothing to deliver waits for a commit:
// the polling interval, or less when a scheduled run falls due sooner.
func (w *worker) idle() time.Duration {
	d := w.d.opts.Interval
	if at := w.sub.NextAttemptAt; w.sub.EPCIS != nil && at != nil {
		d = min(d, max(at.Sub(w.d.opts.Clock.Now()), 0))
	}
	return d
}
