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
// one transaction, as the projection runner does; "all-new-entities" is
// "all" with batches of 100 events on 100 new entities, one each (the shape
// of the EPCIS mapping's output: an event per object). It reports events/s:
// with "all", each event applied to every projection. open returns fresh
// read models per sub-benchmark.
func BenchmarkApply(b *testing.B, open func(b *testing.B) ReadModels) {
	type benchCase struct {
		name  string
		names []string
		wide  bool
	}
	cases := []benchCase{{"all", tracking.Projections(), false}, {"all-new-entities", tracking.Projections(), true}}
	for _, name := range tracking.Projections() {
		cases = append(cases, benchCase{name, []string{name}, false})
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
				if c.wide {
					batches[i] = gen.nextWide()
				} else {
					batches[i] = gen.next()
				}
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

// nextWide is a batch of 100 events, each the first of a new entity: a
// milestone at a site, as the EPCIS mapping records for each object of a
// shipping event.
func (g *batchGen) nextWide() []eventstore.Recorded {
	g.n++
	out := make([]eventstore.Recorded, 0, 100)
	at := g.base.Add(time.Duration(g.n) * time.Minute)
	for e := range 100 {
		g.pos++
		out = append(out, eventstore.Recorded{
			Position: g.pos, Tenant: "bench", StreamID: fmt.Sprintf("urn:epc:id:sgtin:0614141.107346.%d", g.n*100+e), Version: 1, ID: uuid.New(),
			Type: tracking.TypeMilestoneReached, SchemaVersion: 1, OccurredAt: at, RecordedAt: at,
			Data:       json.RawMessage(`{"milestone":"departed","siteId":"urn:epc:id:sgln:0614141.00777.0"}`),
			EntityType: "package", Cursor: eventstore.Cursor{TxID: uint64(g.n), Position: g.pos},
		})
	}
	return out
}
