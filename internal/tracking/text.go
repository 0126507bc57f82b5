package tracking

import (
	"unicode"
	"unicode/utf8"
)

// IsText reports whether s is text every engine stores and every reader can
// show: valid UTF-8 without control characters (C0, DEL, C1). It is the rule
// for identifiers, filters and cursors that come from outside.
func IsText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// jsonTextProblem returns what is wrong with the strings of a JSON document
// that json.Valid accepts: a NUL character or a lone UTF-16 surrogate written
// as a \u escape, which PostgreSQL's JSON types and most consumers reject.
// It returns "" when there is nothing wrong.
func jsonTextProblem(doc []byte) string {
	inString := false
	for i := 0; i < len(doc); i++ {
		switch c := doc[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			i++
			if i >= len(doc) || doc[i] != 'u' || i+4 >= len(doc) {
				continue
			}
			u := hex4(doc[i+1 : i+5])
			i += 4
			switch {
			case u == 0:
				return "must not contain NUL characters (\\u0000)"
			case u >= 0xDC00 && u <= 0xDFFF:
				return "must not contain lone UTF-16 surrogates"
			case u >= 0xD800 && u <= 0xDBFF:
				if i+6 >= len(doc) || doc[i+1] != '\\' || doc[i+2] != 'u' {
					return "must not contain lone UTF-16 surrogates"
				}
				if low := hex4(doc[i+3 : i+7]); low < 0xDC00 || low > 0xDFFF {
					return "must not contain lone UTF-16 surrogates"
				}
				i += 6
			}
		}
	}
	return ""
}

// hex4 decodes four hex digits (json.Valid has checked them).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		}
	}
	return r
}
