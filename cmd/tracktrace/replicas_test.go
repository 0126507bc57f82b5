package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// The production shape: three `tracktrace serve` processes on one
// PostgreSQL database and one Kafka-protocol broker, with load on all three.
// Each follower of the log (the projections, the Kafka relay) leads on
// exactly one replica; SIGKILL of the replica that leads them, under load,
// hands them to another; with the Kafka feed the consumer group rebalances
// the killed member's partitions. Afterwards every acknowledged event is
// stored once, the domain topic holds every stored event (at least once: a
// relay killed between the broker's acknowledgement and its checkpoint
// publishes a batch again), every surviving replica answers every entity at
// its latest version, and the read models equal a rebuild from the log.
func TestReplicas(t *testing.T) {
	t.Parallel()
	for _, feed := range []string{"log", "kafka"} {
		t.Run(feed, func(t *testing.T) { testReplicas(t, feed) })
	}
}

func testReplicas(t *testing.T, feed string) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	dsn := pgtest.NewDatabase(t)
	env := []string{"ConnectionStrings__EventStore=" + dsn, "Kafka__BootstrapServers=" + strings.Join(brokers, ","),
		"ReadModels__Feed=" + feed, "ReadModels__RefreshInterval=00:00:01",
		// A killed member's partitions move to the others after this.
		"Kafka__Consumer__SessionTimeout=00:00:06"}
	const n = 3
	replicas := make([]*process, n)
	for i := range replicas {
		replicas[i] = startProcess(t, env)
	}
	alive := func() []*process {
		return slices.DeleteFunc(slices.Clone(replicas), func(p *process) bool { return p == nil })
	}

	// Appends on every replica; reads on every replica, which fill each
	// one's response cache.
	acked := &ackLog{}
	stop := make(chan struct{})
	targets := make([]atomic.Pointer[string], n)
	var loads []*sync.WaitGroup
	for i, p := range replicas {
		targets[i].Store(&p.URL)
		loads = append(loads, appendLoad(t, 4, fmt.Sprintf("REP%d", i), &targets[i], acked, stop, 503))
	}
	var readers sync.WaitGroup
	var urls atomic.Pointer[[]string]
	setURLs := func() {
		var u []string
		for _, p := range alive() {
			u = append(u, p.URL)
		}
		urls.Store(&u)
	}
	setURLs()
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				u := *urls.Load()
				entity := fmt.Sprintf("REP%d-%d-%d", rand.IntN(n), rand.IntN(4), rand.IntN(4))
				path := "/api/v1/entities/" + entity
				if rand.IntN(2) == 0 {
					path += "/timeline"
				}
				r, err := (&server{URL: u[rand.IntN(len(u))]}).tryDo("GET", path, nil)
				if err == nil && r.StatusCode != 200 && r.StatusCode != 404 {
					t.Errorf("GET %s: %d %s", path, r.StatusCode, r.Body)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		for _, l := range loads {
			l.Wait()
		}
		readers.Wait()
	})
	defer stopLoad()
	waitAcked := func(more int) {
		t.Helper()
		want := acked.count() + more
		for deadline := time.Now().Add(60 * time.Second); acked.count() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d appends acknowledged within 60 s", acked.count(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(300)

	followers := []string{"kafka-relay"}
	if feed == "log" {
		followers = append(followers, "projections")
	}
	leaders := waitLeaders(t, replicas, followers)
	if feed == "kafka" {
		waitGroupMembers(t, brokers, n)
	}

	// Kill the replica leading the relay (and, fed by the log, the
	// projections: the first replica started takes both) under load; its
	// clients move to the next replica.
	victim := leaders["kafka-relay"]
	t.Logf("killing replica %d (leads %v) after %d acknowledged events", victim, leaders, acked.count())
	replicas[victim].kill()
	replicas[victim] = nil
	next := (victim + 1) % n
	targets[victim].Store(targets[next].Load())
	setURLs()
	after := waitLeaders(t, replicas, followers)
	for f, i := range after {
		if i == victim {
			t.Errorf("%s still led by the killed replica", f)
		}
	}
	if feed == "kafka" {
		waitGroupMembers(t, brokers, n-1)
	}
	waitAcked(300)
	stopLoad()

	// Caught up: the relay's backlog and the projections' lag are drained.
	survivor := alive()[0]
	waitUntil(t, "the relay backlog and the projection lag to drain", func() bool {
		m := scrape(t, survivor)
		return m["tracktrace_relay_backlog_events"] == 0 && sum(m, "tracktrace_projection_lag_events") == 0
	})
	checkAcknowledged(t, survivor, acked)
	stored := storedEventIDs(t, dsn)
	onTopic := topicEventIDs(t, brokers, "corporate.tracktrace.events", stored)
	dups := 0
	for id, k := range onTopic {
		if !stored[id] {
			t.Errorf("event %s is on the topic but not stored", id)
		}
		dups += k - 1
	}
	for id := range stored {
		if onTopic[id] == 0 {
			t.Errorf("stored event %s is not on the topic", id)
		}
	}
	// Every replica answers every entity at its latest version, whatever
	// its response cache held before the last events.
	acked.mu.Lock()
	entities := make([]string, 0, len(acked.ids))
	for e := range acked.ids {
		entities = append(entities, e)
	}
	acked.mu.Unlock()
	for _, e := range entities {
		var latest struct{ Version int64 }
		r, err := survivor.tryDo("GET", "/api/v1/entities/"+e+"?consistent=true", nil)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %v %d", e, err, r.StatusCode)
		}
		r.JSON(t, &latest)
		for _, p := range alive() {
			var got struct{ Version int64 }
			r, err := p.tryDo("GET", "/api/v1/entities/"+e, nil)
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("GET %s: %v %d", e, err, r.StatusCode)
			}
			r.JSON(t, &got)
			var tl struct{ ProjectedVersion int64 }
			r, err = p.tryDo("GET", "/api/v1/entities/"+e+"/timeline", nil)
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("GET %s/timeline: %v %d", e, err, r.StatusCode)
			}
			r.JSON(t, &tl)
			if got.Version != latest.Version || tl.ProjectedVersion != latest.Version {
				t.Errorf("%s on %s: entity at version %d, timeline at %d; the store is at %d",
					e, p.URL, got.Version, tl.ProjectedVersion, latest.Version)
			}
		}
	}
	for _, p := range alive() {
		p.terminate(t, 20*time.Second)
	}
	checkReadModelsEqualRebuild(t, postgresFaultEngine(dsn))
	t.Logf("%d acknowledged events (%d stored) on %d replicas, one killed: all stored once, on the topic (%d duplicates), read models equal a rebuild",
		acked.count(), len(stored), n, dups)
}

// waitLeaders waits until each follower is led by exactly one of the
// running replicas (nil: killed), by tracktrace_follower_active, and
// returns the leader's index, by follower.
func waitLeaders(t *testing.T, replicas []*process, followers []string) map[string]int {
	t.Helper()
	var got map[string][]int
	for deadline := time.Now().Add(30 * time.Second); ; {
		got = map[string][]int{}
		for i, p := range replicas {
			if p == nil {
				continue
			}
			m := scrape(t, p)
			for _, f := range followers {
				if m[`tracktrace_follower_active{follower="`+f+`"}`] == 1 {
					got[f] = append(got[f], i)
				}
			}
		}
		one := true
		for _, f := range followers {
			one = one && len(got[f]) == 1
		}
		if one {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders by follower: %v, want one replica each", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := map[string]int{}
	for f, is := range got {
		out[f] = is[0]
	}
	return out
}

// waitGroupMembers waits until the projection consumer group is stable
// with want members that share every partition of the domain topic.
func waitGroupMembers(t *testing.T, brokers []string, want int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		groups, err := adm.DescribeGroups(ctx, "tracktrace-projections")
		cancel()
		if err != nil {
			last = err.Error()
			continue
		}
		g := groups["tracktrace-projections"]
		partitions := 0
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					partitions += len(tp.Partitions)
				}
			}
		}
		last = fmt.Sprintf("state %s, %d members, %d partitions assigned", g.State, len(g.Members), partitions)
		if g.State == "Stable" && len(g.Members) == want && partitions == 6 {
			return
		}
	}
	t.Fatalf("consumer group tracktrace-projections: %s; want %d members sharing 6 partitions", last, want)
}

// storedEventIDs returns the id of every event in the PostgreSQL store
// (erasure markers, version 0, are not events).
func storedEventIDs(t *testing.T, dsn string) map[uuid.UUID]bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT event_id FROM events WHERE version > 0`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// topicEventIDs reads a topic from the start until it has seen every id of
// want (or 30 s pass) and a moment longer, and counts records by their
// CloudEvent id.
func topicEventIDs(t *testing.T, brokers []string, topic string, want map[uuid.UUID]bool) map[uuid.UUID]int {
	t.Helper()
	cl := topicReader(t, brokers, topic)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ids := map[uuid.UUID]int{}
	seen := 0
	for seen < len(want) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			id, err := cloudEventID(r)
			if err != nil {
				t.Errorf("record at offset %d: %v", r.Offset, err)
				return
			}
			if ids[id] == 0 && want[id] {
				seen++
			}
			ids[id]++
		})
	}
	extra, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	for extra.Err() == nil {
		cl.PollFetches(extra).EachRecord(func(r *kgo.Record) {
			if id, err := cloudEventID(r); err == nil {
				ids[id]++
			}
		})
	}
	return ids
}
