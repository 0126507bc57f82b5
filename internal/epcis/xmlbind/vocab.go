package xmlbind

import "strings"

// vocab is one CBV or GS1 Web Vocabulary code list: the bare terms the JSON
// binding uses and the URI forms the XML binding may carry for them.
type vocab struct {
	urn   string // CBV 1.x URN prefix ("urn:epcglobal:cbv:bizstep:"), "" when the list has none
	curie string // the term's IRI prefix as a CURIE of the EPCIS context ("cbv:BizStep-")
	iri   string // the same prefix expanded ("https://ref.gs1.org/cbv/BizStep-")
	terms map[string]bool
}

func newVocab(urn, curie, iri string, terms ...string) vocab {
	v := vocab{urn: urn, curie: curie, iri: iri, terms: make(map[string]bool, len(terms))}
	for _, t := range terms {
		v.terms[t] = true
	}
	return v
}

// compact gives the JSON form of an XML value: the bare term when s names a
// standard term in any of its URN, CURIE or Web URI forms (CBV 2.0 treats them
// as the same value), otherwise s unchanged. A non-standard value keeps its
// full form, since a bare word the context does not define would change meaning.
func (v vocab) compact(s string) string {
	for _, p := range [...]string{v.urn, v.curie, v.iri} {
		if p == "" {
			continue
		}
		if t, ok := strings.CutPrefix(s, p); ok && v.terms[t] {
			return t
		}
	}
	return s
}

// expand gives the XML form of a JSON value: a bare standard term becomes its
// URN (what EPCIS 1.2 consumers understand) or, for lists without a URN form,
// the CURIE the XML binding's examples use ("gs1:Temperature").
func (v vocab) expand(s string) string {
	if !v.terms[s] {
		return s
	}
	if v.urn != "" {
		return v.urn + s
	}
	return v.curie + s
}
