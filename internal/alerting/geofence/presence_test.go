package geofence_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting/geofence"
)

var t0 = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

// southOfMaasvlakte is the latitude m metres north of the terminals'
// southern edge (negative: south of it, outside).
func southOfMaasvlakte(m float64) float64 { return 51.94 + m/metresPerDegree }

// A truck drives in across the terminals' southern edge, stands at the
// edge for half an hour with its GPS wandering ±20 m across it (one fix
// 45 m out), and drives away: one arrival, one departure, where the bare
// point-in-polygon answer flips at every other fix.
func TestJitterAtTheBoundaryDoesNotFlap(t *testing.T) {
	t.Parallel()
	g := parse(t, maasvlakte)
	offsets := []float64{-300, -150, -60, 40, 80, // drives in: arrives at the 5th fix
		12, -8, 15, -14, 3, -20, 18, -5, 9, -17, 20, -11, 6, -19, 14, -3, 17, -12, 8, -16, 11, -2, 19, -9, 4, -18, 13, -7,
		-45, 10, -15, // one fix far out, then back at the edge
		-60, -120} // drives away: departs at the last fix
	var (
		p              geofence.Presence
		entered, left  []int
		naiveFlips     int
		wasInsideNaive bool
	)
	for i, m := range offsets {
		lat := southOfMaasvlakte(m)
		at := t0.Add(time.Duration(i) * time.Minute)
		in, out := p.Observe(g.Distance(lat, 4.02), at)
		if in {
			entered = append(entered, i)
		}
		if out {
			left = append(left, i)
		}
		if inside := g.Contains(lat, 4.02); inside != wasInsideNaive {
			naiveFlips++
			wasInsideNaive = inside
		}
	}
	if len(entered) != 1 || entered[0] != 4 {
		t.Errorf("entered at fixes %v, want [4]", entered)
	}
	if len(left) != 1 || left[0] != len(offsets)-1 {
		t.Errorf("left at fixes %v, want [%d]", left, len(offsets)-1)
	}
	if naiveFlips < 20 {
		t.Errorf("the bare answer flipped %d times: the sequence does not jitter across the edge", naiveFlips)
	}
}

func TestPresence(t *testing.T) {
	t.Parallel()
	minute := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	type fix struct {
		distance float64
		at       time.Time
		// entered, left are the expected answers.
		entered, left bool
	}
	tests := []struct {
		name  string
		h     geofence.Hysteresis
		fixes []fix
	}{
		{"defaults: 25 m and two fixes", geofence.Hysteresis{}, []fix{
			{-30, minute(0), false, false},
			{-26, minute(1), true, false},
			{30, minute(2), false, false},
			{25, minute(3), false, true},
		}},
		{"a fix within the margin breaks the run", geofence.Hysteresis{}, []fix{
			{-30, minute(0), false, false},
			{-24, minute(1), false, false},
			{-30, minute(2), false, false},
			{-30, minute(3), true, false},
		}},
		{"a fix on the other side breaks the run", geofence.Hysteresis{}, []fix{
			{-30, minute(0), false, false},
			{40, minute(1), false, false},
			{-30, minute(2), false, false},
			{-30, minute(3), true, false},
		}},
		{"fixes out of order and repeated are ignored", geofence.Hysteresis{}, []fix{
			{-30, minute(5), false, false},
			{-30, minute(5), false, false},
			{-30, minute(4), false, false},
			{-30, minute(6), true, false},
		}},
		{"a distance that is no number is ignored", geofence.Hysteresis{}, []fix{
			{-30, minute(0), false, false},
			{math.NaN(), minute(1), false, false},
			{-30, minute(2), true, false},
		}},
		{"a margin of its own", geofence.Hysteresis{Margin: 100}, []fix{
			{-60, minute(0), false, false},
			{-60, minute(1), false, false},
			{-100, minute(2), false, false},
			{-150, minute(3), true, false},
		}},
		{"a minimum dwell", geofence.Hysteresis{Fixes: 1, MinDwell: 2 * time.Minute}, []fix{
			{-30, minute(0), false, false},
			{-30, minute(1), false, false},
			{-30, minute(2), true, false},
			{30, minute(3), false, false},
			{-30, minute(4), false, false},
			{30, minute(5), false, false},
			{30, minute(7), false, true},
		}},
		{"one fix is enough when asked", geofence.Hysteresis{Fixes: 1}, []fix{
			{-30, minute(0), true, false},
			{30, minute(1), false, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := geofence.Presence{Hysteresis: tc.h}
			for i, f := range tc.fixes {
				entered, left := p.Observe(f.distance, f.at)
				if entered != f.entered || left != f.left {
					t.Errorf("fix %d (%v m at %s): entered %v, left %v; want %v, %v", i, f.distance,
						f.at.Format(time.TimeOnly), entered, left, f.entered, f.left)
				}
			}
		})
	}
}

// A presence stored between two fixes (as JSON) goes on where it was.
func TestPresenceSurvivesStorage(t *testing.T) {
	t.Parallel()
	var p geofence.Presence
	p.Observe(-30, t0)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q geofence.Presence
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if entered, _ := q.Observe(-30, t0.Add(time.Minute)); !entered || !q.Inside {
		t.Errorf("restored from %s, the second fix inside did not enter", b)
	}
}
