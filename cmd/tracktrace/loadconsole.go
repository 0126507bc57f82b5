package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// The console scenario seeds --entities entities with journeys between
// consoleHubs (or reuses those a run before it seeded on the same server),
// then reads every console page in turn and reports each page's latency.
//
// Entity i's journey starts at a time spread over the 30 days before the
// seeding, so that each of the metrics page's ranges has its share:
// registered, picked up at one hub (a milestone with a location and a
// planned time), a position report on the way, an operation at the other
// hub (sorting, loading or a customs check, 5 to 59 minutes), a position
// report there, and an end: delivered or out for delivery (half of them
// with a location and a planned time), returned (1 in 20), or an open
// exception (1 in 20). Every 50th is a container, every 5th a shipment,
// the rest packages; every 1,000th is a vehicle that reports its position
// consoleTrack times on the way: the entity page at its largest.

// consoleTrack is the number of position reports of a vehicle's journey.
const consoleTrack = 300

// consoleSpan is how far back the seeded journeys start.
const consoleSpan = 30 * 24 * time.Hour

// consoleSeedBatch is the number of entities per seeding batch request, and
// consoleSeedTries how often one is sent before the seeding fails.
const (
	consoleSeedBatch = 100
	consoleSeedTries = 5
)

// consoleHubs are the sites the journeys go between; each is also created
// as a site (a 2 km circle), so that entity maps draw it.
var consoleHubs = []struct {
	name     string
	lat, lon float64
}{
	{"Rotterdam", 51.92, 4.48}, {"Antwerp", 51.22, 4.40}, {"Hamburg", 53.55, 9.99}, {"Milan", 45.46, 9.19},
	{"Lyon", 45.76, 4.84}, {"Madrid", 40.42, -3.70}, {"Warsaw", 52.23, 21.01}, {"Prague", 50.08, 14.44},
	{"Vienna", 48.21, 16.37}, {"Copenhagen", 55.68, 12.57}, {"Stockholm", 59.33, 18.07}, {"Dublin", 53.35, -6.26},
	{"Lisbon", 38.72, -9.14}, {"Athens", 37.98, 23.73}, {"Istanbul", 41.01, 28.98}, {"Casablanca", 33.57, -7.59},
	{"New York", 40.71, -74.01}, {"Singapore", 1.35, 103.82}, {"Shanghai", 31.23, 121.47}, {"Dubai", 25.20, 55.27},
}

// consoleOperations are the operations at the second hub, in turn.
var consoleOperations = []string{"sorting", "loading", "customs_check"}

// consoleEntityID names the console scenario's entity i.
func consoleEntityID(i int) string { return "CON-" + strconv.Itoa(i) }

func consoleSiteID(k int) string { return "CON-HUB-" + strconv.Itoa(k) }

// consoleJourney returns entity i's append item, its journey starting
// consoleSpan before seeded (at the latest 8 hours before it).
func (lt *loadTester) consoleJourney(i int, seeded time.Time) map[string]any {
	n := lt.o.entities
	from, to := i%len(consoleHubs), (i*7+3)%len(consoleHubs)
	if to == from {
		to = (from + 1) % len(consoleHubs)
	}
	a, b := consoleHubs[from], consoleHubs[to]
	t0 := seeded.Add(-consoleSpan).Add(time.Duration(float64(consoleSpan-8*time.Hour) * float64(i) / float64(n))).Truncate(time.Second)
	at := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	loc := func(lat, lon float64) map[string]any { return map[string]any{"lat": lat, "lon": lon} }
	ev := func(typ string, d time.Duration, data map[string]any) map[string]any {
		return map[string]any{"eventId": uuid.New(), "type": typ, "occurredAt": at(d), "data": data}
	}
	entityType := "package"
	switch {
	case i%1000 == 0:
		entityType = "vehicle"
	case i%50 == 0:
		entityType = "container"
	case i%5 == 0:
		entityType = "shipment"
	}
	// Picked up on time or up to 40 minutes late.
	late := time.Duration(i%9) * 5 * time.Minute
	events := []any{
		ev("EntityRegistered", 0, map[string]any{"reference": "REF-" + strconv.Itoa(i), "origin": a.name, "destination": b.name}),
		ev("MilestoneReached", 10*time.Minute+late, map[string]any{"milestone": "picked_up", "siteId": consoleSiteID(from),
			"location": loc(a.lat, a.lon), "plannedAt": at(10 * time.Minute)}),
	}
	track := 1
	if entityType == "vehicle" {
		track = consoleTrack
	}
	for k := 1; k <= track; k++ {
		f := float64(k) / float64(track+1)
		wobble := 0.3 * math.Sin(float64(k)/7)
		events = append(events, ev("LocationReported", 15*time.Minute+time.Duration(f*float64(5*time.Hour)),
			map[string]any{"lat": a.lat + f*(b.lat-a.lat) + wobble, "lon": a.lon + f*(b.lon-a.lon), "speedKph": 60 + k%30}))
	}
	op, opID := consoleOperations[i%len(consoleOperations)], "OP-"+strconv.Itoa(i)
	took := time.Duration(5+i%55) * time.Minute
	events = append(events,
		ev("OperationStarted", 6*time.Hour, map[string]any{"operation": op, "operationId": opID, "siteId": consoleSiteID(to)}),
		ev("OperationCompleted", 6*time.Hour+took, map[string]any{"operation": op, "operationId": opID,
			"siteId": consoleSiteID(to), "outcome": "succeeded"}),
		ev("LocationReported", 7*time.Hour, map[string]any{"lat": b.lat + 0.01, "lon": b.lon - 0.01, "siteId": consoleSiteID(to)}))
	end := 7*time.Hour + 30*time.Minute
	switch r := i % 20; {
	case r == 0:
		events = append(events, ev("ExceptionRaised", end, map[string]any{"exceptionId": "EX-" + strconv.Itoa(i),
			"code": "delay", "severity": "medium", "description": "missed the connection at " + b.name}))
	case r == 1:
		events = append(events, ev("MilestoneReached", end, map[string]any{"milestone": "returned", "siteId": consoleSiteID(from)}))
	case r%2 == 0:
		events = append(events, ev("MilestoneReached", end, map[string]any{"milestone": "delivered", "siteId": consoleSiteID(to),
			"location": loc(b.lat, b.lon), "plannedAt": at(end - late)}))
	default:
		events = append(events, ev("MilestoneReached", end, map[string]any{"milestone": "out_for_delivery", "siteId": consoleSiteID(to)}))
	}
	return map[string]any{"entityId": consoleEntityID(i), "entityType": entityType, "events": events}
}

// consoleSeeded reports whether the server holds the last entity the
// scenario would seed (a run before this one seeded the same number).
func (lt *loadTester) consoleSeeded(ctx context.Context) bool {
	return lt.request(ctx, "GET", "/api/v1/entities/"+consoleEntityID(lt.o.entities-1), nil) == http.StatusOK
}

// seedConsole writes the journeys, consoleSeedBatch entities a request,
// creates the hubs' sites and waits for the projections to catch up.
func (lt *loadTester) seedConsole(ctx context.Context, progress io.Writer) error {
	if lt.consoleSeeded(ctx) {
		fmt.Fprintf(progress, "loadtest: the server holds %s: reusing its entities\n", consoleEntityID(lt.o.entities-1))
	} else {
		fmt.Fprintf(progress, "loadtest: seeding %d entities for the console\n", lt.o.entities)
		seeded := time.Now()
		failed := lt.parallel((lt.o.entities+consoleSeedBatch-1)/consoleSeedBatch, func(n int) bool {
			var items []any
			for k := n * consoleSeedBatch; k < min((n+1)*consoleSeedBatch, lt.o.entities); k++ {
				items = append(items, lt.consoleJourney(k, seeded))
			}
			// A failed batch is sent again as it was: its events keep their
			// ids, so what was stored the first time is replayed, not
			// stored twice.
			for range consoleSeedTries {
				if lt.appendBatch(ctx, items) {
					return true
				}
			}
			return false
		})
		if failed > 0 {
			return fmt.Errorf("%d seeding requests failed", failed)
		}
		fmt.Fprintf(progress, "loadtest: seeded %d entities in %.1fs\n", lt.o.entities, time.Since(seeded).Seconds())
	}
	for k, h := range consoleHubs {
		body := map[string]any{"name": h.name + " hub", "geometry": map[string]any{"type": "Point",
			"coordinates": []float64{h.lon, h.lat}, "radius": 2000}}
		if st := lt.request(ctx, "PUT", "/api/v1/sites/"+consoleSiteID(k), body); st != http.StatusOK && st != http.StatusCreated {
			return fmt.Errorf("PUT /api/v1/sites/%s answered %d", consoleSiteID(k), st)
		}
	}
	return lt.awaitProjections(ctx, progress)
}

// appendBatch posts a batch and reports whether every item was stored.
func (lt *loadTester) appendBatch(ctx context.Context, items []any) bool {
	var out struct {
		Results []struct {
			Status int `json:"status"`
		} `json:"results"`
	}
	st, _, err := lt.exchange(ctx, "POST", "/api/v1/events/batch", map[string]any{"items": items}, "", &out)
	if st != http.StatusOK || err != nil || len(out.Results) != len(items) {
		return false
	}
	for _, r := range out.Results {
		if r.Status < 200 || r.Status > 299 {
			return false
		}
	}
	return true
}

// awaitProjections waits, at most 15 minutes, until every projection has
// applied the whole log.
func (lt *loadTester) awaitProjections(ctx context.Context, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	for {
		var out struct {
			Projections []struct {
				Name      string `json:"name"`
				LagEvents int64  `json:"lagEvents"`
				Rebuild   any    `json:"rebuild"`
			} `json:"projections"`
		}
		st, _, err := lt.exchange(ctx, "GET", "/api/v1/projections", nil, "", &out)
		if err == nil && st == http.StatusOK {
			var lag int64
			for _, p := range out.Projections {
				lag += p.LagEvents
				if p.Rebuild != nil {
					lag++
				}
			}
			if lag == 0 {
				return nil
			}
			fmt.Fprintf(progress, "loadtest: waiting for the projections: %d events behind\n", lag)
		}
		select {
		case <-ctx.Done():
			return errors.New("the projections did not catch up within 15 minutes")
		case <-time.After(2 * time.Second):
		}
	}
}

// pageLoad is one of the pages the console scenario reads: its name in
// the report, its path (given a random number) and the status that is its
// success.
type pageLoad struct {
	name string
	path func(r *rand.Rand, n int) string
	want int
}

// pageLoads are the pages the console scenario reads, each as often.
// The streams are left out: they do not answer, they follow.
func pageLoads() []pageLoad {
	fixed := func(p string) func(*rand.Rand, int) string { return func(*rand.Rand, int) string { return p } }
	entity := func(suffix string) func(*rand.Rand, int) string {
		return func(r *rand.Rand, n int) string {
			return "/console/entities/" + consoleEntityID(r.IntN(n)) + suffix
		}
	}
	return []pageLoad{
		{"list", fixed("/console/"), http.StatusOK},
		{"list-type", fixed("/console/entities?entityType=shipment"), http.StatusOK},
		{"list-status", fixed("/console/entities?status=returned"), http.StatusOK},
		// No container is ever returned: a filter that matches nothing.
		{"list-empty", fixed("/console/entities?entityType=container&status=returned"), http.StatusOK},
		{"list-page", func(r *rand.Rand, n int) string {
			return "/console/entities?after=" + url.QueryEscape(consoleEntityID(r.IntN(n)))
		}, http.StatusOK},
		{"list-fragment", fixed("/console/fragments/entities?status=delivered"), http.StatusOK},
		{"search", func(r *rand.Rand, n int) string { return "/console/?id=" + consoleEntityID(r.IntN(n)) }, http.StatusSeeOther},
		{"entity", entity(""), http.StatusOK},
		{"entity-vehicle", func(r *rand.Rand, n int) string {
			return "/console/entities/" + consoleEntityID(1000*r.IntN((n+999)/1000))
		}, http.StatusOK},
		{"entity-fragment", entity("/fragment"), http.StatusOK},
		{"metrics-24h", fixed("/console/metrics?range=24h"), http.StatusOK},
		{"metrics-7d", fixed("/console/metrics?range=7d"), http.StatusOK},
		{"metrics-30d", fixed("/console/metrics?range=30d"), http.StatusOK},
		{"metrics-filtered", fixed("/console/metrics?range=7d&entityType=package&operation=sorting&milestone=delivered"), http.StatusOK},
		{"ops", fixed("/console/ops"), http.StatusOK},
	}
}

// consoleOp reads one page, picked at random, and returns the page's name
// and the status, 200 when the page answered what it should (a search
// answers 303).
func (lt *loadTester) consoleOp(ctx context.Context, r *rand.Rand) (string, int) {
	p := lt.pages[r.IntN(len(lt.pages))]
	st := lt.request(ctx, "GET", p.path(r, lt.o.entities), nil)
	if st == p.want {
		st = http.StatusOK
	}
	return p.name, st
}

// pageSummary is the console scenario's figures of one page.
type pageSummary struct {
	// FirstMs is the page's first answer, before the run (not counted in
	// the run's figures): what a page costs that was not read before
	// since the server started (the metrics pages' first computation).
	FirstMs   float64        `json:"firstMs"`
	Requests  int64          `json:"requests"`
	Errors    int64          `json:"errors"`
	LatencyMs latencySummary `json:"latencyMs"`
}

// warmConsole reads each page once, in turn, and returns how long each
// first answer took, in milliseconds.
func (lt *loadTester) warmConsole(ctx context.Context) (map[string]float64, error) {
	r := rand.New(rand.NewPCG(1, 2))
	first := map[string]float64{}
	for _, p := range lt.pages {
		t0 := time.Now()
		if st := lt.request(ctx, "GET", p.path(r, lt.o.entities), nil); st != p.want {
			return nil, fmt.Errorf("%s answered %d", p.name, st)
		}
		first[p.name] = float64(time.Since(t0).Microseconds()) / 1000
	}
	return first, nil
}
