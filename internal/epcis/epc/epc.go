// Package epc converts the identifiers EPCIS events carry between their forms:
// EPC URNs (pure identity, class and pattern URIs of the EPC Tag Data
// Standard, e.g. urn:epc:id:sgtin:4012345.011111.9876) and GS1 Digital Link
// URIs (https://id.gs1.org/01/04012345111118/21/9876 or the same path on any
// other host). It also holds the Core Business Vocabulary (CBV) 2.0 standard
// values and converts them between bare words, URNs and GS1 Web URIs.
//
// Every function accepts hostile input: it returns the input unchanged (with
// ok false) for anything it cannot convert and never panics.
package epc

import (
	"net/url"
	"strings"
)

// gs1Key is a GS1 identifier as its element string parts: a primary key and
// key qualifiers, values raw (not percent-encoded).
type gs1Key struct {
	ai    string // primary key AI: "01", "00", "414"…
	value string
	quals []qualifier // in the order GS1 Digital Link requires
}

type qualifier struct{ ai, value string }

func (k gs1Key) qual(ai string) (string, bool) {
	for _, q := range k.quals {
		if q.ai == ai {
			return q.value, true
		}
	}
	return "", false
}

// digitalLink renders k as a GS1 Digital Link URI on id.gs1.org.
func (k gs1Key) digitalLink() string {
	var b strings.Builder
	b.WriteString(canonicalHost)
	b.WriteString("/")
	b.WriteString(k.ai)
	b.WriteString("/")
	b.WriteString(dlEscape(k.value))
	for _, q := range k.quals {
		b.WriteString("/")
		b.WriteString(q.ai)
		b.WriteString("/")
		b.WriteString(dlEscape(q.value))
	}
	return b.String()
}

// checkDigitValid reports whether the key's check digit is right, for the
// keys that have one.
func (k gs1Key) checkDigitValid() bool {
	n := map[string]int{"01": 14, "8006": 14, "00": 18, "414": 13, "417": 13, "8003": 14,
		"253": 13, "255": 13, "8017": 18, "8018": 18, "402": 17}[k.ai]
	return n == 0 || (len(k.value) >= n && ValidCheckDigit(k.value[:n]))
}

// finest drops what is coarser than the finest level of identification: the
// consumer product variant, and the lot when a serial is present (CBV 2.0
// §8.9 event hash rules).
func (k gs1Key) finest() gs1Key {
	_, serial := k.qual("21")
	var qs []qualifier
	for _, q := range k.quals {
		if q.ai == "22" || (q.ai == "10" && serial) {
			continue
		}
		qs = append(qs, q)
	}
	k.quals = qs
	return k
}

const canonicalHost = "https://id.gs1.org"

// maxInput bounds what is parsed at all; no GS1 identifier comes near it.
const maxInput = 2048

// IsURN reports whether s has the form of an EPC URN (urn:epc:id:,
// urn:epc:class: or urn:epc:idpat:), whatever its scheme.
func IsURN(s string) bool {
	return strings.HasPrefix(s, "urn:epc:id:") || strings.HasPrefix(s, "urn:epc:class:") ||
		strings.HasPrefix(s, "urn:epc:idpat:")
}

// ToDigitalLink converts an EPC URN of a GS1 key (pure identity, lgtin class
// or a GS1-key pattern such as urn:epc:idpat:sgtin:4012345.012345.*) to its
// GS1 Digital Link URI on https://id.gs1.org, with check digits computed and
// serials percent-encoded per GS1 Digital Link. A GS1 Digital Link URI is
// returned as it is, with ok true. Anything else (other URIs, non-GS1 EPC
// schemes such as gid, malformed URNs) is returned unchanged with ok false.
func ToDigitalLink(s string) (string, bool) {
	if len(s) > maxInput {
		return s, false
	}
	if k, ok := parseURN(s); ok {
		return k.digitalLink(), true
	}
	if _, ok := parseDigitalLink(s); ok {
		return s, true
	}
	return s, false
}

// Canonical returns the form in which identifiers are compared, whatever form
// they were captured in: the constrained canonical GS1 Digital Link URI of the
// CBV 2.0 event hash (https://id.gs1.org, no query string, AIs not short
// names, GTIN padded to 14 digits, only the finest level of identification).
// An EPC URN and a Digital Link URI of the same object give the same result.
// Strings that are not GS1 identifiers are returned unchanged.
func Canonical(s string) string {
	c, _ := canonical(s)
	return c
}

func canonical(s string) (string, bool) {
	if len(s) > maxInput {
		return s, false
	}
	if k, ok := parseURN(s); ok {
		return k.finest().digitalLink(), true
	}
	if k, ok := parseDigitalLink(s); ok {
		return k.finest().digitalLink(), true
	}
	return s, false
}

// IsGS1 reports whether s is an identifier this package can convert: an EPC
// URN of a GS1 key or a GS1 Digital Link URI.
func IsGS1(s string) bool {
	_, ok := canonical(s)
	return ok
}

// ---- EPC URN parsing ----

// gcpItem splits "CP.REF" parts where the company prefix and reference
// together must have total digits; it returns them validated.
func gcpRef(cp, ref string, total int) bool {
	return len(cp) >= 6 && len(cp) <= 12 && allDigits(cp) && allDigits(ref) && len(cp)+len(ref) == total
}

// withCheck appends the check digit to digits (already validated as digits).
func withCheck(digits string) string {
	d, _ := CheckDigit(digits)
	return digits + string(d)
}

// urnComponent unescapes a URN component and checks it against a character
// set and length.
func urnComponent(s string, set func(byte) bool, min, max int) (string, bool) {
	v, ok := unescape(s)
	if !ok || !validChars(v, set, min, max) {
		return "", false
	}
	return v, true
}

func parseURN(s string) (gs1Key, bool) {
	var kind, rest string
	switch {
	case strings.HasPrefix(s, "urn:epc:id:"):
		kind, rest = "id", s[len("urn:epc:id:"):]
	case strings.HasPrefix(s, "urn:epc:class:"):
		kind, rest = "class", s[len("urn:epc:class:"):]
	case strings.HasPrefix(s, "urn:epc:idpat:"):
		kind, rest = "idpat", s[len("urn:epc:idpat:"):]
	default:
		return gs1Key{}, false
	}
	scheme, body, ok := strings.Cut(rest, ":")
	if !ok {
		return gs1Key{}, false
	}
	switch kind {
	case "id":
		return parseIDURN(scheme, body)
	case "class":
		if scheme != "lgtin" {
			return gs1Key{}, false
		}
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 13) {
			return gs1Key{}, false
		}
		lot, ok := urnComponent(p[2], inCSET82, 1, 20)
		if !ok {
			return gs1Key{}, false
		}
		return gs1Key{ai: "01", value: gtin(p[0], p[1]), quals: []qualifier{{"10", lot}}}, true
	default:
		return parsePatternURN(scheme, body)
	}
}

// gtin builds a GTIN-14 from an SGTIN's company prefix and indicator/item
// reference.
func gtin(cp, ir string) string { return withCheck(ir[:1] + cp + ir[1:]) }

func parseIDURN(scheme, body string) (gs1Key, bool) {
	fail := func() (gs1Key, bool) { return gs1Key{}, false }
	switch scheme {
	case "sgtin", "upui":
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 13) {
			return fail()
		}
		if scheme == "sgtin" {
			ser, ok := urnComponent(p[2], inCSET82, 1, 20)
			if !ok {
				return fail()
			}
			return gs1Key{ai: "01", value: gtin(p[0], p[1]), quals: []qualifier{{"21", ser}}}, true
		}
		tpx, ok := urnComponent(p[2], inCSET82, 1, 28)
		if !ok {
			return fail()
		}
		return gs1Key{ai: "01", value: gtin(p[0], p[1]), quals: []qualifier{{"235", tpx}}}, true
	case "sscc":
		p := strings.Split(body, ".")
		if len(p) != 2 || !gcpRef(p[0], p[1], 17) {
			return fail()
		}
		return gs1Key{ai: "00", value: withCheck(p[1][:1] + p[0] + p[1][1:])}, true
	case "sgln":
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 12) {
			return fail()
		}
		ext, ok := urnComponent(p[2], inCSET82, 1, 20)
		if !ok {
			return fail()
		}
		k := gs1Key{ai: "414", value: withCheck(p[0] + p[1])}
		if ext != "0" {
			k.quals = []qualifier{{"254", ext}}
		}
		return k, true
	case "pgln":
		p := strings.Split(body, ".")
		if len(p) != 2 || !gcpRef(p[0], p[1], 12) {
			return fail()
		}
		return gs1Key{ai: "417", value: withCheck(p[0] + p[1])}, true
	case "grai":
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 12) {
			return fail()
		}
		ser, ok := urnComponent(p[2], inCSET82, 1, 16)
		if !ok {
			return fail()
		}
		return gs1Key{ai: "8003", value: withCheck("0"+p[0]+p[1]) + ser}, true
	case "gdti":
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 12) {
			return fail()
		}
		ser, ok := urnComponent(p[2], inCSET82, 1, 17)
		if !ok {
			return fail()
		}
		return gs1Key{ai: "253", value: withCheck(p[0]+p[1]) + ser}, true
	case "sgcn":
		p := strings.SplitN(body, ".", 3)
		if len(p) != 3 || !gcpRef(p[0], p[1], 12) || !allDigits(p[2]) || len(p[2]) < 1 || len(p[2]) > 12 {
			return fail()
		}
		return gs1Key{ai: "255", value: withCheck(p[0]+p[1]) + p[2]}, true
	case "gsrn", "gsrnp":
		p := strings.Split(body, ".")
		if len(p) != 2 || !gcpRef(p[0], p[1], 17) {
			return fail()
		}
		ai := "8018"
		if scheme == "gsrnp" {
			ai = "8017"
		}
		return gs1Key{ai: ai, value: withCheck(p[0] + p[1])}, true
	case "gsin":
		p := strings.Split(body, ".")
		if len(p) != 2 || !gcpRef(p[0], p[1], 16) {
			return fail()
		}
		return gs1Key{ai: "402", value: withCheck(p[0] + p[1])}, true
	case "giai", "ginc":
		cp, ref, ok := strings.Cut(body, ".")
		if !ok || len(cp) < 6 || len(cp) > 12 || !allDigits(cp) {
			return fail()
		}
		v, ok := urnComponent(ref, inCSET82, 1, 30-len(cp))
		if !ok {
			return fail()
		}
		ai := "8004"
		if scheme == "ginc" {
			ai = "401"
		}
		return gs1Key{ai: ai, value: cp + v}, true
	case "cpi":
		p := strings.Split(body, ".")
		if len(p) != 3 || len(p[0]) < 6 || len(p[0]) > 12 || !allDigits(p[0]) {
			return fail()
		}
		ref, ok := urnComponent(p[1], inCSET39, 1, 30-len(p[0]))
		if !ok || !allDigits(p[2]) || len(p[2]) < 1 || len(p[2]) > 12 {
			return fail()
		}
		return gs1Key{ai: "8010", value: p[0] + ref, quals: []qualifier{{"8011", p[2]}}}, true
	case "itip":
		p := strings.SplitN(body, ".", 5)
		if len(p) != 5 || !gcpRef(p[0], p[1], 13) || !twoDigits(p[2]) || !twoDigits(p[3]) {
			return fail()
		}
		ser, ok := urnComponent(p[4], inCSET82, 1, 20)
		if !ok {
			return fail()
		}
		return gs1Key{ai: "8006", value: gtin(p[0], p[1]) + p[2] + p[3], quals: []qualifier{{"21", ser}}}, true
	}
	return fail()
}

func twoDigits(s string) bool { return len(s) == 2 && allDigits(s) }

// parsePatternURN handles the EPC pattern URIs that name a GS1 class: every
// component but the serial given, the serial "*".
func parsePatternURN(scheme, body string) (gs1Key, bool) {
	fail := func() (gs1Key, bool) { return gs1Key{}, false }
	p := strings.Split(body, ".")
	if len(p) < 3 || p[len(p)-1] != "*" {
		return fail()
	}
	switch scheme {
	case "sgtin", "upui":
		if len(p) != 3 || !gcpRef(p[0], p[1], 13) {
			return fail()
		}
		return gs1Key{ai: "01", value: gtin(p[0], p[1])}, true
	case "grai", "gdti", "sgcn":
		if len(p) != 3 || !gcpRef(p[0], p[1], 12) {
			return fail()
		}
		switch scheme {
		case "grai":
			return gs1Key{ai: "8003", value: withCheck("0" + p[0] + p[1])}, true
		case "gdti":
			return gs1Key{ai: "253", value: withCheck(p[0] + p[1])}, true
		}
		return gs1Key{ai: "255", value: withCheck(p[0] + p[1])}, true
	case "cpi":
		if len(p) != 3 || len(p[0]) < 6 || len(p[0]) > 12 || !allDigits(p[0]) {
			return fail()
		}
		ref, ok := urnComponent(p[1], inCSET39, 1, 30-len(p[0]))
		if !ok {
			return fail()
		}
		return gs1Key{ai: "8010", value: p[0] + ref}, true
	case "itip":
		if len(p) != 5 || !gcpRef(p[0], p[1], 13) || !twoDigits(p[2]) || !twoDigits(p[3]) {
			return fail()
		}
		return gs1Key{ai: "8006", value: gtin(p[0], p[1]) + p[2] + p[3]}, true
	}
	return fail()
}

// ---- GS1 Digital Link parsing ----

// primaryKeys maps GS1 Digital Link primary key path segments (AI or the
// short names of GS1 Digital Link 1.0) to the AI.
var primaryKeys = map[string]string{
	"01": "01", "gtin": "01",
	"8006": "8006", "itip": "8006",
	"8010": "8010", "cpid": "8010",
	"414": "414", "gln": "414",
	"417": "417", "party": "417",
	"8017": "8017", "gsrnp": "8017",
	"8018": "8018", "gsrn": "8018",
	"255": "255", "gcn": "255",
	"00": "00", "sscc": "00",
	"253": "253", "gdti": "253",
	"401": "401", "ginc": "401",
	"402": "402", "gsin": "402",
	"8003": "8003", "grai": "8003",
	"8004": "8004", "giai": "8004",
}

var qualifierNames = map[string]string{
	"22": "22", "cpv": "22",
	"10": "10", "lot": "10",
	"21": "21", "ser": "21",
	"235":  "235",
	"254":  "254",
	"8011": "8011",
	"8019": "8019", "srin": "8019",
}

// qualifierPaths lists, per primary key, the key qualifiers it may carry in
// the order they must appear.
var qualifierPaths = map[string][]string{
	"01":   {"22", "10", "21", "235"},
	"8006": {"22", "10", "21"},
	"414":  {"254"},
	"8010": {"8011"},
	"8017": {"8019"},
	"8018": {"8019"},
}

// validValue checks a raw AI value per the GS1 General Specifications' AI
// format; for "01" it also pads GTIN-8/12/13 to 14 digits.
func validValue(ai, v string) (string, bool) {
	switch ai {
	case "01":
		if !allDigits(v) {
			return "", false
		}
		switch len(v) {
		case 8, 12, 13, 14:
			return strings.Repeat("0", 14-len(v)) + v, true
		}
		return "", false
	case "00", "8006", "8017", "8018":
		return v, len(v) == 18 && allDigits(v)
	case "414", "417":
		return v, len(v) == 13 && allDigits(v)
	case "402":
		return v, len(v) == 17 && allDigits(v)
	case "253":
		return v, len(v) >= 13 && allDigits(v[:min(len(v), 13)]) && validChars(v[13:], inCSET82, 0, 17)
	case "255":
		return v, len(v) >= 13 && len(v) <= 25 && allDigits(v)
	case "8003":
		return v, len(v) >= 14 && allDigits(v[:min(len(v), 14)]) && validChars(v[14:], inCSET82, 0, 16)
	case "8004", "401":
		return v, len(v) >= 5 && allDigits(v[:4]) && validChars(v, inCSET82, 5, 30)
	case "8010":
		return v, len(v) >= 5 && allDigits(v[:4]) && validChars(v, inCSET39, 5, 30)
	case "21", "10", "22", "254":
		return v, validChars(v, inCSET82, 1, 20)
	case "235":
		return v, validChars(v, inCSET82, 1, 28)
	case "8011":
		return v, len(v) >= 1 && len(v) <= 12 && allDigits(v)
	case "8019":
		return v, len(v) >= 1 && len(v) <= 10 && allDigits(v)
	}
	return "", false
}

// parseDigitalLink reads a GS1 Digital Link URI on any host, with or without
// a path before the primary key, a query string or a fragment.
func parseDigitalLink(s string) (gs1Key, bool) {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return gs1Key{}, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return gs1Key{}, false
	}
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if n := len(segs); n > 0 && segs[n-1] == "" {
		segs = segs[:n-1] // a trailing slash
	}
	for i := 0; i+1 < len(segs); i++ {
		ai, ok := primaryKeys[segs[i]]
		if !ok {
			continue
		}
		if k, ok := parseKeyPath(ai, segs[i+1:]); ok {
			return k, true
		}
	}
	return gs1Key{}, false
}

// parseKeyPath parses the primary key value and key qualifier pairs that
// follow the primary key AI; segs[0] is the value.
func parseKeyPath(ai string, segs []string) (gs1Key, bool) {
	if len(segs)%2 != 1 {
		return gs1Key{}, false
	}
	raw, err := url.PathUnescape(segs[0])
	if err != nil {
		return gs1Key{}, false
	}
	v, ok := validValue(ai, raw)
	if !ok {
		return gs1Key{}, false
	}
	k := gs1Key{ai: ai, value: v}
	allowed := qualifierPaths[ai]
	next := 0
	for j := 1; j+1 < len(segs); j += 2 {
		q, ok := qualifierNames[segs[j]]
		if !ok {
			return gs1Key{}, false
		}
		pos := -1
		for x := next; x < len(allowed); x++ {
			if allowed[x] == q {
				pos = x
				break
			}
		}
		if pos < 0 {
			return gs1Key{}, false
		}
		next = pos + 1
		raw, err := url.PathUnescape(segs[j+1])
		if err != nil {
			return gs1Key{}, false
		}
		qv, ok := validValue(q, raw)
		if !ok {
			return gs1Key{}, false
		}
		k.quals = append(k.quals, qualifier{q, qv})
	}
	// 235 (third-party serial) is an alternative to 22/10/21, not a follow-on.
	if _, tpx := k.qual("235"); tpx && len(k.quals) > 1 {
		return gs1Key{}, false
	}
	return k, true
}
