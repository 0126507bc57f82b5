package epcis

import (
	"encoding/json"
	"strings"
)

// Standard is the canonical forms of GS1's standards: identifiers as GS1
// Digital Link URIs, CBV values as GS1 Web URIs, extension fields as IRIs
// under the event's JSON-LD context.
var Standard Canon = standardCanon{}

type standardCanon struct{}

func (standardCanon) ID(s string) string { return s }

func (standardCanon) Vocab(kind, s string) string { return s }

func (standardCanon) Field(ctx json.RawMessage, name string) (string, bool) {
	prefix, local, ok := strings.Cut(name, ":")
	if !ok || local == "" {
		return "", false
	}
	_ = prefix
	return name, true
}
