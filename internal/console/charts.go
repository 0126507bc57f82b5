package console

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/tlm/tracktrace/internal/tracking"
)

// series is one line of a chart.
type series struct {
	Name  string
	Color color.Color
	Dash  []vg.Length
	Value func(b tracking.MetricBucket) (float64, bool)
}

// Colours with at least 4.5:1 contrast on white, told apart by their dashes
// too.
var (
	blue   = color.RGBA{R: 0x1f, G: 0x4e, B: 0x9c, A: 0xff}
	orange = color.RGBA{R: 0xa3, G: 0x44, B: 0x00, A: 0xff}
	purple = color.RGBA{R: 0x6b, G: 0x2c, B: 0x91, A: 0xff}
)

// chart draws buckets' series over time as an SVG image, returned as a
// data: URL for an <img> (the page's CSP allows images from data: URLs; an
// image's own styles are not the page's). Nil without buckets.
// The x axis spans the buckets and half an interval either side, so that
// one bucket is a point in the middle; yMax (0: the data's) is raised by a
// share that leaves the legend room.
func chart(title, yLabel string, buckets []tracking.MetricBucket, interval time.Duration, yMax float64, lines []series) (template.URL, error) {
	if len(buckets) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.X.Label.Text = "interval start (UTC)"
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02\n15:04"}
	half := interval.Seconds() / 2
	p.X.Min, p.X.Max = float64(buckets[0].Start.Unix())-half, float64(buckets[len(buckets)-1].Start.Unix())+half
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	for _, s := range lines {
		var xys plotter.XYs
		for _, b := range buckets {
			if v, ok := s.Value(b); ok {
				xys = append(xys, plotter.XY{X: float64(b.Start.Unix()), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return "", err
		}
		line.Color, line.Width, line.Dashes = s.Color, vg.Points(1.5), s.Dash
		points.Color, points.Shape = s.Color, draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
	}
	if yMax <= 0 {
		yMax = p.Y.Max
	}
	p.Y.Min, p.Y.Max = 0, yMax*1.3
	c := vgsvg.New(8*vg.Inch, 3*vg.Inch)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	return template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// percentileSeries are the lines of an operation-duration chart.
func percentileSeries() []series {
	return []series{
		{Name: "p50", Color: blue, Value: func(b tracking.MetricBucket) (float64, bool) { return b.P50, true }},
		{Name: "p95", Color: orange, Dash: []vg.Length{vg.Points(6), vg.Points(3)},
			Value: func(b tracking.MetricBucket) (float64, bool) { return b.P95, true }},
		{Name: "p99", Color: purple, Dash: []vg.Length{vg.Points(2), vg.Points(2)},
			Value: func(b tracking.MetricBucket) (float64, bool) { return b.P99, true }},
	}
}

// onTimeSeries is the line of the on-time rate chart, in percent.
func onTimeSeries() []series {
	return []series{{Name: "on time (%)", Color: blue, Value: func(b tracking.MetricBucket) (float64, bool) {
		if b.OnTimeRate == nil {
			return 0, false
		}
		return *b.OnTimeRate * 100, true
	}}}
}
