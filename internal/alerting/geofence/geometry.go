// Package geofence is the geometry of sites: a circle or a polygon given as
// GeoJSON, whether a position is in it and how far it is from its edge,
// and a hysteresis (Presence) that turns a series of jittery GPS fixes into
// single arrivals and departures.
//
// Containment and distances come from github.com/paulmach/orb (planar and
// geo). A polygon's edges are straight lines in longitude and latitude, as
// RFC 7946 §3.1.1 has them; they are measured in a local equirectangular
// plane centred on the site (metres east, metres north), which keeps them
// straight and is within about 1% of the distance on the ground near sites
// of up to about 100 km, away from the poles (hundreds of kilometres away
// it is rougher, which entering and leaving never look at). A circle is
// measured on the sphere (haversine).
//
// The 180th meridian: a polygon may cross it either way RFC 7946 §3.1.9
// allows. Its positions are unwrapped (each longitude taken ±360° so that no
// edge spans more than 180°), so a ring like [179.9, …], [-179.9, …] is the
// narrow ring across the meridian, not the wide one around the world; a
// polygon cut in two at the meridian, as the RFC asks, is the same area, and
// the cut is no edge: where parts meet along the meridian from both sides,
// their edges on it are left out of Distance. A site may span at most 180°
// of longitude.
package geofence

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/planar"
)

// Limits of a site's geometry.
const (
	// MaxVertices bounds the positions of a geometry, all rings together.
	MaxVertices = 10000
	// MinRadius and MaxRadius bound a circle's radius, in metres.
	MinRadius = 1.0
	MaxRadius = 100_000.0
)

// ErrInvalid is what every refusal of ParseGeometry is (errors.Is); the
// refusal itself is an *Error.
var ErrInvalid = errors.New("geofence: invalid geometry")

// Error is a refusal of a geometry: what is wrong, and where.
type Error struct {
	// Field is a JSON-pointer-like path to the offending member, without the
	// leading slash ("coordinates/0/3"); empty for the whole geometry.
	Field string
	// Reason says what is wrong, for a human.
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return ErrInvalid.Error() + ": " + e.Reason
	}
	return ErrInvalid.Error() + ": " + e.Field + ": " + e.Reason
}

// Is makes every Error an ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Kinds of geometry.
const (
	KindCircle       = "Circle"
	KindPolygon      = "Polygon"
	KindMultiPolygon = "MultiPolygon"
)

// metresPerDegree is a degree of latitude on orb's sphere.
const metresPerDegree = math.Pi * orb.EarthRadius / 180

// Geometry is a parsed site geometry. The zero Geometry contains nothing.
// It is immutable: safe for use by many goroutines.
type Geometry struct {
	kind string
	// A circle: its centre (longitude, latitude) and radius in metres.
	centre orb.Point
	radius float64
	// A polygon: its rings in the site's plane (metres east of lon0 at the
	// scale of lat0, metres north of lat0), and the edges Distance measures
	// (the rings' without the cuts at the 180th meridian).
	lon0, lat0, scale float64
	shape             orb.MultiPolygon
	edges             orb.MultiLineString
	// bound is the shape's bounding box in the plane.
	bound orb.Bound
}

// Kind says what the geometry is: KindCircle, KindPolygon or
// KindMultiPolygon ("" for the zero Geometry).
func (g Geometry) Kind() string { return g.kind }

// Contains reports whether a position (latitude first) is in the site:
// in the circle, or in a polygon and not in one of its holes. A position on
// an edge is in. A position out of range (or not a number) is in no site.
func (g Geometry) Contains(lat, lon float64) bool {
	if !validPosition(lat, lon) {
		return false
	}
	switch g.kind {
	case KindCircle:
		return geo.DistanceHaversine(g.centre, orb.Point{lon, lat}) <= g.radius
	case KindPolygon, KindMultiPolygon:
		return planar.MultiPolygonContains(g.shape, g.project(lat, lon))
	}
	return false
}

// Distance returns how far a position (latitude first) is from the site's
// edge, in metres: positive outside, negative inside (a hole's edge is an
// edge), 0 on it. It is NaN for a position out of range and +Inf for the
// zero Geometry.
func (g Geometry) Distance(lat, lon float64) float64 {
	if !validPosition(lat, lon) {
		return math.NaN()
	}
	switch g.kind {
	case KindCircle:
		return geo.DistanceHaversine(g.centre, orb.Point{lon, lat}) - g.radius
	case KindPolygon, KindMultiPolygon:
		p := g.project(lat, lon)
		d := planar.DistanceFrom(g.edges, p)
		if planar.MultiPolygonContains(g.shape, p) {
			return -d
		}
		return d
	}
	return math.Inf(1)
}

// Near reports whether a position (latitude first) may be within d metres
// of the site: a cheap test before Contains or Distance, which it never
// contradicts — where Near is false, Distance is more than d. It compares
// with the site's bounding box (a circle's: its centre's distance), so it
// is true of some positions farther away.
func (g Geometry) Near(lat, lon, d float64) bool {
	if !validPosition(lat, lon) {
		return false
	}
	switch g.kind {
	case KindCircle:
		// A degree of latitude is the longest degree: a position more
		// degrees of latitude away than the reach is farther than it.
		if math.Abs(lat-g.centre[1])*metresPerDegree > g.radius+d {
			return false
		}
		return g.Distance(lat, lon) <= d
	case KindPolygon, KindMultiPolygon:
		p := g.project(lat, lon)
		return p[0] >= g.bound.Min[0]-d && p[0] <= g.bound.Max[0]+d && p[1] >= g.bound.Min[1]-d && p[1] <= g.bound.Max[1]+d
	}
	return false
}

func validPosition(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}

// project maps a position to the site's plane, its longitude taken ±360°
// to the nearest of the site's.
func (g Geometry) project(lat, lon float64) orb.Point {
	lon += 360 * math.Round((g.lon0-lon)/360)
	return orb.Point{(lon - g.lon0) * g.scale * metresPerDegree, (lat - g.lat0) * metresPerDegree}
}

// ParseGeometry reads a site's geometry: a GeoJSON Polygon or MultiPolygon
// (RFC 7946; an altitude is ignored, foreign members too), or a circle
// written {"type": "Point", "coordinates": [lon, lat], "radius": metres}
// (MinRadius–MaxRadius). It refuses, with an *Error naming the member,
// what is not one: unclosed rings, rings of fewer than 4 positions,
// positions out of range, rings that enclose no area, holes outside their
// polygon's outer ring, rings around a pole, sites spanning more than 180°
// of longitude, more than MaxVertices positions. Self-intersecting rings
// are not looked for.
func ParseGeometry(raw json.RawMessage) (Geometry, error) {
	var doc struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
		Radius      *float64        `json:"radius"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return Geometry{}, invalid("", "not a GeoJSON geometry object: %s", jsonReason(err))
	}
	if doc.Type == "" {
		return Geometry{}, invalid("type", "type is required: Polygon, MultiPolygon, or Point with a radius")
	}
	if doc.Radius != nil && doc.Type != "Point" {
		return Geometry{}, invalid("radius", "a radius makes a Point a circle; a %s has none", doc.Type)
	}
	if len(doc.Coordinates) == 0 || string(doc.Coordinates) == "null" {
		return Geometry{}, invalid("coordinates", "coordinates are required")
	}
	switch doc.Type {
	case "Point":
		return parseCircle(doc.Coordinates, doc.Radius)
	case "Polygon":
		var rings [][][]float64
		if err := json.Unmarshal(doc.Coordinates, &rings); err != nil {
			return Geometry{}, invalid("coordinates", "a Polygon's coordinates are an array of linear rings, "+
				"each an array of [longitude, latitude] positions: %s", jsonReason(err))
		}
		return parsePolygons(KindPolygon, [][][][]float64{rings})
	case "MultiPolygon":
		var polygons [][][][]float64
		if err := json.Unmarshal(doc.Coordinates, &polygons); err != nil {
			return Geometry{}, invalid("coordinates", "a MultiPolygon's coordinates are an array of polygons, "+
				"each an array of linear rings of [longitude, latitude] positions: %s", jsonReason(err))
		}
		if len(polygons) == 0 {
			return Geometry{}, invalid("coordinates", "a MultiPolygon needs at least one polygon")
		}
		return parsePolygons(KindMultiPolygon, polygons)
	}
	return Geometry{}, invalid("type", "type %q is not a site geometry: want Polygon, MultiPolygon, or Point with a radius", doc.Type)
}

// jsonReason is a decoding error without Go's type names.
func jsonReason(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "found a JSON " + typeErr.Value + " where " + expected(typeErr.Type.String()) + " belongs"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func expected(goType string) string {
	switch {
	case goType == "float64":
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}

func parseCircle(coordinates json.RawMessage, radius *float64) (Geometry, error) {
	var pos []float64
	if err := json.Unmarshal(coordinates, &pos); err != nil {
		return Geometry{}, invalid("coordinates", "a Point's coordinates are one [longitude, latitude] position: %s", jsonReason(err))
	}
	if err := checkPosition("coordinates", pos); err != nil {
		return Geometry{}, err
	}
	if radius == nil {
		return Geometry{}, invalid("radius", "a Point site is a circle and needs a radius in metres (%g–%g)", MinRadius, MaxRadius)
	}
	if r := *radius; !(r >= MinRadius && r <= MaxRadius) {
		return Geometry{}, invalid("radius", "radius %g m is out of range: %g–%g metres", r, MinRadius, MaxRadius)
	}
	return Geometry{kind: KindCircle, centre: orb.Point{pos[0], pos[1]}, radius: *radius}, nil
}

// checkPosition accepts [longitude, latitude] and [longitude, latitude,
// altitude] in range.
func checkPosition(field string, pos []float64) error {
	if len(pos) < 2 || len(pos) > 3 {
		return invalid(field, "a position is [longitude, latitude] (an altitude may follow); found %d numbers", len(pos))
	}
	if lon := pos[0]; !(lon >= -180 && lon <= 180) {
		return invalid(field, "longitude %g is out of range [-180, 180]", lon)
	}
	if lat := pos[1]; !(lat >= -90 && lat <= 90) {
		return invalid(field, "latitude %g is out of range [-90, 90]", lat)
	}
	return nil
}

// ring is a linear ring being parsed: where it is in the document, and its
// positions with longitudes unwrapped.
type ring struct {
	field  string
	points orb.Ring
	// outer is the index of its polygon's outer ring among the rings (itself
	// for an outer ring).
	outer int
	// meridian marks the edges that lie on the 180th meridian as given
	// (both ends at ±180): candidates for a cut.
	meridian []bool
}

func parsePolygons(kind string, polygons [][][][]float64) (Geometry, error) {
	field := func(p int) string {
		if kind == KindPolygon {
			return "coordinates"
		}
		return fmt.Sprintf("coordinates/%d", p)
	}
	n := 0
	for _, rings := range polygons {
		for _, r := range rings {
			n += len(r)
		}
	}
	if n > MaxVertices {
		return Geometry{}, invalid("coordinates", "%d positions; a site may have at most %d", n, MaxVertices)
	}
	var rings []ring
	for p, rs := range polygons {
		if len(rs) == 0 {
			return Geometry{}, invalid(field(p), "a polygon needs at least its outer ring")
		}
		outer := len(rings)
		for i, positions := range rs {
			r, err := parseRing(fmt.Sprintf("%s/%d", field(p), i), positions)
			if err != nil {
				return Geometry{}, err
			}
			r.outer = outer
			rings = append(rings, r)
		}
	}

	// One frame for all rings: each taken ±360° to the first's.
	ref := rings[0].points.Bound().Center()[0]
	west, east := math.Inf(1), math.Inf(-1)
	for i := range rings {
		b := rings[i].points.Bound()
		if shift := 360 * math.Round((ref-b.Center()[0])/360); shift != 0 {
			for j := range rings[i].points {
				rings[i].points[j][0] += shift
			}
			b = rings[i].points.Bound()
		}
		west, east = min(west, b.Min[0]), max(east, b.Max[0])
	}
	if east-west >= 180 {
		return Geometry{}, invalid("coordinates", "the site spans %.1f° of longitude; a site may span less than 180°", east-west)
	}
	south, north := math.Inf(1), math.Inf(-1)
	for _, r := range rings {
		b := r.points.Bound()
		south, north = min(south, b.Min[1]), max(north, b.Max[1])
	}
	g := Geometry{kind: kind, lon0: (west + east) / 2, lat0: (south + north) / 2}
	g.scale = math.Cos(g.lat0 * math.Pi / 180)

	for i := range rings {
		for j, pt := range rings[i].points {
			rings[i].points[j] = orb.Point{(pt[0] - g.lon0) * g.scale * metresPerDegree, (pt[1] - g.lat0) * metresPerDegree}
		}
	}
	for i, r := range rings {
		if math.Abs(planar.Area(r.points)) < 1 {
			return Geometry{}, invalid(r.field, "the ring encloses no area (its positions repeat or lie on one line)")
		}
		if r.outer == i {
			g.shape = append(g.shape, orb.Polygon{r.points})
			continue
		}
		shell := rings[r.outer].points
		for _, pt := range r.points {
			if !planar.RingContains(shell, pt) {
				return Geometry{}, invalid(r.field, "the hole is not inside its polygon's outer ring %s", rings[r.outer].field)
			}
		}
		g.shape[len(g.shape)-1] = append(g.shape[len(g.shape)-1], r.points)
	}
	g.edges = edges(rings)
	g.bound = g.shape.Bound()
	return g, nil
}

// parseRing checks a linear ring and unwraps its longitudes.
func parseRing(field string, positions [][]float64) (ring, error) {
	if len(positions) < 4 {
		return ring{}, invalid(field, "a linear ring needs at least 4 positions (the last repeating the first); it has %d", len(positions))
	}
	for i, pos := range positions {
		if err := checkPosition(fmt.Sprintf("%s/%d", field, i), pos); err != nil {
			return ring{}, err
		}
	}
	first, last := positions[0], positions[len(positions)-1]
	if first[0] != last[0] || first[1] != last[1] {
		return ring{}, invalid(field, "the ring is not closed: its last position must repeat its first")
	}
	r := ring{field: field, points: make(orb.Ring, len(positions)), meridian: make([]bool, len(positions)-1)}
	r.points[0] = orb.Point{first[0], first[1]}
	for i := 1; i < len(positions); i++ {
		step := positions[i][0] - positions[i-1][0]
		switch {
		case step > 180:
			step -= 360
		case step < -180:
			step += 360
		}
		r.points[i] = orb.Point{r.points[i-1][0] + step, positions[i][1]}
		r.meridian[i-1] = math.Abs(positions[i][0]) == 180 && math.Abs(positions[i-1][0]) == 180
	}
	if r.points[len(r.points)-1][0] != r.points[0][0] {
		return ring{}, invalid(field, "the ring goes around a pole; a site may not contain a pole")
	}
	return r, nil
}

// edges returns the rings' edges without the cuts at the 180th meridian:
// edges on the meridian where rings lie on both sides of it. (Which parts
// of two such edges face each other is not worked out: an edge of a ring on
// the meridian beside a polygon across it is left out whole.)
func edges(rings []ring) orb.MultiLineString {
	const eps = 1e-3 // metres
	// sides[x] records, for a meridian at plane x, whether rings lie west
	// (bit 1) and east (bit 2) of it.
	sides := map[float64]int{}
	onMeridian := func(r ring, i int) (x float64, side int) {
		x = r.points[i][0]
		b := r.points.Bound()
		switch {
		case math.Abs(b.Max[0]-x) < eps:
			return x, 1
		case math.Abs(b.Min[0]-x) < eps:
			return x, 2
		}
		return x, 0
	}
	key := func(x float64) float64 { return math.Round(x / eps) }
	for _, r := range rings {
		for i, m := range r.meridian {
			if m {
				x, side := onMeridian(r, i)
				sides[key(x)] |= side
			}
		}
	}
	var out orb.MultiLineString
	for _, r := range rings {
		line := orb.LineString{r.points[0]}
		for i := 1; i < len(r.points); i++ {
			if r.meridian[i-1] {
				if x, _ := onMeridian(r, i-1); sides[key(x)] == 3 {
					if len(line) > 1 {
						out = append(out, line)
					}
					line = orb.LineString{r.points[i]}
					continue
				}
			}
			line = append(line, r.points[i])
		}
		if len(line) > 1 {
			out = append(out, line)
		}
	}
	return out
}
