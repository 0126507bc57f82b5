package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dlclark/regexp2/v2"
	"github.com/pb33f/go-yaml"
	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi/datamodel"

	"github.com/tlm/tracktrace/internal/epcis/validate"
)

// gs1Dir holds GS1's normative EPCIS 2.0 artefacts: the REST binding
// (openapi.yaml) and the JSON Schema its bodies are checked against.
var gs1Dir = filepath.Join(epcisCorpus, "gs1")

// gs1RemoteFiles maps the remote documents GS1's binding $refs onto the
// local copies read in their place (the tests have no internet).
// EPCIS-JSON-Schema.json is read with the errata the service's validator
// applies to it (validate.Errata: "type" optional in alarm sensor
// reports, measurement types beyond the schema's list, persistentDisposition
// on every event type), where GS1's schema refuses documents that EPCIS
// 2.0 and the shared corpus hold valid.
//
// JSON-Schema-Stub.json is, in GS1's words, "a stub of JSON Schema
// definitions for the validation of the REST API YAML specification. The
// final definitions will be injected from the actual EPCIS JSON Schema": its
// definitions are empty objects named as in EPCIS-JSON-Schema.json, which
// GS1's schema-injector substitutes. Serving EPCIS-JSON-Schema.json at the
// stub's URL is that injection. query-schema.json is named only in prose,
// never $ref'd, so it is not needed.
var gs1RemoteFiles = map[string]string{
	"https://gs1.github.io/EPCIS/REST%20Bindings/JSON-Schema-Stub.json": "EPCIS-JSON-Schema.json",
}

// gs1Validator checks the EPCIS binding (/epcis/...) against GS1's
// normative REST binding, ../shared/epcis/gs1/openapi.yaml, whose paths are
// relative to /epcis. It returns a function that validates an exchange:
// every response (status, headers, body; undeclared statuses are errors),
// and, when the service accepted it (status < 300), the request too. A
// request outside /epcis is an error.
//
// Remote $refs are resolved from local files (see gs1RemoteFiles). Formats
// (date-time, uri) are asserted, patterns as ECMA-262 expressions. Two
// kinds of accepted request are checked without their body: the XML
// binding (GS1's document declares only JSON request bodies, and XML has
// no JSON Schema to meet), and captures under GS1-Capture-Error-Behaviour:
// proceed (whose invalid events are accepted, to be reported in the
// capture job).
//
// GS1's document has faults a strict validator trips on. They are mended
// in memory before it is read, each narrowly (the helper fails if one no
// longer finds what it mends, so a fixed document retires it):
//
//  1. example: {$ref: <URL>} (5 places, e.g. Example_9.6.1-ObjectEvent.jsonld).
//     In OpenAPI 3.0 an example is a literal value, not a Reference Object,
//     but libopenapi's index follows every $ref and these documents are not
//     available offline (nor JSON or YAML: .jsonld, .xml); a failed remote
//     load poisons the loads after it. The examples are dropped; examples
//     are never validated against anyway.
//  2. CaptureJob's second allOf member is oneOf [{properties: {errors}},
//     {properties: {errorFile}}]. Properties constrain only what is present,
//     so a job with errors and without errorFile (the document's own example)
//     matches both branches and no job can satisfy oneOf. The intent
//     ("errors or errorFile") is restored by requiring each branch's
//     property.
//  3. 409ResourceAlreadyExistsException gives status the enum [406] (and
//     default 406): a 409 answer could never match. It becomes 409.
//  4. The Link schema has format: uri, but a Link header is a link-value
//     (RFC 8288: <URI-Reference>; rel="next"), as GS1's own example shows.
//     The format is dropped.
//  5. RFC7807ProblemResponseBody.instance has format: uri (absolute), but
//     the schema describes "a response as specified in RFC 7807", whose
//     instance is a URI reference (relative ones, such as the request
//     path, included). The format becomes uri-reference.
//  6. AbstractQuerySubscription requires dest and "secret", a property it
//     does not define: its prose, its own example and every subscription
//     example name the client's secret signatureToken (optional). "secret"
//     leaves the required list.
//  7. The Location header of a new query subscription has format: uri
//     (absolute), but HTTP's Location is a URI reference (RFC 9110
//     §10.2.2), and the binding's other Locations are relative. The format
//     becomes uri-reference.
func gs1Validator(t *testing.T) func(t *testing.T, r response) {
	t.Helper()
	b := newGS1Binding(t)
	return func(t *testing.T, r response) {
		t.Helper()
		for _, p := range b.problems(r) {
			t.Errorf("%s %s → %d does not match GS1's EPCIS binding: %s\n%s",
				r.Request.Method, r.Request.URL.Path, r.StatusCode, p, r.Body)
		}
	}
}

// exchange is srv.do: one request and its response.
type exchange func(t *testing.T, method, path string, body any, headers ...string) response

// checked is srv.do with every exchange passed to check.
func checked(srv *server, check func(t *testing.T, r response)) exchange {
	return func(t *testing.T, method, path string, body any, headers ...string) response {
		t.Helper()
		r := srv.do(t, method, path, body, headers...)
		check(t, r)
		return r
	}
}

// gs1Binding is GS1's REST binding, ready to validate exchanges.
type gs1Binding struct {
	mu sync.Mutex // the validator is not documented as concurrency-safe
	v  validator.Validator
}

func newGS1Binding(t *testing.T) *gs1Binding {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join(gs1Dir, "openapi.yaml"))
	if err != nil {
		t.Fatalf("GS1 binding: %v", err)
	}
	spec, err = mendGS1Binding(spec)
	if err != nil {
		t.Fatalf("GS1 binding: %v", err)
	}
	var unknown []string
	cfg := &datamodel.DocumentConfiguration{
		AllowRemoteReferences: true,
		RemoteURLHandler: func(url string) (*http.Response, error) {
			local, ok := gs1RemoteFiles[url]
			if !ok {
				unknown = append(unknown, url)
				return nil, fmt.Errorf("no local copy of %s", url)
			}
			body, err := os.ReadFile(filepath.Join(gs1Dir, local))
			if err != nil {
				return nil, err
			}
			if body, err = validate.Errata(body); err != nil {
				return nil, err
			}
			return &http.Response{StatusCode: http.StatusOK, Status: "200 OK",
				Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body))}, nil
		},
	}
	doc, err := libopenapi.NewDocumentWithConfiguration(spec, cfg)
	if err != nil {
		t.Fatalf("GS1 binding: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions(), config.WithRegexEngine(ecmaRegexp))
	if len(errs) > 0 || len(unknown) > 0 {
		t.Fatalf("GS1 binding: %v; remote documents without a local copy: %v", errs, unknown)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("GS1 binding: %s", describe(e))
		}
		t.FailNow()
	}
	return &gs1Binding{v: v}
}

// problems lists how an exchange with /epcis departs from the binding.
func (b *gs1Binding) problems(r response) []string {
	path, ok := strings.CutPrefix(r.Request.URL.Path, "/epcis")
	if !ok || (path != "" && path[0] != '/') {
		return []string{"not a path of the EPCIS binding (/epcis/...)"}
	}
	if path == "" {
		path = "/"
	}
	// GS1's paths are relative to /epcis.
	request := func() *http.Request {
		req := r.Request.Clone(r.Request.Context())
		req.URL.Path, req.URL.RawPath = path, ""
		req.Body = io.NopCloser(bytes.NewReader(r.Sent))
		return req
	}
	resp := *r.Response
	resp.Body = io.NopCloser(bytes.NewReader(r.Body))
	b.mu.Lock()
	defer b.mu.Unlock()
	_, errs := b.v.ValidateHttpResponse(request(), &resp)
	if r.StatusCode < 300 {
		mt, _, _ := mime.ParseMediaType(r.Request.Header.Get("Content-Type"))
		if mt == "application/xml" || mt == "text/xml" || strings.EqualFold(r.Request.Header.Get("GS1-Capture-Error-Behaviour"), "proceed") {
			// The parameters only: the XML binding has no schema here, and
			// under proceed invalid events are accepted to be reported in
			// the capture job.
			params := b.v.GetParameterValidator()
			for _, check := range []func(*http.Request) (bool, []*liberrors.ValidationError){
				params.ValidatePathParams, params.ValidateQueryParams, params.ValidateHeaderParams,
			} {
				_, reqErrs := check(request())
				errs = append(errs, reqErrs...)
			}
		} else {
			_, reqErrs := b.v.ValidateHttpRequest(request())
			errs = append(errs, reqErrs...)
		}
	}
	var out []string
	for _, e := range errs {
		out = append(out, describe(e))
	}
	return out
}

// describe renders a validation error with the schema failures under it.
func describe(e *liberrors.ValidationError) string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Reason != "" && e.Reason != e.Message {
		b.WriteString(": " + e.Reason)
	}
	for _, f := range e.SchemaValidationErrors {
		fmt.Fprintf(&b, "\n\t%s: %s", f.FieldPath, f.Reason)
	}
	return b.String()
}

// mendGS1Binding applies the mends listed on gs1Validator to GS1's
// document, failing when one finds nothing to mend.
func mendGS1Binding(spec []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(spec, &root); err != nil {
		return nil, err
	}
	schemas := yamlPath(&root, "components", "schemas")
	mends := []struct {
		name string
		mend func() int
	}{
		{"example: {$ref: URL}", func() int { return dropRefExamples(&root) }},
		{"CaptureJob's oneOf errors/errorFile", func() int {
			n := 0
			allOf := yamlPath(schemas, "CaptureJob", "allOf")
			if allOf == nil {
				return 0
			}
			for _, member := range allOf.Content {
				oneOf := yamlPath(member, "oneOf")
				if oneOf == nil {
					continue
				}
				for _, branch := range oneOf.Content {
					props := yamlPairs(yamlPath(branch, "properties"))
					if len(props) == 1 && yamlPath(branch, "required") == nil {
						branch.Content = append(branch.Content,
							&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "required"},
							&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{
								{Kind: yaml.ScalarNode, Tag: "!!str", Value: props[0].key.Value}}})
						n++
					}
				}
			}
			return n
		}},
		{"the 409 response's status 406", func() int {
			status := yamlPath(&root, "components", "responses", "409ResourceAlreadyExistsException", "content")
			n := 0
			for _, media := range yamlPairs(status) {
				for _, member := range yamlPath(media.value, "schema", "allOf").Content {
					st := yamlPath(member, "properties", "status")
					if enum := yamlPath(st, "enum"); enum != nil && len(enum.Content) == 1 && enum.Content[0].Value == "406" {
						enum.Content[0].Value = "409"
						yamlPath(st, "default").Value = "409"
						n++
					}
				}
			}
			return n
		}},
		{"the Link header's format: uri", func() int {
			if f := yamlPath(schemas, "Link", "format"); f != nil && f.Value == "uri" {
				deleteKey(yamlPath(schemas, "Link"), "format")
				return 1
			}
			return 0
		}},
		{"AbstractQuerySubscription's required secret", func() int {
			req := yamlPath(schemas, "AbstractQuerySubscription", "required")
			if req == nil {
				return 0
			}
			n := 0
			req.Content = slices.DeleteFunc(req.Content, func(v *yaml.Node) bool {
				if v.Value == "secret" {
					n++
					return true
				}
				return false
			})
			return n
		}},
		{"the query subscription Location's format: uri", func() int {
			f := yamlPath(&root, "paths", "/queries/{queryName}/subscriptions", "post", "responses", "201", "headers", "Location", "schema", "format")
			if f != nil && f.Value == "uri" {
				f.Value = "uri-reference"
				return 1
			}
			return 0
		}},
		{"the problem instance's format: uri", func() int {
			if f := yamlPath(schemas, "RFC7807ProblemResponseBody", "properties", "instance", "format"); f != nil && f.Value == "uri" {
				f.Value = "uri-reference"
				return 1
			}
			return 0
		}},
	}
	for _, m := range mends {
		if m.mend() == 0 {
			return nil, fmt.Errorf("the mend of %s found nothing to mend: retire it", m.name)
		}
	}
	return yaml.Marshal(&root)
}

// dropRefExamples removes every example whose value is a $ref, returning
// how many it removed.
func dropRefExamples(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	dropped := 0
	if n.Kind == yaml.MappingNode {
		if ex := yamlPath(n, "example"); ex != nil && yamlPath(ex, "$ref") != nil && len(ex.Content) == 2 {
			deleteKey(n, "example")
			dropped++
		}
	}
	for _, c := range n.Content {
		dropped += dropRefExamples(c)
	}
	return dropped
}

// yamlPair is a member of a YAML mapping.
type yamlPair struct{ key, value *yaml.Node }

// yamlPairs lists the members of a mapping (none for anything else).
func yamlPairs(n *yaml.Node) []yamlPair {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	pairs := make([]yamlPair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, yamlPair{n.Content[i], n.Content[i+1]})
	}
	return pairs
}

// yamlPath follows mapping keys from n (a document node is entered);
// nil when one is missing.
func yamlPath(n *yaml.Node, keys ...string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, k := range keys {
		var next *yaml.Node
		for _, p := range yamlPairs(n) {
			if p.key.Value == k {
				next = p.value
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// deleteKey removes a member from a mapping.
func deleteKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

// ecmaRegexp compiles the patterns of schemas as ECMA-262 regular
// expressions, as JSON Schema and OpenAPI define them: GS1's JSON Schema
// uses lookaheads ((?!...)), which Go's regexp does not have.
func ecmaRegexp(pattern string) (jsonschema.Regexp, error) {
	re, err := regexp2.Compile(pattern, regexp2.ECMAScript)
	if err != nil {
		return nil, err
	}
	return (*ecmaPattern)(re), nil
}

// ecmaPattern is a regexp2 expression as jsonschema.Regexp.
type ecmaPattern regexp2.Regexp

func (re *ecmaPattern) MatchString(s string) bool {
	ok, err := (*regexp2.Regexp)(re).MatchString(s)
	return err == nil && ok
}

func (re *ecmaPattern) String() string { return (*regexp2.Regexp)(re).String() }

// The helper refuses what GS1's binding refuses (the answers the service
// gave before it conformed among them) and passes what it allows.
func TestEPCISGS1Binding(t *testing.T) {
	t.Parallel()
	b := newGS1Binding(t)
	doc, err := os.ReadFile(filepath.Join(epcisCorpus, "openepcis/Capture/Documents/AggregationEvent_with_persistentDisposition.json"))
	if err != nil {
		t.Fatal(err)
	}
	epcisHeaders := func(kv ...string) http.Header {
		h := http.Header{"Gs1-Epcis-Version": {"2.0.0"}, "Gs1-Cbv-Version": {"2.0.0"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	const job = `{"captureID": "j1", "createdAt": "2026-01-01T00:00:00Z", "running": false, "success": true, "captureErrorBehaviour": "rollback", "errors": []}`
	asJSON, asProblem := epcisHeaders("Content-Type", "application/json"), epcisHeaders("Content-Type", "application/problem+json")
	cases := []struct {
		name, method, path string
		sent               string
		status             int
		header             http.Header
		body               string
		conforms           bool
	}{
		{"discovery", "OPTIONS", "/epcis/capture", "", 204, epcisHeaders("GS1-Capture-Error-Behaviour", "all", "GS1-EPCIS-Capture-Limit", "50"), "", true},
		{"discovery listing behaviours", "OPTIONS", "/epcis/capture", "", 204, epcisHeaders("GS1-Capture-Error-Behaviour", "rollback, proceed"), "", false},
		{"a capture job", "GET", "/epcis/capture/j1", "", 200, asJSON, job, true},
		{"a capture job running \"yes\"", "GET", "/epcis/capture/j1", "", 200, asJSON, strings.Replace(job, `"running": false`, `"running": "yes"`, 1), false},
		{"a capture job with errors and errorFile", "GET", "/epcis/capture/j1", "", 200, asJSON, strings.Replace(job, `"errors": []`, `"errors": [], "errorFile": "https://example.com/e"`, 1), false},
		{"no such job", "GET", "/epcis/capture/x", "", 404, asProblem, `{"type": "epcisException:NoSuchNameException", "title": "No Such Name", "status": 404, "instance": "/epcis/capture/x"}`, true},
		{"no such job, another exception", "GET", "/epcis/capture/x", "", 404, asProblem, `{"type": "epcisException:NoSuchResourceException", "title": "Not found", "status": 404}`, false},
		{"a capture", "POST", "/epcis/capture", string(doc), 202, epcisHeaders("Location", "/epcis/capture/j1"), "", true},
		{"a capture of what is not a document", "POST", "/epcis/capture", `{"type": "EPCISDocument", "epcisBody": {}}`, 202, epcisHeaders("Location", "/epcis/capture/j1"), "", false},
		{"a 415 of another type", "POST", "/epcis/capture", "x", 415, asProblem, `{"type": "about:blank", "title": "Unsupported", "status": 415}`, false},
		{"an event created without it", "POST", "/epcis/events", `{}`, 201, epcisHeaders("Location", "/epcis/events/e1"), "", false},
		{"outside the binding", "GET", "/api/v1/entities/x", "", 200, asJSON, `{}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.sent))
			if c.sent != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp := &http.Response{StatusCode: c.status, Header: c.header, Request: req}
			problems := b.problems(response{resp, []byte(c.body), []byte(c.sent)})
			if c.conforms != (len(problems) == 0) {
				t.Errorf("conforms = %v, want %v: %v", len(problems) == 0, c.conforms, problems)
			}
		})
	}
}
