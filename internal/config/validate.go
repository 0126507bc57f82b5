package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Key     string // dotted, e.g. EventStore.SnapshotFrequency
	Message string
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems one per line as "Key: message".
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Key + ": " + p.Message
	}
	return strings.Join(lines, "\n")
}

// Validate checks c as Load does and returns a *ValidationError listing
// every problem, or nil.
func (c *Config) Validate() error {
	var ch checker
	if ch.validate(c); len(ch.problems) > 0 {
		return &ValidationError{Problems: ch.problems}
	}
	return nil
}

// checker collects problems, one per key: the first one found explains it.
type checker struct {
	problems []Problem
}

func (ch *checker) add(key, format string, args ...any) {
	if !slices.ContainsFunc(ch.problems, func(p Problem) bool { return p.Key == key }) {
		ch.problems = append(ch.problems, Problem{key, fmt.Sprintf(format, args...)})
	}
}

func (ch *checker) check(ok bool, key, format string, args ...any) {
	if !ok {
		ch.add(key, format, args...)
	}
}

func (ch *checker) positive(key string, d Duration) {
	ch.check(d > 0, key, "must be positive")
}

func (ch *checker) nonNegative(key string, d Duration) {
	ch.check(d >= 0, key, "must not be negative")
}

var (
	topicName     = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	prometheusTag = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func (ch *checker) validate(c *Config) {
	ch.check(environmentName.MatchString(c.Environment), "Environment", "must consist of letters, digits, '-' and '_'")

	es := c.EventStore
	ch.check(es.SnapshotFrequency >= 1 && es.SnapshotFrequency <= tracking.MaxSnapshotFrequency,
		"EventStore.SnapshotFrequency", "must be between 1 and %d, got %d", tracking.MaxSnapshotFrequency, es.SnapshotFrequency)
	ch.check(es.MaxEventBytes >= KiB && es.MaxEventBytes <= 64*MiB, "EventStore.MaxEventBytes",
		"must be between 1KiB and 64MiB, got %v", es.MaxEventBytes)
	ch.database(c.ConnectionStrings.EventStore, "EventStore", es.ConnectionString)
	ch.check(c.EPCIS.CaptureLimit >= 1 && c.EPCIS.CaptureLimit <= eventstore.MaxEventsPerAppend, "EPCIS.CaptureLimit",
		"must be between 1 and %d, got %d", eventstore.MaxEventsPerAppend, c.EPCIS.CaptureLimit)
	ch.positive("EPCIS.CaptureJobRetention", c.EPCIS.CaptureJobRetention)
	ch.check(c.EPCIS.CaptureFileSizeLimit >= KiB && c.EPCIS.CaptureFileSizeLimit <= 256*MiB, "EPCIS.CaptureFileSizeLimit",
		"must be between 1KiB and 256MiB, got %v", c.EPCIS.CaptureFileSizeLimit)
	sc := c.Subscriptions
	ch.check(sc.RetryFor >= Duration(time.Hour), "Subscriptions.RetryFor", "must be at least 1 hour, got %v", sc.RetryFor)
	ch.check(sc.MaxBackoff >= Duration(time.Second), "Subscriptions.MaxBackoff", "must be at least 1 second, got %v", sc.MaxBackoff)
	ch.check(sc.RequestTimeout >= Duration(time.Second) && sc.RequestTimeout <= Duration(5*time.Minute), "Subscriptions.RequestTimeout",
		"must be between 1 second and 5 minutes, got %v", sc.RequestTimeout)
	ch.nonNegative("Subscriptions.SecretGracePeriod", sc.SecretGracePeriod)
	ch.positive("Subscriptions.DeliveryLogRetention", sc.DeliveryLogRetention)
	ch.positive("Subscriptions.StreamHeartbeat", sc.StreamHeartbeat)
	ch.check(sc.MaxStreams >= 1, "Subscriptions.MaxStreams", "must be at least 1, got %d", sc.MaxStreams)
	if sc.EncryptionKey != "" {
		k, err := base64.StdEncoding.DecodeString(sc.EncryptionKey)
		ch.check(err == nil && len(k) == 32, "Subscriptions.EncryptionKey", "must be the base64 of 32 bytes")
	}
	ch.nonNegative("EventStore.RetentionPolicy.MaxAge", es.RetentionPolicy.MaxAge)
	ch.nonNegative("EventStore.RetentionPolicy.SnapshotAge", es.RetentionPolicy.SnapshotAge)
	ch.positive("EventStore.RetentionPolicy.Interval", es.RetentionPolicy.Interval)
	ch.positive("EventStore.LongTransactionWarning", es.LongTransactionWarning)
	switch strings.ToLower(es.PartitionPeriod) {
	case "day", "week", "month":
	default:
		ch.check(false, "EventStore.PartitionPeriod", "must be Day, Week or Month, got %q", es.PartitionPeriod)
	}

	rm := c.ReadModels
	if rm.ConnectionString != "" {
		ch.database(c.ConnectionStrings.ReadModels, "ReadModels", rm.ConnectionString)
	}
	ch.positive("ReadModels.RefreshInterval", rm.RefreshInterval)
	ch.positive("ReadModels.ConsistencyWait", rm.ConsistencyWait)
	switch strings.ToLower(rm.Feed) {
	case "", "log":
	case "kafka":
		ch.check(c.Kafka.Enabled(), "ReadModels.Feed", "is kafka, but Kafka.BootstrapServers is empty")
	default:
		ch.add("ReadModels.Feed", "must be log or kafka, got %q", rm.Feed)
	}
	ch.positive("ReadModels.CacheSettings.DefaultTTL", rm.CacheSettings.DefaultTTL)
	ch.check(rm.CacheSettings.MaxSize > 0, "ReadModels.CacheSettings.MaxSize", "must be positive")
	if r := c.ConnectionStrings.Redis; r != "" {
		if _, err := ParseRedis(r); err != nil {
			ch.add("ConnectionStrings.Redis", "%v", err)
		}
	}

	ch.kafka(c.Kafka)
	ch.authentication(c)
	ch.console(c.Console)
	ch.monitoring(c.Monitoring)
	ch.server(c.Server)

	tr := c.Tracking
	ch.nonNegative("Tracking.OnTimeTolerance", tr.OnTimeTolerance)
	ch.nonNegative("Tracking.MaxFutureSkew", tr.MaxFutureSkew)
	for i, t := range tr.EntityTypes {
		if err := tracking.ValidateEntityTypeName(t); err != nil {
			ch.add(fmt.Sprintf("Tracking.EntityTypes[%d]", i), "%s", strings.TrimPrefix(err.Error(), tracking.ErrInvalid.Error()+": "))
		}
	}
	ch.check(tr.AggregateCacheSize >= 0, "Tracking.AggregateCacheSize", "must not be negative (0 turns the cache off)")

	level, key := c.Logging.level()
	_, ok := parseLevel(level)
	ch.check(ok, key, "unknown level %q: use Trace, Debug, Information, Warning, Error, Critical or None", level)
	ch.check(oneOf(c.Logging.Format, "json", "text"), "Logging.Format", `must be "json" or "text", got %q`, c.Logging.Format)
}

// database checks a connection string, naming the ConnectionStrings key
// when that is where it came from.
func (ch *checker) database(fromConnectionStrings, section, s string) {
	key := section + ".ConnectionString"
	if fromConnectionStrings != "" && fromConnectionStrings == s {
		key = "ConnectionStrings." + section
	}
	if _, err := ParseDatabase(s); err != nil {
		ch.add(key, "%v", err)
	}
}

func (ch *checker) kafka(k Kafka) {
	for _, b := range k.Brokers() {
		if !hostPort(b, false) {
			ch.add("Kafka.BootstrapServers", "%q is not host:port", b)
		}
	}
	topics := []struct{ key, name string }{
		{"Kafka.Topics.DomainEvents", k.Topics.DomainEvents},
		{"Kafka.Topics.IntegrationEvents", k.Topics.IntegrationEvents},
		{"Kafka.Topics.Ingest", k.Topics.Ingest},
	}
	for _, t := range topics {
		name := t.name
		if t.key == "Kafka.Topics.Ingest" {
			if name == "" {
				continue
			}
			ch.check(strings.Count(name, IngestTenantPlaceholder) <= 1, t.key, "names %s more than once", IngestTenantPlaceholder)
			name = strings.Replace(name, IngestTenantPlaceholder, "t", 1)
		}
		ch.check(topicName.MatchString(name) && name != "." && name != "..", t.key,
			"%q is not a valid Kafka topic name (1–249 of a-z A-Z 0-9 . _ -)", t.name)
	}
	ch.check(!k.Ingest.TrustProducerTenantHeader || !strings.Contains(k.Topics.Ingest, IngestTenantPlaceholder),
		"Kafka.Ingest.TrustProducerTenantHeader", "applies to a single ingest topic only: a per-tenant topic's messages are its tenant's")
	ch.check(k.Topics.Ingest == "" || k.Topics.Ingest != k.Topics.DomainEvents && k.Topics.Ingest != k.Topics.IntegrationEvents,
		"Kafka.Topics.Ingest", "must differ from the topics tracktrace publishes to")
	ch.check(k.Consumer.GroupID != "", "Kafka.Consumer.GroupId", "must not be empty")
	ch.check(oneOf(k.Consumer.AutoOffsetReset, "Earliest", "Latest"), "Kafka.Consumer.AutoOffsetReset",
		"must be Earliest or Latest, got %q", k.Consumer.AutoOffsetReset)
	ch.check(!k.Consumer.EnableAutoCommit, "Kafka.Consumer.EnableAutoCommit",
		"must be false: tracktrace commits offsets after the read-model transaction")
	ch.check(k.Consumer.SessionTimeout >= Duration(6*time.Second) && k.Consumer.SessionTimeout <= Duration(30*time.Minute),
		"Kafka.Consumer.SessionTimeout", "must be between 6 seconds and 30 minutes, got %v", k.Consumer.SessionTimeout)
	ch.check(oneOf(k.Producer.Acks, "all", "-1"), "Kafka.Producer.Acks",
		`must be "all": the relay needs every in-sync replica's acknowledgement, got %q`, k.Producer.Acks)
	ch.kafkaTLS(k.Security.TLS)
	ch.kafkaSASL(k.Security)
}

// kafkaTLS checks the TLS settings, reading the files they name, so that
// a missing or mismatched file stops the process at start rather than at
// its first connection.
func (ch *checker) kafkaTLS(t KafkaTLS) {
	const prefix = "Kafka.Security.TLS."
	if !t.Enabled {
		for _, f := range []struct{ key, value string }{
			{"CAFile", t.CAFile}, {"CertFile", t.CertFile}, {"KeyFile", t.KeyFile}, {"ServerName", t.ServerName},
		} {
			if f.value != "" {
				ch.add(prefix+"Enabled", "must be true when %s%s is set: configured TLS is never dropped for plaintext", prefix, f.key)
				return
			}
		}
		return
	}
	if t.CAFile != "" {
		if pem, ok := ch.readFile(prefix+"CAFile", t.CAFile); ok {
			ch.check(x509.NewCertPool().AppendCertsFromPEM(pem), prefix+"CAFile", "%s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		ch.add(prefix+"KeyFile", "required when CertFile is set (the client certificate's private key)")
	case t.CertFile == "" && t.KeyFile != "":
		ch.add(prefix+"CertFile", "required when KeyFile is set (the client certificate)")
	case t.CertFile != "":
		cert, okCert := ch.readFile(prefix+"CertFile", t.CertFile)
		key, okKey := ch.readFile(prefix+"KeyFile", t.KeyFile)
		if okCert && okKey {
			if _, err := tls.X509KeyPair(cert, key); err != nil {
				ch.add(prefix+"CertFile", "%s and KeyFile %s are not a certificate and its key: %v", t.CertFile, t.KeyFile, err)
			}
		}
	}
}

// readFile reads a file a setting names, reporting it under key if it
// cannot.
func (ch *checker) readFile(key, path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err // the path is named already
		}
		ch.add(key, "cannot read %s: %v", path, err)
		return nil, false
	}
	return b, true
}

func (ch *checker) kafkaSASL(sec KafkaSecurity) {
	const prefix = "Kafka.Security.SASL."
	s := sec.SASL
	mechanism := strings.ToUpper(strings.TrimSpace(s.Mechanism))
	switch mechanism {
	case "":
		ch.check(s.Username == "" && s.Password == "", prefix+"Mechanism",
			"required when Username or Password is set: one of %s", strings.Join(SASLMechanisms(), ", "))
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		ch.check(s.Username != "", prefix+"Username", "required with %s", mechanism)
		ch.check(s.Password != "", prefix+"Password", "required with %s", mechanism)
	case SASLAWSMSKIAM:
		ch.check(s.Username == "" && s.Password == "", prefix+"Username",
			"not used with AWS_MSK_IAM: the credentials come from the AWS SDK's default chain (IRSA, the ECS task role, AWS_ACCESS_KEY_ID…); leave Username and Password empty")
		ch.check(sec.TLS.Enabled, "Kafka.Security.TLS.Enabled",
			"must be true with AWS_MSK_IAM: MSK takes IAM authentication on its TLS listener only (port 9098)")
	default:
		ch.add(prefix+"Mechanism", "unknown mechanism %q; use one of %s", s.Mechanism, strings.Join(SASLMechanisms(), ", "))
	}
}

// kafkaWarnings returns what the Kafka security settings allow but an
// operator should hear about.
func kafkaWarnings(k Kafka) []string {
	if strings.EqualFold(strings.TrimSpace(k.Security.SASL.Mechanism), SASLPlain) && !k.Security.TLS.Enabled {
		return []string{"Kafka.Security.SASL.Mechanism is PLAIN without Kafka.Security.TLS.Enabled: the password crosses the network in clear text"}
	}
	return nil
}

func (ch *checker) authentication(c *Config) {
	a := c.Authentication
	if a.Authority == "" {
		ch.check(!c.IsProduction(), "Authentication.Authority",
			"required in Production; tracktrace refuses to run without authentication")
	} else {
		u, err := url.Parse(a.Authority)
		switch {
		case err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https"):
			ch.add("Authentication.Authority", "must be an absolute https URL")
		case a.RequireHTTPSMetadata && !strings.EqualFold(u.Scheme, "https"):
			ch.add("Authentication.Authority", "must use https while RequireHttpsMetadata is true")
		}
		ch.check(a.Audience != "", "Authentication.Audience", "required when Authority is set")
	}
	ch.check(a.TenantClaim != "", "Authentication.TenantClaim", "must not be empty")
	allowed := DefaultAlgorithms()
	ch.check(len(a.Algorithms) > 0, "Authentication.Algorithms", "must list at least one algorithm")
	for i, alg := range a.Algorithms {
		key := fmt.Sprintf("Authentication.Algorithms[%d]", i)
		switch {
		case slices.Contains(allowed, alg):
		case strings.EqualFold(alg, "none") || hasPrefixFold(alg, "HS"):
			ch.add(key, "%q is not allowed: only asymmetric algorithms are (%s)", alg, strings.Join(allowed, ", "))
		default:
			ch.add(key, "unknown algorithm %q; allowed: %s", alg, strings.Join(allowed, ", "))
		}
	}
	ch.check(a.ClockSkew >= 0 && a.ClockSkew <= Duration(5*time.Minute), "Authentication.ClockSkew",
		"must be between 0 and 5 minutes, got %v", a.ClockSkew)
}

func (ch *checker) console(c Console) {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https"):
			ch.add("Console.PublicUrl", "must be an absolute http(s) URL")
		case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
			ch.add("Console.PublicUrl", "must be a scheme and host only, without a path, query or fragment")
		}
	}
	if c.SessionKey != "" {
		k, err := base64.StdEncoding.DecodeString(c.SessionKey)
		ch.check(err == nil && len(k) == 32, "Console.SessionKey", "must be the base64 of 32 bytes")
	}
	ch.check(c.SessionLifetime >= Duration(5*time.Minute) && c.SessionLifetime <= Duration(7*24*time.Hour),
		"Console.SessionLifetime", "must be between 5 minutes and 7 days, got %v", c.SessionLifetime)
	ch.check(slices.Contains(c.Scopes, "openid"), "Console.Scopes", "must include openid")
}

func (ch *checker) monitoring(m Monitoring) {
	ch.check(strings.HasPrefix(m.Metrics.Endpoint, "/"), "Monitoring.Metrics.Endpoint",
		`must be a path starting with "/", got %q`, m.Metrics.Endpoint)
	for _, name := range slices.Sorted(maps.Keys(m.Metrics.Tags)) {
		ch.check(prometheusTag.MatchString(name), "Monitoring.Metrics.Tags."+name, "is not a valid Prometheus label name")
	}
	t := m.Tracing
	if t.Enabled || t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		switch {
		case t.Endpoint == "":
			ch.add("Monitoring.Tracing.Endpoint", "required when Tracing is enabled")
		case err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https"):
			ch.add("Monitoring.Tracing.Endpoint", "must be an absolute http(s) URL")
		case u.Path == "" || u.Path == "/":
			// The exporter posts to the URL as given: to "/", which no
			// collector serves, and every span would be lost quietly.
			ch.add("Monitoring.Tracing.Endpoint", "must be the full OTLP/HTTP traces URL, path included, e.g. %s/v1/traces",
				strings.TrimSuffix(t.Endpoint, "/"))
		}
	}
	ch.check(t.SamplingRate >= 0 && t.SamplingRate <= 1, "Monitoring.Tracing.SamplingRate",
		"must be between 0 and 1, got %v", t.SamplingRate)
}

func (ch *checker) server(s Server) {
	ch.check(hostPort(s.Address, true), "Server.Address", "must be host:port, e.g. :8080, got %q", s.Address)
	for _, d := range []struct {
		key string
		d   Duration
	}{
		{"Server.ShutdownTimeout", s.ShutdownTimeout},
		{"Server.ReadHeaderTimeout", s.ReadHeaderTimeout},
		{"Server.ReadTimeout", s.ReadTimeout},
		{"Server.WriteTimeout", s.WriteTimeout},
		{"Server.IdleTimeout", s.IdleTimeout},
		{"Server.RequestTimeout", s.RequestTimeout},
	} {
		ch.positive(d.key, d.d)
	}
	ch.check(s.MaxBodyBytes >= KiB && s.MaxBodyBytes <= GiB, "Server.MaxBodyBytes",
		"must be between 1KiB and 1GiB, got %v", s.MaxBodyBytes)
	rl := s.RateLimit
	ch.check(rl.RequestsPerSecond >= 0 && !math.IsInf(rl.RequestsPerSecond, 0), "Server.RateLimit.RequestsPerSecond",
		"must not be negative")
	ch.check(rl.Burst >= 0, "Server.RateLimit.Burst", "must not be negative")
	ch.check(rl.RequestsPerSecond <= 0 || rl.Burst >= 1, "Server.RateLimit.Burst",
		"must be at least 1 when RequestsPerSecond is set")
}

// hostPort reports whether s is host:port with a numeric port; port 0 (any
// free port) only if allowed.
func hostPort(s string, zeroPort bool) bool {
	_, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	return err == nil && perr == nil && n <= 65535 && (n > 0 || n == 0 && zeroPort)
}

func oneOf(s string, values ...string) bool {
	return slices.ContainsFunc(values, func(v string) bool { return strings.EqualFold(s, v) })
}

// normalize spells the case-insensitive enumerations one way, so that
// their users can compare them plainly.
func (c *Config) normalize() {
	if oneOf(c.Kafka.Consumer.AutoOffsetReset, "Earliest") {
		c.Kafka.Consumer.AutoOffsetReset = "Earliest"
	} else {
		c.Kafka.Consumer.AutoOffsetReset = "Latest"
	}
	c.Kafka.Producer.Acks = "all"
	c.Kafka.Security.SASL.Mechanism = strings.ToUpper(strings.TrimSpace(c.Kafka.Security.SASL.Mechanism))
	c.Logging.Format = strings.ToLower(c.Logging.Format)
}
