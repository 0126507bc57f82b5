package epcis

import (
	"encoding/json"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/eventhash"
	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// Standard is the canonical forms of GS1's standards: identifiers as the
// constrained GS1 Digital Link URIs of the CBV event hash, standard CBV
// values as GS1 Web URIs (other values as they are), extension fields as
// IRIs under the event's JSON-LD context.
var Standard Canon = standardCanon{}

type standardCanon struct{}

func (standardCanon) ID(s string) string { return epc.Canonical(s) }

// vocabularies maps the kinds Canon.Vocab takes to CBV vocabularies.
var vocabularies = map[string]epc.Vocabulary{
	"bizStep":            epc.BizStep,
	"disposition":        epc.Disposition,
	"bizTransactionType": epc.BizTransactionType,
	"sourceDestType":     epc.SourceDestType,
	"errorReason":        epc.ErrorReason,
	"sensorType":         epc.MeasurementType,
}

func (standardCanon) Vocab(kind, s string) string {
	if v, ok := vocabularies[kind]; ok {
		if uri, ok := v.WebURI(s); ok {
			return uri
		}
	}
	return s
}

func (standardCanon) Field(ctx ld.Context, name string) (string, bool) {
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
