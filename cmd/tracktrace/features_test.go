package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// writeSettings replaces a settings file atomically, as an editor or
// kubelet does.
func writeSettings(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond until it holds, failing after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Editing the Features section of a running server's settings file turns
// the per-tenant rate limit off and on again, without a restart, and
// /metrics shows each flag.
func TestFeatureFlagsReloadWithoutRestart(t *testing.T) {
	t.Parallel()
	settings := filepath.Join(t.TempDir(), "appsettings.json")
	writeSettings(t, settings, `{
		"Server": {"RateLimit": {"RequestsPerSecond": 0.001, "Burst": 1}},
		"Features": {"RateLimiting": true}
	}`)
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"TRACKTRACE_CONFIG_POLL_INTERVAL=20ms", "Monitoring__Metrics__Tags__service=tt"}, "--config", settings)
	gauge := func(flag string) float64 {
		return sum(scrape(t, srv), "tracktrace_feature_enabled", `flag="`+flag+`"`, `service="tt"`)
	}
	validate := openAPIValidator(t)
	get := func() int {
		r := srv.do(t, "GET", "/api/v1/entities/none", nil, "X-Tenant-ID", "noisy")
		validate(t, r) // the 429 too
		return r.StatusCode
	}
	for _, flag := range []string{"KafkaIngest", "IntegrationEvents", "RateLimiting"} {
		if got := gauge(flag); got != 1 {
			t.Errorf("tracktrace_feature_enabled{flag=%q} = %v, want 1", flag, got)
		}
	}
	if a, b := get(), get(); a != 404 || b != 429 {
		t.Fatalf("with RateLimiting on: %d then %d, want 404 then 429", a, b)
	}

	writeSettings(t, settings, `{
		"Server": {"RateLimit": {"RequestsPerSecond": 0.001, "Burst": 1}},
		// off while the batch import runs
		"Features": {"ratelimiting": false,},
	}`)
	waitUntil(t, "the gauge to show RateLimiting off", func() bool { return gauge("RateLimiting") == 0 })
	for range 5 {
		if got := get(); got != 404 {
			t.Fatalf("with RateLimiting off: %d, want 404", got)
		}
	}
	if gauge("KafkaIngest") != 1 {
		t.Error("KafkaIngest changed with RateLimiting")
	}
	if !strings.Contains(srv.logs.String(), "feature flags reloaded") {
		t.Error("the reload was not logged")
	}

	writeSettings(t, settings, `{"Server": {"RateLimit": {"RequestsPerSecond": 0.001, "Burst": 1}}}`)
	waitUntil(t, "RateLimiting back on (its default)", func() bool { return gauge("RateLimiting") == 1 })
	if got := get(); got != 429 {
		t.Fatalf("with RateLimiting on again: %d, want 429", got)
	}
}

// With KafkaIngest off, what arrives on the ingest topic waits there; once
// the settings file turns it on, it is recorded.
func TestFeatureKafkaIngest(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	settings := filepath.Join(t.TempDir(), "appsettings.json")
	writeSettings(t, settings, `{"Kafka": {"Topics": {"Ingest": "tt.ingest"}}, "Features": {"KafkaIngest": false}}`)
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=" + brokers, "TRACKTRACE_CONFIG_POLL_INTERVAL=20ms"}, "--config", settings)
	waitUntil(t, "the ingest consumer to pause", func() bool { return strings.Contains(srv.logs.String(), "kafka consumer: paused") })

	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	msg := `{"entityId":"I-1","entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-01-01T00:00:00Z","data":{}}]}`
	if err := producer.ProduceSync(context.Background(), &kgo.Record{Topic: "tt.ingest", Value: []byte(msg)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	recorded := func() bool { return srv.do(t, "GET", "/api/v1/entities/I-1/events", nil).StatusCode == 200 }
	time.Sleep(time.Second) // absence cannot be waited for: time for a consumer that wrongly ran
	if recorded() {
		t.Fatal("the ingest consumer recorded a message with KafkaIngest off")
	}

	writeSettings(t, settings, `{"Kafka": {"Topics": {"Ingest": "tt.ingest"}}, "Features": {"KafkaIngest": true}}`)
	waitUntil(t, "the message to be recorded", recorded)
}

// `tracktrace config` shows every flag with its effective value and warns
// about names it does not know.
func TestConfigShowsFeatures(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"config", "--set", "Features:integrationevents=false", "--set", "Features:NewEta=true"},
		nil, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"IntegrationEvents": false`, `"KafkaIngest": true`, `"RateLimiting": true`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config output lacks %s:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "unknown feature flag Features.NewEta") {
		t.Errorf("no warning about NewEta: %s", errOut.String())
	}
}

// A poll interval that is no duration stops serve at start.
func TestFeaturePollIntervalInvalid(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"serve"}, []string{"TRACKTRACE_CONFIG_POLL_INTERVAL=often",
		"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "TRACKTRACE_CONFIG_POLL_INTERVAL") {
		t.Fatalf("serve = %v, want an error naming TRACKTRACE_CONFIG_POLL_INTERVAL", err)
	}
}
