package validate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/jsonschema/v6/kind"
)

// schema turns the schema library's error tree for one validated value
// (the envelope, or one event at base) into Problems on the most
// specific field, in words rather than schema keywords.
func (ps *problems) schema(err error, inst any, base string, event int, id string) {
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		ps.add(event, id, base, "could not be validated: "+err.Error())
		return
	}
	reported := 0
	subject := "the event"
	if event < 0 {
		subject = "the document"
	}
	t := translator{ps: ps, inst: inst, base: base, event: event, id: id, subject: subject, reported: &reported}
	t.walk(ve)
	if reported == 0 {
		// Never accept what the schema refused, even where the
		// translation has no words for it.
		var first *jsonschema.ValidationError
		forLeaves(ve, func(leaf *jsonschema.ValidationError) {
			if first == nil {
				first = leaf
			}
		})
		ps.add(event, id, pointer(base, first.InstanceLocation...), "does not match the EPCIS 2.0 JSON Schema: "+first.Error())
	}
}

type translator struct {
	ps       *problems
	inst     any
	base     string
	event    int
	id       string
	subject  string // what the validated value is, for messages
	reported *int
}

// name names the field at loc, or the validated value itself.
func (t translator) name(loc []string) string {
	if len(loc) == 0 {
		return t.subject
	}
	return fieldName(loc)
}

func (t translator) add(tokens []string, message string) {
	*t.reported++
	t.ps.add(t.event, t.id, pointer(t.base, tokens...), message)
}

// keyword returns where in the schema an error arose, as a definition
// name and the keyword path inside it: ("bizStep", "anyOf"),
// ("ObjectEvent", "allOf/2/anyOf").
func keyword(e *jsonschema.ValidationError) (def, path string) {
	loc := e.SchemaURL
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		loc = loc[i+1:]
	}
	loc = strings.Join(append([]string{loc}, e.ErrorKind.KeywordPath()...), "/")
	loc = strings.TrimPrefix(loc, "/definitions/")
	def, path, _ = strings.Cut(loc, "/")
	return def, path
}

func (t translator) walk(e *jsonschema.ValidationError) {
	loc := e.InstanceLocation
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, name := range k.Missing {
			t.add(append(slices.Clip(loc), name), missingMessage(name))
		}
	case *kind.Type:
		t.add(loc, fmt.Sprintf("%s must be %s, not %s", t.name(loc), wantKinds(k.Want), describeValue(valueAt(t.inst, loc))))
	case *kind.Format:
		t.add(loc, formatMessage(loc, k))
	case *kind.Pattern:
		t.add(loc, patternMessage(loc, k.Got))
	case *kind.Enum:
		t.add(loc, enumMessage(loc, k))
	case *kind.Const:
		t.add(loc, fmt.Sprintf("%s must be %s", fieldName(loc), quoteValue(k.Want)))
	case *kind.AdditionalProperties:
		def, _ := keyword(e)
		for _, p := range k.Properties {
			t.add(append(slices.Clip(loc), p), fmt.Sprintf("%s is not a field of %s%s", quoteName(p), containerName(def, loc), allowedFields[def]))
		}
	case *kind.PropertyNames:
		def, _ := keyword(e)
		t.add(append(slices.Clip(loc), k.Property), propertyNameMessage(def, loc, k.Property))
	case *kind.MinItems:
		t.add(loc, fmt.Sprintf("%s must not be empty", fieldName(loc)))
	case *kind.UniqueItems:
		item := strconv.Itoa(k.Duplicates[1])
		t.add(append(slices.Clip(loc), item), fmt.Sprintf("%s repeats entry %d", fieldName(append(slices.Clip(loc), item)), k.Duplicates[0]))
	case *kind.AnyOf, *kind.OneOf:
		t.anyOf(e)
	case *kind.FalseSchema, *kind.Not:
		t.add(loc, fmt.Sprintf("%s is not allowed here", fieldName(loc)))
	default:
		if len(e.Causes) == 0 {
			t.add(loc, fmt.Sprintf("%s does not match the EPCIS 2.0 JSON Schema: %s", t.name(loc), e.Error()))
		}
		for _, c := range e.Causes {
			t.walk(c)
		}
	}
}

// vocabularies are the schema definitions that allow "a standard bare
// word or a URI of another vocabulary", with what a term of each is.
var vocabularies = map[string]string{
	"bizStep":             "CBV 2.0 business step",
	"disposition":         "CBV 2.0 disposition",
	"bizTransaction-type": "CBV 2.0 business transaction type",
	"source-dest-type":    "CBV 2.0 source/destination type",
	"error-reason":        "CBV 2.0 error reason",
	"component":           "CBV 2.0 sensor component",
	"measurementType":     "GS1 measurement type",
	"sensorAlertType":     "GS1 sensor alert type (ALARM_CONDITION, ERROR_CONDITION)",
}

// anyOf reports a failed anyOf/oneOf as one problem, or as the problems
// of the alternative the input evidently meant, rather than every
// alternative's complaint.
func (t translator) anyOf(e *jsonschema.ValidationError) {
	loc := e.InstanceLocation
	value := valueAt(t.inst, loc)
	def, path := keyword(e)
	if what, ok := vocabularies[def]; ok && path == "anyOf" {
		t.add(loc, vocabularyMessage(loc, value, what, enumTerms(e)))
		return
	}
	switch {
	case def == "certificationInfo":
		if _, isList := value.([]any); isList {
			for i, item := range value.([]any) {
				if s, ok := item.(string); !ok || !isAbsoluteURI(s) {
					t.add(append(slices.Clip(loc), strconv.Itoa(i)), fmt.Sprintf("certificationInfo entry %d must be a URI identifying a certificate (e.g. https://cert.example.org/ABC123), not %s", i, describeValue(item)))
				}
			}
			return
		}
		t.add(loc, fmt.Sprintf("certificationInfo must be a URI identifying a certificate (e.g. https://cert.example.org/ABC123) or a list of such URIs, not %s", describeValue(value)))
		return
	case def == "%40context" || def == "@context":
		t.context(loc, value)
		return
	case def == "ObjectEvent" && path == "allOf/3/anyOf":
		// ilmd with OBSERVE or DELETE; a wrong action is reported by
		// the action field's own check.
		event, _ := value.(map[string]any)
		if a, _ := event["action"].(string); a != "ADD" && slices.Contains(actions, a) && event["ilmd"] != nil {
			t.add(append(slices.Clip(loc), "ilmd"), fmt.Sprintf("ilmd (instance/lot master data) is only allowed when action is ADD, not %s", a))
		}
		return
	}
	if summary, ok := anyOfSummaries[def+"/"+path]; ok {
		if best := t.meantBranch(e); best != nil {
			t.walk(best)
			return
		}
		t.add(loc, summary)
		return
	}
	if best := t.meantBranch(e); best != nil {
		t.walk(best)
		return
	}
	t.add(loc, fmt.Sprintf("%s does not have any of the forms EPCIS allows here", t.name(loc)))
}

// anyOfSummaries explain the structural alternatives of event types,
// reported when the input follows none of them.
var anyOfSummaries = map[string]string{
	"ObjectEvent/allOf/2/anyOf":           "an ObjectEvent must say what it is about: epcList, quantityList, or sensorElementList together with readPoint",
	"AggregationEvent/allOf/2/anyOf":      "an AggregationEvent needs childEPCs or childQuantityList (they may be left out only when action is DELETE)",
	"AssociationEvent/allOf/2/anyOf":      "an AssociationEvent needs childEPCs or childQuantityList (they may be left out only when action is DELETE)",
	"TransactionEvent/allOf/2/anyOf":      "a TransactionEvent needs epcList or quantityList (they may be left out only when action is DELETE)",
	"TransformationEvent/allOf/2/anyOf":   "a TransformationEvent needs inputs (inputEPCList or inputQuantityList) and outputs (outputEPCList or outputQuantityList), or a transformationID with at least one of them",
	"persistentDisposition/allOf/1/anyOf": "persistentDisposition needs set or unset",
	"sensorReport/anyOf":                  "a sensor report needs type (what was measured) or exception (an alarm or error condition)",
}

// meantBranch returns the failed alternative whose complaints all lie
// deeper than the alternative's own fields — the one the input follows
// in shape but gets wrong in detail — or nil when every alternative
// fails on its shape (missing or mistyped fields, a wrong action).
func (t translator) meantBranch(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	depth := len(e.InstanceLocation)
	var best *jsonschema.ValidationError
	bestCount := 0
	for _, branch := range e.Causes {
		shapeOK, count := true, 0
		forLeaves(branch, func(leaf *jsonschema.ValidationError) {
			count++
			if len(leaf.InstanceLocation) <= depth+1 {
				shapeOK = false
			}
		})
		if shapeOK && (best == nil || count < bestCount) {
			best, bestCount = branch, count
		}
	}
	return best
}

// forLeaves calls f on every error without causes under e.
func forLeaves(e *jsonschema.ValidationError, f func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		f(e)
		return
	}
	for _, c := range e.Causes {
		forLeaves(c, f)
	}
}

// enumTerms finds the standard terms listed by an anyOf's enum branch.
func enumTerms(e *jsonschema.ValidationError) []string {
	var terms []string
	forLeaves(e, func(leaf *jsonschema.ValidationError) {
		if k, ok := leaf.ErrorKind.(*kind.Enum); ok {
			for _, w := range k.Want {
				if s, ok := w.(string); ok {
					terms = append(terms, s)
				}
			}
		}
	})
	return terms
}

// context reports what is wrong with an @context the schema refused.
func (t translator) context(loc []string, value any) {
	list, isList := value.([]any)
	if !isList {
		t.add(loc, "@context must be a URI, an object, or a list of URIs and objects, not "+describeValue(value))
		return
	}
	before := *t.reported
	seen := map[string]int{}
	for i, item := range list {
		at := append(slices.Clip(loc), strconv.Itoa(i))
		switch item := item.(type) {
		case map[string]any:
		case string:
			if !isAbsoluteURI(item) {
				t.add(at, fmt.Sprintf("@context entry %d %s is not an absolute URI", i, quoteValue(item)))
			} else if first, dup := seen[item]; dup {
				t.add(at, fmt.Sprintf("@context entry %d repeats entry %d", i, first))
			} else {
				seen[item] = i
			}
		default:
			t.add(at, fmt.Sprintf("@context entry %d must be a URI or an object, not %s", i, describeValue(item)))
		}
	}
	if *t.reported == before {
		t.add(loc, "@context lists the same entry twice")
	}
}
