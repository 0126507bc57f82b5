package config

import (
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"P365D", 365 * day},
		{"PT15M", 15 * time.Minute},
		{"P1DT2H30M", day + 2*time.Hour + 30*time.Minute},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT1,25S", 1250 * time.Millisecond},
		{"P2W", 14 * day},
		{"P1W2D", 9 * day},
		{"pt1h", time.Hour},
		{"P0D", 0},
		{"PT1.5H", 90 * time.Minute},
		{"PT0.000000001S", time.Nanosecond},
		{"00:00:05", 5 * time.Second},
		{"00:15:00", 15 * time.Minute},
		{"1.02:03:04", day + 2*time.Hour + 3*time.Minute + 4*time.Second},
		{"00:00:00.5", 500 * time.Millisecond},
		{"00:00:00.0000001", 100 * time.Nanosecond},
		{"12:30", 12*time.Hour + 30*time.Minute},
		{"1h30m", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
		{"0", 0},
		{" PT5S ", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if err != nil || time.Duration(got) != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, time.Duration(got), err, tt.want)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{"P1Y", "years and months have no fixed length"},
		{"P6M", "years and months have no fixed length"},
		{"P", "no components"},
		{"PT", "misplaced T"},
		{"P1DT", "misplaced T"},
		{"P1H", "unexpected or out-of-order"},
		{"PT1D", "unexpected or out-of-order"},
		{"PT1S1M", "unexpected or out-of-order"},
		{"P1D1D", "unexpected or out-of-order"},
		{"PTS", "expected a number"},
		{"PT5", "expected a number"},
		{"P.5D", "invalid number"},
		{"P99999999999D", "too large"},
		{"-00:00:01", "must not be negative"},
		{"-PT1S", "must not be negative"},
		{"24:00:00", "hours must be 0–23"},
		{"00:60:00", "minutes and seconds 0–59"},
		{"1:2:3:4", "invalid TimeSpan"},
		{"99999999999.00:00:00", "too long"},
		{"30", "ambiguous"},
		{"1.5", "ambiguous"},
		{"five minutes", "invalid duration"},
		{"-5s", "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDuration(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseDuration(%q) = %v, %v; want an error containing %q", tt.in, d, err, tt.msg)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "PT0S"},
		{365 * day, "P365D"},
		{15 * time.Minute, "PT15M"},
		{day + 2*time.Hour + 30*time.Minute, "P1DT2H30M"},
		{500 * time.Millisecond, "PT0.5S"},
		{time.Hour + time.Nanosecond, "PT1H0.000000001S"},
		{-5 * time.Second, "-PT5S"},
	}
	for _, tt := range tests {
		if got := Duration(tt.in).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		if tt.in >= 0 {
			if back, err := ParseDuration(tt.want); err != nil || time.Duration(back) != tt.in {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.want, back, err, tt.in)
			}
		}
	}
}

func TestDurationUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`30`, 30 * time.Second, false},
		{`0.25`, 250 * time.Millisecond, false},
		{`"PT1M"`, time.Minute, false},
		{`"00:00:05"`, 5 * time.Second, false},
		{`-1`, 0, true},
		{`1e300`, 0, true},
		{`true`, 0, true},
		{`"30"`, 0, true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalJSON([]byte(tt.in))
		if (err != nil) != tt.wantErr || time.Duration(d) != tt.want {
			t.Errorf("UnmarshalJSON(%s) = %v, %v; want %v (error %t)", tt.in, time.Duration(d), err, tt.want, tt.wantErr)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
	}{
		{"1024", 1024},
		{"500MB", 500 << 20},
		{"500 MB", 500 << 20},
		{"500mb", 500 << 20},
		{"1GiB", 1 << 30},
		{"1GB", 1 << 30},
		{"64KiB", 64 << 10},
		{"64K", 64 << 10},
		{"1.5GiB", 3 << 29},
		{"2TB", 2 << 40},
		{"10B", 10},
		{"0", 0},
	}
	for _, tt := range tests {
		if got, err := ParseByteSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "MB", "lots", "-1MB", "1PB", "1.2.3MB", "99999999999999999999", "9999999TiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"}, {1536, "1536B"}, {64 * KiB, "64KiB"}, {500 * MiB, "500MiB"}, {GiB, "1GiB"}, {3 * TiB, "3TiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestByteSizeUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{`1048576`, MiB, false},
		{`"4MiB"`, 4 * MiB, false},
		{`1.5`, 0, true},
		{`-1`, 0, true},
		{`"x"`, 0, true},
	}
	for _, tt := range tests {
		var b ByteSize
		err := b.UnmarshalJSON([]byte(tt.in))
		if (err != nil) != tt.wantErr || b != tt.want {
			t.Errorf("UnmarshalJSON(%s) = %d, %v; want %d (error %t)", tt.in, b, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"P365D", "PT0.5S", "1.02:03:04", "00:00:00.5", "-00:00:01", "P1Y", "1h30m", "30", "P2W", "PT1,5M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		var j Duration
		_ = j.UnmarshalJSON([]byte(s))
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, time.Duration(d))
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Fatalf("round trip of %q: %q parses as %v, %v; want %v", s, d.String(), back, err, d)
		}
	})
}
