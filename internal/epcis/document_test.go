package epcis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/epcis/validate"
)

// corpus is GS1's EPCIS 2.0 test material shared by the workspace.
const corpus = "../../../shared/epcis"

// captureDocument is a document as `tracktrace loadtest --scenario
// epcis-capture` sends it: n ObjectEvents of epcs EPCs each, with
// bizStep, disposition, readPoint, bizLocation and a user extension.
func captureDocument(n, epcs int) []byte {
	var b strings.Builder
	b.WriteString(`{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "https://ns.example.com/epcis/"}],
 "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-12-02T10:00:00Z", "epcisBody": {"eventList": [`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		list := make([]string, epcs)
		for k := range list {
			list[k] = fmt.Sprintf(`"urn:epc:id:sgtin:0614141.107346.lt%d"`, i*epcs+k)
		}
		fmt.Fprintf(&b, `{"type": "ObjectEvent", "eventID": "urn:uuid:6f2b1a4e-0000-4000-8000-%012d", "eventTime": "2026-12-02T10:00:%02d.%03d+01:00",
 "eventTimeZoneOffset": "+01:00", "epcList": [%s], "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
 "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"}, "bizLocation": {"id": "urn:epc:id:sgln:0614141.00888.0"},
 "example:shipmentRef": "SHP-1"}`, i, i%60, i%1000, strings.Join(list, ", "))
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// Members gives the members of every object of the corpus, and the same
// error for every bad input, as decoding token by token does; the
// elements of every array are those json.Unmarshal gives.
func TestMembersAsDecoded(t *testing.T) {
	inputs := map[string][]byte{
		"empty":                {},
		"space":                []byte("  "),
		"array":                []byte(`[1, 2]`),
		"string":               []byte(`"x"`),
		"empty object":         []byte(` {} `),
		"nested":               []byte(`{"a": {"b": [1, {"c": "}"}]}, "d": "\"{[", "e": -1.5e3, "f": true, "g": null, "h": []}`),
		"escaped keys":         []byte(`{"a\"b": 1, "\u00e9": 2, "a\\": 3}`),
		"a key twice":          []byte(`{"a": 1, "b": 2, "a": 3}`),
		"a key twice, escaped": []byte(`{"a": 1, "\u0061": 2}`),
		"invalid UTF-8 key":    []byte("{\"a\xff\": 1, \"a\xfe\": 2}"),
		"trailing data":        []byte(`{"a": 1} {}`),
		"trailing comma":       []byte(`{"a": 1,}`),
		"no colon":             []byte(`{"a" 1}`),
		"unterminated":         []byte(`{"a": [1, 2}`),
		"bad literal":          []byte(`{"a": tru}`),
		"number then garbage":  []byte(`{"a": 12x}`),
		"deep":                 []byte(`{"a": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`),
		"control character":    []byte("{\"a\": \"\x01\"}"),
		"whitespace galore":    []byte("\t{\n\"a\"\r:\n 1 ,\"b\" : [ 1 , 2 ] \n}\n"),
		"capture document":     captureDocument(3, 2),
		"null":                 []byte(` null`),
		"arrays":               []byte(`[[], {"a": "]"}, "x", 1e5, null, [[1]]]`),
		"empty array":          []byte(`[ ]`),
	}
	files, _ := filepath.Glob(filepath.Join(corpus, "openepcis/Capture/*/*.json"))
	if len(files) == 0 {
		t.Fatalf("no corpus documents in %s", corpus)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = raw
		// Every object of the document, as Members cuts them.
		var walk func(name string, raw []byte)
		walk = func(name string, raw []byte) {
			inputs[name] = raw
			if m, err := decodeMembers(raw); err == nil {
				for _, mm := range m {
					walk(name+"/"+mm.Key, mm.Value)
				}
			}
			var list []json.RawMessage
			if json.Unmarshal(raw, &list) == nil {
				for i, v := range list {
					walk(fmt.Sprintf("%s/%d", name, i), v)
				}
			}
		}
		walk(filepath.Base(f), raw)
	}
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			sameAsDecoded(t, raw)
			sameElements(t, raw)
		})
	}
}

// sameElements fails unless validElements, on valid JSON, returns what
// json.Unmarshal into a []json.RawMessage does.
func sameElements(t *testing.T, raw []byte) {
	t.Helper()
	if !json.Valid(raw) {
		return
	}
	got, err := validElements(raw)
	var want []json.RawMessage
	wantErr := json.Unmarshal(raw, &want)
	if (err == nil) != (wantErr == nil) || len(got) != len(want) {
		t.Fatalf("validElements(%.200q) = %q, %v; json.Unmarshal: %q, %v", raw, got, err, want, wantErr)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("validElements(%.200q): element %d is %q, json.Unmarshal gives %q", raw, i, got[i], want[i])
		}
	}
}

// sameAsDecoded fails unless Members returns what decodeMembers does.
func sameAsDecoded(t *testing.T, raw []byte) {
	t.Helper()
	got, err := Members(raw)
	want, wantErr := decodeMembers(raw)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Members(%.200q) = %q, %v; decoded token by token: %q, %v", raw, got, err, want, wantErr)
	}
	// Object writes the keys json.Marshal would.
	for _, m := range got {
		if k, _ := json.Marshal(m.Key); plainKey(m.Key) && string(k) != `"`+m.Key+`"` {
			t.Fatalf("Object writes key %q as %q, json.Marshal as %s", m.Key, `"`+m.Key+`"`, k)
		}
	}
}

func FuzzMembers(f *testing.F) {
	f.Add([]byte(`{"a": {"b": [1, {"c": "}"}]}, "d": "\"{[", "e": -1.5e3, "f": true, "g": null}`))
	f.Add([]byte(`{"a": 1, "\u0061": 2}`))
	f.Add([]byte(`{"a": 1} x`))
	f.Add(captureDocument(2, 2))
	f.Add([]byte(`[1, [2], {"a": "]"}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameAsDecoded(t, raw)
		sameElements(t, raw)
	})
}

// Cutting the members of a value must not alias the input: a caller may
// reuse its buffer.
func TestMembersCopies(t *testing.T) {
	raw := []byte(`{"a": "xyz", "b": [1]}`)
	m, err := Members(raw)
	if err != nil {
		t.Fatal(err)
	}
	copy(raw, bytes.Repeat([]byte("#"), len(raw)))
	if string(m[0].Value) != `"xyz"` || string(m[1].Value) != `[1]` {
		t.Fatalf("members changed with the input: %q", m)
	}
	m[0].Value = append(m[0].Value, "!!"...)
	if string(m[1].Value) != `[1]` {
		t.Fatalf("appending to a member's value changed the next: %q", m)
	}
}

// BenchmarkCaptureDocument is document.go's share of a capture of the
// loadtest's documents (100 ObjectEvents of 10 EPCs): the document split
// into its events, and each event's stored form.
func BenchmarkCaptureDocument(b *testing.B) {
	raw := captureDocument(100, 10)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		doc, err := ParseDocument(raw, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range doc.Events {
			if _, err := e.Stored(""); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100)/1000, "µs/event")
}

// BenchmarkValidateDocument is the validator's share of a capture of the
// loadtest's documents (the handler validates before it parses).
func BenchmarkValidateDocument(b *testing.B) {
	v, err := validate.New()
	if err != nil {
		b.Fatal(err)
	}
	raw := captureDocument(100, 10)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, problems := v.Document(raw); len(problems) != 0 {
			b.Fatal(problems)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100)/1000, "µs/event")
}
