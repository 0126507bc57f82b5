package epc

import "strings"

// CheckDigit returns the GS1 mod-10 check digit (GS1 General Specifications
// §7.9.1) of digits, the key without its check digit, as an ASCII digit. ok is
// false when digits is empty or holds anything but 0-9.
func CheckDigit(digits string) (d byte, ok bool) {
	if digits == "" {
		return 0, false
	}
	sum := 0
	for i := 0; i < len(digits); i++ {
		c := digits[len(digits)-1-i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n := int(c - '0')
		if i%2 == 0 {
			n *= 3
		}
		sum += n
	}
	return byte('0' + (10-sum%10)%10), true
}

// ValidCheckDigit reports whether the last digit of key is the check digit of
// the rest.
func ValidCheckDigit(key string) bool {
	if len(key) < 2 {
		return false
	}
	d, ok := CheckDigit(key[:len(key)-1])
	return ok && d == key[len(key)-1]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// inCSET82 reports whether c is in GS1 AI encodable character set 82.
func inCSET82(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return true
	}
	return strings.IndexByte(`!"%&'()*+,-./:;<=>?_`, c) >= 0
}

// inCSET39 reports whether c is in GS1 AI encodable character set 39 (CPI).
func inCSET39(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || c == '#' || c == '-' || c == '/'
}

func validChars(s string, ok func(byte) bool, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape decodes %XX escapes; ok is false for a malformed escape.
func unescape(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(h<<4 | l)
		i += 2
	}
	return b.String(), true
}

const upperHex = "0123456789ABCDEF"

func escapeSet(s, set string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(set, c) >= 0 || c <= ' ' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// dlEscape percent-encodes a raw AI value for a GS1 Digital Link path segment:
// the characters EPC URNs escape plus those GS1 Digital Link reserves
// (! ( ) * + , :), which is what the CBV event hash reference implementation
// produces.
func dlEscape(s string) string { return escapeSet(s, `"%&/<>?!()*+,:#`) }

// urnEscape percent-encodes a raw AI value for an EPC URN (EPC Tag Data
// Standard, Table A-1): only " % & / < > ? are escaped.
func urnEscape(s string) string { return escapeSet(s, `"%&/<>?#`) }
