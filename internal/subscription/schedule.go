package subscription

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is an EPCIS query schedule (EPCIS 2.0 §8.2.5.3, the REST
// binding's QueryScheduleSubscription): each field a list of values the
// time must match, omitted (empty) for any value. The times are UTC (the
// standard leaves the time zone to the service).
//
// A field is a comma-separated list of elements: a number, a range
// "[low-high]", or a number or range with a step ("0/30", "[0-30]/10":
// every tenth from the low end, as GS1's own example "second": "0/30"
// writes). Seconds are 0–59, minutes 0–59, hours 0–23, days of the month
// 1–31, months 1–12, days of the week 1–7 (Monday to Sunday). Unlike cron,
// a time matches when every field given matches: dayOfMonth and dayOfWeek
// together mean both.
type Schedule struct {
	Second     string `json:"second,omitempty"`
	Minute     string `json:"minute,omitempty"`
	Hour       string `json:"hour,omitempty"`
	DayOfMonth string `json:"dayOfMonth,omitempty"`
	Month      string `json:"month,omitempty"`
	DayOfWeek  string `json:"dayOfWeek,omitempty"`
}

// schedule is a parsed Schedule: per field, a set of the values matching.
type schedule struct {
	second, minute, hour, dom, month, dow uint64
}

// maxScheduleField bounds the text of one field.
const maxScheduleField = 256

// parse reads a schedule; an error names the field.
func (s Schedule) parse() (schedule, error) {
	var out schedule
	fields := []struct {
		name   string
		text   string
		lo, hi int
		dst    *uint64
	}{
		{"second", s.Second, 0, 59, &out.second},
		{"minute", s.Minute, 0, 59, &out.minute},
		{"hour", s.Hour, 0, 23, &out.hour},
		{"dayOfMonth", s.DayOfMonth, 1, 31, &out.dom},
		{"month", s.Month, 1, 12, &out.month},
		{"dayOfWeek", s.DayOfWeek, 1, 7, &out.dow},
	}
	given := false
	for _, f := range fields {
		set, err := parseField(f.text, f.lo, f.hi)
		if err != nil {
			return schedule{}, fmt.Errorf("%w: schedule.%s: %s", ErrInvalid, f.name, err)
		}
		given = given || f.text != ""
		*f.dst = set
	}
	if !given {
		return schedule{}, fmt.Errorf("%w: schedule: give at least one of second, minute, hour, dayOfMonth, month, dayOfWeek", ErrInvalid)
	}
	return out, nil
}

// parseField returns the set of values a field matches (all of lo..hi when
// it is empty).
func parseField(text string, lo, hi int) (uint64, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return span(lo, hi, 1), nil
	}
	if len(text) > maxScheduleField {
		return 0, fmt.Errorf("longer than %d characters", maxScheduleField)
	}
	var set uint64
	for elem := range strings.SplitSeq(text, ",") {
		elem = strings.TrimSpace(elem)
		body, stepText, stepped := strings.Cut(elem, "/")
		step := 1
		if stepped {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > hi {
				return 0, fmt.Errorf("%q: the step after '/' is a number from 1 to %d", elem, hi)
			}
			step = n
		}
		from, to := 0, 0
		if r, ok := strings.CutPrefix(body, "["); ok {
			r, ok = strings.CutSuffix(r, "]")
			a, b, dash := strings.Cut(r, "-")
			if !ok || !dash {
				return 0, fmt.Errorf("%q: a range is written [low-high]", elem)
			}
			var err error
			if from, err = number(a, lo, hi); err != nil {
				return 0, fmt.Errorf("%q: %w", elem, err)
			}
			if to, err = number(b, lo, hi); err != nil {
				return 0, fmt.Errorf("%q: %w", elem, err)
			}
			if from > to {
				return 0, fmt.Errorf("%q: the range's low end is above its high end", elem)
			}
		} else {
			n, err := number(body, lo, hi)
			if err != nil {
				return 0, fmt.Errorf("%q: %w", elem, err)
			}
			from, to = n, n
			if stepped {
				to = hi
			}
		}
		set |= span(from, to, step)
	}
	return set, nil
}

func number(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d–%d", n, lo, hi)
	}
	return n, nil
}

// span is the set of from..to by step.
func span(from, to, step int) uint64 {
	var set uint64
	for v := from; v <= to; v += step {
		set |= 1 << uint(v)
	}
	return set
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

// isoWeekday is t's day of the week, 1 (Monday) to 7 (Sunday).
func isoWeekday(t time.Time) int {
	if d := int(t.Weekday()); d != 0 {
		return d
	}
	return 7
}

// scheduleHorizon bounds the search for the next due time: a schedule
// matching no time within it (31 February) never runs.
const scheduleHorizon = 5 * 366 * 24 * time.Hour

// next returns the first time after t (to the second, UTC) the schedule
// matches, and false when none comes within five years. It moves by the
// coarsest field that does not match, as cron implementations do.
func (s schedule) next(after time.Time) (time.Time, bool) {
	t := after.UTC().Truncate(time.Second).Add(time.Second)
	limit := t.Add(scheduleHorizon)
	for t.Before(limit) {
		switch {
		case !has(s.month, int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !has(s.dom, t.Day()) || !has(s.dow, isoWeekday(t)):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case !has(s.hour, t.Hour()):
			t = t.Truncate(time.Hour).Add(time.Hour)
		case !has(s.minute, t.Minute()):
			t = t.Truncate(time.Minute).Add(time.Minute)
		case !has(s.second, t.Second()):
			t = t.Add(time.Second)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}

// Next returns the schedule's first due time after t, or an error when the
// schedule is malformed or never matches.
func (s Schedule) Next(t time.Time) (time.Time, error) {
	p, err := s.parse()
	if err != nil {
		return time.Time{}, err
	}
	due, ok := p.next(t)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: schedule: matches no time in the next five years", ErrInvalid)
	}
	return due, nil
}
