package epcis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tlm/tracktrace/internal/epcis/epc"
)

// dlRoot starts every canonical GS1 Digital Link URI (epc.Canonical).
const dlRoot = "https://id.gs1.org/"

// matchRoles returns the index roles a MATCH_ parameter looks in, and
// whether it matches classes (quantity elements) rather than instances.
func matchRoles(param string) ([]string, bool) {
	switch param {
	case "MATCH_epc":
		return []string{RoleEPC, RoleChild}, false
	case "MATCH_parentID":
		return []string{RoleParent}, false
	case "MATCH_inputEPC":
		return []string{RoleInput}, false
	case "MATCH_outputEPC":
		return []string{RoleOutput}, false
	case "MATCH_anyEPC":
		return []string{RoleEPC, RoleChild, RoleParent, RoleInput, RoleOutput}, false
	case "MATCH_epcClass":
		return []string{RoleClass, RoleChildClass}, true
	case "MATCH_inputEPCClass":
		return []string{RoleInputClass}, true
	case "MATCH_outputEPCClass":
		return []string{RoleOutputClass}, true
	}
	return slices.Clone(quantityRoles), true // MATCH_anyEPCClass
}

// idMatches turns a MATCH_ value into matches on the index's canonical
// identifiers (GS1 Digital Link URIs on id.gs1.org, other URIs as they
// are):
//   - an identifier (EPC URN or Digital Link, any host) matches its
//     canonical form;
//   - an EPC pattern (urn:epc:idpat:SCHEME:...*) matches the instances of
//     the fixed components: a prefix of the canonical form, with a LIKE
//     pattern where the wildcard is not at the end of it (an SGTIN pattern
//     with its item reference left open, CP.*.*, fixes digits inside the
//     GTIN). The canonical form does not keep where the company prefix
//     ends, so a company-prefix pattern also matches the keys of longer
//     company prefixes that start with the same digits;
//   - a Digital Link ending in "/*" matches what lies under it: ".../01/G/*"
//     every identifier of GTIN G, ".../01/G/21/*" its serialised instances.
//
// For classes (MATCH_*EPCClass) an SGTIN pattern or a GTIN-only Digital
// Link matches the class itself and its lots (LGTINs).
func idMatches(v string, class bool) ([]IDMatch, error) {
	switch {
	case strings.HasPrefix(v, "urn:epc:idpat:"):
		return urnPattern(v, class)
	case strings.HasSuffix(v, "*") && (strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://")):
		return dlPattern(v, class)
	case strings.Contains(v, "*"):
		return nil, fmt.Errorf("%q: a wildcard is only allowed in an EPC pattern (urn:epc:idpat:) or at the end of a GS1 Digital Link", v)
	}
	c := epc.Canonical(v)
	out := []IDMatch{{Exact: c}}
	if class && isGTINOnly(c) {
		out = append(out, IDMatch{Prefix: c + "/10/"})
	}
	return out, nil
}

// isGTINOnly reports whether a canonical id is a GTIN without qualifiers.
func isGTINOnly(c string) bool {
	g, ok := strings.CutPrefix(c, dlRoot+"01/")
	return ok && len(g) == 14 && !strings.Contains(g, "/")
}

// companyPrefix checks the company prefix of a GS1 pattern.
func companyPrefix(cp string) error {
	if len(cp) < 6 || len(cp) > 12 || strings.Trim(cp, "0123456789") != "" {
		return fmt.Errorf("%q is not a GS1 company prefix (6 to 12 digits)", cp)
	}
	return nil
}

// gs1Patterns lists, per EPC scheme of a GS1 key, the number of URN
// components, the key's AI, what follows the key in the canonical form
// when only the last component is open ("" when the serial is part of
// the key's value), and the key's length in digits when it is all digits
// and so can be matched digit by digit (0 otherwise).
var gs1Patterns = map[string]struct {
	parts  int
	ai     string
	serial string
	digits int
}{
	"sgtin": {3, "01", "/21/", 14},
	"sscc":  {2, "00", "", 18},
	"sgln":  {3, "414", "/254/", 13},
	"grai":  {3, "8003", "", 0},
	"gdti":  {3, "253", "", 0},
	"sgcn":  {3, "255", "", 0},
	"giai":  {2, "8004", "", 0},
	"gsrn":  {2, "8018", "", 18},
	"gsrnp": {2, "8017", "", 18},
	"pgln":  {2, "417", "", 13},
	"ginc":  {2, "401", "", 0},
	"gsin":  {2, "402", "", 17},
	"cpi":   {3, "8010", "/8011/", 0},
	"itip":  {5, "8006", "/21/", 0},
	"upui":  {3, "01", "/235/", 0},
}

// urnPattern reads an EPC pattern URI.
func urnPattern(v string, class bool) ([]IDMatch, error) {
	scheme, body, ok := strings.Cut(strings.TrimPrefix(v, "urn:epc:idpat:"), ":")
	if !ok || scheme == "" || body == "" {
		return nil, fmt.Errorf("%q is not an EPC pattern URI", v)
	}
	parts := strings.Split(body, ".")
	open := slices.Index(parts, "*")
	if open < 0 {
		return []IDMatch{{Exact: epc.Canonical("urn:epc:id:" + scheme + ":" + body)}}, nil
	}
	for _, p := range parts[open:] {
		if p != "*" {
			return nil, fmt.Errorf("%q: only the last components of an EPC pattern may be *", v)
		}
	}
	g, isGS1 := gs1Patterns[scheme]
	if !isGS1 {
		prefix := "urn:epc:id:" + scheme + ":"
		if open > 0 {
			prefix += strings.Join(parts[:open], ".") + "."
		}
		return []IDMatch{{Prefix: prefix}}, nil
	}
	if len(parts) != g.parts {
		return nil, fmt.Errorf("%q: an %s pattern has %d components", v, scheme, g.parts)
	}
	root := dlRoot + g.ai + "/"
	if open == 0 {
		return []IDMatch{{Prefix: root}}, nil
	}
	if err := companyPrefix(parts[0]); err != nil {
		return nil, fmt.Errorf("%q: %w", v, err)
	}
	if open == len(parts)-1 && open > 1 {
		// Every component but the serial: the key is known.
		key, err := patternKey(v, scheme, parts)
		if err != nil {
			return nil, err
		}
		switch {
		case class && scheme == "sgtin":
			return []IDMatch{{Exact: key}, {Prefix: key + "/10/"}}, nil
		case scheme == "sgln":
			return []IDMatch{{Exact: key}, {Prefix: key + g.serial}}, nil
		case g.serial == "":
			return []IDMatch{{Prefix: key}}, nil
		}
		return []IDMatch{{Prefix: key + g.serial}}, nil
	}
	if open != 1 {
		return nil, fmt.Errorf("%q: this pattern is not supported; leave open the serial or everything after the company prefix", v)
	}
	cp := parts[0]
	switch scheme {
	case "sgtin":
		// The GTIN is the indicator digit, the company prefix, the rest of
		// the item reference and a check digit.
		tpl := root + "_" + cp + strings.Repeat("_", 13-len(cp))
		if class {
			return []IDMatch{{Prefix: root, Like: tpl}, {Prefix: root, Like: tpl + "/10/%"}}, nil
		}
		return []IDMatch{{Prefix: root, Like: tpl + "/21/%"}}, nil
	case "sscc":
		// The extension digit comes before the company prefix.
		return []IDMatch{{Prefix: root, Like: root + "_" + cp + strings.Repeat("_", 17-len(cp))}}, nil
	case "grai":
		return []IDMatch{{Prefix: root + "0" + cp}}, nil
	case "itip", "upui":
		return nil, fmt.Errorf("%q: this pattern is not supported; leave open only the serial", v)
	}
	return []IDMatch{{Prefix: root + cp}}, nil
}

// patternKey returns the canonical key of a pattern whose serial alone is
// open.
func patternKey(v, scheme string, parts []string) (string, error) {
	id := v
	if scheme == "sgln" {
		// The location itself: the SGLN of extension 0.
		id = "urn:epc:id:sgln:" + parts[0] + "." + parts[1] + ".0"
	}
	key, ok := epc.ToDigitalLink(id)
	if !ok || !strings.HasPrefix(key, dlRoot) {
		return "", fmt.Errorf("%q is not a valid %s pattern", v, scheme)
	}
	return key, nil
}

// dlQualifiers are the key qualifiers a Digital Link pattern may leave
// open.
var dlQualifiers = []string{"21", "10", "22", "235", "254", "8011", "8019"}

// dlPattern reads a GS1 Digital Link ending in "/*".
func dlPattern(v string, class bool) ([]IDMatch, error) {
	base, ok := strings.CutSuffix(strings.TrimSuffix(v, "*"), "/")
	if !ok {
		return nil, fmt.Errorf("%q: a Digital Link pattern ends in /*", v)
	}
	if epc.IsGS1(base) {
		c := epc.Canonical(base)
		out := []IDMatch{{Prefix: c + "/"}}
		if class {
			out = append(out, IDMatch{Exact: c})
		}
		return out, nil
	}
	i := strings.LastIndexByte(base, '/')
	if i > 0 && slices.Contains(dlQualifiers, base[i+1:]) && epc.IsGS1(base[:i]) {
		return []IDMatch{{Prefix: epc.Canonical(base[:i]) + "/" + base[i+1:] + "/"}}, nil
	}
	return nil, fmt.Errorf("%q is not a GS1 Digital Link pattern (a key, optionally a qualifier's AI, then /*)", v)
}
