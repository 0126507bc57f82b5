package main

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns /metrics as "name{labels}" → value.
func scrape(t *testing.T, srv requester) map[string]float64 {
	t.Helper()
	r, err := srv.tryDo("GET", "/metrics", nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("/metrics: %v %d", err, r.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds every series of a family whose labels contain all of want.
func sum(m map[string]float64, family string, want ...string) float64 {
	total := 0.0
	for k, v := range m {
		name, labels, _ := strings.Cut(k, "{")
		if name != family {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

// The metric families move as requests and events flow, with the
// configured constant labels.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Monitoring__Metrics__Tags__service=tracktrace-api"})
	before := scrape(t, srv)
	for i := range 5 {
		r := srv.do(t, "POST", "/api/v1/entities/M-1/events", map[string]any{"entityType": "shipment",
			"events": []any{ev("LocationReported", time.Duration(i)*time.Minute, `{"lat":1,"lon":2}`)}})
		if r.StatusCode != 201 {
			t.Fatalf("append: %d %s", r.StatusCode, r.Body)
		}
	}
	srv.do(t, "GET", "/api/v1/entities/M-1?minVersion=5", nil)
	// From the cache (the first may still miss: the projection's
	// invalidation can come after the read that filled it).
	srv.do(t, "GET", "/api/v1/entities/M-1", nil)
	srv.do(t, "GET", "/api/v1/entities/M-1", nil)
	srv.do(t, "GET", "/api/v1/entities/nope", nil)
	after := scrape(t, srv)
	checks := []struct {
		family string
		labels []string
		min    float64
	}{
		{"tracktrace_http_requests_total", []string{`route="POST /api/v1/entities/{entityId}/events"`, `status="201"`, `service="tracktrace-api"`}, 5},
		{"tracktrace_http_requests_total", []string{`route="GET /api/v1/entities/{entityId}"`, `status="404"`}, 1},
		{"tracktrace_http_request_duration_seconds_count", []string{`route="POST /api/v1/entities/{entityId}/events"`}, 5},
		{"tracktrace_eventstore_append_duration_seconds_count", []string{`outcome="ok"`}, 5},
		{"tracktrace_events_appended_total", []string{`type="LocationReported"`}, 5},
		{"tracktrace_cache_requests_total", []string{`cache="entity"`, `result="hit"`}, 1},
		{"tracktrace_cache_requests_total", []string{`cache="entity"`, `result="miss"`}, 1},
	}
	for _, c := range checks {
		if got := sum(after, c.family, c.labels...) - sum(before, c.family, c.labels...); got < c.min {
			t.Errorf("%s%v moved by %v, want ≥ %v", c.family, c.labels, got, c.min)
		}
	}
	for _, family := range []string{"tracktrace_projection_lag_events", "tracktrace_projection_lag_seconds",
		"go_sql_open_connections", "process_resident_memory_bytes"} {
		found := false
		for k := range after {
			found = found || strings.HasPrefix(k, family)
		}
		if !found {
			t.Errorf("/metrics lacks %s", family)
		}
	}
}
