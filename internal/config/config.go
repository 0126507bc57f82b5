// Package config holds tracktrace's configuration: one Config struct in the
// shape of the seed's appsettings.json, loaded from defaults, settings files,
// environment variables, secret files and command-line overrides, and
// validated once.
//
// Keys are matched case-insensitively, as .NET configuration does, and are
// named in messages in their dotted form, e.g. EventStore.SnapshotFrequency.
package config

import (
	"log/slog"
	"strings"
	"time"
)

// Config is the whole configuration of a tracktrace process. Build one with
// Load, or with Default for code and tests that need no settings files.
type Config struct {
	// Environment names the deployment environment ("Development",
	// "Production", ...). It is not a settings key: it comes from
	// Options.Environment or the environment variables listed in Load.
	Environment string `config:"-"`

	// The sections of appsettings.json, each described at its type.
	EventStore        EventStore
	ReadModels        ReadModels
	Kafka             Kafka
	Authentication    Authentication
	Monitoring        Monitoring
	ConnectionStrings ConnectionStrings
	Server            Server
	Tracking          Tracking
	Logging           Logging
	EPCIS             EPCIS
	Subscriptions     Subscriptions
	Console           Console

	// Features are the feature flags by name (FeatureKafkaIngest, ...),
	// every known one present. They are re-read at run time by
	// WatchFeatures; see Features for the concurrency-safe holder.
	Features map[string]bool

	// Warnings lists what Load tolerated but an operator should hear about,
	// such as unknown keys.
	Warnings []string `config:"-"`
}

// EventStore configures the event store, the source of truth.
type EventStore struct {
	// ConnectionString selects the engine; see ParseDatabase. A non-empty
	// ConnectionStrings.EventStore replaces it.
	ConnectionString  string          `secret:"database"`
	SnapshotFrequency int             // events between snapshots, 1–1000
	RetentionPolicy   RetentionPolicy // what is deleted when
	// MaxEventBytes bounds one event's data (default 900KiB, below the
	// 1 MB a Kafka broker takes in one message by default), 1KiB–64MiB.
	MaxEventBytes ByteSize
	// LongTransactionWarning (PostgreSQL): a transaction that holds the
	// event log's read horizon back longer than this (default 30s) is
	// warned about and named in /health/ready.
	LongTransactionWarning Duration
	// PartitionPeriod (PostgreSQL) is the time range of each partition of
	// the events table: Day, Week or Month (default Month).
	PartitionPeriod string
}

// RetentionPolicy says how long events and snapshots are kept.
type RetentionPolicy struct {
	MaxAge      Duration // events older than this are deleted; 0 keeps them forever
	SnapshotAge Duration // snapshots older than this are deleted; 0 keeps them forever
	Interval    Duration // how often the background retention job runs
}

// ReadModels configures the projected views and their cache.
type ReadModels struct {
	// ConnectionString selects the views' database; empty means the event
	// store's. A non-empty ConnectionStrings.ReadModels replaces it.
	ConnectionString string   `secret:"database"`
	RefreshInterval  Duration // how often projections poll for new events
	// ConsistencyWait bounds how long a read with minVersion waits for the
	// projection before answering with what it has (marked stale).
	ConsistencyWait Duration
	// Feed is what projections read: "log" (the event store's global log)
	// or "kafka" (the consumer group Kafka.Consumer.GroupId on the domain
	// events topic). Empty: kafka when Kafka is configured, else log.
	Feed          string
	CacheSettings CacheSettings // the read-through cache
}

// CacheSettings bounds the read-through cache of entity and timeline queries.
type CacheSettings struct {
	DefaultTTL Duration `config:"DefaultTTL"` // how long an entry lives unless invalidated
	MaxSize    ByteSize // bound of the in-process cache
}

// Kafka configures publishing to and consuming from Kafka.
type Kafka struct {
	// BootstrapServers is a comma-separated host:port list; empty turns Kafka off.
	BootstrapServers string
	// Security is how every Kafka client connects: TLS and SASL. Empty
	// connects in plaintext, without authentication.
	Security KafkaSecurity
	Topics   Topics   // topic names
	Consumer Consumer // projection feed
	Producer Producer // relay
	Ingest   Ingest   // the ingest topic's trust model
}

// IngestTenantPlaceholder in Kafka.Topics.Ingest makes it a topic per
// tenant ("tracktrace.ingest.{tenant}"): a message's tenant is its topic's.
const IngestTenantPlaceholder = "{tenant}"

// Ingest configures whom the ingest topic trusts.
type Ingest struct {
	// TrustProducerTenantHeader makes a single ingest topic (one without
	// {tenant}) take each message's tenant from its "tenant" header, which
	// any producer allowed to write the topic can set to any tenant.
	// Without it, a single topic's messages are the default tenant's.
	TrustProducerTenantHeader bool
}

// KafkaSecurity configures encryption and authentication of the
// connections to the brokers. Configured security is never dropped: a
// setting that cannot be honoured is a validation problem, not a fallback
// to plaintext.
type KafkaSecurity struct {
	TLS  KafkaTLS
	SASL KafkaSASL
}

// KafkaTLS configures TLS to the brokers.
type KafkaTLS struct {
	// Enabled dials the brokers with TLS (1.2 or later). It must be set for
	// the other TLS settings to apply.
	Enabled bool
	// CAFile is a PEM file of the certificate authorities that sign the
	// brokers' certificates; empty trusts the system's roots (enough for
	// Amazon MSK, whose certificates are publicly trusted).
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its private
	// key, for brokers that authenticate clients by certificate (mutual
	// TLS); both or neither. They are re-read at every connection, so a
	// rotated certificate is used without a restart.
	CertFile string
	KeyFile  string
	// ServerName is the name expected in the brokers' certificates; empty
	// checks each broker against the host name it is dialled by.
	ServerName string
}

// KafkaSASL configures SASL authentication to the brokers.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM
	// (case-insensitive); empty authenticates no one.
	Mechanism string
	// Username and Password are the credentials of PLAIN and SCRAM. For
	// AWS_MSK_IAM they stay empty: the AWS SDK's default credential chain
	// supplies them (web identity / IRSA, EKS Pod Identity, the ECS task
	// role, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, …).
	Username string
	Password string `secret:"password"`
}

// SASL mechanism names of Kafka.Security.SASL.Mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLAWSMSKIAM   = "AWS_MSK_IAM"
)

// SASLMechanisms lists the supported SASL mechanisms.
func SASLMechanisms() []string {
	return []string{SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLAWSMSKIAM}
}

// Enabled reports whether Kafka is configured.
func (k Kafka) Enabled() bool { return k.BootstrapServers != "" }

// Brokers returns the bootstrap servers as a list.
func (k Kafka) Brokers() []string {
	var out []string
	for b := range strings.SplitSeq(k.BootstrapServers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Topics names the Kafka topics tracktrace uses.
type Topics struct {
	DomainEvents      string // every recorded event
	IntegrationEvents string // the public contract for other services
	Ingest            string // events recorded through Kafka; empty = none; with {tenant}, a topic per tenant
}

// Consumer configures the projection feed's consumer group.
type Consumer struct {
	GroupID         string `config:"GroupId"` // consumer group of the projections
	AutoOffsetReset string // where a new group starts: "Earliest" or "Latest"
	// EnableAutoCommit must stay false: offsets are committed after the
	// read-model transaction. It exists because the seed spells it out.
	EnableAutoCommit bool
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed replica) before handing its partitions to the
	// others: the projections of those partitions stand still meanwhile.
	// Default 45s (the Kafka client's), 6s–30m (the broker's default
	// group.min/max.session.timeout.ms bound it).
	SessionTimeout Duration
}

// Producer configures the relay's producer.
type Producer struct {
	Acks string // "all" (or its synonym "-1"), the only value that keeps the outbox lossless
}

// Authentication configures OIDC/JWT bearer authentication.
type Authentication struct {
	Authority            string   // OIDC issuer URL; empty turns authentication off
	Audience             string   // required when Authority is set
	RequireHTTPSMetadata bool     `config:"RequireHttpsMetadata"` // Authority must be https
	TenantClaim          string   // the JWT claim naming the caller's tenant
	Algorithms           []string // allowed asymmetric JWS algorithms
	ClockSkew            Duration // at most 5 minutes
}

// Enabled reports whether authentication is configured.
func (a Authentication) Enabled() bool { return a.Authority != "" }

// Monitoring configures metrics and tracing.
type Monitoring struct {
	Metrics Metrics // Prometheus
	Tracing Tracing // OpenTelemetry
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Enabled  bool              // serve metrics
	Endpoint string            // path, starting with "/"
	Tags     map[string]string // constant labels
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	Enabled      bool    // export traces over OTLP
	Endpoint     string  // collector URL, required when Enabled
	SamplingRate float64 // 0–1
}

// ConnectionStrings is the seed's Kubernetes and dependency-injection
// spelling of the connection strings. EventStore and ReadModels, when set,
// replace EventStore.ConnectionString and ReadModels.ConnectionString.
type ConnectionStrings struct {
	EventStore string `secret:"database"` // see ParseDatabase
	ReadModels string `secret:"database"` // see ParseDatabase
	Redis      string `secret:"redis"`    // see ParseRedis; empty = in-process cache
}

// Server configures the HTTP server.
type Server struct {
	Address         string   // host:port; port 0 picks a free one
	ShutdownTimeout Duration // how long a graceful shutdown may take
	// The http.Server timeouts of the same names.
	ReadHeaderTimeout Duration
	ReadTimeout       Duration
	WriteTimeout      Duration
	IdleTimeout       Duration
	RequestTimeout    Duration // deadline of one request's handling
	MaxBodyBytes      ByteSize // request body limit, 1KiB–1GiB
	RateLimit         RateLimit
	// DebugAddress, when set (e.g. 127.0.0.1:6060), serves Go's pprof
	// profiles there, on a listener of its own, never on the API's.
	DebugAddress string
}

// RateLimit is the per-tenant request rate limit.
type RateLimit struct {
	RequestsPerSecond float64 // 0 turns the limit off
	Burst             int     // at least 1 when RequestsPerSecond is set
}

// Tracking configures the tracking domain.
type Tracking struct {
	OnTimeTolerance Duration // lateness still counted as on time
	MaxFutureSkew   Duration // how far in the future an occurredAt may lie
	// EntityTypes are accepted beside the built-in shipment, package,
	// container, vehicle and asset.
	EntityTypes []string
	// AggregateCacheSize bounds the entity aggregates kept in memory between
	// commands (default 10,000; 0 turns the cache off). Safe with any number
	// of replicas: see tracking.ServiceOptions.
	AggregateCacheSize int
}

// EPCIS configures the GS1 EPCIS 2.0 binding (/epcis).
type EPCIS struct {
	// CaptureLimit bounds the events of one capture (1–10,000, default
	// 10,000), advertised as GS1-EPCIS-Capture-Limit.
	CaptureLimit int
	// CaptureFileSizeLimit bounds the bytes of one capture document (1KiB–
	// 256MiB, default 32MiB), advertised as GS1-EPCIS-Capture-File-Size-Limit.
	CaptureFileSizeLimit ByteSize
	// CaptureJobRetention is how long capture jobs answer (default 7 days;
	// trimmed by the retention job, every EventStore.RetentionPolicy.Interval).
	CaptureJobRetention Duration
}

// Subscriptions configures webhook subscriptions (/api/v1/subscriptions).
type Subscriptions struct {
	// AllowPrivateDestinations also allows http URLs and destinations in
	// private, loopback and link-local ranges (development and tests only:
	// it opens the service to server-side request forgery).
	AllowPrivateDestinations bool
	// RetryFor is how long a delivery is retried before its subscription is
	// suspended (default 72 hours; at least 1 hour).
	RetryFor Duration
	// MaxBackoff caps the wait between attempts (default 1 hour).
	MaxBackoff Duration
	// RequestTimeout bounds one delivery request (default 10 s).
	RequestTimeout Duration
	// SecretGracePeriod is how long a rotated secret still signs (default
	// 24 hours).
	SecretGracePeriod Duration
	// DeliveryLogRetention is how long the delivery logs keep an attempt
	// (default 7 days).
	DeliveryLogRetention Duration
	// EncryptionKey encrypts the signing secrets at rest: the base64 of 32
	// bytes. Empty: a key made once and kept in the read-model database
	// (which protects the secrets in exports of the subscriptions table,
	// not from a reader of the whole database).
	EncryptionKey string `secret:"password"`
	// StreamHeartbeat is the interval of the comments that keep idle live
	// streams (/api/v1/stream) and the proxies on their way open (default
	// 15 s).
	StreamHeartbeat Duration
	// MaxStreams bounds the live streams one process serves at once
	// (default 1000); beyond, a stream is refused with 503.
	MaxStreams int
}

// Console configures the operator console's sign-in (/console). Without
// Authentication.Authority the console needs none of it: everyone is the
// embedded mode's anonymous caller.
type Console struct {
	// ClientId is the console's OAuth client at the authority (an
	// authorization code client with PKCE). With an authority and no
	// client, the console answers 503.
	ClientID string `config:"ClientId"`
	// ClientSecret authenticates the console to the token endpoint; empty
	// for a public client.
	ClientSecret string `secret:"password"`
	// Scopes are asked for at sign-in (default openid, tracktrace.read,
	// tracktrace.write, tracktrace.admin); the access token's scopes are
	// the ones granted.
	Scopes []string
	// PublicUrl is where browsers reach the service, e.g.
	// https://tracktrace.example.com: the redirect URI is
	// <PublicUrl>/console/callback. Empty: the request's own scheme and
	// host (set it behind a proxy that terminates TLS).
	PublicURL string `config:"PublicUrl"`
	// SessionKey encrypts and authenticates the session cookies: the
	// base64 of 32 bytes, the same on every replica. Empty: a key made once
	// and kept in the read-model database.
	SessionKey string `secret:"password"`
	// SessionLifetime is how long a sign-in lasts (default 8 hours; 5
	// minutes to 7 days).
	SessionLifetime Duration
}

// Logging configures the process logger.
type Logging struct {
	// Level is a .NET (Trace, Debug, Information, Warning, Error, Critical,
	// None) or slog (debug, info, warn, error) level name. Empty falls back
	// to LogLevel["Default"], then to Information.
	Level string
	// LogLevel is .NET's Logging:LogLevel section; only its Default entry is
	// used, other categories are accepted and ignored.
	LogLevel map[string]string
	Format   string // handler: "json" or "text"
}

// levelNone is above every level anyone logs at.
const levelNone = slog.Level(1 << 30)

// SlogLevel returns the configured level; an invalid one (which Validate
// reports) reads as Info.
func (l Logging) SlogLevel() slog.Level {
	name, _ := l.level()
	lvl, _ := parseLevel(name)
	return lvl
}

// level returns the effective level name and the key it came from.
func (l Logging) level() (name, key string) {
	if l.Level != "" {
		return l.Level, "Logging.Level"
	}
	for k, v := range l.LogLevel {
		if strings.EqualFold(k, "Default") {
			return v, "Logging.LogLevel.Default"
		}
	}
	return "Information", "Logging.Level"
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return slog.LevelDebug - 4, true
	case "debug":
		return slog.LevelDebug, true
	case "information", "info":
		return slog.LevelInfo, true
	case "warning", "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	case "critical":
		return slog.LevelError + 4, true
	case "none":
		return levelNone, true
	}
	return slog.LevelInfo, false
}

// IsProduction reports whether c.Environment is Production (case-insensitive,
// as in .NET).
func (c *Config) IsProduction() bool { return strings.EqualFold(c.Environment, "Production") }

// EventStoreDatabase returns the event store's database.
func (c *Config) EventStoreDatabase() (Database, error) {
	return ParseDatabase(c.EventStore.ConnectionString)
}

// ReadModelsDatabase returns the read models' database: the event store's
// when ReadModels.ConnectionString is empty.
func (c *Config) ReadModelsDatabase() (Database, error) {
	if c.ReadModels.ConnectionString == "" {
		return c.EventStoreDatabase()
	}
	return ParseDatabase(c.ReadModels.ConnectionString)
}

// DefaultAlgorithms are the JWS algorithms accepted when
// Authentication.Algorithms is not set: every asymmetric one.
func DefaultAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// Default returns the configuration used when nothing is configured: the
// embedded mode, with SQLite, no Kafka and no authentication.
func Default() *Config {
	const day = 24 * time.Hour
	return &Config{
		Environment: "Development",
		EventStore: EventStore{
			ConnectionString:  "file:data/tracktrace.db",
			SnapshotFrequency: 100,
			MaxEventBytes:     900 * KiB,
			RetentionPolicy:   RetentionPolicy{SnapshotAge: Duration(30 * day), Interval: Duration(time.Hour)},

			LongTransactionWarning: Duration(30 * time.Second),
			PartitionPeriod:        "Month",
		},
		EPCIS: EPCIS{CaptureLimit: 10000, CaptureFileSizeLimit: 32 * MiB, CaptureJobRetention: Duration(7 * day)},
		Subscriptions: Subscriptions{RetryFor: Duration(3 * day), MaxBackoff: Duration(time.Hour),
			RequestTimeout: Duration(10 * time.Second), SecretGracePeriod: Duration(day), DeliveryLogRetention: Duration(7 * day),
			StreamHeartbeat: Duration(15 * time.Second), MaxStreams: 1000},
		ReadModels: ReadModels{
			RefreshInterval: Duration(5 * time.Second),
			ConsistencyWait: Duration(2 * time.Second),
			CacheSettings:   CacheSettings{DefaultTTL: Duration(15 * time.Minute), MaxSize: 64 * MiB},
		},
		Kafka: Kafka{
			Topics:   Topics{DomainEvents: "corporate.tracktrace.events", IntegrationEvents: "corporate.integration.events"},
			Consumer: Consumer{GroupID: "tracktrace-projections", AutoOffsetReset: "Earliest", SessionTimeout: Duration(45 * time.Second)},
			Producer: Producer{Acks: "all"},
		},
		Authentication: Authentication{
			RequireHTTPSMetadata: true,
			TenantClaim:          "tenant_id",
			Algorithms:           DefaultAlgorithms(),
			ClockSkew:            Duration(time.Minute),
		},
		Monitoring: Monitoring{
			Metrics: Metrics{Enabled: true, Endpoint: "/metrics"},
			Tracing: Tracing{SamplingRate: 0.1},
		},
		Server: Server{
			Address:           ":8080",
			ShutdownTimeout:   Duration(30 * time.Second),
			ReadHeaderTimeout: Duration(5 * time.Second),
			ReadTimeout:       Duration(30 * time.Second),
			WriteTimeout:      Duration(30 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			RequestTimeout:    Duration(15 * time.Second),
			MaxBodyBytes:      4 * MiB,
		},
		Tracking: Tracking{
			OnTimeTolerance:    Duration(15 * time.Minute),
			MaxFutureSkew:      Duration(5 * time.Minute),
			AggregateCacheSize: 10_000,
		},
		Console: Console{Scopes: []string{"openid", "tracktrace.read", "tracktrace.write", "tracktrace.admin"},
			SessionLifetime: Duration(8 * time.Hour)},
		Logging:  Logging{Format: "json"},
		Features: DefaultFeatures(),
	}
}
