package subscription_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/subscription"
)

func TestScheduleNext(t *testing.T) {
	// A Tuesday.
	from := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		s    subscription.Schedule
		want []string // the next due times, one after the other
	}{
		{"GS1's example: 1.05 am daily (seconds omitted match every second)", subscription.Schedule{Hour: "1", Minute: "5", Second: "0"},
			[]string{"2026-12-02T01:05:00Z", "2026-12-03T01:05:00Z"}},
		{"every 30 s as GS1's example writes it", subscription.Schedule{Second: "0/30"},
			[]string{"2026-12-01T08:00:30Z", "2026-12-01T08:01:00Z", "2026-12-01T08:01:30Z"}},
		{"top of the hour on weekdays", subscription.Schedule{Second: "0", Minute: "0", DayOfWeek: "[1-5]"},
			[]string{"2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"}},
		{"Sunday is 7", subscription.Schedule{Second: "0", Minute: "0", Hour: "0", DayOfWeek: "7"},
			[]string{"2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"}},
		{"day of month and day of week both hold (not cron's either)", subscription.Schedule{Second: "0", Minute: "0", Hour: "12", DayOfMonth: "13", DayOfWeek: "5"},
			[]string{"2027-08-13T12:00:00Z"}},
		{"lists and ranges", subscription.Schedule{Second: "0", Minute: "[10-11],40", Hour: "8"},
			[]string{"2026-12-01T08:10:00Z", "2026-12-01T08:11:00Z", "2026-12-01T08:40:00Z", "2026-12-02T08:10:00Z"}},
		{"leap day", subscription.Schedule{Second: "0", Minute: "0", Hour: "0", DayOfMonth: "29", Month: "2"},
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := from
			for _, w := range tc.want {
				next, err := tc.s.Next(at)
				if err != nil {
					t.Fatal(err)
				}
				if got := next.Format(time.RFC3339); got != w {
					t.Fatalf("after %s: %s, want %s", at.Format(time.RFC3339), got, w)
				}
				at = next
			}
		})
	}
}

func TestScheduleRefusesMalformedFields(t *testing.T) {
	for _, s := range []subscription.Schedule{
		{},
		{Second: "60"},
		{Hour: "24"},
		{DayOfMonth: "0"},
		{DayOfWeek: "0"},
		{Month: "13"},
		{Minute: "[5-1]"},
		{Minute: "[1-5"},
		{Minute: "five"},
		{Minute: "-1"},
		{Minute: "1,,2"},
		{Second: "0/0"},
		{DayOfMonth: "31", Month: "2"}, // never
	} {
		if _, err := s.Next(time.Now()); !errors.Is(err, subscription.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", s, err)
		}
	}
}
