package epc

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// GCPLengthFunc returns the length of the GS1 Company Prefix that key starts
// with. key is a GS1 key's digits from the company prefix on: a GTIN-14
// without its indicator digit, an SSCC without its extension digit, a GRAI
// without its leading zero, any other key (GLN, GDTI, GIAI…) as it is. ok is
// false when the length is not known. EPC URNs need it because they separate
// the company prefix, which GS1 element strings and Digital Link URIs do not.
type GCPLengthFunc func(key string) (length int, ok bool)

// DefaultGCPLength is the company prefix length the package-level ToURN
// assumes: 7 digits, the most common allocation and the one of every GS1
// example key (4012345, 0614141). GS1 publishes the authoritative table of
// allocated prefix lengths (gcpprefixformatlist, see the GS1 RFID/Barcode
// Interoperability Guideline §5.6.3); it is not bundled here (it is large and
// not under an open licence), so a deployment that must convert Digital Link
// URIs of other prefixes to URNs loads it with ParseGCPPrefixFormatList and
// builds its own Converter.
const DefaultGCPLength = 7

// FixedGCPLength returns a GCPLengthFunc that answers n for every key.
func FixedGCPLength(n int) GCPLengthFunc {
	return func(string) (int, bool) { return n, n >= 1 && n <= 12 }
}

// GCPTable is a table of GS1 Company Prefix lengths by key prefix, as GS1
// publishes in gcpprefixformatlist. The zero value is empty.
type GCPTable struct {
	prefixes map[string]int
	maxLen   int
}

// ParseGCPPrefixFormatList reads GS1's GCP length table in its JSON form
// ({"GCPPrefixFormatList": {"entry": [{"prefix": "…", "gcpLength": 7}…]}}).
func ParseGCPPrefixFormatList(data []byte) (*GCPTable, error) {
	var doc struct {
		List struct {
			Entry []struct {
				Prefix    string `json:"prefix"`
				GCPLength int    `json:"gcpLength"`
			} `json:"entry"`
		} `json:"GCPPrefixFormatList"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("epc: GCP prefix format list: %w", err)
	}
	t := &GCPTable{prefixes: make(map[string]int, len(doc.List.Entry))}
	for _, e := range doc.List.Entry {
		if e.Prefix == "" || len(e.Prefix) > 12 || !allDigits(e.Prefix) || e.GCPLength < 0 || e.GCPLength > 12 {
			return nil, fmt.Errorf("epc: GCP prefix format list: bad entry %q → %d", e.Prefix, e.GCPLength)
		}
		t.prefixes[e.Prefix] = e.GCPLength
		t.maxLen = max(t.maxLen, len(e.Prefix))
	}
	if len(t.prefixes) == 0 {
		return nil, fmt.Errorf("epc: GCP prefix format list has no entries")
	}
	return t, nil
}

// Lookup returns the company prefix length for key, by the longest prefix
// of key in the table. A length of 0 in the table (a prefix GS1 does not
// allocate company prefixes under) is reported as not known.
func (t *GCPTable) Lookup(key string) (int, bool) {
	if t == nil {
		return 0, false
	}
	for n := min(len(key), t.maxLen); n > 0; n-- {
		if l, ok := t.prefixes[key[:n]]; ok {
			return l, l > 0
		}
	}
	return 0, false
}

// Len returns the number of prefixes in the table.
func (t *GCPTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.prefixes)
}

// Prefixes returns the table's prefixes, sorted (for inspection and tests).
func (t *GCPTable) Prefixes() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.prefixes))
	for p := range t.prefixes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Converter converts identifiers between EPC URNs and GS1 Digital Link URIs
// with a given source of company prefix lengths. It is immutable and safe for
// concurrent use.
type Converter struct {
	gcpLength GCPLengthFunc
}

// NewConverter returns a Converter that finds company prefix lengths with
// gcp; nil means DefaultGCPLength for every key.
func NewConverter(gcp GCPLengthFunc) *Converter {
	if gcp == nil {
		gcp = FixedGCPLength(DefaultGCPLength)
	}
	return &Converter{gcpLength: gcp}
}

var defaultConverter = NewConverter(nil)

// ToURN converts a GS1 Digital Link URI (any host, with or without a path
// before the key, query string or fragment) to its EPC URN, assuming
// DefaultGCPLength: see Converter.ToURN.
func ToURN(s string) (string, bool) { return defaultConverter.ToURN(s) }

// ToURN converts a GS1 Digital Link URI to the EPC URN of the same object:
// pure identity (urn:epc:id:…), lgtin class for a GTIN with a lot, or a
// pattern (urn:epc:idpat:sgtin:….*) for a GTIN alone and other keys without
// their serial. A serial makes the lot and consumer product variant
// irrelevant, as in Canonical. An EPC URN of a GS1 key is returned as it is
// with ok true. Anything else, and keys whose company prefix length is not
// known or not 6 to 12 digits (EPC URNs cannot carry others), are returned
// unchanged with ok false.
func (c *Converter) ToURN(s string) (string, bool) {
	if len(s) > maxInput {
		return s, false
	}
	if _, ok := parseURN(s); ok {
		return s, true
	}
	k, ok := parseDigitalLink(s)
	if !ok {
		return s, false
	}
	if !k.checkDigitValid() {
		// A URN has no check digit: converting would silently name another object.
		return s, false
	}
	if u, ok := c.keyURN(k.finest()); ok {
		return u, true
	}
	return s, false
}

// gcpSplit returns the company prefix length for the digits starting at the
// company prefix, checked against what the key leaves for its reference.
func (c *Converter) gcpSplit(digits string, refMin int) (int, bool) {
	n, ok := c.gcpLength(digits)
	if !ok || n < 6 || n > 12 || n > len(digits)-refMin {
		return 0, false
	}
	if !allDigits(digits[:n]) {
		return 0, false
	}
	return n, true
}

func (c *Converter) keyURN(k gs1Key) (string, bool) {
	v := k.value
	switch k.ai {
	case "01", "8006":
		g := v[:14]
		n, ok := c.gcpSplit(g[1:13], 0)
		if !ok {
			return "", false
		}
		cp, ir := g[1:1+n], g[:1]+g[1+n:13]
		if k.ai == "8006" {
			pt := v[14:16] + "." + v[16:18]
			if ser, ok := k.qual("21"); ok {
				return "urn:epc:id:itip:" + cp + "." + ir + "." + pt + "." + urnEscape(ser), true
			}
			if len(k.quals) > 0 {
				return "", false // a lot of an ITIP has no EPC form
			}
			return "urn:epc:idpat:itip:" + cp + "." + ir + "." + pt + ".*", true
		}
		if ser, ok := k.qual("21"); ok {
			return "urn:epc:id:sgtin:" + cp + "." + ir + "." + urnEscape(ser), true
		}
		if tpx, ok := k.qual("235"); ok {
			return "urn:epc:id:upui:" + cp + "." + ir + "." + urnEscape(tpx), true
		}
		if lot, ok := k.qual("10"); ok {
			return "urn:epc:class:lgtin:" + cp + "." + ir + "." + urnEscape(lot), true
		}
		return "urn:epc:idpat:sgtin:" + cp + "." + ir + ".*", true
	case "00":
		n, ok := c.gcpSplit(v[1:17], 0)
		if !ok {
			return "", false
		}
		return "urn:epc:id:sscc:" + v[1:1+n] + "." + v[:1] + v[1+n:17], true
	case "414", "417":
		n, ok := c.gcpSplit(v[:12], 0)
		if !ok {
			return "", false
		}
		if k.ai == "417" {
			return "urn:epc:id:pgln:" + v[:n] + "." + v[n:12], true
		}
		ext := "0"
		if e, ok := k.qual("254"); ok {
			ext = urnEscape(e)
		}
		return "urn:epc:id:sgln:" + v[:n] + "." + v[n:12] + "." + ext, true
	case "8003":
		n, ok := c.gcpSplit(v[1:13], 0)
		if !ok || v[0] != '0' {
			return "", false
		}
		ser := v[14:]
		if ser == "" {
			return "urn:epc:idpat:grai:" + v[1:1+n] + "." + v[1+n:13] + ".*", true
		}
		return "urn:epc:id:grai:" + v[1:1+n] + "." + v[1+n:13] + "." + urnEscape(ser), true
	case "253", "255":
		n, ok := c.gcpSplit(v[:12], 0)
		if !ok {
			return "", false
		}
		scheme := map[string]string{"253": "gdti", "255": "sgcn"}[k.ai]
		ser := v[13:]
		if ser == "" {
			return "urn:epc:idpat:" + scheme + ":" + v[:n] + "." + v[n:12] + ".*", true
		}
		return "urn:epc:id:" + scheme + ":" + v[:n] + "." + v[n:12] + "." + urnEscape(ser), true
	case "8017", "8018":
		n, ok := c.gcpSplit(v[:17], 0)
		if !ok {
			return "", false
		}
		if len(k.quals) > 0 {
			return "", false // a service relation instance number has no EPC form
		}
		scheme := map[string]string{"8017": "gsrnp", "8018": "gsrn"}[k.ai]
		return "urn:epc:id:" + scheme + ":" + v[:n] + "." + v[n:17], true
	case "402":
		n, ok := c.gcpSplit(v[:16], 0)
		if !ok {
			return "", false
		}
		return "urn:epc:id:gsin:" + v[:n] + "." + v[n:16], true
	case "8004", "401":
		n, ok := c.gcpSplit(leadingDigits(v), 0)
		if !ok || n >= len(v) {
			return "", false
		}
		scheme := map[string]string{"8004": "giai", "401": "ginc"}[k.ai]
		return "urn:epc:id:" + scheme + ":" + v[:n] + "." + urnEscape(v[n:]), true
	case "8010":
		n, ok := c.gcpSplit(leadingDigits(v), 0)
		if !ok || n >= len(v) {
			return "", false
		}
		ref := strings.NewReplacer("#", "%23", "/", "%2F").Replace(v[n:])
		if ser, ok := k.qual("8011"); ok {
			return "urn:epc:id:cpi:" + v[:n] + "." + ref + "." + ser, true
		}
		return "urn:epc:idpat:cpi:" + v[:n] + "." + ref + ".*", true
	}
	return "", false
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// EPCFormat is the GS1-EPC-Format request header: the form in which EPCs are
// returned.
type EPCFormat int

// The GS1-EPC-Format values.
const (
	EPCNoPreference      EPCFormat = iota // No_Preference: any form
	EPCAlwaysDigitalLink                  // Always_GS1_Digital_Link (the default)
	EPCAlwaysURN                          // Always_EPC_URN
	EPCNeverTranslate                     // Never_Translates: as captured
)

var epcFormatNames = []string{"No_Preference", "Always_GS1_Digital_Link", "Always_EPC_URN", "Never_Translates"}

// String returns the header value.
func (f EPCFormat) String() string { return headerName("EPCFormat", epcFormatNames, int(f)) }

// ParseEPCFormat reads a GS1-EPC-Format header value; an absent (empty)
// header means Always_GS1_Digital_Link, the binding's default.
func ParseEPCFormat(h string) (EPCFormat, error) {
	i, err := parseHeader("GS1-EPC-Format", epcFormatNames, int(EPCAlwaysDigitalLink), h)
	return EPCFormat(i), err
}

// FormatEPC returns s in the form f asks for: Always_GS1_Digital_Link gives
// the Digital Link URI of a URN (a Digital Link stays as captured),
// Always_EPC_URN the URN of a Digital Link; No_Preference and
// Never_Translates return s as captured. Identifiers that cannot be converted
// are returned as they are.
func (c *Converter) FormatEPC(s string, f EPCFormat) string {
	switch f {
	case EPCAlwaysDigitalLink:
		out, _ := ToDigitalLink(s)
		return out
	case EPCAlwaysURN:
		out, _ := c.ToURN(s)
		return out
	}
	return s
}

// FormatEPC is Converter.FormatEPC with DefaultGCPLength.
func FormatEPC(s string, f EPCFormat) string { return defaultConverter.FormatEPC(s, f) }
