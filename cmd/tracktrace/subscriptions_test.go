package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// hookReceiver is a webhook endpoint: a real HTTP server that verifies
// each request with the Standard Webhooks library (timestamps included)
// and keeps the events it accepted.
type hookReceiver struct {
	t   *testing.T
	URL string

	mu       sync.Mutex
	secrets  []string
	delay    time.Duration
	inflight int
	events   []receivedEvent
	requests int
	badSigs  int
	// newSecret, once set, counts the requests it verifies in verifiedNew.
	newSecret   string
	verifiedNew int
}

type receivedEvent struct {
	EventID  uuid.UUID `json:"eventId"`
	EntityID string    `json:"entityId"`
	Version  int64     `json:"version"`
	Position int64     `json:"position"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rc := &hookReceiver{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests++
		rc.inflight++
		delay, secrets := rc.delay, rc.secrets
		rc.mu.Unlock()
		defer func() { rc.mu.Lock(); rc.inflight--; rc.mu.Unlock() }()
		time.Sleep(delay)
		ok, withNew := false, false
		for _, s := range secrets {
			if wh, err := standardwebhooks.NewWebhook(s); err == nil && wh.Verify(body, r.Header) == nil {
				ok = true
				withNew = withNew || s == rc.secretNew()
			}
		}
		var got struct{ Events []receivedEvent }
		if err := json.Unmarshal(body, &got); err != nil {
			ok = false
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if !ok {
			rc.badSigs++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.events = append(rc.events, got.Events...)
		if withNew {
			rc.verifiedNew++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func (rc *hookReceiver) duplicates() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[uuid.UUID]bool{}
	n := 0
	for _, e := range rc.events {
		if seen[e.EventID] {
			n++
		}
		seen[e.EventID] = true
	}
	return n
}

func (rc *hookReceiver) secretNew() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.newSecret
}

func (rc *hookReceiver) set(delay time.Duration, secrets ...string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.delay = delay
	if len(secrets) > 0 {
		rc.secrets = secrets
	}
}

// Issue 18, Done when 1: a receiver verifying signatures with a Standard
// Webhooks library sees every acknowledged event matching its filter, in
// per-entity order, across a SIGKILL of tracktrace mid-delivery, a secret
// rotation and a database restart; duplicates only after the failures.
func TestWebhookDeliveryAcrossKillRotationAndDatabaseRestart(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	env := []string{"ConnectionStrings__EventStore=" + pg.DSN(), "Subscriptions__AllowPrivateDestinations=true",
		"ReadModels__RefreshInterval=00:00:01", "Server__RequestTimeout=00:00:05", "Subscriptions__RequestTimeout=00:00:05"}
	rc := newHookReceiver(t)
	p := startProcess(t, env)

	var created struct{ ID, Secret string }
	r, err := p.tryDo("POST", "/api/v1/subscriptions", map[string]any{"url": rc.URL + "/hooks", "maxBatch": 20,
		"filter": map[string]any{"entityIds": []string{"WH-*"}}})
	if err != nil || r.StatusCode != http.StatusCreated {
		t.Fatalf("create subscription: %v %d %s", err, r.StatusCode, r.Body)
	}
	if err := json.Unmarshal(r.Body, &created); err != nil || created.Secret == "" {
		t.Fatalf("create answer %s: %v", r.Body, err)
	}
	rc.set(0, created.Secret)

	var target atomic.Pointer[string]
	target.Store(&p.URL)
	acked := &ackLog{}
	stop := make(chan struct{})
	load := appendLoad(t, 6, "WH", &target, acked, stop, 503)
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()
	received := func() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.events) }
	waitFor := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(within); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
		}
	}
	waitFor("100 deliveries", 60*time.Second, func() bool { return received() >= 100 })

	// SIGKILL while a delivery is in flight: the receiver holds it.
	rc.set(500 * time.Millisecond)
	waitFor("a delivery in flight", 30*time.Second, func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.inflight > 0 })
	p.kill()
	target.Store(nil)
	rc.set(0)
	killedAt := received()
	p = startProcess(t, env)
	target.Store(&p.URL)
	waitFor("deliveries after the restart", 60*time.Second, func() bool { return received() >= killedAt+100 })
	t.Logf("after the SIGKILL: %d duplicates", rc.duplicates())

	// Rotate the secret; the receiver knows only the new one from now on.
	r, err = p.tryDo("POST", "/api/v1/subscriptions/"+created.ID+"/rotate-secret", nil)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("rotate: %v %d %s", err, r.StatusCode, r.Body)
	}
	var rotated struct{ Secret string }
	if err := json.Unmarshal(r.Body, &rotated); err != nil || rotated.Secret == "" || rotated.Secret == created.Secret {
		t.Fatalf("rotate answer %s", r.Body)
	}
	// Requests signed before the rotation may still be on their way: the
	// receiver takes both secrets until one verifies with the new secret,
	// then only the new one.
	rc.set(0, created.Secret, rotated.Secret)
	rc.mu.Lock()
	rc.newSecret = rotated.Secret
	rc.mu.Unlock()
	waitFor("a delivery signed with the new secret", 60*time.Second, func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.verifiedNew > 0 })
	rc.set(0, rotated.Secret)
	rotatedAt := received()
	waitFor("deliveries signed with the new secret", 60*time.Second, func() bool { return received() >= rotatedAt+100 })
	t.Logf("after the rotation: %d duplicates", rc.duplicates())

	// The database goes away and comes back.
	pg.Stop("immediate")
	time.Sleep(2 * time.Second)
	pg.Start()
	restartedAt := received()
	waitFor("deliveries after the database's return", 90*time.Second, func() bool { return received() >= restartedAt+100 })
	stopLoad()

	// Every acknowledged event arrives, none out of its entity's order.
	acked.mu.Lock()
	want := map[uuid.UUID]bool{}
	for _, ids := range acked.ids {
		for _, id := range ids {
			want[id] = true
		}
	}
	acked.mu.Unlock()
	missing := func() int {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		got := map[uuid.UUID]bool{}
		for _, e := range rc.events {
			got[e.EventID] = true
		}
		n := 0
		for id := range want {
			if !got[id] {
				n++
			}
		}
		return n
	}
	waitFor("every acknowledged event", 90*time.Second, func() bool { return missing() == 0 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.badSigs > 0 {
		t.Errorf("%d requests failed Standard Webhooks verification", rc.badSigs)
	}
	last := map[string]int64{}
	seen := map[uuid.UUID]bool{}
	dups := 0
	for _, e := range rc.events {
		if seen[e.EventID] {
			dups++
			continue
		}
		seen[e.EventID] = true
		if e.Version <= last[e.EntityID] {
			t.Errorf("%s: version %d arrived after version %d", e.EntityID, e.Version, last[e.EntityID])
		}
		last[e.EntityID] = e.Version
	}
	// Each failure may deliver again what was acknowledged in the last
	// quarter second (checkpoints are saved that often) and the batch in
	// flight: far less than the whole run.
	if dups > len(want)/4 {
		t.Errorf("%d duplicates of %d events: more than two failures explain", dups, len(want))
	}
	t.Logf("%d events acknowledged, %d delivered (%d duplicates, after the SIGKILL and the database restart), %d requests",
		len(want), len(rc.events), dups, rc.requests)
}

// The subscriptions API refuses what it must with a clear 400 (private
// destinations without Subscriptions.AllowPrivateDestinations, hostile
// fields), hides secrets after creation, and keeps tenants apart.
func TestSubscriptionsAPIRefusesAndIsolates(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + t.TempDir() + "/t.db"})
	create := func(body any, tenant string) response {
		return srv.do(t, "POST", "/api/v1/subscriptions", body, "X-Tenant-ID", tenant)
	}
	for _, tc := range []struct {
		name string
		body any
		want string
	}{
		{"loopback", map[string]any{"url": "https://127.0.0.1/hook"}, "loopback"},
		{"metadata", map[string]any{"url": "https://169.254.169.254/latest/meta-data"}, "metadata"},
		{"ipv4-mapped", map[string]any{"url": "https://[::ffff:10.0.0.1]/"}, "private"},
		{"localhost", map[string]any{"url": "https://localhost:8080/"}, "localhost"},
		{"http", map[string]any{"url": "http://hooks.example.com/"}, "https"},
		{"no url", map[string]any{"filter": map[string]any{}}, "url"},
		{"bad filter", map[string]any{"url": "https://93.184.216.34/", "filter": map[string]any{"entityIds": []string{"a*b"}}}, "entityIds"},
		{"control bytes", map[string]any{"url": "https://93.184.216.34/", "filter": map[string]any{"eventTypes": []string{"x\x00y"}}}, "eventTypes"},
		{"bad kind", map[string]any{"url": "https://93.184.216.34/", "filter": map[string]any{"integrationKinds": []string{"Nope"}}}, "integrationKinds"},
		{"bad batch", map[string]any{"url": "https://93.184.216.34/", "maxBatch": 5000}, "maxBatch"},
		{"bad start", map[string]any{"url": "https://93.184.216.34/", "start": "yesterday"}, "start"},
		{"unknown position", map[string]any{"url": "https://93.184.216.34/", "start": 999999}, "position"},
		{"bad secret", map[string]any{"url": "https://93.184.216.34/", "secret": "hunter2"}, "whsec_"},
		{"unknown field", map[string]any{"url": "https://93.184.216.34/", "callback": "x"}, "callback"},
	} {
		r := create(tc.body, "acme")
		if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: %d %s %s, want a 400 problem naming %q", tc.name, r.StatusCode, r.Header.Get("Content-Type"), r.Body, tc.want)
		}
	}
	// A public literal address passes (no request is made at creation).
	r := create(map[string]any{"url": "https://93.184.216.34/hook?token=abc", "filter": map[string]any{"entityTypes": []string{"container"}}}, "acme")
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, r.Body)
	}
	var sub struct{ ID, Secret string }
	r.JSON(t, &sub)
	got := srv.do(t, "GET", "/api/v1/subscriptions/"+sub.ID, nil, "X-Tenant-ID", "acme")
	if got.StatusCode != 200 || strings.Contains(string(got.Body), sub.Secret) || !strings.Contains(string(got.Body), `"status":"active"`) {
		t.Fatalf("get: %d %s", got.StatusCode, got.Body)
	}
	if r := srv.do(t, "GET", "/api/v1/subscriptions/"+sub.ID, nil, "X-Tenant-ID", "other"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("another tenant reads the subscription: %d", r.StatusCode)
	}
	if r := srv.do(t, "DELETE", "/api/v1/subscriptions/"+sub.ID, nil, "X-Tenant-ID", "other"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("another tenant deletes the subscription: %d", r.StatusCode)
	}
	if r := srv.do(t, "POST", "/api/v1/subscriptions/"+sub.ID+"/pause", nil, "X-Tenant-ID", "acme"); r.StatusCode != 200 ||
		!strings.Contains(string(r.Body), `"status":"paused"`) {
		t.Fatalf("pause: %d %s", r.StatusCode, r.Body)
	}
	if r := srv.do(t, "POST", "/api/v1/subscriptions/"+sub.ID+"/replay", map[string]any{"toPosition": 1}, "X-Tenant-ID", "acme"); r.StatusCode != 400 {
		t.Fatalf("replay without a start: %d %s", r.StatusCode, r.Body)
	}
	if r := srv.do(t, "DELETE", "/api/v1/subscriptions/"+sub.ID, nil, "X-Tenant-ID", "acme"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
	}
}
