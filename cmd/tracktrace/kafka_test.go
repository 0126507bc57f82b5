package main

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tlm/tracktrace/internal/tracking"
)

// With Kafka configured (an in-process Kafka-protocol broker): events are
// published, the projections are fed from the topic, and the relay backlog
// and consumer lag are exported.
func TestServeWithKafka(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=" + strings.Join(cluster.ListenAddrs(), ","), "ReadModels__RefreshInterval=00:00:01"})
	for i := range 3 {
		r := srv.do(t, "POST", "/api/v1/entities/K-1/events", map[string]any{"entityType": "container",
			"events": []any{ev("MilestoneReached", time.Duration(i)*time.Minute, `{"milestone":"departed"}`)}})
		if r.StatusCode != 201 {
			t.Fatalf("append: %d %s", r.StatusCode, r.Body)
		}
	}
	var tl struct {
		Entries          []struct{ Version int64 }
		ProjectedVersion int64
	}
	srv.do(t, "GET", "/api/v1/entities/K-1/timeline?minVersion=3", nil).JSON(t, &tl)
	if tl.ProjectedVersion != 3 || len(tl.Entries) != 3 {
		t.Fatalf("timeline fed from Kafka: %+v", tl)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := scrape(t, srv)
		backlog, okB := m["tracktrace_relay_backlog_events"]
		lag, okL := m["tracktrace_consumer_lag_messages"]
		if okB && okL && backlog == 0 && lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay backlog %v (%v), consumer lag %v (%v): want both exported and drained", backlog, okB, lag, okL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The projections report the consumer group's progress, not the log
	// checkpoints the Kafka feed never moves.
	var st struct {
		Projections []struct {
			Name, Feed string
			Active     bool
			LagEvents  int64
		}
	}
	srv.do(t, "GET", "/api/v1/projections", nil).JSON(t, &st)
	if len(st.Projections) != len(tracking.Projections()) {
		t.Fatalf("projections: %+v", st)
	}
	for _, p := range st.Projections {
		if p.Feed != "kafka" || !p.Active || p.LagEvents != 0 {
			t.Errorf("projection %s fed by Kafka, drained: %+v, want feed kafka, active, no lag", p.Name, p)
		}
	}
	m := scrape(t, srv)
	lag, exported := m[`tracktrace_projection_lag_events{projection="timeline"}`]
	if !exported || lag != 0 || m[`tracktrace_projection_active{projection="timeline"}`] != 1 {
		t.Errorf("projection metrics with the Kafka feed: lag %v (exported %v), active %v", lag, exported,
			m[`tracktrace_projection_active{projection="timeline"}`])
	}
	if r := srv.do(t, "POST", "/api/v1/projections/timeline/rebuild", nil); r.StatusCode != 409 || !strings.Contains(string(r.Body), "consumer group") {
		t.Errorf("rebuild with the Kafka feed: %d %s, want 409 saying how to replay", r.StatusCode, r.Body)
	}
	var health struct {
		Checks []struct{ Name, Status string }
	}
	srv.do(t, "GET", "/health/ready", nil).JSON(t, &health)
	found := false
	for _, c := range health.Checks {
		found = found || (c.Name == "kafka" && c.Status == "Healthy")
	}
	if !found {
		t.Fatalf("/health/ready lacks a healthy kafka check: %+v", health)
	}
}

// A broker that comes up after the server, and does not create topics on
// its own: the server creates them once it can, and the events recorded
// meanwhile reach the read models through Kafka.
func TestKafkaBrokerStartsLater(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=127.0.0.1:" + strconv.Itoa(port), "ReadModels__RefreshInterval=00:00:01"})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port)) // no auto-creation
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	if r := srv.do(t, "POST", "/api/v1/entities/LATE-1/events", map[string]any{"entityType": "container",
		"events": []any{ev("MilestoneReached", 0, `{"milestone":"departed"}`)}}); r.StatusCode != 201 {
		t.Fatalf("append: %d %s", r.StatusCode, r.Body)
	}
	waitUntil(t, "the event to reach the timeline through Kafka", func() bool {
		var tl struct{ Entries []struct{ Version int64 } }
		srv.do(t, "GET", "/api/v1/entities/LATE-1/timeline", nil).JSON(t, &tl)
		return len(tl.Entries) == 1
	})
}

// `projections status` with the Kafka feed reports the consumer group, not
// log checkpoints that never move.
func TestProjectionsStatusWithKafkaFeed(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	env := []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=" + strings.Join(cluster.ListenAddrs(), ","), "ReadModels__Feed=kafka"}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"projections", "status"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kafka  consumer group tracktrace-projections") || strings.Contains(out.String(), " log ") {
		t.Errorf("projections status with the Kafka feed:\n%s", out.String())
	}
	if err := run(t.Context(), []string{"projections", "rebuild", "timeline"}, env, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "reset consumer group") {
		t.Errorf("projections rebuild with the Kafka feed: %v, want an explanation", err)
	}
}
