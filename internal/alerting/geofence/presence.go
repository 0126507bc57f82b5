package geofence

import (
	"math"
	"time"
)

// Defaults of a Hysteresis.
const (
	// DefaultMargin is how far beyond the edge a fix must be to count: GPS
	// wanders 5–10 m in the open and 20 m and more between container
	// stacks and cranes (multipath).
	DefaultMargin = 25.0
	// DefaultFixes is how many fixes in a row must be beyond the margin:
	// one stray fix is no arrival.
	DefaultFixes = 2
)

// Hysteresis says when a series of fixes has entered or left a site. The
// zero value is the defaults: two fixes in a row at least DefaultMargin
// inside enter, two at least DefaultMargin outside leave, no minimum dwell.
// Choose a margin the site can hold: a fix can be no deeper inside a circle
// than its radius, nor inside a polygon than half its narrowest width.
type Hysteresis struct {
	// Margin is the distance in metres beyond the edge a fix must be to
	// count towards entering (inside) or leaving (outside); fixes nearer
	// the edge count for neither. 0 means DefaultMargin.
	Margin float64
	// Fixes is how many counting fixes in a row change the state. 0 means
	// DefaultFixes; 1 lets one fix do it.
	Fixes int
	// MinDwell is how long, from the first of those fixes, the entity must
	// stay beyond the margin before the state changes (0: no minimum).
	MinDwell time.Duration
}

func (h Hysteresis) margin() float64 {
	if h.Margin > 0 {
		return h.Margin
	}
	return DefaultMargin
}

func (h Hysteresis) fixes() int {
	if h.Fixes > 0 {
		return h.Fixes
	}
	return DefaultFixes
}

// Presence is one entity's state against one site, fed its fixes in time
// order. Its state (every member but Hysteresis) is plain data: it may be
// stored as JSON between fixes and goes on where it was. The zero value is
// outside, with the default hysteresis.
type Presence struct {
	// Hysteresis is the setting; it is not stored with the state.
	Hysteresis Hysteresis `json:"-"`
	// Inside is the state: in the site since the last entry.
	Inside bool `json:"inside"`
	// Pending counts the fixes in a row beyond the margin on the other
	// side, the first of them at PendingSince.
	Pending      int       `json:"pending,omitempty"`
	PendingSince time.Time `json:"pendingSince,omitzero"`
	// LastFix is the time of the last fix taken: an older or equal one is
	// ignored (a redelivery, or a report out of order).
	LastFix time.Time `json:"lastFix,omitzero"`
}

// Observe takes a fix: its distance to the site's edge (Geometry.Distance:
// negative inside) at a time, and reports whether it entered or left the
// site with this fix (at most one of them). A distance that is no number
// is ignored, as is a fix not later than the last one taken.
func (p *Presence) Observe(distance float64, at time.Time) (entered, left bool) {
	if math.IsNaN(distance) || !at.After(p.LastFix) {
		return false, false
	}
	p.LastFix = at
	m := p.Hysteresis.margin()
	beyond := distance >= m // clearly outside
	if !p.Inside {
		beyond = distance <= -m // clearly inside
	}
	if !beyond {
		p.Pending, p.PendingSince = 0, time.Time{}
		return false, false
	}
	if p.Pending == 0 {
		p.PendingSince = at
	}
	p.Pending++
	if p.Pending < p.Hysteresis.fixes() || at.Sub(p.PendingSince) < p.Hysteresis.MinDwell {
		return false, false
	}
	p.Inside = !p.Inside
	p.Pending, p.PendingSince = 0, time.Time{}
	return p.Inside, !p.Inside
}
