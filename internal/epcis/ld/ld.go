// Package ld is the part of JSON-LD that EPCIS 2.0 needs: it reads a
// document's "@context" (the GS1 EPCIS context, referenced by URL, plus objects
// that map prefixes to namespace IRIs), expands CURIEs and context terms to
// IRIs, compacts IRIs back, and applies the property-scoped contexts the GS1
// context uses for vocabulary values (bizStep "shipping" is
// https://ref.gs1.org/cbv/BizStep-shipping).
//
// It is not a JSON-LD processor: it does no graph expansion, loads nothing
// from the network and knows only the GS1 EPCIS context by URL (from an
// embedded copy). A Context is an immutable value, safe for concurrent use.
package ld

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// The GS1 EPCIS 2.0 JSON-LD context, as published by GS1. Embedded so that no
// document needs it fetched.
//
//go:embed epcis-context.jsonld
var standardContextJSON []byte

// standardURLs are the addresses under which GS1 publishes the EPCIS 2.0
// context; a document naming any of them gets the embedded copy.
var standardURLs = []string{
	"https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
	"https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
	"https://gs1.github.io/EPCIS/epcis-context.jsonld",
}

// Limits on what a context may contain; a context beyond them is refused.
const (
	maxContextBytes = 1 << 20
	maxDepth        = 16 // nesting of scoped contexts and of arrays in "@context"
	maxTerms        = 4096
	maxResolve      = 16 // CURIE indirections followed when resolving a term
)

// ErrInvalid reports a "@context" value that is not valid JSON-LD context
// syntax (or is beyond this package's size and nesting limits).
var ErrInvalid = errors.New("ld: invalid @context")

// StandardURLs returns the URLs that resolve to the embedded GS1 EPCIS 2.0
// context.
func StandardURLs() []string { return append([]string(nil), standardURLs...) }

// IsStandardURL reports whether url names the GS1 EPCIS 2.0 context.
func IsStandardURL(url string) bool {
	for _, u := range standardURLs {
		if u == url {
			return true
		}
	}
	return false
}

// termDef is one term definition as written in a context, unresolved: CURIEs
// in raw are resolved against the frame chain the term is found in.
type termDef struct {
	raw       string // the IRI, CURIE, term or keyword the term stands for
	typ       string // "@id", "@vocab", a datatype (CURIE), or ""
	container string
	simple    bool // defined by a plain string, so usable as a CURIE prefix
	null      bool // explicitly undefined ("term": null)
	scoped    []*template
}

// template is one parsed context object (or a reset, for null); frames point
// at templates so that a scoped context is parsed once and shared.
type template struct {
	terms    map[string]*termDef
	reset    bool
	standard bool // stands for the GS1 context, resolved when applied
}

// push returns the frames for templates on top of f.
func push(f *frame, tpls []*template) *frame {
	for _, t := range tpls {
		if t.standard {
			t = standardTemplate()
		}
		if t.terms == nil && !t.reset {
			// A URL that is not the GS1 context: not loaded.
			continue
		}
		f = &frame{parent: f, tpl: t}
	}
	return f
}

// frame is one layer of an active context.
type frame struct {
	parent *frame
	tpl    *template
	// unresolved lists context URLs that could not be loaded (not the GS1 one).
	unresolved string
}

// Context is an active JSON-LD context: the GS1 EPCIS context and whatever a
// document or event adds to it. The zero Context is empty (it knows no terms).
// Contexts are immutable; Extend and Scoped return new ones.
type Context struct {
	f *frame
}

var standardOnce = sync.OnceValues(func() (*template, error) {
	var doc struct {
		Context json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(standardContextJSON, &doc); err != nil {
		return nil, err
	}
	tpls, err := parseContextValue(doc.Context, 0)
	if err != nil {
		return nil, err
	}
	if len(tpls) != 1 || tpls[0].reset {
		return nil, fmt.Errorf("ld: embedded context has an unexpected shape")
	}
	return tpls[0], nil
})

func standardTemplate() *template {
	t, err := standardOnce()
	if err != nil {
		// The embedded file is part of the build; a parse failure is a build defect.
		panic("ld: embedded GS1 context: " + err.Error())
	}
	return t
}

// Standard returns the GS1 EPCIS 2.0 context alone, as a document whose
// "@context" is just the GS1 URL has it.
func Standard() Context {
	return Context{f: &frame{tpl: standardTemplate()}}
}

// Parse builds the active context of a document from its "@context" value: a
// URL string, an object, or an array of them. URLs of the GS1 EPCIS context
// resolve to the embedded copy; other URLs cannot be loaded and are listed by
// Unresolved.
func Parse(raw json.RawMessage) (Context, error) {
	return Context{}.Extend(raw)
}

// Extend returns c with a further "@context" value applied on top of it, as
// for an "@context" inside an event. An empty raw returns c unchanged.
func (c Context) Extend(raw json.RawMessage) (Context, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	if len(raw) > maxContextBytes {
		return c, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxContextBytes)
	}
	tpls, err := parseContextValue(raw, 0)
	if err != nil {
		return c, err
	}
	f := push(c.f, tpls)
	for _, u := range unresolvedURLs(raw) {
		f = &frame{parent: f, tpl: &template{}, unresolved: u}
	}
	return Context{f: f}, nil
}

// Unresolved lists the context URLs in c that are not the GS1 EPCIS context
// and were therefore not loaded (their terms are unknown), in the order found.
func (c Context) Unresolved() []string {
	var out []string
	for f := c.f; f != nil; f = f.parent {
		if f.unresolved != "" {
			out = append(out, f.unresolved)
		}
		if f.tpl.reset {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// unresolvedURLs returns the non-GS1 URL strings of a context value (already
// validated by parseContextValue).
func unresolvedURLs(raw json.RawMessage) []string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if !IsStandardURL(v) {
				out = append(out, v)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// parseContextValue parses a "@context" value into templates to push in order.
// A URL other than the GS1 context yields an empty template (no terms, no
// reset), which Extend skips.
func parseContextValue(raw json.RawMessage, depth int) ([]*template, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested more than %d deep", ErrInvalid, maxDepth)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalid)
	}
	switch raw[0] {
	case 'n':
		if string(raw) != "null" {
			return nil, fmt.Errorf("%w: not JSON", ErrInvalid)
		}
		return []*template{{reset: true}}, nil
	case '"':
		var url string
		if err := json.Unmarshal(raw, &url); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if IsStandardURL(url) {
			return []*template{{standard: true}}, nil
		}
		return []*template{{}}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		var out []*template
		for _, it := range items {
			if len(bytes.TrimSpace(it)) > 0 && bytes.TrimSpace(it)[0] == '[' {
				return nil, fmt.Errorf("%w: an array inside an @context array", ErrInvalid)
			}
			ts, err := parseContextValue(it, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ts...)
		}
		return out, nil
	case '{':
		t, err := parseContextObject(raw, depth)
		if err != nil {
			return nil, err
		}
		return []*template{t}, nil
	}
	return nil, fmt.Errorf("%w: a context entry must be a URL, an object or null", ErrInvalid)
}

func parseContextObject(raw json.RawMessage, depth int) (*template, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(obj) > maxTerms {
		return nil, fmt.Errorf("%w: more than %d terms", ErrInvalid, maxTerms)
	}
	t := &template{terms: make(map[string]*termDef, len(obj))}
	for name, v := range obj {
		if strings.HasPrefix(name, "@") {
			// @version, @protected, @vocab, @base…: keywords this package
			// does not need; they never define a term.
			continue
		}
		def, err := parseTermDef(name, v, depth)
		if err != nil {
			return nil, err
		}
		t.terms[name] = def
	}
	return t, nil
}

func parseTermDef(name string, v json.RawMessage, depth int) (*termDef, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: term %q has no definition", ErrInvalid, name)
	}
	switch v[0] {
	case 'n':
		return &termDef{null: true}, nil
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%w: term %q: %v", ErrInvalid, name, err)
		}
		return &termDef{raw: s, simple: true}, nil
	case '{':
		var obj struct {
			ID        *string         `json:"@id"`
			Type      string          `json:"@type"`
			Container json.RawMessage `json:"@container"`
			Context   json.RawMessage `json:"@context"`
		}
		if err := json.Unmarshal(v, &obj); err != nil {
			return nil, fmt.Errorf("%w: term %q: %v", ErrInvalid, name, err)
		}
		def := &termDef{typ: obj.Type}
		switch {
		case obj.ID != nil:
			def.raw = *obj.ID
		case strings.Contains(name, ":"):
			// A term that is itself a CURIE or IRI defines its own IRI.
			def.raw = name
		default:
			return nil, fmt.Errorf("%w: term %q has no @id", ErrInvalid, name)
		}
		if len(obj.Container) > 0 {
			var c string
			if json.Unmarshal(obj.Container, &c) == nil {
				def.container = c
			}
		}
		if len(obj.Context) > 0 {
			tpls, err := parseContextValue(obj.Context, depth+1)
			if err != nil {
				return nil, err
			}
			def.scoped = tpls
		}
		return def, nil
	}
	return nil, fmt.Errorf("%w: term %q must be a string, an object or null", ErrInvalid, name)
}

// lookup finds the nearest definition of name, and the frame holding it.
func (c Context) lookup(name string) (*termDef, *frame) {
	for f := c.f; f != nil; f = f.parent {
		if d, ok := f.tpl.terms[name]; ok {
			if d.null {
				return nil, nil
			}
			return d, f
		}
		if f.tpl.reset {
			break
		}
	}
	return nil, nil
}

// resolve turns a term definition's raw value into an IRI (or keyword),
// following prefixes and term references from the frame that defines it.
func resolve(raw string, f *frame, depth int) string {
	if depth > maxResolve || strings.HasPrefix(raw, "@") {
		return raw
	}
	ctx := Context{f: f}
	if prefix, suffix, ok := strings.Cut(raw, ":"); ok {
		if strings.HasPrefix(suffix, "//") {
			return raw
		}
		if d, df := ctx.lookup(prefix); d != nil && d.raw != raw {
			return resolve(d.raw, df, depth+1) + suffix
		}
		return raw
	}
	if d, df := ctx.lookup(raw); d != nil && d.raw != raw {
		return resolve(d.raw, df, depth+1)
	}
	return raw
}

// Expand returns the IRI that term stands for in c: a term the context defines
// ("bizStep" is https://ref.gs1.org/epcis/bizStep, "id" is the keyword "@id"),
// or a CURIE whose prefix it defines ("cbvmda:lotNumber" is
// urn:epcglobal:cbv:mda:lotNumber). ok is false, and term is returned as it
// is, when c knows neither the term nor its prefix; absolute IRIs such as
// "https://…" or "urn:epc:…" are returned that way too.
func (c Context) Expand(term string) (iri string, ok bool) {
	if d, f := c.lookup(term); d != nil {
		return resolve(d.raw, f, 0), true
	}
	prefix, suffix, found := strings.Cut(term, ":")
	if !found || prefix == "" || strings.HasPrefix(suffix, "//") {
		return term, false
	}
	if d, f := c.lookup(prefix); d != nil && d.simple {
		p := resolve(d.raw, f, 0)
		if strings.HasPrefix(p, "@") {
			return term, false
		}
		return p + suffix, true
	}
	return term, false
}

// ExpandCURIE is Expand restricted to CURIEs: it expands "prefix:suffix" when c
// defines prefix, and leaves every other string (including bare terms)
// unchanged with ok false. It is what applies to values that are IRIs, such as
// an EPC or a user extension's value.
func (c Context) ExpandCURIE(s string) (iri string, ok bool) {
	if !strings.Contains(s, ":") {
		return s, false
	}
	return c.Expand(s)
}

// Scoped returns the context that applies inside the value of property: c plus
// the property-scoped context the definition of property carries, if any
// (sensorElementList, sensorReport, bizTransactionList… in the GS1 context).
func (c Context) Scoped(property string) Context {
	d, _ := c.lookup(property)
	if d == nil || len(d.scoped) == 0 {
		return c
	}
	return Context{f: push(c.f, d.scoped)}
}

// ExpandValue expands a string value of property the way JSON-LD does for the
// property's declared type: for "@vocab" properties (bizStep, disposition,
// sensorReport type…) a term of the property's scoped context or a CURIE;
// for "@id" properties a CURIE. ok is false, and value is returned unchanged,
// when nothing applies.
func (c Context) ExpandValue(property, value string) (iri string, ok bool) {
	d, _ := c.lookup(property)
	if d == nil {
		return value, false
	}
	switch d.typ {
	case "@vocab":
		sc := c.Scoped(property)
		if vd, f := sc.lookup(value); vd != nil {
			iri := resolve(vd.raw, f, 0)
			if strings.HasPrefix(iri, "@") {
				return value, false
			}
			return iri, true
		}
		return sc.ExpandCURIE(value)
	case "@id":
		return c.ExpandCURIE(value)
	}
	return value, false
}

// TypeOf returns the "@type" the definition of property declares ("@vocab",
// "@id", or the expanded datatype IRI such as
// http://www.w3.org/2001/XMLSchema#dateTimeStamp), or "" when it declares none
// or c does not define property.
func (c Context) TypeOf(property string) string {
	d, _ := c.lookup(property)
	if d == nil || d.typ == "" {
		return ""
	}
	if strings.HasPrefix(d.typ, "@") {
		return d.typ
	}
	iri, _ := c.Expand(d.typ)
	return iri
}

// terms returns the IRI of every term c can see (nearest definition
// shadowing the rest) for which keep holds; keywords are left out.
func (c Context) terms(keep func(name string, d *termDef) bool) map[string]string {
	seen := map[string]bool{}
	out := map[string]string{}
	for f := c.f; f != nil; f = f.parent {
		for name, d := range f.tpl.terms {
			if seen[name] {
				continue
			}
			seen[name] = true
			if d.null || !keep(name, d) {
				continue
			}
			if iri := resolve(d.raw, f, 0); iri != "" && !strings.HasPrefix(iri, "@") {
				out[name] = iri
			}
		}
		if f.tpl.reset {
			break
		}
	}
	return out
}

// visible returns every term c can see and its IRI.
func (c Context) visible() map[string]string {
	return c.terms(func(string, *termDef) bool { return true })
}

// prefixes returns the names usable as CURIE prefixes in c and their IRIs.
func (c Context) prefixes() map[string]string {
	return c.terms(func(name string, d *termDef) bool { return d.simple && !strings.Contains(name, ":") })
}

// Compact returns the shortest form of iri in c: a term that stands for it
// exactly, else a CURIE with the prefix whose namespace is the longest match,
// else iri itself.
func (c Context) Compact(iri string) string {
	var best string
	for name, v := range c.visible() {
		if v == iri && (best == "" || len(name) < len(best) || (len(name) == len(best) && name < best)) {
			best = name
		}
	}
	if best != "" {
		return best
	}
	var bestNS string
	for name, ns := range c.prefixes() {
		if !strings.HasPrefix(iri, ns) || len(iri) == len(ns) {
			continue
		}
		if len(ns) > len(bestNS) || (len(ns) == len(bestNS) && name < best) {
			best, bestNS = name, ns
		}
	}
	if best == "" {
		return iri
	}
	return best + ":" + iri[len(bestNS):]
}

// CompactValue is the inverse of ExpandValue: the term of property's scoped
// context that stands for iri ("shipping" for
// https://ref.gs1.org/cbv/BizStep-shipping as a bizStep), else Compact(iri).
func (c Context) CompactValue(property, iri string) string {
	sc := c.Scoped(property)
	if d, _ := c.lookup(property); d != nil && d.typ == "@vocab" {
		var names []string
		for name, v := range sc.visible() {
			if v == iri {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			sort.Slice(names, func(i, j int) bool {
				if len(names[i]) != len(names[j]) {
					return len(names[i]) < len(names[j])
				}
				return names[i] < names[j]
			})
			return names[0]
		}
	}
	return sc.Compact(iri)
}
