package postgres

import (
	"testing"
	"time"
)

// Periods start at UTC midnight, weeks on Monday, months on the first.
func TestPartitionPeriodNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		period    string
		now, want string
	}{
		{"day", "2026-12-31T23:59:59+02:00", "2027-01-01T00:00:00Z"}, // 21:59 UTC
		{"Day", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
		{"week", "2026-12-02T10:00:00Z", "2026-12-07T00:00:00Z"}, // a Wednesday
		{"week", "2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"}, // a Monday
		{"week", "2026-12-06T23:00:00Z", "2026-12-07T00:00:00Z"}, // a Sunday
		{"MONTH", "2026-12-02T10:00:00Z", "2027-01-01T00:00:00Z"},
		{"", "2026-01-31T10:00:00Z", "2026-02-01T00:00:00Z"}, // the default
	} {
		p, err := ParsePartitionPeriod(c.period)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.next(at(c.now)); !got.Equal(at(c.want)) {
			t.Errorf("%q after %s: %s, want %s", c.period, c.now, got, c.want)
		}
	}
	if _, err := ParsePartitionPeriod("fortnight"); err == nil {
		t.Error("fortnight was accepted as a period")
	}
}
