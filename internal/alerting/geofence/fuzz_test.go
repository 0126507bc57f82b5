package geofence_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting/geofence"
)

// Whatever a client sends is a geometry or an ErrInvalid, never a panic;
// an accepted geometry's Distance is negative exactly where it Contains.
func FuzzParseGeometry(f *testing.F) {
	for _, seed := range []string{maasvlakte, taveuniCrossing, taveuniSplit, altenwerderYard, schiphol,
		`{"type": "Polygon", "coordinates": [[[180, 10], [-180, 10], [-180, 11], [180, 11], [180, 10]]]}`,
		`{"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], []]}`,
		`{"type": "Point", "coordinates": [-180, -90], "radius": 1}`, `null`, `[]`, `{"type": 5}`} {
		f.Add(seed, 0.5, 0.5)
	}
	f.Fuzz(func(t *testing.T, raw string, lat, lon float64) {
		g, err := geofence.ParseGeometry(json.RawMessage(raw))
		if err != nil {
			if !errors.Is(err, geofence.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		in, d := g.Contains(lat, lon), g.Distance(lat, lon)
		if math.IsNaN(d) {
			if in {
				t.Fatalf("(%v, %v) is inside at no distance", lat, lon)
			}
			return
		}
		if in != (d < 0) && d != 0 && math.Abs(d) > 1e-6 {
			t.Fatalf("Contains(%v, %v) = %v but Distance = %v", lat, lon, in, d)
		}
	})
}
