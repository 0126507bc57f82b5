package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed's appsettings.json (the original design's, byte for byte) loads
// with only DB_PASSWORD set, and the password is never printed.
func TestSeedSettingsLoad(t *testing.T) {
	t.Parallel()
	seed := filepath.Join("..", "..", "internal", "config", "testdata", "seed", "appsettings.json")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"config", "--config", seed, "--environment", "Production"},
		[]string{"DB_PASSWORD=pa55-w0rd"}, &out, &errOut)
	if err != nil {
		t.Fatalf("seed settings rejected: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{`"SnapshotFrequency": 100`, `"MaxAge": "P365D"`, `"RefreshInterval": "PT5S"`,
		`"GroupId": "tracktrace-projections"`, `"Authority": "https://identity.corporate.com"`, `"SamplingRate": 0.1`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("effective config lacks %s", want)
		}
	}
	if strings.Contains(out.String()+errOut.String(), "pa55-w0rd") {
		t.Error("the database password was printed")
	}
	// stdout is JSON alone (for jq), with the effective projection feed:
	// the seed configures Kafka, so Kafka feeds the projections.
	var effective struct{ ReadModels struct{ Feed string } }
	if err := json.Unmarshal(out.Bytes(), &effective); err != nil {
		t.Fatalf("config's stdout is not JSON: %v\n%s", err, out.String())
	}
	if effective.ReadModels.Feed != "kafka" {
		t.Errorf("effective ReadModels.Feed %q, want kafka", effective.ReadModels.Feed)
	}
}

// Each bad configuration stops the process (run returns an error, main
// exits 1) with a message naming the offending key.
func TestBadConfigurations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	malformed := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(malformed, []byte(`{"EventStore": {"SnapshotFrequency": 5,}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		key  string
	}{
		{"snapshot frequency zero", []string{"--set", "EventStore:SnapshotFrequency=0"}, nil, "EventStore.SnapshotFrequency"},
		{"snapshot frequency too high", nil, []string{"EventStore__SnapshotFrequency=1001"}, "EventStore.SnapshotFrequency"},
		{"snapshot frequency not a number", []string{"--set", "EventStore:SnapshotFrequency=lots"}, nil, "EventStore.SnapshotFrequency"},
		{"unknown engine", nil, []string{"ConnectionStrings__EventStore=mysql://x"}, "ConnectionStrings.EventStore"},
		{"npgsql without database", nil, []string{"ConnectionStrings__EventStore=Host=db;Username=u"}, "ConnectionStrings.EventStore"},
		{"postgres URL pgx refuses", nil, []string{"ConnectionStrings__EventStore=postgres://u:pw@db/x?sslmode=sometimes"}, "ConnectionStrings.EventStore: invalid PostgreSQL connection string: failed to configure TLS: sslmode is invalid"},
		{"unset variable", []string{"--set", "EventStore:ConnectionString=Host=db;Database=x;Password=${NOPE}"}, nil, "EventStore.ConnectionString"},
		{"bad duration", []string{"--set", "ReadModels:RefreshInterval=soon"}, nil, "ReadModels.RefreshInterval"},
		{"zero refresh", []string{"--set", "ReadModels:RefreshInterval=00:00:00"}, nil, "ReadModels.RefreshInterval"},
		{"bad cache size", []string{"--set", "ReadModels:CacheSettings:MaxSize=big"}, nil, "ReadModels.CacheSettings.MaxSize"},
		{"auto commit on", []string{"--set", "Kafka:Consumer:EnableAutoCommit=true"}, nil, "Kafka.Consumer.EnableAutoCommit"},
		{"bad offset reset", []string{"--set", "Kafka:Consumer:AutoOffsetReset=Middle"}, nil, "Kafka.Consumer.AutoOffsetReset"},
		{"bad topic", []string{"--set", "Kafka:Topics:DomainEvents=no spaces allowed"}, nil, "Kafka.Topics.DomainEvents"},
		{"authority without audience", []string{"--set", "Authentication:Authority=https://id.example.com"}, nil, "Authentication.Audience"},
		{"http authority", []string{"--set", "Authentication:Authority=http://id.example.com", "--set", "Authentication:Audience=a"}, nil, "Authentication.Authority"},
		{"symmetric algorithm", []string{"--set", "Authentication:Algorithms=HS256"}, nil, "Authentication.Algorithms"},
		{"production without auth", []string{"--environment", "Production"}, nil, "Authentication.Authority"},
		{"sampling above one", []string{"--set", "Monitoring:Tracing:SamplingRate=1.5"}, nil, "Monitoring.Tracing.SamplingRate"},
		{"metrics endpoint", []string{"--set", "Monitoring:Metrics:Endpoint=metrics"}, nil, "Monitoring.Metrics.Endpoint"},
		{"bad address", []string{"--set", "Server:Address=localhost"}, nil, "Server.Address"},
		{"tiny body limit", []string{"--set", "Server:MaxBodyBytes=10"}, nil, "Server.MaxBodyBytes"},
		{"bad entity type", []string{"--set", "Tracking:EntityTypes=Big Box"}, nil, "Tracking.EntityTypes"},
		{"bad log level", []string{"--set", "Logging:Level=loud"}, nil, "Logging.Level"},
		{"malformed file", []string{"--config", malformed}, nil, "bad.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, cmd := range []string{"config", "serve"} {
				var out, errOut bytes.Buffer
				err := run(context.Background(), append([]string{cmd}, c.args...), c.env, &out, &errOut)
				if err == nil {
					t.Fatalf("%s accepted the configuration", cmd)
				}
				if !strings.Contains(err.Error(), c.key) {
					t.Fatalf("%s: error does not name %s:\n%v", cmd, c.key, err)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frobnicate"}, {"serve", "--no-such-flag"}, {"serve", "extra"}} {
		err := run(context.Background(), args, nil, &bytes.Buffer{}, &bytes.Buffer{})
		if _, ok := err.(*usageError); !ok {
			t.Errorf("%v: err = %v, want a usage error (exit 2)", args, err)
		}
	}
}

// --help on any command prints its flags and succeeds.
func TestHelpSucceeds(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"healthcheck", "-h"}, {"loadtest", "--help"},
		{"config", "--help"}, {"migrate", "-help"}, {"projections", "status", "--help"}, {"retention", "run", "--help"}} {
		var stderr bytes.Buffer
		if err := run(t.Context(), args, nil, io.Discard, &stderr); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(stderr.String(), "-") || strings.Contains(stderr.String(), "help requested") {
			t.Errorf("%v printed %q", args, stderr.String())
		}
	}
}

// A command that creates the embedded database says so, with the absolute
// path; a second run on the same file does not.
func TestNewDatabaseIsAnnounced(t *testing.T) {
	file := filepath.Join(t.TempDir(), "new.db")
	env := []string{"EventStore__ConnectionString=file:" + file}
	for i, want := range []bool{true, false} {
		var stderr bytes.Buffer
		if err := run(t.Context(), []string{"projections", "status"}, env, io.Discard, &stderr); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(stderr.String(), file+" did not exist: created a new, empty database"); got != want {
			t.Errorf("run %d: announced %v, want %v: %q", i, got, want, stderr.String())
		}
	}
}

// retention run --dry-run prints the policy it applied beside its report.
func TestRetentionDryRunShowsPolicy(t *testing.T) {
	env := []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "r.db"),
		"EventStore__RetentionPolicy__MaxAge=P90D", "EventStore__RetentionPolicy__SnapshotAge=P7D"}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"retention", "run", "--dry-run"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Policy struct{ MaxAge, SnapshotAge string }
		DryRun bool
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if !rep.DryRun || rep.Policy.MaxAge != "P90D" || rep.Policy.SnapshotAge != "P7D" {
		t.Errorf("dry run printed %s", out.String())
	}
}
