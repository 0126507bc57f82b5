package epcis

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/ld"
	"github.com/tlm/tracktrace/internal/eventstore"
)

// Identifier roles in the index: which list of an event names an object.
const (
	RoleEPC         = "epc"          // epcList
	RoleChild       = "child"        // childEPCs
	RoleParent      = "parent"       // parentID
	RoleInput       = "input"        // inputEPCList
	RoleOutput      = "output"       // outputEPCList
	RoleClass       = "class"        // quantityList
	RoleChildClass  = "child_class"  // childQuantityList
	RoleInputClass  = "input_class"  // inputQuantityList
	RoleOutputClass = "output_class" // outputQuantityList
)

// Field families in the index: what a query's parameter families filter on.
const (
	FamilyBizTransaction        = "bizTransaction"   // name: type
	FamilySource                = "source"           // name: type
	FamilyDestination           = "destination"      // name: type
	FamilyTransformationID      = "transformationID" // name: ""
	FamilyPersistentDisposition = "persistentDisposition"
	FamilyCorrectiveEventID     = "correctiveEventID"
	FamilySensor                = "sensor"     // name: the sensor field; values of value fields carry uom in text
	FamilyILMD                  = "ilmd"       // name: the extension field's IRI
	FamilyField                 = "field"      // top-level extension fields
	FamilyInner                 = "inner"      // extension fields nested in extension fields
	FamilyInnerILMD             = "inner_ilmd" // nested in ILMD fields
	FamilyErrorField            = "error"      // extension fields of the errorDeclaration
	FamilyInnerErrorField       = "inner_error"
	FamilyCertification         = "certificationInfo"
)

// IndexedID is an identifier an event names.
type IndexedID struct {
	Role     string
	ID       string
	Quantity *float64
	UOM      string
}

// IndexedField is any other value a query can filter on.
type IndexedField struct {
	Family, Name string
	Text         *string
	Num          *float64
	At           *time.Time
}

// Indexed is what the EPCIS index keeps of one stored event.
type Indexed struct {
	EventID     string
	Type        string
	Action      string
	EventTime   time.Time
	RecordTime  time.Time
	BizStep     string
	Disposition string
	ReadPoint   string
	BizLocation string
	// Declared is the errorDeclaration's declarationTime (nil: none).
	Declared    *time.Time
	ErrorReason string
	IDs         []IndexedID
	Fields      []IndexedField
}

// standard lists the EPCIS terms of an event's top level; any other member
// is an extension field.
var standard = map[string]bool{
	"@context": true, "type": true, "eventID": true, "eventTime": true, "eventTimeZoneOffset": true,
	"recordTime": true, "certificationInfo": true, "errorDeclaration": true, "epcList": true,
	"action": true, "bizStep": true, "disposition": true, "persistentDisposition": true,
	"readPoint": true, "bizLocation": true, "bizTransactionList": true, "quantityList": true,
	"sourceList": true, "destinationList": true, "sensorElementList": true, "ilmd": true,
	"parentID": true, "childEPCs": true, "childQuantityList": true, "inputEPCList": true,
	"inputQuantityList": true, "outputEPCList": true, "outputQuantityList": true,
	"transformationID": true,
}

// Index derives the index entry of a stored EPCIS event.
// Identifiers are in the canonical form of epc.Canonical, CBV values as
// canonicalVocab writes them, extension fields by their IRI (extensionIRI),
// so that a query compares them whatever form they were captured in.
func Index(rec eventstore.Recorded) (Indexed, error) {
	t, ok := TypeOf(rec.Type)
	if !ok {
		return Indexed{}, fmt.Errorf("epcis: %s is not an EPCIS event", rec.Type)
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(rec.Data, &ev); err != nil {
		return Indexed{}, fmt.Errorf("epcis: stored event %s: %w", rec.ID, err)
	}
	x := Indexed{Type: t, EventTime: rec.OccurredAt, RecordTime: rec.RecordedAt}
	ctx, err := ld.Parse(ev["@context"])
	if err != nil {
		return Indexed{}, fmt.Errorf("epcis: stored event %s: @context: %w", rec.ID, err)
	}
	x.EventID = text(ev["eventID"])
	x.Action = text(ev["action"])
	x.BizStep = vocab("bizStep", text(ev["bizStep"]))
	x.Disposition = vocab("disposition", text(ev["disposition"]))
	x.ReadPoint = id(text(member(ev["readPoint"], "id")))
	x.BizLocation = id(text(member(ev["bizLocation"], "id")))

	for _, l := range []struct{ key, role string }{
		{"epcList", RoleEPC}, {"childEPCs", RoleChild}, {"inputEPCList", RoleInput}, {"outputEPCList", RoleOutput},
	} {
		for _, s := range strings_(ev[l.key]) {
			x.IDs = append(x.IDs, IndexedID{Role: l.role, ID: epc.Canonical(s)})
		}
	}
	if p := text(ev["parentID"]); p != "" {
		x.IDs = append(x.IDs, IndexedID{Role: RoleParent, ID: epc.Canonical(p)})
	}
	for _, l := range []struct{ key, role string }{
		{"quantityList", RoleClass}, {"childQuantityList", RoleChildClass},
		{"inputQuantityList", RoleInputClass}, {"outputQuantityList", RoleOutputClass},
	} {
		for _, q := range objects(ev[l.key]) {
			c := text(q["epcClass"])
			if c == "" {
				continue
			}
			item := IndexedID{Role: l.role, ID: epc.Canonical(c), UOM: text(q["uom"])}
			if n, ok := number(q["quantity"]); ok {
				item.Quantity = &n
			}
			x.IDs = append(x.IDs, item)
		}
	}

	// A field's value is indexed when scalar; a list's scalar items are
	// indexed each (EQ_ matches any of them); a list or an object leaves a
	// row without a value, so that EXISTS_ finds it.
	add := func(family, name string, v json.RawMessage) {
		if f, ok := scalar(family, name, v); ok {
			x.Fields = append(x.Fields, f)
			return
		}
		switch first(v) {
		case '[':
			var l []json.RawMessage
			if json.Unmarshal(v, &l) != nil {
				return
			}
			for _, item := range l {
				if f, ok := scalar(family, name, item); ok {
					x.Fields = append(x.Fields, f)
				}
			}
		case '{':
		default:
			return
		}
		x.Fields = append(x.Fields, IndexedField{Family: family, Name: name})
	}
	for _, l := range []struct{ key, family, value, kind string }{
		{"bizTransactionList", FamilyBizTransaction, "bizTransaction", "bizTransactionType"},
		{"sourceList", FamilySource, "source", "sourceDestType"},
		{"destinationList", FamilyDestination, "destination", "sourceDestType"},
	} {
		for _, o := range objects(ev[l.key]) {
			v := id(text(o[l.value]))
			x.Fields = append(x.Fields, IndexedField{Family: l.family, Name: vocab(l.kind, text(o["type"])), Text: &v})
		}
	}
	if tid := text(ev["transformationID"]); tid != "" {
		v := id(tid)
		x.Fields = append(x.Fields, IndexedField{Family: FamilyTransformationID, Text: &v})
	}
	if ci := text(ev["certificationInfo"]); ci != "" {
		x.Fields = append(x.Fields, IndexedField{Family: FamilyCertification, Text: &ci})
	}
	if pd := ev["persistentDisposition"]; pd != nil {
		var p map[string]json.RawMessage
		if json.Unmarshal(pd, &p) == nil {
			for _, k := range []string{"set", "unset"} {
				for _, d := range strings_(p[k]) {
					v := vocab("disposition", d)
					x.Fields = append(x.Fields, IndexedField{Family: FamilyPersistentDisposition, Name: k, Text: &v})
				}
			}
		}
	}
	if ed := ev["errorDeclaration"]; ed != nil {
		var e map[string]json.RawMessage
		if json.Unmarshal(ed, &e) == nil {
			if at, err := time.Parse(time.RFC3339Nano, text(e["declarationTime"])); err == nil {
				at = eventstore.NormalizeTime(at)
				x.Declared = &at
			}
			x.ErrorReason = vocab("errorReason", text(e["reason"]))
			for _, c := range strings_(e["correctiveEventIDs"]) {
				x.Fields = append(x.Fields, IndexedField{Family: FamilyCorrectiveEventID, Text: &c})
			}
			extensions(ctx, e, FamilyErrorField, FamilyInnerErrorField, add, map[string]bool{
				"declarationTime": true, "reason": true, "correctiveEventIDs": true})
		}
	}
	for _, se := range objects(ev["sensorElementList"]) {
		var meta map[string]json.RawMessage
		if json.Unmarshal(se["sensorMetadata"], &meta) == nil {
			for k, v := range meta {
				add(FamilySensor, k, v)
			}
		}
		for _, r := range objects(se["sensorReport"]) {
			uom := text(r["uom"])
			for k, v := range r {
				switch k {
				case "type":
					t := vocab("sensorType", text(v))
					x.Fields = append(x.Fields, IndexedField{Family: FamilySensor, Name: k, Text: &t})
				case "value", "minValue", "maxValue", "meanValue", "sDev", "percValue":
					if n, ok := number(v); ok {
						u := uom
						x.Fields = append(x.Fields, IndexedField{Family: FamilySensor, Name: k, Text: &u, Num: &n})
					}
				default:
					add(FamilySensor, k, v)
				}
			}
		}
	}
	if il := ev["ilmd"]; il != nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(il, &m) == nil {
			extensions(ctx, m, FamilyILMD, FamilyInnerILMD, add, nil)
		}
	}
	extensions(ctx, ev, FamilyField, FamilyInner, add, standard)
	// Maps hold the members in no order; the index's rows get one.
	slices.SortStableFunc(x.Fields, func(a, b IndexedField) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Name, b.Name),
			cmp.Compare(deref(a.Text), deref(b.Text)), cmp.Compare(derefNum(a.Num), derefNum(b.Num)))
	})
	return x, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefNum(n *float64) float64 {
	if n == nil {
		return 0
	}
	return *n
}

// maxInnerDepth bounds how deep nested extension fields are indexed.
const maxInnerDepth = 8

// extensions indexes the extension fields of an object (those not in
// skip): the top-level ones under family, every one nested in them under
// inner.
func extensions(ctx ld.Context, m map[string]json.RawMessage, family, inner string,
	add func(family, name string, v json.RawMessage), skip map[string]bool) {
	var walk func(v json.RawMessage, depth int)
	walk = func(v json.RawMessage, depth int) {
		if depth > maxInnerDepth {
			return
		}
		switch first(v) {
		case '{':
			var o map[string]json.RawMessage
			if json.Unmarshal(v, &o) != nil {
				return
			}
			for k, vv := range o {
				if iri, ok := extensionIRI(ctx, k); ok {
					add(inner, iri, vv)
				}
				walk(vv, depth+1)
			}
		case '[':
			var l []json.RawMessage
			if json.Unmarshal(v, &l) != nil {
				return
			}
			for _, vv := range l {
				walk(vv, depth+1)
			}
		}
	}
	for k, v := range m {
		if skip[k] {
			continue
		}
		iri, ok := extensionIRI(ctx, k)
		if !ok {
			continue
		}
		add(family, iri, v)
		walk(v, 1)
	}
}

// scalar makes an index field of a JSON value that is a string, number or
// boolean (objects and lists are indexed by what they hold): a string that
// reads as a number or a time is also indexed as one, so GT_/LT_ compare
// values the way they were meant.
func scalar(family, name string, v json.RawMessage) (IndexedField, bool) {
	f := IndexedField{Family: family, Name: name}
	switch first(v) {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return f, false
		}
		f.Text = &s
		if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			f.Num = &n
		}
		if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
			at = eventstore.NormalizeTime(at)
			f.At = &at
		}
	case 't', 'f':
		s := string(v)
		f.Text = &s
	case '{', '[', 'n', 0:
		return f, false
	default:
		n, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return f, false
		}
		s := string(v)
		f.Text, f.Num = &s, &n
	}
	return f, true
}

func first(v json.RawMessage) byte {
	for _, c := range v {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

func text(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

func member(v json.RawMessage, key string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	return m[key]
}

func strings_(v json.RawMessage) []string {
	var l []string
	if json.Unmarshal(v, &l) != nil {
		return nil
	}
	return l
}

func objects(v json.RawMessage) []map[string]json.RawMessage {
	var l []map[string]json.RawMessage
	if json.Unmarshal(v, &l) != nil {
		return nil
	}
	return l
}

func number(v json.RawMessage) (float64, bool) {
	var n float64
	if json.Unmarshal(v, &n) != nil {
		return 0, false
	}
	return n, true
}

func vocab(kind, s string) string {
	if s == "" {
		return ""
	}
	return canonicalVocab(kind, s)
}

func id(s string) string {
	if s == "" {
		return ""
	}
	return epc.Canonical(s)
}
