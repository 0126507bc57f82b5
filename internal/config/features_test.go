package config

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination the watcher and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// replaceFile writes a file atomically, as editors and kubelet do.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startWatch runs WatchFeatures until the test ends and returns its log.
func startWatch(t *testing.T, opts Options, f *Features) *syncBuffer {
	t.Helper()
	var log syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchFeatures(ctx, opts, 2*time.Millisecond, slog.New(slog.NewTextHandler(&log, nil)), f)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return &log
}

func TestWatchFeatures(t *testing.T) {
	dir := t.TempDir()
	settings := filepath.Join(dir, "appsettings.json")
	replaceFile(t, settings, `{"Features": {"KafkaIngest": false, "RateLimiting": false}}`)
	opts := Options{Dir: dir, Environ: []string{"Features__RateLimiting=true"}}
	f := NewFeatures(mustLoad(t, opts).Features)
	if f.Enabled(FeatureKafkaIngest) || !f.Enabled("ratelimiting") || !f.Enabled(FeatureIntegrationEvents) {
		t.Fatalf("initial flags = %v", f.All())
	}
	log := startWatch(t, opts, f)

	// Written as an operator might, comments and all.
	replaceFile(t, settings, `{
		// back on after the broker migration
		"Features": {"kafkaINGEST": true, "RateLimiting": false, "IntegrationEvents": false,},
	}`)
	waitFor(t, "KafkaIngest on", func() bool { return f.Enabled(FeatureKafkaIngest) })
	if f.Enabled(FeatureIntegrationEvents) {
		t.Error("IntegrationEvents is still on")
	}
	if !f.Enabled(FeatureRateLimiting) {
		t.Error("the file overrode an environment variable")
	}
	if got := f.All(); !maps.Equal(got, map[string]bool{FeatureKafkaIngest: true, FeatureIntegrationEvents: false, FeatureRateLimiting: true}) {
		t.Errorf("All() = %v: want every known flag, spelled as the constants", got)
	}

	replaceFile(t, settings, `{"Features": {"KafkaIngest": false,`)
	waitFor(t, "a warning about the malformed file", func() bool { return strings.Contains(log.String(), "keeping the feature flags") })
	if !f.Enabled(FeatureKafkaIngest) {
		t.Error("a malformed file changed the flags")
	}

	replaceFile(t, settings, `{"Features": {"KafkaIngest": "sometimes"}}`)
	waitFor(t, "a warning about the bad flag", func() bool { return strings.Contains(log.String(), "Features.KafkaIngest") })
	if !f.Enabled(FeatureKafkaIngest) {
		t.Error("an invalid flag changed the flags")
	}

	replaceFile(t, settings, `{"Features": {"KafkaIngest": false, "NewEta": true}}`)
	waitFor(t, "KafkaIngest off", func() bool { return !f.Enabled(FeatureKafkaIngest) })
	waitFor(t, "a warning about the unknown flag", func() bool { return strings.Contains(log.String(), "unknown feature flag Features.NewEta") })
	if f.Enabled("NewEta") {
		t.Error("an unknown flag is on")
	}

	replaceFile(t, settings, `{}`)
	waitFor(t, "the defaults back", func() bool { return f.Enabled(FeatureKafkaIngest) && f.Enabled(FeatureIntegrationEvents) })
}

// TestWatchFeaturesConfigMap updates a file the way kubelet updates a
// mounted ConfigMap: new content in a new directory, then an atomic swap of
// the ..data symlink, with the same modification time.
func TestWatchFeaturesConfigMap(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, filepath.Join(dir, name), "appsettings.json", content)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", `{"Features": {"RateLimiting": false}}`)
	if err := os.Symlink("..data/appsettings.json", filepath.Join(dir, "appsettings.json")); err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: dir}
	f := NewFeatures(mustLoad(t, opts).Features)
	if f.Enabled(FeatureRateLimiting) {
		t.Fatal("RateLimiting is on before the update")
	}
	startWatch(t, opts, f)

	version("..v2", `{"Features": {"RateLimiting": true }}`)
	waitFor(t, "RateLimiting on", func() bool { return f.Enabled(FeatureRateLimiting) })
}

func TestFeaturesZeroValue(t *testing.T) {
	var f Features
	if f.Enabled(FeatureRateLimiting) || len(f.All()) != 0 {
		t.Error("the zero Features has a flag on")
	}
	f.Set(map[string]bool{"X": true})
	if !f.Enabled("x") || !f.Func("X")() {
		t.Error("Set did not turn X on")
	}
}

func TestDefaultFeatures(t *testing.T) {
	cfg := mustLoad(t, Options{Dir: t.TempDir()})
	if !maps.Equal(cfg.Features, DefaultFeatures()) || !maps.Equal(Default().Features, DefaultFeatures()) {
		t.Errorf("Features = %v, want the defaults %v", cfg.Features, DefaultFeatures())
	}
	for _, name := range []string{FeatureKafkaIngest, FeatureIntegrationEvents, FeatureRateLimiting} {
		if !DefaultFeatures()[name] {
			t.Errorf("%s is off by default", name)
		}
	}
}
