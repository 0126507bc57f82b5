package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a local OTLP/HTTP traces endpoint that keeps span names
// by trace id.
type otlpReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	traces map[string][]string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{traces: map[string][]string{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					id := hex.EncodeToString(s.TraceId)
					o.traces[id] = append(o.traces[id], s.Name)
				}
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *otlpReceiver) snapshot() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for k, v := range o.traces {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// One trace goes from the HTTP append through the store, the relay, Kafka
// and the Kafka-fed projection; sampling follows the configuration.
func TestOneTraceFromAppendToProjection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rate string
	}{{"sampled", "1"}, {"not sampled", "0"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			otlp := newOTLPReceiver(t)
			srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
				"Kafka__BootstrapServers=" + strings.Join(cluster.ListenAddrs(), ","),
				"Monitoring__Tracing__Enabled=true", "Monitoring__Tracing__Endpoint=" + otlp.URL + "/v1/traces",
				"Monitoring__Tracing__SamplingRate=" + tc.rate})
			r := srv.do(t, "POST", "/api/v1/entities/TR-1/events", map[string]any{"entityType": "asset",
				"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":2}`)}})
			if r.StatusCode != 201 {
				t.Fatalf("append: %d %s", r.StatusCode, r.Body)
			}
			var tl struct{ ProjectedVersion int64 }
			srv.do(t, "GET", "/api/v1/entities/TR-1/timeline?minVersion=1", nil).JSON(t, &tl)
			if tl.ProjectedVersion != 1 {
				t.Fatalf("not projected: %+v", tl)
			}
			// Logs of a traced request carry its trace id.
			if r := srv.do(t, "DELETE", "/api/v1/entities/TR-1", nil); r.StatusCode != 204 {
				t.Fatalf("erase: %d", r.StatusCode)
			}
			if err := srv.stop(); err != nil { // flushes the spans
				t.Fatal(err)
			}
			erased := 0
			for _, line := range strings.Split(srv.logs.String(), "\n") {
				if strings.Contains(line, `"msg":"entity erased"`) {
					erased++
					if !strings.Contains(line, `"trace_id":"`) {
						t.Fatalf("a request's log line without its trace id: %s", line)
					}
				}
			}
			if erased == 0 {
				t.Fatalf("the erasure logged no line to check for a trace id:\n%s", srv.logs.String())
			}
			want := []string{"POST /api/v1/entities/{entityId}/events", "eventstore.append",
				"kafka.publish corporate.tracktrace.events", "kafka.consume corporate.tracktrace.events"}
			deadline := time.Now().Add(10 * time.Second)
			for {
				var found []string
				for _, names := range otlp.snapshot() {
					if containsAll(names, want) {
						found = names
					}
				}
				if tc.rate == "0" {
					if n := len(otlp.snapshot()); n != 0 {
						t.Fatalf("sampling rate 0 exported %d traces", n)
					}
					return
				}
				if found != nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no trace holds %v; traces: %v", want, otlp.snapshot())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
