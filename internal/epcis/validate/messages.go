package validate

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/pb33f/jsonschema/v6/kind"
)

// The words of problems: what is wrong with a field and what would be
// right, phrased for the partner who wrote the document.

const epcisContextURL = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"

const exampleTime = "2026-07-22T06:45:00.000+02:00"

// missingMessages explain the required fields whose purpose is not
// obvious from their name.
var missingMessages = map[string]string{
	"@context":            `@context is missing: EPCIS 2.0 JSON must name its JSON-LD context, e.g. "@context": ["` + epcisContextURL + `"]`,
	"eventTime":           "eventTime is missing: when the event happened, e.g. " + exampleTime,
	"eventTimeZoneOffset": "eventTimeZoneOffset is missing: the time zone offset in force where the event happened, e.g. +02:00",
	"action":              "action is missing: ADD, OBSERVE or DELETE",
	"type":                "type is missing: it says what this is (EPCISDocument, ObjectEvent, …)",
	"schemaVersion":       `schemaVersion is missing: "2.0" for EPCIS 2.0`,
	"creationDate":        "creationDate is missing: when the document was created, e.g. " + exampleTime,
	"bizTransactionList":  "bizTransactionList is missing: a TransactionEvent names at least one business transaction",
	"parentID":            "parentID is missing: an AssociationEvent names the parent it associates children with",
}

func missingMessage(name string) string {
	if m, ok := missingMessages[name]; ok {
		return m
	}
	return quoteName(name) + " is missing"
}

func wantKinds(want []string) string {
	var words []string
	for _, w := range want {
		switch w {
		case "object":
			words = append(words, "an object")
		case "array":
			words = append(words, "a list")
		case "string":
			words = append(words, "text")
		case "number", "integer":
			words = append(words, "a number")
		case "boolean":
			words = append(words, "true or false")
		default:
			words = append(words, w)
		}
	}
	return strings.Join(words, " or ")
}

// describeValue names a value's kind and, for scalars, the value.
func describeValue(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		return jsonKind(v)
	}
	return jsonKind(v) + " " + quoteValue(v)
}

// timeFields hold RFC 3339 date-times.
var timeFields = map[string]bool{
	"eventTime": true, "recordTime": true, "creationDate": true, "declarationTime": true,
	"time": true, "startTime": true, "endTime": true,
}

func formatMessage(loc []string, k *kind.Format) string {
	name := fieldName(loc)
	switch k.Want {
	case "date-time":
		return fmt.Sprintf("%s %s is not an RFC 3339 date-time with a time zone offset, e.g. %s", name, quoteValue(k.Got), exampleTime)
	case "uri":
		if len(loc) == 1 && loc[0] == "type" {
			// An event's own type: neither standard nor an extension URI.
			return fmt.Sprintf("type %s is not an EPCIS event type (ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent) nor the URI of an extension event type", quoteValue(k.Got))
		}
		return fmt.Sprintf("%s %s is not an absolute URI (an EPC URN, a GS1 Digital Link or another URI with a scheme)", name, quoteValue(k.Got))
	}
	return fmt.Sprintf("%s %s is not a valid %s", name, quoteValue(k.Got), k.Want)
}

func patternMessage(loc []string, got any) string {
	name := fieldName(loc)
	switch last(loc) {
	case "eventTimeZoneOffset":
		return fmt.Sprintf("eventTimeZoneOffset %s must be a UTC offset written ±hh:mm, from -14:00 to +14:00", quoteValue(got))
	case "uom":
		return fmt.Sprintf("uom %s is not a UN/CEFACT Rec. 20 unit code (2 or 3 capital letters or digits, e.g. KGM)", quoteValue(got))
	case "schemaVersion":
		return fmt.Sprintf("schemaVersion %s must be a version number such as 2.0", quoteValue(got))
	case "hexBinaryValue":
		return fmt.Sprintf("hexBinaryValue %s must be hexadecimal digits (0-9, A-F)", quoteValue(got))
	case "type":
		return fmt.Sprintf("type %s is not a known measurement type nor a URI", quoteValue(got))
	}
	return fmt.Sprintf("%s %s does not have the expected form", name, quoteValue(got))
}

func enumMessage(loc []string, k *kind.Enum) string {
	var want []string
	for _, w := range k.Want {
		want = append(want, fmt.Sprint(w))
	}
	if last(loc) == "action" {
		s, _ := k.Got.(string)
		return fmt.Sprintf("action %s is not one of ADD, OBSERVE, DELETE%s", quoteValue(k.Got), suggest(s, actions))
	}
	if len(want) > 12 {
		want = append(want[:12], "…")
	}
	return fmt.Sprintf("%s %s is not one of %s", fieldName(loc), quoteValue(k.Got), strings.Join(want, ", "))
}

// allowedFields lists the fields of the closed objects of EPCIS, for
// messages about a field that does not belong.
var allowedFields = map[string]string{
	"quantityElement":       " (its fields are epcClass, quantity and uom)",
	"bizTransaction":        " (its fields are type and bizTransaction)",
	"source":                " (its fields are type and source)",
	"destination":           " (its fields are type and destination)",
	"persistentDisposition": " (its fields are set and unset)",
}

// containerName names the object that holds a field, for messages.
func containerName(def string, loc []string) string {
	switch def {
	case "ilmd":
		return "ilmd"
	case "epcisDocument":
		return "an EPCISDocument"
	case "epcisQueryDocument":
		return "an EPCISQueryDocument"
	case "ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent":
		return "an " + def
	}
	if len(loc) == 0 {
		return "the input"
	}
	return fieldName(loc)
}

func propertyNameMessage(def string, loc []string, name string) string {
	if def == "ilmd" {
		return fmt.Sprintf(`ilmd field %s has no namespace: ILMD fields are user-defined and must be namespaced, e.g. "example:%s" with "example" declared in @context`, quoteName(name), quoteName(name))
	}
	return fmt.Sprintf(`%s is not a field of %s; a user extension field must be namespaced, e.g. "example:%s" with "example" declared in @context`, quoteName(name), containerName(def, loc), quoteName(name))
}

// cbvURIPrefixes are the URI forms of CBV terms that the schema keeps out
// of EPCIS 2.0 JSON, where a standard term is a bare word.
var cbvURIPrefixes = []string{"urn:epcglobal:cbv:", "http://ns.gs1.org/cbv/", "https://ns.gs1.org/cbv/"}

var gs1VocPrefixes = []string{"https://gs1.org/voc/", "http://gs1.org/voc/", "https://www.gs1.org/voc/", "http://www.gs1.org/voc/"}

// vocabularyMessage explains a value that is neither a standard term of
// a vocabulary nor an acceptable URI.
func vocabularyMessage(loc []string, value any, what string, terms []string) string {
	name := fieldName(loc)
	s, ok := value.(string)
	if !ok {
		return fmt.Sprintf("%s must be text (a %s or a URI), not %s", name, what, describeValue(value))
	}
	for _, p := range append(cbvURIPrefixes, gs1VocPrefixes...) {
		if strings.HasPrefix(s, p) {
			term := s[max(strings.LastIndexAny(s, ":/-"), len(p)-1)+1:]
			return fmt.Sprintf("%s %s: EPCIS 2.0 JSON writes a standard term as the bare word, e.g. %q, not as a URI", name, quoteValue(s), term)
		}
	}
	if !strings.Contains(s, ":") {
		return fmt.Sprintf("%s %s is not a standard %s%s; use a standard term or a URI of your own vocabulary, e.g. https://example.com/%s/%s",
			name, quoteValue(s), what, suggest(s, terms), last(loc), url.PathEscape(truncate(s)))
	}
	return fmt.Sprintf("%s %s is neither a standard %s nor an absolute URI", name, quoteValue(s), what)
}

func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.IsAbs()
}

func last(tokens []string) string {
	if len(tokens) == 0 {
		return ""
	}
	return tokens[len(tokens)-1]
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
