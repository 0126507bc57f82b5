package xmlbind

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The JSON side is held as ordered values so that output follows the input's
// order (deterministic, and readable next to the source document):
// object, []any, string, json.Number, bool and nil.

type member struct {
	key string
	val any
}

// object is a JSON object that keeps its members in order. Lookups go
// through an index once it grows, so that hostile documents with very many
// keys in one object stay linear.
type object struct {
	members []member
	index   map[string]int // key → position, built past indexFrom members
}

const indexFrom = 8

func newObject(ms ...member) object {
	var o object
	for _, m := range ms {
		o.set(m.key, m.val)
	}
	return o
}

func (o object) get(key string) (any, bool) {
	if o.index != nil {
		i, ok := o.index[key]
		if !ok {
			return nil, false
		}
		return o.members[i].val, true
	}
	for _, m := range o.members {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

func (o *object) find(key string) int {
	if o.index != nil {
		if i, ok := o.index[key]; ok {
			return i
		}
		return -1
	}
	for i, m := range o.members {
		if m.key == key {
			return i
		}
	}
	return -1
}

func (o *object) push(key string, val any) {
	o.members = append(o.members, member{key, val})
	switch {
	case o.index != nil:
		o.index[key] = len(o.members) - 1
	case len(o.members) > indexFrom:
		o.index = make(map[string]int, 2*len(o.members))
		for i, m := range o.members {
			o.index[m.key] = i
		}
	}
}

func (o *object) set(key string, val any) {
	if i := o.find(key); i >= 0 {
		o.members[i].val = val
		return
	}
	o.push(key, val)
}

// add appends val under key; a key seen before turns into an array of its
// values, at the position of its first occurrence (how the XML binding
// represents repeated elements).
func (o *object) add(key string, val any) {
	i := o.find(key)
	if i < 0 {
		o.push(key, val)
		return
	}
	if arr, ok := o.members[i].val.(repeated); ok {
		o.members[i].val = append(arr, val)
	} else {
		o.members[i].val = repeated{o.members[i].val, val}
	}
}

// without is o minus key.
func (o object) without(key string) object {
	out := newObject()
	for _, m := range o.members {
		if m.key != key {
			out.push(m.key, m.val)
		}
	}
	return out
}

// repeated is an array built from repeated XML elements; it encodes as a
// plain JSON array.
type repeated []any

func writeJSON(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case object:
		buf.WriteByte('{')
		for i, m := range v.members {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, m.key)
			buf.WriteByte(':')
			writeJSON(buf, m.val)
		}
		buf.WriteByte('}')
	case []any:
		writeArray(buf, v)
	case repeated:
		writeArray(buf, v)
	case string:
		writeString(buf, v)
	case json.Number:
		buf.WriteString(string(v))
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case nil:
		buf.WriteString("null")
	default:
		panic(fmt.Sprintf("xmlbind: no JSON form for %T", v)) // a bug in this package, not bad input
	}
}

func writeArray(buf *bytes.Buffer, vs []any) {
	buf.WriteByte('[')
	for i, e := range vs {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSON(buf, e)
	}
	buf.WriteByte(']')
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

// decodeJSON reads one JSON value into ordered form, refusing nesting deeper
// than maxDepth and anything after the value.
func decodeJSON(data []byte, maxDepth int) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0, maxDepth)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: JSON: data after the top-level value", ErrInvalid)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth, maxDepth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: JSON: %v", ErrInvalid, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("%w: JSON nested deeper than %d levels", ErrTooLarge, maxDepth)
	}
	switch d {
	case '{':
		o := newObject()
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%w: JSON: %v", ErrInvalid, err)
			}
			key, _ := kt.(string) // the decoder only yields string keys
			val, err := decodeValue(dec, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			o.set(key, val)
		}
		return o, closing(dec)
	case '[':
		arr := []any{}
		for dec.More() {
			val, err := decodeValue(dec, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		return arr, closing(dec)
	}
	return nil, fmt.Errorf("%w: JSON: unexpected %v", ErrInvalid, d)
}

func closing(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: JSON: %v", ErrInvalid, err)
	}
	return nil
}
