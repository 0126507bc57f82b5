package config

import (
	"cmp"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
)

// LogValue renders c for log/slog, every connection string with its
// password masked and every other password replaced by a mask, so that a
// Config can be logged whole.
func (c *Config) LogValue() slog.Value {
	return logValue(reflect.ValueOf(*c), "")
}

// logValue renders v; secret is the `secret` tag of the field holding it.
func logValue(v reflect.Value, secret string) slog.Value {
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return slog.StringValue(s.String())
	}
	switch v.Kind() {
	case reflect.Struct:
		var attrs []slog.Attr
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "Warnings" {
				continue
			}
			name := cmp.Or(f.Tag.Get("config"), f.Name)
			if name == "-" {
				name = f.Name
			}
			attrs = append(attrs, slog.Attr{Key: name, Value: logValue(v.Field(i), f.Tag.Get("secret"))})
		}
		return slog.GroupValue(attrs...)
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
		attrs := make([]slog.Attr, len(keys))
		for i, k := range keys {
			attrs[i] = slog.Any(k.String(), v.MapIndex(k).Interface())
		}
		return slog.GroupValue(attrs...)
	case reflect.String:
		return slog.StringValue(redact(secret, v.String()))
	}
	return slog.AnyValue(v.Interface())
}

// redact masks the password in s, a connection string of the given kind
// ("database" or "redis"), or the whole of s when it is a "password";
// other strings are returned as they are.
func redact(kind, s string) string {
	if s == "" {
		return ""
	}
	switch kind {
	case "password":
		return mask
	case "database":
		if d, err := ParseDatabase(s); err == nil {
			return d.Redacted()
		}
	case "redis":
		if r, err := ParseRedis(s); err == nil {
			return RedactRedis(r)
		}
	default:
		return s
	}
	return "[hidden: unparseable connection string]"
}
