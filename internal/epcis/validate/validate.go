// Package validate checks EPCIS 2.0 JSON capture input: an EPCISDocument
// (POST /capture) or a single event (POST /events). It applies GS1's
// EPCIS JSON Schema and the rules the schema cannot state (CBV URI
// forms, sensor report consistency, namespaced extension fields, the
// EPCIS JSON-LD context), and reports each fault as a Problem that names
// the field by JSON pointer in words a trading partner understands.
//
// Events of a document are validated one by one, so a capture in
// "proceed" mode can keep the valid events and report the others.
package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Problem is one fault in capture input.
type Problem struct {
	// Event is the index of the event in epcisBody.eventList, or -1 when
	// the problem concerns the document as a whole. For a single event
	// (Validator.Event) it is 0.
	Event int `json:"event"`
	// EventID is the event's eventID, when it has a readable one.
	EventID string `json:"eventID,omitempty"`
	// Pointer is the JSON pointer (RFC 6901) of the faulty field in the
	// input, e.g. /epcisBody/eventList/1/bizStep; "" is the whole input.
	Pointer string `json:"pointer"`
	// Message says what is wrong and, where it helps, what is expected.
	Message string `json:"message"`
}

// String renders the problem as "pointer: message".
func (p Problem) String() string {
	if p.Pointer == "" {
		return p.Message
	}
	return p.Pointer + ": " + p.Message
}

// Validator validates EPCIS 2.0 JSON capture input. Build it once with
// New; it is safe for concurrent use.
type Validator struct {
	schemas schemas
}

// New compiles GS1's EPCIS JSON Schema (embedded; nothing is fetched).
func New() (*Validator, error) {
	s, err := compileSchemas()
	if err != nil {
		return nil, err
	}
	return &Validator{schemas: s}, nil
}

// Document is an EPCISDocument that could be read as far as its
// eventList.
type Document struct {
	raw []byte
	// Len is the number of events in epcisBody.eventList.
	Len int
}

// Events returns every member of epcisBody.eventList as sent, in order.
// They are cut from the input on demand: validation does not pay for it.
func (d *Document) Events() []json.RawMessage {
	if d == nil {
		return nil
	}
	// Maps, not a struct: encoding/json matches struct fields without
	// regard to case, and "EPCISBODY" is not the epcisBody validated.
	var doc, body map[string]json.RawMessage
	var events []json.RawMessage
	if json.Unmarshal(d.raw, &doc) != nil || json.Unmarshal(doc["epcisBody"], &body) != nil ||
		json.Unmarshal(body["eventList"], &events) != nil || len(events) != d.Len {
		return nil // cannot happen: the same bytes decoded before
	}
	return events
}

// Accepted returns the events of d that have no problem, with their
// indexes in eventList: what a capture in "proceed" mode keeps. It
// returns nothing when a problem concerns the document as a whole.
func (d *Document) Accepted(problems []Problem) (events []json.RawMessage, indexes []int) {
	documentLevel, byEvent := Split(problems)
	if d == nil || len(documentLevel) > 0 {
		return nil, nil
	}
	for i, e := range d.Events() {
		if len(byEvent[i]) == 0 {
			events = append(events, e)
			indexes = append(indexes, i)
		}
	}
	return events, indexes
}

// Split separates problems about the document as a whole, which refuse
// it in every capture mode, from problems about single events, keyed by
// event index.
func Split(problems []Problem) (document []Problem, byEvent map[int][]Problem) {
	byEvent = map[int][]Problem{}
	for _, p := range problems {
		if p.Event < 0 {
			document = append(document, p)
		} else {
			byEvent[p.Event] = append(byEvent[p.Event], p)
		}
	}
	return document, byEvent
}

const eventListPointer = "/epcisBody/eventList/"

// Document validates an EPCISDocument. The envelope and each event are
// validated separately: a problem in one event leaves the others'
// verdicts alone. No problems means the document is valid.
func (v *Validator) Document(raw []byte) (*Document, []Problem) {
	top, p := decode(raw)
	if p != nil {
		return nil, []Problem{*p}
	}
	doc, ok := top.(map[string]any)
	if !ok {
		return nil, []Problem{{Event: -1, Message: fmt.Sprintf("an EPCIS document must be a JSON object, not %s", jsonKind(top))}}
	}
	// The schema dispatches on type; anything but the document's own
	// would have it judge the input as something else entirely.
	if t, present := doc["type"]; present && t != "EPCISDocument" {
		msg := fmt.Sprintf(`type is %s, but capture takes an EPCISDocument ("type": "EPCISDocument")`, describeValue(t))
		if s, _ := t.(string); isEventType(s) {
			msg += "; send a single event to /events"
		}
		return nil, []Problem{{Event: -1, Pointer: "/type", Message: msg}}
	}

	var out problems
	envelope, events := splitEnvelope(doc)
	out.schema(v.schemas.document.Validate(envelope), envelope, "", -1, "")
	out.documentRules(doc)
	out.capPart(0)

	var result *Document
	if events != nil {
		result = &Document{raw: raw, Len: len(events)}
	}
	seen := map[string]int{}
	for i, e := range events {
		base := fmt.Sprintf("%s%d", eventListPointer, i)
		id := eventID(e)
		before := len(out.list)
		v.event(&out, e, base, i, id)
		if id != "" {
			// An error declaration repeats the eventID of the event it
			// corrects: it is a fact of its own.
			key := id
			if m, _ := e.(map[string]any); m != nil {
				if ed, ok := m["errorDeclaration"].(map[string]any); ok {
					key += "\x00" + fmt.Sprint(ed["declarationTime"])
				}
			}
			if first, dup := seen[key]; dup {
				out.add(i, id, base+"/eventID", fmt.Sprintf("eventID %s is already used by event %d of this document", quoteValue(id), first))
			} else {
				seen[key] = i
			}
		}
		out.capPart(before)
	}
	return result, out.list
}

// Event validates a single event as taken by POST /events: it must carry
// its own @context. Problems have Event 0 and pointers relative to the
// event.
func (v *Validator) Event(raw []byte) []Problem {
	top, p := decode(raw)
	if p != nil {
		p.Event = 0
		return []Problem{*p}
	}
	e, ok := top.(map[string]any)
	if !ok {
		return []Problem{{Message: fmt.Sprintf("an EPCIS event must be a JSON object, not %s", jsonKind(top))}}
	}
	if t, _ := e["type"].(string); t == "EPCISDocument" || t == "EPCISQueryDocument" {
		return []Problem{{Pointer: "/type", Message: fmt.Sprintf("type is %s, but /events takes a single event (send documents to /capture)", t)}}
	}
	var out problems
	id := eventID(e)
	if _, ok := e["@context"]; !ok {
		out.add(0, id, "/@context", missingMessage("@context"))
	}
	out.contextRule(e, "", 0, id)
	v.event(&out, e, "", 0, id)
	out.capPart(0)
	return out.list
}

// event validates one event at pointer base: the schema definition of
// its type, then the rules the schema does not state.
func (v *Validator) event(out *problems, e any, base string, index int, id string) {
	m, ok := e.(map[string]any)
	if !ok {
		out.add(index, id, base, "the event must be an object, not "+describeValue(e))
		return
	}
	switch t := m["type"].(type) {
	case string:
		out.schema(v.schemas.validateEvent(t, m), m, base, index, id)
	case nil:
		// Without a type there is no telling which fields belong.
		out.add(index, id, base+"/type", "type is missing: the event type, e.g. ObjectEvent")
		return
	default:
		out.add(index, id, base+"/type", "type must be the event type as text (e.g. ObjectEvent), not "+describeValue(t))
		return
	}
	out.eventRules(m, base, index, id)
}

// splitEnvelope returns a shallow copy of the document whose eventList is
// empty, and the events. Validating the two apart is what lets each
// event have its own verdict; the schema validates eventList members
// with exactly the definition used for them here.
func splitEnvelope(doc map[string]any) (envelope map[string]any, events []any) {
	body, ok := doc["epcisBody"].(map[string]any)
	if !ok {
		return doc, nil
	}
	events, ok = body["eventList"].([]any)
	if !ok {
		return doc, nil
	}
	envelope = make(map[string]any, len(doc))
	for k, val := range doc {
		envelope[k] = val
	}
	emptied := make(map[string]any, len(body))
	for k, val := range body {
		emptied[k] = val
	}
	emptied["eventList"] = []any{}
	envelope["epcisBody"] = emptied
	return envelope, events
}

func eventID(e any) string {
	m, _ := e.(map[string]any)
	id, _ := m["eventID"].(string)
	if len(id) > maxQuoted {
		return ""
	}
	return id
}

func isEventType(t string) bool {
	switch t {
	case "ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent":
		return true
	}
	return false
}

// decode reads JSON input within the package's limits. Numbers stay
// json.Number, as the schema library expects.
func decode(raw []byte) (any, *Problem) {
	if p := checkShape(raw); p != nil {
		return nil, p
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, &Problem{Event: -1, Message: fmt.Sprintf("the input is not valid JSON: %v (at byte %d)", err, syntax.Offset)}
		}
		return nil, &Problem{Event: -1, Message: "the input is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Problem{Event: -1, Message: fmt.Sprintf("the input has more after its JSON value (at byte %d)", dec.InputOffset())}
	}
	return v, nil
}
