package validate

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/pb33f/jsonschema/v6"
)

// gs1QuerySchema is GS1's EPCIS 2.0 query schema, byte-identical to
// ../shared/epcis/gs1/query-schema.json (a test keeps it so): the JSON form
// of a query's parameters, as a named query defines them.
//
//go:embed query-schema.json
var gs1QuerySchema []byte

// querySchemaURL is the query schema's own $id.
const querySchemaURL = "https://gs1.github.io/EPCIS/REST%20Bindings/query-schema.json"

// compileQuerySchema compiles the embedded query schema (nothing is
// fetched).
func compileQuerySchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gs1QuerySchema))
	if err != nil {
		return nil, fmt.Errorf("validate: GS1 query schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.UseRegexpEngine(compilePattern)
	c.UseLoader(offline{})
	if err := c.AddResource(querySchemaURL, doc); err != nil {
		return nil, fmt.Errorf("validate: GS1 query schema: %w", err)
	}
	sch, err := c.Compile(querySchemaURL)
	if err != nil {
		return nil, fmt.Errorf("validate: compile GS1 query schema: %w", err)
	}
	return sch, nil
}

// Query validates a named query's definition, the "query" member of
// POST /queries, against GS1's query schema: a parameter's value of the
// wrong kind (a number where EPCs are listed, a time that is not one) is
// refused when the query is defined, not each time it runs. Each problem's
// pointer is under /query. What the schema cannot state (wildcards,
// parameter combinations) is epcis.ParseQuery's to check.
func (v *Validator) Query(raw []byte) []Problem {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if _, object := inst.(map[string]any); err != nil || !object {
		return []Problem{{Event: -1, Pointer: "/query", Message: "the query must be a JSON object of query parameters"}}
	}
	var ps problems
	ps.schema(v.query.Validate(inst), inst, "/query", -1, "")
	ps.capPart(0)
	return ps.list
}
