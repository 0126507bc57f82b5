package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a non-negative length of time read from configuration. It
// accepts, as a string, an ISO-8601 duration ("P365D", "PT15M", "P1DT2H30M",
// "PT0.5S", "P2W"), a .NET TimeSpan ("00:00:05", "1.02:03:04",
// "00:00:00.5") or a Go duration ("1h30m"), and, as a JSON number, seconds.
// It prints as ISO-8601. Convert with time.Duration(d).
type Duration time.Duration

// ParseDuration parses the string forms described at Duration. A bare number
// other than "0" is refused as ambiguous: .NET reads "30" as thirty days.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, errors.New("empty duration")
	case s[0] == '-':
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	case s[0] == 'P' || s[0] == 'p':
		return parseISODuration(s)
	case strings.Contains(s, ":"):
		return parseTimeSpan(s)
	case s == "0":
		return 0, nil
	case strings.Trim(s, "0123456789.") == "":
		return 0, fmt.Errorf("duration %q is ambiguous: write PT%sS, a TimeSpan such as 00:00:30, or %ss", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want ISO-8601 (PT30S), a TimeSpan (00:00:30) or a Go duration (30s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(d), nil
}

// isoUnits are the designators of an ISO-8601 duration in the order they
// must appear; "T" separates the date part from the time part.
var isoUnits = []struct {
	designator byte
	time       bool
	length     time.Duration
}{
	{'W', false, 7 * 24 * time.Hour},
	{'D', false, 24 * time.Hour},
	{'H', true, time.Hour},
	{'M', true, time.Minute},
	{'S', true, time.Second},
}

func parseISODuration(s string) (Duration, error) {
	bad := func(why string) error { return fmt.Errorf("invalid ISO-8601 duration %q: %s", s, why) }
	rest, inTime, next := strings.ToUpper(s[1:]), false, 0
	if rest == "" {
		return 0, bad("no components")
	}
	var total int64
	for rest != "" {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return 0, bad("misplaced T")
			}
			inTime, rest = true, rest[1:]
			continue
		}
		n := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' })
		if n <= 0 {
			return 0, bad("expected a number followed by a designator")
		}
		num, designator := rest[:n], rest[n]
		rest = rest[n+1:]
		if !inTime && (designator == 'Y' || designator == 'M') {
			return 0, bad("years and months have no fixed length; use days, e.g. P365D")
		}
		i := next
		for i < len(isoUnits) && (isoUnits[i].designator != designator || isoUnits[i].time != inTime) {
			i++
		}
		if i == len(isoUnits) {
			return 0, bad(fmt.Sprintf("unexpected or out-of-order %q", designator))
		}
		next = i + 1
		v, err := scaleDecimal(strings.ReplaceAll(num, ",", "."), int64(isoUnits[i].length))
		if err != nil {
			return 0, bad(err.Error())
		}
		if total > math.MaxInt64-v {
			return 0, bad("too long")
		}
		total += v
	}
	return Duration(total), nil
}

var timeSpanRE = regexp.MustCompile(`^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$`)

// parseTimeSpan parses .NET's constant TimeSpan format [d.]hh:mm[:ss[.fffffff]].
func parseTimeSpan(s string) (Duration, error) {
	m := timeSpanRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid TimeSpan %q: want [d.]hh:mm:ss[.fffffff]", s)
	}
	var n [4]int64 // days, hours, minutes, seconds
	for i, part := range m[1:5] {
		n[i], _ = strconv.ParseInt(part, 10, 64) // only days can be out of range
	}
	if n[1] > 23 || n[2] > 59 || n[3] > 59 {
		return 0, fmt.Errorf("invalid TimeSpan %q: hours must be 0–23, minutes and seconds 0–59", s)
	}
	days, err := scaleDecimal(cmp.Or(m[1], "0"), int64(24*time.Hour))
	if err != nil || days > math.MaxInt64-int64(24*time.Hour) {
		return 0, fmt.Errorf("invalid TimeSpan %q: too long", s)
	}
	frac, _ := scaleDecimal("0."+m[5], int64(time.Second))
	return Duration(days + n[1]*int64(time.Hour) + n[2]*int64(time.Minute) + n[3]*int64(time.Second) + frac), nil
}

// scaleDecimal returns the decimal number num ("12" or "1.5") times unit,
// exactly, rounding fractions of 1 down.
func scaleDecimal(num string, unit int64) (int64, error) {
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("invalid number %q", num)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/unit {
		return 0, fmt.Errorf("number %q is too large", num)
	}
	n := w * unit
	if frac = frac[:min(len(frac), 18)]; frac != "" {
		f, _ := strconv.ParseUint(frac, 10, 64)
		hi, lo := bits.Mul64(f, uint64(unit))
		q, _ := bits.Div64(hi, lo, uint64(math.Pow10(len(frac))))
		if n > math.MaxInt64-int64(q) {
			return 0, fmt.Errorf("number %q is too large", num)
		}
		n += int64(q)
	}
	return n, nil
}

// String returns d in ISO-8601 form, using days, hours, minutes and seconds:
// "P365D", "PT15M", "P1DT2H30M", "PT0.5S", "PT0S".
func (d Duration) String() string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	b.WriteByte('P')
	day, hour, minute := uint64(24*time.Hour), uint64(time.Hour), uint64(time.Minute)
	if u >= day {
		fmt.Fprintf(&b, "%dD", u/day)
		u %= day
	}
	if u == 0 {
		return b.String()
	}
	b.WriteByte('T')
	if u >= hour {
		fmt.Fprintf(&b, "%dH", u/hour)
		u %= hour
	}
	if u >= minute {
		fmt.Fprintf(&b, "%dM", u/minute)
		u %= minute
	}
	if u > 0 {
		sec, ns := u/uint64(time.Second), u%uint64(time.Second)
		b.WriteString(strconv.FormatUint(sec, 10))
		if ns > 0 {
			b.WriteString(strings.TrimRight(fmt.Sprintf(".%09d", ns), "0"))
		}
		b.WriteByte('S')
	}
	return b.String()
}

// MarshalText encodes d as ISO-8601.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the string forms described at Duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalJSON accepts a string (see Duration) or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	switch {
	case s == "null":
		return nil
	case strings.HasPrefix(s, `"`):
		u, err := strconv.Unquote(s)
		if err != nil {
			return fmt.Errorf("invalid duration %s", s)
		}
		return d.UnmarshalText([]byte(u))
	}
	secs, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return fmt.Errorf("invalid duration %s", s)
	case secs < 0:
		return fmt.Errorf("invalid duration %s: must not be negative", s)
	case secs*float64(time.Second) >= math.MaxInt64:
		return fmt.Errorf("invalid duration %s: too long", s)
	}
	*d = Duration(math.Round(secs * float64(time.Second)))
	return nil
}
