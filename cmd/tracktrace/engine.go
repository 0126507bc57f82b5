package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/telemetry"
)

// storage is what the configuration's connection strings select: the event
// store, the read models beside it, and the engine's parts that the rest of
// the program needs. It is the only place that names an engine.
type storage struct {
	store     eventstore.Store
	views     *readmodel.Store
	retention retention.EventStore
	// horizon finds what holds the global log's read horizon back (nil on
	// SQLite, whose log has no such horizon).
	horizon projection.HorizonSource
	// retained lists the streams retention trimmed: rebuilds are seeded with them.
	retained projection.RetainedSource
	// pool exports the event store's connection-pool statistics.
	pool prometheus.Collector
	// file is the embedded database's absolute path ("" on PostgreSQL), and
	// created says that opening it made a new, empty one.
	file    string
	created bool
	// where names the event store's database for logs, password masked.
	where string
	// projectionBatch and mappingBatch bound the work of one background
	// write transaction: the events the projections apply at once and the
	// commands the EPCIS mapping records at once (zero: the defaults,
	// 1,000 and 2,000). SQLite has one writer, so a request's append waits
	// for the background transaction that holds it; there they are kept to
	// tens of milliseconds. (EPCIS capture at 8 connections: 1,300 → 2,600
	// events/s; BENCHMARKS.md.)
	projectionBatch, mappingBatch int
}

// announce tells a command-line user which embedded database a command
// used, and that it was new: a relative path (the default data/...) depends
// on the working directory.
func (s *storage) announce(stderr io.Writer) {
	if s.created {
		fmt.Fprintf(stderr, "tracktrace: %s did not exist: created a new, empty database\n", s.file)
	}
}

// openStorage opens (and migrates) the event store and its read models: in
// the event store's database unless ReadModels.ConnectionString names
// another (PostgreSQL only).
func openStorage(ctx context.Context, cfg *config.Config) (*storage, error) {
	events, err := cfg.EventStoreDatabase()
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	views, err := cfg.ReadModelsDatabase()
	if err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	var st storage
	switch events.Engine {
	case config.EnginePostgres:
		if views.Engine != config.EnginePostgres {
			return nil, fmt.Errorf("read models: on %s with the event store on PostgreSQL are not supported", views.Engine)
		}
		period, err := postgres.ParsePartitionPeriod(cfg.EventStore.PartitionPeriod)
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		s, err := postgres.Open(ctx, events.DSN, postgres.Options{PartitionPeriod: period})
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		st = storage{store: s, retention: s, horizon: s, retained: s, pool: telemetry.NewPoolCollector(s.Pool(), "eventstore")}
		if views.DSN == events.DSN {
			st.views, err = postgres.OpenReadModels(ctx, "", s.Pool())
		} else {
			st.views, err = postgres.OpenReadModels(ctx, views.DSN, nil)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("read models: %w", err)
		}
	case config.EngineSQLite:
		if views.DSN != events.DSN {
			return nil, errors.New("read models: with the embedded SQLite engine the read models live in the event store's file; leave ReadModels.ConnectionString empty")
		}
		dsn := events.DSN
		if !strings.HasPrefix(dsn, "file:") {
			dsn = "file:" + dsn
		}
		s, err := sqlite.Open(ctx, dsn, sqlite.Options{})
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		st = storage{store: s, retention: s, retained: s, pool: telemetry.NewSQLDBCollector(s.DB(), "eventstore"), created: s.Created(),
			projectionBatch: 250, mappingBatch: 500}
		if st.file, err = filepath.Abs(s.Path()); err != nil {
			st.file = s.Path()
		}
		if st.views, err = sqlite.OpenReadModels(ctx, s); err != nil {
			s.Close()
			return nil, fmt.Errorf("read models: %w", err)
		}
	default:
		return nil, fmt.Errorf("event store: unsupported database engine %q", events.Engine)
	}
	st.where = events.Redacted()
	return &st, nil
}

// Close closes the read models, then the event store.
func (s *storage) Close() error {
	return errors.Join(s.views.Close(), s.store.Close())
}
