package validate

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Limits on input, so that hostile input costs a bounded amount of work.
const (
	// maxDepth bounds nesting of objects and arrays. An EPCIS event
	// with sensor data is about eight levels below the document; the
	// rest is room for user extensions.
	maxDepth = 48
	// maxNumberLength bounds the text of a JSON number; longer numbers
	// make arbitrary-precision comparisons in the schema library slow.
	maxNumberLength = 64
)

// checkShape scans raw JSON for nesting deeper than maxDepth and numbers
// that are too long or outside float64 range, before anything decodes
// or recurses into it. Syntax is left to the decoder.
func checkShape(raw []byte) *Problem {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return &Problem{Event: -1, Message: fmt.Sprintf("the input nests objects and arrays more than %d levels deep (at byte %d)", maxDepth, i)}
			}
		case c == '}' || c == ']':
			depth--
		case c == '-' || (c >= '0' && c <= '9'):
			end := i
			for end < len(raw) && isNumberByte(raw[end]) {
				end++
			}
			if p := checkNumber(raw[i:end], i); p != nil {
				return p
			}
			i = end - 1
		}
	}
	return nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func checkNumber(num []byte, at int) *Problem {
	if len(num) > maxNumberLength {
		return &Problem{Event: -1, Message: fmt.Sprintf("a number at byte %d is longer than %d characters", at, maxNumberLength)}
	}
	outOfRange := &Problem{Event: -1, Message: fmt.Sprintf("the number %s at byte %d is out of range", num, at)}
	if _, err := strconv.ParseFloat(string(num), 64); errors.Is(err, strconv.ErrRange) {
		return outOfRange
	}
	// Underflow is no error to ParseFloat, but a tiny exponent is as
	// costly to the schema library as a huge one.
	if e := bytes.IndexAny(num, "eE"); e >= 0 {
		if exp, err := strconv.Atoi(string(num[e+1:])); err == nil && (exp < -400 || exp > 400) {
			return outOfRange
		}
	}
	// Anything else that is not a number is the decoder's syntax error.
	return nil
}
