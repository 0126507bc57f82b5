package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes read from configuration: a JSON number of
// bytes, or a string such as "1024", "500MB", "500 MB", "64KiB" or "1.5GiB".
// Every unit is binary, as .NET settings usually mean: K, KB and KiB are
// 2^10 bytes, M, MB and MiB 2^20, G, GB and GiB 2^30, T, TB and TiB 2^40.
// It prints with the largest binary unit that divides it ("500MiB").
type ByteSize int64

// Binary byte-size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var byteUnits = map[string]ByteSize{
	"": 1, "b": 1,
	"k": KiB, "kb": KiB, "kib": KiB,
	"m": MiB, "mb": MiB, "mib": MiB,
	"g": GiB, "gb": GiB, "gib": GiB,
	"t": TiB, "tb": TiB, "tib": TiB,
}

// ParseByteSize parses the string forms described at ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok || i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes or a number with a unit such as 500MB or 1GiB", s)
	}
	n, err := scaleDecimal(s[:i], int64(unit))
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	return ByteSize(n), nil
}

// String returns b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalText encodes b as String does.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the string forms described at ByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalJSON accepts a string (see ByteSize) or a whole number of bytes.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	s := string(data)
	switch {
	case s == "null":
		return nil
	case strings.HasPrefix(s, `"`):
		u, err := strconv.Unquote(s)
		if err != nil {
			return fmt.Errorf("invalid size %s", s)
		}
		return b.UnmarshalText([]byte(u))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid size %s: want a whole, non-negative number of bytes", s)
	}
	*b = ByteSize(n)
	return nil
}
