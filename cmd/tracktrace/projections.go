package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// projectionsCmd is `tracktrace projections status` and `tracktrace
// projections rebuild NAME`. Rebuild builds a new generation of the
// projection's read models beside the live one, replays the log into it
// from this process and switches it in once it has caught up; servers
// running meanwhile go on serving the live read models (and their runner
// may help the replay: the checkpoints' compare-and-set keeps every batch
// applied once).
func projectionsCmd(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{"usage: tracktrace projections status | rebuild NAME [flags]"}
	}
	sub, args := args[0], args[1:]
	var name string
	if sub == "rebuild" {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			return &usageError{fmt.Sprintf("usage: tracktrace projections rebuild NAME (one of %v)", tracking.Projections())}
		}
		name, args = args[0], args[1:]
	} else if sub != "status" {
		return &usageError{fmt.Sprintf("unknown projections command %q: want status or rebuild", sub)}
	}
	cfg, _, err := loadConfig("projections "+sub, args, environ, stderr)
	if err != nil {
		return err
	}
	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	st.announce(stderr)
	if kafkaFeedsProjections(cfg) {
		return kafkaProjectionsStatus(ctx, cfg, sub, stdout)
	}
	m := projection.NewManager(st.store, st.views, st.views, tracking.Projections(), projection.Options{BatchSize: 5000,
		Retained: st.retained, SnapshotSchemaVersion: tracking.SnapshotSchemaVersion})
	if sub == "rebuild" {
		start := time.Now()
		if err := m.Rebuild(ctx, name); err != nil {
			return err
		}
		// CatchUp replays the log into the rebuild and switches it in.
		if err := m.CatchUp(ctx, name); err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "rebuilt %s in %s\n", name, time.Since(start).Round(time.Millisecond))
	}
	status, err := m.Status(ctx)
	if err != nil {
		return err
	}
	return printStatus(stdout, status)
}

// printStatus prints the projections' status as a table.
func printStatus(w io.Writer, status []projection.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tFEED\tCHECKPOINT\tHEAD\tLAG EVENTS\tLAG SECONDS")
	for _, s := range status {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\n", s.Name, s.Feed, s.Checkpoint, s.Head, s.LagEvents, s.LagSeconds)
	}
	return tw.Flush()
}

// kafkaProjectionsStatus reports the projections when the Kafka consumer
// group feeds them: the group's lag (log checkpoints do not apply).
func kafkaProjectionsStatus(ctx context.Context, cfg *config.Config, sub string, stdout io.Writer) error {
	kc := kafkaConfig(cfg)
	if sub == "rebuild" {
		return (&consumerFed{group: kc.GroupID}).Rebuild(ctx, "")
	}
	client, err := kafka.NewClient(kc)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	fed := &consumerFed{names: tracking.Projections(), group: kc.GroupID,
		lag: func(ctx context.Context) (int64, error) { return kafka.GroupLag(ctx, client, kc.GroupID) }}
	status, err := fed.Status(ctx)
	if err != nil {
		return err
	}
	return printStatus(stdout, status)
}
