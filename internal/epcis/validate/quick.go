package validate

import (
	"encoding/json"

	"github.com/pb33f/jsonschema/v6"
)

// quick is a compiled schema read again as a plain predicate: holds
// reports that a value certainly satisfies it, without the library's
// bookkeeping (locations, error values, evaluated-property sets), which
// is most of what validating an event costs. It understands the
// keywords the GS1 schema's event definitions use, checking formats and
// patterns with the compiled schema's own functions; a schema using any
// other keyword never holds. So holds is never more lenient than the
// library, only sometimes stricter: false means "not proven", and the
// library then judges the value and words its problems.
type quick struct {
	never bool // a keyword this predicate does not read, or a false schema

	null, boolean, number, integer, str, array, object bool // "type"; all false: any type

	enum    map[string]bool // nil: no enum; string values only (others never match here)
	format  func(any) error
	pattern jsonschema.Regexp

	ref   *quick
	allOf []*quick
	anyOf []*quick

	required     []string
	properties   map[string]*quick
	closed       bool // additionalProperties: false
	names        *quick
	items        *quick
	minItems     int
	uniqueStrict bool // uniqueItems
}

// maxQuickDepth bounds the predicate's recursion: the schema may refer to
// itself, and a value nested this deep is left to the library.
const maxQuickDepth = 64

// newQuick reads a compiled schema (and what it refers to) as a quick.
func newQuick(s *jsonschema.Schema) *quick {
	return readQuick(s, map[*jsonschema.Schema]*quick{})
}

func readQuick(s *jsonschema.Schema, seen map[*jsonschema.Schema]*quick) *quick {
	if q, ok := seen[s]; ok {
		return q
	}
	q := &quick{}
	seen[s] = q
	if s.Bool != nil {
		q.never = !*s.Bool
		return q
	}
	// "not" holds where its schema fails, which this predicate cannot
	// prove: the schema uses it only as {"not": {}} (a field that must be
	// absent), where it never holds either.
	if s.RecursiveRef != nil || s.DynamicRef != nil || s.Const != nil || s.Not != nil ||
		len(s.OneOf) > 0 || s.If != nil || s.Then != nil || s.Else != nil ||
		s.MaxProperties != nil || s.MinProperties != nil || len(s.PatternProperties) > 0 ||
		len(s.Dependencies) > 0 || len(s.DependentRequired) > 0 || len(s.DependentSchemas) > 0 ||
		s.UnevaluatedProperties != nil || s.MaxItems != nil || s.Contains != nil || s.MinContains != nil ||
		s.MaxContains != nil || s.AdditionalItems != nil || len(s.PrefixItems) > 0 || s.Items2020 != nil ||
		s.UnevaluatedItems != nil || s.MinLength != nil || s.MaxLength != nil || s.ContentEncoding != nil ||
		s.ContentMediaType != nil || s.ContentSchema != nil || s.Maximum != nil || s.Minimum != nil ||
		s.ExclusiveMaximum != nil || s.ExclusiveMinimum != nil || s.MultipleOf != nil || len(s.Extensions) > 0 ||
		s.Format != nil && (s.Format.Name == "regex" || s.Format.Validate == nil) {
		q.never = true
		return q
	}
	switch additional := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		q.closed = !additional
	default:
		q.never = true
		return q
	}
	if s.Types != nil && !s.Types.IsEmpty() {
		for _, t := range s.Types.ToStrings() {
			switch t {
			case "null":
				q.null = true
			case "boolean":
				q.boolean = true
			case "number":
				q.number = true
			case "integer":
				q.integer = true
			case "string":
				q.str = true
			case "array":
				q.array = true
			case "object":
				q.object = true
			}
		}
	}
	if s.Enum != nil {
		q.enum = map[string]bool{}
		for _, v := range s.Enum.Values {
			if w, ok := v.(string); ok {
				q.enum[w] = true
			}
		}
	}
	if s.Format != nil {
		q.format = s.Format.Validate
	}
	q.pattern = s.Pattern
	if s.Ref != nil {
		q.ref = readQuick(s.Ref, seen)
	}
	for _, sub := range s.AllOf {
		q.allOf = append(q.allOf, readQuick(sub, seen))
	}
	for _, sub := range s.AnyOf {
		q.anyOf = append(q.anyOf, readQuick(sub, seen))
	}
	q.required = s.Required
	if len(s.Properties) > 0 {
		q.properties = make(map[string]*quick, len(s.Properties))
		for name, sub := range s.Properties {
			q.properties[name] = readQuick(sub, seen)
		}
	}
	if s.PropertyNames != nil {
		q.names = readQuick(s.PropertyNames, seen)
	}
	switch items := s.Items.(type) {
	case nil:
	case *jsonschema.Schema:
		q.items = readQuick(items, seen)
	default: // a list of schemas, one per position
		q.never = true
		return q
	}
	if s.MinItems != nil {
		q.minItems = *s.MinItems
	}
	q.uniqueStrict = s.UniqueItems
	return q
}

// holds reports whether v certainly satisfies the schema.
func (q *quick) holds(v any) bool { return q.check(v, 0) }

func (q *quick) check(v any, depth int) bool {
	if q.never || depth > maxQuickDepth {
		return false
	}
	if !q.typeHolds(v) {
		return false
	}
	if q.enum != nil {
		if s, ok := v.(string); !ok || !q.enum[s] {
			return false
		}
	}
	if q.format != nil && q.format(v) != nil {
		return false
	}
	if q.ref != nil && !q.ref.check(v, depth+1) {
		return false
	}
	for _, sub := range q.allOf {
		if !sub.check(v, depth+1) {
			return false
		}
	}
	if len(q.anyOf) > 0 {
		found := false
		for _, sub := range q.anyOf {
			if sub.check(v, depth+1) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	switch v := v.(type) {
	case map[string]any:
		return q.objectHolds(v, depth)
	case []any:
		return q.arrayHolds(v, depth)
	case string:
		return q.pattern == nil || q.pattern.MatchString(v)
	}
	return true
}

func (q *quick) typeHolds(v any) bool {
	if !(q.null || q.boolean || q.number || q.integer || q.str || q.array || q.object) {
		switch v.(type) {
		case nil, bool, json.Number, string, []any, map[string]any:
			return true
		}
		return false // a Go type JSON decoding does not give
	}
	switch v := v.(type) {
	case nil:
		return q.null
	case bool:
		return q.boolean
	case json.Number:
		return q.number || q.integer && isPlainInteger(string(v))
	case string:
		return q.str
	case []any:
		return q.array
	case map[string]any:
		return q.object
	}
	return false
}

// isPlainInteger reports whether a JSON number is written as an integer
// (the schema also counts 1.0 and 1e2; those are left to the library).
func isPlainInteger(n string) bool {
	if len(n) > 0 && n[0] == '-' {
		n = n[1:]
	}
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

func (q *quick) objectHolds(obj map[string]any, depth int) bool {
	for _, name := range q.required {
		if _, ok := obj[name]; !ok {
			return false
		}
	}
	for name, val := range obj {
		sub, ok := q.properties[name]
		if ok && !sub.check(val, depth+1) || !ok && q.closed {
			return false
		}
		if q.names != nil && !q.names.check(name, depth+1) {
			return false
		}
	}
	return true
}

func (q *quick) arrayHolds(arr []any, depth int) bool {
	if len(arr) < q.minItems {
		return false
	}
	if q.items != nil {
		for _, item := range arr {
			if !q.items.check(item, depth+1) {
				return false
			}
		}
	}
	if q.uniqueStrict && len(arr) > 1 {
		seen := make(map[string]bool, len(arr))
		for _, item := range arr {
			s, ok := item.(string)
			if !ok || seen[s] {
				return false // equal, or not compared here
			}
			seen[s] = true
		}
	}
	return true
}
