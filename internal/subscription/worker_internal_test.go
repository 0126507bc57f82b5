package subscription

import (
	"encoding/json"
	"strings"
	"testing"
)

// A request stays under MaxRequestBytes whatever maxBatch allows, and
// always carries at least one event.
func TestBatchLenBoundsTheRequestSize(t *testing.T) {
	event := func(size int) Event {
		return Event{EntityID: "SHP-1", Type: "LocationReported", Data: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
	}
	big := []Event{event(300 << 10), event(300 << 10), event(300 << 10), event(300 << 10), event(300 << 10)}
	for _, tc := range []struct {
		name   string
		events []Event
		max    int
		want   int
	}{
		{"small events, the batch limit", []Event{event(10), event(10), event(10)}, 2, 2},
		{"small events, all", []Event{event(10), event(10), event(10)}, 100, 3},
		{"300 KiB events", big, 100, 3},
		{"one event over the bound", []Event{event(2 << 20), event(10)}, 100, 1},
	} {
		if got := batchLen(tc.events, tc.max); got != tc.want {
			t.Errorf("%s: %d events, want %d", tc.name, got, tc.want)
		}
	}
}
