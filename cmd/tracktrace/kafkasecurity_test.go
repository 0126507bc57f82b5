package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/kafka/kafkatest"
)

// securedBroker starts a Kafka-protocol broker that listens with TLS only
// (the test's own authority) and takes SCRAM-SHA-512 user tracktrace with
// password "kafka-s3cret", as an MSK cluster with SCRAM authentication
// does. It returns the broker and the environment of a server configured
// to use it, with password as the server's password.
func securedBroker(t *testing.T, password string) (brokers []string, pki *kafkatest.PKI, env []string) {
	t.Helper()
	pki = kafkatest.NewPKI(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.TLS(pki.ServerTLS(tls.NoClientCert)), kfake.EnableSASL(), kfake.User("SCRAM-SHA-512", "tracktrace", "kafka-s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs(), pki, []string{
		"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Kafka__BootstrapServers=" + strings.Join(cluster.ListenAddrs(), ","),
		"Kafka__Security__TLS__Enabled=true",
		"Kafka__Security__TLS__CAFile=" + pki.CAFile,
		"Kafka__Security__TLS__ServerName=" + kafkatest.ServerName,
		"Kafka__Security__SASL__Mechanism=SCRAM-SHA-512",
		"Kafka__Security__SASL__Username=tracktrace",
		"Kafka__Security__SASL__Password=" + password,
		"ReadModels__RefreshInterval=00:00:01",
	}
}

// kafkaCheck returns the status of /health/ready's kafka check.
func kafkaCheck(t *testing.T, srv *server) string {
	t.Helper()
	var health struct {
		Checks []struct{ Name, Status string }
	}
	srv.do(t, "GET", "/health/ready", nil).JSON(t, &health)
	for _, c := range health.Checks {
		if c.Name == "kafka" {
			return c.Status
		}
	}
	t.Fatalf("/health/ready has no kafka check: %+v", health)
	return ""
}

// A server configured by environment variables for a broker that takes
// TLS and SCRAM only: an appended event is published (a test consumer with
// its own TLS and SCRAM reads it), the projections are fed through the same
// broker, the readiness check is healthy, and `tracktrace config` shows
// the password masked.
func TestServeWithKafkaTLSAndSCRAM(t *testing.T) {
	t.Parallel()
	brokers, pki, env := securedBroker(t, "kafka-s3cret")
	srv := startServer(t, env)
	if r := srv.do(t, "POST", "/api/v1/entities/SEC-1/events", map[string]any{"entityType": "container",
		"events": []any{ev("MilestoneReached", 0, `{"milestone":"departed"}`)}}); r.StatusCode != 201 {
		t.Fatalf("append: %d %s", r.StatusCode, r.Body)
	}
	rec := consumeOne(t, brokers, "corporate.tracktrace.events", kgo.DialTLSConfig(pki.ClientTLS(t)),
		kgo.SASL(scram.Auth{User: "tracktrace", Pass: "kafka-s3cret"}.AsSha512Mechanism()))
	var ce struct{ Type, Subject string }
	if err := json.Unmarshal(rec.Value, &ce); err != nil || ce.Subject != "SEC-1" || ce.Type != "tracktrace.MilestoneReached.v1" {
		t.Fatalf("published record %s (%v), want the MilestoneReached of SEC-1", rec.Value, err)
	}
	var tl struct{ Entries []struct{ Version int64 } }
	srv.do(t, "GET", "/api/v1/entities/SEC-1/timeline?minVersion=1", nil).JSON(t, &tl)
	if len(tl.Entries) != 1 {
		t.Errorf("timeline fed from the secured broker: %+v", tl)
	}
	if st := kafkaCheck(t, srv); st != "Healthy" {
		t.Errorf("kafka readiness check %q, want Healthy", st)
	}
	if strings.Contains(srv.logs.String(), "kafka-s3cret") {
		t.Error("the server logged the Kafka password")
	}

	var out bytes.Buffer
	if err := run(t.Context(), []string{"config"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Kafka struct {
			Security struct {
				SASL struct{ Mechanism, Username, Password string }
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &shown); err != nil {
		t.Fatal(err)
	}
	if sasl := shown.Kafka.Security.SASL; strings.Contains(out.String(), "kafka-s3cret") || sasl.Password != "xxxxx" ||
		sasl.Mechanism != "SCRAM-SHA-512" || sasl.Username != "tracktrace" {
		t.Errorf("tracktrace config shows SASL %+v, want the mechanism, the user and a masked password", sasl)
	}
}

// With a wrong password the server still starts (as with a broker that is
// down), and says why Kafka is unusable: the readiness check reports kafka
// degraded, and the log names the SASL mechanism and user that failed (a
// real broker adds SASL_AUTHENTICATION_FAILED; kfake just hangs up).
func TestServeWithWrongKafkaPassword(t *testing.T) {
	t.Parallel()
	_, _, env := securedBroker(t, "not-the-password")
	srv := startServer(t, env)
	if st := kafkaCheck(t, srv); st != "Degraded" {
		t.Errorf("kafka readiness check %q, want Degraded", st)
	}
	waitUntil(t, "the log to say the Kafka connection failed", func() bool {
		for line := range strings.Lines(srv.logs.String()) {
			var l struct{ Msg, Check, Error string }
			// The client did speak TLS and SASL: franz-go's hints for a
			// client that lacks them ("is TLS missing?", "is SASL
			// missing?") would be wrong here.
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "health check failed" && l.Check == "kafka" &&
				strings.Contains(l.Error, "TLS, SASL SCRAM-SHA-512 as tracktrace") && !strings.Contains(l.Error, "missing?") {
				return true
			}
		}
		return false
	})
	if strings.Contains(srv.logs.String(), "not-the-password") {
		t.Error("the server logged the Kafka password")
	}
}

// Every mechanism the settings accept is one the Kafka clients build: the
// two lists cannot drift apart.
func TestEveryConfiguredMechanismBuilds(t *testing.T) {
	t.Parallel()
	for _, m := range config.SASLMechanisms() {
		s := config.KafkaSecurity{TLS: config.KafkaTLS{Enabled: true}, SASL: config.KafkaSASL{Mechanism: m}}
		if m != config.SASLAWSMSKIAM {
			s.SASL.Username, s.SASL.Password = "u", "p"
		}
		cl, err := kafka.NewClient(kafka.Config{Brokers: []string{"127.0.0.1:9092"}, Security: kafkaSecurity(s)})
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		cl.Close()
	}
}
