package validate

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pb33f/jsonschema/v6"
)

// compilePattern is the schema's regular-expression engine. Go's RE2 has
// no lookaround, and the GS1 schema states "a URI outside the CBV and
// GS1 Web vocabularies" as a leading negative lookahead,
// `^(?!(A|B))rest`. That one form is rewritten as "does not match ^(A|B)
// and matches ^rest"; every other pattern goes to RE2 unchanged, so an
// unsupported construct fails at compile time rather than matching
// wrongly. This spares a backtracking regexp dependency for two patterns.
func compilePattern(pattern string) (jsonschema.Regexp, error) {
	const lead = "^(?!"
	if !strings.HasPrefix(pattern, lead) {
		return regexp.Compile(pattern)
	}
	end := closingParen(pattern, 1)
	if end < 0 {
		return nil, fmt.Errorf("pattern %q: unbalanced lookahead", pattern)
	}
	excluded, err := regexp.Compile("^(?:" + pattern[len(lead):end] + ")")
	if err != nil {
		return nil, err
	}
	rest, err := regexp.Compile("^(?:" + pattern[end+1:] + ")")
	if err != nil {
		return nil, err
	}
	return negativeLookahead{source: pattern, excluded: excluded, rest: rest}, nil
}

// closingParen returns the index of the parenthesis closing the one at
// open, skipping escaped characters and character classes, or -1.
func closingParen(s string, open int) int {
	depth := 0
	inClass := false
	for i := open; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// negativeLookahead matches `^(?!excluded)rest`.
type negativeLookahead struct {
	source         string
	excluded, rest *regexp.Regexp
}

// MatchString reports whether s does not start with the excluded
// alternatives and the rest of the pattern matches at its start.
func (n negativeLookahead) MatchString(s string) bool {
	return !n.excluded.MatchString(s) && n.rest.MatchString(s)
}

// String returns the pattern as the schema wrote it.
func (n negativeLookahead) String() string { return n.source }
