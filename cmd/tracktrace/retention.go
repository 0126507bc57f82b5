package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"time"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

// retentionDeps assembles what a retention run needs.
func retentionDeps(cfg *config.Config, st *storage, svc *tracking.Service) (retention.Deps, retention.Policy) {
	readers := append(tracking.Projections(), epcis.EntitiesCheckpoint)
	if cfg.Kafka.Enabled() {
		readers = append(readers, "kafka-relay")
	}
	return retention.Deps{Store: st.retention, ReadModels: st.views, Snapshotter: svc, Readers: readers,
			SnapshotSchemaVersion: tracking.SnapshotSchemaVersion},
		retention.Policy{MaxAge: time.Duration(cfg.EventStore.RetentionPolicy.MaxAge), SnapshotAge: time.Duration(cfg.EventStore.RetentionPolicy.SnapshotAge),
			CaptureJobAge: time.Duration(cfg.EPCIS.CaptureJobRetention)}
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
	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	st.announce(stderr)
	svc := tracking.NewService(st.store, tracking.ServiceOptions{SnapshotFrequency: cfg.EventStore.SnapshotFrequency})
	deps, policy := retentionDeps(cfg, st, svc)
	rep, err := retention.Run(ctx, deps, policy, time.Now(), dryRun)
	if err != nil {
		return err
	}
	// The report says which policy it applied: a dry run is read to decide
	// on the settings.
	rp := cfg.EventStore.RetentionPolicy
	out := struct {
		Policy struct {
			MaxAge      config.Duration `json:"maxAge"`
			SnapshotAge config.Duration `json:"snapshotAge"`
		} `json:"policy"`
		retention.Report
	}{Report: rep}
	out.Policy.MaxAge, out.Policy.SnapshotAge = rp.MaxAge, rp.SnapshotAge
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
