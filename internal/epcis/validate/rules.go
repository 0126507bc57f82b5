package validate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rules of EPCIS 2.0 and CBV 2.0 that the GS1 JSON Schema does not
// state. Each looks only at values of the right JSON type: a mistyped
// value is the schema's problem, reported once.

// epcisContexts are the published URLs of the EPCIS 2.0 JSON-LD context.
var epcisContexts = []string{
	epcisContextURL,
	"https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
	"https://gs1.github.io/EPCIS/epcis-context.jsonld",
}

// contextRule: the @context, when present and well formed, must include
// the EPCIS 2.0 context, without which the bare CBV words and EPCIS field
// names have no meaning in JSON-LD.
func (ps *problems) contextRule(owner map[string]any, base string, event int, id string) {
	ctx, ok := owner["@context"]
	if !ok {
		return
	}
	var entries []any
	switch c := ctx.(type) {
	case string:
		entries = []any{c}
	case []any:
		entries = c
	default:
		return // an inline object: nothing to recognise it by
	}
	for _, e := range entries {
		if s, ok := e.(string); ok {
			if rest, ok := strings.CutPrefix(s, "http://"); ok {
				s = "https://" + rest
			}
			if slices.Contains(epcisContexts, s) {
				return
			}
		}
	}
	ps.add(event, id, base+"/@context", fmt.Sprintf("@context does not include the EPCIS 2.0 context %q", epcisContextURL))
}

// documentRules checks the envelope of an EPCISDocument.
func (ps *problems) documentRules(doc map[string]any) {
	ps.contextRule(doc, "", -1, "")
}

// eventRules checks one event at pointer base.
func (ps *problems) eventRules(e map[string]any, base string, event int, id string) {
	add := func(msg string, tokens ...string) { ps.add(event, id, pointer(base, tokens...), msg) }

	cbvTerm(e["bizStep"], bizStepVocabulary, func(msg string) { add(msg, "bizStep") })
	cbvTerm(e["disposition"], dispositionVocabulary, func(msg string) { add(msg, "disposition") })
	if pd, ok := e["persistentDisposition"].(map[string]any); ok {
		for _, key := range []string{"set", "unset"} {
			list, _ := pd[key].([]any)
			for i, d := range list {
				cbvTerm(d, dispositionVocabulary, func(msg string) { add(msg, "persistentDisposition", key, strconv.Itoa(i)) })
			}
		}
	}

	for _, field := range []string{"readPoint", "bizLocation"} {
		loc, _ := e[field].(map[string]any)
		for key := range loc {
			if key != "id" && !isAbsoluteURI(key) {
				add(fmt.Sprintf(`%s is not a field of %s; a user extension field must be namespaced, e.g. "example:%s" with "example" declared in @context`, quoteName(key), field, quoteName(key)), field, key)
			}
		}
	}

	for _, field := range []string{"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"} {
		list, _ := e[field].([]any)
		for i, q := range list {
			q, _ := q.(map[string]any)
			if _, hasUOM := q["uom"]; hasUOM && q["quantity"] == nil {
				add("uom is given without quantity: a unit of measure qualifies a quantity", field, strconv.Itoa(i), "uom")
			}
		}
	}

	elements, _ := e["sensorElementList"].([]any)
	for i, el := range elements {
		el, _ := el.(map[string]any)
		at := []string{"sensorElementList", strconv.Itoa(i)}
		if md, ok := el["sensorMetadata"].(map[string]any); ok {
			sensorTimes(md, func(msg string, tokens ...string) {
				add(msg, append(append(at, "sensorMetadata"), tokens...)...)
			})
		}
		reports, _ := el["sensorReport"].([]any)
		for j, r := range reports {
			r, _ := r.(map[string]any)
			sensorReport(r, func(msg string, tokens ...string) {
				add(msg, append(append(at, "sensorReport", strconv.Itoa(j)), tokens...)...)
			})
		}
	}
}

// cbvTerm checks a bizStep or disposition written as a GS1 Web URI
// (https://ref.gs1.org/cbv/BizStep-shipping) or CBV CURIE
// (cbv:BizStep-shipping): it must name a standard term, since the CBV
// namespace holds nothing else. Bare words and the URN forms are the
// schema's to judge; URIs of other vocabularies are free.
func cbvTerm(v any, vocab cbvVocabulary, report func(string)) {
	s, ok := v.(string)
	if !ok {
		return
	}
	var term string
	switch {
	case strings.HasPrefix(s, vocab.webPrefix):
		term = strings.TrimPrefix(s, vocab.webPrefix)
	case strings.HasPrefix(s, "http://"+strings.TrimPrefix(vocab.webPrefix, "https://")):
		term = strings.TrimPrefix(s, "http://"+strings.TrimPrefix(vocab.webPrefix, "https://"))
	case strings.HasPrefix(s, vocab.curiePrefix):
		term = strings.TrimPrefix(s, vocab.curiePrefix)
	default:
		return
	}
	if !vocab.terms[term] {
		report(fmt.Sprintf("%s %s names %q in the CBV vocabulary, which has no such term; use a standard %s or a URI of your own vocabulary",
			vocab.field, quoteValue(s), term, vocab.field))
	}
}

// rec20 is the form of a UN/CEFACT Recommendation 20 unit code, as the
// schema states it for quantities.
var rec20 = regexp.MustCompile(`^[A-Z0-9]{2,3}$`)

// sensorReport checks the consistency of one sensor report (EPCIS 2.0
// §7.3.7.4).
func sensorReport(r map[string]any, report func(msg string, tokens ...string)) {
	if uom, ok := r["uom"].(string); ok && !rec20.MatchString(uom) {
		report(fmt.Sprintf("uom %s is not a UN/CEFACT Rec. 20 unit code (2 or 3 capital letters or digits, e.g. CEL)", quoteValue(uom)), "uom")
	}
	minV, hasMin := number(r["minValue"])
	maxV, hasMax := number(r["maxValue"])
	if hasMin && hasMax && minV > maxV {
		report(fmt.Sprintf("minValue %v is greater than maxValue %v", r["minValue"], r["maxValue"]), "minValue")
	}
	if rank, ok := number(r["percRank"]); ok && (rank < 0 || rank > 100) {
		report(fmt.Sprintf("percRank %v is not a percentile rank between 0 and 100", r["percRank"]), "percRank")
	}
	if sd, ok := number(r["sDev"]); ok && sd < 0 {
		report(fmt.Sprintf("sDev %v is negative: a standard deviation cannot be", r["sDev"]), "sDev")
	}
	if hex, ok := r["hexBinaryValue"].(string); ok && len(hex)%2 != 0 {
		report("hexBinaryValue has an odd number of hexadecimal digits: each byte takes two", "hexBinaryValue")
	}
}

// sensorTimes checks that a sensor's measurement interval is not
// reversed.
func sensorTimes(md map[string]any, report func(msg string, tokens ...string)) {
	start, okStart := timeValue(md["startTime"])
	end, okEnd := timeValue(md["endTime"])
	if okStart && okEnd && end.Before(start) {
		report("endTime is before startTime", "endTime")
	}
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func timeValue(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
