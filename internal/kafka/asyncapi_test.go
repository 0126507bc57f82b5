package kafka_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/jsonschema/v6"

	"github.com/tlm/tracktrace/internal/kafka"
)

// asyncAPI is the published AsyncAPI document, compiled: its message
// payload schemas, found by the CloudEvents type they pin.
type asyncAPI struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	byType   map[string]string // CloudEvents type → message name
}

func loadAsyncAPI(t *testing.T) *asyncAPI {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "httpapi", "asyncapi", "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	// Through JSON, so that the schema compiler sees JSON values.
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("asyncapi.yaml as JSON: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi.json", doc); err != nil {
		t.Fatal(err)
	}
	a := &asyncAPI{doc: doc.(map[string]any), compiler: c, byType: map[string]string{}}
	messages := a.doc["components"].(map[string]any)["messages"].(map[string]any)
	for name, m := range messages {
		payload, _ := m.(map[string]any)["payload"].(map[string]any)
		all, _ := payload["allOf"].([]any)
		for _, part := range all {
			props, _ := part.(map[string]any)["properties"].(map[string]any)
			typ, _ := props["type"].(map[string]any)
			if c, ok := typ["const"].(string); ok {
				a.byType[c] = name
			}
		}
	}
	if len(a.byType) < 14 {
		t.Fatalf("the document pins %d CloudEvents types, want the 10 domain and 4 integration ones: %v", len(a.byType), a.byType)
	}
	return a
}

// validate checks a message against the payload schema of the message
// that its CloudEvents type names (custom types: CustomEvent).
func (a *asyncAPI) validate(t *testing.T, msg []byte) {
	t.Helper()
	var ce struct{ Type string }
	if err := json.Unmarshal(msg, &ce); err != nil {
		t.Fatal(err)
	}
	name, ok := a.byType[ce.Type]
	if !ok && strings.HasPrefix(ce.Type, "tracktrace.x-") {
		name, ok = "CustomEvent", true
	}
	if !ok {
		t.Errorf("type %s has no message in the AsyncAPI document", ce.Type)
		return
	}
	sch, err := a.compiler.Compile("asyncapi.json#/components/messages/" + name + "/payload")
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not match the AsyncAPI document's %s: %v\n%s", ce.Type, name, err, msg)
	}
}

// Every domain event type, as the relay encodes it, and every integration
// event of the golden file match the published AsyncAPI schemas; so do the
// document's own examples.
func TestMessagesMatchAsyncAPI(t *testing.T) {
	t.Parallel()
	a := loadAsyncAPI(t)
	data := map[string]string{
		"EntityRegistered":   `{"reference":"PO-1","origin":"AMS","destination":"FRA","plannedArrival":"2026-03-04T12:00:00Z"}`,
		"MilestoneReached":   `{"milestone":"picked_up","siteId":"AMS-1","location":{"lat":52.3,"lon":4.7},"plannedAt":"2026-03-01T09:00:00Z"}`,
		"LocationReported":   `{"lat":52.3,"lon":4.7,"accuracyMeters":5,"speedKph":80,"siteId":"AMS-1"}`,
		"OperationStarted":   `{"operation":"loading","operationId":"LD-1","siteId":"AMS-1"}`,
		"OperationCompleted": `{"operation":"loading","operationId":"LD-1","outcome":"succeeded"}`,
		"ExceptionRaised":    `{"exceptionId":"EX-1","code":"delay","severity":"medium","description":"A1 closed"}`,
		"ExceptionResolved":  `{"exceptionId":"EX-1","resolution":"rerouted"}`,
		"EtaUpdated":         `{"eta":"2026-03-02T10:00:00Z","source":"carrier"}`,
		"EntityAssociated":   `{"parentId":"CONT-1"}`,
		"EntityDissociated":  `{"parentId":"CONT-1"}`,
		"x-temperature":      `{"celsius":4.5}`,
	}
	for typ, d := range data {
		e := sampleEvent()
		e.Type, e.Data = typ, json.RawMessage(d)
		msg, err := kafka.EncodeCloudEventFrom("tracktrace", e)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		a.validate(t, msg)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "integration.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var integration []json.RawMessage
	if err := json.Unmarshal(golden, &integration); err != nil {
		t.Fatal(err)
	}
	if len(integration) == 0 {
		t.Fatal("no integration events in the golden file")
	}
	for _, msg := range integration {
		a.validate(t, msg)
	}
	// A message that breaks the contract is caught.
	bad := sampleEvent()
	bad.Type, bad.Data = "MilestoneReached", json.RawMessage(`{"milestone":"teleported"}`)
	msg, err := kafka.EncodeCloudEventFrom("tracktrace", bad)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := a.compiler.Compile("asyncapi.json#/components/messages/MilestoneReached/payload")
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(msg))
	if sch.Validate(inst) == nil {
		t.Error("a MilestoneReached with an unknown milestone matches the document: the schemas check nothing")
	}
	// The document's own examples.
	examples := 0
	for _, m := range a.doc["components"].(map[string]any)["messages"].(map[string]any) {
		exs, _ := m.(map[string]any)["examples"].([]any)
		for _, ex := range exs {
			payload, ok := ex.(map[string]any)["payload"]
			if !ok {
				continue
			}
			b, err := json.Marshal(payload)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `"specversion"`) {
				a.validate(t, b)
				examples++
			}
		}
	}
	if examples == 0 {
		t.Error("the document has no CloudEvents examples to check")
	}
}
