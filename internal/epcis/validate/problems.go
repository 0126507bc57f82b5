package validate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxProblemsPerPart bounds the problems reported for one event (or for
// the document envelope): enough to fix a file, not enough to flood.
const maxProblemsPerPart = 20

// maxQuoted is how much of a value a message repeats.
const maxQuoted = 80

// problems collects Problems, one per field: the first (most specific)
// message for a pointer wins.
type problems struct {
	list []Problem
	seen map[string]bool
}

func (ps *problems) add(event int, id, pointer, message string) {
	key := strconv.Itoa(event) + "\x00" + pointer
	if ps.seen[key] {
		return
	}
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	ps.seen[key] = true
	ps.list = append(ps.list, Problem{Event: event, EventID: id, Pointer: pointer, Message: message})
}

// capPart keeps at most maxProblemsPerPart of the problems added since
// index from, replacing the rest by one that counts them.
func (ps *problems) capPart(from int) {
	n := len(ps.list) - from
	if n <= maxProblemsPerPart {
		return
	}
	last := ps.list[from+maxProblemsPerPart-1]
	ps.list = ps.list[:from+maxProblemsPerPart-1]
	ps.list = append(ps.list, Problem{
		Event: last.Event, EventID: last.EventID, Pointer: last.Pointer,
		Message: fmt.Sprintf("%s (and %d more problems not listed)", last.Message, n-maxProblemsPerPart),
	})
}

// quoteValue renders a JSON value for a message, shortened if long.
func quoteValue(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		if len(v) > maxQuoted {
			cut := maxQuoted
			for cut > 0 && !utf8.RuneStart(v[cut]) {
				cut--
			}
			return strconv.Quote(v[:cut]) + fmt.Sprintf("… (%d bytes)", len(v))
		}
		return strconv.Quote(v)
	case json.Number:
		s = v.String()
	case nil:
		s = "null"
	case bool:
		s = strconv.FormatBool(v)
	default:
		return jsonKind(v)
	}
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "…"
	}
	return s
}

// jsonKind names the JSON type of a decoded value, with an article.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "text"
	case json.Number:
		return "a number"
	case bool:
		return "true/false"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// maxPointerToken is the longest field name a pointer repeats; a problem
// about a longer (hostile) name points at the object holding it.
const maxPointerToken = 256

// pointer joins a base pointer and tokens, escaping per RFC 6901.
func pointer(base string, tokens ...string) string {
	var b strings.Builder
	b.WriteString(base)
	for _, t := range tokens {
		if len(t) > maxPointerToken {
			break
		}
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// valueAt returns the value under tokens in v, or nil.
func valueAt(v any, tokens []string) any {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			v = c[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// fieldName names the field at tokens for a message: its key, or
// "entry N of key" inside a list.
func fieldName(tokens []string) string {
	if len(tokens) == 0 {
		return "the input"
	}
	last := tokens[len(tokens)-1]
	if _, err := strconv.Atoi(last); err == nil && len(tokens) > 1 {
		return fmt.Sprintf("%s entry %s", quoteName(tokens[len(tokens)-2]), last)
	}
	if last == "type" && len(tokens) > 1 {
		return "type of " + fieldName(tokens[:len(tokens)-1])
	}
	return quoteName(last)
}

// quoteName shows a field name, shortened if hostile.
func quoteName(name string) string {
	if len(name) > maxQuoted {
		return quoteValue(name)
	}
	return name
}

// suggest returns ` (did you mean "x"?)` when word is a near miss of one
// of the terms, else "".
func suggest(word string, terms []string) string {
	if len(word) > 64 {
		return ""
	}
	best, bestDist := "", 3
	for _, t := range terms {
		if d := editDistance(strings.ToLower(word), strings.ToLower(t)); d < bestDist {
			best, bestDist = t, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
