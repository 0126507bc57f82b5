package ld

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

const corpus = "../../../../shared/epcis/"

func mustParse(t *testing.T, raw string) Context {
	t.Helper()
	c, err := Parse(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	return c
}

func TestExpand(t *testing.T) {
	c := mustParse(t, `["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
		{"example": "https://ns.example.com/epcis/"}, {"gs1": "https://gs1.org/voc/"}]`)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"bizStep", "https://ref.gs1.org/epcis/bizStep", true},
		{"ObjectEvent", "https://ref.gs1.org/epcis/ObjectEvent", true},
		{"creationDate", "http://purl.org/dc/terms/created", true},
		{"id", "@id", true},
		{"example:myField", "https://ns.example.com/epcis/myField", true},
		{"cbvmda:lotNumber", "urn:epcglobal:cbv:mda:lotNumber", true},
		{"gs1:Temperature", "https://gs1.org/voc/Temperature", true},
		{"rdfs:comment", "http://www.w3.org/2000/01/rdf-schema#comment", true},
		{"other:field", "other:field", false},
		{"https://example.com/x", "https://example.com/x", false},
		{"urn:epc:id:sgtin:4012345.011111.9876", "urn:epc:id:sgtin:4012345.011111.9876", false},
		{"myField", "myField", false},
		{"", "", false},
		// A term of a scoped context is unknown outside it.
		{"shipping", "shipping", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := c.Expand(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Expand(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := c.ExpandCURIE("bizStep"); ok {
		t.Error("ExpandCURIE expanded a bare term")
	}
}

func TestStandardURLs(t *testing.T) {
	for _, u := range StandardURLs() {
		c := mustParse(t, `"`+u+`"`)
		if iri, ok := c.Expand("eventTime"); !ok || iri != "https://ref.gs1.org/epcis/eventTime" {
			t.Errorf("%s: eventTime = %q, %v", u, iri, ok)
		}
		if len(c.Unresolved()) != 0 {
			t.Errorf("%s: unresolved %v", u, c.Unresolved())
		}
	}
	if iri, _ := Standard().Expand("disposition"); iri != "https://ref.gs1.org/epcis/disposition" {
		t.Errorf("Standard().Expand(disposition) = %q", iri)
	}
	c := mustParse(t, `["https://example.com/other-context.jsonld", "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]`)
	if got := c.Unresolved(); !slices.Equal(got, []string{"https://example.com/other-context.jsonld"}) {
		t.Errorf("Unresolved = %v", got)
	}
	if _, ok := c.Expand("bizStep"); !ok {
		t.Error("the GS1 context was lost beside an unknown one")
	}
	var empty Context
	if _, ok := empty.Expand("bizStep"); ok {
		t.Error("the zero Context knows bizStep")
	}
}

func TestExpandValue(t *testing.T) {
	c := Standard()
	sensor := c.Scoped("sensorElementList").Scoped("sensorReport")
	tests := []struct {
		name     string
		ctx      Context
		prop, in string
		want     string
		ok       bool
	}{
		{"bizStep word", c, "bizStep", "shipping", "https://ref.gs1.org/cbv/BizStep-shipping", true},
		{"bizStep CURIE", c, "bizStep", "cbv:BizStep-other", "https://ref.gs1.org/cbv/BizStep-other", true},
		{"bizStep not standard", c, "bizStep", "exampling", "exampling", false},
		{"bizStep URI", c, "bizStep", "https://example.com/bizStep/inspecting", "https://example.com/bizStep/inspecting", false},
		{"disposition", c, "disposition", "in_transit", "https://ref.gs1.org/cbv/Disp-in_transit", true},
		{"a disposition is no bizStep", c, "bizStep", "in_transit", "in_transit", false},
		{"persistentDisposition set", c.Scoped("persistentDisposition"), "set", "recalled", "https://ref.gs1.org/cbv/Disp-recalled", true},
		{"bizTransaction type", c.Scoped("bizTransactionList"), "type", "po", "https://ref.gs1.org/cbv/BTT-po", true},
		{"destination type", c.Scoped("destinationList"), "type", "owning_party", "https://ref.gs1.org/cbv/SDT-owning_party", true},
		{"destination type CURIE", c.Scoped("destinationList"), "type", "cbv:my_own_party", "https://ref.gs1.org/cbv/my_own_party", true},
		{"measurement type", sensor, "type", "Temperature", "https://gs1.org/voc/Temperature", true},
		{"alert", sensor, "exception", "gs1:ALARM_CONDITION", "https://gs1.org/voc/ALARM_CONDITION", true},
		{"component", sensor, "component", "latitude", "https://ref.gs1.org/cbv/Comp-latitude", true},
		{"uom is no vocabulary", sensor, "uom", "CEL", "CEL", false},
		{"error reason", c.Scoped("errorDeclaration"), "reason", "incorrect_data", "https://ref.gs1.org/cbv/ER-incorrect_data", true},
		{"@id property with a CURIE", c, "readPoint", "cbvmda:x", "urn:epcglobal:cbv:mda:x", true},
		{"undefined property", c, "example:field", "shipping", "shipping", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.ctx.ExpandValue(tt.prop, tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ExpandValue(%s, %s) = %q, %v; want %q, %v", tt.prop, tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := c.TypeOf("eventTime"); got != "http://www.w3.org/2001/XMLSchema#dateTimeStamp" {
		t.Errorf("TypeOf(eventTime) = %q", got)
	}
	if got := c.TypeOf("bizStep"); got != "@vocab" {
		t.Errorf("TypeOf(bizStep) = %q", got)
	}
}

func TestCompact(t *testing.T) {
	c := mustParse(t, `["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "https://ns.example.com/epcis/"}]`)
	tests := []struct{ in, want string }{
		{"https://ref.gs1.org/epcis/bizStep", "bizStep"},
		{"https://ns.example.com/epcis/myField", "example:myField"},
		{"urn:epcglobal:cbv:mda:lotNumber", "cbvmda:lotNumber"},
		{"https://ref.gs1.org/cbv/BizStep-shipping", "cbv:BizStep-shipping"},
		{"https://unknown.example.org/x", "https://unknown.example.org/x"},
		{"https://ns.example.com/epcis/", "example"}, // the term itself
	}
	for _, tt := range tests {
		if got := c.Compact(tt.in); got != tt.want {
			t.Errorf("Compact(%s) = %s, want %s", tt.in, got, tt.want)
		}
		if iri, _ := c.Expand(c.Compact(tt.in)); iri != tt.in && c.Compact(tt.in) != tt.in {
			t.Errorf("Expand(Compact(%s)) = %s", tt.in, iri)
		}
	}
	if got := c.CompactValue("bizStep", "https://ref.gs1.org/cbv/BizStep-shipping"); got != "shipping" {
		t.Errorf("CompactValue(bizStep) = %s", got)
	}
	sr := c.Scoped("sensorElementList").Scoped("sensorReport")
	if got := sr.CompactValue("type", "https://gs1.org/voc/Temperature"); got != "Temperature" {
		t.Errorf("CompactValue(sensorReport type) = %s", got)
	}
}

// TestEventLevelContexts reads the corpus document that declares namespaces
// in the document and in events: each event sees its own and the document's.
func TestEventLevelContexts(t *testing.T) {
	b, err := os.ReadFile(corpus + "openepcis/Capture/Documents/Namespaces_at_different_level.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context json.RawMessage `json:"@context"`
		Body    struct {
			Events []struct {
				Context json.RawMessage `json:"@context"`
			} `json:"eventList"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	dc, err := Parse(doc.Context)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Body.Events) != 5 {
		t.Fatalf("%d events", len(doc.Body.Events))
	}
	ev0, err := dc.Extend(doc.Body.Events[0].Context)
	if err != nil {
		t.Fatal(err)
	}
	if iri, ok := ev0.Expand("ext2:address"); !ok || iri != "http://www.ext2.net/address" {
		t.Errorf("event 0 ext2:address = %q, %v", iri, ok)
	}
	if iri, ok := ev0.Expand("ext1:name"); !ok || iri != "https://ns.ext.de/epcis/name" {
		t.Errorf("event 0 ext1:name = %q, %v", iri, ok)
	}
	// The document's context is unchanged by an event's.
	if _, ok := dc.Expand("ext2:address"); ok {
		t.Error("an event's prefix leaked into the document context")
	}
	ev2, err := dc.Extend(doc.Body.Events[2].Context)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ev2.Expand("ext4:x"); ok {
		t.Error("event 2 sees another event's prefix")
	}
	ev3, _ := dc.Extend(doc.Body.Events[3].Context)
	if iri, _ := ev3.Expand("ext5:hello"); iri != "http://www.ext4.net/hello" {
		t.Errorf("event 3 ext5:hello = %q", iri)
	}
}

func TestOverrideAndReset(t *testing.T) {
	c := mustParse(t, `["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"gs1": "https://example.com/not-gs1/"}]`)
	if iri, _ := c.Expand("gs1:x"); iri != "https://example.com/not-gs1/x" {
		t.Errorf("a later prefix does not override: %q", iri)
	}
	c2, err := c.Extend(json.RawMessage(`null`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Expand("bizStep"); ok {
		t.Error("a null context did not reset")
	}
	c3, _ := c.Extend(json.RawMessage(`{"bizStep": null}`))
	if _, ok := c3.Expand("bizStep"); ok {
		t.Error("a null term definition did not remove the term")
	}
}

func TestInvalidContexts(t *testing.T) {
	deep := strings.Repeat(`{"a":{"@id":"x:a","@context":`, 40) + `{}` + strings.Repeat(`}}`, 40)
	for _, raw := range []string{
		`42`, `true`, `[[]]`, `{"a": 1}`, `{"a": {"@type": "@id"}}`, `{`, `"unterminated`, `[{"a": [1]}]`,
		deep, `{"a": {"@id": "x:a", "@context": 7}}`,
	} {
		if _, err := Parse(json.RawMessage(raw)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%.60s) error = %v, want ErrInvalid", raw, err)
		}
	}
	c, err := Parse(nil)
	if err != nil {
		t.Errorf("Parse(nil) = %v", err)
	}
	if _, ok := c.Expand("bizStep"); ok {
		t.Error("an absent @context knows bizStep")
	}
}

// TestConcurrentUse exercises one Context from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	c := mustParse(t, `["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "https://ns.example.com/epcis/"}]`)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if iri, _ := c.Expand("example:f"); iri != "https://ns.example.com/epcis/f" {
					t.Error("wrong expansion under concurrency")
					return
				}
				e, _ := c.Extend(json.RawMessage(`{"x": "https://x.example/"}`))
				e.Scoped("sensorElementList").Scoped("sensorReport").ExpandValue("type", "Speed")
				c.Compact("https://ns.example.com/epcis/f")
			}
		}()
	}
	wg.Wait()
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`"https://ref.gs1.org/standards/epcis/epcis-context.jsonld"`, `[{"a": "https://a/"}, null]`,
		`{"t": {"@id": "a:t", "@type": "@vocab", "@context": {"w": "a:w"}}, "a": "https://a/"}`, `[[`, `{"a": "a:"}`,
	} {
		f.Add([]byte(s), "a:t", "w")
	}
	f.Fuzz(func(t *testing.T, raw []byte, term, value string) {
		c, err := Parse(raw)
		if err != nil {
			return
		}
		c.Expand(term)
		c.ExpandValue(term, value)
		c.Scoped(term).Expand(value)
		c.Compact(value)
		c.CompactValue(term, value)
		c.Unresolved()
	})
}
