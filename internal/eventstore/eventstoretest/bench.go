package eventstoretest

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// BenchmarkAppend measures an engine's append throughput, the figures of
// BENCHMARKS.md: single-event appends by 1 and by 32 concurrent writers, and
// 100-event appends by 8 writers. Each writer appends to a stream of its own
// at the exact version it knows, as the tracking service does. open returns a
// new, empty store per sub-benchmark. Each reports events/s.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) eventstore.Store) {
	for _, c := range []struct {
		name             string
		writers, perCall int
	}{
		{"single/writers=1", 1, 1},
		{"single/writers=32", 32, 1},
		{"batch100/writers=8", 8, 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			store := open(b)
			benchAppend(b, store, c.writers, c.perCall)
		})
	}
	b.Run("fanout1000", func(b *testing.B) {
		benchFanout(b, open(b), 1000)
	})
}

// benchFanout is the EPCIS mapping's shape (each captured event's objects
// become tracking entities): b.N new streams of one event each, in rounds of
// perRound streams loaded together (none exists yet) and then appended
// together by one AppendAll, as tracking.Service.RecordBatch does.
func benchFanout(b *testing.B, store eventstore.Store, perRound int) {
	ctx := context.Background()
	data := json.RawMessage(`{"eventID":"urn:uuid:6f2b1a4e-0000-4000-8000-000000000001","eventType":"ObjectEvent","role":"epc"}`)
	at := time.Now().Add(-time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += perRound {
		n := min(perRound, b.N-done)
		refs := make([]eventstore.StreamRef, n)
		reqs := make([]eventstore.AppendRequest, n)
		for i := range n {
			id := "urn:epc:id:sgtin:0614141.107346.b" + strconv.Itoa(done+i)
			refs[i] = eventstore.StreamRef{Tenant: "bench", StreamID: id}
			reqs[i] = eventstore.AppendRequest{Tenant: "bench", StreamID: id, EntityType: "package",
				Expected: eventstore.Exact(0), Events: []eventstore.Event{{ID: uuid.New(), Type: "x-epcis-event",
					SchemaVersion: 1, Data: data, OccurredAt: at, Metadata: eventstore.Metadata{Source: "epcis", CausationID: "bench"}}}}
		}
		if _, err := store.LoadStreams(ctx, refs, 1000); err != nil {
			b.Fatal(err)
		}
		for _, o := range store.AppendAll(ctx, reqs) {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// benchAppend runs b.N appends of perCall events, spread over writers.
func benchAppend(b *testing.B, store eventstore.Store, writers, perCall int) {
	ctx := context.Background()
	data := json.RawMessage(`{"milestone":"arrived","siteId":"AMS-HUB-01","location":{"lat":52.1,"lon":4.3}}`)
	at := time.Now().Add(-time.Hour)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			stream := "bench-" + strconv.Itoa(w)
			var version int64
			for next.Add(1) <= int64(b.N) {
				evs := make([]eventstore.Event, perCall)
				for i := range evs {
					evs[i] = eventstore.Event{ID: uuid.New(), Type: "MilestoneReached", SchemaVersion: 1, Data: data,
						OccurredAt: at, Metadata: eventstore.Metadata{Source: "bench"}}
				}
				res, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "bench", StreamID: stream,
					EntityType: "shipment", Expected: eventstore.Exact(version), Events: evs})
				if err != nil {
					b.Error(err)
					return
				}
				version = res.Version
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*perCall)/el.Seconds(), "events/s")
}
