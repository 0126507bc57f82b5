// Package xmlbind converts between the EPCIS 2.0 XML binding and the JSON/JSON-LD
// binding the service keeps internally.
//
// DocumentToJSON reads what a client may capture or send as XML (an
// EPCISDocument, a single event, or an EPCISQueryDocument) and gives the JSON
// the JSON binding would carry for it. WriteXML writes a JSON EPCISQueryDocument
// (or EPCISDocument, or single event) in the XML binding, for query answers.
//
// The mapping follows the EPCIS 2.0 standard's JSON binding and the
// openepcis document converter where the standard leaves detail open:
//   - standard fields keep their names; lists (epcList, bizTransactionList,
//     sensorElementList, sensorReport, ...) become arrays, quantities and
//     sensor values numbers, booleanValue a boolean;
//   - CBV and GS1 vocabulary values in any of their URN, CURIE or Web URI forms
//     become the context's bare terms ("urn:epcglobal:cbv:bizstep:receiving" →
//     "receiving"), and back to the URN (or "gs1:" CURIE) in XML;
//   - user extension elements anywhere become "prefix:localName" keys; an
//     element with children becomes an object, text a string, a repeated element
//     an array; namespace-qualified attributes become "prefix:name" keys,
//     unqualified ones "@name", and the text of an element with attributes "value";
//   - the EPCIS 1.2 wrappers <extension> and <baseExtension> are flattened into
//     their parent;
//   - the namespaces used by extensions (and as CURIE prefixes of vocabulary
//     values) are listed in @context after the EPCIS context URL.
package xmlbind

import (
	"errors"
	"io"
)

// Errors. Every error from this package wraps one of them, so a caller maps
// them to a status without reading messages; the message names the element
// and line (XML) or the field path (JSON).
var (
	// ErrInvalid marks input that is not an EPCIS document this package can convert.
	ErrInvalid = errors.New("xmlbind: invalid document")
	// ErrTooLarge marks input beyond Limits.
	ErrTooLarge = errors.New("xmlbind: document exceeds limits")
)

// Limits bound the work one document may cause. Zero fields take the defaults.
type Limits struct {
	MaxBytes    int64 // input size; default 16 MiB
	MaxDepth    int   // element (or JSON value) nesting; default 64
	MaxElements int   // XML elements in one document; default 1 << 20
}

// Default limits, generous for any real EPCIS document yet bounded for hostile ones.
const (
	DefaultMaxBytes    = 16 << 20
	DefaultMaxDepth    = 64
	DefaultMaxElements = 1 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	return l
}

// ContextURL is the EPCIS 2.0 JSON-LD context every converted document starts its @context with.
const ContextURL = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"

// XML namespaces of the EPCIS bindings.
const (
	NamespaceEPCIS = "urn:epcglobal:epcis:xsd:2"       // EPCISDocument and events
	NamespaceQuery = "urn:epcglobal:epcis-query:xsd:2" // EPCISQueryDocument

	nsEPCIS1 = "urn:epcglobal:epcis:xsd:1" // EPCIS 1.x, accepted on input
	nsQuery1 = "urn:epcglobal:epcis-query:xsd:1"
	nsSBDH   = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
	nsXSI    = "http://www.w3.org/2001/XMLSchema-instance"
	nsCBVMDA = "urn:epcglobal:cbv:mda" // the CBV master-data namespace as XML writes it
)

// contextPrefixes are the prefixes the EPCIS context defines. The context is
// protected, so a document cannot rebind them: an XML prefix of that name
// bound elsewhere is renamed, and these namespaces never enter @context.
var contextPrefixes = map[string]string{
	"epcis":   "https://ref.gs1.org/epcis/",
	"cbv":     "https://ref.gs1.org/cbv/",
	"cbvmda":  "urn:epcglobal:cbv:mda:",
	"gs1":     "https://gs1.org/voc/",
	"rdfs":    "http://www.w3.org/2000/01/rdf-schema#",
	"owl":     "http://www.w3.org/2002/07/owl#",
	"xsd":     "http://www.w3.org/2001/XMLSchema#",
	"dcterms": "http://purl.org/dc/terms/",
}

// DocumentToJSON converts an XML EPCISDocument, EPCISQueryDocument or single
// EPCIS event (as POST /events carries) to its JSON binding: a JSON object
// with "@context" and "type" ("EPCISDocument", "EPCISQueryDocument" or the
// event type). It checks structure, not EPCIS rules: a missing eventTime or an
// unknown action pass through for validation to report.
func DocumentToJSON(r io.Reader, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	root, err := parse(r, lim)
	if err != nil {
		return nil, err
	}
	c := newToJSON()
	v, err := c.root(root)
	if err != nil {
		return nil, err
	}
	return c.encode(v), nil
}
