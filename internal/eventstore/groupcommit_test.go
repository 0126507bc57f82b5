package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

func oneEvent(stream string) eventstore.AppendRequest {
	return eventstore.AppendRequest{Tenant: "t", StreamID: stream, EntityType: "shipment", Expected: eventstore.Any,
		Events: []eventstore.Event{{ID: uuid.New(), Type: "x-test", Data: json.RawMessage(`{}`), OccurredAt: time.Now()}}}
}

// Appends racing Close all return: committed, or failed as unavailable;
// none waits forever for a writer that is gone.
func TestGroupCommitCloseAnswersEveryAppend(t *testing.T) {
	for range 50 {
		commit := func(_ context.Context, batch []eventstore.AppendRequest) []eventstore.Outcome {
			return make([]eventstore.Outcome, len(batch))
		}
		g := eventstore.NewGroupCommit(commit, eventstore.GroupCommitOptions{Writers: 2, Name: "test"})
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Go(func() {
				_, err := g.Append(context.Background(), oneEvent("s"))
				errs <- err
			})
		}
		g.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("an append still waits after Close")
		}
		close(errs)
		for err := range errs {
			if err != nil && !errors.Is(err, eventstore.ErrUnavailable) {
				t.Fatalf("append racing Close: %v, want nil or ErrUnavailable", err)
			}
		}
	}
}

// A commit that answers for fewer appends than it was given fails them all
// as unavailable rather than crashing the writer.
func TestGroupCommitShortAnswer(t *testing.T) {
	g := eventstore.NewGroupCommit(func(context.Context, []eventstore.AppendRequest) []eventstore.Outcome { return nil },
		eventstore.GroupCommitOptions{Name: "test"})
	defer g.Close()
	if _, err := g.Append(context.Background(), oneEvent("s")); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append = %v, want ErrUnavailable", err)
	}
}
