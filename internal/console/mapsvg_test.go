package console

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
)

// The map holds every point, numbered in order, inside its view with the
// margin; the land is clipped to the view; sites are drawn where they are;
// a journey along one parallel still gets a usable height.
func TestMapDraw(t *testing.T) {
	b, err := loadBasemap()
	if err != nil {
		t.Fatal(err)
	}
	circle, _ := parseSite(alerting.Site{ID: "HUB", Geometry: json.RawMessage(`{"type":"Point","coordinates":[4.45,51.92],"radius":2000}`)})
	square, ok := parseSite(alerting.Site{ID: "SQ", Geometry: json.RawMessage(
		`{"type":"Polygon","coordinates":[[[4,51],[5,51],[5,52],[4,52],[4,51]]]}`)})
	if !ok {
		t.Fatal("a polygon site does not parse")
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		points []trackPoint
		sites  []mapSite
		height float64
	}{
		{"a journey across the North Sea", []trackPoint{{Lat: 52.37, Lon: 4.9}, {Lat: 51.5, Lon: -0.12}, {Lat: 53.4, Lon: -2.98}}, []mapSite{circle, square}, 0},
		{"one point", []trackPoint{{Lat: -33.9, Lon: 151.2}}, nil, 0},
		{"along the equator", []trackPoint{{Lat: 0, Lon: -40}, {Lat: 0, Lon: 40}}, nil, mapMinHeight},
		{"a site alone", nil, []mapSite{square}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.points {
				tc.points[i].OccurredAt, tc.points[i].Version = at.Add(time.Duration(i)*time.Minute), int64(i+1)
			}
			m := b.draw(tc.points, tc.sites)
			if m == nil {
				t.Fatal("no map")
			}
			if tc.height != 0 && m.Height != tc.height {
				t.Errorf("height %v, want %v", m.Height, tc.height)
			}
			if m.Height < mapMinHeight || m.Height > mapMaxHeight {
				t.Errorf("height %v outside [%v, %v]", m.Height, mapMinHeight, mapMaxHeight)
			}
			if len(m.Points) != len(tc.points) {
				t.Fatalf("%d points drawn, want %d", len(m.Points), len(tc.points))
			}
			for i, p := range m.Points {
				if p.Index != i+1 || p.X <= 0 || p.X >= m.Width || p.Y <= 0 || p.Y >= m.Height {
					t.Errorf("point %d: #%d at (%v, %v), want #%d inside %vx%v", i, p.Index, p.X, p.Y, i+1, m.Width, m.Height)
				}
			}
			for _, c := range regexp.MustCompile(`-?[0-9.]+`).FindAllString(m.Land, -1) {
				if v, _ := strconv.ParseFloat(c, 64); v < -0.01 || v > m.Width+0.01 {
					t.Fatalf("land coordinate %v outside the view", v)
				}
			}
			if len(m.Sites) != len(tc.sites) {
				t.Errorf("%d sites drawn, want %d", len(m.Sites), len(tc.sites))
			}
		})
	}
	if b.draw(nil, nil) != nil {
		t.Error("a map of nothing")
	}
}
