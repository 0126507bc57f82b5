package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Each scenario runs briefly against a real server and reports requests
// without errors; revalidations are answered 304. Five seconds, not less: under the race detector, beside the
// fault tests' load on a two-core CI machine, one 20-item batch request has
// taken longer than two seconds, and requests cut off by the end of the run
// are not counted.
func TestLoadtestScenarios(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")})
	for _, sc := range []string{"append-single", "append-batch", "read-entity", "read-timeline", "mixed", "revalidate-entity", "revalidate-timeline"} {
		var out, progress bytes.Buffer
		err := run(context.Background(), []string{"loadtest", "--url", srv.URL, "--scenario", sc, "--connections", "4",
			"--duration", "5s", "--entities", "50", "--batch-size", "20"}, nil, &out, &progress)
		if err != nil {
			t.Fatalf("%s: %v", sc, err)
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%s: report is not JSON: %v\n%s", sc, err, out.String())
		}
		if rep.Requests == 0 || len(rep.ErrorsByStatus) != 0 || rep.LatencyMs.P99 <= 0 {
			t.Fatalf("%s: report %+v", sc, rep)
		}
		if (sc == "append-single" || sc == "append-batch") && rep.Events == 0 {
			t.Fatalf("%s: no events written", sc)
		}
		// Read once before the run, the entities answer 304s (a 200 where
		// the projections were still applying the earlier scenarios).
		if strings.HasPrefix(sc, "revalidate-") && rep.NotModified*2 < rep.Requests {
			t.Fatalf("%s: %d of %d requests answered 304", sc, rep.NotModified, rep.Requests)
		}
	}
	if err := run(context.Background(), []string{"loadtest", "--scenario", "nope"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an unknown scenario was accepted")
	}
}

// Several URLs (the replicas of one deployment) take turns, and a list with
// a URL that is not one is a usage error.
func TestLoadtestTakesTurnsBetweenReplicas(t *testing.T) {
	t.Parallel()
	a := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "a.db")})
	b := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "b.db")})
	var out bytes.Buffer
	if err := run(t.Context(), []string{"loadtest", "--url", a.URL + "," + b.URL, "--scenario", "append-single",
		"--connections", "2", "--duration", "2s", "--entities", "20"}, nil, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*server{a, b} {
		if n := sum(scrape(t, s), "tracktrace_events_appended_total"); n == 0 {
			t.Errorf("%s appended no events", s.URL)
		}
	}
	err := run(t.Context(), []string{"loadtest", "--url", a.URL + ",localhost:1"}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	var usage *usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "localhost:1") {
		t.Errorf("--url with a bad URL: %v, want a usage error naming it", err)
	}
}

// epcis-capture counts the EPCIS events its captures stored, not its
// requests, follows every capture's job to its end, and sends only new
// events: a second run against the same server stores all of its events
// too. Its counts are the server's: the tenant's jobs captured as many
// events as the runs report.
func TestLoadtestEPCISCapture(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")})
	const events = 20
	var reported int64
	for i := range 2 {
		var out bytes.Buffer
		err := run(t.Context(), []string{"loadtest", "--url", srv.URL, "--scenario", "epcis-capture", "--connections", "2",
			"--duration", "2s", "--epcis-events", strconv.Itoa(events), "--epcis-epcs", "3", "--tenant", "epcis-lt"}, nil, &out, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("run %d: report is not JSON: %v\n%s", i, err, out.String())
		}
		j := rep.Jobs
		if rep.Requests == 0 || len(rep.ErrorsByStatus) != 0 || j == nil {
			t.Fatalf("run %d: report %s", i, out.String())
		}
		if j.Checked != rep.Requests || j.Succeeded != j.Checked || j.Failed != 0 || j.NotVisible != 0 || j.VisibleMs.P99 <= 0 {
			t.Errorf("run %d: jobs %+v of %d captures, want every job seen to succeed", i, *j, rep.Requests)
		}
		if rep.Events != events*rep.Requests || rep.EventsPerS <= rep.RequestsPerS {
			t.Errorf("run %d: %d events (%.0f/s) in %d documents of %d events (%.0f/s)", i, rep.Events, rep.EventsPerS, rep.Requests, events, rep.RequestsPerS)
		}
		reported += rep.Events
	}
	var stored int64
	for page := "/epcis/capture?perPage=100"; page != ""; {
		r := srv.do(t, "GET", page, nil, "X-Tenant-ID", "epcis-lt")
		var jobs []captureJob
		r.JSON(t, &jobs)
		for _, j := range jobs {
			stored += int64(j.Captured)
		}
		page = ""
		if l := r.Header.Get("Link"); l != "" {
			page = strings.TrimPrefix(strings.Split(l, ">")[0], "<")
		}
	}
	if stored != reported {
		t.Errorf("the server's jobs captured %d events, the reports say %d", stored, reported)
	}
	err := run(t.Context(), []string{"loadtest", "--url", srv.URL, "--scenario", "epcis-capture", "--epcis-epcs", "0"}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Errorf("--epcis-epcs 0: %v, want a usage error", err)
	}
}

// The webhook scenario subscribes a receiver of its own, appends events at
// a rate and reports every one of them delivered, signed as Standard
// Webhooks say, with the stored → delivered delays of the fast and the
// slow receivers apart; it deletes its subscriptions at the end. A slow
// receiver that keeps up (200 ms an answer, ten events a request) is
// drained too.
func TestLoadtestWebhook(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Subscriptions__AllowPrivateDestinations=true"})
	var out bytes.Buffer
	err := run(t.Context(), []string{"loadtest", "--url", srv.URL, "--scenario", "webhook", "--tenant", "wh-lt",
		"--connections", "4", "--duration", "2s", "--rate", "100", "--entities", "30",
		"--subscriptions", "3", "--max-batch", "10", "--slow-receivers", "1", "--slow-delay", "200ms"}, nil, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep loadReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	w := rep.Webhooks
	if w == nil || rep.Events == 0 || len(rep.ErrorsByStatus) != 0 {
		t.Fatalf("report %s", out.String())
	}
	if w.Appended != rep.Events || w.Delivered != w.Appended || w.Undelivered != 0 || w.SlowUndelivered != 0 ||
		w.Unconfirmed != 0 || w.Misrouted != 0 || w.DeliveredPerS <= 0 {
		t.Errorf("%d events appended, webhooks %s", rep.Events, out.String())
	}
	if w.SignaturesChecked == 0 || w.BadSignatures != 0 {
		t.Errorf("%d signatures checked, %d bad", w.SignaturesChecked, w.BadSignatures)
	}
	if w.Delay.P99 <= 0 || w.SlowDelay == nil || w.SlowDelay.P99 <= 0 {
		t.Errorf("stored → delivered: fast %+v, slow %v", w.Delay, w.SlowDelay)
	}
	var subs struct {
		Items []json.RawMessage `json:"items"`
	}
	srv.do(t, "GET", "/api/v1/subscriptions", nil, "X-Tenant-ID", "wh-lt").JSON(t, &subs)
	if len(subs.Items) != 0 {
		t.Errorf("%d subscriptions left after the run", len(subs.Items))
	}
	for _, bad := range [][]string{{"--max-batch", "0"}, {"--max-batch", "1001"}, {"--subscriptions", "2", "--slow-receivers", "3"},
		{"--subscriptions", "0"}, {"--subscriptions", "50", "--entities", "10"}, {"--slow-delay", "-1s"}} {
		err := run(t.Context(), append([]string{"loadtest", "--url", srv.URL, "--scenario", "webhook"}, bad...), nil, &bytes.Buffer{}, &bytes.Buffer{})
		var usage *usageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}

// A server that refuses destinations on 127.0.0.1 fails the webhook
// scenario before it appends anything, saying which setting it needs.
func TestLoadtestWebhookNeedsPrivateDestinations(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")})
	var out bytes.Buffer
	err := run(t.Context(), []string{"loadtest", "--url", srv.URL, "--scenario", "webhook", "--subscriptions", "3",
		"--duration", "1s"}, nil, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "AllowPrivateDestinations") || !strings.Contains(err.Error(), "2 more") {
		t.Errorf("webhook against a server refusing 127.0.0.1: %v, want an error naming AllowPrivateDestinations, once", err)
	}
	if out.Len() != 0 {
		t.Errorf("a report was printed:\n%s", out.String())
	}
}

// The console scenario seeds journeys the console's pages show (an entity
// page maps its positions over its hubs, the metrics page has operations
// and milestones to chart), reads every page and reports each apart, with
// no page failing; a second run against the same server reuses what the
// first seeded.
func TestLoadtestConsole(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db")})
	for i, want := range []string{"seeding 40 entities", "reusing its entities"} {
		var out, progress bytes.Buffer
		err := run(t.Context(), []string{"loadtest", "--url", srv.URL, "--scenario", "console", "--tenant", "console-lt",
			"--connections", "2", "--duration", "3s", "--entities", "40"}, nil, &out, &progress)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, progress.String())
		}
		if !strings.Contains(progress.String(), want) {
			t.Errorf("run %d: progress does not say %q:\n%s", i, want, progress.String())
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("run %d: report is not JSON: %v\n%s", i, err, out.String())
		}
		if len(rep.ErrorsByStatus) != 0 || len(rep.Pages) != len(pageLoads()) {
			t.Fatalf("run %d: report %s", i, out.String())
		}
		for _, p := range pageLoads() {
			if s := rep.Pages[p.name]; s == nil || s.Requests == 0 || s.Errors != 0 || s.LatencyMs.P99 <= 0 || s.FirstMs <= 0 {
				t.Errorf("run %d: page %s: %+v", i, p.name, s)
			}
		}
	}
	page := srv.do(t, "GET", "/console/entities/"+consoleEntityID(0), nil, "X-Tenant-ID", "console-lt")
	body := string(page.Body)
	if page.StatusCode != http.StatusOK || !strings.Contains(body, `data-site-id="`+consoleSiteID(0)+`"`) ||
		!strings.Contains(body, `data-site-id="`+consoleSiteID(3)+`"`) || strings.Count(body, "track-point") < consoleTrack {
		t.Errorf("the vehicle's page (%d) shows no map of its %d positions between two sites:\n%.2000s", page.StatusCode, consoleTrack, page.Body)
	}
	metrics := srv.do(t, "GET", "/console/metrics?range=30d", nil, "X-Tenant-ID", "console-lt")
	if n := strings.Count(string(metrics.Body), `src="data:image/svg`); metrics.StatusCode != http.StatusOK || n != 2 {
		t.Errorf("the metrics page (%d) has %d charts, want operations and milestones", metrics.StatusCode, n)
	}
}
