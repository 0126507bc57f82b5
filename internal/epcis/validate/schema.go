package validate

import (
	"bytes"
	_ "embed"
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

// schemas are the compiled entry points into the GS1 schema.
type schemas struct {
	// root dispatches on "type": an EPCISDocument, or a single event
	// that carries its own @context.
	root *jsonschema.Schema
	// documentEvent is one member of epcisBody.eventList.
	documentEvent *jsonschema.Schema
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
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.UseRegexpEngine(compilePattern)
	c.UseLoader(offline{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return schemas{}, fmt.Errorf("validate: GS1 schema: %w", err)
	}
	var s schemas
	if s.root, err = c.Compile(schemaURL); err != nil {
		return schemas{}, fmt.Errorf("validate: compile GS1 schema: %w", err)
	}
	if s.documentEvent, err = c.Compile(schemaURL + "#/definitions/EPCIS-Document-Event"); err != nil {
		return schemas{}, fmt.Errorf("validate: compile GS1 schema: %w", err)
	}
	return s, nil
}

// offline refuses every URL: the GS1 schema is self-contained, and a
// validator must never reach the network.
type offline struct{}

// Load fails for every URL.
func (offline) Load(url string) (any, error) {
	return nil, fmt.Errorf("validate: %s: schemas are not loaded from outside", url)
}

// applyErrata corrects, in memory, the places where the GS1 schema
// refuses what EPCIS 2.0 and the conformance corpus accept. The file
// itself stays as GS1 publishes it. Each fix fails loudly if the
// schema no longer has the shape it expects, so that a schema update
// is looked at rather than silently patched.
//
//   - sensorReport: the schema requires "type"; EPCIS 2.0 §7.3.7 makes
//     "type" optional when "exception" is present (an alarm report).
//   - measurementType: the schema's bare-word list is a snapshot of the
//     GS1 Web Vocabulary; reports use newer terms (EffectiveDoseRate),
//     so any bare word is accepted (URIs remain checked as before).
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
	branches[1] = map[string]any{"type": "string", "pattern": `^[A-Za-z][A-Za-z0-9_]*$`}

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
	def, err := object(defs, event)
	if err != nil {
		return err
	}
	parts, _ := def["allOf"].([]any)
	if len(parts) < 2 {
		return fmt.Errorf("erratum %s: want allOf with the field list second", event)
	}
	fields, _ := parts[1].(map[string]any)
	props, err := object(fields, "properties")
	if err != nil {
		return fmt.Errorf("erratum %s: %w", event, err)
	}
	props["persistentDisposition"] = map[string]any{"$ref": "#/definitions/persistentDisposition"}
	names, err := object(fields, "propertyNames")
	if err != nil {
		return fmt.Errorf("erratum %s: %w", event, err)
	}
	alts, _ := names["anyOf"].([]any)
	if len(alts) != 2 {
		return fmt.Errorf("erratum %s: want two propertyNames alternatives", event)
	}
	alt, _ := alts[1].(map[string]any)
	enum, ok := alt["enum"].([]any)
	if !ok {
		return fmt.Errorf("erratum %s: want an enum of field names", event)
	}
	alt["enum"] = append(enum, "persistentDisposition")
	return nil
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
