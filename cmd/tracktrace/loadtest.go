package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// loadtestOptions are the flags of `tracktrace loadtest`.
type loadtestOptions struct {
	url         string
	scenario    string
	connections int
	rate        float64
	duration    time.Duration
	entities    int
	batchSize   int
	epcisEvents int
	epcisEPCs   int
	tenant      string
	token       string
	webhook     webhookOptions
}

// loadReport is the JSON report of a load test.
type loadReport struct {
	Scenario       string           `json:"scenario"`
	URL            string           `json:"url"`
	Connections    int              `json:"connections"`
	TargetRate     float64          `json:"targetRate,omitempty"`
	DurationS      float64          `json:"durationSeconds"`
	Requests       int64            `json:"requests"`
	NotModified    int64            `json:"notModified,omitempty"`
	Events         int64            `json:"events"`
	RequestsPerS   float64          `json:"requestsPerSecond"`
	EventsPerS     float64          `json:"eventsPerSecond"`
	LatencyMs      latencySummary   `json:"latencyMs"`
	ErrorsByStatus map[string]int64 `json:"errorsByStatus"`
	// Jobs follows the capture jobs of epcis-capture.
	Jobs *jobSummary `json:"jobs,omitempty"`
	// Webhooks is what the webhook scenario's receiver saw.
	Webhooks *webhookSummary `json:"webhooks,omitempty"`
	// Pages are the console scenario's figures, page by page.
	Pages map[string]*pageSummary `json:"pages,omitempty"`
}

// jobSummary is what epcis-capture saw of the jobs of its captures: each
// 202's Location is read until the job shows running=false.
type jobSummary struct {
	Checked   int64 `json:"checked"`
	Succeeded int64 `json:"succeeded"`
	// Failed finished with success=false; NotVisible were not seen
	// finished within jobDeadline of their 202.
	Failed     int64 `json:"failed"`
	NotVisible int64 `json:"notVisible"`
	// VisibleMs is the delay from the 202 to the answer that showed the
	// job finished.
	VisibleMs latencySummary `json:"visibleMs"`
	visible   []time.Duration
}

// record counts a job as awaitJob returned it.
func (s *jobSummary) record(job captureState, delay time.Duration, seen bool) {
	s.Checked++
	switch {
	case !seen:
		s.NotVisible++
		return
	case job.Success:
		s.Succeeded++
	default:
		s.Failed++
	}
	s.visible = append(s.visible, delay)
}

// add adds the counts of o to s.
func (s *jobSummary) add(o *jobSummary) {
	s.Checked += o.Checked
	s.Succeeded += o.Succeeded
	s.Failed += o.Failed
	s.NotVisible += o.NotVisible
	s.visible = append(s.visible, o.visible...)
}

type latencySummary struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// loadtest drives a running server with one scenario and prints a JSON
// report: append-single, append-batch, read-entity, read-timeline, mixed,
// revalidate-entity, revalidate-timeline, epcis-capture, webhook. A revalidation is
// a read with If-None-Match naming the ETag its path last answered (each
// path is read once before the run): 304 counts as a success, and the
// report says how many there were. epcis-capture posts EPCIS documents of
// new events to /epcis/capture, counts the EPCIS events their jobs
// captured, and reports how long each job took to be seen finished; a
// capture under way at the end of the run is waited for. webhook appends
// events to entities its own subscriptions follow and measures their
// delivery to its own receiver (hookSink). console seeds a store of
// journeys (loadconsole.go) and reads every console page, reporting each.
func loadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadtestOptions
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL; several, comma-separated (replicas), take turns")
	fs.StringVar(&o.scenario, "scenario", "append-single", "append-single | append-batch | read-entity | read-timeline | mixed | revalidate-entity | revalidate-timeline | epcis-capture | webhook | console")
	fs.IntVar(&o.connections, "connections", 64, "concurrent connections")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second in all; events per second in webhook (0: as fast as the server answers)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&o.entities, "entities", 10000, "distinct entities written or read")
	fs.IntVar(&o.batchSize, "batch-size", 500, "events per request in append-batch (500) and webhook (1: each to its entity's stream)")
	fs.IntVar(&o.epcisEvents, "epcis-events", 100, "ObjectEvents per document in epcis-capture")
	fs.IntVar(&o.epcisEPCs, "epcis-epcs", 10, "EPCs per event in epcis-capture")
	fs.StringVar(&o.tenant, "tenant", "loadtest", "X-Tenant-ID (without authentication)")
	fs.StringVar(&o.token, "token", "", "bearer token (with authentication)")
	o.webhook.flags(fs)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	switch o.scenario {
	case "webhook":
		if err := o.webhook.check(o.entities); err != nil {
			return err
		}
		batchSet := false
		fs.Visit(func(f *flag.Flag) { batchSet = batchSet || f.Name == "batch-size" })
		if !batchSet {
			o.batchSize = 1
		}
	case "append-single", "append-batch", "read-entity", "read-timeline", "mixed", "revalidate-entity", "revalidate-timeline", "epcis-capture", "console":
	default:
		return &usageError{fmt.Sprintf("unknown scenario %q", o.scenario)}
	}
	if o.connections < 1 || o.entities < 1 || o.batchSize < 1 || o.epcisEvents < 1 || o.epcisEPCs < 1 || o.duration <= 0 || o.rate < 0 {
		return &usageError{"connections, entities, batch-size, epcis-events and epcis-epcs must be positive, duration positive, rate not negative"}
	}
	for u := range strings.SplitSeq(o.url, ",") {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return &usageError{fmt.Sprintf("--url: %q is not an http(s) base URL", u)}
		}
	}
	lt := newLoadTester(o)
	if o.scenario == "webhook" {
		return lt.webhook(ctx, stdout, stderr)
	}
	var first map[string]float64
	if o.scenario == "console" {
		if err := lt.seedConsole(ctx, stderr); err != nil {
			return fmt.Errorf("loadtest: seed: %w", err)
		}
		var err error
		if first, err = lt.warmConsole(ctx); err != nil {
			return fmt.Errorf("loadtest: first reads: %w", err)
		}
	} else if o.scenario != "append-single" && o.scenario != "append-batch" && o.scenario != "epcis-capture" {
		fmt.Fprintf(stderr, "loadtest: seeding %d entities to read\n", o.entities)
		if err := lt.seed(ctx); err != nil {
			return fmt.Errorf("loadtest: seed: %w", err)
		}
	}
	if strings.HasPrefix(o.scenario, "revalidate-") {
		fmt.Fprintf(stderr, "loadtest: reading the %d entities once for their ETags\n", o.entities)
		if err := lt.prime(ctx); err != nil {
			return fmt.Errorf("loadtest: prime: %w", err)
		}
	}
	rep := lt.run(ctx, stderr)
	for name, ms := range first {
		if p := rep.Pages[name]; p != nil {
			p.FirstMs = ms
		}
	}
	return writeReport(stdout, rep)
}

// writeReport prints a report as indented JSON.
func writeReport(w io.Writer, rep loadReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

type loadTester struct {
	o      loadtestOptions
	urls   []string
	turn   atomic.Uint64 // the next request's URL, round robin
	client *http.Client
	start  time.Time
	seq    atomic.Int64
	// runTag starts the serials of epcis-capture's EPCs, so that no two
	// runs against one server name the same objects.
	runTag string
	// etags holds the ETag each path last answered (revalidate-*).
	etags sync.Map
	// hooks is the webhook scenario's receiver, which names its entities.
	hooks *hookSink
	// pages are what the console scenario reads.
	pages []pageLoad
}

func newLoadTester(o loadtestOptions) *loadTester {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        o.connections,
		MaxIdleConnsPerHost: o.connections,
		MaxConnsPerHost:     o.connections,
		IdleConnTimeout:     30 * time.Second,
	}
	// A redirect is an answer (the console's search), not followed.
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &loadTester{o: o, urls: strings.Split(o.url, ","), start: time.Now(), pages: pageLoads(),
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: noFollow},
		runTag: strconv.FormatUint(uint64(rand.Uint32()), 36)}
}

// entity names entity number i (modulo --entities).
func (lt *loadTester) entity(i int) string {
	i %= lt.o.entities
	if lt.hooks != nil {
		return lt.hooks.entity(i)
	}
	return "LT-" + strconv.Itoa(i)
}

// event renders one event; occurredAt moves forward so that late-event
// logic sees a realistic stream.
func (lt *loadTester) event() map[string]any {
	n := lt.seq.Add(1)
	return map[string]any{"eventId": uuid.New(), "type": "LocationReported",
		"occurredAt": lt.start.Add(-time.Hour + time.Duration(n)*time.Millisecond).UTC().Format(time.RFC3339Nano),
		"data":       map[string]any{"lat": 52.1, "lon": 4.3, "siteId": "AMS-HUB-01"}}
}

// request sends one request and returns its status (0 for a transport error).
func (lt *loadTester) request(ctx context.Context, method, path string, body any) int {
	st, _ := lt.send(ctx, method, path, body, "")
	return st
}

// revalidate reads path with If-None-Match naming the ETag it last answered,
// and returns the status.
func (lt *loadTester) revalidate(ctx context.Context, path string) int {
	var tag string
	if v, ok := lt.etags.Load(path); ok {
		tag = v.(string)
	}
	st, h := lt.send(ctx, "GET", path, nil, tag)
	if newTag := h.Get("ETag"); st == http.StatusOK && newTag != "" && newTag != tag {
		lt.etags.Store(path, newTag)
	}
	return st
}

// send sends one request, with If-None-Match when ifNoneMatch is set, and
// returns its status (0 for a transport error) and its headers.
func (lt *loadTester) send(ctx context.Context, method, path string, body any, ifNoneMatch string) (int, http.Header) {
	st, h, _ := lt.exchange(ctx, method, path, body, ifNoneMatch, nil)
	return st, h
}

// exchange sends one request and returns its status (0 for a transport
// error) and headers; a 200's or 201's JSON body is decoded into out when
// out is not nil, and a body that does not decode is the error.
func (lt *loadTester) exchange(ctx context.Context, method, path string, body any, ifNoneMatch string, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	base := lt.urls[lt.turn.Add(1)%uint64(len(lt.urls))]
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if lt.o.token != "" {
		req.Header.Set("Authorization", "Bearer "+lt.o.token)
	} else {
		req.Header.Set("X-Tenant-ID", lt.o.tenant)
	}
	resp, err := lt.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if out != nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated) {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, err
}

// epcisSteps are the business steps of epcis-capture's events, in turn:
// each with the disposition and action CBV pairs it with.
var epcisSteps = []struct{ bizStep, disposition, action string }{
	{"commissioning", "active", "ADD"},
	{"packing", "in_progress", "OBSERVE"},
	{"shipping", "in_transit", "OBSERVE"},
	{"receiving", "in_progress", "OBSERVE"},
}

// epcisDocument renders an EPCISDocument of new ObjectEvents: every
// eventID and every EPC appears in no other document, so the capture
// stores all of them. Each event carries a user extension field under a
// namespace of the document's context.
func (lt *loadTester) epcisDocument() map[string]any {
	shipment := "SHP-" + lt.runTag + "-" + strconv.FormatInt(lt.seq.Load(), 10)
	events := make([]any, lt.o.epcisEvents)
	for i := range events {
		n := lt.seq.Add(1)
		epcs := make([]string, lt.o.epcisEPCs)
		for k := range epcs {
			// A serial of at most 20 characters (GS1 AI 21): the run's tag
			// and a number.
			epcs[k] = "urn:epc:id:sgtin:0614141.107346." + lt.runTag + strconv.FormatInt(n*int64(lt.o.epcisEPCs)+int64(k), 10)
		}
		step := epcisSteps[n%int64(len(epcisSteps))]
		events[i] = map[string]any{
			"type":                "ObjectEvent",
			"eventID":             "urn:uuid:" + uuid.NewString(),
			"eventTime":           lt.start.Add(-time.Hour + time.Duration(n)*time.Millisecond).In(epcisZone).Format(time.RFC3339Nano),
			"eventTimeZoneOffset": "+01:00",
			"epcList":             epcs,
			"action":              step.action,
			"bizStep":             step.bizStep,
			"disposition":         step.disposition,
			"readPoint":           map[string]any{"id": "urn:epc:id:sgln:0614141.07346.1234"},
			"bizLocation":         map[string]any{"id": "urn:epc:id:sgln:0614141.00888.0"},
			"example:shipmentRef": shipment,
		}
	}
	return map[string]any{
		"@context":      []any{"https://ref.gs1.org/standards/epcis/epcis-context.jsonld", map[string]any{"example": "https://ns.example.com/epcis/"}},
		"type":          "EPCISDocument",
		"schemaVersion": "2.0",
		"creationDate":  time.Now().UTC().Format(time.RFC3339Nano),
		"epcisBody":     map[string]any{"eventList": events},
	}
}

// epcisZone is the zone of epcis-capture's event times (+01:00).
var epcisZone = time.FixedZone("", 3600)

// captureState is what epcis-capture reads of a capture job.
type captureState struct {
	Running  bool `json:"running"`
	Success  bool `json:"success"`
	Captured int  `json:"capturedEvents"`
}

// jobDeadline bounds the wait for a capture job to be seen finished.
const jobDeadline = 10 * time.Second

// capture posts one EPCIS document and returns the status and the job's
// Location.
func (lt *loadTester) capture(ctx context.Context) (int, string) {
	st, h := lt.send(ctx, "POST", "/epcis/capture", lt.epcisDocument(), "")
	return st, h.Get("Location")
}

// awaitJob reads a capture job until it shows running=false, from the
// moment its 202 arrived (accepted), and returns the job and the delay; ok
// is false when the job was not seen finished within jobDeadline.
func (lt *loadTester) awaitJob(ctx context.Context, location string, accepted time.Time) (job captureState, delay time.Duration, ok bool) {
	ctx, cancel := context.WithDeadline(ctx, accepted.Add(jobDeadline))
	defer cancel()
	pause := time.Millisecond
	for {
		job = captureState{}
		st, _, err := lt.exchange(ctx, "GET", location, nil, "", &job)
		if st == http.StatusOK && err == nil && !job.Running {
			return job, time.Since(accepted), true
		}
		select {
		case <-ctx.Done():
			return job, 0, false
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// op performs one operation of the scenario and returns its status and the
// events it wrote.
func (lt *loadTester) op(ctx context.Context, r *rand.Rand, scenario string) (int, int) {
	if scenario == "mixed" {
		switch x := r.IntN(10); {
		case x < 5:
			scenario = "append-single"
		case x < 8:
			scenario = "read-entity"
		default:
			scenario = "read-timeline"
		}
	}
	switch scenario {
	case "append-single":
		st, _ := lt.appendEvents(ctx, r, 1, false)
		return st, 1
	case "append-batch":
		st, _ := lt.appendEvents(ctx, r, lt.o.batchSize, true)
		return st, lt.o.batchSize
	case "webhook":
		st, sent := lt.appendEvents(ctx, r, lt.o.batchSize, lt.o.batchSize > 1)
		if st >= 200 && st < 300 {
			lt.hooks.appended(sent)
		}
		return st, len(sent)
	}
	id := lt.entity(r.IntN(lt.o.entities))
	switch scenario {
	case "read-entity":
		return lt.request(ctx, "GET", "/api/v1/entities/"+id, nil), 0
	case "revalidate-entity", "revalidate-timeline":
		return lt.revalidate(ctx, revalidatePath(scenario, id)), 0
	default:
		return lt.request(ctx, "GET", "/api/v1/entities/"+id+"/timeline?limit=100", nil), 0
	}
}

// appendedEvent is an event sent to be appended: its id and its entity's
// number.
type appendedEvent struct {
	id     uuid.UUID
	entity int
}

// appendEvents appends n events to entities picked at random, in one batch
// request (batch) or else in one request to one entity's stream, and
// returns the status and the events sent.
func (lt *loadTester) appendEvents(ctx context.Context, r *rand.Rand, n int, batch bool) (int, []appendedEvent) {
	sent := make([]appendedEvent, n)
	events := make([]any, n)
	for i := range sent {
		ev := lt.event()
		sent[i] = appendedEvent{id: ev["eventId"].(uuid.UUID), entity: r.IntN(lt.o.entities)}
		events[i] = ev
	}
	if !batch {
		return lt.request(ctx, "POST", "/api/v1/entities/"+lt.entity(sent[0].entity)+"/events",
			map[string]any{"entityType": "package", "events": events}), sent
	}
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"entityId": lt.entity(sent[i].entity), "entityType": "package", "events": events[i : i+1]}
	}
	return lt.request(ctx, "POST", "/api/v1/events/batch", map[string]any{"items": items}), sent
}

// revalidatePath is the path a revalidate scenario reads.
func revalidatePath(scenario, id string) string {
	if scenario == "revalidate-entity" {
		return "/api/v1/entities/" + id
	}
	return "/api/v1/entities/" + id + "/timeline?limit=100"
}

// prime reads every entity's path once, so that the run's revalidations
// know their ETags.
func (lt *loadTester) prime(ctx context.Context) error {
	failed := lt.parallel(lt.o.entities, func(i int) bool {
		return lt.revalidate(ctx, revalidatePath(lt.o.scenario, lt.entity(i))) == http.StatusOK
	})
	if failed > 0 {
		return fmt.Errorf("%d reads failed", failed)
	}
	return nil
}

// seed writes a few events to every entity so that reads find them.
func (lt *loadTester) seed(ctx context.Context) error {
	failed := lt.parallel((lt.o.entities+99)/100, func(n int) bool {
		var items []any
		for k := n * 100; k < min((n+1)*100, lt.o.entities); k++ {
			items = append(items, map[string]any{"entityId": lt.entity(k), "entityType": "package",
				"events": []any{lt.event(), lt.event(), lt.event()}})
		}
		return lt.request(ctx, "POST", "/api/v1/events/batch", map[string]any{"items": items}) == http.StatusOK
	})
	if failed > 0 {
		return fmt.Errorf("%d seeding requests failed", failed)
	}
	return nil
}

// parallel calls f(i) for i from 0 to n-1, --connections at a time, and
// returns how many calls returned false.
func (lt *loadTester) parallel(n int, f func(i int) bool) int {
	sem := make(chan struct{}, lt.o.connections)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if !f(i) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// run drives the scenario for the duration and summarizes.
func (lt *loadTester) run(ctx context.Context, progress io.Writer) loadReport {
	// A capture is not cut by the end of the run: the events of one cut
	// would be stored but not counted. Its job is followed to its end.
	// Nor is a webhook append: its events would be delivered unaccounted.
	uncut := ctx
	ctx, cancel := context.WithTimeout(ctx, lt.o.duration)
	defer cancel()
	var tokens chan struct{}
	if lt.o.rate > 0 {
		tokens = make(chan struct{}, lt.o.connections)
		perRequest := 1.0 // --rate counts requests, or events in webhook
		if lt.o.scenario == "webhook" {
			perRequest = float64(lt.o.batchSize)
		}
		go func() {
			t := time.NewTicker(max(time.Duration(float64(time.Second)*perRequest/lt.o.rate), 1))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					select {
					case tokens <- struct{}{}:
					default: // the server is behind: the missed slot is not replayed
					}
				}
			}
		}()
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      = map[string]int64{}
		requests  atomic.Int64
		notMod    atomic.Int64
		events    atomic.Int64
		wg        sync.WaitGroup
		jobs      jobSummary
		pages     = map[string][]time.Duration{}
		pageErrs  = map[string]int64{}
	)
	began := time.Now()
	for w := range lt.o.connections {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))
			var local []time.Duration
			var localJobs jobSummary
			localErrs := map[string]int64{}
			localPages, localPageErrs := map[string][]time.Duration{}, map[string]int64{}
			for ctx.Err() == nil {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
					}
					if ctx.Err() != nil {
						break
					}
				}
				t0 := time.Now()
				var st, n int
				var location, page string
				switch lt.o.scenario {
				case "console":
					page, st = lt.consoleOp(ctx, r)
				case "epcis-capture":
					st, location = lt.capture(uncut)
				case "webhook":
					st, n = lt.op(uncut, r, lt.o.scenario)
				default:
					st, n = lt.op(ctx, r, lt.o.scenario)
				}
				if ctx.Err() != nil && st == 0 {
					break // cut by the end of the run
				}
				accepted := time.Now()
				local = append(local, accepted.Sub(t0))
				requests.Add(1)
				if page != "" {
					localPages[page] = append(localPages[page], accepted.Sub(t0))
					if st != http.StatusOK {
						localPageErrs[page]++
					}
				}
				if st == http.StatusAccepted && location != "" {
					// The events a capture stored are those its job counts.
					job, delay, seen := lt.awaitJob(uncut, location, accepted)
					localJobs.record(job, delay, seen)
					n = job.Captured
				}
				switch {
				case st >= 200 && st < 300:
					events.Add(int64(n))
				case st == http.StatusNotModified:
					notMod.Add(1)
				default:
					localErrs[strconv.Itoa(st)]++
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			for k, v := range localErrs {
				errs[k] += v
			}
			jobs.add(&localJobs)
			for k, v := range localPages {
				pages[k] = append(pages[k], v...)
			}
			for k, v := range localPageErrs {
				pageErrs[k] += v
			}
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	var reporter sync.WaitGroup // the progress is the caller's again once it returns
	reporter.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := requests.Load()
				fmt.Fprintf(progress, "loadtest: %s %5.0fs  %8d requests  %7d req/s  %9d events\n",
					lt.o.scenario, time.Since(began).Seconds(), n, n-last, events.Load())
				last = n
			}
		}
	})
	wg.Wait()
	close(done)
	reporter.Wait()
	elapsed := time.Since(began).Seconds()
	rep := loadReport{Scenario: lt.o.scenario, URL: lt.o.url, Connections: lt.o.connections, TargetRate: lt.o.rate,
		DurationS: elapsed, Requests: requests.Load(), NotModified: notMod.Load(), Events: events.Load(),
		RequestsPerS: float64(requests.Load()) / elapsed, EventsPerS: float64(events.Load()) / elapsed,
		LatencyMs: summarize(latencies), ErrorsByStatus: errs}
	if lt.o.scenario == "epcis-capture" {
		jobs.VisibleMs = summarize(jobs.visible)
		rep.Jobs = &jobs
	}
	if len(pages) > 0 {
		rep.Pages = map[string]*pageSummary{}
		for k, v := range pages {
			rep.Pages[k] = &pageSummary{Requests: int64(len(v)), Errors: pageErrs[k], LatencyMs: summarize(v)}
		}
	}
	return rep
}

// summarize returns the quantiles of durations, in milliseconds (sorting
// them).
func summarize(d []time.Duration) latencySummary {
	slices.Sort(d)
	q := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	return latencySummary{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: q(1)}
}
