package kafka_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/kafka/kafkatest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// newCluster starts a kfake cluster (closed at cleanup); the security
// tests need its listener, so they never use a real broker.
func newCluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// pingErr is what a client of cfg gets when it asks the broker for
// anything, within a few seconds.
func pingErr(t *testing.T, cfg kafka.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cl := newClient(t, cfg)
	defer cl.Close()
	return cl.Ping(ctx)
}

// A broker that listens with TLS only and requires a client certificate
// signed by its authority: the relay publishes through it and a
// projection consumer reads through it, with Kafka.Security.TLS; a client
// that does not present what the broker requires, or does not trust the
// broker's certificate, gets no connection.
func TestTLSWithClientCertificate(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pki := kafkatest.NewPKI(t)
	brokers := newCluster(t, kfake.TLS(pki.ServerTLS(tls.RequireAndVerifyClientCert)))
	cfg := testConfig(t, brokers, 3)
	cfg.Security = kafka.Security{TLS: &kafka.TLS{CAFile: pki.CAFile, CertFile: pki.ClientCertFile,
		KeyFile: pki.ClientKeyFile, ServerName: kafkatest.ServerName}}
	ensureTopics(t, cfg)

	store, rm := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	recordJourneys(t, svc, "acme", 3, 6)
	relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
	runInBackground(t, ctx, relay.Run)
	_, fed := openSQLite(t)
	consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), fed, kafka.ConsumerOptions{})
	runInBackground(t, ctx, consumer.Run)
	_, fresh := openSQLite(t)
	waitDumpEqual(t, ctx, fed, rebuild(t, ctx, store, fresh))

	other := kafkatest.NewPKI(t) // another authority
	refused := []struct {
		name string
		tls  *kafka.TLS
	}{
		{"plaintext", nil},
		{"no client certificate", &kafka.TLS{CAFile: pki.CAFile, ServerName: kafkatest.ServerName}},
		{"client certificate of another authority", &kafka.TLS{CAFile: pki.CAFile, ServerName: kafkatest.ServerName,
			CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}},
		{"broker certificate not trusted", &kafka.TLS{CAFile: other.CAFile, ServerName: kafkatest.ServerName,
			CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}},
		{"broker certificate for another name", &kafka.TLS{CAFile: pki.CAFile,
			CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.Security = kafka.Security{TLS: tt.tls}
			if err := pingErr(t, c); err == nil {
				t.Fatal("connected")
			}
		})
	}
}

// SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (Kafka.Security.SASL): with
// the right password a client creates the topics and a record goes through
// the broker; with a wrong one, or without SASL, it gets no connection.
func TestSASL(t *testing.T) {
	t.Parallel()
	for _, mechanism := range []string{kafka.MechanismPlain, kafka.MechanismScramSHA256, kafka.MechanismScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			brokers := newCluster(t, kfake.EnableSASL(), kfake.User(mechanism, "tracktrace", "right-password"))
			cfg := testConfig(t, brokers, 1)
			cfg.Security = kafka.Security{SASL: &kafka.SASL{Mechanism: mechanism, Username: "tracktrace", Password: "right-password"}}
			ensureTopics(t, cfg)
			produce(t, ctx, newClient(t, cfg), &kgo.Record{Topic: cfg.Topics.DomainEvents, Value: []byte("hello")})
			if recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 1); string(recs[0].Value) != "hello" {
				t.Errorf("consumed %q", recs[0].Value)
			}

			wrong := cfg
			wrong.Security = kafka.Security{SASL: &kafka.SASL{Mechanism: mechanism, Username: "tracktrace", Password: "wrong-password"}}
			// A real broker answers SASL_AUTHENTICATION_FAILED, which the
			// client passes on; kfake just hangs up.
			if err := pingErr(t, wrong); err == nil {
				t.Error("connected with a wrong password")
			}
			if err := pingErr(t, testConfig(t, brokers, 1)); err == nil {
				t.Error("a client without SASL connected")
			}
		})
	}
}
