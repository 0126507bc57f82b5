package xmlbind

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// corpus is the shared EPCIS reference material, read in place (repo root is four levels up).
const corpus = "../../../../shared/epcis"

func corpusPath(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{corpus}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference corpus missing: %v", err)
	}
	return p
}

// normaliser brings two JSON bindings of the same EPCIS data to one form.
// It removes only differences the standard declares insignificant:
//
//  1. Key order: JSON objects are unordered (RFC 8259 §4; the EPCIS JSON
//     schema constrains names, not order). Compared as maps.
//  2. Number representation: quantity is xsd:decimal and the sensor values
//     xsd:double in the EPCIS context, so 200, 200.0 and 2E2 are one value.
//     Compared as exact rationals.
//  3. Timestamps: eventTime, recordTime, declarationTime, time, startTime,
//     endTime and creationDate are typed xsd:dateTimeStamp / xsd:dateTime in
//     the context, whose values are instants: "13:05:00Z" and
//     "14:05:00.000+01:00" are equal (an event's local offset is
//     eventTimeZoneOffset's job). Compared in UTC.
//  4. Prefixes: JSON-LD gives a compact IRI ("ext1:int") the meaning of its
//     expansion, so which prefix names a namespace is not significant. Keys,
//     and CURIE values of @vocab fields, are compared expanded through the
//     EPCIS context and the document's own @context (document and event
//     level together: hoisting an event-level definition changes no expansion
//     when no prefix is bound twice, which is checked). @context itself is then
//     not compared, beyond holding the EPCIS context URL (versioned or not:
//     both name the 2.0 context). Rebinding a prefix the protected EPCIS context
//     defines is a JSON-LD error and shows up as a difference.
//  5. Vocabulary values: the context types bizStep, disposition,
//     persistentDisposition set/unset, errorDeclaration reason, the
//     bizTransaction/source/destination type and sensorReport type, exception
//     and component as @vocab, so the bare term "receiving", the CURIE
//     "cbv:BizStep-receiving" and the IRI
//     "https://ref.gs1.org/cbv/BizStep-receiving" expand to the same IRI.
//     Compared expanded, with the term definitions read from the context file.
//     URN forms are left alone: JSON-LD does not equate them.
//  6. Document fields the XML twin does not carry: "id" (the XML
//     EPCISDocument has no such attribute) always; "sender", "receiver" and
//     "instanceIdentifier" (SBDH fields in XML) when the converted side has
//     none, i.e. when the XML twin has no SBDH.
//  7. Sets: arrays the context declares "@container": "@set" (epcList,
//     quantity lists, bizTransactionList, sourceList, destinationList,
//     sensorElementList, certificationInfo, correctiveEventIDs, set/unset) are
//     unordered in JSON-LD; compared sorted.
type normaliser struct {
	vocabFields map[string]map[string]string // field → term → IRI
	prefixes    map[string]string            // context prefixes (cbv, gs1, ...)
}

var dateTimeFields = map[string]bool{
	"eventTime": true, "recordTime": true, "declarationTime": true, "time": true,
	"startTime": true, "endTime": true, "creationDate": true,
}

var setFields = map[string]bool{
	"epcList": true, "childEPCs": true, "inputEPCList": true, "outputEPCList": true,
	"quantityList": true, "childQuantityList": true, "inputQuantityList": true, "outputQuantityList": true,
	"bizTransactionList": true, "sourceList": true, "destinationList": true, "sensorElementList": true,
	"certificationInfo": true, "correctiveEventIDs": true, "set": true, "unset": true,
}

// newNormaliser reads the term definitions of the @vocab-typed fields from the
// EPCIS context; the "type" terms of bizTransaction, source/destination and
// sensorReport are told apart by the parent key.
func newNormaliser(t testing.TB) *normaliser {
	t.Helper()
	raw, err := os.ReadFile(corpusPath(t, "gs1", "epcis-context.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]any `json:"@context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	n := &normaliser{vocabFields: map[string]map[string]string{}, prefixes: map[string]string{}}
	for k, v := range doc.Context {
		if s, ok := v.(string); ok && strings.ContainsAny(s[len(s)-1:], "/#:") {
			n.prefixes[k] = s
		}
	}
	var walk func(parent string, ctx any)
	walk = func(parent string, ctx any) {
		switch c := ctx.(type) {
		case []any:
			for _, e := range c {
				walk(parent, e)
			}
		case map[string]any:
			for k, v := range c {
				def, ok := v.(map[string]any)
				if !ok {
					continue
				}
				field := k
				if k == "type" {
					field = parent + ".type"
				}
				if def["@type"] == "@vocab" || k == "persistentDisposition" {
					terms := map[string]string{}
					if sub, ok := def["@context"].(map[string]any); ok {
						collectTerms(sub, terms)
					}
					if sub, ok := def["@context"].([]any); ok {
						for _, s := range sub {
							if m, ok := s.(map[string]any); ok {
								collectTerms(m, terms)
							}
						}
					}
					if k == "persistentDisposition" {
						n.vocabFields["set"], n.vocabFields["unset"] = terms, terms
					} else if len(terms) > 0 || n.vocabFields[field] == nil {
						n.vocabFields[field] = terms
					}
				}
				if sub, ok := def["@context"]; ok {
					walk(k, sub)
				}
			}
		}
	}
	walk("", doc.Context)
	for _, f := range []string{"bizStep", "disposition", "reason", "bizTransactionList.type", "sourceList.type", "destinationList.type", "sensorReport.type", "exception", "component"} {
		if len(n.vocabFields[f]) == 0 {
			t.Fatalf("no terms for %s in the EPCIS context", f)
		}
	}
	return n
}

func collectTerms(m map[string]any, terms map[string]string) {
	for k, v := range m {
		if s, ok := v.(string); ok && !strings.HasPrefix(k, "@") && strings.Contains(s, ":") && k != "epcis" {
			terms[k] = s
		}
	}
}

// expandIRI is JSON-LD expansion of a compact IRI; anything else is returned as is.
func expandIRI(prefixes map[string]string, v string) string {
	if p, rest, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(rest, "//") {
		if ns, ok := prefixes[p]; ok {
			return ns + rest
		}
	}
	return v
}

// document normalises a whole JSON document (or single event).
func (n *normaliser) document(t testing.TB, raw []byte, dropAbsent map[string]bool) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("top level is %T", v)
	}
	prefixes := maps.Clone(n.prefixes)
	var problems []any
	var hasURL bool
	var collect func(ctx any)
	collect = func(ctx any) {
		switch c := ctx.(type) {
		case string:
			if c == ContextURL || c == "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld" {
				hasURL = true
			}
		case []any:
			for _, e := range c {
				collect(e)
			}
		case map[string]any:
			for p, v := range c {
				iri, _ := v.(string)
				if std, ok := n.prefixes[p]; ok {
					if iri != std {
						problems = append(problems, "@context rebinds protected prefix "+p+" to "+iri)
					}
					continue
				}
				if prev, ok := prefixes[p]; ok && prev != iri {
					problems = append(problems, "@context binds "+p+" to both "+prev+" and "+iri)
				}
				prefixes[p] = iri
			}
		}
	}
	collect(doc["@context"])
	delete(doc, "@context")
	for _, e := range eventsOf(doc) {
		if m, ok := e.(map[string]any); ok {
			collect(m["@context"])
			delete(m, "@context")
		}
	}
	if !hasURL {
		problems = append(problems, "@context lacks the EPCIS context URL")
	}
	delete(doc, "id")
	for k := range dropAbsent {
		delete(doc, k)
	}
	out := n.value(prefixes, "", "", doc).(map[string]any)
	if problems != nil {
		sort.Slice(problems, func(i, j int) bool { return problems[i].(string) < problems[j].(string) })
		out["@context problems"] = problems
	}
	return out
}

func eventsOf(doc map[string]any) []any {
	if body, ok := doc["epcisBody"].(map[string]any); ok {
		if l, ok := body["eventList"].([]any); ok {
			return l
		}
		if qr, ok := body["queryResults"].(map[string]any); ok {
			if rb, ok := qr["resultsBody"].(map[string]any); ok {
				l, _ := rb["eventList"].([]any)
				return l
			}
		}
	}
	return nil
}

// value normalises v found under key, whose parent object was under parent.
func (n *normaliser) value(prefixes map[string]string, parent, key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[expandIRI(prefixes, k)] = n.value(prefixes, key, k, e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			// Array items keep the array's key as their context.
			out[i] = n.value(prefixes, parent, key, e)
		}
		if setFields[key] {
			sort.Slice(out, func(i, j int) bool { return canonical(out[i]) < canonical(out[j]) })
			return set(out)
		}
		return out
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		if !ok {
			return "bad number " + string(v)
		}
		return "number:" + r.RatString()
	case string:
		if dateTimeFields[key] {
			if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return "instant:" + ts.UTC().Format(time.RFC3339Nano)
			}
		}
		field := key
		if key == "type" && parent != "" {
			field = parent + ".type"
		}
		if terms, ok := n.vocabFields[field]; ok {
			if iri, ok := terms[v]; ok {
				v = iri
			}
			return expandIRI(prefixes, v)
		}
		return v
	}
	return v
}

// set is a normalised array whose order is not significant, sorted.
type set []any

func canonical(v any) string {
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}
