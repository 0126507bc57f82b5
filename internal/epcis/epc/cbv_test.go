package epc

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestWordListsMatchContext keeps the built-in CBV lists equal to the GS1
// EPCIS context's vocabularies.
func TestWordListsMatchContext(t *testing.T) {
	b, err := os.ReadFile("../../../../shared/epcis/gs1/epcis-context.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// scoped returns the term names of the scoped context at path.
	scoped := func(path ...string) []string {
		cur := doc.Context
		for _, p := range path {
			var def struct {
				Context json.RawMessage `json:"@context"`
			}
			if err := json.Unmarshal(cur[p], &def); err != nil {
				t.Fatalf("%v: %v", path, err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(def.Context, &m); err != nil {
				var list []map[string]json.RawMessage
				if err := json.Unmarshal(def.Context, &list); err != nil {
					t.Fatalf("%v: %v", path, err)
				}
				m = map[string]json.RawMessage{}
				for _, l := range list {
					for k, v := range l {
						m[k] = v
					}
				}
			}
			cur = m
		}
		var out []string
		for k := range cur {
			if !strings.HasPrefix(k, "@") && k != "epcis" {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		v    Vocabulary
		path []string
	}{
		{BizStep, []string{"bizStep"}},
		{Disposition, []string{"disposition"}},
		{BizTransactionType, []string{"bizTransactionList", "type"}},
		{SourceDestType, []string{"sourceList", "type"}},
		{ErrorReason, []string{"errorDeclaration", "reason"}},
		{MeasurementType, []string{"sensorElementList", "sensorReport", "type"}},
		{SensorAlertType, []string{"sensorElementList", "sensorReport", "exception"}},
		{SensorComponent, []string{"sensorElementList", "sensorReport", "component"}},
	}
	for _, tt := range tests {
		t.Run(tt.v.String(), func(t *testing.T) {
			got := tt.v.Words()
			slices.Sort(got)
			if want := scoped(tt.path...); !slices.Equal(got, want) {
				t.Errorf("words %v\nthe context has %v", got, want)
			}
		})
	}
	pd := scoped("persistentDisposition")
	for _, w := range Disposition.Words() {
		if !slices.Contains(pd, w) {
			t.Errorf("persistentDisposition's context lacks the disposition %s", w)
		}
	}
}

func TestVocabularyForms(t *testing.T) {
	tests := []struct {
		v              Vocabulary
		in             string
		standard       bool
		bare, web, urn string
		webOK, urnOK   bool
	}{
		{BizStep, "shipping", true, "shipping", "https://ref.gs1.org/cbv/BizStep-shipping", "urn:epcglobal:cbv:bizstep:shipping", true, true},
		{BizStep, "urn:epcglobal:cbv:bizstep:shipping", true, "shipping", "https://ref.gs1.org/cbv/BizStep-shipping", "urn:epcglobal:cbv:bizstep:shipping", true, true},
		{BizStep, "https://ref.gs1.org/cbv/BizStep-shipping", true, "shipping", "https://ref.gs1.org/cbv/BizStep-shipping", "urn:epcglobal:cbv:bizstep:shipping", true, true},
		{BizStep, "cbv:BizStep-shipping", true, "shipping", "https://ref.gs1.org/cbv/BizStep-shipping", "urn:epcglobal:cbv:bizstep:shipping", true, true},
		{BizStep, "urn:epcglobal:cbv:bizstep:exampling", false, "", "https://ref.gs1.org/cbv/BizStep-exampling", "urn:epcglobal:cbv:bizstep:exampling", true, true},
		{BizStep, "https://example.com/bizStep/inspecting", false, "", "", "", false, false},
		{BizStep, "in_transit", false, "", "", "", false, false},
		{Disposition, "in_transit", true, "in_transit", "https://ref.gs1.org/cbv/Disp-in_transit", "urn:epcglobal:cbv:disp:in_transit", true, true},
		{BizTransactionType, "urn:epcglobal:cbv:btt:po", true, "po", "https://ref.gs1.org/cbv/BTT-po", "urn:epcglobal:cbv:btt:po", true, true},
		{SourceDestType, "owning_party", true, "owning_party", "https://ref.gs1.org/cbv/SDT-owning_party", "urn:epcglobal:cbv:sdt:owning_party", true, true},
		{ErrorReason, "incorrect_data", true, "incorrect_data", "https://ref.gs1.org/cbv/ER-incorrect_data", "urn:epcglobal:cbv:er:incorrect_data", true, true},
		{MeasurementType, "gs1:Temperature", true, "Temperature", "https://gs1.org/voc/Temperature", "", true, false},
		{MeasurementType, "Temperature", true, "Temperature", "https://gs1.org/voc/Temperature", "", true, false},
		{SensorAlertType, "ALARM_CONDITION", true, "ALARM_CONDITION", "https://gs1.org/voc/ALARM_CONDITION", "", true, false},
		{SensorComponent, "cbv:Comp-latitude", true, "latitude", "https://ref.gs1.org/cbv/Comp-latitude", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.v.String()+"/"+tt.in, func(t *testing.T) {
			if got := tt.v.IsStandard(tt.in); got != tt.standard {
				t.Errorf("IsStandard = %v", got)
			}
			if got, ok := tt.v.Bare(tt.in); ok != tt.standard || (ok && got != tt.bare) {
				t.Errorf("Bare = %q, %v", got, ok)
			}
			if got, ok := tt.v.WebURI(tt.in); ok != tt.webOK || (ok && got != tt.web) || (!ok && got != tt.in) {
				t.Errorf("WebURI = %q, %v", got, ok)
			}
			if got, ok := tt.v.URN(tt.in); ok != tt.urnOK || (ok && got != tt.urn) || (!ok && got != tt.in) {
				t.Errorf("URN = %q, %v", got, ok)
			}
		})
	}
}

func TestIsStandardHelpers(t *testing.T) {
	if !IsStandardBizStep("void_shipping") || IsStandardBizStep("in_transit") || IsStandardBizStep("") {
		t.Error("IsStandardBizStep")
	}
	if !IsStandardDisposition("https://ref.gs1.org/cbv/Disp-recalled") || IsStandardDisposition("shipping") {
		t.Error("IsStandardDisposition")
	}
	if !IsStandardBizTransactionType("desadv") || IsStandardBizTransactionType("invoice") {
		t.Error("IsStandardBizTransactionType")
	}
	if !IsStandardSourceDestType("location") || IsStandardSourceDestType("cbv:my_own_party") {
		t.Error("IsStandardSourceDestType")
	}
	if !IsStandardErrorReason("did_not_occur") || IsStandardErrorReason("wrong") {
		t.Error("IsStandardErrorReason")
	}
	if !IsStandardMeasurementType("AbsoluteHumidity") || IsStandardMeasurementType("Humidity") {
		t.Error("IsStandardMeasurementType")
	}
	if !IsStandardSensorAlertType("gs1:ERROR_CONDITION") || IsStandardSensorAlertType("WARNING") {
		t.Error("IsStandardSensorAlertType")
	}
	if !IsStandardSensorComponent("x") || IsStandardSensorComponent("w") {
		t.Error("IsStandardSensorComponent")
	}
}

func TestCBVWebURI(t *testing.T) {
	for in, want := range map[string]string{
		"urn:epcglobal:cbv:bizstep:receiving": "https://ref.gs1.org/cbv/BizStep-receiving",
		"urn:epcglobal:cbv:disp:in_progress":  "https://ref.gs1.org/cbv/Disp-in_progress",
		"urn:epcglobal:cbv:btt:desadv":        "https://ref.gs1.org/cbv/BTT-desadv",
		"urn:epcglobal:cbv:sdt:location":      "https://ref.gs1.org/cbv/SDT-location",
		"urn:epcglobal:cbv:er:did_not_occur":  "https://ref.gs1.org/cbv/ER-did_not_occur",
	} {
		if got, ok := CBVWebURI(in); !ok || got != want {
			t.Errorf("CBVWebURI(%s) = %s, %v", in, got, ok)
		}
	}
	// A business transaction identifier is not vocabulary.
	for _, s := range []string{"urn:epcglobal:cbv:bt:0614141073467:1152", "shipping", "urn:epcglobal:cbv:bizstep:"} {
		if got, ok := CBVWebURI(s); ok || got != s {
			t.Errorf("CBVWebURI(%s) = %s, %v", s, got, ok)
		}
	}
}

func TestCBVFormat(t *testing.T) {
	for _, h := range []string{"No_Preference", "Always_Web_URI", "Always_URN", "Never_Translates"} {
		f, err := ParseCBVFormat(h)
		if err != nil || f.String() != h {
			t.Errorf("ParseCBVFormat(%s) = %v, %v", h, f, err)
		}
	}
	if _, err := ParseCBVFormat("Always_GS1_Web_URI"); err == nil {
		t.Error("ParseCBVFormat accepted a value the binding does not define")
	}
	tests := []struct {
		v    Vocabulary
		in   string
		f    CBVFormat
		want string
	}{
		{BizStep, "shipping", CBVAlwaysWebURI, "https://ref.gs1.org/cbv/BizStep-shipping"},
		{BizStep, "https://ref.gs1.org/cbv/BizStep-shipping", CBVAlwaysURN, "urn:epcglobal:cbv:bizstep:shipping"},
		{BizStep, "urn:epcglobal:cbv:bizstep:shipping", CBVNeverTranslate, "urn:epcglobal:cbv:bizstep:shipping"},
		{BizStep, "https://example.com/bizStep/inspecting", CBVAlwaysURN, "https://example.com/bizStep/inspecting"},
		{MeasurementType, "Temperature", CBVAlwaysURN, "https://gs1.org/voc/Temperature"},
	}
	for _, tt := range tests {
		if got := tt.v.Format(tt.in, tt.f); got != tt.want {
			t.Errorf("%v.Format(%s, %v) = %s, want %s", tt.v, tt.in, tt.f, got, tt.want)
		}
	}
}
