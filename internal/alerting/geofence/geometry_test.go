package geofence_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting/geofence"
)

// Real-world sites. Coordinates are [longitude, latitude], as GeoJSON has
// them; Contains and Distance take latitude first.
const (
	// The container terminals of Maasvlakte, Port of Rotterdam. The
	// southern edge runs due east along latitude 51.94, so that points a
	// known distance from it are easy to write down: 0.00009° of latitude
	// is 10.02 m.
	maasvlakte = `{"type": "Polygon", "coordinates": [[
		[3.9950, 51.9620], [4.0050, 51.9400], [4.0400, 51.9400], [4.0620, 51.9500],
		[4.0550, 51.9680], [4.0180, 51.9780], [3.9950, 51.9620]]]}`

	// Taveuni, Fiji, which the 180th meridian crosses: one ring whose
	// edges cross it (what many clients send) ...
	taveuniCrossing = `{"type": "Polygon", "coordinates": [[
		[179.85, -16.70], [-179.85, -16.70], [-179.85, -17.05], [179.85, -17.05], [179.85, -16.70]]]}`
	// ... and the same area cut in two at the meridian, as RFC 7946 §3.1.9
	// asks.
	taveuniSplit = `{"type": "MultiPolygon", "coordinates": [
		[[[179.85, -16.70], [180, -16.70], [180, -17.05], [179.85, -17.05], [179.85, -16.70]]],
		[[[-180, -16.70], [-179.85, -16.70], [-179.85, -17.05], [-180, -17.05], [-180, -16.70]]]]}`

	// A yard of the Altenwerder container terminal, Hamburg, with its
	// workshop building cut out: a container in the building is not in
	// the yard.
	altenwerderYard = `{"type": "Polygon", "coordinates": [
		[[9.9200, 53.5000], [9.9350, 53.5000], [9.9350, 53.5070], [9.9200, 53.5070], [9.9200, 53.5000]],
		[[9.9260, 53.5020], [9.9260, 53.5040], [9.9290, 53.5040], [9.9290, 53.5020], [9.9260, 53.5020]]]}`

	// 3 km around Amsterdam Airport Schiphol's reference point.
	schiphol = `{"type": "Point", "coordinates": [4.7683, 52.3105], "radius": 3000}`
)

// metresPerDegree is a degree of latitude on orb's sphere (radius
// 6,378,137 m).
const metresPerDegree = 111319.49

func parse(t *testing.T, raw string) geofence.Geometry {
	t.Helper()
	g, err := geofence.ParseGeometry(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("ParseGeometry: %v", err)
	}
	return g
}

type probe struct {
	name     string
	lat, lon float64
	inside   bool
	// distance is the expected signed distance to the boundary in metres
	// (negative inside), within tolerance.
	distance, tolerance float64
}

func check(t *testing.T, g geofence.Geometry, probes []probe) {
	t.Helper()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if got := g.Contains(p.lat, p.lon); got != p.inside {
				t.Errorf("Contains(%v, %v) = %v, want %v", p.lat, p.lon, got, p.inside)
			}
			if got := g.Distance(p.lat, p.lon); math.Abs(got-p.distance) > p.tolerance {
				t.Errorf("Distance(%v, %v) = %.2f m, want %.2f ± %.2f", p.lat, p.lon, got, p.distance, p.tolerance)
			}
			// Near never contradicts Distance.
			if reach := max(g.Distance(p.lat, p.lon), 0); !g.Near(p.lat, p.lon, reach) {
				t.Errorf("Near(%v, %v, %.2f) = false at %.2f m", p.lat, p.lon, reach, g.Distance(p.lat, p.lon))
			}
		})
	}
}

func TestMaasvlakte(t *testing.T) {
	t.Parallel()
	g := parse(t, maasvlakte)
	check(t, g, []probe{
		{"terminal centre", 51.9580, 4.0300, true, -1708, 30},
		{"10 m inside the southern edge", 51.94009, 4.0200, true, -10.02, 0.2},
		{"10 m outside the southern edge", 51.93991, 4.0200, false, 10.02, 0.2},
		{"1 m outside the southern edge", 51.939991, 4.0200, false, 1.0, 0.1},
		{"on the southern edge", 51.9400, 4.0200, true, 0, 0.01},
		{"North Sea, west of the terminals", 51.9600, 3.9000, false, 6520, 30},
		{"Rotterdam city", 51.9225, 4.4792, false, 28800, 150},
	})
}

// Both forms of Taveuni are one area: a point on either side of the 180th
// meridian is in it, and the cut at the meridian is no boundary (a point
// beside it is 16 km from the edge, not a few metres).
func TestAntimeridian(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{"crossing": taveuniCrossing, "split": taveuniSplit} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := parse(t, raw)
			check(t, g, []probe{
				{"west of the meridian", -16.85, 179.95, true, -10650, 100},
				{"east of the meridian", -16.85, -179.95, true, -10650, 100},
				{"just west of the cut", -16.85, 179.9999, true, -15968, 30},
				{"just east of the cut", -16.85, -179.9999, true, -15968, 30},
				{"on the meridian", -16.85, 180, true, -15979, 30},
				{"on the meridian written -180", -16.85, -180, true, -15979, 30},
				{"1 km north, at the meridian", -16.691, 180, false, 1002, 5},
				{"1 km east of the eastern edge", -16.85, -179.8406, false, 1000, 10},
				{"Suva, across the sea", -18.1416, 178.4419, false, 192500, 3000},
				{"Apia, Samoa, far east", -13.8333, -171.7667, false, 925000, 30000},
			})
		})
	}
}

func TestHole(t *testing.T) {
	t.Parallel()
	g := parse(t, altenwerderYard)
	// The building spans latitudes 53.5020–53.5040: its middle is 0.001°
	// (111 m) from its northern and southern walls, and 0.0015° of
	// longitude (99 m at this latitude) from its western and eastern ones.
	check(t, g, []probe{
		{"in the yard", 53.5010, 9.9230, true, -111, 2},
		{"in the building", 53.5030, 9.9275, false, 99.3, 1},
		{"in the yard 5 m north of the building", 53.504045, 9.9275, true, -5.0, 0.1},
		{"in the building 5 m from its northern wall", 53.503955, 9.9275, false, 5.0, 0.1},
		{"outside the yard", 53.4990, 9.9275, false, 111, 2},
	})
}

// Near is the cheap test before Distance: false far from a site (so a fix
// far from every site costs a bounding-box comparison), true near it.
func TestNear(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, site string
		lat, lon   float64
		d          float64
		near       bool
	}{
		{"Rotterdam city from Maasvlakte", maasvlakte, 51.9225, 4.4792, geofence.DefaultMargin, false},
		{"in Maasvlakte's box, outside the terminals", maasvlakte, 51.9450, 4.0600, 0, true},
		{"20 m south of Maasvlakte, within 25 m", maasvlakte, 51.93982, 4.0200, 25, true},
		{"20 m south of Maasvlakte, within 10 m", maasvlakte, 51.93982, 4.0200, 10, false},
		{"Suva from Taveuni", taveuniCrossing, -18.1416, 178.4419, geofence.DefaultMargin, false},
		{"east of the meridian in Taveuni", taveuniSplit, -16.85, -179.95, 0, true},
		{"the building in the Altenwerder yard's box", altenwerderYard, 53.5030, 9.9275, 0, true},
		{"Hamburg city from Altenwerder", altenwerderYard, 53.5511, 9.9937, geofence.DefaultMargin, false},
		{"Schiphol's edge", schiphol, 52.3105 + 3010/metresPerDegree, 4.7683, 25, true},
		{"Amsterdam from Schiphol", schiphol, 52.3676, 4.9041, geofence.DefaultMargin, false},
		{"the antipode of Schiphol", schiphol, -52.3105, -175.2317, geofence.DefaultMargin, false},
		{"out of range", maasvlakte, 91, 4, 1e9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parse(t, tc.site).Near(tc.lat, tc.lon, tc.d); got != tc.near {
				t.Errorf("Near(%v, %v, %v) = %v, want %v", tc.lat, tc.lon, tc.d, got, tc.near)
			}
		})
	}
	if (geofence.Geometry{}).Near(0, 0, 1e9) {
		t.Error("the zero Geometry is near something")
	}
}

func TestCircle(t *testing.T) {
	t.Parallel()
	g := parse(t, schiphol)
	// 0.026051° of latitude is 2,900 m; 0.027848° is 3,100 m.
	check(t, g, []probe{
		{"the runways", 52.3105, 4.7683, true, -3000, 0.01},
		{"2.9 km north", 52.3105 + 0.026051, 4.7683, true, -100, 0.5},
		{"3.1 km north", 52.3105 + 0.027848, 4.7683, false, 100, 0.5},
		{"Amsterdam Centraal", 52.3791, 4.9003, false, 8780, 150},
	})
}

// A circle on the 180th meridian, off Chukotka, reaches both sides of it.
func TestCircleOnTheAntimeridian(t *testing.T) {
	t.Parallel()
	g := parse(t, `{"type": "Point", "coordinates": [180, 65.0], "radius": 10000}`)
	// 0.05° of longitude at 65° N is 2,352 m.
	check(t, g, []probe{
		{"east of the meridian", 65.0, -179.95, true, -7648, 2},
		{"west of the meridian", 65.0, 179.95, true, -7648, 2},
		{"the centre written -180", 65.0, -180, true, -10000, 0.01},
		{"beyond the radius", 65.0, -179.7, false, 4112, 5},
	})
}

func TestParseRefusesBadGeometry(t *testing.T) {
	t.Parallel()
	var many strings.Builder
	many.WriteString(`{"type": "Polygon", "coordinates": [[`)
	for i := range 10001 {
		a := 2 * math.Pi * float64(i) / 10001
		many.WriteString(`[` + ftoa(4+0.01*math.Cos(a)) + `,` + ftoa(52+0.01*math.Sin(a)) + `],`)
	}
	many.WriteString(`[` + ftoa(4.01) + `,52]]]}`)
	tests := []struct {
		name, raw string
		// want is in the error's message.
		want string
	}{
		{"not JSON", `{"type": "Polygon"`, "JSON"},
		{"no type", `{"coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52]]]}`, "type is required"},
		{"a line", `{"type": "LineString", "coordinates": [[4, 52], [4.1, 52]]}`, `"LineString"`},
		{"a point without a radius", `{"type": "Point", "coordinates": [4, 52]}`, "radius"},
		{"a radius under 1 m", `{"type": "Point", "coordinates": [4, 52], "radius": 0.5}`, "radius"},
		{"a radius over 100 km", `{"type": "Point", "coordinates": [4, 52], "radius": 100001}`, "radius"},
		{"a radius on a polygon", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52]]], "radius": 5}`, "radius"},
		{"a point out of range", `{"type": "Point", "coordinates": [4, 95], "radius": 10}`, "latitude 95"},
		{"a point with one number", `{"type": "Point", "coordinates": [4], "radius": 10}`, "[longitude, latitude]"},
		{"no coordinates", `{"type": "Polygon"}`, "coordinates"},
		{"coordinates of the wrong shape", `{"type": "Polygon", "coordinates": [[4, 52], [4.1, 52]]}`, "coordinates"},
		{"no rings", `{"type": "Polygon", "coordinates": []}`, "outer ring"},
		{"an empty multipolygon", `{"type": "MultiPolygon", "coordinates": []}`, "at least one polygon"},
		{"an unclosed ring", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1]]]}`, "not closed"},
		{"three positions", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4, 52]]]}`, "at least 4 positions"},
		{"longitude out of range", `{"type": "Polygon", "coordinates": [[[4, 52], [184.1, 52], [4.1, 52.1], [4, 52]]]}`, "coordinates/0/1: longitude 184.1"},
		{"latitude out of range", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1, -91], [4.1, 52.1], [4, 52]]]}`, "coordinates/0/1: latitude -91"},
		{"a position with one number", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1], [4.1, 52.1], [4, 52]]]}`, "coordinates/0/1"},
		{"a null position", `{"type": "Polygon", "coordinates": [[[4, 52], null, [4.1, 52.1], [4, 52]]]}`, "coordinates/0/1"},
		{"collinear positions", `{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.2, 52], [4, 52]]]}`, "no area"},
		{"a repeated position", `{"type": "Polygon", "coordinates": [[[4, 52], [4, 52], [4, 52], [4, 52]]]}`, "no area"},
		{"a hole outside the shell", `{"type": "Polygon", "coordinates": [
			[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1], [4, 52]],
			[[5, 52], [5.1, 52], [5.1, 52.1], [5, 52]]]}`, "coordinates/1: the hole is not inside"},
		{"a bad ring in a multipolygon", `{"type": "MultiPolygon", "coordinates": [
			[[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1], [4, 52]]],
			[[[5, 52], [5.1, 52], [5.1, 52.1], [5, 52.1]]]]}`, "coordinates/1/0: the ring is not closed"},
		{"around a pole", `{"type": "Polygon", "coordinates": [[[0, 80], [120, 80], [-120, 80], [0, 80]]]}`, "pole"},
		{"over half the world", `{"type": "Polygon", "coordinates": [[[-100, 0], [0, 0], [100, 0], [100, 10], [0, 10], [-100, 10], [-100, 0]]]}`, "180°"},
		{"too many vertices", many.String(), "10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := geofence.ParseGeometry(json.RawMessage(tc.raw))
			if err == nil {
				t.Fatalf("ParseGeometry accepted %s", tc.raw)
			}
			if !errors.Is(err, geofence.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func ftoa(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// An edge spanning more than 180° of longitude is the short way round:
// across the 180th meridian.
func TestLongEdgesCrossTheAntimeridian(t *testing.T) {
	t.Parallel()
	g := parse(t, `{"type": "Polygon", "coordinates": [[[-100, 0], [100, 0], [100, 10], [-100, 10], [-100, 0]]]}`)
	if !g.Contains(5, 180) || !g.Contains(5, -170) || !g.Contains(5, 110) {
		t.Errorf("the Pacific between 100° E and 100° W is not in the site")
	}
	if g.Contains(5, 0) {
		t.Errorf("the Gulf of Guinea is in a site across the Pacific")
	}
}

// Positions with an altitude are GeoJSON too; the altitude is ignored.
func TestParseAcceptsAltitude(t *testing.T) {
	t.Parallel()
	g := parse(t, `{"type": "Polygon", "coordinates": [[[4, 52, 3], [4.1, 52, 3], [4.1, 52.1, 3], [4, 52, 3]]]}`)
	if !g.Contains(52.02, 4.05) {
		t.Errorf("a point in the triangle is not in it")
	}
}

// A position out of range, or not a number, is in no site.
func TestBadPositionsAreNowhere(t *testing.T) {
	t.Parallel()
	for _, g := range []geofence.Geometry{parse(t, maasvlakte), parse(t, schiphol), {}} {
		for _, p := range [][2]float64{{math.NaN(), 4}, {51.95, math.NaN()}, {91, 4}, {51.95, 181}, {math.Inf(1), 0}} {
			if g.Contains(p[0], p[1]) {
				t.Errorf("%v contains %v", g, p)
			}
			if d := g.Distance(p[0], p[1]); !math.IsNaN(d) && !math.IsInf(d, 1) {
				t.Errorf("Distance(%v) = %v, want NaN or +Inf", p, d)
			}
		}
	}
}
