package eventhash

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/epcis/ld"
)

func TestCanonicalTime(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2023-02-02T11:04:03.1415Z", "2023-02-02T11:04:03.142Z"},
		{"2023-02-02T11:04:03.1414Z", "2023-02-02T11:04:03.141Z"},
		{"2023-02-02T11:04:03.14149999Z", "2023-02-02T11:04:03.141Z"},
		{"2023-12-31T23:59:59.9996Z", "2024-01-01T00:00:00.000Z"},
		{"2020-03-04T11:00:30+01:00", "2020-03-04T10:00:30.000Z"},
		{"2005-04-03T20:33:31.116000-06:00", "2005-04-04T02:33:31.116Z"},
		{"2020-03-04T11:00+05:30", "2020-03-04T05:30:00.000Z"},
		{"2020-03-04T11:00:30.5+0530", "2020-03-04T05:30:30.500Z"},
		{"2020-03-04T11:00:30", "2020-03-04T11:00:30.000Z"}, // no offset: UTC
		{"2022-02-17T11:30:47.0Z", "2022-02-17T11:30:47.000Z"},
		{"yesterday", "yesterday"},
		{"2020-13-04T11:00:30Z", "2020-13-04T11:00:30Z"},
		{"2020-03-04T11:00:30+25:00", "2020-03-04T11:00:30+25:00"},
	}
	for _, tt := range tests {
		if got := canonicalTime(tt.in); got != tt.want {
			t.Errorf("canonicalTime(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.0", "1"}, {"0.50", "0.5"}, {"452.0", "452"}, {"26", "26"}, {"+5", "5"}, {"-0", "0"}, {"007", "7"},
		{"0.1", "0.1"}, {"-12.25", "-12.25"}, {"1E2", "100"}, {"1e-5", "1e-05"}, {"0.0001", "0.0001"},
		{"0.00012", "0.00012"}, {"0.000012", "1.2e-05"}, {"42.698334", "42.698334"},
		// What Python's float gives: a whole float printed as an int.
		{"12345678901234567890", "12345678901234567168"},
		{"1e400", "1e400"}, {"abc", "abc"}, {"1_000", "1_000"}, {"0x10", "0x10"}, {"nan", "nan"}, {"Infinity", "Infinity"},
		{"+01:00", "+01:00"}, {"2023-10-09", "2023-10-09"}, {".5", "0.5"}, {"5.", "5"},
	}
	for _, tt := range tests {
		if got := canonicalNumber(tt.in); got != tt.want {
			t.Errorf("canonicalNumber(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

const docContext = `["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"example": "https://ns.example.com/epcis/"}]`

func hashOf(t *testing.T, event string, opts ...Option) string {
	t.Helper()
	ctx, err := ld.Parse(json.RawMessage(docContext))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Hash(json.RawMessage(event), ctx, opts...)
	if err != nil {
		t.Fatalf("Hash: %v\n%s", err, event)
	}
	return h
}

const baseEvent = `{"type": "ObjectEvent", "eventTime": "2020-03-04T11:00:30.000+01:00", "eventTimeZoneOffset": "+01:00",
	"epcList": ["urn:epc:id:sgtin:4012345.011111.1", "urn:epc:id:sgtin:4012345.011111.2"], "action": "OBSERVE",
	"bizStep": "shipping", "disposition": "in_transit", "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0"},
	"bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:PO1"}],
	"quantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.011111.L1", "quantity": 1, "uom": "KGM"}],
	"example:myField": "x"}`

// TestSameEventSameHash: representations of one event that differ in form
// only hash alike, and a change of content changes the hash.
func TestSameEventSameHash(t *testing.T) {
	base := hashOf(t, baseEvent)
	same := map[string]string{
		"Digital Link EPCs": strings.NewReplacer(
			"urn:epc:id:sgtin:4012345.011111.1", "https://brand.example.com/01/04012345111118/21/1?17=250101",
			"urn:epc:id:sgln:4012345.00011.0", "https://id.gs1.org/414/4012345000115").Replace(baseEvent),
		"URN vocabulary": strings.NewReplacer(`"shipping"`, `"urn:epcglobal:cbv:bizstep:shipping"`,
			`"in_transit"`, `"https://ref.gs1.org/cbv/Disp-in_transit"`, `"type": "po"`, `"type": "urn:epcglobal:cbv:btt:po"`).Replace(baseEvent),
		"other offset, same instant": strings.Replace(baseEvent, "2020-03-04T11:00:30.000+01:00", "2020-03-04T10:00:30Z", 1),
		"quantity 1.0":               strings.Replace(baseEvent, `"quantity": 1,`, `"quantity": 1.0,`, 1),
		"EPCs in another order": strings.Replace(baseEvent, `"urn:epc:id:sgtin:4012345.011111.1", "urn:epc:id:sgtin:4012345.011111.2"`,
			`"urn:epc:id:sgtin:4012345.011111.2", "urn:epc:id:sgtin:4012345.011111.1"`, 1),
		"fields in another order": `{"example:myField": "x", "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0"}, "action": "OBSERVE",
			"quantityList": [{"uom": "KGM", "quantity": 1, "epcClass": "urn:epc:class:lgtin:4012345.011111.L1"}],
			"bizTransactionList": [{"bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:PO1", "type": "po"}],
			"disposition": "in_transit", "bizStep": "shipping", "eventTimeZoneOffset": "+01:00",
			"epcList": ["urn:epc:id:sgtin:4012345.011111.1", "urn:epc:id:sgtin:4012345.011111.2"],
			"eventTime": "2020-03-04T11:00:30.000+01:00", "type": "ObjectEvent"}`,
		"eventID, recordTime, comment and errorDeclaration": strings.Replace(baseEvent, `"action"`,
			`"eventID": "urn:uuid:1", "recordTime": "2024-01-01T00:00:00Z", "rdfs:comment": "hi", "errorDeclaration": {"declarationTime": "2024-01-01T00:00:00Z", "reason": "incorrect_data"}, "action"`, 1),
		"extension prefix declared in the event": strings.Replace(strings.Replace(baseEvent, `"example:myField"`, `"ex2:myField"`, 1),
			`{"type"`, `{"@context": {"ex2": "https://ns.example.com/epcis/"}, "type"`, 1),
		"whitespace around values": strings.Replace(baseEvent, `"OBSERVE"`, `"  OBSERVE "`, 1),
	}
	for name, ev := range same {
		t.Run(name, func(t *testing.T) {
			if h := hashOf(t, ev); h != base {
				pre, _ := PreHash(json.RawMessage(ev), mustStd(t))
				t.Errorf("hash %s, want %s\n%s", h, base, pre)
			}
		})
	}
	different := map[string]string{
		"another EPC":          strings.Replace(baseEvent, "011111.2", "011111.3", 1),
		"another bizStep":      strings.Replace(baseEvent, `"shipping"`, `"receiving"`, 1),
		"another time":         strings.Replace(baseEvent, "11:00:30.000", "11:00:30.001", 1),
		"another extension":    strings.Replace(baseEvent, `"example:myField": "x"`, `"example:myField": "y"`, 1),
		"an added field":       strings.Replace(baseEvent, `"action"`, `"bizLocation": {"id": "urn:epc:id:sgln:4012345.00011.0"}, "action"`, 1),
		"another quantity":     strings.Replace(baseEvent, `"quantity": 1,`, `"quantity": 2,`, 1),
		"another event type":   strings.Replace(baseEvent, "ObjectEvent", "AggregationEvent", 1),
		"another bizTransType": strings.Replace(baseEvent, `"type": "po"`, `"type": "desadv"`, 1),
	}
	for name, ev := range different {
		t.Run(name, func(t *testing.T) {
			if h := hashOf(t, ev); h == base {
				t.Errorf("hash unchanged")
			}
		})
	}
}

func mustStd(t *testing.T) ld.Context {
	t.Helper()
	c, err := ld.Parse(json.RawMessage(docContext))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPreHashShape(t *testing.T) {
	ev := `{"type": "ObjectEvent", "eventTime": "2020-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
		"epcList": ["urn:epc:id:sscc:4012345.0000000333"],
		"sensorElementList": [{"sensorReport": [{"type": "Temperature", "booleanValue": true, "value": 20.50}]}],
		"ilmd": {"example:lot": "A1", "cbvmda:bestBeforeDate": "2021-01-01"}}`
	pre, err := PreHash(json.RawMessage(ev), mustStd(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "eventType=ObjectEventeventTime=2020-01-01T00:00:00.000ZeventTimeZoneOffset=+00:00" +
		"epcListepc=https://id.gs1.org/00/040123450000003338action=OBSERVE" +
		"sensorElementListsensorElementsensorReporttype=https://gs1.org/voc/Temperaturevalue=20.5booleanValue=true" +
		"ilmd{https://ns.example.com/epcis/}lot=A1{urn:epcglobal:cbv:mda:}bestBeforeDate=2021-01-01"
	if pre != want {
		t.Errorf("pre-hash\n%s\nwant\n%s", pre, want)
	}
}

func TestIgnoreFields(t *testing.T) {
	with := strings.Replace(baseEvent, `"action"`, `"example:captureID": "c1", "action"`, 1)
	if hashOf(t, with) == hashOf(t, baseEvent) {
		t.Fatal("an extra field does not change the hash")
	}
	for _, name := range []string{"example:captureID", "https://ns.example.com/epcis/captureID"} {
		if got := hashOf(t, with, IgnoreFields(name)); got != hashOf(t, baseEvent) {
			t.Errorf("IgnoreFields(%s) did not leave the field out", name)
		}
	}
}

func TestInvalidEvents(t *testing.T) {
	deep := `{"type": "ObjectEvent", "example:x": ` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `}`
	for name, ev := range map[string]string{
		"not JSON":          `{"type": `,
		"an array":          `[{"type": "ObjectEvent"}]`,
		"a string":          `"ObjectEvent"`,
		"no type":           `{"action": "ADD"}`,
		"type not a string": `{"type": 7}`,
		"trailing data":     `{"type": "ObjectEvent"} {}`,
		"too deep":          deep,
		"bad @context":      `{"@context": 5, "type": "ObjectEvent"}`,
		"empty":             ``,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Hash(json.RawMessage(ev), mustStd(t)); !errors.Is(err, ErrInvalid) {
				t.Errorf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestHashDocumentShapes hashes the corpus' single-event and query documents.
func TestHashDocumentShapes(t *testing.T) {
	files, _ := filepath.Glob("../../../../shared/epcis/openepcis/Capture/Events/*.json")
	q, _ := filepath.Glob("../../../../shared/epcis/openepcis/Query/*.json")
	d, _ := filepath.Glob("../../../../shared/epcis/openepcis/Capture/Documents/*.json")
	files = append(append(files, q...), d...)
	if len(files) < 40 {
		t.Fatalf("only %d corpus files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			hs, err := HashDocument(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) == 0 {
				t.Fatal("no events found")
			}
			for _, h := range hs {
				if !strings.HasPrefix(h, "ni:///sha-256;") || !strings.HasSuffix(h, "?ver=CBV2.0") || len(h) != len("ni:///sha-256;?ver=CBV2.0")+64 {
					t.Errorf("malformed hash %s", h)
				}
			}
		})
	}
}

func FuzzPreHash(f *testing.F) {
	f.Add([]byte(baseEvent))
	docs, _ := filepath.Glob(vectorDir + "/*.jsonld")
	for _, p := range docs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		_, events, err := documentEvents(b)
		if err != nil {
			f.Fatal(err)
		}
		for _, ev := range events {
			f.Add([]byte(ev))
		}
	}
	ctx, err := ld.Parse(json.RawMessage(docContext))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		pre, err := PreHash(ev, ctx)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if !strings.HasPrefix(pre, "eventType=") {
			t.Fatalf("pre-hash %q", pre)
		}
		if again, _ := PreHash(ev, ctx); again != pre {
			t.Fatal("PreHash is not deterministic")
		}
	})
}
