package epcis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/epcis/epc"
)

// ContextURL is the EPCIS 2.0 JSON-LD context.
const ContextURL = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"

// Formats are how an answer writes identifiers and CBV values (the
// GS1-EPC-Format and GS1-CBV-XML-Format headers).
type Formats struct {
	EPC epc.EPCFormat
	CBV epc.CBVFormat
}

// Format writes a stored event for an answer: its recordTime (the time the
// store recorded it; a captured one is replaced), identifiers and CBV
// values in the formats asked for, everything else as captured.
func Format(stored json.RawMessage, recordTime time.Time, f Formats) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(stored))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("epcis: stored event: %w", err)
	}
	ev["recordTime"] = recordTime.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	ids := func(v any) any { return mapStrings(v, func(s string) string { return epc.FormatEPC(s, f.EPC) }) }
	// EPC lists are sets: two forms of one EPC written in one form are one.
	epcSet := func(v any) any { return distinct(ids(v)) }
	vocab := func(voc epc.Vocabulary) func(any) any {
		return func(v any) any { return mapStrings(v, func(s string) string { return voc.Format(s, f.CBV) }) }
	}
	rewrite(ev, map[string]func(any) any{
		"epcList": epcSet, "childEPCs": epcSet, "inputEPCList": epcSet, "outputEPCList": epcSet, "parentID": ids,
		"bizStep": vocab(epc.BizStep), "disposition": vocab(epc.Disposition),
	})
	for _, k := range []string{"readPoint", "bizLocation"} {
		if m, ok := ev[k].(map[string]any); ok {
			rewrite(m, map[string]func(any) any{"id": ids})
		}
	}
	for _, k := range []string{"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"} {
		eachObject(ev[k], func(m map[string]any) { rewrite(m, map[string]func(any) any{"epcClass": ids}) })
	}
	eachObject(ev["bizTransactionList"], func(m map[string]any) {
		rewrite(m, map[string]func(any) any{"type": vocab(epc.BizTransactionType)})
	})
	eachObject(ev["sourceList"], func(m map[string]any) {
		rewrite(m, map[string]func(any) any{"type": vocab(epc.SourceDestType), "source": ids})
	})
	eachObject(ev["destinationList"], func(m map[string]any) {
		rewrite(m, map[string]func(any) any{"type": vocab(epc.SourceDestType), "destination": ids})
	})
	if m, ok := ev["persistentDisposition"].(map[string]any); ok {
		rewrite(m, map[string]func(any) any{"set": vocab(epc.Disposition), "unset": vocab(epc.Disposition)})
	}
	if m, ok := ev["errorDeclaration"].(map[string]any); ok {
		rewrite(m, map[string]func(any) any{"reason": vocab(epc.ErrorReason)})
	}
	eachObject(ev["sensorElementList"], func(se map[string]any) {
		if md, ok := se["sensorMetadata"].(map[string]any); ok {
			rewrite(md, map[string]func(any) any{"deviceID": ids})
		}
		eachObject(se["sensorReport"], func(r map[string]any) {
			rewrite(r, map[string]func(any) any{"type": vocab(epc.MeasurementType), "deviceID": ids})
		})
	})
	return json.Marshal(ev)
}

func rewrite(m map[string]any, fields map[string]func(any) any) {
	for k, f := range fields {
		if v, ok := m[k]; ok {
			m[k] = f(v)
		}
	}
}

func eachObject(v any, f func(map[string]any)) {
	l, _ := v.([]any)
	for _, item := range l {
		if m, ok := item.(map[string]any); ok {
			f(m)
		}
	}
}

// distinct drops the repeated strings of a list, keeping the first.
func distinct(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	seen := make(map[string]bool, len(l))
	out := l[:0]
	for _, item := range l {
		if s, ok := item.(string); ok {
			if seen[s] {
				continue
			}
			seen[s] = true
		}
		out = append(out, item)
	}
	return out
}

// mapStrings applies f to a string or to the strings of a list.
func mapStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			if s, ok := item.(string); ok {
				out[i] = f(s)
			} else {
				out[i] = item
			}
		}
		return out
	}
	return v
}

// QueryDocument is an EPCISQueryDocument of the events of a query (each
// as Format wrote it, with its own "@context").
func QueryDocument(queryName string, events []json.RawMessage, created time.Time) (json.RawMessage, error) {
	if events == nil {
		events = []json.RawMessage{}
	}
	doc := map[string]any{
		"@context":      []string{ContextURL},
		"type":          "EPCISQueryDocument",
		"schemaVersion": "2.0",
		"creationDate":  created.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"epcisBody": map[string]any{"queryResults": map[string]any{
			"queryName":   queryName,
			"resultsBody": map[string]any{"eventList": events},
		}},
	}
	return json.Marshal(doc)
}
