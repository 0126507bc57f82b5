package xmlbind

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCorpusOutcomes converts every XML file of the corpus and checks the
// outcome a client would see: accepted (with the JSON type), or refused with
// a message naming the element and line. Invalid captures whose fault is an
// EPCIS rule, not XML structure, must convert so that validation can name
// the rule; the test checks the faulty value reaches the JSON.
func TestCorpusOutcomes(t *testing.T) {
	tests := []struct {
		file     string
		wantType string // top-level "type" of the JSON; "" when refused
		wantErr  string // substring of the error when refused
		wantJSON string // substring the JSON must carry
	}{
		{file: "Capture/Documents/Namespace_document.xml", wantType: "EPCISDocument"},
		{file: "Capture/Documents/TransformationEvent_with_errorDeclaration.xml", wantType: "EPCISDocument"},
		{file: "Capture/Events/Namespace_event.xml", wantType: "ObjectEvent", wantJSON: `"ext1:int":"10"`},
		{file: "Capture/Events/TransformationEvent.xml", wantType: "TransformationEvent"},
		{file: "Capture/Invalid/ObjectEvent_bare_event_without_action.xml", wantType: "ObjectEvent", wantJSON: `"bizStep":"shipping"`},
		{file: "Capture/Invalid/ObjectEvent_with_invalid_action.xml", wantType: "EPCISDocument", wantJSON: `"action":"CREATE"`},
		{file: "Capture/Invalid/ObjectEvent_with_invalid_eventTime_format.xml", wantType: "EPCISDocument", wantJSON: `"eventTime":"22-07-2026"`},
		{file: "Capture/Invalid/ObjectEvent_with_near_miss_action.xml", wantType: "EPCISDocument", wantJSON: `"action":"OBSERV"`},
		{file: "Capture/Invalid/ObjectEvent_with_unknown_element.xml", wantErr: "line 13: <madeUpField>: unknown element in ObjectEvent"},
		// The XSD's element order is not enforced: JumbledFieldsOrder is a valid capture, so order cannot be a fault.
		{file: "Capture/Invalid/ObjectEvent_with_wrong_element_order.xml", wantType: "EPCISDocument", wantJSON: `"action":"ADD"`},
		{file: "Capture/Invalid/ObjectEvent_without_eventTime.xml", wantType: "EPCISDocument"},
		{file: "Query/Documents/QueryResultsDocument.xml", wantType: "EPCISQueryDocument", wantJSON: `"queryName":"SimpleEventQuery"`},
		{file: "Query/Documents/TransactionEvent_with_userExtensions.xml", wantType: "EPCISQueryDocument"},
		{file: "Query/Invalid/QueryDocument_with_invalid_action.xml", wantType: "EPCISQueryDocument", wantJSON: `"action":"INVALIDACTION"`},
		{file: "Query/Invalid/QueryDocument_with_invalid_eventType.xml", wantErr: "<ObjectEventInvalid>: unknown event type"},
		{file: "Query/Invalid/QueryDocument_with_missing_value.xml", wantErr: "<epcisq:Poll>: only QueryResults"},
		{file: "Query/Queries/SimpleEventQuery.xml", wantErr: "<epcisq:Poll>: only QueryResults"},
		{file: "Query/Queries/Invalid/Query_without_queryName.xml", wantErr: "<epcisq:Poll>: only QueryResults"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(corpusPath(t, "openepcis-xml", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := DocumentToJSON(bytes.NewReader(raw), Limits{})
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DocumentToJSON: %v", err)
			}
			var top struct{ Type string }
			if err := json.Unmarshal(got, &top); err != nil || top.Type != tc.wantType {
				t.Fatalf("type %q (%v), want %q", top.Type, err, tc.wantType)
			}
			if !bytes.Contains(got, []byte(tc.wantJSON)) {
				t.Errorf("JSON lacks %s:\n%s", tc.wantJSON, got)
			}
		})
	}
	// Every other query results document converts too.
	files, _ := filepath.Glob(filepath.Join(corpusPath(t, "openepcis-xml", "Query"), "*.xml"))
	for _, f := range files {
		t.Run("Query/"+filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DocumentToJSON(bytes.NewReader(raw), Limits{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConversionDetails pins mapping rules the corpus does not exercise.
func TestConversionDetails(t *testing.T) {
	const head = `<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" xmlns:ex="http://ex.org/" schemaVersion="2.0" creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList>`
	const tail = `</EventList></EPCISBody></epcis:EPCISDocument>`
	tests := []struct {
		name, xml string
		want      []string // substrings of the JSON
	}{
		{"1.2 wrappers flattened", `<ObjectEvent><eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00</eventTimeZoneOffset><baseExtension><eventID>urn:uuid:1</eventID></baseExtension><epcList/><action>OBSERVE</action><extension><quantityList><quantityElement><epcClass>urn:epc:class:lgtin:4012345.012345.1</epcClass><quantity>+.5</quantity></quantityElement></quantityList><ilmd><extension><ex:lot>L1</ex:lot></extension></ilmd></extension><readPoint><id>urn:epc:id:sgln:1.2.3</id><extension><ex:x>1</ex:x></extension></readPoint></ObjectEvent>`,
			[]string{`"eventID":"urn:uuid:1"`, `"epcList":[]`, `"quantity":0.5`, `"ilmd":{"ex:lot":"L1"}`, `"readPoint":{"id":"urn:epc:id:sgln:1.2.3","ex:x":"1"}`}},
		{"1.2 EventList extension holds TransformationEvent", `<extension><TransformationEvent><eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00</eventTimeZoneOffset><transformationID>urn:x</transformationID></TransformationEvent></extension>`,
			[]string{`"type":"TransformationEvent"`, `"transformationID":"urn:x"`}},
		{"vocabulary forms", `<ObjectEvent><bizStep>https://ref.gs1.org/cbv/BizStep-shipping</bizStep><disposition>urn:epcglobal:cbv:disp:not_a_cbv_value</disposition><bizTransactionList><bizTransaction type="cbv:BTT-po">urn:x</bizTransaction></bizTransactionList><sensorElementList><sensorElement><sensorReport type="https://gs1.org/voc/Temperature" component="cbv:Comp-x" exception="gs1:ALARM_CONDITION" booleanValue="0" value="1E3"/></sensorElement></sensorElementList></ObjectEvent>`,
			[]string{`"bizStep":"shipping"`, `"disposition":"urn:epcglobal:cbv:disp:not_a_cbv_value"`, `"type":"po"`, `"sensorReport":[{"type":"Temperature","component":"x","exception":"ALARM_CONDITION","booleanValue":false,"value":1E3}]`}},
		{"extension attributes and repeats", `<ObjectEvent><ex:a ex:q="1" plain="2">text</ex:a><ex:r>1</ex:r><ex:other/><ex:r>2</ex:r><certificationInfo>urn:c1</certificationInfo><certificationInfo>urn:c2</certificationInfo></ObjectEvent>`,
			[]string{`"ex:a":{"ex:q":"1","@plain":"2","value":"text"}`, `"ex:r":["1","2"]`, `"certificationInfo":["urn:c1","urn:c2"]`}},
		{"default and clashing namespaces get prefixes", `<ObjectEvent xmlns:gs1="http://not-gs1.example/"><gs1:x>1</gs1:x><y xmlns="http://default.example/">2</y></ObjectEvent>`,
			[]string{`"gs11:x":"1"`, `"ns1:y":"2"`, `{"gs11":"http://not-gs1.example/","ns1":"http://default.example/"}`}},
		{"xsi:nil quantity left out", `<ObjectEvent xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><quantityList><quantityElement><epcClass>urn:x</epcClass><quantity xsi:nil="true"/></quantityElement></quantityList></ObjectEvent>`,
			[]string{`"quantityList":[{"epcClass":"urn:x"}]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DocumentToJSON(strings.NewReader(head+tc.xml+tail), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("JSON lacks %s:\n%s", w, got)
				}
			}
		})
	}
}

// TestHostileInput feeds inputs meant to hurt: each must fail with the right
// sentinel and a message that says where, never panic or hang.
func TestHostileInput(t *testing.T) {
	deep := strings.Repeat("<ex:a>", 100) + strings.Repeat("</ex:a>", 100)
	many := strings.Repeat("<ex:a>1</ex:a>", 2000)
	event := func(body string) string {
		return `<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" xmlns:ex="http://ex.org/"><EPCISBody><EventList><ObjectEvent>` +
			body + `</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>`
	}
	tests := []struct {
		name    string
		in      string
		lim     Limits
		wantErr error
		msg     string
	}{
		{"empty", "", Limits{}, ErrInvalid, "no root element"},
		{"not XML", "\x00\x01garbage", Limits{}, ErrInvalid, "line 1"},
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>`, Limits{}, ErrInvalid, "DTD"},
		{"undefined entity", event(`<action>&boom;</action>`), Limits{}, ErrInvalid, "line 1"},
		{"deep nesting", event(deep), Limits{}, ErrTooLarge, "nested deeper than 64"},
		{"too many elements", event(many), Limits{MaxElements: 1000}, ErrTooLarge, "more than 1000 elements"},
		{"too many bytes", event(many), Limits{MaxBytes: 4096}, ErrTooLarge, "larger than 4096 bytes"},
		{"mismatched tags", "<a>\n<b></a>", Limits{}, ErrInvalid, "line 2"},
		{"unclosed", "<epcis:EPCISDocument xmlns:epcis=\"urn:epcglobal:epcis:xsd:2\">\n<EPCISBody>", Limits{}, ErrInvalid, "ends inside <EPCISBody> opened on line 2"},
		{"undeclared prefix", event(`<nope:x>1</nope:x>`), Limits{}, ErrInvalid, `undeclared namespace prefix "nope"`},
		{"unknown root", `<foo/>`, Limits{}, ErrInvalid, "<foo>: not an EPCISDocument"},
		{"second root", event("") + "<again/>", Limits{}, ErrInvalid, "second root element"},
		{"NaN quantity", event(`<quantityList><quantityElement><epcClass>urn:x</epcClass><quantity>NaN</quantity></quantityElement></quantityList>`), Limits{}, ErrInvalid, "<quantity>: \"NaN\" has no JSON form"},
		{"not a number", event(`<quantityList><quantityElement><epcClass>urn:x</epcClass><quantity>12kg</quantity></quantityElement></quantityList>`), Limits{}, ErrInvalid, "not a number"},
		{"bad boolean", event(`<sensorElementList><sensorElement><sensorReport booleanValue="yes"/></sensorElement></sensorElementList>`), Limits{}, ErrInvalid, "booleanValue: \"yes\" is not a boolean"},
		{"repeated field", event(`<action>ADD</action><action>ADD</action>`), Limits{}, ErrInvalid, "<action>: repeated"},
		{"QuantityEvent", `<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"><EPCISBody><EventList><QuantityEvent/></EventList></EPCISBody></epcis:EPCISDocument>`, Limits{}, ErrInvalid, "QuantityEvent was withdrawn"},
		{"non-UTF-8 encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><ObjectEvent/>`, Limits{}, ErrInvalid, "ISO-8859-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DocumentToJSON(strings.NewReader(tc.in), tc.lim)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

// TestManyKeys converts an event whose extension has 100 000 distinct keys.
// With a linear key lookup per member this took a minute on the development
// machine and well under a second with the index; the 20 s bound is loose
// enough for a loaded machine or -race and still catches quadratic lookups.
func TestManyKeys(t *testing.T) {
	start := time.Now()
	var b strings.Builder
	b.WriteString(`<ObjectEvent xmlns:ex="http://ex.org/"><ex:big>`)
	for i := range 100000 {
		fmt.Fprintf(&b, "<ex:k%d>%d</ex:k%d>", i, i, i)
	}
	b.WriteString(`</ex:big></ObjectEvent>`)
	got, err := DocumentToJSON(strings.NewReader(b.String()), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(`"ex:k99999":"99999"`)) {
		t.Errorf("last key missing")
	}
	var out bytes.Buffer
	if err := WriteXML(&out, got, Limits{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("100 000 keys took %v: key lookup is no longer indexed", d)
	}
}

// TestWriteXMLRefuses checks JSON that has no XML form is refused with its path.
func TestWriteXMLRefuses(t *testing.T) {
	ctx := `"@context":["` + ContextURL + `"]`
	tests := []struct {
		name, in string
		wantErr  error
		msg      string
	}{
		{"not JSON", `{`, ErrInvalid, "JSON"},
		{"trailing data", `{"type":"ObjectEvent"} {}`, ErrInvalid, "after the top-level value"},
		{"unknown type", `{` + ctx + `,"type":"Foo"}`, ErrInvalid, "Foo"},
		{"field of another event type", `{` + ctx + `,"type":"AggregationEvent","epcList":[]}`, ErrInvalid, "epcList: not a field of AggregationEvent"},
		{"object where string", `{` + ctx + `,"type":"ObjectEvent","action":{}}`, ErrInvalid, "action: a object where a string is expected"},
		{"nested arrays", `{` + ctx + `,"type":"ObjectEvent","ex:a":[[1]]}`, ErrInvalid, "ex:a[0]: nested arrays"},
		{"deep JSON", `{` + ctx + `,"type":"ObjectEvent","ex:a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ErrTooLarge, "deeper than 64"},
		{"query without results", `{` + ctx + `,"type":"EPCISQueryDocument","epcisBody":{}}`, ErrInvalid, "epcisBody.queryResults"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteXML(&bytes.Buffer{}, []byte(tc.in), Limits{})
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

// TestWriteXMLQueryDocument pins the shape of a query answer.
func TestWriteXMLQueryDocument(t *testing.T) {
	in := `{"@context":["` + ContextURL + `",{"ex":"http://ex.org/"}],"type":"EPCISQueryDocument","schemaVersion":"2.0","creationDate":"2024-01-01T00:00:00Z",
	"epcisBody":{"queryResults":{"queryName":"SimpleEventQuery","subscriptionID":"s1","resultsBody":{"eventList":[
	{"type":"ObjectEvent","action":"OBSERVE","eventTime":"2024-01-01T00:00:00Z","eventTimeZoneOffset":"+00:00","bizStep":"shipping","epcList":["urn:epc:id:sgtin:1.2.3"],
	 "sensorElementList":[{"sensorReport":[{"type":"Temperature","value":5}]}],"persistentDisposition":{"set":["completeness_verified"],"unset":["completeness_inferred"]},
	 "quantityList":[{"epcClass":"urn:x","quantity":1e2}],"ex:n":{"ex:m":"1"}}]}}}}`
	var out bytes.Buffer
	if err := WriteXML(&out, []byte(in), Limits{}); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`>\s+<`).ReplaceAllString(out.String(), "><")
	for _, want := range []string{
		`<epcisq:EPCISQueryDocument xmlns:epcisq="urn:epcglobal:epcis-query:xsd:2" xmlns:ex="http://ex.org/" schemaVersion="2.0" creationDate="2024-01-01T00:00:00Z">`,
		`<epcisq:QueryResults>`, `<queryName>SimpleEventQuery</queryName>`, `<subscriptionID>s1</subscriptionID>`,
		// XSD order: eventTime before epcList before action, unset before set.
		"<eventTime>2024-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00</eventTimeZoneOffset><epcList>",
		`<bizStep>urn:epcglobal:cbv:bizstep:shipping</bizStep>`,
		`<sensorReport type="gs1:Temperature" value="5"></sensorReport>`,
		"<unset>urn:epcglobal:cbv:disp:completeness_inferred</unset><set>",
		`<quantity>100</quantity>`,
		"<ex:n><ex:m>1</ex:m></ex:n>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("XML lacks %q:\n%s", want, got)
		}
	}
}
