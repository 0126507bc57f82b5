package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// BenchmarkApply measures the projection handlers of an engine's read models
// in the steady state: each iteration applies one log-fed batch of 100 new
// events (20 entities, five events each: a milestone with a planned time and
// two operations started and completed, so that every projection has work)
// to each projection alone, and (sub-benchmark "all") to every projection in
// one transaction, as the projection runner does. It reports events/s: with
// "all", each event applied to all three. open returns fresh read models per
// sub-benchmark.
func BenchmarkApply(b *testing.B, open func(b *testing.B) ReadModels) {
	cases := []struct {
		name  string
		names []string
	}{{"all", tracking.Projections()}}
	for _, name := range tracking.Projections() {
		cases = append(cases, struct {
			name  string
			names []string
		}{name, []string{name}})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			rm := open(b)
			ctx := context.Background()
			gen := &batchGen{base: time.Now().Add(-48 * time.Hour)}
			from := map[string]eventstore.Cursor{}
			for _, n := range c.names {
				from[n] = eventstore.Cursor{}
			}
			batches := make([][]eventstore.Recorded, b.N)
			for i := range batches {
				batches[i] = gen.next()
			}
			b.ResetTimer()
			start := time.Now()
			for _, batch := range batches {
				if err := rm.Apply(ctx, from, batch); err != nil {
					b.Fatal(err)
				}
				for n := range from {
					from[n] = batch[len(batch)-1].Cursor
				}
			}
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// batchGen makes the batches of BenchmarkApply.
type batchGen struct {
	base time.Time
	n    int   // batches made
	pos  int64 // last position
	ver  map[string]int64
}

func (g *batchGen) next() []eventstore.Recorded {
	if g.ver == nil {
		g.ver = map[string]int64{}
	}
	g.n++
	out := make([]eventstore.Recorded, 0, 100)
	add := func(entity, typ string, at time.Time, data string) {
		g.pos++
		g.ver[entity]++
		out = append(out, eventstore.Recorded{
			Position: g.pos, Tenant: "bench", StreamID: entity, Version: g.ver[entity], ID: uuid.New(),
			Type: typ, SchemaVersion: 1, Data: json.RawMessage(data), OccurredAt: at, RecordedAt: at,
			EntityType: "shipment", Cursor: eventstore.Cursor{TxID: uint64(g.n), Position: g.pos},
		})
	}
	for e := range 20 {
		entity := fmt.Sprintf("SHP-%d-%d", g.n%50, e)
		at := g.base.Add(time.Duration(g.n) * time.Minute)
		op := fmt.Sprintf(`{"operation":"loading","operationId":"op-%d","siteId":"AMS"}`, g.n)
		add(entity, tracking.TypeMilestoneReached, at, fmt.Sprintf(
			`{"milestone":"arrived","siteId":"AMS","location":{"lat":52.1,"lon":4.3},"plannedAt":%q}`,
			at.Add(-10*time.Minute).Format(time.RFC3339)))
		add(entity, tracking.TypeOperationStarted, at.Add(time.Second), op)
		add(entity, tracking.TypeOperationCompleted, at.Add(40*time.Second),
			op[:len(op)-1]+`,"outcome":"succeeded"}`)
		add(entity, "LocationReported", at.Add(50*time.Second), `{"lat":52.2,"lon":4.4}`)
		add(entity, "EtaUpdated", at.Add(55*time.Second), fmt.Sprintf(`{"eta":%q}`, at.Add(5*time.Hour).Format(time.RFC3339)))
	}
	return out
}
