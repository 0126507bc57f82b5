package epc

import (
	"fmt"
	"slices"
	"strings"
)

// Vocabulary is one of the CBV 2.0 standard vocabularies whose values EPCIS
// events carry, each with its bare words (JSON form), GS1 Web URIs and, for
// the vocabularies EPCIS 1.x knew, EPC URNs.
type Vocabulary int

// The CBV vocabularies.
const (
	BizStep            Vocabulary = iota + 1 // bizStep
	Disposition                              // disposition, persistentDisposition set/unset
	BizTransactionType                       // bizTransactionList type
	SourceDestType                           // sourceList / destinationList type
	ErrorReason                              // errorDeclaration reason
	MeasurementType                          // sensorReport type
	SensorAlertType                          // sensorReport exception
	SensorComponent                          // sensorReport component
)

type vocabInfo struct {
	name   string
	urn    string // URN prefix, "" when the vocabulary has none
	web    string // GS1 Web URI prefix
	words  []string
	wordOf map[string]bool
}

var vocabs = func() map[Vocabulary]*vocabInfo {
	m := map[Vocabulary]*vocabInfo{
		BizStep:            {name: "bizStep", urn: "urn:epcglobal:cbv:bizstep:", web: "https://ref.gs1.org/cbv/BizStep-", words: bizStepWords},
		Disposition:        {name: "disposition", urn: "urn:epcglobal:cbv:disp:", web: "https://ref.gs1.org/cbv/Disp-", words: dispositionWords},
		BizTransactionType: {name: "business transaction type", urn: "urn:epcglobal:cbv:btt:", web: "https://ref.gs1.org/cbv/BTT-", words: bizTransactionTypeWords},
		SourceDestType:     {name: "source/destination type", urn: "urn:epcglobal:cbv:sdt:", web: "https://ref.gs1.org/cbv/SDT-", words: sourceDestTypeWords},
		ErrorReason:        {name: "error reason", urn: "urn:epcglobal:cbv:er:", web: "https://ref.gs1.org/cbv/ER-", words: errorReasonWords},
		MeasurementType:    {name: "sensor measurement type", web: "https://gs1.org/voc/", words: measurementTypeWords},
		SensorAlertType:    {name: "sensor alert type", web: "https://gs1.org/voc/", words: sensorAlertTypeWords},
		SensorComponent:    {name: "sensor component", web: "https://ref.gs1.org/cbv/Comp-", words: componentWords},
	}
	for _, v := range m {
		v.wordOf = make(map[string]bool, len(v.words))
		for _, w := range v.words {
			v.wordOf[w] = true
		}
	}
	return m
}()

func (v Vocabulary) info() *vocabInfo {
	if i, ok := vocabs[v]; ok {
		return i
	}
	return &vocabInfo{name: "unknown vocabulary"}
}

// String names the vocabulary.
func (v Vocabulary) String() string { return v.info().name }

// Words returns the vocabulary's standard values as bare words, in the order
// the GS1 context lists them.
func (v Vocabulary) Words() []string { return slices.Clone(v.info().words) }

// word returns the local name of s in any of the vocabulary's forms (bare
// word, URN, Web URI, "cbv:"/"gs1:" CURIE), without checking it is standard.
func (v Vocabulary) word(s string) (string, bool) {
	i := v.info()
	switch {
	case i.urn != "" && strings.HasPrefix(s, i.urn):
		return s[len(i.urn):], true
	case i.web != "" && strings.HasPrefix(s, i.web):
		return s[len(i.web):], true
	}
	if i.web != "" {
		for _, p := range []struct{ curie, ns string }{{"cbv:", "https://ref.gs1.org/cbv/"}, {"gs1:", "https://gs1.org/voc/"}} {
			if strings.HasPrefix(s, p.curie) && strings.HasPrefix(i.web, p.ns) {
				if w, ok := strings.CutPrefix(p.ns+s[len(p.curie):], i.web); ok {
					return w, true
				}
			}
		}
	}
	if i.wordOf[s] {
		return s, true
	}
	return "", false
}

// IsStandard reports whether s is a standard value of the vocabulary in any
// of its forms: "shipping", "urn:epcglobal:cbv:bizstep:shipping" and
// "https://ref.gs1.org/cbv/BizStep-shipping" are all standard bizSteps.
func (v Vocabulary) IsStandard(s string) bool {
	w, ok := v.word(s)
	return ok && v.info().wordOf[w]
}

// Bare returns the bare word of a standard value given in any form; ok is
// false for values that are not standard (they have no bare form).
func (v Vocabulary) Bare(s string) (string, bool) {
	w, ok := v.word(s)
	if !ok || !v.info().wordOf[w] {
		return s, false
	}
	return w, true
}

// WebURI returns the GS1 Web URI of s: a standard bare word, or a URN or
// CURIE in the vocabulary's namespace (standard or not). Other values are
// returned unchanged with ok false.
func (v Vocabulary) WebURI(s string) (string, bool) {
	w, ok := v.word(s)
	if !ok || w == "" {
		return s, false
	}
	return v.info().web + w, true
}

// URN returns the EPC URN form of s (as WebURI does for Web URIs). ok is false
// for vocabularies without URNs (the sensor vocabularies new in CBV 2.0) and
// for values not in the vocabulary's namespace.
func (v Vocabulary) URN(s string) (string, bool) {
	i := v.info()
	w, ok := v.word(s)
	if !ok || w == "" || i.urn == "" {
		return s, false
	}
	return i.urn + w, true
}

// IsStandardBizStep reports whether s is a CBV 2.0 business step, in any form.
func IsStandardBizStep(s string) bool { return BizStep.IsStandard(s) }

// IsStandardDisposition reports whether s is a CBV 2.0 disposition, in any form.
func IsStandardDisposition(s string) bool { return Disposition.IsStandard(s) }

// IsStandardBizTransactionType reports whether s is a CBV 2.0 business
// transaction type, in any form.
func IsStandardBizTransactionType(s string) bool { return BizTransactionType.IsStandard(s) }

// IsStandardSourceDestType reports whether s is a CBV 2.0 source/destination
// type, in any form.
func IsStandardSourceDestType(s string) bool { return SourceDestType.IsStandard(s) }

// IsStandardErrorReason reports whether s is a CBV 2.0 error reason, in any form.
func IsStandardErrorReason(s string) bool { return ErrorReason.IsStandard(s) }

// IsStandardMeasurementType reports whether s is a CBV 2.0 sensor measurement
// type ("Temperature", "gs1:Temperature", "https://gs1.org/voc/Temperature").
func IsStandardMeasurementType(s string) bool { return MeasurementType.IsStandard(s) }

// IsStandardSensorAlertType reports whether s is a CBV 2.0 sensor alert type
// (sensorReport exception), in any form.
func IsStandardSensorAlertType(s string) bool { return SensorAlertType.IsStandard(s) }

// IsStandardSensorComponent reports whether s is a CBV 2.0 sensor component,
// in any form.
func IsStandardSensorComponent(s string) bool { return SensorComponent.IsStandard(s) }

// urnVocabularies are the vocabularies with URN forms, for CBVWebURI.
var urnVocabularies = []Vocabulary{BizStep, Disposition, BizTransactionType, SourceDestType, ErrorReason}

// CBVWebURI replaces a CBV URN of any vocabulary
// (urn:epcglobal:cbv:bizstep:, :disp:, :btt:, :sdt:, :er:) by its GS1 Web
// URI, as the CBV 2.0 event hash requires. Other strings are returned
// unchanged with ok false.
func CBVWebURI(s string) (string, bool) {
	if !strings.HasPrefix(s, "urn:epcglobal:cbv:") {
		return s, false
	}
	for _, v := range urnVocabularies {
		if strings.HasPrefix(s, v.info().urn) {
			return v.WebURI(s)
		}
	}
	return s, false
}

// CBVFormat is the GS1-CBV-XML-Format request header: the form in which
// CBV values are returned.
type CBVFormat int

// The GS1-CBV-XML-Format values.
const (
	CBVNoPreference   CBVFormat = iota // No_Preference: the server chooses
	CBVAlwaysWebURI                    // Always_Web_URI
	CBVAlwaysURN                       // Always_URN
	CBVNeverTranslate                  // Never_Translates: as captured
)

var cbvFormatNames = []string{"No_Preference", "Always_Web_URI", "Always_URN", "Never_Translates"}

// String returns the header value.
func (f CBVFormat) String() string { return headerName("CBVFormat", cbvFormatNames, int(f)) }

// ParseCBVFormat reads a GS1-CBV-XML-Format header value; an absent (empty)
// header means No_Preference.
func ParseCBVFormat(h string) (CBVFormat, error) {
	i, err := parseHeader("GS1-CBV-XML-Format", cbvFormatNames, int(CBVNoPreference), h)
	return CBVFormat(i), err
}

func headerName(typ string, names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("%s(%d)", typ, i)
	}
	return names[i]
}

// parseHeader finds h among a header's values; empty means def.
func parseHeader(header string, names []string, def int, h string) (int, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return def, nil
	}
	if i := slices.Index(names, h); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("epc: unknown %s %q (want one of %s)", header, h, strings.Join(names, ", "))
}

// Format returns s in the form f asks for: Always_Web_URI gives the Web URI,
// Always_URN the URN where the value has one (else the Web URI is kept);
// No_Preference and Never_Translates return s as captured.
func (v Vocabulary) Format(s string, f CBVFormat) string {
	switch f {
	case CBVAlwaysWebURI:
		out, _ := v.WebURI(s)
		return out
	case CBVAlwaysURN:
		if out, ok := v.URN(s); ok {
			return out
		}
		out, _ := v.WebURI(s)
		return out
	}
	return s
}
