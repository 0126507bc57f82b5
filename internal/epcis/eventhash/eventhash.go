// Package eventhash computes the CBV 2.0 event hash (GS1 Core Business
// Vocabulary 2.0 §8.9, "EPCIS event hash ID"): a representation-independent
// fingerprint of an EPCIS event, ni:///sha-256;<hex>?ver=CBV2.0.
//
// The canonical pre-hash string follows the reference implementation
// (github.com/RalphTro/epcis-event-hash-generator) so that its published
// vectors reproduce: fields in the canonical property order, values
// normalised (UTC millisecond timestamps, numbers without trailing zeros, CBV
// values as GS1 Web URIs, GS1 identifiers as constrained canonical GS1 Digital
// Link URIs, CURIEs expanded), lists sorted, user extensions as
// {namespace}name, recordTime/eventID/errorDeclaration left out.
package eventhash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// ErrInvalid reports an event that cannot be hashed: not a JSON object,
// without a type, or beyond the size and nesting limits.
var ErrInvalid = errors.New("eventhash: invalid event")

// Limits on what is hashed.
const (
	maxEventBytes = 16 << 20
	maxDepth      = 64
)

// Option adjusts how events are hashed.
type Option func(*options)

type options struct {
	ignore []string // field names (as written or expanded) to leave out
}

// IgnoreFields leaves the named top-level event fields out of the hash, as
// a repository does for fields it adds itself (the reference implementation's
// "ignoreFields"). Names may be plain field names, CURIEs or full IRIs; CURIEs
// are compared after expansion with the event's context.
func IgnoreFields(names ...string) Option {
	return func(o *options) { o.ignore = append(o.ignore, names...) }
}

// Hash returns the CBV 2.0 event hash ID of event, a JSON object as found in
// an EPCIS 2.0 document's eventList, read with ctx, the document's context
// (an "@context" inside the event extends it).
func Hash(event json.RawMessage, ctx ld.Context, opts ...Option) (string, error) {
	pre, err := PreHash(event, ctx, opts...)
	if err != nil {
		return "", err
	}
	return HashPreHash(pre), nil
}

// HashPreHash hashes a canonical pre-hash string into the ni: URI form.
func HashPreHash(pre string) string {
	sum := sha256.Sum256([]byte(pre))
	return "ni:///sha-256;" + hex.EncodeToString(sum[:]) + "?ver=CBV2.0"
}

// PreHash returns the canonical pre-hash string of event, the text Hash
// digests; it is exported to debug a hash that differs from another
// implementation's.
func PreHash(event json.RawMessage, ctx ld.Context, opts ...Option) (string, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(event) > maxEventBytes {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxEventBytes)
	}
	v, err := decode(event)
	if err != nil {
		return "", err
	}
	obj := v.obj
	if obj == nil {
		return "", fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	if raw, ok := obj.get("@context"); ok {
		if ctx, err = ctx.Extend(raw.raw); err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	typ, ok := obj.get("type")
	if !ok || typ.str == nil || *typ.str == "" {
		return "", fmt.Errorf("%w: no event type", ErrInvalid)
	}
	ignored := map[string]bool{}
	for _, name := range o.ignore {
		iri, _ := ctx.ExpandCURIE(name)
		ignored[iri] = true
	}
	b := builder{}
	root := &node{name: *typ.str}
	root.kids = b.fields(obj, ctx, ignored)
	restructure(root)

	var sb strings.Builder
	sb.WriteString("eventType=")
	sb.WriteString(root.name)
	rest := root.kids
	sb.WriteString(ordered(&rest, propOrder, true))
	var left []*node
	for _, n := range rest {
		switch n.name {
		case "recordTime", "eventID", "type", "errorDeclaration":
			continue
		}
		left = append(left, n)
	}
	sb.WriteString(generic(left))
	return sb.String(), nil
}

// ---- JSON reading ----

// value is a decoded JSON value; objects keep their key order.
type value struct {
	str  *string
	num  string // number literal
	boo  *bool
	null bool
	arr  []*value
	obj  *object
	raw  json.RawMessage // for "@context" values
}

type object struct {
	keys []string
	vals []*value
}

func (o *object) get(k string) (*value, bool) {
	for i, key := range o.keys {
		if key == k {
			return o.vals[i], true
		}
	}
	return nil, false
}

func decode(data []byte) (*value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, data, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the event", ErrInvalid)
	}
	return v, nil
}

func readValue(dec *json.Decoder, data []byte, depth int) (*value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested more than %d deep", ErrInvalid, maxDepth)
	}
	start := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
				}
				k, _ := kt.(string)
				v, err := readValue(dec, data, depth+1)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals = append(o.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			return &value{obj: o, raw: rawSlice(data, start, dec.InputOffset())}, nil
		case '[':
			a := []*value{}
			for dec.More() {
				v, err := readValue(dec, data, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			return &value{arr: a, raw: rawSlice(data, start, dec.InputOffset())}, nil
		}
	case string:
		return &value{str: &t, raw: rawSlice(data, start, dec.InputOffset())}, nil
	case json.Number:
		return &value{num: t.String(), raw: rawSlice(data, start, dec.InputOffset())}, nil
	case bool:
		return &value{boo: &t, raw: rawSlice(data, start, dec.InputOffset())}, nil
	case nil:
		return &value{null: true, raw: json.RawMessage("null")}, nil
	}
	return nil, fmt.Errorf("%w: unexpected JSON token", ErrInvalid)
}

// rawSlice returns the bytes of one value; the decoder's offset before a
// value's first token may include the separator before it, trimmed here.
func rawSlice(data []byte, start, end int64) json.RawMessage {
	if start < 0 || end > int64(len(data)) || start > end {
		return nil
	}
	return json.RawMessage(bytes.TrimLeft(data[start:end], " \t\r\n,:"))
}

// ---- the tree the pre-hash is built from ----

// node is one element of the event in the shape of its XML form: a name, a
// text value and child elements. A node with an empty name groups the parts
// of one bizTransaction/source/destination entry.
type node struct {
	name string
	text string
	kids []*node
}

type builder struct{}

// commentIRI is rdfs:comment, which the hash leaves out wherever it appears.
const commentIRI = "http://www.w3.org/2000/01/rdf-schema#comment"

// expandKey gives a field name its hashed form: a CURIE with a known prefix
// becomes {namespace}local; other names stay as written.
func expandKey(ctx ld.Context, k string) string {
	if strings.HasPrefix(k, "{") {
		return k
	}
	_, local, ok := strings.Cut(k, ":")
	if !ok {
		return k
	}
	iri, ok := ctx.ExpandCURIE(k)
	if !ok {
		return k
	}
	return "{" + strings.TrimSuffix(iri, local) + "}" + local
}

// fields converts an object's members into nodes; a list becomes one node per
// element, all with the member's name.
func (b builder) fields(o *object, ctx ld.Context, ignored map[string]bool) []*node {
	var out []*node
	for i, k := range o.keys {
		v := o.vals[i]
		if k == "#text" || k == "comment" || k == "@context" {
			continue
		}
		if iri, _ := ctx.ExpandCURIE(k); iri == commentIRI || ignored[iri] {
			continue
		}
		name := expandKey(ctx, k)
		inner := ctx.Scoped(k)
		if v.arr != nil {
			for _, e := range v.arr {
				out = append(out, b.node(name, k, e, ctx, inner))
			}
			continue
		}
		out = append(out, b.node(name, k, v, ctx, inner))
	}
	return out
}

// node converts one value of field k. ctx is the context the field is read
// in (for its value's type), inner the one inside its value.
func (b builder) node(name, k string, v *value, ctx, inner ld.Context) *node {
	n := &node{name: name}
	switch {
	case v.obj != nil:
		c := inner
		if raw, ok := v.obj.get("@context"); ok {
			if ext, err := c.Extend(raw.raw); err == nil {
				c = ext
			}
		}
		if t, ok := v.obj.get("#text"); ok && t.str != nil {
			n.text = *t.str
		}
		n.kids = b.fields(v.obj, c, nil)
	case v.arr != nil:
		// A list inside a list: its elements are unnamed children.
		for _, e := range v.arr {
			n.kids = append(n.kids, b.node("", k, e, ctx, inner))
		}
	case v.str != nil:
		n.text = expandValue(ctx, k, *v.str)
	case v.num != "":
		n.text = v.num
	case v.boo != nil:
		n.text = strconv.FormatBool(*v.boo)
	}
	return n
}

// expandValue expands a string value: vocabulary terms of the field's scoped
// context (bizStep "shipping"), then CURIEs.
func expandValue(ctx ld.Context, k, s string) string {
	if iri, ok := ctx.ExpandValue(k, s); ok {
		return iri
	}
	if iri, ok := ctx.ExpandCURIE(s); ok {
		return iri
	}
	return s
}

// restructure maps the JSON shape onto the XML one the pre-hash is defined
// on: "xList" members become one "xList" node with "x" children (inputEPC and
// outputEPC children are "epc", quantity entries "quantityElement"),
// childEPCs are grouped, and bizTransaction/source/destination entries become
// unnamed groups with their type first.
func restructure(n *node) {
	var kids []*node
	lists := map[string]*node{}
	var childEPCs *node
	for _, k := range n.kids {
		switch {
		case strings.HasSuffix(k.name, "List") && k.name != "List":
			l, ok := lists[k.name]
			if !ok {
				l = &node{name: k.name}
				lists[k.name] = l
				kids = append(kids, l)
			}
			item := &node{name: strings.TrimSuffix(k.name, "List"), text: k.text, kids: k.kids}
			switch k.name {
			case "bizTransactionList", "sourceList", "destinationList":
				item = typeFirst(item)
			}
			l.kids = append(l.kids, item)
		case k.name == "childEPCs":
			if childEPCs == nil {
				childEPCs = &node{name: "childEPCs"}
				kids = append(kids, childEPCs)
			}
			childEPCs.kids = append(childEPCs.kids, &node{name: "epc", text: k.text})
		default:
			kids = append(kids, k)
		}
	}
	n.kids = kids
	for _, k := range n.kids {
		switch k.name {
		case "bizTransactionList", "sourceList", "destinationList":
			continue
		}
		restructure(k)
	}
	switch {
	case n.name == "inputEPC" || n.name == "outputEPC":
		n.name = "epc"
	case n.name == "inputQuantity" || n.name == "outputQuantity" || n.name == "childQuantity" ||
		(n.name == "quantity" && len(n.kids) > 0):
		n.name = "quantityElement"
	}
}

// typeFirst turns a bizTransaction/source/destination entry into an unnamed
// group, its type before its identifier.
func typeFirst(item *node) *node {
	g := &node{}
	for _, k := range item.kids {
		if k.name == "type" {
			g.kids = append(g.kids, k)
		}
	}
	for _, k := range item.kids {
		if k.name != "type" {
			g.kids = append(g.kids, k)
		}
	}
	return g
}

// ---- the pre-hash string ----

// order is a canonical property order: names in sequence, each with the order
// of its own children (nil for a value).
type order []field

type field struct {
	name string
	sub  order
}

func leaf(names ...string) order {
	o := make(order, len(names))
	for i, n := range names {
		o[i] = field{name: n}
	}
	return o
}

var quantityOrder = order{{"quantityElement", leaf("epcClass", "quantity", "uom")}}

// propOrder is the canonical property order of CBV 2.0 §8.9 (the reference
// implementation's PROP_ORDER).
var propOrder = order{
	{"eventTime", nil},
	{"eventTimeZoneOffset", nil},
	{"certificationInfo", nil},
	{"parentID", nil},
	{"epcList", leaf("epc")},
	{"inputEPCList", leaf("epc")},
	{"childEPCs", leaf("epc")},
	{"quantityList", quantityOrder},
	{"childQuantityList", quantityOrder},
	{"inputQuantityList", quantityOrder},
	{"outputEPCList", leaf("epc")},
	{"outputQuantityList", quantityOrder},
	{"action", nil},
	{"transformationID", nil},
	{"bizStep", nil},
	{"disposition", nil},
	{"persistentDisposition", leaf("set", "unset")},
	{"readPoint", leaf("id")},
	{"bizLocation", leaf("id")},
	// bizTransactionList, sourceList and destinationList are not taken in
	// order: the reference implementation appends them with the other
	// remaining fields, sorted, and its vectors depend on that.
	{"sensorElementList", order{{"sensorElement", order{
		{"sensorMetadata", leaf("time", "startTime", "endTime", "deviceID", "deviceMetadata",
			"rawData", "dataProcessingMethod", "bizRules")},
		{"sensorReport", leaf("type", "exception", "deviceID", "deviceMetadata", "rawData",
			"dataProcessingMethod", "time", "microorganism", "chemicalSubstance", "value",
			"component", "stringValue", "booleanValue", "hexBinaryValue", "uriValue", "minValue",
			"maxValue", "meanValue", "sDev", "percRank", "percValue", "uom",
			"coordinateReferenceSystem")},
	}}}},
}

// ordered renders the children of *list named in ord, in that order (equal
// names sorted by their rendering), and removes from *list what it rendered
// completely; what stays is rendered later as a remaining field. User
// extensions ({ns}name) inside a standard field follow its standard children.
func ordered(list *[]*node, ord order, top bool) string {
	var ext []*node
	if !top && len(*list) > 1 {
		var keep []*node
		for _, n := range *list {
			if strings.HasPrefix(n.name, "{") {
				ext = append(ext, n)
			} else {
				keep = append(keep, n)
			}
		}
		*list = keep
	}
	var sb strings.Builder
	for _, f := range ord {
		var vals []string
		var keep []*node
		for _, n := range *list {
			if n.name != f.name {
				keep = append(keep, n)
				continue
			}
			if s := render(n, f.sub); s != "" {
				vals = append(vals, s)
			}
			if len(n.kids) > 0 {
				keep = append(keep, n)
			}
		}
		*list = keep
		slices.Sort(vals)
		for _, v := range vals {
			sb.WriteString(v)
		}
	}
	if len(ext) > 0 {
		sb.WriteString(generic(ext))
	}
	return sb.String()
}

func render(n *node, sub order) string {
	var grand string
	if sub != nil {
		grand = ordered(&n.kids, sub, false)
	}
	text := strings.TrimSpace(n.text)
	if text != "" {
		lower := strings.ToLower(n.name)
		if strings.Contains(lower, "time") && !strings.Contains(lower, "offset") {
			text = canonicalTime(text)
		} else {
			text = canonicalValue(text)
		}
	}
	if text == "" && grand == "" {
		return ""
	}
	if text != "" {
		text = "=" + text
	}
	return n.name + text + grand
}

// generic renders fields outside the canonical order: name=value followed by
// children, siblings sorted (except the parts of a bizTransaction, source or
// destination entry, which keep type first).
func generic(list []*node) string {
	vals := make([]string, 0, len(list))
	sorted := true
	for _, n := range list {
		switch n.name {
		case "bizTransaction", "source", "destination":
			sorted = false
		}
		if n.name == "" && n.text == "" {
			vals = append(vals, generic(n.kids))
			continue
		}
		text := strings.TrimSpace(n.text)
		if text != "" {
			text = "=" + canonicalValue(text)
		}
		vals = append(vals, n.name+text+generic(n.kids))
	}
	if sorted {
		slices.Sort(vals)
	}
	return strings.Join(vals, "")
}

// canonicalValue normalises a value: CBV URNs to Web URIs, numbers without
// redundant digits, GS1 identifiers to canonical Digital Link URIs.
func canonicalValue(s string) string {
	s, _ = epc.CBVWebURI(s)
	s = canonicalNumber(s)
	return epc.Canonical(s)
}

var numberRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// canonicalNumber writes a decimal number the way the reference
// implementation does (Python float, then int when whole): "1.0" is "1",
// "0.50" is "0.5", "1e-5" is "1e-05". Other strings are returned unchanged.
func canonicalNumber(s string) string {
	if len(s) > 400 || !numberRE.MatchString(s) {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	if f == math.Trunc(f) {
		i, _ := big.NewFloat(f).Int(nil)
		return i.String()
	}
	if a := math.Abs(f); a < 1e-4 {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

var timeRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$`)

// canonicalTime writes a timestamp in UTC with millisecond precision,
// rounding half up on the fourth decimal (CBV 2.0 §8.9): 11:04:03.1415+00:00
// is 11:04:03.142Z. A time without an offset is taken as UTC. Text that is
// not a timestamp is returned unchanged.
func canonicalTime(s string) string {
	m := timeRE.FindStringSubmatch(s)
	if m == nil {
		return s
	}
	sec := m[4]
	if sec == "" {
		sec = "00"
	}
	frac := m[5] + "0000"
	layout := "2006-01-02T15:04:05"
	base := m[1] + "T" + m[2] + ":" + m[3] + ":" + sec
	t, err := time.Parse(layout, base)
	if err != nil {
		return s
	}
	ms, _ := strconv.Atoi(frac[:3])
	if frac[3] >= '5' {
		ms++
	}
	t = t.Add(time.Duration(ms) * time.Millisecond)
	if tz := m[6]; tz != "" && tz != "Z" && tz != "z" {
		tz = strings.ReplaceAll(tz, ":", "")
		h, _ := strconv.Atoi(tz[1:3])
		mi := 0
		if len(tz) == 5 {
			mi, _ = strconv.Atoi(tz[3:5])
		}
		if h > 23 || mi > 59 {
			return s
		}
		off := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute
		if tz[0] == '+' {
			t = t.Add(-off)
		} else {
			t = t.Add(off)
		}
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
