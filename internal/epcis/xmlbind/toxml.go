package xmlbind

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// WriteXML writes a JSON EPCISQueryDocument (a query answer), EPCISDocument
// or single event in the EPCIS 2.0 XML binding. Standard fields follow the
// XSD's element order, vocabulary terms become their CBV URNs (or "gs1:"
// CURIEs), and every @context prefix is declared as an XML namespace
// (event-level @context on the event element).
func WriteXML(w io.Writer, doc []byte, lim Limits) error {
	lim = lim.withDefaults()
	if int64(len(doc)) > lim.MaxBytes {
		return fmt.Errorf("%w: document larger than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	v, err := decodeJSON(doc, lim.MaxDepth)
	if err != nil {
		return err
	}
	top, ok := v.(object)
	if !ok {
		return fmt.Errorf("%w: JSON: top level is not an object", ErrInvalid)
	}
	x := &toXML{w: bufio.NewWriter(w)}
	x.w.WriteString(xml.Header)
	typ, _ := top.get("type")
	switch typ {
	case "EPCISQueryDocument":
		err = x.document(top, "epcisq:EPCISQueryDocument", "epcisq", NamespaceQuery)
	case "EPCISDocument":
		err = x.document(top, "epcis:EPCISDocument", "epcis", NamespaceEPCIS)
	default:
		if s, _ := typ.(string); eventTypes[s] {
			err = x.event(top, "", nil)
		} else {
			err = fmt.Errorf("%w: JSON: type %v is not EPCISQueryDocument, EPCISDocument or an event type", ErrInvalid, typ)
		}
	}
	if err != nil {
		return err
	}
	x.w.WriteString("\n")
	return x.w.Flush()
}

// toXML writes one document; scope holds the namespace declarations of the
// open elements so that a prefix is declared once, where first needed.
type toXML struct {
	w     *bufio.Writer
	depth int
	scope *nsScope
}

func jsonErr(path, format string, args ...any) error {
	return fmt.Errorf("%w: JSON %s: %s", ErrInvalid, path, fmt.Sprintf(format, args...))
}

// contextPrefixesOf reads the prefix → IRI definitions of a JSON-LD @context.
func contextPrefixesOf(ctx any) map[string]string {
	out := map[string]string{}
	var walk func(any)
	walk = func(c any) {
		switch c := c.(type) {
		case []any:
			for _, e := range c {
				walk(e)
			}
		case object:
			for _, m := range c.members {
				if iri, ok := m.val.(string); ok && !strings.HasPrefix(m.key, "@") {
					out[m.key] = iri
				}
			}
		}
	}
	walk(ctx)
	return out
}

type xmlAttr struct{ name, value string }

// open writes a start tag. decls are namespace declarations to make on it;
// prefixes of name and attributes not yet in scope are declared too, from
// known (the document's @context) or the EPCIS context.
func (x *toXML) open(name string, decls map[string]string, attrs []xmlAttr, known map[string]string) {
	x.scope = &nsScope{parent: x.scope}
	x.w.WriteString("\n" + strings.Repeat("  ", x.depth) + "<" + name)
	for _, p := range sortedKeys(decls) {
		x.declare(p, decls[p])
	}
	need := func(qname string) {
		p, _, ok := strings.Cut(qname, ":")
		if !ok {
			return
		}
		if _, inScope := x.scope.lookup(p); inScope {
			return
		}
		x.declare(p, namespaceFor(p, known))
	}
	need(name)
	for _, a := range attrs {
		need(a.name)
	}
	for _, a := range attrs {
		x.w.WriteString(" " + a.name + `="`)
		xml.EscapeText(x.w, []byte(a.value))
		x.w.WriteString(`"`)
	}
	x.w.WriteString(">")
	x.depth++
}

func (x *toXML) declare(prefix, ns string) {
	x.scope.set(prefix, ns)
	x.w.WriteString(" xmlns:" + prefix + `="`)
	xml.EscapeText(x.w, []byte(ns))
	x.w.WriteString(`"`)
}

// namespaceFor is the XML namespace of a JSON prefix: the document's
// definition, the EPCIS context's (cbvmda in its XML form), or — for a
// prefix nobody defines, which JSON-LD reads as an IRI scheme — "prefix:".
func namespaceFor(prefix string, known map[string]string) string {
	if prefix == "cbvmda" {
		return nsCBVMDA
	}
	if ns, ok := contextPrefixes[prefix]; ok {
		return ns
	}
	if ns, ok := known[prefix]; ok {
		return ns
	}
	return prefix + ":"
}

func (x *toXML) close(name string, inline bool) {
	x.depth--
	if !inline {
		x.w.WriteString("\n" + strings.Repeat("  ", x.depth))
	}
	x.w.WriteString("</" + name + ">")
	x.scope = x.scope.parent
}

// leaf writes <name attrs>text</name>.
func (x *toXML) leaf(name, text string, attrs []xmlAttr, known map[string]string) {
	x.open(name, nil, attrs, known)
	xml.EscapeText(x.w, []byte(text))
	x.close(name, true)
}

func (x *toXML) document(doc object, root, prefix, ns string) error {
	known := contextPrefixesOf(mustGet(doc, "@context"))
	decls := map[string]string{prefix: ns}
	for p, iri := range known {
		if _, std := contextPrefixes[p]; !std {
			decls[p] = iri
		}
	}
	var attrs []xmlAttr
	for _, k := range []string{"schemaVersion", "creationDate"} {
		if v, ok := doc.get(k); ok {
			s, err := scalar(k, v)
			if err != nil {
				return err
			}
			attrs = append(attrs, xmlAttr{k, s})
		}
	}
	x.open(root, decls, attrs, known)
	if err := x.header(doc, known); err != nil {
		return err
	}
	x.open("EPCISBody", nil, nil, known)
	body, isbody := mustGet(doc, "epcisBody").(object)
	if !isbody {
		return jsonErr("epcisBody", "missing or not an object")
	}
	var events any
	if prefix == "epcisq" {
		qr, isqr := mustGet(body, "queryResults").(object)
		if !isqr {
			return jsonErr("epcisBody.queryResults", "missing or not an object")
		}
		x.open("epcisq:QueryResults", nil, nil, known)
		for _, k := range []string{"queryName", "subscriptionID"} {
			if v, ok := qr.get(k); ok {
				s, err := scalar("queryResults."+k, v)
				if err != nil {
					return err
				}
				x.leaf(k, s, nil, known)
			}
		}
		rb, isrb := mustGet(qr, "resultsBody").(object)
		if !isrb {
			return jsonErr("epcisBody.queryResults.resultsBody", "missing or not an object")
		}
		x.open("resultsBody", nil, nil, known)
		events = mustGet(rb, "eventList")
		if vl, ok := rb.get("vocabularyList"); ok {
			if events != nil {
				return jsonErr("resultsBody", "eventList and vocabularyList together have no XML form")
			}
			if err := x.vocabularyList(vl, known); err != nil {
				return err
			}
		}
		if err := x.eventList(events, known); err != nil {
			return err
		}
		x.close("resultsBody", false)
		x.close("epcisq:QueryResults", false)
	} else if err := x.eventList(mustGet(body, "eventList"), known); err != nil {
		return err
	}
	x.close("EPCISBody", false)
	x.close(root, false)
	return nil
}

func mustGet(o object, key string) any {
	v, _ := o.get(key)
	return v
}

// header writes sender, receiver and instanceIdentifier as an SBDH, and master data.
func (x *toXML) header(doc object, known map[string]string) error {
	fields := map[string]string{}
	for _, k := range []string{"sender", "receiver", "instanceIdentifier"} {
		if v, ok := doc.get(k); ok {
			s, err := scalar(k, v)
			if err != nil {
				return err
			}
			fields[k] = s
		}
	}
	md, hasMD := mustGet(doc, "epcisHeader").(object)
	vl := any(nil)
	if hasMD {
		if m, ok := mustGet(md, "epcisMasterData").(object); ok {
			vl = mustGet(m, "vocabularyList")
		}
	}
	if len(fields) == 0 && vl == nil {
		return nil
	}
	x.open("EPCISHeader", nil, nil, known)
	if len(fields) > 0 {
		sb := "sbdh:"
		x.open(sb+"StandardBusinessDocumentHeader", map[string]string{"sbdh": nsSBDH}, nil, known)
		x.leaf(sb+"HeaderVersion", "1.0", nil, known)
		for _, who := range []string{"sender", "receiver"} {
			if id, ok := fields[who]; ok {
				el := sb + strings.ToUpper(who[:1]) + who[1:]
				x.open(el, nil, nil, known)
				x.leaf(sb+"Identifier", id, nil, known)
				x.close(el, false)
			}
		}
		x.open(sb+"DocumentIdentification", nil, nil, known)
		x.leaf(sb+"Standard", "EPCglobal", nil, known)
		x.leaf(sb+"TypeVersion", "2.0", nil, known)
		x.leaf(sb+"InstanceIdentifier", fields["instanceIdentifier"], nil, known)
		x.leaf(sb+"Type", "Events", nil, known)
		if cd, ok := doc.get("creationDate"); ok {
			s, _ := cd.(string)
			x.leaf(sb+"CreationDateAndTime", s, nil, known)
		}
		x.close(sb+"DocumentIdentification", false)
		x.close(sb+"StandardBusinessDocumentHeader", false)
	}
	if vl != nil {
		x.open("extension", nil, nil, known)
		x.open("EPCISMasterData", nil, nil, known)
		if err := x.vocabularyList(vl, known); err != nil {
			return err
		}
		x.close("EPCISMasterData", false)
		x.close("extension", false)
	}
	x.close("EPCISHeader", false)
	return nil
}

func (x *toXML) vocabularyList(v any, known map[string]string) error {
	list, ok := v.([]any)
	if !ok {
		return jsonErr("vocabularyList", "not an array")
	}
	x.open("VocabularyList", nil, nil, known)
	for i, e := range list {
		path := fmt.Sprintf("vocabularyList[%d]", i)
		voc, ok := e.(object)
		if !ok {
			return jsonErr(path, "not an object")
		}
		typ, _ := mustGet(voc, "type").(string)
		x.open("Vocabulary", nil, []xmlAttr{{"type", typ}}, known)
		if elems, ok := mustGet(voc, "vocabularyElementList").([]any); ok {
			x.open("VocabularyElementList", nil, nil, known)
			for j, el := range elems {
				if err := x.vocabularyElement(fmt.Sprintf("%s.vocabularyElementList[%d]", path, j), el, known); err != nil {
					return err
				}
			}
			x.close("VocabularyElementList", false)
		}
		x.close("Vocabulary", false)
	}
	x.close("VocabularyList", false)
	return nil
}

func (x *toXML) vocabularyElement(path string, v any, known map[string]string) error {
	el, ok := v.(object)
	if !ok {
		return jsonErr(path, "not an object")
	}
	id, _ := mustGet(el, "id").(string)
	x.open("VocabularyElement", nil, []xmlAttr{{"id", id}}, known)
	attrs, _ := mustGet(el, "attributes").([]any)
	for i, a := range attrs {
		ao, ok := a.(object)
		if !ok {
			return jsonErr(fmt.Sprintf("%s.attributes[%d]", path, i), "not an object")
		}
		aid, _ := mustGet(ao, "id").(string)
		if err := x.extension(path+".attributes", "attribute", mustGet(ao, "attribute"), []xmlAttr{{"id", aid}}, known); err != nil {
			return err
		}
	}
	if kids, ok := mustGet(el, "children").([]any); ok {
		if err := x.stringList(path+".children", "children", "id", kids, nil, known); err != nil {
			return err
		}
	}
	for _, m := range el.members {
		if m.key != "id" && m.key != "attributes" && m.key != "children" {
			if err := x.extensionMember(path, m, known); err != nil {
				return err
			}
		}
	}
	x.close("VocabularyElement", false)
	return nil
}

func (x *toXML) eventList(v any, known map[string]string) error {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return jsonErr("eventList", "not an array")
	}
	x.open("EventList", nil, nil, known)
	for i, e := range list {
		ev, ok := e.(object)
		if !ok {
			return jsonErr(fmt.Sprintf("eventList[%d]", i), "not an object")
		}
		if err := x.event(ev, fmt.Sprintf("eventList[%d].", i), known); err != nil {
			return err
		}
	}
	x.close("EventList", false)
	return nil
}

// eventOrder is each event type's XSD element sequence after the common fields.
var eventOrder = map[string][]string{
	"ObjectEvent": {"epcList", "action", "bizStep", "disposition", "readPoint", "bizLocation",
		"bizTransactionList", "quantityList", "sourceList", "destinationList", "sensorElementList",
		"persistentDisposition", "ilmd"},
	"AggregationEvent": {"parentID", "childEPCs", "action", "bizStep", "disposition", "readPoint",
		"bizLocation", "bizTransactionList", "childQuantityList", "sourceList", "destinationList",
		"sensorElementList", "persistentDisposition"},
	"TransactionEvent": {"bizTransactionList", "parentID", "epcList", "action", "bizStep", "disposition",
		"readPoint", "bizLocation", "quantityList", "sourceList", "destinationList", "sensorElementList",
		"persistentDisposition"},
	"TransformationEvent": {"inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList",
		"transformationID", "bizStep", "disposition", "readPoint", "bizLocation", "bizTransactionList",
		"sourceList", "destinationList", "sensorElementList", "persistentDisposition", "ilmd"},
	"AssociationEvent": {"parentID", "childEPCs", "childQuantityList", "action", "bizStep", "disposition",
		"readPoint", "bizLocation", "bizTransactionList", "sourceList", "destinationList",
		"sensorElementList", "persistentDisposition"},
}

var commonOrder = []string{"eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration", "certificationInfo"}

func (x *toXML) event(ev object, path string, docKnown map[string]string) error {
	typ, _ := mustGet(ev, "type").(string)
	order, ok := eventOrder[typ]
	if !ok {
		return jsonErr(path+"type", "%q is not an event type", typ)
	}
	known := map[string]string{}
	for p, iri := range docKnown {
		known[p] = iri
	}
	decls := map[string]string{}
	for p, iri := range contextPrefixesOf(mustGet(ev, "@context")) {
		known[p] = iri
		if _, std := contextPrefixes[p]; !std {
			decls[p] = iri
		}
	}
	x.open(typ, decls, nil, known)
	fields := append(append([]string{}, commonOrder...), order...)
	for _, f := range fields {
		if v, ok := ev.get(f); ok {
			if err := x.field(path+f, f, v, known); err != nil {
				return err
			}
		}
	}
	for _, m := range ev.members {
		if m.key == "type" || m.key == "@context" || contains(fields, m.key) {
			continue
		}
		if !strings.Contains(m.key, ":") {
			return jsonErr(path+m.key, "not a field of %s", typ)
		}
		if err := x.extensionMember(path, m, known); err != nil {
			return err
		}
	}
	x.close(typ, false)
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// field writes one standard event field.
func (x *toXML) field(path, name string, v any, known map[string]string) error {
	switch name {
	case "eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "action", "parentID", "transformationID":
		s, err := scalar(path, v)
		if err != nil {
			return err
		}
		x.leaf(name, s, nil, known)
	case "certificationInfo":
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for _, e := range list {
			s, err := scalar(path, e)
			if err != nil {
				return err
			}
			x.leaf(name, s, nil, known)
		}
	case "bizStep", "disposition":
		s, err := scalar(path, v)
		if err != nil {
			return err
		}
		voc := bizStepVocab
		if name == "disposition" {
			voc = dispositionVocab
		}
		x.leaf(name, voc.expand(s), nil, known)
	case "epcList", "childEPCs", "inputEPCList", "outputEPCList":
		return x.stringList(path, name, "epc", v, nil, known)
	case "quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList":
		return x.objectList(path, name, "quantityElement", v, known, x.quantityElement)
	case "readPoint", "bizLocation":
		return x.standardObject(path, name, v, []string{"id"}, known, func(f string, v any) error {
			s, err := scalar(path+"."+f, v)
			x.leaf(f, s, nil, known)
			return err
		})
	case "errorDeclaration":
		return x.standardObject(path, name, v, []string{"declarationTime", "reason", "correctiveEventIDs"}, known, func(f string, v any) error {
			if f == "correctiveEventIDs" {
				return x.stringList(path+"."+f, f, "correctiveEventID", v, nil, known)
			}
			s, err := scalar(path+"."+f, v)
			if f == "reason" {
				s = errorReasonVocab.expand(s)
			}
			x.leaf(f, s, nil, known)
			return err
		})
	case "bizTransactionList":
		return x.objectList(path, name, "bizTransaction", v, known, func(p string, o object) error {
			return x.typedID(p, "bizTransaction", o, bizTransactionTypeVocab, known)
		})
	case "sourceList":
		return x.objectList(path, name, "source", v, known, func(p string, o object) error {
			return x.typedID(p, "source", o, sourceDestTypeVocab, known)
		})
	case "destinationList":
		return x.objectList(path, name, "destination", v, known, func(p string, o object) error {
			return x.typedID(p, "destination", o, sourceDestTypeVocab, known)
		})
	case "sensorElementList":
		return x.objectList(path, name, "sensorElement", v, known, x.sensorElement)
	case "persistentDisposition":
		o, ok := v.(object)
		if !ok {
			return jsonErr(path, "not an object")
		}
		x.open(name, nil, nil, known)
		for _, f := range []string{"unset", "set"} { // the XSD's order
			if list, ok := o.get(f); ok {
				if err := x.stringList(path+"."+f, "", f, list, dispositionVocab.expand, known); err != nil {
					return err
				}
			}
		}
		x.close(name, false)
	case "ilmd":
		o, ok := v.(object)
		if !ok {
			return jsonErr(path, "not an object")
		}
		x.open(name, nil, nil, known)
		for _, m := range o.members {
			if err := x.extensionMember(path, m, known); err != nil {
				return err
			}
		}
		x.close(name, false)
	}
	return nil
}

// scalar is the XML text of a JSON string, number or boolean.
func scalar(path string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", jsonErr(path, "a %s where a string is expected", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case object:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// stringList writes <list><item>…</item>…</list>; with list "" only the items.
func (x *toXML) stringList(path, list, item string, v any, conv func(string) string, known map[string]string) error {
	arr, ok := v.([]any)
	if !ok {
		return jsonErr(path, "not an array")
	}
	if list != "" {
		x.open(list, nil, nil, known)
	}
	for i, e := range arr {
		s, err := scalar(fmt.Sprintf("%s[%d]", path, i), e)
		if err != nil {
			return err
		}
		if conv != nil {
			s = conv(s)
		}
		x.leaf(item, s, nil, known)
	}
	if list != "" {
		x.close(list, len(arr) == 0)
	}
	return nil
}

func (x *toXML) objectList(path, list, item string, v any, known map[string]string, each func(string, object) error) error {
	arr, ok := v.([]any)
	if !ok {
		return jsonErr(path, "not an array")
	}
	x.open(list, nil, nil, known)
	for i, e := range arr {
		p := fmt.Sprintf("%s[%d]", path, i)
		o, ok := e.(object)
		if !ok {
			return jsonErr(p, "not an object")
		}
		if err := each(p, o); err != nil {
			return err
		}
	}
	x.close(list, len(arr) == 0)
	return nil
}

// standardObject writes an element of standard fields (in order) then extensions.
func (x *toXML) standardObject(path, name string, v any, order []string, known map[string]string, field func(string, any) error) error {
	o, ok := v.(object)
	if !ok {
		return jsonErr(path, "not an object")
	}
	x.open(name, nil, nil, known)
	for _, f := range order {
		if fv, ok := o.get(f); ok {
			if err := field(f, fv); err != nil {
				return err
			}
		}
	}
	for _, m := range o.members {
		if contains(order, m.key) {
			continue
		}
		if err := x.extensionMember(path, m, known); err != nil {
			return err
		}
	}
	x.close(name, false)
	return nil
}

func (x *toXML) quantityElement(path string, o object) error {
	x.open("quantityElement", nil, nil, nil)
	for _, f := range []string{"epcClass", "quantity", "uom"} {
		v, ok := o.get(f)
		if !ok {
			continue
		}
		s, err := scalar(path+"."+f, v)
		if err != nil {
			return err
		}
		if n, isNum := v.(json.Number); f == "quantity" && isNum {
			s = plainDecimal(n) // xsd:decimal has no exponent
		}
		x.leaf(f, s, nil, nil)
	}
	for _, m := range o.members {
		if m.key != "epcClass" && m.key != "quantity" && m.key != "uom" {
			return jsonErr(path+"."+m.key, "not a field of a quantity element")
		}
	}
	x.close("quantityElement", false)
	return nil
}

// plainDecimal writes a JSON number without exponent, as xsd:decimal requires.
func plainDecimal(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, "eE") {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func (x *toXML) typedID(path, key string, o object, voc vocab, known map[string]string) error {
	var attrs []xmlAttr
	if t, ok := o.get("type"); ok {
		s, err := scalar(path+".type", t)
		if err != nil {
			return err
		}
		attrs = append(attrs, xmlAttr{"type", voc.expand(s)})
	}
	id, err := scalar(path+"."+key, mustGet(o, key))
	if err != nil {
		return err
	}
	x.leaf(key, id, attrs, known)
	return nil
}

func (x *toXML) sensorElement(path string, o object) error {
	known := x.knownFromScope()
	x.open("sensorElement", nil, nil, known)
	if md, ok := o.get("sensorMetadata"); ok {
		if err := x.sensorAttributes(path+".sensorMetadata", "sensorMetadata", md, sensorMetadataAttrs, known); err != nil {
			return err
		}
	}
	if reports, ok := o.get("sensorReport"); ok {
		list, ok := reports.([]any)
		if !ok {
			list = []any{reports}
		}
		for i, r := range list {
			if err := x.sensorAttributes(fmt.Sprintf("%s.sensorReport[%d]", path, i), "sensorReport", r, sensorReportAttrs, known); err != nil {
				return err
			}
		}
	}
	for _, m := range o.members {
		if m.key == "sensorMetadata" || m.key == "sensorReport" {
			continue
		}
		if err := x.extensionMember(path, m, known); err != nil {
			return err
		}
	}
	x.close("sensorElement", false)
	return nil
}

// knownFromScope is the namespace bindings in force, for writers that have
// no @context at hand: their prefixes were declared on enclosing elements.
func (x *toXML) knownFromScope() map[string]string {
	out := map[string]string{}
	var chain []*nsScope
	for s := x.scope; s != nil; s = s.parent {
		chain = append(chain, s)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		for p, ns := range chain[i].decls {
			out[p] = ns
		}
	}
	return out
}

func (x *toXML) sensorAttributes(path, name string, v any, spec map[string]attrSpec, known map[string]string) error {
	o, ok := v.(object)
	if !ok {
		return jsonErr(path, "not an object")
	}
	var attrs []xmlAttr
	for _, m := range o.members {
		s, ok := spec[m.key]
		if !ok && !strings.Contains(m.key, ":") {
			return jsonErr(path+"."+m.key, "not a field of %s", name)
		}
		text, err := scalar(path+"."+m.key, m.val)
		if err != nil {
			return err
		}
		if s.kind == attrVocab {
			text = s.vocab.expand(text)
		}
		attrName := m.key
		if !ok {
			if attrName, err = x.qname(path, m.key, known); err != nil {
				return err
			}
		}
		attrs = append(attrs, xmlAttr{attrName, text})
	}
	x.open(name, nil, attrs, known)
	x.close(name, true)
	return nil
}

// qname turns a JSON key into an XML qualified name: "p:local" keeps its
// prefix; a full IRI is split into a namespace and a local name under a
// generated prefix.
func (x *toXML) qname(path, key string, known map[string]string) (string, error) {
	p, local, ok := strings.Cut(key, ":")
	if ok && !strings.HasPrefix(local, "//") && isNCName(p) && isNCName(local) {
		return key, nil
	}
	if !ok && isNCName(key) {
		return key, nil
	}
	i := strings.LastIndexAny(key, "/#:")
	if i < 0 || !isNCName(key[i+1:]) {
		return "", jsonErr(path+"."+key, "key has no XML element name")
	}
	ns := key[:i+1]
	for p, bound := range known {
		if bound == ns {
			return p + ":" + key[i+1:], nil
		}
	}
	for n := 1; ; n++ {
		p := "ns" + strconv.Itoa(n)
		if _, taken := known[p]; !taken {
			if _, taken := x.scope.lookup(p); !taken {
				known[p] = ns
				return p + ":" + key[i+1:], nil
			}
		}
	}
}

func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r > 0x7f:
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

func (x *toXML) extensionMember(path string, m member, known map[string]string) error {
	name, err := x.qname(path, m.key, known)
	if err != nil {
		return err
	}
	return x.extension(path+"."+m.key, name, m.val, nil, known)
}

// extension writes a user extension value under name: arrays repeat the
// element, objects become children ("@name" keys attributes and "value" their
// text, as DocumentToJSON reads them), scalars text.
func (x *toXML) extension(path, name string, v any, attrs []xmlAttr, known map[string]string) error {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			if _, nested := e.([]any); nested {
				return jsonErr(fmt.Sprintf("%s[%d]", path, i), "nested arrays have no XML form")
			}
			if err := x.extension(fmt.Sprintf("%s[%d]", path, i), name, e, attrs, known); err != nil {
				return err
			}
		}
		return nil
	case object:
		var children []member
		text, hasText := "", false
		attrForm := false
		for _, m := range v.members {
			if strings.HasPrefix(m.key, "@") {
				attrForm = true
			}
		}
		for _, m := range v.members {
			switch {
			case strings.HasPrefix(m.key, "@"):
				s, err := scalar(path+"."+m.key, m.val)
				if err != nil {
					return err
				}
				if !isNCName(m.key[1:]) {
					return jsonErr(path+"."+m.key, "key has no XML attribute name")
				}
				attrs = append(attrs, xmlAttr{m.key[1:], s})
			case attrForm && m.key == "value":
				s, err := scalar(path+".value", m.val)
				if err != nil {
					return err
				}
				text, hasText = s, true
			default:
				children = append(children, m)
			}
		}
		x.open(name, nil, attrs, known)
		if hasText {
			xml.EscapeText(x.w, []byte(text))
		}
		for _, m := range children {
			if err := x.extensionMember(path, m, known); err != nil {
				return err
			}
		}
		x.close(name, len(children) == 0)
		return nil
	case nil:
		x.open(name, nil, attrs, known)
		x.close(name, true)
		return nil
	}
	s, err := scalar(path, v)
	if err != nil {
		return err
	}
	x.leaf(name, s, attrs, known)
	return nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
