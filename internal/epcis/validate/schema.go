package validate

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pb33f/jsonschema/v6"
)

// gs1Schema is GS1's EPCIS 2.0 JSON Schema, byte-identical to
// ../shared/epcis/gs1/EPCIS-JSON-Schema.json (a test keeps it so).
//
//go:embed EPCIS-JSON-Schema.json
var gs1Schema []byte

// schemaURL is the schema's own $id, under which it is registered.
const schemaURL = "https://gs1.github.io/EPCIS/EPCIS-JSON-Schema.json"

// schemas are the compiled entry points into the GS1 schema. The schema
// dispatches on "type" with if/then chains that the library evaluates
// one by one for every event, which costs more than the validation
// itself; dispatching here, to the very definition the chain would pick,
// gives the same verdict for a fraction of the time.
type schemas struct {
	// document is an EPCISDocument (its eventList members are
	// validated apart, as events).
	document *jsonschema.Schema
	// events are the standard event types by name; extension is any
	// other event type, which must be a URI.
	events    map[string]*jsonschema.Schema
	extension *jsonschema.Schema
	// quickEvents are the standard event types' definitions as quick
	// predicates: an event they prove valid skips the library.
	quickEvents map[string]*quick
}

// event returns the definition for an event of type t.
func (s schemas) event(t string) *jsonschema.Schema {
	if sch, ok := s.events[t]; ok {
		return sch
	}
	return s.extension
}

// validateEvent validates an event of type t: nil when the quick
// predicate proves it valid, else the library's verdict.
func (s schemas) validateEvent(t string, e map[string]any) error {
	if q := s.quickEvents[t]; q != nil && q.holds(e) {
		return nil
	}
	return s.event(t).Validate(e)
}

// compileSchemas compiles the embedded schema after applying errata.
// Nothing is fetched: a reference the schema does not resolve itself
// is an error.
func compileSchemas() (schemas, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gs1Schema))
	if err != nil {
		return schemas{}, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	if err := applyErrata(doc); err != nil {
		return schemas{}, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	if err := mergeFieldNames(doc); err != nil {
		return schemas{}, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	enumsFirst(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.UseRegexpEngine(compilePattern)
	c.UseLoader(offline{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return schemas{}, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	compile := func(def string) (*jsonschema.Schema, error) {
		sch, err := c.Compile(schemaURL + "#/definitions/" + def)
		if err != nil {
			return nil, fmt.Errorf("validate: compile GS1 schema %s: %w", def, err)
		}
		return sch, nil
	}
	s := schemas{events: map[string]*jsonschema.Schema{}, quickEvents: map[string]*quick{}}
	if s.document, err = compile("epcisDocument"); err != nil {
		return schemas{}, err
	}
	if s.extension, err = compile("Extended-Event"); err != nil {
		return schemas{}, err
	}
	for _, t := range eventTypes {
		if s.events[t], err = compile(t); err != nil {
			return schemas{}, err
		}
		s.quickEvents[t] = newQuick(s.events[t])
	}
	return s, nil
}

// eventTypes are the standard EPCIS 2.0 event types, each a definition
// of the schema by the same name.
var eventTypes = []string{"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}

// offline refuses every URL: the GS1 schema is self-contained, and a
// validator must never reach the network.
type offline struct{}

// Load fails for every URL.
func (offline) Load(url string) (any, error) {
	return nil, fmt.Errorf("validate: %s: schemas are not loaded from outside", url)
}

// Errata returns GS1's EPCIS JSON Schema (the file, as GS1 publishes it)
// with the corrections the Validator applies to it (see applyErrata),
// for tests that check EPCIS JSON against the schema as the Validator
// reads it: a schema of another shape is an error.
func Errata(schema []byte) ([]byte, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	if err := applyErrata(doc); err != nil {
		return nil, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	return json.Marshal(doc)
}

// applyErrata corrects, in memory, the places where the GS1 schema
// refuses what EPCIS 2.0 and the conformance corpus accept. The file
// itself stays as GS1 publishes it. Each fix fails loudly if the
// schema no longer has the shape it expects, so that a schema update
// is looked at rather than silently patched.
//
//   - sensorReport: the schema requires "type"; EPCIS 2.0 §7.3.7 makes
//     "type" optional when "exception" is present (an alarm report).
//   - measurementType: the schema allows only its own list of bare
//     words; valid corpus documents use others (EffectiveDoseRate,
//     Molar_concentration), so any bare word is accepted (URIs remain
//     checked as before). The list is not ours to keep current.
//   - persistentDisposition: EPCIS 2.0 allows it on every event type;
//     the schema lists it only for ObjectEvent and TransformationEvent.
func applyErrata(doc any) error {
	defs, err := object(doc, "definitions")
	if err != nil {
		return err
	}

	report, err := object(defs, "sensorReport")
	if err != nil {
		return err
	}
	if req, _ := report["required"].([]any); !slices.Equal(req, []any{"type"}) {
		return fmt.Errorf("erratum sensorReport: required is %v, want [type]", report["required"])
	}
	delete(report, "required")
	report["anyOf"] = []any{
		map[string]any{"required": []any{"type"}},
		map[string]any{"required": []any{"exception"}},
	}

	mt, err := object(defs, "measurementType")
	if err != nil {
		return err
	}
	branches, _ := mt["anyOf"].([]any)
	if len(branches) != 2 {
		return fmt.Errorf("erratum measurementType: want two anyOf branches")
	}
	if words, _ := branches[1].(map[string]any); words == nil || words["enum"] == nil {
		return fmt.Errorf("erratum measurementType: want the bare-word enum second")
	}
	// The word branch goes first: most reports use a word.
	branches[0], branches[1] = map[string]any{"type": "string", "pattern": `^[A-Za-z][A-Za-z0-9_]*$`}, branches[0]

	for _, name := range []string{"AggregationEvent", "TransactionEvent", "AssociationEvent"} {
		if err := allowPersistentDisposition(defs, name); err != nil {
			return err
		}
	}
	return nil
}

// allowPersistentDisposition adds persistentDisposition to the fields of
// one event type definition.
func allowPersistentDisposition(defs map[string]any, event string) error {
	fields, names, err := eventFields(defs, event)
	if err != nil {
		return fmt.Errorf("erratum %w", err)
	}
	props, err := object(fields, "properties")
	if err != nil {
		return fmt.Errorf("erratum %s: %w", event, err)
	}
	props["persistentDisposition"] = map[string]any{"$ref": "#/definitions/persistentDisposition"}
	own := asMap(names[1])
	own["enum"] = append(own["enum"].([]any), "persistentDisposition")
	return nil
}

// eventFields returns the part of an event type's definition that lists
// its fields, and the two alternatives of its propertyNames: the common
// event fields, and a list of the type's own.
func eventFields(defs map[string]any, event string) (fields map[string]any, names []any, err error) {
	def, err := object(defs, event)
	if err != nil {
		return nil, nil, err
	}
	parts, _ := def["allOf"].([]any)
	if len(parts) < 2 {
		return nil, nil, fmt.Errorf("%s: want allOf with the field list second", event)
	}
	fields = asMap(parts[1])
	propertyNames, err := object(fields, "propertyNames")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", event, err)
	}
	names, _ = propertyNames["anyOf"].([]any)
	if len(names) != 2 || asMap(names[0])["$ref"] != "#/definitions/common-event-properties" {
		return nil, nil, fmt.Errorf("%s: want propertyNames of common fields and own fields", event)
	}
	if _, ok := asMap(names[1])["enum"].([]any); !ok {
		return nil, nil, fmt.Errorf("%s: want a list of own fields", event)
	}
	return fields, names, nil
}

// mergeFieldNames rewrites each event type's propertyNames, "a common
// event field, or a URI, or one of this type's fields", as the equivalent
// "one of these fields, or a URI": one list lookup per field of every
// event instead of a failed lookup, a reference and a second lookup.
func mergeFieldNames(doc any) error {
	defs, err := object(doc, "definitions")
	if err != nil {
		return err
	}
	common, err := object(defs, "common-event-properties")
	if err != nil {
		return err
	}
	commonAlts, _ := common["anyOf"].([]any)
	if len(commonAlts) != 2 {
		return fmt.Errorf("common-event-properties: want two alternatives")
	}
	commonWords, _ := asMap(commonAlts[0])["enum"].([]any)
	uri := commonAlts[1]
	if len(commonWords) == 0 || asMap(uri)["$ref"] != "#/definitions/vocab-uri" {
		return fmt.Errorf("common-event-properties: want a word list and a URI")
	}
	for _, event := range eventTypes {
		fields, names, err := eventFields(defs, event)
		if err != nil {
			return err
		}
		own := asMap(names[1])["enum"].([]any)
		asMap(fields["propertyNames"])["anyOf"] = []any{
			map[string]any{"type": "string", "enum": append(slices.Clone(commonWords), own...)},
			map[string]any{"$ref": "#/definitions/vocab-uri"},
		}
	}
	return nil
}

// enumsFirst moves the alternatives of every anyOf that are a plain list
// of words ahead of the others. anyOf means the same in any order, and
// the library stops at the first alternative that holds: most values are
// standard words (bizStep "shipping", field names like "epcList"), so
// checking the list first spares a failed URI parse, and the error it
// allocates, for nearly every field of every event.
func enumsFirst(v any) {
	switch v := v.(type) {
	case map[string]any:
		if alts, ok := v["anyOf"].([]any); ok {
			slices.SortStableFunc(alts, func(a, b any) int {
				return btoi(!hasEnum(a)) - btoi(!hasEnum(b))
			})
		}
		for _, child := range v {
			enumsFirst(child)
		}
	case []any:
		for _, child := range v {
			enumsFirst(child)
		}
	}
}

func hasEnum(v any) bool {
	m, _ := v.(map[string]any)
	_, ok := m["enum"]
	return ok
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// asMap returns v as a JSON object, or nil.
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// object returns the JSON object under key in v.
func object(v any, key string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object where %q is expected", key)
	}
	o, ok := m[key].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%q is not an object", key)
	}
	return o, nil
}
