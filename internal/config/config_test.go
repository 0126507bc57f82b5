package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/kafka/kafkatest"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, opts Options) *Config {
	t.Helper()
	cfg, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadSeed(t *testing.T) {
	for _, env := range []string{"Development", "Production"} {
		t.Run(env, func(t *testing.T) {
			cfg := mustLoad(t, Options{Dir: "testdata/seed", Environment: env, Environ: []string{"DB_PASSWORD=secret"}})
			checks := []struct {
				name      string
				got, want any
			}{
				{"Environment", cfg.Environment, env},
				{"SnapshotFrequency", cfg.EventStore.SnapshotFrequency, 100},
				{"MaxAge", time.Duration(cfg.EventStore.RetentionPolicy.MaxAge), 365 * day},
				{"SnapshotAge", time.Duration(cfg.EventStore.RetentionPolicy.SnapshotAge), 30 * day},
				{"RefreshInterval", time.Duration(cfg.ReadModels.RefreshInterval), 5 * time.Second},
				{"DefaultTTL", time.Duration(cfg.ReadModels.CacheSettings.DefaultTTL), 15 * time.Minute},
				{"MaxSize", cfg.ReadModels.CacheSettings.MaxSize, 500 * MiB},
				{"BootstrapServers", cfg.Kafka.Brokers(), []string{"kafka-cluster:9092"}},
				{"DomainEvents", cfg.Kafka.Topics.DomainEvents, "corporate.tracktrace.events"},
				{"IntegrationEvents", cfg.Kafka.Topics.IntegrationEvents, "corporate.integration.events"},
				{"GroupId", cfg.Kafka.Consumer.GroupID, "tracktrace-projections"},
				{"AutoOffsetReset", cfg.Kafka.Consumer.AutoOffsetReset, "Earliest"},
				{"Authority", cfg.Authentication.Authority, "https://identity.corporate.com"},
				{"Audience", cfg.Authentication.Audience, "corporate-tracktrace-api"},
				{"Tracing.Enabled", cfg.Monitoring.Tracing.Enabled, true},
				{"SamplingRate", cfg.Monitoring.Tracing.SamplingRate, 0.1},
				{"Tags", cfg.Monitoring.Metrics.Tags, map[string]string{"service": "tracktrace-api", "version": "1.0.0"}},
				{"Server.Address", cfg.Server.Address, ":8080"},
				{"Warnings", len(cfg.Warnings), 0},
			}
			for _, c := range checks {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
				}
			}

			events, err := cfg.EventStoreDatabase()
			if err != nil {
				t.Fatal(err)
			}
			if want := "host='eventstore-db' dbname='tracktrace_events' user='eventstore' password='secret'"; events.Engine != EnginePostgres || events.DSN != want {
				t.Errorf("event store = %+v, want postgres %s", events, want)
			}
			if strings.Contains(events.Redacted(), "secret") {
				t.Errorf("Redacted() = %q shows the password", events.Redacted())
			}
			views, err := cfg.ReadModelsDatabase()
			if err != nil || !strings.Contains(views.DSN, "host='readmodel-db'") || !strings.Contains(views.DSN, "password='secret'") {
				t.Errorf("read models = %+v, %v", views, err)
			}

			var logged bytes.Buffer
			slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
			if strings.Contains(logged.String(), "secret") || !strings.Contains(logged.String(), "password=xxxxx") {
				t.Errorf("logged config does not mask the password:\n%s", logged.String())
			}
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg := mustLoad(t, Options{Dir: t.TempDir()})
	want := Default()
	want.Environment = "Development"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load with nothing configured = %+v\nwant Default() = %+v", cfg, want)
	}
	if db, err := cfg.ReadModelsDatabase(); err != nil || db != (Database{EngineSQLite, "file:data/tracktrace.db"}) {
		t.Errorf("ReadModelsDatabase() = %+v, %v; want the event store's", db, err)
	}
}

func TestPrecedence(t *testing.T) {
	layers := []struct {
		name  string
		apply func(t *testing.T, dir string, opts *Options)
	}{
		{"appsettings.json", func(t *testing.T, dir string, opts *Options) {
			writeFile(t, dir, "appsettings.json", `{"Server": {"Address": ":1001"}}`)
		}},
		{"appsettings.Staging.json", func(t *testing.T, dir string, opts *Options) {
			writeFile(t, dir, "appsettings.Staging.json", `{"server": {"address": ":1002"}}`)
		}},
		{"environment", func(t *testing.T, dir string, opts *Options) {
			opts.Environ = append(opts.Environ, "SERVER__ADDRESS=:1003")
		}},
		{"secret file", func(t *testing.T, dir string, opts *Options) {
			secrets := filepath.Join(dir, "secrets")
			if err := os.Mkdir(secrets, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, secrets, "Server__Address", ":1004\n")
			opts.Environ = append(opts.Environ, "TRACKTRACE_SECRETS_DIR="+secrets)
		}},
		{"override", func(t *testing.T, dir string, opts *Options) {
			opts.Overrides = append(opts.Overrides, "Server:Address=:1005")
		}},
	}
	for n := 0; n <= len(layers); n++ {
		t.Run(strings.Repeat("+", n), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, Environment: "Staging"}
			for _, l := range layers[:n] {
				l.apply(t, dir, &opts)
			}
			want := ":8080"
			if n > 0 {
				want = ":100" + string(rune('0'+n))
			}
			if got := mustLoad(t, opts).Server.Address; got != want {
				t.Errorf("with %d layers Server.Address = %q, want %q", n, got, want)
			}
		})
	}
}

func TestConnectionStringsOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", `{
		"EventStore": {"ConnectionString": "file:from-file.db"},
		"ReadModels": {"ConnectionString": "file:views-from-file.db"}
	}`)
	cfg := mustLoad(t, Options{Dir: dir, Environ: []string{
		"ConnectionStrings__EventStore=Host=db;Database=events;Password=${PW}",
		"PW=p",
	}})
	if got, want := cfg.EventStore.ConnectionString, "Host=db;Database=events;Password=p"; got != want {
		t.Errorf("EventStore.ConnectionString = %q, want %q", got, want)
	}
	if got := cfg.ReadModels.ConnectionString; got != "file:views-from-file.db" {
		t.Errorf("ReadModels.ConnectionString = %q, want the file's", got)
	}
}

func TestEnvironmentChoice(t *testing.T) {
	tests := []struct {
		opt     string
		environ []string
		want    string
	}{
		{"", nil, "Development"},
		{"", []string{"DOTNET_ENVIRONMENT=D"}, "D"},
		{"", []string{"DOTNET_ENVIRONMENT=D", "ASPNETCORE_ENVIRONMENT=A"}, "A"},
		{"", []string{"ASPNETCORE_ENVIRONMENT=A", "TRACKTRACE_ENVIRONMENT=T"}, "T"},
		{"Flag", []string{"TRACKTRACE_ENVIRONMENT=T"}, "Flag"},
	}
	for _, tt := range tests {
		if got := mustLoad(t, Options{Dir: t.TempDir(), Environment: tt.opt, Environ: tt.environ}).Environment; got != tt.want {
			t.Errorf("Environment(%q, %q) = %q, want %q", tt.opt, tt.environ, got, tt.want)
		}
	}
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", "\xef\xbb\xbf"+`{
		// .NET tolerates comments, trailing commas and a byte order mark.
		"AllowedHosts": "*",
		"Kafka": {"Bogus": 1, "Topics": {"Ingest": "tt.ingest",},},
		/* lists */
		"Authentication": {"Algorithms": ["RS256", "ES256", "PS256"]},
		"Logging": {"LogLevel": {"Default": "Warning", "Microsoft.AspNetCore": "Error"}},
		"Features": {"kafkaingest": true, "RateLimiting": false, "Old": false},
		"Tracking": {"EntityTypes": ["pallet"]},
		"Monitoring": {"Metrics": {"Tags": {"service": "tt"}}},
		"Server": {"MaxBodyBytes": 2048, "RequestTimeout": 20, "RateLimit": {"RequestsPerSecond": 5, "Burst": 10}},
		"Url": "http://x//not-a-comment"
	}`)
	writeFile(t, dir, "appsettings.Production.json", `{
		"Authentication": {"Authority": "https://id", "Audience": "tt", "Algorithms": ["ES256"]}
	}`)
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(filepath.Join(secrets, "..2024_01_01"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(secrets, "..2024_01_01"), "ConnectionStrings__Redis", "cache:6379,password=pw\n")
	for name, target := range map[string]string{"..data": "..2024_01_01", "ConnectionStrings__Redis": "..data/ConnectionStrings__Redis"} {
		if err := os.Symlink(target, filepath.Join(secrets, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, secrets, "tls.crt", "not config")

	cfg := mustLoad(t, Options{
		Dir: dir, Environment: "Production", SecretsDir: secrets,
		Environ: []string{
			"PATH=/usr/bin", "HOME=/root", "Weird__Thing=1",
			"Tracking__EntityTypes__0=crate", "Tracking__EntityTypes__1=drone",
			"Monitoring__Metrics__Tags__region=eu", "features__KAFKAINGEST=false",
			"Kafka__Nope=1",
		},
		Overrides: []string{"Features__IntegrationEvents=false", "Logging:Format=TEXT"},
	})
	checks := []struct {
		name      string
		got, want any
	}{
		{"Algorithms (array replaced, not merged)", cfg.Authentication.Algorithms, []string{"ES256"}},
		{"EntityTypes (indexed environment variables)", cfg.Tracking.EntityTypes, []string{"crate", "drone"}},
		{"Tags", cfg.Monitoring.Metrics.Tags, map[string]string{"service": "tt", "region": "eu"}},
		{"Features", cfg.Features, map[string]bool{FeatureKafkaIngest: false, FeatureIntegrationEvents: false, FeatureRateLimiting: false}},
		{"Ingest", cfg.Kafka.Topics.Ingest, "tt.ingest"},
		{"Redis from secret", cfg.ConnectionStrings.Redis, "cache:6379,password=pw"},
		{"Level from LogLevel.Default", cfg.Logging.SlogLevel(), slog.LevelWarn},
		{"Format normalized", cfg.Logging.Format, "text"},
		{"MaxBodyBytes from number", cfg.Server.MaxBodyBytes, 2 * KiB},
		{"RequestTimeout from seconds", time.Duration(cfg.Server.RequestTimeout), 20 * time.Second},
		{"Burst", cfg.Server.RateLimit.Burst, 10},
		{"Warnings", cfg.Warnings, []string{
			"unknown key AllowedHosts (from " + filepath.Join(dir, "appsettings.json") + ")",
			"unknown key Kafka.Bogus (from " + filepath.Join(dir, "appsettings.json") + ")",
			"unknown key Kafka.Nope (from environment variable Kafka__Nope)",
			"unknown key Url (from " + filepath.Join(dir, "appsettings.json") + ")",
			"unknown feature flag Features.Old ignored (known: IntegrationEvents, KafkaIngest, RateLimiting)",
		}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestDotNetLogLevelSpelling(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", `{"Logging:LogLevel:Default": "Debug"}`)
	if got := mustLoad(t, Options{Dir: dir}).Logging.SlogLevel(); got != slog.LevelDebug {
		t.Errorf("level from a colon-separated JSON key = %v, want DEBUG", got)
	}
	cfg := mustLoad(t, Options{Dir: dir, Overrides: []string{"Logging:LogLevel:Default=Error"}})
	if got := cfg.Logging.SlogLevel(); got != slog.LevelError {
		t.Errorf("level from --set = %v, want ERROR", got)
	}
}

func TestListFromCommaSeparatedString(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", `{"Authentication": {"Algorithms": ["ES256", "ES384", "ES512"]}}`)
	cfg := mustLoad(t, Options{Dir: dir, Environ: []string{"Authentication__Algorithms=RS256, EdDSA"}})
	if want := []string{"RS256", "EdDSA"}; !slices.Equal(cfg.Authentication.Algorithms, want) {
		t.Errorf("Algorithms = %q, want %q", cfg.Authentication.Algorithms, want)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"syntax", "{\n  \"Kafka\": {\n    \"BootstrapServers\" \"k:9092\"\n  }\n}", "appsettings.json: line 3, column 24: invalid character '\"' after object name"},
		{"truncated", "{\n  \"Kafka\": {", "appsettings.json: line 2, column 13: parsing value: unexpected EOF"},
		{"empty", "", "empty file"},
		{"blank", " \r\n", "empty file"},
		{"array", "[1]", "want a JSON object"},
		{"trailing", "{} {}", "appsettings.json: line 1, column 4: invalid character '{' after top-level value"},
		{"unterminated comment", "{ /* }", "appsettings.json: line 1, column 3: parsing comment"},
		{"comment in a line after a BOM", "\xef\xbb\xbf{\n // x\n \"a\" 1}", "appsettings.json: line 3, column 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "appsettings.json", tt.content)
			_, err := Load(Options{Dir: dir})
			var verr *ValidationError
			if err == nil || errors.As(err, &verr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want a file error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadExplicitFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "tracktrace.json", `{"Server": {"Address": ":9000"}}`)
	writeFile(t, dir, "appsettings.Test.json", `{"Server": {"RequestTimeout": "PT3S"}}`)
	cfg := mustLoad(t, Options{File: file, Environment: "Test"})
	if cfg.Server.Address != ":9000" || time.Duration(cfg.Server.RequestTimeout) != 3*time.Second {
		t.Errorf("Server = %+v, want settings from both files", cfg.Server)
	}
	if _, err := Load(Options{File: filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("Load of a missing explicit File succeeded")
	}
	if _, err := Load(Options{Dir: dir, SecretsDir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("Load with a missing SecretsDir succeeded")
	}
}

func TestBadConfigurations(t *testing.T) {
	tests := []struct {
		name        string
		json        string
		environ     []string
		environment string
		overrides   []string
		key, msg    string
	}{
		{name: "snapshot frequency zero", json: `{"EventStore": {"SnapshotFrequency": 0}}`, key: "EventStore.SnapshotFrequency"},
		{name: "partition period unknown", json: `{"EventStore": {"PartitionPeriod": "fortnight"}}`, key: "EventStore.PartitionPeriod", msg: "Day, Week or Month"},
		{name: "long transaction warning zero", json: `{"EventStore": {"LongTransactionWarning": "PT0S"}}`, key: "EventStore.LongTransactionWarning"},
		{name: "snapshot frequency too high", json: `{"EventStore": {"SnapshotFrequency": 1001}}`, key: "EventStore.SnapshotFrequency"},
		{name: "snapshot frequency not a number", json: `{"EventStore": {"SnapshotFrequency": "often"}}`, key: "EventStore.SnapshotFrequency", msg: "whole number"},
		{name: "snapshot frequency an object", json: `{"EventStore": {"SnapshotFrequency": {"a": 1}}}`, key: "EventStore.SnapshotFrequency", msg: "single value"},
		{name: "section a string", json: `{"EventStore": "file:x.db"}`, key: "EventStore", msg: "object"},
		{name: "unknown engine", json: `{"EventStore": {"ConnectionString": "mysql://h/d"}}`, key: "EventStore.ConnectionString"},
		{name: "npgsql without database", json: `{"EventStore": {"ConnectionString": "Host=h"}}`, key: "EventStore.ConnectionString", msg: "Database"},
		{name: "connection string from env", environ: []string{"ConnectionStrings__EventStore=Host=h;Database=d;Bogus=1"}, key: "ConnectionStrings.EventStore", msg: "Bogus"},
		{name: "read models connection string", json: `{"ReadModels": {"ConnectionString": "nonsense"}}`, key: "ReadModels.ConnectionString"},
		{name: "unset variable", json: `{"EventStore": {"ConnectionString": "Host=h;Database=d;Password=${DB_PASSWORD}"}}`, key: "EventStore.ConnectionString", msg: "unset environment variable DB_PASSWORD"},
		{name: "redis", environ: []string{"ConnectionStrings__Redis=cache:6379,passwrd=x"}, key: "ConnectionStrings.Redis", msg: "passwrd"},
		{name: "zero refresh interval", json: `{"ReadModels": {"RefreshInterval": "00:00:00"}}`, key: "ReadModels.RefreshInterval"},
		{name: "months", json: `{"ReadModels": {"CacheSettings": {"DefaultTTL": "P1M"}}}`, key: "ReadModels.CacheSettings.DefaultTTL", msg: "months"},
		{name: "negative timespan", json: `{"EventStore": {"RetentionPolicy": {"MaxAge": "-00:00:01"}}}`, key: "EventStore.RetentionPolicy.MaxAge", msg: "negative"},
		{name: "zero retention interval", json: `{"EventStore": {"RetentionPolicy": {"Interval": 0}}}`, key: "EventStore.RetentionPolicy.Interval"},
		{name: "cache size", json: `{"ReadModels": {"CacheSettings": {"MaxSize": "lots"}}}`, key: "ReadModels.CacheSettings.MaxSize"},
		{name: "sampling rate", json: `{"Monitoring": {"Tracing": {"SamplingRate": 1.5}}}`, key: "Monitoring.Tracing.SamplingRate"},
		{name: "tracing without endpoint", json: `{"Monitoring": {"Tracing": {"Enabled": true}}}`, key: "Monitoring.Tracing.Endpoint"},
		{name: "metrics endpoint", json: `{"Monitoring": {"Metrics": {"Endpoint": "metrics"}}}`, key: "Monitoring.Metrics.Endpoint"},
		{name: "metrics tag name", json: `{"Monitoring": {"Metrics": {"Tags": {"bad-label": "x"}}}}`, key: "Monitoring.Metrics.Tags.bad-label"},
		{name: "metrics enabled not a bool", json: `{"Monitoring": {"Metrics": {"Enabled": "yes please"}}}`, key: "Monitoring.Metrics.Enabled", msg: "true or false"},
		{name: "authority without audience", json: `{"Authentication": {"Authority": "https://id"}}`, key: "Authentication.Audience"},
		{name: "http authority", json: `{"Authentication": {"Authority": "http://id", "Audience": "a"}}`, key: "Authentication.Authority", msg: "https"},
		{name: "relative authority", json: `{"Authentication": {"Authority": "id.example", "Audience": "a"}}`, key: "Authentication.Authority"},
		{name: "symmetric algorithm", json: `{"Authentication": {"Algorithms": ["RS256", "HS256"]}}`, key: "Authentication.Algorithms[1]", msg: "asymmetric"},
		{name: "none algorithm", json: `{"Authentication": {"Algorithms": ["none"]}}`, key: "Authentication.Algorithms[0]"},
		{name: "no algorithms", json: `{"Authentication": {"Algorithms": []}}`, key: "Authentication.Algorithms"},
		{name: "clock skew", json: `{"Authentication": {"ClockSkew": "PT10M"}}`, key: "Authentication.ClockSkew"},
		{name: "traces URL without its path", json: `{"Monitoring": {"Tracing": {"Enabled": true, "Endpoint": "http://jaeger:4318"}}}`, key: "Monitoring.Tracing.Endpoint"},
		{name: "production without authentication", environment: "Production", key: "Authentication.Authority", msg: "required in Production; tracktrace refuses to run without authentication"},
		{name: "production from ASPNETCORE_ENVIRONMENT", environ: []string{"ASPNETCORE_ENVIRONMENT=Production"}, key: "Authentication.Authority"},
		{name: "auto commit", json: `{"Kafka": {"Consumer": {"EnableAutoCommit": true}}}`, key: "Kafka.Consumer.EnableAutoCommit"},
		{name: "offset reset", json: `{"Kafka": {"Consumer": {"AutoOffsetReset": "Newest"}}}`, key: "Kafka.Consumer.AutoOffsetReset"},
		{name: "session timeout", json: `{"Kafka": {"Consumer": {"SessionTimeout": "00:00:01"}}}`, key: "Kafka.Consumer.SessionTimeout"},
		{name: "empty group", environ: []string{"Kafka__Consumer__GroupId="}, key: "Kafka.Consumer.GroupId"},
		{name: "acks", json: `{"Kafka": {"Producer": {"Acks": "1"}}}`, key: "Kafka.Producer.Acks"},
		{name: "topic name", json: `{"Kafka": {"Topics": {"DomainEvents": "bad topic!"}}}`, key: "Kafka.Topics.DomainEvents"},
		{name: "ingest loops", json: `{"Kafka": {"Topics": {"Ingest": "corporate.tracktrace.events"}}}`, key: "Kafka.Topics.Ingest"},
		{name: "ingest tenant twice", json: `{"Kafka": {"Topics": {"Ingest": "ingest.{tenant}.{tenant}"}}}`, key: "Kafka.Topics.Ingest", msg: "more than once"},
		{name: "ingest pattern", json: `{"Kafka": {"Topics": {"Ingest": "ingest {tenant}"}}}`, key: "Kafka.Topics.Ingest"},
		{name: "trusted tenant topics", json: `{"Kafka": {"Topics": {"Ingest": "ingest.{tenant}"}, "Ingest": {"TrustProducerTenantHeader": true}}}`,
			key: "Kafka.Ingest.TrustProducerTenantHeader"},
		{name: "kafka SASL mechanism", environ: []string{"Kafka__Security__SASL__Mechanism=SCRAM-SHA-1"}, key: "Kafka.Security.SASL.Mechanism", msg: `unknown mechanism "SCRAM-SHA-1"`},
		{name: "kafka SASL password without mechanism", environ: []string{"Kafka__Security__SASL__Username=u", "Kafka__Security__SASL__Password=p"}, key: "Kafka.Security.SASL.Mechanism", msg: "required when Username or Password is set"},
		{name: "kafka SCRAM without password", environ: []string{"Kafka__Security__SASL__Mechanism=scram-sha-512", "Kafka__Security__SASL__Username=u"}, key: "Kafka.Security.SASL.Password", msg: "required with SCRAM-SHA-512"},
		{name: "kafka PLAIN without user", json: `{"Kafka": {"Security": {"SASL": {"Mechanism": "PLAIN", "Password": "p"}}}}`, key: "Kafka.Security.SASL.Username", msg: "required with PLAIN"},
		{name: "kafka MSK IAM with a password", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__SASL__Mechanism=AWS_MSK_IAM", "Kafka__Security__SASL__Password=p"}, key: "Kafka.Security.SASL.Username", msg: "default chain"},
		{name: "kafka MSK IAM without TLS", environ: []string{"Kafka__Security__SASL__Mechanism=AWS_MSK_IAM"}, key: "Kafka.Security.TLS.Enabled", msg: "port 9098"},
		{name: "kafka TLS file without TLS", environ: []string{"Kafka__Security__TLS__CAFile=/etc/kafka/ca.pem"}, key: "Kafka.Security.TLS.Enabled", msg: "must be true when Kafka.Security.TLS.CAFile is set"},
		{name: "kafka TLS enabled not a bool", environ: []string{"Kafka__Security__TLS__Enabled=yes"}, key: "Kafka.Security.TLS.Enabled", msg: "true or false"},
		{name: "kafka CA file missing", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__CAFile=/nonexistent/ca.pem"}, key: "Kafka.Security.TLS.CAFile", msg: "cannot read /nonexistent/ca.pem: no such file or directory"},
		{name: "kafka CA file not PEM", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__CAFile=testdata/seed/appsettings.json"}, key: "Kafka.Security.TLS.CAFile", msg: "holds no PEM certificate"},
		{name: "kafka certificate without key", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__CertFile=/etc/kafka/client.pem"}, key: "Kafka.Security.TLS.KeyFile", msg: "required when CertFile is set"},
		{name: "kafka key without certificate", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__KeyFile=/etc/kafka/client-key.pem"}, key: "Kafka.Security.TLS.CertFile", msg: "required when KeyFile is set"},
		{name: "kafka key file missing", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__CertFile=testdata/seed/appsettings.json", "Kafka__Security__TLS__KeyFile=/nonexistent/key.pem"}, key: "Kafka.Security.TLS.KeyFile", msg: "cannot read /nonexistent/key.pem"},
		{name: "kafka certificate not a key pair", environ: []string{"Kafka__Security__TLS__Enabled=true", "Kafka__Security__TLS__CertFile=testdata/seed/appsettings.json", "Kafka__Security__TLS__KeyFile=testdata/seed/appsettings.json"}, key: "Kafka.Security.TLS.CertFile", msg: "not a certificate and its key"},
		{name: "bootstrap servers", environ: []string{"Kafka__BootstrapServers=k1:9092,k2"}, key: "Kafka.BootstrapServers", msg: `"k2"`},
		{name: "server address", overrides: []string{"Server:Address=8080"}, key: "Server.Address"},
		{name: "server timeout", json: `{"Server": {"WriteTimeout": 0}}`, key: "Server.WriteTimeout"},
		{name: "stream heartbeat", json: `{"Subscriptions": {"StreamHeartbeat": "00:00:00"}}`, key: "Subscriptions.StreamHeartbeat", msg: "positive"},
		{name: "max streams", environ: []string{"Subscriptions__MaxStreams=0"}, key: "Subscriptions.MaxStreams", msg: "at least 1"},
		{name: "body too large", json: `{"Server": {"MaxBodyBytes": "2GiB"}}`, key: "Server.MaxBodyBytes"},
		{name: "body too small", json: `{"Server": {"MaxBodyBytes": 10}}`, key: "Server.MaxBodyBytes"},
		{name: "event limit too large", json: `{"EventStore": {"MaxEventBytes": "1GiB"}}`, key: "EventStore.MaxEventBytes"},
		{name: "burst", json: `{"Server": {"RateLimit": {"RequestsPerSecond": 10}}}`, key: "Server.RateLimit.Burst"},
		{name: "entity type", json: `{"Tracking": {"EntityTypes": ["pallet", "Bad Type"]}}`, key: "Tracking.EntityTypes[1]", msg: `entity type "Bad Type" must match ^[a-z][a-z0-9_-]{0,63}$`},
		{name: "aggregate cache size", json: `{"Tracking": {"AggregateCacheSize": -1}}`, key: "Tracking.AggregateCacheSize", msg: "negative"},
		{name: "entity types index", environ: []string{"Tracking__EntityTypes__first=x"}, key: "Tracking.EntityTypes.first", msg: "index"},
		{name: "log level", json: `{"Logging": {"Level": "Verbose"}}`, key: "Logging.Level"},
		{name: ".NET log level", json: `{"Logging": {"LogLevel": {"Default": "Loud"}}}`, key: "Logging.LogLevel.Default"},
		{name: "log format", json: `{"Logging": {"Format": "xml"}}`, key: "Logging.Format"},
		{name: "feature flag", json: `{"Features": {"RateLimiting": "maybe"}}`, key: "Features.RateLimiting", msg: "true or false"},
		{name: "console public URL relative", json: `{"Console": {"PublicUrl": "tracktrace.example.com"}}`, key: "Console.PublicUrl", msg: "absolute"},
		{name: "console public URL with a path", json: `{"Console": {"PublicUrl": "https://tracktrace.example.com/ops"}}`, key: "Console.PublicUrl", msg: "without a path"},
		{name: "console session key", environ: []string{"Console__SessionKey=c2hvcnQ="}, key: "Console.SessionKey", msg: "32 bytes"},
		{name: "console session lifetime", json: `{"Console": {"SessionLifetime": "PT1M"}}`, key: "Console.SessionLifetime", msg: "between 5 minutes and 7 days"},
		{name: "console scopes without openid", json: `{"Console": {"Scopes": ["tracktrace.read"]}}`, key: "Console.Scopes", msg: "openid"},
		{name: "override syntax", overrides: []string{"Server:Address"}, key: "--set"},
		{name: "environment name", environment: "../etc", key: "Environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.json != "" {
				writeFile(t, dir, "appsettings.json", tt.json)
			}
			_, err := Load(Options{Dir: dir, Environ: tt.environ, Environment: tt.environment, Overrides: tt.overrides})
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Load = %v, want a *ValidationError", err)
			}
			if !slices.ContainsFunc(strings.Split(err.Error(), "\n"), func(line string) bool {
				return strings.HasPrefix(line, tt.key+": ") && strings.Contains(line, tt.msg)
			}) {
				t.Fatalf("error does not name %q with %q:\n%v", tt.key, tt.msg, err)
			}
		})
	}
}

func TestEveryProblemListed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", `{
		"EventStore": {"SnapshotFrequency": 0, "ConnectionString": "nonsense"},
		"Kafka": {"Consumer": {"EnableAutoCommit": true, "AutoOffsetReset": "Newest"}},
		"Monitoring": {"Tracing": {"SamplingRate": -1}},
		"Authentication": {"Algorithms": ["HS512"]},
		"Server": {"Address": "nowhere", "ReadTimeout": "soon"}
	}`)
	cfg, err := Load(Options{Dir: dir, Environment: "Production"})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Load = %v, want a *ValidationError", err)
	}
	if cfg == nil {
		t.Error("Load returned no Config beside its *ValidationError")
	}
	want := []string{
		"Server.ReadTimeout", "EventStore.SnapshotFrequency", "EventStore.ConnectionString",
		"Kafka.Consumer.AutoOffsetReset", "Kafka.Consumer.EnableAutoCommit", "Authentication.Authority",
		"Authentication.Algorithms[0]", "Monitoring.Tracing.SamplingRate", "Server.Address",
	}
	var keys []string
	for _, p := range verr.Problems {
		keys = append(keys, p.Key)
	}
	if !slices.Equal(keys, want) {
		t.Errorf("problems for %q,\nwant %q", keys, want)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) || !strings.HasPrefix(lines[1], "EventStore.SnapshotFrequency: ") {
		t.Errorf("Error() =\n%s\nwant one \"Key: message\" line per problem", err)
	}
}

func TestValidateDefault(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	cfg := Default()
	cfg.Environment = "production"
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted production without authentication")
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		logging Logging
		want    slog.Level
	}{
		{Logging{}, slog.LevelInfo},
		{Logging{Level: "Trace"}, slog.LevelDebug - 4},
		{Logging{Level: "debug"}, slog.LevelDebug},
		{Logging{Level: "INFORMATION"}, slog.LevelInfo},
		{Logging{Level: "warn"}, slog.LevelWarn},
		{Logging{Level: "Warning"}, slog.LevelWarn},
		{Logging{Level: "error"}, slog.LevelError},
		{Logging{Level: "Critical"}, slog.LevelError + 4},
		{Logging{Level: "None"}, levelNone},
		{Logging{LogLevel: map[string]string{"default": "Debug"}}, slog.LevelDebug},
		{Logging{Level: "Error", LogLevel: map[string]string{"Default": "Debug"}}, slog.LevelError},
	}
	for _, tt := range tests {
		if got := tt.logging.SlogLevel(); got != tt.want {
			t.Errorf("%+v.SlogLevel() = %v, want %v", tt.logging, got, tt.want)
		}
	}
}

// Kafka.Security binds from environment variables and secret files, spells
// the mechanism one way, checks the files it names, and never shows the
// password in logs.
func TestKafkaSecurity(t *testing.T) {
	pki := kafkatest.NewPKI(t)
	secrets := t.TempDir()
	writeFile(t, secrets, "Kafka__Security__SASL__Password", "hunter2\n")
	cfg := mustLoad(t, Options{Dir: t.TempDir(), SecretsDir: secrets, Environ: []string{
		"Kafka__BootstrapServers=b-1.example:9096",
		"Kafka__Security__TLS__Enabled=true",
		"Kafka__Security__TLS__CAFile=" + pki.CAFile,
		"Kafka__Security__TLS__CertFile=" + pki.ClientCertFile,
		"Kafka__Security__TLS__KeyFile=" + pki.ClientKeyFile,
		"Kafka__Security__TLS__ServerName=" + kafkatest.ServerName,
		"Kafka__Security__SASL__Mechanism=scram-sha-256",
		"Kafka__Security__SASL__Username=tracktrace",
	}})
	want := KafkaSecurity{
		TLS: KafkaTLS{Enabled: true, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile,
			ServerName: kafkatest.ServerName},
		SASL: KafkaSASL{Mechanism: SASLScramSHA256, Username: "tracktrace", Password: "hunter2"},
	}
	if cfg.Kafka.Security != want {
		t.Errorf("Kafka.Security = %+v, want %+v", cfg.Kafka.Security, want)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
	if strings.Contains(logged.String(), "hunter2") || !strings.Contains(logged.String(), `"Password":"xxxxx"`) {
		t.Errorf("logged config does not mask the Kafka password:\n%s", logged.String())
	}

	plain := mustLoad(t, Options{Dir: t.TempDir(), Environ: []string{"Kafka__Security__SASL__Mechanism=PLAIN",
		"Kafka__Security__SASL__Username=u", "Kafka__Security__SASL__Password=p"}})
	if !slices.ContainsFunc(plain.Warnings, func(w string) bool { return strings.Contains(w, "clear text") }) {
		t.Errorf("PLAIN without TLS: warnings %q, want one about the password in clear text", plain.Warnings)
	}
	iam := mustLoad(t, Options{Dir: t.TempDir(), Environ: []string{"Kafka__Security__TLS__Enabled=true",
		"Kafka__Security__SASL__Mechanism=aws_msk_iam"}})
	if iam.Kafka.Security.SASL.Mechanism != SASLAWSMSKIAM {
		t.Errorf("mechanism %q, want %q", iam.Kafka.Security.SASL.Mechanism, SASLAWSMSKIAM)
	}
}

func TestConsoleKeys(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "appsettings.json", `{"Console": {"ClientId": "tracktrace-console", "PublicUrl": "https://tt.example.com",
		"SessionLifetime": "PT30M", "Scopes": ["openid", "tracktrace.read"]}}`)
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	cfg := mustLoad(t, Options{Dir: dir, Environ: []string{"Console__ClientSecret=s3cret", "Console__SessionKey=" + key}})
	want := Console{ClientID: "tracktrace-console", ClientSecret: "s3cret", PublicURL: "https://tt.example.com",
		SessionKey: key, SessionLifetime: Duration(30 * time.Minute), Scopes: []string{"openid", "tracktrace.read"}}
	if !reflect.DeepEqual(cfg.Console, want) {
		t.Errorf("Console = %+v, want %+v", cfg.Console, want)
	}
	if s := fmt.Sprint(slog.AnyValue(cfg).Resolve()); strings.Contains(s, "s3cret") || strings.Contains(s, key) {
		t.Errorf("the console's secrets are logged: %s", s)
	}
}
