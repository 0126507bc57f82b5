package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// labelValues gathers every value of a label across a metric family.
func labelValues(t *testing.T, reg *prometheus.Registry, family, label string) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] = true
				}
			}
		}
	}
	return out
}

// Whatever methods clients send, the method label keeps a handful of values.
func TestMethodLabelIsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	h := m.Instrument(mux)
	methods := []string{"GET", "POST", strings.Repeat("M", 40<<10)}
	for i := range 200 {
		methods = append(methods, fmt.Sprintf("FOO%d", i))
	}
	for _, method := range methods {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/x", nil))
	}
	got := labelValues(t, reg, "tracktrace_http_requests_total", "method")
	if len(got) != 3 || !got["GET"] || !got["POST"] || !got["other"] {
		t.Errorf("method label values = %v, want GET, POST and other", got)
	}
}

// appendOnly is a store whose appends succeed.
type appendOnly struct{ eventstore.Store }

func (appendOnly) Append(_ context.Context, r eventstore.AppendRequest) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{StreamID: r.StreamID, Version: int64(len(r.Events))}, nil
}

// Tenants' custom event types neither grow the label set nor show in /metrics.
func TestCustomEventTypesAreOneLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewMetrics(reg, nil).InstrumentStore(appendOnly{})
	for i := range 50 {
		if _, err := s.Append(context.Background(), eventstore.AppendRequest{StreamID: "e",
			Events: []eventstore.Event{{Type: fmt.Sprintf("x-acme-secret-%d", i)}, {Type: "MilestoneReached"}}}); err != nil {
			t.Fatal(err)
		}
	}
	got := labelValues(t, reg, "tracktrace_events_appended_total", "type")
	if len(got) != 2 || !got["custom"] || !got["MilestoneReached"] {
		t.Errorf("type label values = %v, want custom and MilestoneReached", got)
	}
}
