package tracking

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// object is one JSON object being decoded strictly. Values are looked up by
// exact key; problems are reported to errs under path.
type object struct {
	path   string
	fields map[string]json.RawMessage
	errs   *fieldErrors
	bad    bool // not an object: every lookup is absent, already reported
}

// parseObject splits a JSON object (already known to be valid JSON) into its
// members, rejecting keys outside allowed (compared exactly, unlike
// encoding/json which folds case), duplicate keys and non-objects. allowed nil
// accepts any key.
func parseObject(data json.RawMessage, path string, errs *fieldErrors, allowed ...string) *object {
	o := &object{path: path, errs: errs, fields: map[string]json.RawMessage{}}
	if firstByte(data) != '{' {
		errs.add(path, "must be a JSON object")
		o.bad = true
		return o
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the opening brace
		errs.add(path, "is not valid JSON")
		o.bad = true
		return o
	}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			errs.add(path, "is not valid JSON")
			o.bad = true
			return o
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			errs.add(path, "is not valid JSON")
			o.bad = true
			return o
		}
		field := joinPath(path, pointerToken(key))
		switch {
		case allowed != nil && !slices.Contains(allowed, key):
			errs.add(field, "unknown field")
		case o.has(key):
			errs.add(field, "duplicate field")
		default:
			o.fields[key] = v
		}
	}
	return o
}

func (o *object) has(key string) bool {
	_, ok := o.fields[key]
	return ok
}

// value returns the raw value of key; absent and null are both "not there".
func (o *object) value(key string, required bool) (json.RawMessage, bool) {
	if o.bad {
		return nil, false
	}
	v, ok := o.fields[key]
	if !ok || string(v) == "null" {
		if required {
			o.errs.add(joinPath(o.path, key), "is required")
		}
		return nil, false
	}
	return v, true
}

// str decodes an optional or required string of at most max characters. The
// empty string counts as absent.
func (o *object) str(key string, required bool, max int) string {
	v, ok := o.value(key, required)
	if !ok {
		return ""
	}
	field := joinPath(o.path, key)
	var s string
	if firstByte(v) != '"' || json.Unmarshal(v, &s) != nil {
		o.errs.add(field, "must be a string")
		return ""
	}
	switch {
	case s == "" && required:
		o.errs.add(field, "is required")
	case !cleanText(s):
		o.errs.add(field, "must be UTF-8 text without NUL characters")
		return ""
	case utf8.RuneCountInString(s) > max:
		o.errs.add(field, "must have at most %d characters", max)
		return ""
	}
	return s
}

func (o *object) enum(key string, required bool, allowed []string) string {
	s := o.str(key, required, MaxIDLength)
	if s != "" && !slices.Contains(allowed, s) {
		o.errs.add(joinPath(o.path, key), "must be one of %s", strings.Join(allowed, ", "))
		return ""
	}
	return s
}

func (o *object) entityID(key string, required bool) string {
	s := o.str(key, required, MaxIDLength)
	if s != "" && !IsEntityID(s) {
		o.errs.add(joinPath(o.path, key), "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
		return ""
	}
	return s
}

func (o *object) operation(key string) string {
	s := o.str(key, true, maxOperationName)
	if s != "" && !IsOperationName(s) {
		o.errs.add(joinPath(o.path, key), "must match ^[a-z][a-z0-9_]{0,63}$ (for example loading, sorting, delivery)")
		return ""
	}
	return s
}

// time decodes an RFC 3339 timestamp, normalized to UTC.
func (o *object) time(key string, required bool) time.Time {
	s := o.str(key, required, 64)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		o.errs.add(joinPath(o.path, key), "must be an RFC 3339 timestamp")
		return time.Time{}
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		o.errs.add(joinPath(o.path, key), "must be between years 0001 and 9999 (UTC)")
		return time.Time{}
	}
	return t
}

// number decodes a finite JSON number.
func (o *object) number(key string, required bool) (float64, bool) {
	v, ok := o.value(key, required)
	if !ok {
		return 0, false
	}
	var f float64
	if c := firstByte(v); c != '-' && (c < '0' || c > '9') || json.Unmarshal(v, &f) != nil ||
		math.IsInf(f, 0) || math.IsNaN(f) {
		o.errs.add(joinPath(o.path, key), "must be a finite number")
		return 0, false
	}
	return f, true
}

func (o *object) inRange(key string, lo, hi float64) float64 {
	f, ok := o.number(key, true)
	if ok && (f < lo || f > hi) {
		o.errs.add(joinPath(o.path, key), "must be between %g and %g", lo, hi)
		return 0
	}
	return f
}

func (o *object) latitude(key string) float64  { return o.inRange(key, -90, 90) }
func (o *object) longitude(key string) float64 { return o.inRange(key, -180, 180) }

func (o *object) nonNegative(key string) *float64 {
	f, ok := o.number(key, false)
	if !ok {
		return nil
	}
	if f < 0 {
		o.errs.add(joinPath(o.path, key), "must be greater than or equal to 0")
		return nil
	}
	return &f
}

// object decodes an optional nested object with the allowed keys; nil when
// absent, null or not an object. Problems of its members are reported when the
// caller reads them.
func (o *object) object(key string, allowed ...string) *object {
	v, ok := o.value(key, false)
	if !ok {
		return nil
	}
	n := parseObject(v, joinPath(o.path, key), o.errs, allowed...)
	if n.bad {
		return nil
	}
	return n
}

// attributes decodes a map of at most MaxAttributes string values; an empty
// map is nil.
func (o *object) attributes(key string) map[string]string {
	v, ok := o.value(key, false)
	if !ok {
		return nil
	}
	path := joinPath(o.path, key)
	n := parseObject(v, path, o.errs)
	if n.bad {
		return nil
	}
	if len(n.fields) > MaxAttributes {
		o.errs.add(path, "must have at most %d keys", MaxAttributes)
		return nil
	}
	var attrs map[string]string
	for _, k := range slices.Sorted(maps.Keys(n.fields)) {
		if k == "" || utf8.RuneCountInString(k) > MaxIDLength || !cleanText(k) {
			o.errs.add(joinPath(path, pointerToken(k)), "attribute names must have 1 to %d characters", MaxIDLength)
			continue
		}
		if string(n.fields[k]) == "null" {
			o.errs.add(joinPath(path, pointerToken(k)), "must be a string")
			continue
		}
		s := n.str(k, false, MaxTextLength)
		if attrs == nil {
			attrs = make(map[string]string, len(n.fields))
		}
		attrs[k] = s
	}
	return attrs
}

// firstByte returns the first non-space byte of a JSON text, or 0.
func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// cleanText reports whether s is valid UTF-8 without NUL characters, which
// every storage engine can store as text.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
