package epc

import (
	"strings"
	"testing"
)

// FuzzConvert feeds arbitrary strings to every conversion: none may panic,
// and a conversion that succeeds must agree with the others.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{
		"urn:epc:id:sgtin:4012345.011111.9876", "urn:epc:id:sgtin:0614141.812345.6789%2F%26%25%22!%3F()",
		"urn:epc:id:sscc:4012345.3111111111", "urn:epc:id:sgln:4012345.00005.0", "urn:epc:id:grai:4012345.00022.334455",
		"urn:epc:id:giai:4012345.ABC345", "urn:epc:id:cpi:0614141.11111111111111-A%23%2F.1234", "urn:epc:id:gdti:987659999999..9",
		"urn:epc:id:itip:4012345.011111.01.02.987", "urn:epc:class:lgtin:4012345.012345.Lot987", "urn:epc:idpat:itip:4012345.012345.01.02.*",
		"https://id.gs1.org/01/09780345418913/10/1223/21/765tz?x=1", "http://x/gtin/9780345418913/cpv/344", "https://a/8010/0628165987/8011/9876",
		"https://id.gs1.org/01/%", "https://[::1]:80/01/12345678", "urn:epc:id:sgtin:.", "urn:epc:idpat:cpi:1.%.*", "%%%", "https://", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Canonical(s)
		dl, dlOK := ToDigitalLink(s)
		u, uOK := ToURN(s)
		if !dlOK && (dl != s || c != s) {
			t.Fatalf("not convertible but changed: %q %q", dl, c)
		}
		if dlOK && Canonical(c) != c {
			t.Fatalf("Canonical is not idempotent: %q → %q → %q", s, c, Canonical(c))
		}
		if uOK {
			if !IsURN(u) {
				t.Fatalf("ToURN(%q) = %q, not a URN", s, u)
			}
			if Canonical(u) != c && !strings.HasPrefix(u, "urn:epc:idpat:sgtin:") {
				t.Fatalf("Canonical(%q) = %q but Canonical(ToURN) = %q", s, c, Canonical(u))
			}
		}
		for _, v := range []Vocabulary{BizStep, SensorComponent} {
			v.IsStandard(s)
			v.Format(s, CBVAlwaysURN)
		}
		CBVWebURI(s)
	})
}
