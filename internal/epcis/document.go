package epcis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tlm/tracktrace/internal/eventstore"
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

// MaxEventIDLength bounds an eventID (a URI: a UUID URN or an event hash
// is under 100 bytes).
const MaxEventIDLength = 1000

// Member is one member of a JSON object, its value as sent.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members returns the members of a JSON object in the order they were
// sent, each value's bytes as sent. A key that appears twice is an error:
// JSON-LD gives it no meaning.
func Members(raw []byte) ([]Member, error) {
	if !json.Valid(raw) {
		return decodeMembers(raw) // for its error, the decoder's own
	}
	// The values are cut from one copy of the input, so that they do not
	// alias the caller's buffer.
	return validMembers(append([]byte(nil), raw...))
}

// validMembers is Members of valid JSON: the members are cut by finding
// where each value ends, several times cheaper than decoding token by
// token. The values are slices of buf.
func validMembers(buf []byte) ([]Member, error) {
	i := skipSpace(buf, 0)
	if buf[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []Member
	seen := map[string]bool{}
	for i = skipSpace(buf, i+1); buf[i] != '}'; {
		end := stringEnd(buf, i)
		key, err := unquote(buf[i:end])
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("member %q appears twice", key)
		}
		seen[key] = true
		i = skipSpace(buf, skipSpace(buf, end)+1) // past the colon
		end = valueEnd(buf, i)
		out = append(out, Member{Key: key, Value: buf[i:end:end]})
		if i = skipSpace(buf, end); buf[i] == ',' {
			i = skipSpace(buf, i+1)
		}
	}
	return out, nil
}

// validElements returns the elements of a JSON array (valid JSON) as
// json.Unmarshal into a []json.RawMessage does: null is no elements,
// another value than an array an error. The elements are slices of buf.
func validElements(buf []byte) ([]json.RawMessage, error) {
	i := skipSpace(buf, 0)
	switch {
	case bytes.HasPrefix(buf[i:], []byte("null")):
		return nil, nil
	case buf[i] != '[':
		return nil, errors.New("not a JSON array")
	}
	var out []json.RawMessage
	for i = skipSpace(buf, i+1); buf[i] != ']'; {
		end := valueEnd(buf, i)
		out = append(out, buf[i:end:end])
		if i = skipSpace(buf, end); buf[i] == ',' {
			i = skipSpace(buf, i+1)
		}
	}
	return out, nil
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i]
// (valid JSON).
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i]
// (valid JSON). It keeps no stack: nesting cannot exhaust it.
func valueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		default:
			if depth == 0 { // a number, true, false or null
				for i < len(b) && !endsLiteral(b[i]) {
					i++
				}
				return i
			}
			continue
		}
		if depth == 0 {
			return i + 1
		}
	}
	return i
}

// endsLiteral reports whether c ends a number, true, false or null.
func endsLiteral(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// unquote reads a JSON string (valid JSON) as the decoder does.
func unquote(s []byte) (string, error) {
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s[1 : len(s)-1]), nil
	}
	var out string
	err := json.Unmarshal(s, &out)
	return out, err
}

// decodeMembers is Members decoding token by token.
func decodeMembers(raw []byte) ([]Member, error) {
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
		if plainKey(m.Key) {
			b.WriteByte('"')
			b.WriteString(m.Key)
			b.WriteByte('"')
		} else {
			k, _ := json.Marshal(m.Key)
			b.Write(k)
		}
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// plainKey reports whether json.Marshal writes k as it is, quoted:
// printable ASCII that is neither escaped nor HTML-escaped.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
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
	// Members validated the whole document: its parts are cut as they are.
	bm, err := validMembers(body)
	if err != nil {
		return Document{}, fmt.Errorf("%w: epcisBody: %v", ErrMalformed, err)
	}
	list := lookup(bm, "eventList")
	if list == nil { // an EPCISQueryDocument
		if qr := lookup(bm, "queryResults"); qr != nil {
			if qm, err := validMembers(qr); err == nil {
				if rb := lookup(qm, "resultsBody"); rb != nil {
					if rm, err := validMembers(rb); err == nil {
						list = lookup(rm, "eventList")
					}
				}
			}
		}
	}
	if list == nil {
		return Document{}, fmt.Errorf("%w: no epcisBody.eventList", ErrMalformed)
	}
	events, err := validElements(list)
	if err != nil {
		return Document{}, fmt.Errorf("%w: eventList is not a list", ErrMalformed)
	}
	if maxEvents > 0 && len(events) > maxEvents {
		return Document{}, &TooManyEventsError{Count: len(events), Limit: maxEvents}
	}
	d.Events = make([]Event, 0, len(events))
	for i, raw := range events {
		m, err := validMembers(raw)
		if err != nil {
			return Document{}, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
		e, err := parseEvent(raw, m, d.Context)
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
	m, err := Members(raw)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e, err := parseEvent(raw, m, nil)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return e, nil
}

// parseEvent reads an event from its members m, cut from raw.
func parseEvent(raw json.RawMessage, m []Member, docContext json.RawMessage) (Event, error) {
	var err error
	if hasNUL(raw) {
		// No engine stores it in text (PostgreSQL refuses it outright),
		// and no EPCIS value needs it.
		return Event{}, errors.New("a name or value holds the NUL character (U+0000), which is not stored")
	}
	e := Event{Raw: raw, Context: mergeContexts(docContext, lookup(m, "@context"))}
	if err := str(m, "type", &e.Type); err != nil || !IsEventType(e.Type) {
		return Event{}, errors.New("type must be one of ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent")
	}
	if err := str(m, "eventID", &e.EventID); err != nil {
		return Event{}, err
	}
	if len(e.EventID) > MaxEventIDLength {
		return Event{}, fmt.Errorf("eventID has %d bytes; at most %d are kept", len(e.EventID), MaxEventIDLength)
	}
	var at string
	if err := str(m, "eventTime", &at); err != nil || at == "" {
		return Event{}, errors.New("eventTime must be a date-time")
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return Event{}, fmt.Errorf("eventTime %s is not an RFC 3339 date-time", strconv.Quote(at))
	}
	if !e.Time.After(time.Time{}) {
		return Event{}, fmt.Errorf("eventTime %s is before the first instant the store keeps (0001-01-01T00:00:00.000001Z)", strconv.Quote(at))
	}
	if ed := lookup(m, "errorDeclaration"); ed != nil {
		em, err := validMembers(ed)
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
	// An item given twice is applied once, at its last place: the same
	// definitions in the end, and a list GS1's schema takes (its items are
	// unique).
	kept := make([]json.RawMessage, 0, len(list))
	for i, item := range list {
		repeated := false
		for _, later := range list[i+1:] {
			if eventstore.JSONEqual(item, later) {
				repeated = true
				break
			}
		}
		if !repeated {
			kept = append(kept, item)
		}
	}
	out, _ := json.Marshal(kept)
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

// hasNUL reports whether a JSON value has a name or string holding U+0000.
// Raw JSON cannot carry the byte itself, only its escape, so values without
// the escape are not decoded.
func hasNUL(raw []byte) bool {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			return true
		}
	}
}
