package console

import (
	"html/template"
	"strconv"
	"strings"
)

// The entity page's long repeats — a timeline row and a map point for each
// event, 300 and more of each on a vehicle's page — are written here
// rather than by html/template, whose reflection and escaper chain per
// action cost a vehicle's page 16 ms of CPU (BenchmarkVehiclePage). Every
// value goes through escape, so the markup is as safe as the template's:
// only double-quoted attributes and text content are written.

// escape escapes s for text content and for a double-quoted attribute.
func escape(b *strings.Builder, s string) { b.WriteString(template.HTMLEscapeString(s)) }

func writeInt(b *strings.Builder, v int64) { b.WriteString(strconv.FormatInt(v, 10)) }

func writeFloat(b *strings.Builder, v float64) { b.WriteString(strconv.FormatFloat(v, 'f', -1, 64)) }

// timelineMarkup writes the timeline table's rows.
func timelineMarkup(rows []timelineRow) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 256)
	for _, r := range rows {
		b.WriteString(`<tr data-version="`)
		writeInt(&b, r.Version)
		b.WriteString(`" data-type="`)
		escape(&b, r.Type)
		b.WriteString("\">\n<td>")
		writeInt(&b, r.Version)
		b.WriteString(`</td><td>`)
		b.WriteString(formatTime(r.OccurredAt))
		b.WriteString(`</td><th scope="row">`)
		escape(&b, r.Type)
		b.WriteString(`</th><td class="details">`)
		escape(&b, r.Summary)
		b.WriteString(`</td><td>`)
		b.WriteString(formatTime(r.RecordedAt))
		b.WriteString("</td>\n</tr>\n")
	}
	return template.HTML(b.String()) //nolint:gosec // every value above is escaped
}

// PointsMarkup writes the map's numbered points, each with its title.
func (m *svgMap) PointsMarkup() template.HTML {
	var b strings.Builder
	b.Grow(len(m.Points) * 320)
	for _, p := range m.Points {
		b.WriteString(`<g class="track-point" data-index="`)
		writeInt(&b, int64(p.Index))
		b.WriteString(`" data-version="`)
		writeInt(&b, p.Version)
		b.WriteString(`" data-type="`)
		escape(&b, p.Type)
		b.WriteString(`" data-lat="`)
		writeFloat(&b, p.Lat)
		b.WriteString(`" data-lon="`)
		writeFloat(&b, p.Lon)
		b.WriteString("\">\n<circle cx=\"")
		writeFloat(&b, p.X)
		b.WriteString(`" cy="`)
		writeFloat(&b, p.Y)
		b.WriteString(`" r="8"/><text x="`)
		writeFloat(&b, p.X)
		b.WriteString(`" y="`)
		writeFloat(&b, p.Y)
		b.WriteString(`" dy="0.35em">`)
		writeInt(&b, int64(p.Index))
		b.WriteString("</text>\n<title>")
		writeInt(&b, int64(p.Index))
		b.WriteString(`: `)
		escape(&b, p.Type)
		b.WriteString(` at `)
		b.WriteString(formatTime(p.OccurredAt))
		b.WriteString(` (`)
		writeFloat(&b, p.Lat)
		b.WriteString(`, `)
		writeFloat(&b, p.Lon)
		b.WriteString(")</title>\n</g>\n")
	}
	return template.HTML(b.String()) //nolint:gosec // every value above is escaped
}
