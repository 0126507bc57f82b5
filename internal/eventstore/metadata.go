package eventstore

import (
	"encoding/json"
	"unicode/utf8"
)

// DecodeMetadata reads an event's stored metadata, as json.Unmarshal into
// a Metadata does. Every reader of the log decodes the metadata of every
// event it reads, so the engines' scanners use this: the stored form (a
// flat object of the five fields, written by json.Marshal and, on
// PostgreSQL, read back from jsonb) is read directly; anything else (an
// escape, another key or spelling, a value that is not a plain string)
// goes to json.Unmarshal, which then decides.
func DecodeMetadata(raw string) (Metadata, error) {
	if m, ok := plainMetadata(raw); ok {
		return m, nil
	}
	var m Metadata
	err := json.Unmarshal([]byte(raw), &m)
	return m, err
}

// plainMetadata reads a flat JSON object whose keys are Metadata's own
// spellings and whose values are strings without escapes, control
// characters or invalid UTF-8; ok is false for any other input.
func plainMetadata(s string) (m Metadata, ok bool) {
	i := skipSpace(s, 0)
	if i == len(s) || s[i] != '{' {
		return m, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return m, skipSpace(s, i+1) == len(s)
	}
	for {
		key, next, ok := plainString(s, i)
		if !ok {
			return m, false
		}
		i = skipSpace(s, next)
		if i == len(s) || s[i] != ':' {
			return m, false
		}
		val, next, ok := plainString(s, skipSpace(s, i+1))
		if !ok {
			return m, false
		}
		switch key {
		case "correlationId":
			m.CorrelationID = val
		case "causationId":
			m.CausationID = val
		case "source":
			m.Source = val
		case "principal":
			m.Principal = val
		case "traceId":
			m.TraceID = val
		default:
			return m, false
		}
		i = skipSpace(s, next)
		if i == len(s) {
			return m, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return m, skipSpace(s, i+1) == len(s)
		default:
			return m, false
		}
	}
}

// plainString reads a JSON string at s[i] that has no escapes, control
// characters or invalid UTF-8, returning it and the index after it.
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			v := s[i+1 : j]
			return v, j + 1, utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
