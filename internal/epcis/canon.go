package epcis

import (
	"encoding/json"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/eventhash"
	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// The index and the queries compare values in GS1's canonical forms:
// identifiers as the constrained GS1 Digital Link URIs of the CBV event
// hash (epc.Canonical), standard CBV values as GS1 Web URIs (other values
// as they are), extension fields as IRIs under the event's JSON-LD context.

// vocabularies maps the kinds canonicalVocab takes to CBV vocabularies.
var vocabularies = map[string]epc.Vocabulary{
	"bizStep":            epc.BizStep,
	"disposition":        epc.Disposition,
	"bizTransactionType": epc.BizTransactionType,
	"sourceDestType":     epc.SourceDestType,
	"errorReason":        epc.ErrorReason,
	"sensorType":         epc.MeasurementType,
}

// canonicalVocab is the canonical form of a CBV value of a kind
// ("bizStep", "disposition", "bizTransactionType", "sourceDestType",
// "errorReason", "sensorType").
func canonicalVocab(kind, s string) string {
	if v, ok := vocabularies[kind]; ok {
		if uri, ok := v.WebURI(s); ok {
			return uri
		}
	}
	return s
}

// extensionIRI is the IRI of an extension field name under an event's
// JSON-LD context; false for a standard EPCIS term, or a name the context
// does not define.
func extensionIRI(ctx ld.Context, name string) (string, bool) {
	if standard[name] {
		return "", false
	}
	iri, ok := ctx.Expand(name)
	if !ok || iri == "" || iri[0] == '@' {
		return "", false
	}
	return iri, true
}

// HashStored is the CBV 2.0 event hash of an event as stored: read under
// the "@context" it carries.
func HashStored(stored json.RawMessage) (string, error) {
	return eventhash.Hash(stored, ld.Standard())
}
