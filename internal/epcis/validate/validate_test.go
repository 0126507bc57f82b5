package validate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tlm/tracktrace/internal/epcis/validate"
)

// corpus is ../shared/epcis seen from the repository root.
const corpus = "../../../../shared/epcis"

func newValidator(t testing.TB) *validate.Validator {
	t.Helper()
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func corpusFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpus, dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no corpus files in %s", dir)
	}
	return files
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEmbeddedSchemaIsGS1s(t *testing.T) {
	shared := read(t, filepath.Join(corpus, "gs1", "EPCIS-JSON-Schema.json"))
	embedded := read(t, "EPCIS-JSON-Schema.json")
	if !bytes.Equal(shared, embedded) {
		t.Fatal("EPCIS-JSON-Schema.json differs from ../shared/epcis/gs1/EPCIS-JSON-Schema.json; it must stay GS1's file, byte for byte")
	}
}

func TestValidDocumentsAreAccepted(t *testing.T) {
	v := newValidator(t)
	for _, path := range corpusFiles(t, "openepcis/Capture/Documents") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw := read(t, path)
			doc, problems := v.Document(raw)
			for _, p := range problems {
				t.Errorf("refused: event %d: %s", p.Event, p)
			}
			var shape struct {
				EPCISBody struct{ EventList []json.RawMessage } `json:"epcisBody"`
			}
			if err := json.Unmarshal(raw, &shape); err != nil {
				t.Fatal(err)
			}
			if doc == nil || doc.Len != len(shape.EPCISBody.EventList) || len(doc.Events()) != doc.Len {
				t.Fatalf("Document.Events does not hold the %d events of eventList", len(shape.EPCISBody.EventList))
			}
			accepted, _ := doc.Accepted(problems)
			if len(accepted) != doc.Len {
				t.Errorf("Accepted kept %d of %d events of a valid document", len(accepted), doc.Len)
			}
		})
	}
}

func TestValidEventsAreAccepted(t *testing.T) {
	v := newValidator(t)
	for _, path := range corpusFiles(t, "openepcis/Capture/Events") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			for _, p := range v.Event(read(t, path)) {
				t.Errorf("refused: %s", p)
			}
		})
	}
}

// want is a problem a test expects: its pointer exactly, and words its
// message must contain.
type want struct {
	event   int
	pointer string
	words   string
}

// invalidDocuments says, for each file of Capture/Invalid, which fault
// its name announces and where it must be reported. Every problem
// reported must be one of these: no noise beside the fault.
var invalidDocuments = map[string][]want{
	"Combination_of_events_with_missing_mandatory_fields.json": {
		{0, "/epcisBody/eventList/0/action", "action is missing"},
		{1, "/epcisBody/eventList/1/eventTimeZoneOffset", "eventTimeZoneOffset is missing"},
		{1, "/epcisBody/eventList/1/action", "action is missing"},
	},
	"Combination_of_multiple_invalid_fields.json": {
		{0, "/epcisBody/eventList/0/bizStep", `"transforming" is not a standard CBV 2.0 business step`},
		{1, "/epcisBody/eventList/1/disposition", `"in_transport" is not a standard CBV 2.0 disposition`},
		{2, "/epcisBody/eventList/2/sourceList/0/type", `"place" is not a standard CBV 2.0 source/destination type`},
		{3, "/epcisBody/eventList/3/ilmd/materialType", "must be namespaced"},
		{4, "/epcisBody/eventList/4/eventTime", `"22-07-2026" is not an RFC 3339 date-time`},
		{4, "/epcisBody/eventList/4/action", `"CREATE" is not one of ADD, OBSERVE, DELETE`},
	},
	"Combination_of_non_standard_bizStep_and_disposition.json": {
		{0, "/epcisBody/eventList/0/bizStep", "not a standard CBV 2.0 business step"},
		{1, "/epcisBody/eventList/1/disposition", "not a standard CBV 2.0 disposition"},
	},
	"EPCISDocument_without_context.json": {
		{-1, "/@context", "@context is missing"},
	},
	"ObjectEvent_with_ilmd_field_without_namespace.json": {
		{0, "/epcisBody/eventList/0/ilmd/materialType", "ilmd field materialType has no namespace"},
	},
	"ObjectEvent_with_invalid_action.json": {
		{0, "/epcisBody/eventList/0/action", `action "CREATE" is not one of ADD, OBSERVE, DELETE`},
	},
	"ObjectEvent_with_invalid_certificationInfo.json": {
		{0, "/epcisBody/eventList/0/certificationInfo/0", "certificationInfo entry 0 must be a URI"},
		{0, "/epcisBody/eventList/0/certificationInfo/1", "certificationInfo entry 1 must be a URI"},
	},
	"ObjectEvent_with_invalid_eventTime_format.json": {
		{0, "/epcisBody/eventList/0/eventTime", `eventTime "22-07-2026" is not an RFC 3339 date-time`},
	},
	"ObjectEvent_with_non_standard_bizStep.json": {
		{0, "/epcisBody/eventList/0/bizStep", `bizStep "transforming" is not a standard CBV 2.0 business step`},
	},
	"ObjectEvent_with_non_standard_bizStep_in_second_event.json": {
		{1, "/epcisBody/eventList/1/bizStep", `bizStep "transforming" is not a standard CBV 2.0 business step`},
	},
	"ObjectEvent_with_non_standard_disposition.json": {
		{0, "/epcisBody/eventList/0/disposition", `disposition "in_transport" is not a standard CBV 2.0 disposition`},
	},
	"ObjectEvent_with_quantity_as_text.json": {
		{0, "/epcisBody/eventList/0/quantityList/0/quantity", `quantity must be a number, not text "twenty"`},
	},
	"ObjectEvent_with_unknown_field_in_quantityList.json": {
		{0, "/epcisBody/eventList/0/quantityList/0/weight", "weight is not a field"},
	},
	"ObjectEvent_without_action_and_eventTime.json": {
		{0, "/epcisBody/eventList/0/action", "action is missing"},
		{0, "/epcisBody/eventList/0/eventTime", "eventTime is missing"},
		{0, "/epcisBody/eventList/0/eventTimeZoneOffset", "eventTimeZoneOffset is missing"},
	},
	"ObjectEvent_without_identifier_list.json": {
		{0, "/epcisBody/eventList/0", "epcList, quantityList, or sensorElementList together with readPoint"},
	},
}

func TestInvalidDocumentsAreRefusedForTheirFault(t *testing.T) {
	v := newValidator(t)
	files := corpusFiles(t, "openepcis/Capture/Invalid")
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			wants, ok := invalidDocuments[name]
			if !ok {
				t.Fatalf("no expectation for %s: add the fault its name gives to invalidDocuments", name)
			}
			_, problems := v.Document(read(t, path))
			assertProblems(t, problems, wants)
		})
	}
	if len(files) != len(invalidDocuments) {
		t.Errorf("%d invalid files, %d expectations: a file is gone", len(files), len(invalidDocuments))
	}
}

// assertProblems checks that problems are exactly the wanted ones, by
// event, pointer and words of the message.
func assertProblems(t *testing.T, problems []validate.Problem, wants []want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, p := range problems {
			if p.Pointer == w.pointer {
				found = true
				if p.Event != w.event {
					t.Errorf("%s: reported for event %d, want %d", w.pointer, p.Event, w.event)
				}
				if !strings.Contains(p.Message, w.words) {
					t.Errorf("%s: message %q does not say %q", w.pointer, p.Message, w.words)
				}
			}
		}
		if !found {
			t.Errorf("no problem at %s (%q); got %v", w.pointer, w.words, problems)
		}
	}
	for _, p := range problems {
		if !slices.ContainsFunc(wants, func(w want) bool { return w.pointer == p.Pointer }) {
			t.Errorf("unexpected problem: event %d: %s", p.Event, p)
		}
	}
}

func TestProceedModeKeepsTheValidEvents(t *testing.T) {
	v := newValidator(t)
	raw := read(t, filepath.Join(corpus, "openepcis/Capture/Invalid/ObjectEvent_with_non_standard_bizStep_in_second_event.json"))
	doc, problems := v.Document(raw)
	if len(problems) == 0 {
		t.Fatal("accepted a document with a non-standard bizStep")
	}
	documentLevel, byEvent := validate.Split(problems)
	if len(documentLevel) != 0 || len(byEvent[0]) != 0 || len(byEvent[1]) == 0 {
		t.Fatalf("want problems for event 1 only, got %v", problems)
	}
	events, indexes := doc.Accepted(problems)
	if !slices.Equal(indexes, []int{0}) || len(events) != 1 {
		t.Fatalf("Accepted kept events %v, want [0]", indexes)
	}
	var first map[string]any
	if err := json.Unmarshal(events[0], &first); err != nil || first["action"] != "ADD" {
		t.Errorf("the kept event is not the first event as sent: %s", events[0])
	}

	raw = read(t, filepath.Join(corpus, "openepcis/Capture/Invalid/EPCISDocument_without_context.json"))
	doc, problems = v.Document(raw)
	if events, _ := doc.Accepted(problems); len(events) != 0 {
		t.Errorf("a document-level problem must refuse every event; kept %d", len(events))
	}
}

func TestProblemCarriesTheEventID(t *testing.T) {
	v := newValidator(t)
	doc := document(event(`"eventID": "urn:uuid:7c3d2d4c-1111-4bbb-8ccc-000000000001"`),
		event(`"eventID": "urn:uuid:7c3d2d4c-1111-4bbb-8ccc-000000000002"`, `"disposition": "in_transport"`))
	_, problems := v.Document([]byte(doc))
	assertProblems(t, problems, []want{{1, "/epcisBody/eventList/1/disposition", "in_transport"}})
	if problems[0].EventID != "urn:uuid:7c3d2d4c-1111-4bbb-8ccc-000000000002" {
		t.Errorf("EventID = %q, want the second event's", problems[0].EventID)
	}
}

// event returns a valid ObjectEvent with fields replaced or added; a
// field given as `"name": null` is removed.
func event(fields ...string) string {
	base := map[string]json.RawMessage{
		"type":                json.RawMessage(`"ObjectEvent"`),
		"eventTime":           json.RawMessage(`"2026-07-22T06:45:00+02:00"`),
		"eventTimeZoneOffset": json.RawMessage(`"+02:00"`),
		"action":              json.RawMessage(`"OBSERVE"`),
		"epcList":             json.RawMessage(`["https://id.gs1.org/01/09521141012345/21/2017"]`),
		"bizStep":             json.RawMessage(`"shipping"`),
	}
	for _, f := range fields {
		var one map[string]json.RawMessage
		if err := json.Unmarshal([]byte("{"+f+"}"), &one); err != nil {
			panic(f + ": " + err.Error())
		}
		for k, v := range one {
			if string(v) == "null" {
				delete(base, k)
			} else {
				base[k] = v
			}
		}
	}
	out, err := json.Marshal(base)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// document wraps events in a valid EPCISDocument.
func document(events ...string) string {
	return `{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "https://example.com/epcis/"}],
		"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-07-22T10:30:00Z",
		"epcisBody": {"eventList": [` + strings.Join(events, ",") + `]}}`
}

// TestRules covers the rules beyond the corpus, each on one event of an
// otherwise valid document: what must be refused, where, and in which
// words, and nearby forms that must stay accepted.
func TestRules(t *testing.T) {
	v := newValidator(t)
	const at = "/epcisBody/eventList/0"
	sensor := func(report string) string {
		return `"sensorElementList": [{"sensorReport": [` + report + `]}]`
	}
	cases := []struct {
		name   string
		fields []string
		want   []want // nil: accepted
	}{
		{"bizStep URI of another vocabulary", []string{`"bizStep": "https://example.com/bizstep/summarising"`}, nil},
		{"bizStep as a CBV CURIE", []string{`"bizStep": "cbv:BizStep-shipping"`}, nil},
		{"bizStep as a GS1 Web URI", []string{`"bizStep": "https://ref.gs1.org/cbv/BizStep-receiving"`}, nil},
		{"non-standard bizStep as a CBV CURIE", []string{`"bizStep": "cbv:BizStep-transforming"`},
			[]want{{0, at + "/bizStep", `names "transforming" in the CBV vocabulary, which has no such term`}}},
		{"non-standard disposition as a GS1 Web URI", []string{`"disposition": "https://ref.gs1.org/cbv/Disp-in_transport"`},
			[]want{{0, at + "/disposition", `names "in_transport" in the CBV vocabulary`}}},
		{"bizStep in the XML URN form", []string{`"bizStep": "urn:epcglobal:cbv:bizstep:shipping"`},
			[]want{{0, at + "/bizStep", `writes a standard term as the bare word, e.g. "shipping"`}}},
		{"near-miss action (openepcis-xml ObjectEvent_with_near_miss_action)", []string{`"action": "OBSERV"`},
			[]want{{0, at + "/action", `did you mean "OBSERVE"?`}}},
		{"unknown field (openepcis-xml ObjectEvent_with_unknown_element)", []string{`"madeUpField": "x"`},
			[]want{{0, at + "/madeUpField", "madeUpField is not a field of an ObjectEvent; a user extension field must be namespaced"}}},
		{"namespaced extension field", []string{`"example:madeUpField": "x"`}, nil},
		{"eventTime without offset", []string{`"eventTime": "2026-07-22T06:45:00"`},
			[]want{{0, at + "/eventTime", "is not an RFC 3339 date-time with a time zone offset"}}},
		{"eventTime on 30 February", []string{`"eventTime": "2026-02-30T06:45:00+02:00"`},
			[]want{{0, at + "/eventTime", "is not an RFC 3339 date-time"}}},
		{"eventTime with an offset beyond a day", []string{`"eventTime": "2026-07-22T06:45:00+25:00"`},
			[]want{{0, at + "/eventTime", "is not an RFC 3339 date-time"}}},
		{"eventTime in UTC with fractions", []string{`"eventTime": "2026-07-22T04:45:00.123456Z"`}, nil},
		{"recordTime as a date", []string{`"recordTime": "2026-07-22"`},
			[]want{{0, at + "/recordTime", "is not an RFC 3339 date-time"}}},
		{"eventTimeZoneOffset beyond +14:00", []string{`"eventTimeZoneOffset": "+14:30"`},
			[]want{{0, at + "/eventTimeZoneOffset", "from -14:00 to +14:00"}}},
		{"eventTimeZoneOffset without colon", []string{`"eventTimeZoneOffset": "+0200"`},
			[]want{{0, at + "/eventTimeZoneOffset", "±hh:mm"}}},
		{"eventTimeZoneOffset -14:00", []string{`"eventTimeZoneOffset": "-14:00"`}, nil},
		{"ilmd with OBSERVE", []string{`"ilmd": {"example:lot": "A1"}`},
			[]want{{0, at + "/ilmd", "only allowed when action is ADD"}}},
		{"ilmd with ADD", []string{`"action": "ADD"`, `"ilmd": {"example:lot": "A1"}`}, nil},
		{"certificationInfo as one URI", []string{`"certificationInfo": "https://cert.example.org/ABC123"`}, nil},
		{"certificationInfo as text", []string{`"certificationInfo": "certified by ACME"`},
			[]want{{0, at + "/certificationInfo", "certificationInfo must be a URI"}}},
		{"readPoint extension without namespace", []string{`"readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234", "dock": "7"}`},
			[]want{{0, at + "/readPoint/dock", "dock is not a field of readPoint"}}},
		{"readPoint extension with namespace", []string{`"readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234", "example:dock": "7"}`}, nil},
		{"persistentDisposition with a non-standard CBV term", []string{`"persistentDisposition": {"set": ["cbv:Disp-lost"]}`},
			[]want{{0, at + "/persistentDisposition/set/0", `names "lost" in the CBV vocabulary`}}},
		{"uom without quantity", []string{`"quantityList": [{"epcClass": "https://id.gs1.org/01/09521141012345", "uom": "KGM"}]`},
			[]want{{0, at + "/quantityList/0/uom", "uom is given without quantity"}}},
		{"quantity uom not a Rec 20 code", []string{`"quantityList": [{"epcClass": "https://id.gs1.org/01/09521141012345", "quantity": 2, "uom": "kg"}]`},
			[]want{{0, at + "/quantityList/0/uom", "not a UN/CEFACT Rec. 20 unit code"}}},
		{"sensor report with only an exception", []string{sensor(`{"exception": "ALARM_CONDITION", "booleanValue": true}`)}, nil},
		{"sensor report without type or exception", []string{sensor(`{"value": 3, "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0", "needs type (what was measured) or exception"}}},
		{"sensor report minValue above maxValue", []string{sensor(`{"type": "Temperature", "minValue": 30, "maxValue": 20, "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/minValue", "minValue 30 is greater than maxValue 20"}}},
		{"sensor report uom not a Rec 20 code", []string{sensor(`{"type": "Temperature", "value": 3, "uom": "degrees"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/uom", "not a UN/CEFACT Rec. 20 unit code"}}},
		{"sensor report percRank above 100", []string{sensor(`{"type": "Temperature", "percRank": 150, "percValue": 3, "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/percRank", "between 0 and 100"}}},
		{"sensor report negative sDev", []string{sensor(`{"type": "Temperature", "sDev": -1, "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/sDev", "negative"}}},
		{"sensor report odd hexBinaryValue", []string{sensor(`{"type": "example:raw", "hexBinaryValue": "f0f"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/hexBinaryValue", "odd number"}}},
		{"sensor report numeric value as text", []string{sensor(`{"type": "Temperature", "value": "26", "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/value", "value must be a number"}}},
		{"sensor report standard measurement type as GS1 URI", []string{sensor(`{"type": "https://gs1.org/voc/Temperature", "value": 2, "uom": "CEL"}`)},
			[]want{{0, at + "/sensorElementList/0/sensorReport/0/type", `bare word, e.g. "Temperature"`}}},
		{"sensor interval reversed", []string{`"sensorElementList": [{"sensorMetadata": {"startTime": "2026-07-22T08:00:00Z", "endTime": "2026-07-22T07:00:00Z"}, "sensorReport": [{"type": "Temperature", "value": 3, "uom": "CEL"}]}]`},
			[]want{{0, at + "/sensorElementList/0/sensorMetadata/endTime", "endTime is before startTime"}}},
		{"epcList entry not a URI", []string{`"epcList": ["not a uri"]`},
			[]want{{0, at + "/epcList/0", "is not an absolute URI"}}},
		{"epcList entry twice", []string{`"epcList": ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2017"]`},
			[]want{{0, at + "/epcList/1", "repeats entry 0"}}},
		{"unknown event type", []string{`"type": "FooEvent"`},
			[]want{{0, at + "/type", "is not an EPCIS event type"}}},
		{"extension event type", []string{`"type": "https://example.com/epcis/RailEvent"`}, nil},
		{"persistentDisposition on an AggregationEvent", []string{`"type": "AggregationEvent"`, `"epcList": null`, `"parentID": "urn:epc:id:sscc:0614141.1234567890"`,
			`"childEPCs": ["urn:epc:id:sgtin:0614141.107346.2017"]`, `"persistentDisposition": {"set": ["completeness_verified"]}`}, nil},
		{"AggregationEvent without children", []string{`"type": "AggregationEvent"`, `"epcList": null`, `"parentID": "urn:epc:id:sscc:0614141.1234567890"`},
			[]want{{0, at, "needs childEPCs or childQuantityList"}}},
		{"AggregationEvent DELETE without children", []string{`"type": "AggregationEvent"`, `"epcList": null`, `"action": "DELETE"`, `"parentID": "urn:epc:id:sscc:0614141.1234567890"`}, nil},
		{"TransactionEvent without bizTransactionList", []string{`"type": "TransactionEvent"`},
			[]want{{0, at + "/bizTransactionList", "bizTransactionList is missing"}}},
		{"TransformationEvent with inputs only", []string{`"type": "TransformationEvent"`, `"action": null`, `"epcList": null`, `"inputEPCList": ["urn:epc:id:sgtin:0614141.107346.2017"]`},
			[]want{{0, at, "a TransformationEvent needs inputs"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, problems := v.Document([]byte(document(event(c.fields...))))
			assertProblems(t, problems, c.want)
		})
	}
}

func TestDocumentRules(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		name string
		doc  string
		want []want
	}{
		{"context without the EPCIS context",
			strings.Replace(document(event()), `"https://ref.gs1.org/standards/epcis/epcis-context.jsonld", `, "", 1),
			[]want{{-1, "/@context", "does not include the EPCIS 2.0 context"}}},
		{"context as a number",
			strings.Replace(document(event()), `"@context": [`, `"@context": 7, "x:y": [`, 1),
			[]want{{-1, "/@context", "@context must be a URI, an object, or a list"}}},
		{"schemaVersion not a version",
			strings.Replace(document(event()), `"schemaVersion": "2.0"`, `"schemaVersion": "two"`, 1),
			[]want{{-1, "/schemaVersion", "must be a version number"}}},
		{"unknown document field",
			strings.Replace(document(event()), `"schemaVersion"`, `"note": "x", "schemaVersion"`, 1),
			[]want{{-1, "/note", "note is not a field of an EPCISDocument"}}},
		{"eventList missing",
			strings.Replace(document(event()), `"eventList"`, `"events"`, 1),
			[]want{{-1, "/epcisBody/eventList", "eventList is missing"}}},
		{"a single event sent as a document", event(), []want{{-1, "/type", "send a single event to /events"}}},
		{"eventID used twice",
			document(event(`"eventID": "urn:uuid:0a"`), event(`"eventID": "urn:uuid:0a"`)),
			[]want{{1, "/epcisBody/eventList/1/eventID", "already used by event 0"}}},
		{"an error declaration repeats the eventID it corrects",
			document(event(`"eventID": "urn:uuid:0a"`),
				event(`"eventID": "urn:uuid:0a", "errorDeclaration": {"declarationTime": "2020-01-01T00:00:00Z"}`)),
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, problems := v.Document([]byte(c.doc))
			assertProblems(t, problems, c.want)
		})
	}
}

func TestEventRules(t *testing.T) {
	v := newValidator(t)
	withContext := `"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]`
	cases := []struct {
		name  string
		event string
		want  []want
	}{
		{"event with its context", event(withContext), nil},
		{"event without a context", event(), []want{{0, "/@context", "@context is missing"}}},
		{"bare event without action (openepcis-xml ObjectEvent_bare_event_without_action)", event(withContext, `"action": null`),
			[]want{{0, "/action", "action is missing"}}},
		{"event without eventTime (openepcis-xml ObjectEvent_without_eventTime)", event(withContext, `"eventTime": null`),
			[]want{{0, "/eventTime", "eventTime is missing"}}},
		{"a document sent as an event", document(event()), []want{{0, "/type", "/events takes a single event"}}},
		{"non-standard bizStep", event(withContext, `"bizStep": "transforming"`),
			[]want{{0, "/bizStep", "not a standard CBV 2.0 business step"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertProblems(t, v.Event([]byte(c.event)), c.want)
		})
	}
}

// TestHostileInput: input no partner should send still gets problems,
// promptly, and never a panic.
func TestHostileInput(t *testing.T) {
	v := newValidator(t)
	huge := strings.Repeat("x", 10<<20)
	cases := map[string]string{
		"empty":                 "",
		"not JSON":              "<EPCISDocument/>",
		"truncated":             document(event())[:200],
		"trailing data":         document(event()) + " {}",
		"null":                  "null",
		"a list":                "[" + document(event()) + "]",
		"a string":              `"EPCISDocument"`,
		"deep nesting":          strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		"deep nesting in event": document(event(`"example:x": ` + strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000))),
		"10 MB bizStep":         document(event(`"bizStep": "` + huge + `"`)),
		"10 MB field name":      document(event(`"` + huge + `": 1`)),
		"10 MB eventTime":       document(event(`"eventTime": "` + huge + `"`)),
		"huge number":           document(event(`"example:n": 1e999999`)),
		"tiny number":           document(event(`"example:n": 1e-999999`)),
		"long number":           document(event(`"example:n": ` + strings.Repeat("9", 1000))),
		"duplicate numbers":     document(event(`"epcList": [1e300, 1e300]`)),
		"eventList not a list":  strings.Replace(document(), `"eventList": []`, `"eventList": {}`, 1),
		"event not an object":   document(`"ObjectEvent"`),
		"type not a string":     strings.Replace(document(event()), `"type": "EPCISDocument"`, `"type": ["EPCISDocument"]`, 1),
	}
	withContext := `"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]`
	events := map[string]string{
		"10 MB bizStep":     event(withContext, `"bizStep": "`+huge+`"`),
		"10 MB field name":  event(withContext, `"`+huge+`": 1`),
		"huge number":       event(withContext, `"example:n": -1e999999`),
		"type not a string": event(withContext, `"type": {"ObjectEvent": true}`),
	}
	check := func(t *testing.T, problems []validate.Problem) {
		t.Helper()
		if len(problems) == 0 {
			t.Error("accepted hostile input")
		}
		for _, p := range problems {
			if len(p.Message) > 1000 || len(p.Pointer) > 1000 {
				t.Errorf("problem of %d bytes repeats the input: %.200s…", len(p.Message)+len(p.Pointer), p)
			}
		}
	}
	for name, input := range cases {
		t.Run("document/"+name, func(t *testing.T) {
			_, problems := v.Document([]byte(input))
			check(t, problems)
			check(t, v.Event([]byte(input)))
		})
	}
	for name, input := range events {
		t.Run("event/"+name, func(t *testing.T) {
			check(t, v.Event([]byte(input)))
		})
	}
}

func TestProblemsPerEventAreBounded(t *testing.T) {
	v := newValidator(t)
	var fields []string
	for i := range 500 {
		fields = append(fields, `"bad`+strings.Repeat("x", i)+`": 1`)
	}
	_, problems := v.Document([]byte(document(event(fields...))))
	if len(problems) == 0 || len(problems) > 20 {
		t.Fatalf("%d problems for 500 bad fields, want between 1 and 20", len(problems))
	}
	if !strings.Contains(problems[len(problems)-1].Message, "more problems not listed") {
		t.Errorf("the last problem does not say more were left out: %s", problems[len(problems)-1])
	}
}

// TestConcurrentUse validates the corpus from several goroutines on one
// Validator (run with -race).
func TestConcurrentUse(t *testing.T) {
	v := newValidator(t)
	files := corpusFiles(t, "openepcis/Capture/Documents")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, f := range files {
				if _, problems := v.Document(read(t, f)); len(problems) != 0 {
					t.Errorf("%s: %v", f, problems)
				}
			}
		})
	}
	wg.Wait()
}

func FuzzDocument(f *testing.F) {
	for _, dir := range []string{"openepcis/Capture/Documents", "openepcis/Capture/Events", "openepcis/Capture/Invalid"} {
		for _, path := range corpusFiles(f, dir) {
			f.Add(read(f, path))
		}
	}
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		doc, problems := v.Document(raw)
		n := 0
		if doc != nil {
			n = doc.Len
			if events := doc.Events(); len(events) != n {
				t.Errorf("Events returned %d events, Len is %d", len(events), n)
			}
		}
		for _, p := range problems {
			if p.Event < -1 || p.Event >= max(n, 1) {
				t.Errorf("problem for event %d of %d: %s", p.Event, n, p)
			}
			if p.Pointer != "" && !strings.HasPrefix(p.Pointer, "/") {
				t.Errorf("pointer %q is not a JSON pointer", p.Pointer)
			}
			if p.Message == "" {
				t.Error("problem without a message")
			}
		}
		for _, p := range v.Event(raw) {
			if p.Message == "" {
				t.Error("problem without a message")
			}
		}
	})
}

// BenchmarkEvent measures one typical event (run with -benchtime 200x;
// the capture target leaves well under 100 µs for it). Plain decoding
// of the same bytes is the yardstick on a machine whose speed varies.
func BenchmarkEvent(b *testing.B) {
	v := newValidator(b)
	raw := read(b, filepath.Join(corpus, "openepcis/Capture/Events/ObjectEvent.json"))
	b.Run("validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if problems := v.Event(raw); len(problems) != 0 {
				b.Fatal(problems)
			}
		}
	})
	b.Run("json.Unmarshal only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e any
			if err := json.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDocument reports the cost per event of a document with a mix
// of event types and sensor data.
func BenchmarkDocument(b *testing.B) {
	v := newValidator(b)
	raw := read(b, filepath.Join(corpus, "openepcis/Capture/Documents/Combination_of_different_event.json"))
	doc, _ := v.Document(raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, problems := v.Document(raw); len(problems) != 0 {
			b.Fatal(problems)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*doc.Len)/1000, "µs/event")
}

// TestEventsAreTheOnesValidated: Events must return the very events that
// were validated, whatever the spelling games of the input.
func TestEventsAreTheOnesValidated(t *testing.T) {
	v := newValidator(t)
	// The schema leaves epcisBody open to other fields.
	raw := strings.Replace(document(event(`"bizStep": "shipping"`)), `]}}`,
		`], "EVENTLIST": [`+event(`"bizStep": "transforming"`)+`]}}`, 1)
	doc, problems := v.Document([]byte(raw))
	events, _ := doc.Accepted(problems)
	if len(events) != 1 || !strings.Contains(string(events[0]), `"shipping"`) {
		t.Errorf("Accepted returned %s, not the validated event", events)
	}
}
