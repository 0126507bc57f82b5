package xmlbind

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is one XML element with its namespace resolved and the prefix it was
// written with (extension keys reuse the document's own prefixes).
type node struct {
	space, local, prefix string
	attrs                []attribute
	children             []*node
	text                 []byte // character data directly inside the element
	line                 int
	scope                *nsScope // namespace declarations in force, for CURIE values
}

// nsScope is one element's namespace declarations, linked to its parent's.
type nsScope struct {
	parent *nsScope
	decls  map[string]string // prefix → namespace
}

func (s *nsScope) set(prefix, ns string) {
	if s.decls == nil {
		s.decls = map[string]string{}
	}
	s.decls[prefix] = ns
}

// lookup resolves a prefix; "" is the default namespace, which may be unset.
func (s *nsScope) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlnsSpace, true
	}
	for ; s != nil; s = s.parent {
		if ns, ok := s.decls[prefix]; ok {
			return ns, true
		}
	}
	return "", prefix == ""
}

type attribute struct {
	space, local, prefix, value string
}

// name is the element as written, for error messages.
func (n *node) name() string {
	if n.prefix != "" {
		return n.prefix + ":" + n.local
	}
	return n.local
}

const xmlnsSpace = "http://www.w3.org/XML/1998/namespace"

// countingReader stops reading one byte past the limit so that an oversized
// document is told apart from one that ends exactly at it.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, errTooBig
	}
	if room := c.limit + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, errTooBig
	}
	return n, err
}

var errTooBig = errors.New("document too large")

// parse reads one XML document into a tree. It resolves namespaces itself
// (RawToken) to keep the prefixes, refuses DTDs, and bounds size, depth and
// element count; encoding/xml expands no custom entities, so entity bombs
// fail as syntax errors.
func parse(r io.Reader, lim Limits) (*node, error) {
	cr := &countingReader{r: r, limit: lim.MaxBytes}
	dec := xml.NewDecoder(cr)
	dec.Strict = true
	var (
		stack    []*node
		scope    *nsScope
		root     *node
		elements int
	)
	for {
		line, _ := dec.InputPos()
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, errTooBig) || cr.n > cr.limit {
				return nil, fmt.Errorf("%w: document larger than %d bytes", ErrTooLarge, lim.MaxBytes)
			}
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, line, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("%w: line %d: second root element <%s>", ErrInvalid, line, rawName(t.Name))
			}
			if len(stack) >= lim.MaxDepth {
				return nil, fmt.Errorf("%w: line %d: elements nested deeper than %d levels", ErrTooLarge, line, lim.MaxDepth)
			}
			if elements++; elements > lim.MaxElements {
				return nil, fmt.Errorf("%w: line %d: more than %d elements", ErrTooLarge, line, lim.MaxElements)
			}
			if declaresNamespace(t.Attr) {
				scope = &nsScope{parent: scope}
			}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope.set("", a.Value)
				case a.Name.Space == "xmlns":
					if a.Value == "" {
						return nil, fmt.Errorf("%w: line %d: prefix %q bound to an empty namespace", ErrInvalid, line, a.Name.Local)
					}
					scope.set(a.Name.Local, a.Value)
				}
			}
			n := &node{local: t.Name.Local, prefix: t.Name.Space, line: line, scope: scope}
			space, ok := scope.lookup(t.Name.Space)
			if !ok {
				return nil, fmt.Errorf("%w: line %d: <%s>: undeclared namespace prefix %q", ErrInvalid, line, rawName(t.Name), t.Name.Space)
			}
			n.space = space
			for _, a := range t.Attr {
				if (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns" {
					continue
				}
				at := attribute{local: a.Name.Local, prefix: a.Name.Space, value: a.Value}
				if a.Name.Space != "" { // unprefixed attributes are in no namespace
					if at.space, ok = scope.lookup(a.Name.Space); !ok {
						return nil, fmt.Errorf("%w: line %d: <%s>: undeclared namespace prefix %q on attribute %s", ErrInvalid, line, rawName(t.Name), a.Name.Space, a.Name.Local)
					}
				}
				n.attrs = append(n.attrs, at)
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, fmt.Errorf("%w: line %d: unexpected </%s>", ErrInvalid, line, rawName(t.Name))
			}
			top := stack[len(stack)-1]
			if top.prefix != t.Name.Space || top.local != t.Name.Local {
				return nil, fmt.Errorf("%w: line %d: </%s> closes <%s> opened on line %d", ErrInvalid, line, rawName(t.Name), top.name(), top.line)
			}
			stack = stack[:len(stack)-1]
			scope = nil
			if len(stack) > 0 {
				scope = stack[len(stack)-1].scope
			}
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return nil, fmt.Errorf("%w: line %d: text outside the root element", ErrInvalid, line)
				}
				continue
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, t...)
		case xml.Directive:
			return nil, fmt.Errorf("%w: line %d: DTDs and other <!...> directives are not accepted", ErrInvalid, line)
		case xml.Comment, xml.ProcInst:
			// Comments and the XML declaration carry no data.
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrInvalid)
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%w: document ends inside <%s> opened on line %d", ErrInvalid, stack[len(stack)-1].name(), stack[len(stack)-1].line)
	}
	return root, nil
}

func declaresNamespace(attrs []xml.Attr) bool {
	for _, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			return true
		}
	}
	return false
}

func rawName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}
