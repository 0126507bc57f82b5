package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
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
