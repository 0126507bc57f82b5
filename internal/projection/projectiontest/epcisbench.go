package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EPCIS query benchmark corpus: 1,000-event documents of ObjectEvents of
// 10 EPCs each. The EPCs come from a pool as large as the events stored
// (a permutation of it), so every EPC appears in exactly 10 events; 200
// business locations, 1,000 read points, 8 business steps, event times
// spread over the year before epcisBenchEnd.
const (
	epcisBenchDocEvents = 1000
	epcisBenchEPCs      = 10
	epcisBenchLocations = 200
	epcisBenchReaders   = 1000
	epcisBenchSpread    = 365 * 24 * time.Hour
	epcisBenchWindow    = 7 * 24 * time.Hour
	epcisBenchTenant    = "bench"
)

var (
	epcisBenchEnd   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	epcisBenchSteps = []string{"receiving", "shipping", "storing", "picking", "packing", "loading", "unloading", "inspecting"}
	epcisBenchZone  = time.FixedZone("", 3600)
)

// epcisBenchEPC is the pool's EPC number n as an SGTIN URN.
func epcisBenchEPC(n int) string {
	return "urn:epc:id:sgtin:0614141.107346." + strconv.Itoa(n)
}

func epcisBenchLocation(n int) string { return "urn:epc:id:sgln:0614141.00888." + strconv.Itoa(n) }

// epcisBenchDocument renders document d of a corpus of total events.
func epcisBenchDocument(d, total int) []byte {
	r := rand.New(rand.NewPCG(uint64(d), 17))
	pool := total // EPC numbers; times 10 slots, each number is used 10 times
	events := make([]any, epcisBenchDocEvents)
	for i := range events {
		n := d*epcisBenchDocEvents + i
		epcs := make([]string, epcisBenchEPCs)
		for k := range epcs {
			// 7,777,777 is prime to 10^k and 2^k: a permutation of the slots.
			epcs[k] = epcisBenchEPC(int((int64(n*epcisBenchEPCs+k) * 7_777_777) % int64(pool*epcisBenchEPCs) % int64(pool)))
		}
		at := epcisBenchEnd.Add(-time.Duration(r.Int64N(int64(epcisBenchSpread))))
		events[i] = map[string]any{
			"type":                "ObjectEvent",
			"eventID":             "urn:uuid:" + uuid.NewString(),
			"eventTime":           at.In(epcisBenchZone).Format(time.RFC3339Nano),
			"eventTimeZoneOffset": "+01:00",
			"epcList":             epcs,
			"action":              "OBSERVE",
			"bizStep":             epcisBenchSteps[r.IntN(len(epcisBenchSteps))],
			"disposition":         "in_progress",
			"readPoint":           map[string]any{"id": "urn:epc:id:sgln:0614141.07346." + strconv.Itoa(r.IntN(epcisBenchReaders))},
			"bizLocation":         map[string]any{"id": epcisBenchLocation(r.IntN(epcisBenchLocations))},
			"bizTransactionList":  []any{map[string]any{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-" + strconv.Itoa(n/100)}},
			"example:shipmentRef": "SHP-" + strconv.Itoa(n/50),
		}
	}
	body, _ := json.Marshal(map[string]any{
		"@context":      []any{epcis.ContextURL, map[string]any{"example": "https://ns.example.com/epcis/"}},
		"type":          "EPCISDocument",
		"schemaVersion": "2.0",
		"creationDate":  epcisBenchEnd.Format(time.RFC3339),
		"epcisBody":     map[string]any{"eventList": events},
	})
	return body
}

// seedEPCIS captures total events (a multiple of 1,000) through the
// capture path, four documents at a time, then lets the EPCIS index
// projection catch up.
func seedEPCIS(b *testing.B, store eventstore.Store, rm ReadModels, total int) {
	b.Helper()
	ctx := context.Background()
	capturer := epcis.NewCapturer(store, rm, epcis.HashStored, nil)
	start := time.Now()
	docs := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for d := range docs {
				doc, err := epcis.ParseDocument(epcisBenchDocument(d, total), 0)
				if err != nil {
					b.Error(err)
					continue
				}
				job, err := capturer.Capture(ctx, epcis.Request{Tenant: epcisBenchTenant, Events: doc.Events})
				if err != nil || !job.Success || job.Captured != len(doc.Events) {
					b.Errorf("capture of document %d: %v, %+v", d, err, job)
				}
			}
		})
	}
	for d := range total / epcisBenchDocEvents {
		docs <- d
	}
	close(docs)
	wg.Wait()
	captured := time.Since(start)
	m := projection.NewManager(store, rm, rm, []string{tracking.ProjectionEPCIS}, projection.Options{BatchSize: 5000})
	// The log's head stops short of transactions older than the oldest
	// running one on the server (others' tests hold it back on a shared
	// server): catch up until every captured event is indexed.
	deadline := time.Now().Add(time.Hour)
	for indexed := 0; indexed < total; {
		if err := m.CatchUp(ctx, tracking.ProjectionEPCIS); err != nil {
			b.Fatal(err)
		}
		indexed = indexedEPCIS(b, rm)
		if indexed < total {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d events indexed after an hour", indexed, total)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.Logf("captured %d events in %s, indexed in %s more", total, captured.Round(time.Millisecond),
		(time.Since(start) - captured).Round(time.Millisecond))
	// As the engines' automatic statistics would, in time.
	if _, err := rm.Engine().SQL().Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

// indexedEPCIS counts the events in the EPCIS index.
func indexedEPCIS(b *testing.B, rm ReadModels) int {
	b.Helper()
	rows, err := rm.Engine().SQL().Query(context.Background(), "SELECT COUNT(*) FROM "+readmodel.TableEPCISEvents)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return int(n)
}

// BenchmarkEPCISQuery stores BENCH_EPCIS_EVENTS EPCIS events (default
// 10,000; the issue-17 figure is for 1,000,000) through the capture path
// and the EPCIS index projection, then answers BENCH_QUERIES (default 300)
// queries of each kind, as GET /epcis/events does without the HTTP
// exchange (parameters parsed, the page read, each event formatted, the
// query document written), from one client:
//
//   - epc: MATCH_epc of a random EPC of the pool (10 events each);
//   - location-week: EQ_bizLocation of a random location of the 200,
//     GE_eventTime/LT_eventTime a random week of the year (about
//     events/10,400 events).
//
// open returns the engine's store and read models: empty, or holding the
// events of an earlier run (which are then queried as they are).
//
// Each kind runs BENCH_ROUNDS rounds (default 3), each logged; the
// benchmark reports the median round's p50, p95 and p99 in ms, and the p99
// of the page reads alone (EPCISEvents, without parsing and formatting).
// Run it once (-benchtime 1x): every run seeds its own store.
//
//	BENCH_EPCIS_EVENTS=1000000 go test -run '^$' -bench EPCISQuery -benchtime 1x -timeout 2h ./internal/postgres/
func BenchmarkEPCISQuery(b *testing.B, open func(b *testing.B) Harness) {
	total := benchEnv("BENCH_EPCIS_EVENTS", 10_000) / epcisBenchDocEvents * epcisBenchDocEvents
	queries := benchEnv("BENCH_QUERIES", 300)
	rounds := benchEnv("BENCH_ROUNDS", 3)
	ctx := context.Background()
	h := open(b)
	stored := indexedEPCIS(b, h.ReadModels)
	if stored == 0 {
		total = max(total, epcisBenchDocEvents)
		seedEPCIS(b, h.Store, h.ReadModels, total)
	} else {
		total = stored // a database seeded by an earlier run
		b.Logf("querying the %d events stored already", total)
	}
	kinds := []struct {
		name   string
		params func(r *rand.Rand) url.Values
	}{
		{"epc", func(r *rand.Rand) url.Values {
			return url.Values{"MATCH_epc": {epcisBenchEPC(r.IntN(total))}}
		}},
		{"location-week", func(r *rand.Rand) url.Values {
			from := epcisBenchEnd.Add(-epcisBenchSpread).Add(time.Duration(r.Int64N(int64(epcisBenchSpread - epcisBenchWindow))))
			return url.Values{"EQ_bizLocation": {epcisBenchLocation(r.IntN(epcisBenchLocations))},
				"GE_eventTime": {from.Format(time.RFC3339)}, "LT_eventTime": {from.Add(epcisBenchWindow).Format(time.RFC3339)}}
		}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		for _, k := range kinds {
			var medians [4][]float64 // p50, p95, p99 of the answers; p99 of their reads alone
			for round := range rounds {
				lat, read := make([]time.Duration, 0, queries), make([]time.Duration, 0, queries)
				found := 0
				for range queries {
					params := k.params(r)
					start := time.Now()
					n, took, err := answerEPCIS(ctx, h.ReadModels, params)
					if err != nil {
						b.Fatal(err)
					}
					lat, read = append(lat, time.Since(start)), append(read, took)
					found += n
				}
				ps := []float64{quantileMs(lat, 0.50), quantileMs(lat, 0.95), quantileMs(lat, 0.99), quantileMs(read, 0.99)}
				for i, v := range ps {
					medians[i] = append(medians[i], v)
				}
				b.Logf("%s round %d: p50 %.2f p95 %.2f p99 %.2f max %.2f ms (reads alone: p50 %.2f p99 %.2f), %.1f events/query",
					k.name, round+1, ps[0], ps[1], ps[2], quantileMs(lat, 1), quantileMs(read, 0.5), ps[3], float64(found)/float64(queries))
			}
			for i, unit := range []string{"-p50-ms", "-p95-ms", "-p99-ms", "-read-p99-ms"} {
				b.ReportMetric(quantile(medians[i], 0.5), k.name+unit)
			}
		}
	}
}

// quantileMs is a quantile of sorted-in-place durations, in ms.
func quantileMs(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
}

func quantile(v []float64, p float64) float64 {
	slices.Sort(v)
	return v[int(p*float64(len(v)-1))]
}

// answerEPCIS answers a GET /epcis/events of params as the HTTP binding
// does and returns the events on the page and the time the read of the
// page (EPCISEvents) took.
func answerEPCIS(ctx context.Context, rm ReadModels, params url.Values) (int, time.Duration, error) {
	q, err := epcis.ParseQuery(params, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	page, err := rm.EPCISEvents(ctx, epcisBenchTenant, q, q.PageToken, q.PerPage)
	if err != nil {
		return 0, 0, err
	}
	read := time.Since(start)
	events := make([]json.RawMessage, len(page.Events))
	for i, f := range page.Events {
		if events[i], err = epcis.Format(f.Data, f.RecordTime, epcis.Formats{}); err != nil {
			return 0, 0, err
		}
	}
	if _, err := epcis.QueryDocument("SimpleEventQuery", events, time.Now()); err != nil {
		return 0, 0, fmt.Errorf("query document: %w", err)
	}
	return len(events), read, nil
}

// benchEnv is the positive number in an environment variable, or def.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
