package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
)

// consumerFed reports on the projections, and waits for them, when the
// Kafka consumer group feeds them (ReadModels.Feed=kafka): the Manager's
// log checkpoints do not move then, and the group's lag is the truth.
type consumerFed struct {
	names    []string
	group    string
	lag      func(context.Context) (int64, error)
	progress eventstore.Signal
}

// Status reports every projection with the group's lag.
func (c *consumerFed) Status(ctx context.Context) ([]projection.Status, error) {
	n, err := c.lag(ctx)
	started := !errors.Is(err, kafka.ErrGroupNotStarted)
	checkpoint := "consumer group " + c.group
	if !started {
		checkpoint += " (not started)"
	}
	lastError := ""
	if err != nil && started {
		n, lastError = -1, err.Error() // the broker does not answer: the lag is unknown
	}
	out := make([]projection.Status, len(c.names))
	for i, name := range c.names {
		out[i] = projection.Status{Name: name, Checkpoint: checkpoint, Head: "kafka", LagEvents: n,
			Active: started && lastError == "", LastError: lastError, Feed: "kafka"}
	}
	return out, nil
}

// Rebuild is not this process's to do: the group replays the topic when
// its offsets are reset.
func (c *consumerFed) Rebuild(context.Context, string) error {
	return fmt.Errorf("%w: the projections read Kafka (ReadModels.Feed=kafka); reset consumer group %s to the earliest offsets to replay them",
		projection.ErrRebuildUnsupported, c.group)
}

// Progress returns a channel closed when the consumer next applies a batch.
func (c *consumerFed) Progress() <-chan struct{} { return c.progress.C() }

// applied is the consumer's callback after each batch.
func (c *consumerFed) applied() { c.progress.Notify() }

// WaitPast waits until the group has no lag, or ctx ends.
func (c *consumerFed) WaitPast(ctx context.Context) error {
	for {
		progress := c.progress.C()
		if n, err := c.lag(ctx); err == nil && n == 0 {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-progress:
		case <-t.C:
		}
		t.Stop()
	}
}
