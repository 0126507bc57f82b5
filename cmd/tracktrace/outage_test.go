package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/cache/redistest"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// The database restarts (an immediate shutdown, as a crash) while 16 clients
// append: requests fail fast with 503 and Retry-After, none outlasts the
// request timeout, /health/ready reports the outage, the service recovers by
// itself after the database's return (how fast is logged), and nothing
// acknowledged is lost.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	const requestTimeout = 5 * time.Second
	srv := startServer(t, []string{"ConnectionStrings__EventStore=" + pg.DSN(), "Server__RequestTimeout=00:00:05",
		"ReadModels__RefreshInterval=00:00:01"})
	var target atomic.Pointer[string]
	target.Store(&srv.URL)
	acked := &ackLog{}
	stop := make(chan struct{})
	load := appendLoad(t, 16, "DBR", &target, acked, stop, 503)
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()

	waitAcked := func(what string, atLeast int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for acked.count() < atLeast {
			if time.Since(start) > within {
				t.Fatalf("%s: %d events acknowledged after %s, want %d", what, acked.count(), within, atLeast)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	ready := func() int {
		r, err := srv.tryDo("GET", "/health/ready", nil)
		if err != nil {
			t.Fatalf("/health/ready: %v", err)
		}
		return r.StatusCode
	}
	waitAcked("before the outage", 200, 30*time.Second)

	pg.Stop("immediate")
	down := time.Now()
	// /health/ready reports the outage; /health/live does not restart a
	// process that only waits for its database.
	for ready() != 503 {
		if time.Since(down) > 60*time.Second {
			t.Fatal("/health/ready still 200 60 s into the database outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := srv.tryDo("GET", "/health/live", nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("/health/live during the outage: %v %d", err, r.StatusCode)
	}
	time.Sleep(3 * time.Second) // clients keep sending into the outage
	acked.mu.Lock()
	during503 := acked.statuses[503]
	acked.mu.Unlock()
	if during503 == 0 {
		t.Fatal("no request was answered 503 during the outage")
	}

	pg.Start()
	back := time.Now()
	// Deadlines are generous (a loaded machine is slow); how fast it
	// recovered is logged as a figure (RELIABILITY.md keeps them).
	recovered := waitAcked("after the database's return", acked.count()+50, 60*time.Second)
	for ready() != 200 {
		if time.Since(back) > 60*time.Second {
			t.Fatal("/health/ready not 200 within 60 s of the database's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	readyAfter := time.Since(back)
	waitAcked("with the database back", acked.count()+200, 30*time.Second)
	stopLoad()

	acked.mu.Lock()
	slowest, noRetryAfter, statuses, failed := acked.slowest, acked.noRetryAfter, fmt.Sprint(acked.statuses), acked.failed
	acked.mu.Unlock()
	// Bounded, not fast: no request hangs past its timeout (with room for
	// a loaded machine's queueing).
	if slowest > 3*requestTimeout {
		t.Errorf("a request took %s, far beyond the request timeout %s", slowest, requestTimeout)
	}
	if noRetryAfter > 0 {
		t.Errorf("%d responses 503 without Retry-After", noRetryAfter)
	}
	if failed > 0 {
		t.Errorf("%d requests got no response", failed)
	}
	checkAcknowledged(t, srv, acked)
	t.Logf("database down %s; appends acknowledged again %s and ready %s after its return; responses %s; slowest request %s; %d events acknowledged, all stored",
		back.Sub(down).Round(time.Millisecond), recovered.Round(time.Millisecond), readyAfter.Round(time.Millisecond),
		statuses, slowest.Round(time.Millisecond), acked.count())
}

// The Kafka broker is away for 30 s while 16 clients append: appends are
// unaffected, the relay backlog shows in /metrics and drains once the broker
// is back, and the topic then holds every stored event exactly once.
func TestBrokerOutageUnderLoad(t *testing.T) {
	t.Parallel()
	outage := 30 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dataDir := t.TempDir()
	startBroker := func() *kfake.Cluster {
		t.Helper()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	broker := startBroker()
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", port)
	db := filepath.Join(t.TempDir(), "t.db")
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + db, "Kafka__BootstrapServers=" + brokerAddr,
		"ReadModels__RefreshInterval=00:00:01"})
	var target atomic.Pointer[string]
	target.Store(&srv.URL)
	acked := &ackLog{}
	stop := make(chan struct{})
	load := appendLoad(t, 16, "BRK", &target, acked, stop)
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()
	loadUp := time.Now()
	for acked.count() < 100 {
		if time.Since(loadUp) > 60*time.Second {
			t.Fatalf("only %d appends acknowledged in 60 s before the broker outage", acked.count())
		}
		time.Sleep(10 * time.Millisecond)
	}

	broker.Close()
	down := time.Now()
	before := acked.count()
	maxBacklog := 0.0
	for time.Since(down) < outage {
		time.Sleep(500 * time.Millisecond)
		maxBacklog = max(maxBacklog, scrape(t, srv)["tracktrace_relay_backlog_events"])
	}
	during := acked.count() - before
	if during < 100 {
		t.Fatalf("only %d events acknowledged during the %s broker outage", during, outage)
	}
	if maxBacklog == 0 {
		t.Fatal("tracktrace_relay_backlog_events stayed 0 during the outage")
	}
	broker = startBroker()
	t.Cleanup(broker.Close)
	stopLoad()

	back := time.Now()
	for {
		if b, ok := scrape(t, srv)["tracktrace_relay_backlog_events"]; ok && b == 0 {
			break
		}
		if time.Since(back) > 60*time.Second {
			t.Fatal("the relay backlog did not drain within 60 s of the broker's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(back)

	// Every stored event is on the topic exactly once.
	stored := map[uuid.UUID]bool{}
	acked.mu.Lock()
	entities := make([]string, 0, len(acked.ids))
	for e := range acked.ids {
		entities = append(entities, e)
	}
	acked.mu.Unlock()
	for _, e := range entities {
		for from := int64(1); ; {
			var page struct {
				Events []struct {
					EventID uuid.UUID
					Version int64
				}
			}
			srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/%s/events?fromVersion=%d&limit=1000", e, from), nil).JSON(t, &page)
			for _, ev := range page.Events {
				stored[ev.EventID] = true
				from = ev.Version + 1
			}
			if len(page.Events) < 1000 {
				break
			}
		}
	}
	onTopic := topicEventIDs(t, []string{brokerAddr}, "corporate.tracktrace.events", stored)
	for id, n := range onTopic {
		if n != 1 {
			t.Errorf("event %s is on the topic %d times", id, n)
		}
		if !stored[id] {
			t.Errorf("event %s is on the topic but not stored", id)
		}
	}
	for id := range stored {
		if onTopic[id] == 0 {
			t.Errorf("stored event %s is not on the topic", id)
		}
	}
	checkAcknowledged(t, srv, acked)
	t.Logf("broker away %s: %d events acknowledged meanwhile, backlog peaked at %.0f, drained %s after its return; topic = store (%d events)",
		outage, during, maxBacklog, drained.Round(time.Millisecond), len(stored))
}

// cloudEventID returns the id of a structured-mode CloudEvent.
func cloudEventID(r *kgo.Record) (uuid.UUID, error) {
	var ce struct{ ID string }
	if err := json.Unmarshal(r.Value, &ce); err != nil {
		return uuid.Nil, fmt.Errorf("not a structured CloudEvent: %w", err)
	}
	return uuid.Parse(ce.ID)
}

// Poison on the projection feed (the domain topic) and on the ingest topic
// ends in each topic's dead-letter topic, and each partition goes on: the
// events behind the poison are applied and ingested.
func TestPoisonMessagesEndInDeadLetterTopics(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	const domain, ingest = "corporate.tracktrace.events", "tracktrace.ingest"
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=" + strings.Join(brokers, ","), "Kafka__Topics__Ingest=" + ingest,
		"ReadModels__RefreshInterval=00:00:01"})
	appendOne := func(minute int) { t.Helper(); appendLocation(t, srv, "P-1", minute) }
	timelineAt := func(v int) {
		t.Helper()
		var tl struct{ ProjectedVersion int64 }
		srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/P-1/timeline?minVersion=%d", v), nil).JSON(t, &tl)
		if tl.ProjectedVersion != int64(v) {
			t.Fatalf("Kafka-fed timeline at version %d, want %d", tl.ProjectedVersion, v)
		}
	}
	appendOne(0)
	timelineAt(1)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	valid := `{"entityId":"ING-1","entityType":"package","events":[{"type":"EntityRegistered","occurredAt":"` + at(0) + `","data":{}}]}`
	if err := cl.ProduceSync(t.Context(),
		// Same key as P-1's events: the same partition as the events after it.
		&kgo.Record{Topic: domain, Key: []byte("default/P-1"), Value: []byte("not a CloudEvent")},
		&kgo.Record{Topic: ingest, Key: []byte("ING-1"), Value: []byte(`{"entityId":`)},
		&kgo.Record{Topic: ingest, Key: []byte("ING-1"), Value: []byte(valid)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	appendOne(1)
	timelineAt(2) // the projection partition went on past the poison

	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := srv.tryDo("GET", "/api/v1/entities/ING-1?consistent=true", nil)
		if err == nil && r.StatusCode == 200 {
			break // the ingest partition went on past the poison
		}
		if time.Now().After(deadline) {
			t.Fatal("the valid ingest message behind the poison was not recorded within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, topic := range []string{domain, ingest} {
		rec := consumeOne(t, brokers, topic+".dlq")
		headers := map[string]string{}
		for _, h := range rec.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers["dlq-original-topic"] != topic || headers["dlq-error"] == "" {
			t.Errorf("%s.dlq record headers %v, want the original topic and the error", topic, headers)
		}
	}
}

// consumeOne returns the first record of a topic (waiting up to 20 s);
// opts add to the reader's options (TLS, SASL).
func consumeOne(t *testing.T, brokers []string, topic string, opts ...kgo.Opt) *kgo.Record {
	t.Helper()
	cl := topicReader(t, brokers, topic, opts...)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if recs := cl.PollFetches(ctx).Records(); len(recs) > 0 {
			return recs[0]
		}
	}
	t.Fatalf("no record on %s within 20 s", topic)
	return nil
}

// Redis, the shared cache, goes away: reads are served from the read models
// without it, appends go on, and /health/live stays up.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	addr, stopRedis := redistest.Start(t)
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"ConnectionStrings__Redis=" + addr})
	appendOne := func(minute int) { t.Helper(); appendLocation(t, srv, "R-1", minute) }
	read := func(version int) {
		t.Helper()
		var st struct{ Version int64 }
		srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/R-1?minVersion=%d", version), nil).JSON(t, &st)
		var tl struct{ ProjectedVersion int64 }
		srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/R-1/timeline?minVersion=%d", version), nil).JSON(t, &tl)
		if st.Version != int64(version) || tl.ProjectedVersion != int64(version) {
			t.Fatalf("entity at version %d, timeline at %d; want %d", st.Version, tl.ProjectedVersion, version)
		}
	}
	appendOne(0)
	read(1)
	read(1) // the cache is warm now
	// serve really caches in Redis: its keys are there, and reads hit them.
	rc := redis.NewClient(&redis.Options{Addr: addr})
	keys, err := rc.Keys(t.Context(), "tracktrace:*").Result()
	rc.Close()
	if err != nil || len(keys) == 0 {
		t.Fatalf("Redis holds no tracktrace keys after cached reads (%v): serve does not use it", err)
	}
	if hits := sum(scrape(t, srv), "tracktrace_cache_requests_total", `result="hit"`); hits == 0 {
		t.Fatal("no cache hit counted after repeated reads")
	}
	checks := func() map[string]string {
		var h struct {
			Checks []struct{ Name, Status string }
		}
		r := srv.do(t, "GET", "/health/ready", nil)
		if r.StatusCode != 200 {
			t.Fatalf("/health/ready: %d %s (the cache is optional: the pod stays ready)", r.StatusCode, r.Body)
		}
		r.JSON(t, &h)
		out := map[string]string{}
		for _, c := range h.Checks {
			out[c.Name] = c.Status
		}
		return out
	}
	if st := checks()["cache"]; st != "Healthy" {
		t.Fatalf("cache check with Redis up: %q", st)
	}
	stopRedis()
	read(1)
	appendOne(1)
	read(2)
	if r := srv.do(t, "GET", "/health/live", nil); r.StatusCode != 200 {
		t.Fatalf("/health/live without Redis: %d", r.StatusCode)
	}
	if st := checks()["cache"]; st == "Healthy" || st == "" {
		t.Errorf("cache check without Redis: %q, want it reported unhealthy", st)
	}
}

// topicReader returns a client reading a topic from its start, closed at the
// test's end; opts add to its options (TLS, SASL).
func topicReader(t *testing.T, brokers []string, topic string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// appendLocation records one location fix of a container, minute minutes
// after the tests' base time.
func appendLocation(t *testing.T, srv *server, entity string, minute int) {
	t.Helper()
	r := srv.do(t, "POST", "/api/v1/entities/"+entity+"/events", map[string]any{"entityType": "container",
		"events": []any{ev("LocationReported", time.Duration(minute)*time.Minute, `{"lat":1,"lon":2}`)}})
	if r.StatusCode != 201 {
		t.Fatalf("append: %d %s", r.StatusCode, r.Body)
	}
}
