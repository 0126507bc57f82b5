package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

var updateInternal = flag.Bool("update-integration", false, "rewrite testdata/integration.golden.json")

// memStreams is a tracking.StreamReader over a slice of one stream's
// events, without snapshots.
type memStreams struct {
	events []eventstore.Recorded
	reads  int
}

func (m *memStreams) ReadStream(_ context.Context, _, _ string, from int64, limit int) ([]eventstore.Recorded, error) {
	m.reads++
	var out []eventstore.Recorded
	for _, e := range m.events {
		if e.Version >= from && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memStreams) LoadSnapshot(context.Context, string, string) (eventstore.Snapshot, error) {
	return eventstore.Snapshot{}, eventstore.ErrNotFound
}

func stream(t *testing.T) []eventstore.Recorded {
	t.Helper()
	at := func(m int) time.Time { return time.Date(2026, 3, 1, 8, m, 0, 0, time.UTC) }
	specs := []struct {
		typ  string
		at   time.Time
		data string
	}{
		{tracking.TypeEntityRegistered, at(0), `{"reference":"R"}`},
		{tracking.TypeMilestoneReached, at(10), `{"milestone":"picked_up"}`},
		{tracking.TypeExceptionRaised, at(20), `{"exceptionId":"x1","code":"delay","severity":"high"}`},
		{tracking.TypeEtaUpdated, at(30), `{"eta":"2026-03-04T12:00:00Z"}`},
		{tracking.TypeMilestoneReached, at(5), `{"milestone":"departed"}`}, // late: nothing
		{tracking.TypeExceptionResolved, at(40), `{"exceptionId":"x1","resolution":"waited"}`},
		{tracking.TypeEtaUpdated, at(25), `{"eta":"2026-03-09T12:00:00Z"}`}, // late: nothing
		{tracking.TypeMilestoneReached, at(50), `{"milestone":"delivered"}`},
	}
	out := make([]eventstore.Recorded, len(specs))
	for i, s := range specs {
		out[i] = eventstore.Recorded{Position: int64(100 + i), Tenant: "acme", StreamID: "SHP-1", Version: int64(i + 1),
			ID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%d", i)), Type: s.typ, SchemaVersion: 1,
			Data: json.RawMessage(s.data), OccurredAt: s.at, RecordedAt: s.at.Add(time.Second), EntityType: "shipment"}
	}
	return out
}

// The deriver folds each event, rebuilding the state from the store on a
// cache miss, and the encoded integration events are pinned by a golden
// file (validated against the AsyncAPI document's schemas).
func TestDeriveIntegrationEvents(t *testing.T) {
	t.Parallel()
	events := stream(t)
	ctx := context.Background()
	for _, cacheSize := range []int{100, 1} {
		streams := &memStreams{events: events}
		d := tracking.NewDeriver(streams, cacheSize)
		var docs []json.RawMessage
		var kinds []string
		for i, e := range events {
			ds, err := d.Derive(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range ds {
				b, err := encodeIntegration(DefaultSource, e, x)
				if err != nil {
					t.Fatal(err)
				}
				if err := ValidateCloudEvent(b); err != nil {
					t.Fatal(err)
				}
				docs = append(docs, b)
				kinds = append(kinds, fmt.Sprintf("v%d:%s", e.Version, x.Kind))
			}
			if i%3 == 2 {
				d.Commit() // a published batch
			}
			if cacheSize == 1 {
				// Another entity takes the only slot: the next event misses.
				d.Commit()
				if _, err := d.Derive(ctx, eventstore.Recorded{Tenant: "acme", StreamID: "other", Version: 1,
					Type: tracking.TypeEntityRegistered, Data: json.RawMessage(`{}`)}); err != nil {
					t.Fatal(err)
				}
				d.Commit()
			}
		}
		want := []string{"v1:EntityStatusChanged", "v2:EntityStatusChanged", "v3:ExceptionRaised", "v4:EtaChanged",
			"v6:ExceptionResolved", "v8:EntityStatusChanged"}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("cache %d: kinds %v, want %v", cacheSize, kinds, want)
		}
		if cacheSize == 1 && streams.reads == 0 {
			t.Error("a cache miss must rebuild from the store")
		}
		if cacheSize == 100 && streams.reads != 0 {
			t.Errorf("%d store reads with a warm cache", streams.reads)
		}
		var pretty bytes.Buffer
		pretty.WriteString("[\n")
		for i, doc := range docs {
			if i > 0 {
				pretty.WriteString(",\n")
			}
			if err := json.Indent(&pretty, doc, "", "  "); err != nil {
				t.Fatal(err)
			}
		}
		pretty.WriteString("\n]\n")
		golden := filepath.Join("testdata", "integration.golden.json")
		if *updateInternal && cacheSize == 100 {
			if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantDoc, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update-integration)", err)
		}
		if !bytes.Equal(pretty.Bytes(), wantDoc) {
			t.Errorf("cache %d: integration events changed (run with -update-integration if intended):\n%s", cacheSize, pretty.Bytes())
		}
	}
}
