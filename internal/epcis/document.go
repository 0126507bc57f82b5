package epcis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Document is an EPCISDocument (or an EPCISQueryDocument, which capture
// accepts too) split into its events.
type Document struct {
	// Context is the document's "@context", as sent.
	Context json.RawMessage
	Events  []Event
}

// Event is one EPCIS event of a document.
type Event struct {
	// Index is the event's place in the document's eventList.
	Index int
	// Type is the EPCIS event type ("ObjectEvent", ...).
	Type string
	// EventID is the eventID as captured, "" when it was missing.
	EventID string
	// Time is the eventTime.
	Time time.Time
	// Declared is the errorDeclaration's declarationTime, "" when the event
	// declares no error.
	Declared string
	// Raw is the event object as sent, without the document's context.
	Raw json.RawMessage
	// Context is the JSON-LD context the event is to be read under: the
	// document's, followed by the event's own "@context" if it has one.
	Context json.RawMessage
}

// Member is one member of a JSON object, its value as sent.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members returns the members of a JSON object in the order they were
// sent, each value's bytes as sent. A key that appears twice is an error:
// JSON-LD gives it no meaning.
func Members(raw []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []Member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("member %q appears twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, Member{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// Object writes members as a JSON object, in their order.
func Object(members []Member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// lookup returns the value of a member, nil when absent.
func lookup(members []Member, key string) json.RawMessage {
	for _, m := range members {
		if m.Key == key {
			return m.Value
		}
	}
	return nil
}

// ErrMalformed is wrapped by every error of ParseDocument and ParseEvent:
// the input is not an EPCIS document (or event) at all. Validation against
// the EPCIS schema is a separate step (package validate).
var ErrMalformed = errors.New("epcis: malformed document")

// ParseDocument splits an EPCISDocument or EPCISQueryDocument into its
// events. It checks only what splitting needs (JSON objects where the
// document's structure puts them, an event type, an eventTime); the GS1
// schema and rules are checked by package validate. maxEvents bounds the
// events of one document (ErrTooManyEvents).
func ParseDocument(raw []byte, maxEvents int) (Document, error) {
	doc, err := Members(raw)
	if err != nil {
		return Document{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var d Document
	d.Context = lookup(doc, "@context")
	body := lookup(doc, "epcisBody")
	if body == nil {
		return Document{}, fmt.Errorf("%w: no epcisBody", ErrMalformed)
	}
	bm, err := Members(body)
	if err != nil {
		return Document{}, fmt.Errorf("%w: epcisBody: %v", ErrMalformed, err)
	}
	list := lookup(bm, "eventList")
	if list == nil { // an EPCISQueryDocument
		if qr := lookup(bm, "queryResults"); qr != nil {
			if qm, err := Members(qr); err == nil {
				if rb := lookup(qm, "resultsBody"); rb != nil {
					if rm, err := Members(rb); err == nil {
						list = lookup(rm, "eventList")
					}
				}
			}
		}
	}
	if list == nil {
		return Document{}, fmt.Errorf("%w: no epcisBody.eventList", ErrMalformed)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(list, &events); err != nil {
		return Document{}, fmt.Errorf("%w: eventList is not a list", ErrMalformed)
	}
	if maxEvents > 0 && len(events) > maxEvents {
		return Document{}, &TooManyEventsError{Count: len(events), Limit: maxEvents}
	}
	d.Events = make([]Event, 0, len(events))
	for i, raw := range events {
		e, err := parseEvent(raw, d.Context)
		if err != nil {
			return Document{}, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
		e.Index = i
		d.Events = append(d.Events, e)
	}
	return d, nil
}

// ParseEvent reads one event sent alone (POST /events): its context is its
// own "@context".
func ParseEvent(raw []byte) (Event, error) {
	e, err := parseEvent(raw, nil)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return e, nil
}

func parseEvent(raw json.RawMessage, docContext json.RawMessage) (Event, error) {
	m, err := Members(raw)
	if err != nil {
		return Event{}, err
	}
	e := Event{Raw: raw, Context: mergeContexts(docContext, lookup(m, "@context"))}
	if err := str(m, "type", &e.Type); err != nil || !IsEventType(e.Type) {
		return Event{}, errors.New("type must be one of ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent")
	}
	if err := str(m, "eventID", &e.EventID); err != nil {
		return Event{}, err
	}
	var at string
	if err := str(m, "eventTime", &at); err != nil || at == "" {
		return Event{}, errors.New("eventTime must be a date-time")
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return Event{}, fmt.Errorf("eventTime %s is not an RFC 3339 date-time", strconv.Quote(at))
	}
	if ed := lookup(m, "errorDeclaration"); ed != nil {
		em, err := Members(ed)
		if err != nil {
			return Event{}, errors.New("errorDeclaration must be an object")
		}
		if err := str(em, "declarationTime", &e.Declared); err != nil || e.Declared == "" {
			return Event{}, errors.New("errorDeclaration needs a declarationTime")
		}
	}
	return e, nil
}

// str reads an optional string member into out.
func str(m []Member, key string, out *string) error {
	v := lookup(m, key)
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(v, out); err != nil {
		return fmt.Errorf("%s must be a string", key)
	}
	return nil
}

// mergeContexts returns the context of an event: the document's, followed
// by the event's own. Either may be a string, an object or a list.
func mergeContexts(doc, own json.RawMessage) json.RawMessage {
	if own == nil {
		return doc
	}
	if doc == nil {
		return own
	}
	var list []json.RawMessage
	for _, c := range []json.RawMessage{doc, own} {
		var items []json.RawMessage
		if err := json.Unmarshal(c, &items); err == nil {
			list = append(list, items...)
		} else {
			list = append(list, c)
		}
	}
	out, _ := json.Marshal(list)
	return out
}

// TooManyEventsError refuses a document of more events than the capture
// limit.
type TooManyEventsError struct{ Count, Limit int }

func (e *TooManyEventsError) Error() string {
	return fmt.Sprintf("epcis: the document has %d events, more than the capture limit of %d", e.Count, e.Limit)
}

// Stored returns the event as the store keeps it: the event object as sent,
// with its context as "@context" first and, when eventID was missing, the
// given one.
func (e Event) Stored(eventID string) (json.RawMessage, error) {
	m, err := Members(e.Raw)
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(m)+2)
	if e.Context != nil {
		out = append(out, Member{Key: "@context", Value: e.Context})
	}
	if e.EventID == "" && eventID != "" {
		id, _ := json.Marshal(eventID)
		out = append(out, Member{Key: "eventID", Value: id})
	}
	for _, mm := range m {
		if mm.Key != "@context" {
			out = append(out, mm)
		}
	}
	return Object(out), nil
}
