package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

// retentionDeps assembles what a retention run needs.
func retentionDeps(cfg *config.Config, store eventstore.Store, views readSide, svc *tracking.Service) (retention.Deps, retention.Policy, error) {
	es, ok := store.(retention.EventStore)
	if !ok {
		return retention.Deps{}, retention.Policy{}, fmt.Errorf("retention is not supported on %T", store)
	}
	rm, ok := views.(retention.ReadModels)
	if !ok {
		return retention.Deps{}, retention.Policy{}, fmt.Errorf("retention is not supported on %T", views)
	}
	readers := tracking.Projections()
	if cfg.Kafka.Enabled() {
		readers = append(readers, "kafka-relay")
	}
	return retention.Deps{Store: es, ReadModels: rm, Snapshotter: svc, Readers: readers,
			SnapshotSchemaVersion: tracking.SnapshotSchemaVersion},
		retention.Policy{MaxAge: time.Duration(cfg.EventStore.RetentionPolicy.MaxAge), SnapshotAge: time.Duration(cfg.EventStore.RetentionPolicy.SnapshotAge)},
		nil
}

// retentionCmd is `tracktrace retention run [--dry-run]`.
func retentionCmd(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return &usageError{"usage: tracktrace retention run [--dry-run] [flags]"}
	}
	args = args[1:]
	dryRun := false
	var rest []string
	for _, a := range args {
		if a == "--dry-run" || a == "-dry-run" {
			dryRun = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, _, err := loadConfig("retention run", rest, environ, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	defer store.Close()
	views, err := openReadModels(ctx, cfg, store)
	if err != nil {
		return fmt.Errorf("read models: %w", err)
	}
	defer views.Close()
	svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: cfg.EventStore.SnapshotFrequency})
	deps, policy, err := retentionDeps(cfg, store, views, svc)
	if err != nil {
		return err
	}
	rep, err := retention.Run(ctx, deps, policy, time.Now(), dryRun)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
