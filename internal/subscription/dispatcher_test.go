package subscription_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/subscription/destination"
	"github.com/tlm/tracktrace/internal/tracking"
)

// receiver is a webhook endpoint under test: it verifies every request
// with the Standard Webhooks library and keeps what it accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	secrets  []string
	answer   func(r *http.Request) (int, http.Header) // nil: 204
	accepted []subscription.Event
	attempts int
	ids      []string // webhook-id of each accepted request
	bodies   int
	badSigs  int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if rc.answer != nil {
		if status, h := rc.answer(r); status != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return
		}
	}
	verified := false
	for _, s := range rc.secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			rc.t.Errorf("secret %q: %v", s, err)
			continue
		}
		// The dispatcher's clock is fake: the timestamp is checked against it below.
		if wh.VerifyIgnoringTimestamp(body, r.Header) == nil {
			verified = true
		}
	}
	if !verified {
		rc.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var got struct {
		Events []subscription.Event `json:"events"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		rc.t.Errorf("body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.accepted = append(rc.accepted, got.Events...)
	rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
	rc.bodies++
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) setAnswer(f func(r *http.Request) (int, http.Header)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = f
}

func (rc *receiver) setSecrets(secrets ...string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secrets = secrets
}

func (rc *receiver) snapshot() (accepted []subscription.Event, attempts int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.accepted), rc.attempts
}

type env struct {
	t      *testing.T
	ctx    context.Context
	store  *sqlite.Store
	views  *readmodel.Store
	clock  *clockwork.FakeClock
	svc    *subscription.Service
	disp   *subscription.Dispatcher
	tenant string
}

// newEnv starts a dispatcher and a service on a fresh SQLite store, with a
// fake clock; configure, when given, changes the env (its clock) and the
// dispatcher's options first.
func newEnv(t *testing.T, configure ...func(*env, *subscription.Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, "file:"+filepath.Join(t.TempDir(), "s.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	views, err := sqlite.OpenReadModels(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	sealer, err := subscription.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	policy := destination.Policy{AllowPrivate: true}
	e := &env{t: t, ctx: ctx, store: store, views: views, clock: clock, tenant: "acme"}
	opts := subscription.Options{Changes: func() subscription.Changes { return tracking.NewDeriver(store, 100) },
		Client: policy.Client(5 * time.Second), Refresh: time.Hour, Interval: time.Hour}
	for _, c := range configure {
		c(e, &opts)
	}
	opts.Clock = e.clock
	e.disp = subscription.NewDispatcher(views, sealer, store, views, opts)
	e.svc = subscription.NewService(views, sealer, policy, store, subscription.ServiceOptions{Clock: e.clock, Notify: e.disp.Notify})
	done := make(chan struct{})
	go func() { defer close(done); e.disp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		views.Close()
		store.Close()
	})
	return e
}

// append records n events on an entity, one append each.
func (e *env) append(entity, entityType string, n int) []eventstore.AppendedEvent {
	e.t.Helper()
	var out []eventstore.AppendedEvent
	for range n {
		res, err := e.store.Append(e.ctx, eventstore.AppendRequest{Tenant: e.tenant, StreamID: entity, EntityType: entityType,
			Expected: eventstore.Any, Events: []eventstore.Event{{ID: uuid.New(), Type: "LocationUpdated", SchemaVersion: 1,
				Data: json.RawMessage(`{"location":{"lat":1,"lon":2}}`), OccurredAt: e.clock.Now()}}})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, res.Events...)
	}
	return out
}

// eventually polls cond (real time) for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) get(id string) subscription.Subscription {
	e.t.Helper()
	s, err := e.svc.Get(e.ctx, e.tenant, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// perEntityInOrder checks that the first arrival of each event keeps its
// entity's version order, and returns the events by id.
func perEntityInOrder(t *testing.T, got []subscription.Event) map[uuid.UUID]int {
	t.Helper()
	last := map[string]int64{}
	seen := map[uuid.UUID]int{}
	for _, ev := range got {
		seen[ev.EventID]++
		if seen[ev.EventID] > 1 {
			continue
		}
		if ev.Version <= last[ev.EntityID] {
			t.Fatalf("%s: version %d arrived after %d", ev.EntityID, ev.Version, last[ev.EntityID])
		}
		last[ev.EntityID] = ev.Version
	}
	return seen
}

func TestDeliversSignedEventsInOrderAcrossAnOutage(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	e.append("before-1", "shipment", 2) // stored before: not delivered from "now"
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL + "/hook", MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecrets(sub.Secrets[0].String())

	var want []eventstore.AppendedEvent
	for i := range 3 {
		want = append(want, e.append(fmt.Sprintf("ship-%d", i), "shipment", 10)...)
	}
	eventually(t, "the first 30 events", func() bool { got, _ := rc.snapshot(); return len(got) == 30 })

	// The receiver goes down for 10 minutes (of the dispatcher's clock).
	rc.setAnswer(func(*http.Request) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	want = append(want, e.append("ship-0", "shipment", 5)...)
	want = append(want, e.append("ship-9", "shipment", 5)...)
	start := e.clock.Now()
	for e.clock.Since(start) < 10*time.Minute {
		_, before := rc.snapshot()
		next := waitNextAttempt(t, e, sub.ID, e.clock.Now())
		e.clock.Advance(next.Sub(e.clock.Now()))
		eventually(t, "another attempt", func() bool { _, n := rc.snapshot(); return n > before })
	}
	s := e.get(sub.ID)
	if s.FailingSince == nil || s.Attempts < 5 || !strings.Contains(s.LastError, "503") {
		t.Fatalf("after 10 minutes down: failing since %v, %d attempts, last error %q", s.FailingSince, s.Attempts, s.LastError)
	}
	rc.setAnswer(nil)
	next := waitNextAttempt(t, e, sub.ID, e.clock.Now())
	e.clock.Advance(next.Sub(e.clock.Now()))
	eventually(t, "every event", func() bool { got, _ := rc.snapshot(); return len(got) == len(want) })

	got, _ := rc.snapshot()
	seen := perEntityInOrder(t, got)
	for _, w := range want {
		if seen[w.ID] != 1 {
			t.Errorf("event %s (position %d) delivered %d times", w.ID, w.Position, seen[w.ID])
		}
	}
	rc.mu.Lock()
	bad := rc.badSigs
	rc.mu.Unlock()
	if bad != 0 {
		t.Errorf("%d requests failed signature verification", bad)
	}
	eventually(t, "the checkpoint", func() bool {
		s := e.get(sub.ID)
		return s.Delivered == int64(len(want)) && s.FailingSince == nil && s.Position == want[len(want)-1].Position
	})
	// The delivery log has the failed attempts and the successes.
	eventually(t, "the delivery log", func() bool {
		ds, err := e.svc.Deliveries(e.ctx, e.tenant, sub.ID, time.Time{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, d := range ds {
			if d.Status == http.StatusServiceUnavailable {
				failed++
			}
		}
		return failed >= 5 && len(ds) > failed
	})
}

// waitNextAttempt waits until the subscription's next attempt is scheduled
// after `after` (an attempt at `after` schedules the next one later) and
// returns it.
func waitNextAttempt(t *testing.T, e *env, id string, after time.Time) time.Time {
	t.Helper()
	var next time.Time
	eventually(t, "a scheduled retry", func() bool {
		s := e.get(id)
		if s.NextAttemptAt != nil && s.NextAttemptAt.After(after) {
			next = *s.NextAttemptAt
			return true
		}
		return false
	})
	return next
}

func TestRetryScheduleThenSuspensionAfter72Hours(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	rc.setAnswer(func(*http.Request) (int, http.Header) { return http.StatusInternalServerError, nil })
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.append("s-1", "shipment", 1)
	eventually(t, "the first attempt", func() bool { _, n := rc.snapshot(); return n == 1 })
	first := e.clock.Now()
	var waits []time.Duration
	for attempt := 1; ; attempt++ {
		s := e.get(sub.ID)
		if s.Status == subscription.StatusSuspended {
			break
		}
		prev := e.clock.Now()
		next := waitNextAttempt(t, e, sub.ID, prev)
		waits = append(waits, next.Sub(prev))
		e.clock.Advance(next.Sub(prev))
		eventually(t, "the next attempt", func() bool {
			_, n := rc.snapshot()
			s := e.get(sub.ID)
			return n > attempt && (s.Status == subscription.StatusSuspended ||
				s.Attempts > attempt && s.NextAttemptAt != nil && s.NextAttemptAt.After(e.clock.Now()))
		})
		if attempt > 200 {
			t.Fatal("never suspended")
		}
	}
	// Doubling from 5 s with jitter (75–100 %), capped at an hour.
	for i, w := range waits[:len(waits)-1] {
		ceiling := min(5*time.Second<<min(i, 20), time.Hour)
		if w < ceiling*3/4-time.Microsecond || w > ceiling {
			t.Errorf("wait %d: %v, want between %v and %v", i+1, w, ceiling*3/4, ceiling)
		}
	}
	s := e.get(sub.ID)
	if elapsed := e.clock.Since(first); elapsed < 72*time.Hour || elapsed > 73*time.Hour {
		t.Errorf("suspended after %v of retries, want 72 h", elapsed)
	}
	if !strings.Contains(s.Reason, "72h") || !strings.Contains(s.Reason, "500") {
		t.Errorf("reason %q", s.Reason)
	}
	t.Logf("%d attempts over %v; reason: %s", len(waits)+1, e.clock.Since(first), s.Reason)
	// Suspended: no more attempts however long we wait.
	_, n := rc.snapshot()
	e.clock.Advance(24 * time.Hour)
	time.Sleep(50 * time.Millisecond)
	if _, m := rc.snapshot(); m != n {
		t.Fatalf("a suspended subscription made %d more attempts", m-n)
	}
	// Resumed, it delivers what it kept.
	rc.setAnswer(nil)
	rc.setSecrets(sub.Secrets[0].String())
	if _, err := e.svc.Resume(e.ctx, e.tenant, sub.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after resume", func() bool { got, _ := rc.snapshot(); return len(got) == 1 })
}

func TestRetryAfterAndGone(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	rc.setAnswer(func(*http.Request) (int, http.Header) {
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"120"}}
	})
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.append("s-1", "shipment", 1)
	now := e.clock.Now()
	next := waitNextAttempt(t, e, sub.ID, now)
	if d := next.Sub(now); d != 120*time.Second {
		t.Fatalf("after 429 with Retry-After: 120 the next attempt is in %v", d)
	}
	rc.setAnswer(func(*http.Request) (int, http.Header) { return http.StatusGone, nil })
	e.clock.Advance(next.Sub(now))
	eventually(t, "suspension on 410", func() bool { return e.get(sub.ID).Status == subscription.StatusSuspended })
	if r := e.get(sub.ID).Reason; !strings.Contains(r, "410") {
		t.Fatalf("reason %q", r)
	}
}

func TestFiltersAndTenants(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL, MaxBatch: 100,
		Filter: subscription.Filter{EntityTypes: []string{"container"}, EntityIDs: []string{"MSCU*", "TGHU1234567"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecrets(sub.Secrets[0].String())
	e.append("MSCU0000001", "container", 2) // yes
	e.append("MSCU0000002", "shipment", 2)  // wrong type
	e.append("TGHU1234567", "container", 1) // yes, by id
	e.append("TGHU7654321", "container", 1) // neither
	other := e.tenant
	e.tenant = "other"
	e.append("MSCU0000003", "container", 3) // another tenant's
	e.tenant = other
	e.append("MSCU0000004", "container", 1) // yes
	eventually(t, "the matching events", func() bool { got, _ := rc.snapshot(); return len(got) >= 4 })
	time.Sleep(50 * time.Millisecond)
	got, _ := rc.snapshot()
	var ids []string
	for _, ev := range got {
		ids = append(ids, fmt.Sprintf("%s/%d", ev.EntityID, ev.Version))
	}
	if want := []string{"MSCU0000001/1", "MSCU0000001/2", "TGHU1234567/1", "MSCU0000004/1"}; !slices.Equal(ids, want) {
		t.Fatalf("delivered %v, want %v", ids, want)
	}
}

func TestReplayDeliversTheRangeAgain(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecrets(sub.Secrets[0].String())
	evs := e.append("s-1", "shipment", 10)
	eventually(t, "10 events", func() bool { got, _ := rc.snapshot(); return len(got) == 10 })
	if _, err := e.svc.Replay(e.ctx, e.tenant, sub.ID, subscription.ReplayRange{FromPosition: evs[3].Position, ToPosition: evs[6].Position}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replay", func() bool { got, _ := rc.snapshot(); return len(got) == 14 })
	more := e.append("s-1", "shipment", 1)
	eventually(t, "the next event", func() bool { got, _ := rc.snapshot(); return len(got) == 15 })
	got, _ := rc.snapshot()
	var versions []int64
	for _, ev := range got[10:] {
		versions = append(versions, ev.Version)
	}
	if want := []int64{4, 5, 6, 7, 11}; !slices.Equal(versions, want) {
		t.Fatalf("after the replay: versions %v, want %v", versions, want)
	}
	if got[14].EventID != more[0].ID {
		t.Fatal("the live event after the replay is not the new one")
	}
	eventually(t, "the replay's end", func() bool { return e.get(sub.ID).Replay == nil })
	// A replay from a position that is another tenant's is refused.
	e.tenant = "other"
	theirs := e.append("x", "shipment", 1)
	e.tenant = "acme"
	if _, err := e.svc.Replay(e.ctx, e.tenant, sub.ID, subscription.ReplayRange{FromPosition: theirs[0].Position}); err == nil {
		t.Fatal("a replay from another tenant's position was accepted")
	}
}

func TestSecretRotationKeepsTheOldSecretForItsGrace(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	old := sub.Secrets[0].String()
	_, fresh, err := e.svc.Rotate(e.ctx, e.tenant, sub.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	// A receiver that knows only the old secret, then only the new one,
	// accepts during the grace period.
	for _, known := range []string{old, fresh.String()} {
		rc.setSecrets(known)
		before, _ := rc.snapshot()
		e.append("s-1", "shipment", 1)
		eventually(t, "delivery signed for "+known[:10], func() bool { got, _ := rc.snapshot(); return len(got) == len(before)+1 })
	}
	// After the grace period only the new secret signs.
	e.clock.Advance(25 * time.Hour)
	rc.setSecrets(old)
	e.append("s-1", "shipment", 1)
	eventually(t, "a refused signature", func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.badSigs > 0 })
	rc.setSecrets(fresh.String())
	next := waitNextAttempt(t, e, sub.ID, e.clock.Now())
	e.clock.Advance(next.Sub(e.clock.Now()))
	eventually(t, "delivery with the new secret", func() bool { got, _ := rc.snapshot(); return len(got) == 3 })
}

func TestIntegrationKindsDeliverOnlyStateChanges(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t)
	sub, err := e.svc.Create(e.ctx, e.tenant, subscription.Definition{URL: rc.srv.URL, MaxBatch: 10, StatusChanges: true})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecrets(sub.Secrets[0].String())
	at := e.clock.Now().Add(-time.Hour)
	record := func(typ, data string) {
		t.Helper()
		at = at.Add(time.Minute)
		if _, err := e.store.Append(e.ctx, eventstore.AppendRequest{Tenant: e.tenant, StreamID: "SHP-1", EntityType: "shipment",
			Expected: eventstore.Any, Events: []eventstore.Event{{ID: uuid.New(), Type: typ, SchemaVersion: 1,
				Data: json.RawMessage(data), OccurredAt: at}}}); err != nil {
			t.Fatal(err)
		}
	}
	record(tracking.TypeMilestoneReached, `{"milestone":"picked_up"}`) // registered → picked up: a change
	record(tracking.TypeLocationReported, `{"lat":52.1,"lon":4.3}`)    // no change
	record(tracking.TypeMilestoneReached, `{"milestone":"delivered"}`) // a change
	record(tracking.TypeLocationReported, `{"lat":52.2,"lon":4.4}`)    // no change
	eventually(t, "two status changes", func() bool { got, _ := rc.snapshot(); return len(got) >= 2 })
	time.Sleep(50 * time.Millisecond)
	got, _ := rc.snapshot()
	if len(got) != 2 || got[0].Version != 1 || got[1].Version != 3 {
		t.Fatalf("delivered %+v, want versions 1 and 3", got)
	}
	for _, ev := range got {
		if len(ev.Integration) != 1 || ev.Integration[0].Kind != tracking.IntegrationEntityStatusChanged || ev.Integration[0].Status == "" {
			t.Fatalf("event %d carries %+v", ev.Version, ev.Integration)
		}
	}
	if got[1].Integration[0].PreviousStatus == "" || got[1].Integration[0].Status == got[1].Integration[0].PreviousStatus {
		t.Fatalf("the second change is %+v", got[1].Integration[0])
	}
}
