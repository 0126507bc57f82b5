package xmlbind

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// toJSON carries the namespace bookkeeping of one XML → JSON conversion.
type toJSON struct {
	prefixOf map[string]string // extension namespace → JSON prefix
	nsOf     map[string]string // JSON prefix → extension namespace
	order    []string          // prefixes in first-use order, for @context
}

func newToJSON() *toJSON {
	return &toJSON{prefixOf: map[string]string{}, nsOf: map[string]string{}}
}

func isEPCISSpace(ns string) bool {
	switch ns {
	case "", NamespaceEPCIS, NamespaceQuery, nsEPCIS1, nsQuery1:
		return true
	}
	return false
}

var eventTypes = map[string]bool{
	"ObjectEvent": true, "AggregationEvent": true, "TransactionEvent": true,
	"TransformationEvent": true, "AssociationEvent": true,
}

func invalid(n *node, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: <%s>: %s", ErrInvalid, n.line, n.name(), fmt.Sprintf(format, args...))
}

// root dispatches on the document element.
func (c *toJSON) root(n *node) (object, error) {
	switch {
	case n.local == "EPCISDocument" && (n.space == NamespaceEPCIS || n.space == nsEPCIS1 || n.space == ""):
		return c.document(n, "EPCISDocument")
	case n.local == "EPCISQueryDocument" && (n.space == NamespaceQuery || n.space == nsQuery1 || n.space == ""):
		return c.document(n, "EPCISQueryDocument")
	case eventTypes[n.local] && isEPCISSpace(n.space):
		return c.event(n)
	}
	return object{}, invalid(n, "not an EPCISDocument, EPCISQueryDocument or EPCIS event")
}

// document converts an EPCISDocument or EPCISQueryDocument.
func (c *toJSON) document(n *node, typ string) (object, error) {
	o := newObject(member{"type", typ})
	for _, a := range n.attrs {
		if a.space == "" && (a.local == "schemaVersion" || a.local == "creationDate") {
			o.set(a.local, strings.TrimSpace(a.value))
		}
	}
	var (
		body     object
		haveBody bool
	)
	for _, ch := range n.children {
		if !isEPCISSpace(ch.space) {
			if err := c.addExtension(&o, ch); err != nil {
				return object{}, err
			}
			continue
		}
		switch ch.local {
		case "EPCISHeader":
			if err := c.header(ch, &o); err != nil {
				return object{}, err
			}
		case "EPCISBody":
			if haveBody {
				return object{}, invalid(ch, "repeated")
			}
			haveBody = true
			var err error
			if typ == "EPCISDocument" {
				body, err = c.body(ch)
			} else {
				body, err = c.queryBody(ch)
			}
			if err != nil {
				return object{}, err
			}
		case "extension":
			// The document-level 1.2 extension point carries nothing the JSON binding has.
		default:
			return object{}, invalid(ch, "unknown element in %s", typ)
		}
	}
	if !haveBody {
		return object{}, invalid(n, "no EPCISBody")
	}
	o.set("epcisBody", body)
	return o, nil
}

// body converts an EPCISDocument's EPCISBody.
func (c *toJSON) body(n *node) (object, error) {
	var events []any
	for _, ch := range n.children {
		switch {
		case !isEPCISSpace(ch.space):
			return object{}, invalid(ch, "extension elements in EPCISBody have no JSON form")
		case ch.local == "EventList":
			evs, err := c.eventList(ch)
			if err != nil {
				return object{}, err
			}
			events = append(events, evs...)
		case ch.local == "extension":
			// 1.2 body extension point: nothing the JSON binding carries.
		default:
			return object{}, invalid(ch, "unknown element in EPCISBody")
		}
	}
	if events == nil {
		events = []any{}
	}
	return newObject(member{"eventList", events}), nil
}

// queryBody converts an EPCISQueryDocument's EPCISBody, which must hold QueryResults.
func (c *toJSON) queryBody(n *node) (object, error) {
	var results *object
	for _, ch := range n.children {
		if ch.local != "QueryResults" || !isEPCISSpace(ch.space) {
			return object{}, invalid(ch, "only QueryResults is converted from an EPCISQueryDocument body")
		}
		if results != nil {
			return object{}, invalid(ch, "repeated")
		}
		r := newObject()
		results = &r
		for _, f := range ch.children {
			if !isEPCISSpace(f.space) {
				return object{}, invalid(f, "extension elements in QueryResults have no JSON form")
			}
			switch f.local {
			case "queryName", "subscriptionID":
				s, err := text(f)
				if err != nil {
					return object{}, err
				}
				if err := setOnce(results, f, f.local, s); err != nil {
					return object{}, err
				}
			case "resultsBody":
				rb, err := c.resultsBody(f)
				if err != nil {
					return object{}, err
				}
				if err := setOnce(results, f, "resultsBody", rb); err != nil {
					return object{}, err
				}
			case "extension":
			default:
				return object{}, invalid(f, "unknown element in QueryResults")
			}
		}
	}
	if results == nil {
		return object{}, invalid(n, "no QueryResults")
	}
	return newObject(member{"queryResults", *results}), nil
}

func (c *toJSON) resultsBody(n *node) (object, error) {
	var o object
	for _, ch := range n.children {
		switch {
		case isEPCISSpace(ch.space) && ch.local == "EventList":
			evs, err := c.eventList(ch)
			if err != nil {
				return object{}, err
			}
			if evs == nil {
				evs = []any{}
			}
			if err := setOnce(&o, ch, "eventList", evs); err != nil {
				return object{}, err
			}
		case isEPCISSpace(ch.space) && ch.local == "VocabularyList":
			vl, err := c.vocabularyList(ch)
			if err != nil {
				return object{}, err
			}
			if err := setOnce(&o, ch, "vocabularyList", vl); err != nil {
				return object{}, err
			}
		default:
			return object{}, invalid(ch, "unknown element in resultsBody")
		}
	}
	return o, nil
}

// eventList converts the events of an EventList, unwrapping the 1.2
// <extension> that held TransformationEvent and AssociationEvent.
func (c *toJSON) eventList(n *node) ([]any, error) {
	var events []any
	for _, ch := range n.children {
		switch {
		case !isEPCISSpace(ch.space):
			return nil, invalid(ch, "unknown event type")
		case eventTypes[ch.local]:
			ev, err := c.event(ch)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		case ch.local == "extension":
			evs, err := c.eventList(ch)
			if err != nil {
				return nil, err
			}
			events = append(events, evs...)
		case ch.local == "QuantityEvent":
			return nil, invalid(ch, "QuantityEvent was withdrawn in EPCIS 2.0 and has no JSON form")
		default:
			return nil, invalid(ch, "unknown event type")
		}
	}
	return events, nil
}

// event converts one event element.
func (c *toJSON) event(n *node) (object, error) {
	o := newObject(member{"type", n.local})
	for _, a := range n.attrs {
		// schemaVersion and creationDate on a bare event describe the message, not the event.
		if a.space != "" && a.space != nsXSI && a.space != xmlnsSpace {
			o.add(c.key(a.space, a.prefix, a.local), a.value)
		}
	}
	if err := c.eventFields(n, &o); err != nil {
		return object{}, err
	}
	return o, nil
}

// eventFields adds n's children to o; it recurses into the 1.2 wrappers so
// their content lands at event level, as in the 2.0 bindings.
func (c *toJSON) eventFields(n *node, o *object) error {
	if err := noText(n); err != nil {
		return err
	}
	for _, ch := range n.children {
		if !isEPCISSpace(ch.space) {
			if err := c.addExtension(o, ch); err != nil {
				return err
			}
			continue
		}
		var (
			v   any
			err error
		)
		switch ch.local {
		case "extension", "baseExtension":
			if err := c.eventFields(ch, o); err != nil {
				return err
			}
			continue
		case "eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "action", "parentID", "transformationID":
			v, err = text(ch)
		case "certificationInfo": // repeatable: a string, or an array when repeated
			s, err := text(ch)
			if err != nil {
				return err
			}
			o.add("certificationInfo", s)
			continue
		case "bizStep":
			v, err = c.vocabText(ch, bizStepVocab)
		case "disposition":
			v, err = c.vocabText(ch, dispositionVocab)
		case "errorDeclaration":
			v, err = c.errorDeclaration(ch)
		case "epcList", "childEPCs", "inputEPCList", "outputEPCList":
			var epcs []any
			epcs, err = c.list(ch, "epc", func(e *node) (any, error) { return text(e) })
			v = distinct(epcs)
		case "quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList":
			v, err = c.list(ch, "quantityElement", c.quantityElement)
		case "readPoint", "bizLocation":
			v, err = c.location(ch)
		case "bizTransactionList":
			v, err = c.list(ch, "bizTransaction", func(e *node) (any, error) {
				return c.typedID(e, "bizTransaction", bizTransactionTypeVocab)
			})
		case "sourceList":
			v, err = c.list(ch, "source", func(e *node) (any, error) { return c.typedID(e, "source", sourceDestTypeVocab) })
		case "destinationList":
			v, err = c.list(ch, "destination", func(e *node) (any, error) { return c.typedID(e, "destination", sourceDestTypeVocab) })
		case "sensorElementList":
			v, err = c.list(ch, "sensorElement", c.sensorElement)
		case "persistentDisposition":
			v, err = c.persistentDisposition(ch)
		case "ilmd":
			v, err = c.extensionContainer(ch)
		default:
			return invalid(ch, "unknown element in %s (user extensions need a namespace)", n.local)
		}
		if err != nil {
			return err
		}
		if err := setOnce(o, ch, ch.local, v); err != nil {
			return err
		}
	}
	return nil
}

func setOnce(o *object, n *node, key string, v any) error {
	if _, dup := o.get(key); dup {
		return invalid(n, "repeated")
	}
	o.set(key, v)
	return nil
}

// text is the trimmed text of an element that must have no child elements.
func text(n *node) (string, error) {
	if len(n.children) > 0 {
		return "", invalid(n.children[0], "unexpected inside <%s>", n.name())
	}
	return strings.TrimSpace(string(n.text)), nil
}

func noText(n *node) error {
	if strings.TrimSpace(string(n.text)) != "" {
		return invalid(n, "unexpected text %q", abbreviate(strings.TrimSpace(string(n.text))))
	}
	return nil
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// vocabText converts a vocabulary-valued element, noting any user CURIE prefix.
func (c *toJSON) vocabText(n *node, v vocab) (string, error) {
	s, err := text(n)
	if err != nil {
		return "", err
	}
	c.notePrefix(n, s)
	return v.compact(s), nil
}

// notePrefix adds to @context the XML prefix a vocabulary value is written
// with ("example:someSensorProperty"): JSON-LD expands such CURIEs through
// @context, so dropping the prefix would change the value's meaning.
func (c *toJSON) notePrefix(n *node, value string) {
	p, rest, ok := strings.Cut(value, ":")
	if !ok || p == "" || strings.HasPrefix(rest, "//") {
		return
	}
	if _, std := contextPrefixes[p]; std {
		return
	}
	ns, ok := n.scope.lookup(p)
	if !ok || isEPCISSpace(ns) || ns == nsXSI {
		return
	}
	if bound, ok := c.nsOf[p]; ok && bound != ns {
		return // the prefix already names another namespace here; the value keeps its text
	}
	c.bind(p, ns)
}

func (c *toJSON) bind(prefix, ns string) {
	if _, ok := c.nsOf[prefix]; !ok {
		c.nsOf[prefix] = ns
		c.order = append(c.order, prefix)
	}
	if _, ok := c.prefixOf[ns]; !ok {
		c.prefixOf[ns] = prefix
	}
}

// key is the JSON key of an extension element or attribute: "prefix:local",
// or the bare local name for one in no namespace. The prefix is the one the
// XML wrote where it can be: one the EPCIS context reserves, or bound to
// another namespace elsewhere in the document, gets a number appended; a
// default namespace gets "ns1", "ns2", ...
func (c *toJSON) key(ns, written, local string) string {
	if ns == "" {
		return local
	}
	if ns == nsCBVMDA || ns == contextPrefixes["cbvmda"] {
		return "cbvmda:" + local
	}
	for p, std := range contextPrefixes {
		if ns == std {
			return p + ":" + local
		}
	}
	if written != "" {
		for i := 0; ; i++ {
			p := written
			if i > 0 {
				p += strconv.Itoa(i)
			}
			if _, reserved := contextPrefixes[p]; reserved {
				continue
			}
			if bound, ok := c.nsOf[p]; !ok || bound == ns {
				c.bind(p, ns)
				return p + ":" + local
			}
		}
	}
	if p := c.prefixOf[ns]; p != "" {
		return p + ":" + local
	}
	for i := 1; ; i++ {
		p := "ns" + strconv.Itoa(i)
		if _, taken := c.nsOf[p]; !taken {
			c.bind(p, ns)
			return p + ":" + local
		}
	}
}

func (c *toJSON) addExtension(o *object, n *node) error {
	v, err := c.extension(n)
	if err != nil {
		return err
	}
	if v == "" {
		return nil
	}
	o.add(c.key(n.space, n.prefix, n.local), v)
	return nil
}

// extension converts a user extension element: text → string, children and
// attributes → object, repeated children → array.
func (c *toJSON) extension(n *node) (any, error) {
	o := newObject()
	for _, a := range n.attrs {
		switch a.space {
		case nsXSI, xmlnsSpace: // xsi:type, xsi:nil, xml:lang describe the XML, not the data
		case "":
			o.add("@"+a.local, a.value)
		default:
			o.add(c.key(a.space, a.prefix, a.local), a.value)
		}
	}
	for _, ch := range n.children {
		if err := c.addExtension(&o, ch); err != nil {
			return nil, err
		}
	}
	s := strings.TrimSpace(string(n.text))
	if len(o.members) == 0 {
		return s, nil
	}
	if s != "" {
		o.add("value", s)
	}
	return o, nil
}

// extensionContainer converts ilmd: only extensions, plus the 1.2 <extension> wrapper.
func (c *toJSON) extensionContainer(n *node) (object, error) {
	o := newObject()
	if err := c.extensionsInto(n, &o); err != nil {
		return object{}, err
	}
	return o, nil
}

// extensionsInto adds n's user extensions to o; n has no standard fields.
func (c *toJSON) extensionsInto(n *node, o *object) error {
	return c.fieldsWithExtensions(n, o, func(ch *node) (any, error) {
		return nil, invalid(ch, "unknown element in <%s> (user extensions need a namespace)", n.name())
	})
}

// list converts a list element whose items are all named item.
func (c *toJSON) list(n *node, item string, conv func(*node) (any, error)) ([]any, error) {
	if err := noText(n); err != nil {
		return nil, err
	}
	out := []any{}
	for _, ch := range n.children {
		if ch.local != item || !isEPCISSpace(ch.space) {
			return nil, invalid(ch, "unexpected in <%s>, which holds <%s> elements", n.name(), item)
		}
		v, err := conv(ch)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// distinct drops repeated EPCs from a list: EPCIS defines the EPC lists as
// sets (the JSON binding's schema says uniqueItems), so an XML list that
// names an EPC twice names it once.
func distinct(epcs []any) []any {
	seen := make(map[any]bool, len(epcs))
	out := epcs[:0]
	for _, e := range epcs {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

func (c *toJSON) errorDeclaration(n *node) (object, error) {
	o := newObject()
	err := c.fieldsWithExtensions(n, &o, func(ch *node) (any, error) {
		switch ch.local {
		case "declarationTime":
			return text(ch)
		case "reason":
			return c.vocabText(ch, errorReasonVocab)
		case "correctiveEventIDs":
			return c.list(ch, "correctiveEventID", func(e *node) (any, error) { return text(e) })
		}
		return object{}, invalid(ch, "unknown element in errorDeclaration")
	})
	return o, err
}

func (c *toJSON) location(n *node) (object, error) {
	o := newObject()
	err := c.fieldsWithExtensions(n, &o, func(ch *node) (any, error) {
		if ch.local == "id" {
			return text(ch)
		}
		return object{}, invalid(ch, "unknown element in <%s>", n.name())
	})
	return o, err
}

// fieldsWithExtensions converts an element of standard fields (each once)
// followed by user extensions, flattening the 1.2 <extension> wrapper.
func (c *toJSON) fieldsWithExtensions(n *node, o *object, field func(*node) (any, error)) error {
	if err := noText(n); err != nil {
		return err
	}
	for _, ch := range n.children {
		switch {
		case !isEPCISSpace(ch.space):
			if err := c.addExtension(o, ch); err != nil {
				return err
			}
		case ch.local == "extension":
			if err := c.fieldsWithExtensions(ch, o, field); err != nil {
				return err
			}
		default:
			v, err := field(ch)
			if err != nil {
				return err
			}
			if err := setOnce(o, ch, ch.local, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// typedID converts bizTransaction, source and destination: the element text
// under key, the type attribute under "type".
func (c *toJSON) typedID(n *node, key string, v vocab) (object, error) {
	id, err := text(n)
	if err != nil {
		return object{}, err
	}
	o := newObject()
	for _, a := range n.attrs {
		if a.space == "" && a.local == "type" {
			t := strings.TrimSpace(a.value)
			c.notePrefix(n, t)
			o.set("type", v.compact(t))
		}
	}
	o.set(key, id)
	return o, nil
}

func (c *toJSON) quantityElement(n *node) (any, error) {
	o := newObject()
	err := c.fieldsWithExtensions(n, &o, func(ch *node) (any, error) {
		switch ch.local {
		case "epcClass", "uom":
			return text(ch)
		case "quantity":
			if nilled(ch) {
				return nil, nil
			}
			s, err := text(ch)
			if err != nil {
				return nil, err
			}
			num, err := decimal(s)
			if err != nil {
				return nil, invalid(ch, "%v", err)
			}
			return num, nil
		}
		return nil, invalid(ch, "unknown element in quantityElement")
	})
	if err != nil {
		return nil, err
	}
	if q, ok := o.get("quantity"); ok && q == nil {
		o = o.without("quantity") // xsi:nil: the JSON binding simply has none
	}
	return o, nil
}

func nilled(n *node) bool {
	for _, a := range n.attrs {
		if a.space == nsXSI && a.local == "nil" {
			v := strings.TrimSpace(a.value)
			return v == "true" || v == "1"
		}
	}
	return false
}

func (c *toJSON) persistentDisposition(n *node) (object, error) {
	if err := noText(n); err != nil {
		return object{}, err
	}
	o := newObject()
	for _, ch := range n.children {
		if !isEPCISSpace(ch.space) || (ch.local != "set" && ch.local != "unset") {
			return object{}, invalid(ch, "unexpected in persistentDisposition, which holds <set> and <unset>")
		}
		s, err := c.vocabText(ch, dispositionVocab)
		if err != nil {
			return object{}, err
		}
		prev, _ := o.get(ch.local)
		list, _ := prev.([]any)
		o.set(ch.local, append(list, s))
	}
	return o, nil
}

func (c *toJSON) sensorElement(n *node) (any, error) {
	if err := noText(n); err != nil {
		return nil, err
	}
	o := newObject()
	var reports []any
	for _, ch := range n.children {
		switch {
		case !isEPCISSpace(ch.space):
			if err := c.addExtension(&o, ch); err != nil {
				return nil, err
			}
		case ch.local == "sensorMetadata":
			md, err := c.sensorAttributes(ch, sensorMetadataAttrs)
			if err != nil {
				return nil, err
			}
			if err := setOnce(&o, ch, "sensorMetadata", md); err != nil {
				return nil, err
			}
		case ch.local == "sensorReport":
			r, err := c.sensorAttributes(ch, sensorReportAttrs)
			if err != nil {
				return nil, err
			}
			if reports == nil {
				o.set("sensorReport", nil) // keep the report list where the first report stood
			}
			reports = append(reports, r)
		case ch.local == "extension":
			if err := c.extensionsInto(ch, &o); err != nil {
				return nil, err
			}
		default:
			return nil, invalid(ch, "unknown element in sensorElement")
		}
	}
	if reports != nil {
		o.set("sensorReport", reports)
	}
	return o, nil
}

type attrKind int

const (
	attrString attrKind = iota
	attrNumber
	attrBoolean
	attrVocab
)

type attrSpec struct {
	kind  attrKind
	vocab vocab
}

var sensorMetadataAttrs = map[string]attrSpec{
	"time": {}, "startTime": {}, "endTime": {}, "deviceID": {}, "deviceMetadata": {},
	"rawData": {}, "dataProcessingMethod": {}, "bizRules": {},
}

var sensorReportAttrs = map[string]attrSpec{
	"type":         {kind: attrVocab, vocab: measurementTypeVocab},
	"exception":    {kind: attrVocab, vocab: sensorAlertVocab},
	"component":    {kind: attrVocab, vocab: componentVocab},
	"value":        {kind: attrNumber},
	"minValue":     {kind: attrNumber},
	"maxValue":     {kind: attrNumber},
	"meanValue":    {kind: attrNumber},
	"sDev":         {kind: attrNumber},
	"percRank":     {kind: attrNumber},
	"percValue":    {kind: attrNumber},
	"booleanValue": {kind: attrBoolean},
	"deviceID":     {}, "deviceMetadata": {}, "rawData": {}, "dataProcessingMethod": {}, "bizRules": {},
	"time": {}, "microorganism": {}, "chemicalSubstance": {}, "coordinateReferenceSystem": {},
	"stringValue": {}, "hexBinaryValue": {}, "uriValue": {}, "uom": {},
}

// sensorAttributes converts sensorMetadata or sensorReport, whose data sits in attributes.
func (c *toJSON) sensorAttributes(n *node, spec map[string]attrSpec) (object, error) {
	if err := noText(n); err != nil {
		return object{}, err
	}
	o := newObject()
	for _, a := range n.attrs {
		switch a.space {
		case nsXSI, xmlnsSpace:
			continue
		case "":
		default:
			o.add(c.key(a.space, a.prefix, a.local), a.value)
			continue
		}
		s, ok := spec[a.local]
		if !ok {
			return object{}, invalid(n, "unknown attribute %s (user attributes need a namespace)", a.local)
		}
		v := strings.TrimSpace(a.value)
		switch s.kind {
		case attrString:
			o.set(a.local, v)
		case attrVocab:
			c.notePrefix(n, v)
			o.set(a.local, s.vocab.compact(v))
		case attrNumber:
			num, err := decimal(v)
			if err != nil {
				return object{}, invalid(n, "attribute %s: %v", a.local, err)
			}
			o.set(a.local, num)
		case attrBoolean:
			switch v {
			case "true", "1":
				o.set(a.local, true)
			case "false", "0":
				o.set(a.local, false)
			default:
				return object{}, invalid(n, "attribute %s: %q is not a boolean", a.local, v)
			}
		}
	}
	for _, ch := range n.children {
		if isEPCISSpace(ch.space) {
			return object{}, invalid(ch, "unknown element in <%s>", n.name())
		}
		if err := c.addExtension(&o, ch); err != nil {
			return object{}, err
		}
	}
	return o, nil
}

// decimal turns an xsd:decimal or xsd:double lexical form into a JSON number,
// keeping its digits (no float rounding) wherever JSON's grammar allows.
func decimal(s string) (json.Number, error) {
	if _, err := strconv.ParseFloat(s, 64); err != nil && !isRangeErr(err) {
		return "", fmt.Errorf("%q is not a number", s)
	}
	t := strings.TrimPrefix(s, "+")
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	switch t {
	case "INF", "Infinity", "NaN", "inf", "infinity", "nan":
		return "", fmt.Errorf("%q has no JSON form", s)
	}
	if strings.HasPrefix(t, ".") {
		t = "0" + t
	}
	t = strings.Replace(t, ".e", ".0e", 1)
	t = strings.Replace(t, ".E", ".0E", 1)
	if strings.HasSuffix(t, ".") {
		t += "0"
	}
	// Leading zeros are fine in XML, not in JSON.
	for len(t) > 1 && t[0] == '0' && t[1] >= '0' && t[1] <= '9' {
		t = t[1:]
	}
	if neg {
		t = "-" + t
	}
	if !json.Valid([]byte(t)) {
		return "", fmt.Errorf("%q is not a number", s)
	}
	return json.Number(t), nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// header maps the SBDH sender, receiver and instance identifier and the
// master data to the JSON document fields.
func (c *toJSON) header(n *node, doc *object) error {
	for _, ch := range n.children {
		switch {
		case ch.space == nsSBDH && ch.local == "StandardBusinessDocumentHeader":
			for _, f := range ch.children {
				switch {
				case f.space != nsSBDH:
				case f.local == "Sender" || f.local == "Receiver":
					for _, id := range f.children {
						if id.space == nsSBDH && id.local == "Identifier" {
							s, err := text(id)
							if err != nil {
								return err
							}
							if err := setOnce(doc, id, strings.ToLower(f.local), s); err != nil {
								return err
							}
						}
					}
				case f.local == "DocumentIdentification":
					for _, id := range f.children {
						if id.space == nsSBDH && id.local == "InstanceIdentifier" {
							s, err := text(id)
							if err != nil {
								return err
							}
							doc.set("instanceIdentifier", s)
						}
					}
				}
			}
		case isEPCISSpace(ch.space) && ch.local == "extension":
			if err := c.header(ch, doc); err != nil {
				return err
			}
		case isEPCISSpace(ch.space) && ch.local == "EPCISMasterData":
			var vl []any
			for _, f := range ch.children {
				if isEPCISSpace(f.space) && f.local == "VocabularyList" {
					l, err := c.vocabularyList(f)
					if err != nil {
						return err
					}
					vl = append(vl, l...)
				}
			}
			if vl != nil {
				doc.set("epcisHeader", newObject(member{"epcisMasterData", newObject(member{"vocabularyList", vl})}))
			}
		}
	}
	return nil
}

// vocabularyList converts master data: Vocabulary → {type, vocabularyElementList}.
func (c *toJSON) vocabularyList(n *node) ([]any, error) {
	return c.list(n, "Vocabulary", func(v *node) (any, error) {
		o := newObject()
		for _, a := range v.attrs {
			if a.space == "" && a.local == "type" {
				o.set("type", strings.TrimSpace(a.value))
			}
		}
		for _, ch := range v.children {
			if !isEPCISSpace(ch.space) || ch.local != "VocabularyElementList" {
				continue
			}
			elems, err := c.list(ch, "VocabularyElement", c.vocabularyElement)
			if err != nil {
				return nil, err
			}
			o.set("vocabularyElementList", elems)
		}
		return o, nil
	})
}

func (c *toJSON) vocabularyElement(n *node) (any, error) {
	o := newObject()
	for _, a := range n.attrs {
		if a.space == "" && a.local == "id" {
			o.set("id", strings.TrimSpace(a.value))
		}
	}
	var attrs []any
	for _, ch := range n.children {
		switch {
		case isEPCISSpace(ch.space) && ch.local == "attribute":
			at := newObject()
			for _, a := range ch.attrs {
				if a.space == "" && a.local == "id" {
					at.set("id", strings.TrimSpace(a.value))
				}
			}
			content := *ch
			content.attrs = nil // id is the attribute's name, not its value
			val, err := c.extension(&content)
			if err != nil {
				return nil, err
			}
			at.set("attribute", val)
			attrs = append(attrs, at)
		case isEPCISSpace(ch.space) && ch.local == "children":
			kids, err := c.list(ch, "id", func(e *node) (any, error) { return text(e) })
			if err != nil {
				return nil, err
			}
			o.set("children", kids)
		case !isEPCISSpace(ch.space):
			if err := c.addExtension(&o, ch); err != nil {
				return nil, err
			}
		}
	}
	if attrs != nil {
		o.set("attributes", attrs)
	}
	return o, nil
}

// encode writes the converted value with @context first.
func (c *toJSON) encode(v object) []byte {
	ctx := []any{ContextURL}
	if len(c.order) > 0 {
		m := newObject()
		for _, p := range c.order {
			m.set(p, c.nsOf[p])
		}
		ctx = append(ctx, m)
	}
	out := newObject(member{"@context", ctx})
	for _, m := range v.members {
		out.push(m.key, m.val)
	}
	var buf bytes.Buffer
	writeJSON(&buf, out)
	return buf.Bytes()
}
