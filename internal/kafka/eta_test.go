package kafka_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Issue 19, the delay rule's etaDelta: a tenant with a delay rule gets an
// EtaChanged only when the ETA moved by more than the delta from the ETA
// announced last (small drifts add up), with that ETA as previousEta; a
// tenant without one gets every change. The answers hold through a relay
// that crashes before its checkpoint (the batch is published again, by a
// relay with an empty cache) and through a replay of the whole log after
// the rule changed; the changed delta applies to new changes only.
func TestRelayAnnouncesETAChangesBeyondTheDelta(t *testing.T) {
	t.Parallel()
	onEachEngine(t, func(t *testing.T, ctx context.Context, eng engine) {
		cfg := setup(t, 1)
		views := eng.own.(*readmodel.Store)
		rules := alerting.NewRuleService(views, alerting.RuleOptions{})
		delta := "PT30M"
		rule, err := rules.Create(ctx, "acme", alerting.Definition{Kind: alerting.KindDelay, ETADelta: &delta})
		if err != nil {
			t.Fatal(err)
		}
		svc := tracking.NewService(eng.store, tracking.ServiceOptions{})
		planned := at(3000)
		drift := func(minutes ...int) []tracking.NewEvent {
			out := []tracking.NewEvent{registered(0)}
			for i, m := range minutes {
				out = append(out, eta(10+i, planned.Add(time.Duration(m)*time.Minute)))
			}
			return out
		}
		// ETAs, in minutes after the planned arrival: announced are
		// the first, 35 (35 from 0, in three drifts), and 0 again.
		minutes := []int{0, 10, 25, 35, 40, 0}
		acme, globex := drift(minutes...), drift(minutes...)
		record(t, svc, "acme", "a", acme...)
		record(t, svc, "globex", "g", globex...)

		opts := relayOptions(cfg)
		opts.EtaPolicy = alerting.NewEtaAnnouncer(views, views)
		rctx, crash := context.WithCancel(ctx)
		cps := &crashingCheckpoints{Checkpoints: eng.own, at: 1, cancel: crash}
		first := newClient(t, cfg)
		if err := kafka.NewRelay(first, eng.store, cps, projection.LocalLeader{}, opts).Run(rctx); err != nil {
			t.Fatal(err)
		}
		first.Close()
		relay := kafka.NewRelay(newClient(t, cfg), eng.store, eng.own, projection.LocalLeader{}, opts)
		stop := runInBackground(t, ctx, relay.Run)
		caughtUp := func() {
			waitFor(t, ctx, "the relay to catch up", func() bool {
				b, err := relay.Backlog(ctx)
				return err == nil && b.Events == 0
			})
		}
		caughtUp()

		ts := func(m int) string { return planned.Add(time.Duration(m) * time.Minute).Format(time.RFC3339) }
		want := map[string][2]string{ // id → previousEta, eta
			acme[1].ID.String() + ":EtaChanged": {"", ts(0)},
			acme[4].ID.String() + ":EtaChanged": {ts(0), ts(35)},
			acme[6].ID.String() + ":EtaChanged": {ts(35), ts(0)},
		}
		prev := ""
		for i, m := range minutes {
			want[globex[i+1].ID.String()+":EtaChanged"] = [2]string{prev, ts(m)}
			prev = ts(m)
		}
		// The first batch (a's 7 events) is published twice.
		const published = 3 + 6 + 3
		etaChanges(t, ctx, cfg, published, want)

		// The rule changes; the log is replayed from its start: the
		// same changes are announced, the new delta applies to the
		// next change.
		stop()
		smaller := "PT1M"
		if _, err := rules.Replace(ctx, "acme", rule.ID, alerting.Definition{Kind: alerting.KindDelay, ETADelta: &smaller}); err != nil {
			t.Fatal(err)
		}
		cp, err := eng.own.Checkpoint(ctx, kafka.RelayCheckpoint)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.own.MoveCheckpoint(ctx, kafka.RelayCheckpoint, cp.Cursor, eventstore.Cursor{}); err != nil {
			t.Fatal(err)
		}
		next := eta(20, planned.Add(5*time.Minute)) // 5 minutes from 0
		record(t, svc, "acme", "a", next)
		relay = kafka.NewRelay(newClient(t, cfg), eng.store, eng.own, projection.LocalLeader{}, opts)
		runInBackground(t, ctx, relay.Run)
		caughtUp()
		want[next.ID.String()+":EtaChanged"] = [2]string{ts(0), ts(5)}
		etaChanges(t, ctx, cfg, published+len(want), want) // each once more, and the next
	})
}

// etaChanges reads the integration topic until it holds n EtaChanged
// events, and checks that they are the wanted ones (by id: previousEta,
// eta), each published alike every time.
func etaChanges(t *testing.T, ctx context.Context, cfg kafka.Config, n int, want map[string][2]string) {
	t.Helper()
	var (
		got   = map[string][2]string{}
		count int
	)
	waitFor(t, ctx, fmt.Sprintf("%d EtaChanged", n), func() bool {
		count = 0
		clear(got)
		for _, r := range consumeAll(t, ctx, cfg, cfg.Topics.IntegrationEvents, 1) {
			var ce struct {
				ID   string `json:"id"`
				Type string `json:"type"`
				Data struct {
					PreviousEta *time.Time `json:"previousEta"`
					Eta         *time.Time `json:"eta"`
				} `json:"data"`
			}
			mustUnmarshal(t, r.Value, &ce)
			if ce.Type != "tracktrace.integration.EtaChanged.v1" {
				continue
			}
			count++
			v := [2]string{format(ce.Data.PreviousEta), format(ce.Data.Eta)}
			if old, ok := got[ce.ID]; ok && old != v {
				t.Fatalf("%s published as %v and as %v", ce.ID, old, v)
			}
			got[ce.ID] = v
		}
		return count >= n
	})
	if count != n || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d EtaChanged published (want %d):\n got %v\nwant %v", count, n, got, want)
	}
}

func format(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
