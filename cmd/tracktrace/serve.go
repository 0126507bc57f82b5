package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/auth"
	"github.com/tlm/tracktrace/internal/cache"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/epcis/validate"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/telemetry"
	"github.com/tlm/tracktrace/internal/tracking"
)

// version is set at build time with -ldflags "-X main.version=1.2.3".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// loadConfig parses the common flags and loads the configuration.
func loadConfig(name string, args []string, environ []string, stderr io.Writer) (*config.Config, config.Options, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts config.Options
	var sets stringList
	fs.StringVar(&opts.File, "config", "", "base settings file (default ./appsettings.json)")
	fs.StringVar(&opts.Environment, "environment", "", "environment name")
	fs.StringVar(&opts.SecretsDir, "secrets-dir", "", "key-per-file secrets directory")
	fs.Var(&sets, "set", "override a setting: Section:Key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, opts, parseError(err)
	}
	if fs.NArg() > 0 {
		return nil, opts, &usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	opts.Environ, opts.Overrides = environ, sets
	cfg, err := config.Load(opts)
	if cfg != nil {
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, "tracktrace: config warning:", w)
		}
	}
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		return nil, opts, fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(verr.Error(), "\n", "\n  "))
	}
	if err != nil {
		return nil, opts, fmt.Errorf("configuration: %w", err)
	}
	return cfg, opts, nil
}

// newLogger logs JSON (or text) records that carry the trace and span ids
// of their context.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: cfg.Logging.SlogLevel()}
	var h slog.Handler = slog.NewJSONHandler(w, hopts)
	if strings.EqualFold(cfg.Logging.Format, "text") {
		h = slog.NewTextHandler(w, hopts)
	}
	return slog.New(telemetry.LogHandler{Handler: h})
}

// debugMux serves Go's pprof profiles.
func debugMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// openCache returns Redis when ConnectionStrings.Redis is set, else an
// in-process cache bounded by ReadModels.CacheSettings.MaxSize.
func openCache(cfg *config.Config) (cache.Store, func(context.Context) error, error) {
	if cfg.ConnectionStrings.Redis == "" {
		return cache.NewMemory(int64(cfg.ReadModels.CacheSettings.MaxSize), nil), func(context.Context) error { return nil }, nil
	}
	opts, err := config.ParseRedis(cfg.ConnectionStrings.Redis)
	if err != nil {
		return nil, nil, err
	}
	// Short timeouts and no retries, unless the URL's query says otherwise:
	// a cache that is slow to answer is worse than none; reads go to the
	// read models meanwhile.
	for _, d := range []*time.Duration{&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.PoolTimeout} {
		if *d == 0 {
			*d = 250 * time.Millisecond
		}
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = -1
	}
	r := cache.NewRedis(redis.NewClient(opts), "tracktrace:")
	return r, r.Ping, nil
}

// registerCollectors exports pool statistics and projection lag.
func registerCollectors(m *telemetry.Metrics, st *storage, projections telemetry.StatusSource) error {
	return errors.Join(m.Register(st.pool), m.Register(telemetry.NewProjectionCollector(projections)))
}

func serve(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	started := time.Now()
	cfg, opts, err := loadConfig("serve", args, environ, stderr)
	if err != nil {
		return err
	}
	reload, err := reloadInterval(environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// The libraries that log on their own (the standard log package,
	// go-redis, OpenTelemetry: see routeDependencyLogs) write through this.
	slog.SetDefault(log)
	log.Info("starting tracktrace", "version", buildVersion(), "environment", cfg.Environment, "features", cfg.Features)
	features := config.NewFeatures(cfg.Features)
	if !cfg.Authentication.Enabled() {
		log.Warn("AUTHENTICATION IS OFF: every caller is trusted and picks its tenant with X-Tenant-ID. " +
			"Set Authentication.Authority and Authentication.Audience before exposing this service.")
	}

	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rawStore, views := st.store, st.views
	log.Info("event store", "database", st.where)
	if st.file != "" {
		log.Info("embedded database", "file", st.file, "created", st.created)
		if st.created {
			log.Warn("created a new, empty database (a relative path is taken from the working directory)", "file", st.file)
		}
	}
	registry := prometheus.NewRegistry()
	metrics := telemetry.NewMetrics(registry, cfg.Monitoring.Metrics.Tags)
	tp, stopTracing, err := telemetry.NewTracerProvider(ctx, telemetry.TracingOptions{
		Enabled: cfg.Monitoring.Tracing.Enabled, Endpoint: cfg.Monitoring.Tracing.Endpoint,
		SamplingRate: cfg.Monitoring.Tracing.SamplingRate, Service: "tracktrace", Version: buildVersion()})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: flush on shutdown failed", "error", err)
		}
	}()
	store := metrics.InstrumentStore(telemetry.TraceStore(rawStore, tp))

	svc := tracking.NewService(store, tracking.ServiceOptions{
		SnapshotFrequency:  cfg.EventStore.SnapshotFrequency,
		MaxEventBytes:      int(cfg.EventStore.MaxEventBytes),
		OnTimeTolerance:    time.Duration(cfg.Tracking.OnTimeTolerance),
		MaxFutureSkew:      time.Duration(cfg.Tracking.MaxFutureSkew),
		ExtraEntityTypes:   cfg.Tracking.EntityTypes,
		AggregateCacheSize: cfg.Tracking.AggregateCacheSize,
		Logger:             log,
	})

	cacheStore, cacheCheck, err := openCache(cfg)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	cached := cache.NewReadModels(views, cacheStore, cache.Options{
		TTL: time.Duration(cfg.ReadModels.CacheSettings.DefaultTTL), Logger: log, Observe: metrics.CacheResult,
	})
	// One follower of each kind leads across replicas (advisory locks on
	// the read models' database); /metrics says which replica leads which.
	leader := metrics.ObserveLeadership(views)
	projections := projection.NewManager(store, views, leader, tracking.Projections(), projection.Options{
		Interval:  time.Duration(cfg.ReadModels.RefreshInterval),
		BatchSize: st.projectionBatch,
		Logger:    log,
		OnApplied: func(name string, events []eventstore.Recorded) {
			cached.Invalidate(context.WithoutCancel(ctx), name, events)
		},
		// A rebuild switched in (here or on another replica) leaves every
		// cached answer of the old read models behind.
		OnSwitched:            cached.SetGeneration,
		Retained:              st.retained,
		SnapshotSchemaVersion: tracking.SnapshotSchemaVersion,
	})
	if err := metrics.Register(telemetry.NewFeatureCollector(features.All)); err != nil {
		return err
	}
	var kp *kafkaParts
	if cfg.Kafka.Enabled() {
		kp, err = startKafka(ctx, cfg, features, store, views, leader, svc, metrics, tp, func(evs []eventstore.Recorded) {
			for _, e := range evs {
				if e.Erasure() { // a tombstone erased the entity from the read models
					if err := cached.Forget(context.WithoutCancel(ctx), e.Tenant, e.StreamID); err != nil {
						log.Warn("cache: forgetting an erased entity failed", "tenant", e.Tenant, "entity", e.StreamID, "error", err)
					}
				}
			}
			// The projection consumer applies each event to every projection.
			for _, name := range tracking.Projections() {
				cached.Invalidate(context.WithoutCancel(ctx), name, evs)
			}
		}, log)
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		defer kp.close()
	}
	// What reports on the projections: the Manager when it follows the log,
	// the consumer group when Kafka feeds them.
	var projectionStatus interface {
		httpapi.Projections
		tracking.ProjectionWaiter
		telemetry.StatusSource
	} = projections
	if kp != nil && kp.fed != nil {
		projectionStatus = kp.fed
	}
	if err := registerCollectors(metrics, st, projectionStatus); err != nil {
		return err
	}

	// Every replica on these read models seals list cursors with one key.
	cursorKey, err := views.Secret(ctx, "cursor-key")
	if err != nil {
		return err
	}
	eraser := tracking.NewEraser(svc, tracking.EraserOptions{
		ReadModels: views, Cache: cached, Projections: projectionStatus, Logger: log,
	})
	deps := httpapi.Deps{
		Tracker:         svc,
		ReadModels:      cached,
		ResponseCache:   cached,
		Eraser:          eraser,
		Projections:     projectionStatus,
		EntityTypes:     svc.EntityTypes(),
		OnTimeTolerance: time.Duration(cfg.Tracking.OnTimeTolerance),
		ConsistencyWait: time.Duration(cfg.ReadModels.ConsistencyWait),
		RateLimit:       cfg.Server.RateLimit.RequestsPerSecond,
		// Tracing outside metrics: both read the route the mux records on
		// the request the tracing middleware passes down.
		Instrument: func(h http.Handler) http.Handler { return telemetry.TraceHTTP(tp)(metrics.Instrument(h)) },
		RateBurst:  cfg.Server.RateLimit.Burst,
		Logger:     log,
		Checks: []httpapi.HealthCheck{
			{Name: "eventstore", Check: store.Ping},
			{Name: "readmodels", Check: views.Ping},
			{Name: "cache", Check: cacheCheck, Optional: true},
		},
		MaxBodyBytes:   int64(cfg.Server.MaxBodyBytes),
		RequestTimeout: time.Duration(cfg.Server.RequestTimeout),
		Version:        buildVersion(),
		CursorKey:      cursorKey,
		// Keys are bound where every replica sees them.
		IdempotencyKeys: views,
	}
	deps.RateLimitEnabled = features.Func(config.FeatureRateLimiting)
	// The newest events of the log, read once for the many readers near
	// its head (webhook subscriptions, live streams).
	tail := projection.NewTail(store, 0, projection.TailOptions{Interval: time.Duration(cfg.ReadModels.RefreshInterval), Logger: log})
	// A subscription filtering on state changes derives them itself; the
	// tenants' delay rules decide which ETA changes are announced, once
	// for every follower (the relay's too).
	changes := func() subscription.Changes {
		return tracking.NewDeriver(store, 1000).UseEtaPolicy(alerting.NewEtaAnnouncer(views, views))
	}
	subs, dispatcher, err := subscriptions(ctx, cfg, store, tail, views, leader, changes, metrics, log)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	deps.Subscriptions = subs
	deps.Sites = alerting.NewSiteService(views, nil)
	// Alert rules are kept beside the read models, as subscriptions are.
	deps.Rules = alerting.NewRuleService(views, alerting.RuleOptions{EntityTypes: svc.EntityTypes()})
	// The rules and sites follow the log (one leader) and run their due
	// checks from the durable schedule (one leader), deriving events
	// through the tracking service.
	alerts := alerting.NewEvaluator(views, views, views, views, svc, views, tracking.NewDeriver(store, 0), nil, log)
	alertsFollower := projection.NewFollower(alerting.Checkpoint, store, views, leader, alerts.Handle,
		projection.FollowerOptions{Interval: time.Duration(cfg.ReadModels.RefreshInterval), Logger: log})
	alertsSchedule := alerting.NewScheduler(views, leader, alerts.Fire, alerting.SchedulerOptions{Logger: log})
	alerts.Wake = alertsSchedule.Wake
	// Live streams read the same Tail; one filtering on state changes
	// derives them itself, as a subscription does.
	live := &httpapi.Live{Feed: tail, Log: store, Changes: changes, Heartbeat: time.Duration(cfg.Subscriptions.StreamHeartbeat),
		MaxStreams: cfg.Subscriptions.MaxStreams, Logger: log}
	deps.Live = live
	validator, err := validate.New()
	if err != nil {
		return fmt.Errorf("epcis: %w", err)
	}
	// EPCIS events become events of the tracking entities they name.
	mapper := epcis.NewMapper(svc, views, log)
	mapper.BatchCommands = st.mappingBatch
	mapper.OnSkipped = metrics.EPCISMappingSkipped
	if err := metrics.Register(telemetry.NewBacklogCollector("tracktrace_epcis_mapping_backlog_events",
		"Events in the global log the EPCIS mapping onto tracking entities has not reached yet.",
		checkpointBacklog{store, views, epcis.EntitiesCheckpoint})); err != nil {
		return err
	}
	capturer := epcis.NewCapturer(store, views, epcis.HashStored, nil)
	capturer.Logger = log
	capturer.OnJob = func(j epcis.Job) { metrics.EPCISCaptured(j.Captured, j.Unchanged, len(j.Errors)) }
	deps.EPCIS = &httpapi.EPCIS{
		Capturer:      capturer,
		Validator:     validator,
		Jobs:          views,
		Index:         views,
		Queries:       views,
		CaptureLimit:  cfg.EPCIS.CaptureLimit,
		FileSizeLimit: int64(cfg.EPCIS.CaptureFileSizeLimit),
	}
	if kp != nil {
		// Optional: during a broker outage appends go on (the relay catches
		// up later), so the pod must stay ready.
		deps.Checks = append(deps.Checks, httpapi.HealthCheck{Name: "kafka", Check: kp.ping, Optional: true})
	}
	var horizon *projection.HorizonMonitor
	if st.horizon != nil {
		horizon = projection.NewHorizonMonitor(st.horizon, projection.HorizonOptions{
			Threshold: time.Duration(cfg.EventStore.LongTransactionWarning), Logger: log})
		if err := metrics.Register(telemetry.NewHorizonCollector(horizon.Status)); err != nil {
			return err
		}
		// Optional: the transaction holding the horizon may be anywhere on
		// the server, and it holds every replica back alike. Appends and
		// reads of the event store still work, so failing readiness would
		// turn stale read models into an outage of every replica, which no
		// restart cures. The check reports Degraded, naming the holder.
		deps.Checks = append(deps.Checks, httpapi.HealthCheck{Name: "log-horizon", Check: horizon.Check, Optional: true})
	}
	var verifier *auth.Verifier
	if cfg.Authentication.Enabled() {
		a := cfg.Authentication
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		v, err := auth.NewVerifier(dctx, auth.Options{Authority: a.Authority, Audience: a.Audience,
			RequireHTTPSMetadata: a.RequireHTTPSMetadata, TenantClaim: a.TenantClaim,
			Algorithms: a.Algorithms, ClockSkew: time.Duration(a.ClockSkew), Logger: log})
		cancel()
		if err != nil {
			return fmt.Errorf("authentication: %w", err)
		}
		defer v.Close()
		deps.Verifier, verifier = v, v
	}
	if cfg.Monitoring.Metrics.Enabled {
		deps.Metrics, deps.MetricsPath = telemetry.Handler(registry), cfg.Monitoring.Metrics.Endpoint
	}
	handler, err := withConsole(ctx, httpapi.NewServer(deps), cfg, deps, store, views, verifier, kp, log)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: time.Duration(cfg.Server.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.Server.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.Server.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.Server.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Streams never go idle: Shutdown would wait for them until its timeout.
	srv.RegisterOnShutdown(live.Close)
	ln, err := net.Listen("tcp", cfg.Server.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Address, err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		config.WatchFeatures(gctx, opts, reload, log, features)
		return nil
	})
	// The service's background work (snapshots) outlives request handling:
	// it stops only after the HTTP server has drained.
	svcCtx, stopSvc := context.WithCancel(context.WithoutCancel(ctx))
	g.Go(func() error { return svc.Run(svcCtx) })
	if !kafkaFeedsProjections(cfg) {
		g.Go(func() error { return projections.Run(svcCtx) })
	}
	if kp != nil {
		g.Go(func() error { return kp.run(svcCtx) })
	}
	// The mapping of EPCIS events onto tracking entities (one leader).
	epcisEntities := projection.NewFollower(epcis.EntitiesCheckpoint, store, views, leader,
		mapper.Handle, projection.FollowerOptions{
			Interval: time.Duration(cfg.ReadModels.RefreshInterval), Logger: log})
	g.Go(func() error { return epcisEntities.Run(svcCtx) })
	g.Go(func() error { return tail.Run(svcCtx) })
	g.Go(func() error { return dispatcher.Run(svcCtx) })
	g.Go(func() error { return alertsFollower.Run(svcCtx) })
	g.Go(func() error { return alertsSchedule.Run(svcCtx) })
	if cfg.ConnectionStrings.Redis == "" {
		// The response cache is this process's own: whichever replica
		// applies events (or erases an entity), the read models announce
		// it, and this replica drops what it cached of those entities.
		g.Go(func() error {
			views.Watch(svcCtx, func(p []readmodel.StreamPosition, all bool) { cached.Changed(svcCtx, p, all) })
			return nil
		})
	}
	if horizon != nil {
		g.Go(func() error { return horizon.Run(svcCtx) })
	}
	retentionJob, policy := retentionDeps(cfg, st, svc)
	retentionJob.Logger = log
	g.Go(func() error {
		retention.Loop(svcCtx, retentionJob, policy, time.Duration(cfg.EventStore.RetentionPolicy.Interval), time.Now)
		return nil
	})
	if cfg.Server.DebugAddress != "" {
		dbg := &http.Server{Addr: cfg.Server.DebugAddress, Handler: debugMux(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			log.Warn("serving pprof profiles", "addr", cfg.Server.DebugAddress)
			if err := dbg.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("debug listener: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return dbg.Close()
		})
	}
	g.Go(func() error {
		log.Info("listening", "addr", ln.Addr().String(), "startup", time.Since(started).String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "timeout", time.Duration(cfg.Server.ShutdownTimeout).String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), time.Duration(cfg.Server.ShutdownTimeout))
		defer cancel()
		err := srv.Shutdown(sctx)
		stopSvc()
		return err
	})
	err = g.Wait()
	stopSvc()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// reloadInterval is how often serve looks for changed settings files to
// re-read the feature flags: TRACKTRACE_CONFIG_POLL_INTERVAL (a Go
// duration, e.g. 30s), default config.DefaultWatchInterval.
func reloadInterval(environ []string) (time.Duration, error) {
	const name = "TRACKTRACE_CONFIG_POLL_INTERVAL"
	for _, kv := range slices.Backward(environ) {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return 0, fmt.Errorf("%s: %q is not a positive duration such as 5s", name, v)
			}
			return d, nil
		}
	}
	return config.DefaultWatchInterval, nil
}

func migrate(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("migrate", args, environ, stderr)
	if err != nil {
		return err
	}
	st, err := openStorage(ctx, cfg) // opening applies the pending migrations
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer st.Close()
	st.announce(stderr)
	db, _ := cfg.EventStoreDatabase()
	fmt.Fprintf(stdout, "migrations applied (%s)\n", db.Engine)
	return nil
}

// showConfig validates the configuration (exit 1 listing every problem) and
// prints the effective settings as JSON with every secret masked.
func showConfig(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("config", args, environ, stderr)
	if err != nil {
		return err
	}
	// The effective feed, where the setting leaves it to Kafka's presence.
	if kafkaFeedsProjections(cfg) {
		cfg.ReadModels.Feed = "kafka"
	} else {
		cfg.ReadModels.Feed = "log"
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("", "config", cfg)
	var line struct{ Config json.RawMessage }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, line.Config, "", "  "); err != nil {
		return err
	}
	// stdout is the JSON alone, for jq and the like.
	fmt.Fprintf(stderr, "environment: %s\n", cfg.Environment)
	fmt.Fprintf(stdout, "%s\n", out.String())
	return nil
}

// healthcheck probes the local server's liveness endpoint; it is what the
// container image's HEALTHCHECK runs (there is no curl in the image).
func healthcheck(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("healthcheck", args, environ, stderr)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Server.Address)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /health/live answered %s", resp.Status)
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}

// checkpointBacklog is how far a follower's checkpoint is behind the log.
type checkpointBacklog struct {
	log  projection.Feed
	cps  projection.Checkpoints
	name string
}

func (b checkpointBacklog) Backlog(ctx context.Context) (eventstore.Backlog, error) {
	cp, err := b.cps.Checkpoint(ctx, b.name)
	if err != nil {
		return eventstore.Backlog{}, err
	}
	return b.log.Backlog(ctx, cp.Cursor)
}
