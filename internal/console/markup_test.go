package console

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/tracking"
)

// The rows written in Go escape what an event carries as the template
// would: a hostile summary or type is text, never markup.
func TestMarkupEscapes(t *testing.T) {
	const hostile = `"><img src=x onerror=alert(1)>&'`
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	rows := timelineMarkup([]timelineRow{{TimelineEntry: tracking.TimelineEntry{Version: 7, Type: hostile, OccurredAt: at, RecordedAt: at,
		Data: json.RawMessage(`{}`)}, Summary: hostile}})
	m := &svgMap{Points: []svgPoint{{Index: 1, X: 10.5, Y: 20.25, Lat: 51.92, Lon: 4.48, OccurredAt: at, Version: 7, Type: hostile}}}
	points := m.PointsMarkup()
	for name, out := range map[string]string{"timeline": string(rows), "map": string(points)} {
		if strings.Contains(out, "<img") {
			t.Errorf("%s: the hostile value is markup:\n%s", name, out)
		}
		if !strings.Contains(out, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;") {
			t.Errorf("%s: the hostile value is not there escaped:\n%s", name, out)
		}
	}
	wantRow := "<tr data-version=\"7\" data-type=\"&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;\">\n<td>7</td><td>2026-11-20 08:00:00Z</td>"
	if !strings.HasPrefix(string(rows), wantRow) {
		t.Errorf("timeline row:\n%s\nwant it to start with\n%s", rows, wantRow)
	}
	if !strings.Contains(string(points), `<circle cx="10.5" cy="20.25" r="8"/>`) || !strings.Contains(string(points), `data-lat="51.92" data-lon="4.48"`) {
		t.Errorf("map point:\n%s", points)
	}
}

// A summary lists an object's members in key order, string values bare;
// an empty object is an empty summary, anything else is shown as it is.
func TestSummarize(t *testing.T) {
	for data, want := range map[string]string{
		`{"b":{"x":1},"a":"text","c":2}`: `a: text · b: {"x":1} · c: 2`,
		`{}`:                             ``,
		`null`:                           `null`,
	} {
		members, err := epcis.Members(json.RawMessage(data))
		if got := summarize(json.RawMessage(data), members, err == nil); got != want {
			t.Errorf("summarize(%s) = %q, want %q", data, got, want)
		}
	}
}
