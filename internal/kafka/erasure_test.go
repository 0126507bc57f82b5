package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// An erasure reaches Kafka as a tombstone after the entity's events: a
// consumer following the topic erases the entity, and a fresh consumer
// group replaying the topic from the beginning into fresh read models ends
// without it; an entity re-created with the same id shows only its new
// life. Both end equal to a rebuild of the event store's log.
func TestErasureTombstoneReplay(t *testing.T) {
	t.Parallel()
	for _, maxPoll := range []int{500, 1} { // erased within one poll, and across polls
		t.Run(fmt.Sprintf("poll%d", maxPoll), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cfg := setup(t, 3)
			store, rm := openSQLite(t)
			svc := tracking.NewService(store, tracking.ServiceOptions{})
			eraser := tracking.NewEraser(svc, tracking.EraserOptions{ReadModels: rm})
			relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
			runInBackground(t, ctx, relay.Run)
			published := func() bool {
				b, err := relay.Backlog(ctx)
				return err == nil && b.Events == 0
			}

			// A consumer group follows the topic live.
			_, live := openSQLite(t)
			liveCfg := cfg
			liveCfg.GroupID += "-live"
			runInBackground(t, ctx, kafka.NewProjectionConsumer(newClient(t, liveCfg, kafka.ProjectionConsumerOpts(liveCfg)...), live,
				kafka.ConsumerOptions{MaxPollRecords: maxPoll}).Run)

			record(t, svc, "acme", "gone", journey(6)...)
			record(t, svc, "acme", "reborn", journey(5)...)
			record(t, svc, "acme", "kept", journey(4)...)
			record(t, svc, "other", "gone", journey(3)...) // another tenant's entity of the same id stays
			waitFor(t, ctx, "the relay to publish the first lives", published)
			waitFor(t, ctx, "the live consumer to apply them", func() bool {
				v, err := live.ProjectedVersion(ctx, tracking.ProjectionEntities, "acme", "gone")
				return err == nil && v == 6
			})
			for _, id := range []string{"gone", "reborn"} {
				if _, err := eraser.Erase(ctx, "acme", id); err != nil {
					t.Fatalf("erase %s: %v", id, err)
				}
			}
			record(t, svc, "acme", "reborn", registered(100), milestone(101, tracking.MilestoneDelivered))
			waitFor(t, ctx, "the relay to publish the erasures and the new life", published)

			_, fresh := openSQLite(t)
			want := rebuild(t, ctx, store, fresh)
			waitDumpEqual(t, ctx, live, want)

			// A fresh group replays the whole topic, old lives included.
			_, replayed := openSQLite(t)
			replayCfg := cfg
			replayCfg.GroupID += "-replay"
			runInBackground(t, ctx, kafka.NewProjectionConsumer(newClient(t, replayCfg, kafka.ProjectionConsumerOpts(replayCfg)...), replayed,
				kafka.ConsumerOptions{MaxPollRecords: maxPoll}).Run)
			waitDumpEqual(t, ctx, replayed, want)

			if _, err := replayed.Entity(ctx, "acme", "gone"); !errors.Is(err, tracking.ErrNotFound) {
				t.Errorf("the erased entity after a replay: %v, want not found", err)
			}
			st, err := replayed.Entity(ctx, "acme", "reborn")
			if err != nil || st.Version != 2 || st.Status != "delivered" {
				t.Errorf("the re-created entity after a replay: version %d, status %q (%v); want its new life only: 2, delivered",
					st.Version, st.Status, err)
			}
			if _, err := replayed.Entity(ctx, "other", "gone"); err != nil {
				t.Errorf("another tenant's entity of the erased id: %v", err)
			}
			tl, err := replayed.Timeline(ctx, tracking.TimelineQuery{Tenant: "acme", EntityID: "reborn", Limit: 100})
			if err != nil || len(tl.Entries) != 2 {
				t.Errorf("the re-created entity's timeline has %d entries (%v), want its new life's 2", len(tl.Entries), err)
			}
			recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 6+5+4+3+2+2)
			tombstones := 0
			for _, r := range recs {
				if r.Value == nil {
					tombstones++
					if k := string(r.Key); k != "acme/gone" && k != "acme/reborn" {
						t.Errorf("tombstone keyed %q", k)
					}
				}
			}
			if tombstones != 2 {
				t.Errorf("%d tombstones on the topic, want 2", tombstones)
			}
		})
	}
}
