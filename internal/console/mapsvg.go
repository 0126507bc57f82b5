package console

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/clip"
	"github.com/paulmach/orb/project"

	"github.com/tlm/tracktrace/internal/alerting"
)

// landGeoJSON is Natural Earth's 1:110m land (public domain; see
// basemap/README.md).
//
//go:embed basemap/land-110m.geojson
var landGeoJSON []byte

// basemap is the land, in Web Mercator metres.
type basemap struct {
	land   orb.MultiPolygon
	bounds []orb.Bound // of each polygon, to skip those off the map
}

func loadBasemap() (*basemap, error) {
	mp, err := parsePolygons(landGeoJSON)
	if err != nil {
		return nil, fmt.Errorf("console: basemap: %w", err)
	}
	b := &basemap{land: make(orb.MultiPolygon, 0, len(mp))}
	for _, poly := range mp {
		proj := make(orb.Polygon, 0, len(poly))
		for _, ring := range poly {
			r := make(orb.Ring, len(ring))
			for i, p := range ring {
				r[i] = project.WGS84.ToMercator(p)
			}
			proj = append(proj, r)
		}
		b.land = append(b.land, proj)
		b.bounds = append(b.bounds, proj.Bound())
	}
	return b, nil
}

// The map's width in SVG units, and the bounds of its height: a map of a
// journey along one parallel or one meridian is padded to a usable shape.
const (
	mapWidth     = 800.0
	mapMinHeight = 320.0
	mapMaxHeight = 560.0
	// mapMinSpan is the least span of a map, in degrees: one point, or
	// points close together, are shown with their surroundings.
	mapMinSpan = 3.0
	// mapPadding is the margin around the points and sites, as a share of
	// their span.
	mapPadding = 0.2
)

// trackPoint is a reported position of an entity.
type trackPoint struct {
	Lat, Lon   float64
	OccurredAt time.Time
	Version    int64
	Type       string // the event's type
	SiteID     string
}

// mapSite is a site as the map needs it.
type mapSite struct {
	ID, Name string
	// A circle's centre and radius (metres), or polygons.
	circle   bool
	centre   orb.Point
	radius   float64
	polygons orb.MultiPolygon
}

// parseSite reads a site's geometry as stored (ParseGeometry accepted it):
// a Polygon, a MultiPolygon, or a circle written as a Point with a radius.
func parseSite(s alerting.Site) (mapSite, bool) {
	var raw struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
		Radius      float64         `json:"radius"`
	}
	if json.Unmarshal(s.Geometry, &raw) != nil {
		return mapSite{}, false
	}
	out := mapSite{ID: s.ID, Name: s.Name}
	switch raw.Type {
	case "Point":
		var c []float64
		if json.Unmarshal(raw.Coordinates, &c) != nil || len(c) < 2 {
			return mapSite{}, false
		}
		out.circle, out.centre, out.radius = true, orb.Point{c[0], c[1]}, raw.Radius
	case "Polygon", "MultiPolygon":
		mp, err := parsePolygons(s.Geometry)
		if err != nil {
			return mapSite{}, false
		}
		out.polygons = mp
	default:
		return mapSite{}, false
	}
	return out, true
}

// parsePolygons reads a GeoJSON Polygon or MultiPolygon (an altitude is
// ignored). orb's geojson package would do, but it brings a BSON library
// along.
func parsePolygons(raw []byte) (orb.MultiPolygon, error) {
	var g struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	var polys [][][][]float64
	switch g.Type {
	case "Polygon":
		var p [][][]float64
		if err := json.Unmarshal(g.Coordinates, &p); err != nil {
			return nil, err
		}
		polys = [][][][]float64{p}
	case "MultiPolygon":
		if err := json.Unmarshal(g.Coordinates, &polys); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("a %q, not a Polygon or MultiPolygon", g.Type)
	}
	out := make(orb.MultiPolygon, 0, len(polys))
	for _, p := range polys {
		poly := make(orb.Polygon, 0, len(p))
		for _, r := range p {
			ring := make(orb.Ring, 0, len(r))
			for _, pos := range r {
				if len(pos) < 2 {
					return nil, errors.New("a position has fewer than 2 coordinates")
				}
				ring = append(ring, orb.Point{pos[0], pos[1]})
			}
			poly = append(poly, ring)
		}
		out = append(out, poly)
	}
	return out, nil
}

// bound is the site's extent in degrees.
func (s mapSite) bound() orb.Bound {
	if !s.circle {
		return s.polygons.Bound()
	}
	dLat := s.radius / 111_320
	dLon := dLat / math.Max(math.Cos(s.centre[1]*math.Pi/180), 0.01)
	return orb.Bound{Min: orb.Point{s.centre[0] - dLon, s.centre[1] - dLat}, Max: orb.Point{s.centre[0] + dLon, s.centre[1] + dLat}}
}

// svgMap is a drawn map, ready for the template.
type svgMap struct {
	Width, Height float64
	Land          string // path data
	Track         string // polyline points
	Points        []svgPoint
	Sites         []svgSite
}

type svgPoint struct {
	Index      int
	X, Y       float64
	Lat, Lon   float64
	OccurredAt time.Time
	Version    int64
	Type       string
}

type svgSite struct {
	ID, Name string
	Circle   bool
	X, Y, R  float64
	Path     string
}

// draw draws the points (in time order, joined by a line) and sites on the
// land, clipped to their bounds with a margin. It returns nil when there is
// nothing to show.
func (b *basemap) draw(points []trackPoint, sites []mapSite) *svgMap {
	if len(points) == 0 && len(sites) == 0 {
		return nil
	}
	deg := orb.Bound{Min: orb.Point{math.Inf(1), math.Inf(1)}, Max: orb.Point{math.Inf(-1), math.Inf(-1)}}
	for _, p := range points {
		deg = deg.Extend(orb.Point{p.Lon, p.Lat})
	}
	for _, s := range sites {
		deg = deg.Union(s.bound())
	}
	deg = padBound(deg)
	view := orb.Bound{Min: project.WGS84.ToMercator(deg.Min), Max: project.WGS84.ToMercator(deg.Max)}
	view, height := fitAspect(view)
	m := &svgMap{Width: mapWidth, Height: height}
	scale := mapWidth / (view.Max[0] - view.Min[0])
	xy := func(p orb.Point) (float64, float64) {
		return round2((p[0] - view.Min[0]) * scale), round2((view.Max[1] - p[1]) * scale)
	}
	toXY := func(lonLat orb.Point) (float64, float64) { return xy(project.WGS84.ToMercator(lonLat)) }

	var land strings.Builder
	for i, poly := range b.land {
		if !b.bounds[i].Intersects(view) {
			continue
		}
		for _, ring := range clip.Polygon(view, poly.Clone()) {
			writeRing(&land, ring, xy)
		}
	}
	m.Land = land.String()

	var track strings.Builder
	for i, p := range points {
		x, y := toXY(orb.Point{p.Lon, p.Lat})
		m.Points = append(m.Points, svgPoint{Index: i + 1, X: x, Y: y, Lat: p.Lat, Lon: p.Lon,
			OccurredAt: p.OccurredAt, Version: p.Version, Type: p.Type})
		if i > 0 {
			track.WriteByte(' ')
		}
		track.WriteString(fmtCoord(x) + "," + fmtCoord(y))
	}
	m.Track = track.String()

	for _, s := range sites {
		out := svgSite{ID: s.ID, Name: s.Name, Circle: s.circle}
		if s.circle {
			out.X, out.Y = toXY(s.centre)
			// A circle stays a circle in Mercator, scaled by its latitude.
			out.R = math.Max(round2(s.radius*project.MercatorScaleFactor(s.centre)*scale), 4)
		} else {
			var path strings.Builder
			for _, poly := range s.polygons {
				for _, ring := range poly {
					r := make(orb.Ring, len(ring))
					for i, p := range ring {
						r[i] = project.WGS84.ToMercator(p)
					}
					writeRing(&path, r, xy)
				}
			}
			out.Path = path.String()
		}
		m.Sites = append(m.Sites, out)
	}
	return m
}

// padBound adds the margin to a bound in degrees, widening it to the least
// span, within the world.
func padBound(b orb.Bound) orb.Bound {
	grow := func(lo, hi, limit float64) (float64, float64) {
		span := hi - lo
		pad := math.Max(span*mapPadding, (mapMinSpan-span)/2)
		return math.Max(lo-pad, -limit), math.Min(hi+pad, limit)
	}
	b.Min[0], b.Max[0] = grow(b.Min[0], b.Max[0], 180)
	b.Min[1], b.Max[1] = grow(b.Min[1], b.Max[1], 85)
	return b
}

// fitAspect widens a projected bound so that, mapWidth wide, it is between
// mapMinHeight and mapMaxHeight high, and returns it with that height.
func fitAspect(v orb.Bound) (orb.Bound, float64) {
	w, h := v.Max[0]-v.Min[0], v.Max[1]-v.Min[1]
	height := mapWidth * h / w
	switch {
	case height < mapMinHeight:
		extra := (w*mapMinHeight/mapWidth - h) / 2
		v.Min[1], v.Max[1] = v.Min[1]-extra, v.Max[1]+extra
		height = mapMinHeight
	case height > mapMaxHeight:
		extra := (h*mapWidth/mapMaxHeight - w) / 2
		v.Min[0], v.Max[0] = v.Min[0]-extra, v.Max[0]+extra
		height = mapMaxHeight
	}
	return v, round2(height)
}

// writeRing appends a ring as SVG path data.
func writeRing(b *strings.Builder, r orb.Ring, xy func(orb.Point) (float64, float64)) {
	if len(r) < 3 {
		return
	}
	for i, p := range r {
		x, y := xy(p)
		if i == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte('L')
		}
		b.WriteString(fmtCoord(x) + " " + fmtCoord(y))
	}
	b.WriteByte('Z')
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func fmtCoord(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
