package subscription_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// queryReceiver is the endpoint of an EPCIS query subscription: it checks
// both signatures of every request (GS1-Signature with the token, and the
// Standard Webhooks one with the token as its key) and keeps the
// documents.
type queryReceiver struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu   sync.Mutex
	docs []queryDocument
	bad  int
}

// queryDocument is what a receiver reads of an EPCISQueryDocument.
type queryDocument struct {
	Type      string `json:"type"`
	EPCISBody struct {
		QueryResults struct {
			QueryName   string `json:"queryName"`
			ResultsBody struct {
				EventList []map[string]any `json:"eventList"`
			} `json:"resultsBody"`
		} `json:"queryResults"`
	} `json:"epcisBody"`
}

func (d queryDocument) eventIDs() []string {
	var ids []string
	for _, ev := range d.EPCISBody.QueryResults.ResultsBody.EventList {
		ids = append(ids, fmt.Sprint(ev["eventID"]))
	}
	return ids
}

func newQueryReceiver(t *testing.T, token string) *queryReceiver {
	rc := &queryReceiver{t: t, token: token}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte(token)))
		if err != nil {
			t.Error(err)
		}
		if r.Header.Get("GS1-Signature") != subscription.GS1Signature([]byte(token), body) ||
			wh.VerifyIgnoringTimestamp(body, r.Header) != nil {
			rc.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var doc queryDocument
		if err := json.Unmarshal(body, &doc); err != nil || doc.Type != "EPCISQueryDocument" {
			t.Errorf("not an EPCISQueryDocument (%v): %s", err, body)
		}
		rc.docs = append(rc.docs, doc)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *queryReceiver) documents() []queryDocument {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.docs)
}

// epcisEnv is an env whose dispatcher matches EPCIS query subscriptions
// against the EPCIS index, kept by a projection running in the
// background; its clock starts at start.
func epcisEnv(t *testing.T, start time.Time) *env {
	t.Helper()
	e := newEnv(t, func(e *env, o *subscription.Options) {
		e.clock = clockwork.NewFakeClockAt(start)
		o.EPCIS = e.views
	})
	m := projection.NewManager(e.store, e.views, e.views, []string{tracking.ProjectionEPCIS}, projection.Options{})
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(e.ctx)
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// objectEvent is an EPCIS ObjectEvent of an EPC at a business step.
func objectEvent(id, epc, bizStep string) string {
	return fmt.Sprintf(`{"type": "ObjectEvent", "eventID": %q, "eventTime": "2026-11-30T10:00:00Z",
		"eventTimeZoneOffset": "+00:00", "epcList": [%q], "action": "OBSERVE", "bizStep": %q}`, id, epc, bizStep)
}

// captureEPCIS captures events as one document of the env's tenant.
func (e *env) captureEPCIS(events ...string) {
	e.t.Helper()
	raw := `{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"], "type": "EPCISDocument",
		"schemaVersion": "2.0", "creationDate": "2026-11-30T10:00:00Z", "epcisBody": {"eventList": [` +
		strings.Join(events, ",") + `]}}`
	doc, err := epcis.ParseDocument([]byte(raw), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	job, err := epcis.NewCapturer(e.store, e.views, epcis.HashStored, nil).Capture(e.ctx,
		epcis.Request{Tenant: e.tenant, Events: doc.Events})
	if err != nil || len(job.Errors) > 0 {
		e.t.Fatalf("capture: %v %+v", err, job.Errors)
	}
}

// shippingQuery is a named query selecting shipping events.
func shippingQuery() subscription.EPCISQuery {
	return subscription.EPCISQuery{QueryName: "Shipped", Params: url.Values{"EQ_bizStep": {"shipping"}}}
}

func TestEPCISStreamDeliversTheMatchingEventsSignedInCaptureOrder(t *testing.T) {
	e := epcisEnv(t, time.Now().UTC())
	e.captureEPCIS(objectEvent("urn:uuid:00000000-0000-4000-8000-000000000001", "urn:epc:id:sgtin:4012345.011111.1", "shipping"))
	rc := newQueryReceiver(t, "13df38d8275b13f05704629e5f1cf3d45d6132d5")
	q := shippingQuery()
	q.Stream = true
	sub, err := e.svc.SubscribeEPCIS(e.ctx, e.tenant, subscription.EPCISDefinition{Dest: rc.srv.URL, Query: q, SignatureToken: rc.token})
	if err != nil {
		t.Fatal(err)
	}
	e.captureEPCIS(
		objectEvent("urn:uuid:00000000-0000-4000-8000-000000000002", "urn:epc:id:sgtin:4012345.011111.2", "shipping"),
		objectEvent("urn:uuid:00000000-0000-4000-8000-000000000003", "urn:epc:id:sgtin:4012345.011111.3", "receiving"),
		objectEvent("urn:uuid:00000000-0000-4000-8000-000000000004", "urn:epc:id:sgtin:4012345.011111.4", "urn:epcglobal:cbv:bizstep:shipping"))
	e.append("ship-1", "shipment", 2) // tracking events: never an EPCIS subscription's
	other := e.tenant
	e.tenant = "other"
	e.captureEPCIS(objectEvent("urn:uuid:00000000-0000-4000-8000-000000000005", "urn:epc:id:sgtin:4012345.011111.5", "shipping"))
	e.tenant = other
	e.captureEPCIS(objectEvent("urn:uuid:00000000-0000-4000-8000-000000000006", "urn:epc:id:sgtin:4012345.011111.6", "shipping"))

	want := []string{"urn:uuid:00000000-0000-4000-8000-000000000002", "urn:uuid:00000000-0000-4000-8000-000000000004",
		"urn:uuid:00000000-0000-4000-8000-000000000006"}
	var got []string
	eventually(t, "the matching events", func() bool {
		got = nil
		for _, d := range rc.documents() {
			if d.EPCISBody.QueryResults.QueryName != "Shipped" {
				t.Fatalf("queryName %q", d.EPCISBody.QueryResults.QueryName)
			}
			got = append(got, d.eventIDs()...)
		}
		return len(got) >= len(want)
	})
	time.Sleep(50 * time.Millisecond)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	rc.mu.Lock()
	bad := rc.bad
	rc.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests with a wrong signature", bad)
	}
	eventually(t, "the checkpoint", func() bool { return e.get(sub.ID).Delivered == 3 })
}

func TestEPCISScheduleDeliversAtDueTimesAndReportsIfEmpty(t *testing.T) {
	// The store records real times: the schedule's clock runs ahead of
	// them, so everything captured is recorded before the next due time.
	e := epcisEnv(t, time.Now().UTC().Add(time.Hour).Truncate(time.Minute).Add(10*time.Second))
	rc := newQueryReceiver(t, "a-token")
	q := shippingQuery()
	q.Schedule = &subscription.Schedule{Second: "0"} // every minute
	q.ReportIfEmpty = true
	sub, err := e.svc.SubscribeEPCIS(e.ctx, e.tenant, subscription.EPCISDefinition{Dest: rc.srv.URL, Query: q, SignatureToken: rc.token})
	if err != nil {
		t.Fatal(err)
	}
	if sub.NextAttemptAt == nil || sub.NextAttemptAt.Second() != 0 || sub.NextAttemptAt.Sub(e.clock.Now()) != 50*time.Second {
		t.Fatalf("first run at %v (now %v)", sub.NextAttemptAt, e.clock.Now())
	}
	e.captureEPCIS(
		objectEvent("urn:uuid:10000000-0000-4000-8000-000000000001", "urn:epc:id:sgtin:4012345.011111.1", "shipping"),
		objectEvent("urn:uuid:10000000-0000-4000-8000-000000000002", "urn:epc:id:sgtin:4012345.011111.2", "receiving"),
		objectEvent("urn:uuid:10000000-0000-4000-8000-000000000003", "urn:epc:id:sgtin:4012345.011111.3", "shipping"))
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.documents()); n != 0 {
		t.Fatalf("%d documents before the first due time", n)
	}

	runAt := func(want int) []queryDocument {
		t.Helper()
		next := waitNextAttempt(t, e, sub.ID, e.clock.Now())
		e.clock.Advance(next.Sub(e.clock.Now()))
		eventually(t, fmt.Sprintf("document %d", want), func() bool { return len(rc.documents()) >= want })
		// The run ends by scheduling the next one.
		waitNextAttempt(t, e, sub.ID, next)
		return rc.documents()
	}
	docs := runAt(1)
	if got, want := docs[0].eventIDs(), []string{"urn:uuid:10000000-0000-4000-8000-000000000001",
		"urn:uuid:10000000-0000-4000-8000-000000000003"}; !slices.Equal(got, want) {
		t.Fatalf("first run delivered %v, want %v", got, want)
	}
	// Nothing new: an empty report.
	docs = runAt(2)
	if len(docs) != 2 || len(docs[1].eventIDs()) != 0 {
		t.Fatalf("second run: %d documents, the last with %v", len(docs), docs[len(docs)-1].eventIDs())
	}
	e.captureEPCIS(objectEvent("urn:uuid:10000000-0000-4000-8000-000000000004", "urn:epc:id:sgtin:4012345.011111.4", "shipping"))
	docs = runAt(3)
	if got := docs[2].eventIDs(); !slices.Equal(got, []string{"urn:uuid:10000000-0000-4000-8000-000000000004"}) {
		t.Fatalf("third run delivered %v", got)
	}
	if len(docs) != 3 {
		t.Fatalf("%d documents after three runs", len(docs))
	}
}

func TestEPCISScheduleWithoutReportIfEmptySendsNothingWhenNothingMatches(t *testing.T) {
	e := epcisEnv(t, time.Now().UTC().Add(time.Hour).Truncate(time.Minute).Add(10*time.Second))
	rc := newQueryReceiver(t, "a-token")
	q := shippingQuery()
	q.Schedule = &subscription.Schedule{Second: "0"}
	sub, err := e.svc.SubscribeEPCIS(e.ctx, e.tenant, subscription.EPCISDefinition{Dest: rc.srv.URL, Query: q, SignatureToken: rc.token})
	if err != nil {
		t.Fatal(err)
	}
	e.captureEPCIS(objectEvent("urn:uuid:20000000-0000-4000-8000-000000000001", "urn:epc:id:sgtin:4012345.011111.1", "receiving"))
	for range 2 {
		next := waitNextAttempt(t, e, sub.ID, e.clock.Now())
		e.clock.Advance(next.Sub(e.clock.Now()))
		waitNextAttempt(t, e, sub.ID, next)
	}
	if n := len(rc.documents()); n != 0 {
		t.Fatalf("%d documents for runs that found nothing", n)
	}
}

func TestEPCISSubscriptionRefusals(t *testing.T) {
	e := newEnv(t)
	rc := newQueryReceiver(t, "x")
	stream := shippingQuery()
	stream.Stream = true
	both := stream
	both.Schedule = &subscription.Schedule{Minute: "5"}
	neither := shippingQuery()
	badQuery := stream
	badQuery.Params = url.Values{"EQ_nonsense": {"1"}}
	badSchedule := shippingQuery()
	badSchedule.Schedule = &subscription.Schedule{Hour: "25"}
	reportStream := stream
	reportStream.ReportIfEmpty = true
	for name, d := range map[string]subscription.EPCISDefinition{
		"stream and schedule":     {Dest: rc.srv.URL, Query: both},
		"neither":                 {Dest: rc.srv.URL, Query: neither},
		"unknown parameter":       {Dest: rc.srv.URL, Query: badQuery},
		"bad schedule":            {Dest: rc.srv.URL, Query: badSchedule},
		"reportIfEmpty on stream": {Dest: rc.srv.URL, Query: reportStream},
		"no dest":                 {Query: stream},
		"control characters":      {Dest: rc.srv.URL, Query: stream, SignatureToken: "a\nb"},
	} {
		if _, err := e.svc.SubscribeEPCIS(e.ctx, e.tenant, d); err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}
