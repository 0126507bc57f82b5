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

// object is a JSON object that keeps its members in order.
type object []member

func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

func (o *object) set(key string, val any) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].val = val
			return
		}
	}
	*o = append(*o, member{key, val})
}

// add appends val under key; a key seen before turns into an array of its
// values, at the position of its first occurrence (how the XML binding
// represents repeated elements).
func (o *object) add(key string, val any) {
	for i := range *o {
		if (*o)[i].key != key {
			continue
		}
		if arr, ok := (*o)[i].val.(repeated); ok {
			(*o)[i].val = append(arr, val)
		} else {
			(*o)[i].val = repeated{(*o)[i].val, val}
		}
		return
	}
	*o = append(*o, member{key, val})
}

// repeated is an array built from repeated XML elements; it encodes as a
// plain JSON array.
type repeated []any

func writeJSON(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case object:
		buf.WriteByte('{')
		for i, m := range v {
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
		o := object{}
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
			o = append(o, member{key, val})
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
