package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tlm/tracktrace/internal/subscription"
)

// queryCallback is a query subscription's destination: it keeps the
// bodies whose GS1-Signature and Standard Webhooks signature verify with
// the subscription's signatureToken, and counts the others.
type queryCallback struct {
	srv   *httptest.Server
	mu    sync.Mutex
	good  [][]byte
	wrong int
}

func newQueryCallback(t *testing.T, token string) *queryCallback {
	c := &queryCallback{}
	wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte(token)))
	if err != nil {
		t.Fatal(err)
	}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Header.Get("GS1-Signature") != subscription.GS1Signature([]byte(token), body) || wh.Verify(body, r.Header) != nil {
			c.wrong++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c.good = append(c.good, body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *queryCallback) bodies() ([][]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.good), c.wrong
}

// queryEventIDs returns the eventIDs of an EPCISQueryDocument.
func queryEventIDs(t *testing.T, doc []byte) (queryName string, ids []string) {
	t.Helper()
	var d struct {
		Type      string
		EpcisBody struct {
			QueryResults struct {
				QueryName   string
				ResultsBody struct{ EventList []struct{ EventID string } }
			}
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.Type != "EPCISQueryDocument" {
		t.Fatalf("not an EPCISQueryDocument (%v): %.300s", err, doc)
	}
	for _, e := range d.EpcisBody.QueryResults.ResultsBody.EventList {
		ids = append(ids, e.EventID)
	}
	return d.EpcisBody.QueryResults.QueryName, ids
}

// TestEPCISQuerySubscription: GS1's webhook query subscriptions over HTTP.
// Documents of the corpus captured after a stream subscription reach its
// destination as EPCISQueryDocuments GS1's binding accepts, signed with
// the signatureToken, holding exactly the events the named query answers
// when pulled, in capture order; deleting the query unsubscribes.
func TestEPCISQuerySubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t, append(engines[0].env(t), "Subscriptions__AllowPrivateDestinations=true"))
	gs1 := gs1Validator(t)
	do := checked(srv, gs1)
	const tenant = "subs"
	corpus := func(name string) []byte {
		doc, err := os.ReadFile(filepath.Join(epcisCorpus, "openepcis/Capture/Documents", name))
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	if r := do(t, "POST", "/epcis/queries", `{"name": "objects", "query": {"eventType": ["ObjectEvent"]}}`, "X-Tenant-ID", tenant); r.StatusCode != 201 {
		t.Fatalf("create query: %d %s", r.StatusCode, r.Body)
	}
	// Captured before the subscription: not delivered.
	if job := capture(t, do, tenant, "application/json", corpus("ObjectEvent.json")); !job.Success {
		t.Fatalf("capture: %+v", job)
	}
	pull := func(want int) ([]string, response) {
		t.Helper()
		for range 400 { // the index follows the log
			r := do(t, "GET", "/epcis/queries/objects/events?perPage=100", nil, "X-Tenant-ID", tenant)
			if _, ids := queryEventIDs(t, r.Body); len(ids) >= want {
				return ids, r
			}
			sleepBriefly()
		}
		t.Fatalf("the named query never answered %d events", want)
		return nil, response{}
	}
	before, _ := pull(2)

	const token = "13df38d8275b13f05704629e5f1cf3d45d6132d5"
	cb := newQueryCallback(t, token)
	r := do(t, "POST", "/epcis/queries/objects/subscriptions",
		map[string]any{"dest": cb.srv.URL + "/queryCallback", "signatureToken": token, "stream": true},
		"X-Tenant-ID", tenant, "GS1-EPC-Format", "Always_EPC_URN")
	if r.StatusCode != 201 {
		t.Fatalf("subscribe: %d %s", r.StatusCode, r.Body)
	}
	var sub struct {
		SubscriptionID, QueryName, Dest, WebhookSecret, SignatureToken string
		Stream                                                         bool
	}
	r.JSON(t, &sub)
	if loc := r.Header.Get("Location"); loc != "/epcis/queries/objects/subscriptions/"+sub.SubscriptionID || !sub.Stream ||
		sub.QueryName != "objects" || sub.WebhookSecret != "" || strings.Contains(string(r.Body), token) {
		t.Fatalf("subscription answer: Location %q, %s", loc, r.Body)
	}
	for _, name := range []string{"Combination_of_different_event.json", "SensorData_with_combined_events.json"} {
		if job := capture(t, do, tenant, "application/json", corpus(name)); !job.Success {
			t.Fatalf("capture %s: %+v", name, job)
		}
	}
	all, pulled := pull(len(before) + 11)
	want := all[len(before):]

	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		bodies, _ := cb.bodies()
		got = nil
		for _, b := range bodies {
			name, ids := queryEventIDs(t, b)
			if name != "objects" {
				t.Fatalf("queryName %q", name)
			}
			got = append(got, ids...)
			// Each document is what GS1's binding answers for the
			// named query's events.
			gs1(t, response{Response: &http.Response{StatusCode: 200, Header: pulled.Header.Clone(), Request: pulled.Request}, Body: b})
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if bodies, wrong := cb.bodies(); wrong != 0 || len(got) != len(want) || !slices.Equal(got, want) {
		t.Fatalf("delivered %d events in %d documents (%d badly signed):\n%v\nwant the named query's %d:\n%v",
			len(got), len(bodies), wrong, got, len(want), want)
	}
	// The EPC format asked for at subscription.
	bodies, _ := cb.bodies()
	if !strings.Contains(string(bodies[0]), "urn:epc:id:") || strings.Contains(string(bodies[0]), `"https://id.gs1.org/`) {
		t.Errorf("GS1-EPC-Format Always_EPC_URN not applied: %.500s", bodies[0])
	}

	// The subscription's resources.
	var list []struct{ SubscriptionID, LastNotifiedAt string }
	do(t, "GET", "/epcis/queries/objects/subscriptions", nil, "X-Tenant-ID", tenant).JSON(t, &list)
	if len(list) != 1 || list[0].SubscriptionID != sub.SubscriptionID || list[0].LastNotifiedAt == "" {
		t.Errorf("list: %+v", list)
	}
	path := "/epcis/queries/objects/subscriptions/" + sub.SubscriptionID
	if r := do(t, "GET", path, nil, "X-Tenant-ID", tenant); r.StatusCode != 200 {
		t.Errorf("get: %d %s", r.StatusCode, r.Body)
	}
	if r := do(t, "GET", path, nil, "X-Tenant-ID", "other"); r.StatusCode != 404 {
		t.Errorf("another tenant's subscription: %d", r.StatusCode)
	}
	for p, allow := range map[string]string{"/epcis/queries/objects/subscriptions": "OPTIONS, POST, GET", path: "OPTIONS, GET, DELETE"} {
		if r := do(t, "OPTIONS", p, nil, "X-Tenant-ID", tenant); r.StatusCode != 204 || r.Header.Get("Allow") != allow {
			t.Errorf("OPTIONS %s: %d %q", p, r.StatusCode, r.Header.Get("Allow"))
		}
	}
	// A scheduled subscription (GS1's example), and refusals.
	r = do(t, "POST", "/epcis/queries/objects/subscriptions", map[string]any{"dest": cb.srv.URL, "reportIfEmpty": true,
		"schedule": map[string]any{"hour": "1", "minute": "5"}}, "X-Tenant-ID", tenant)
	if r.StatusCode != 201 || !strings.Contains(string(r.Body), `"webhookSecret":"whsec_`) {
		t.Errorf("scheduled subscription: %d %s", r.StatusCode, r.Body)
	}
	for _, bad := range []string{
		`{"dest": "` + cb.srv.URL + `"}`,
		`{"dest": "` + cb.srv.URL + `", "stream": true, "schedule": {"hour": "1"}}`,
		`{"dest": "` + cb.srv.URL + `", "schedule": {"hour": "24"}}`,
		`{"dest": "not a url", "stream": true}`,
		`{"dest": "` + cb.srv.URL + `", "stream": true, "reportIfEmpty": true}`,
	} {
		// (GS1's binding declares no 400 for this POST: a problem all the same.)
		r := srv.do(t, "POST", "/epcis/queries/objects/subscriptions", bad, "X-Tenant-ID", tenant)
		if r.StatusCode != 400 || !strings.Contains(string(r.Body), "SubscriptionControlsException") {
			t.Errorf("%s: %d %s", bad, r.StatusCode, r.Body)
		}
	}
	if r := do(t, "POST", "/epcis/queries/nothing/subscriptions", map[string]any{"dest": cb.srv.URL, "stream": true}, "X-Tenant-ID", tenant); r.StatusCode != 404 {
		t.Errorf("subscription to no query: %d %s", r.StatusCode, r.Body)
	}

	// Deleting the query unsubscribes: nothing more arrives.
	if r := do(t, "DELETE", "/epcis/queries/objects", nil, "X-Tenant-ID", tenant); r.StatusCode != 204 {
		t.Fatalf("delete query: %d %s", r.StatusCode, r.Body)
	}
	if r := srv.do(t, "GET", "/api/v1/subscriptions", nil, "X-Tenant-ID", tenant); !strings.Contains(string(r.Body), `"items":[]`) {
		t.Errorf("subscriptions left after the query's deletion: %s", r.Body)
	}
	n := len(bodies)
	if job := capture(t, do, tenant, "application/json", corpus("ObjectEvent_with_comment.json")); !job.Success {
		t.Fatalf("capture: %+v", job)
	}
	time.Sleep(500 * time.Millisecond)
	if bodies, _ := cb.bodies(); len(bodies) != n {
		t.Errorf("%d documents delivered after unsubscribing", len(bodies)-n)
	}
}
