package config

import (
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// binder copies a tree onto a struct, field names being the keys (or the
// field's `config:"Name"` tag; `config:"-"` skips it). It records what it
// could not convert as problems and every key it looked at, so that the
// rest can be reported as unknown.
type binder struct {
	tree     tree
	env      map[string]string
	seen     map[string]bool
	problems []Problem
}

func newBinder(t tree, env map[string]string) *binder {
	return &binder{tree: t, env: env, seen: map[string]bool{}}
}

func (b *binder) problem(path []string, format string, args ...any) {
	b.problems = append(b.problems, Problem{dotted(path), fmt.Sprintf(format, args...)})
}

func (b *binder) lookup(path []string) (entry, bool) {
	k := treeKey(path)
	b.seen[k] = true
	e, ok := b.tree[k]
	return e, ok
}

// children returns the distinct key segments directly under path, as
// spelled in the sources, sorted.
func (b *binder) children(path []string) []string {
	prefix := treeKey(path) + ":"
	spelled := map[string]string{}
	for k, e := range b.tree {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			child, _, deeper := strings.Cut(rest, ":")
			if _, dup := spelled[child]; !dup || !deeper {
				spelled[child] = e.segs[len(path)]
			}
		}
	}
	return slices.Sorted(maps.Values(spelled))
}

// ignoreUnder marks every key under path as seen.
func (b *binder) ignoreUnder(path []string) {
	prefix := treeKey(path) + ":"
	for k := range b.tree {
		if strings.HasPrefix(k, prefix) {
			b.seen[k] = true
		}
	}
}

func (b *binder) bind(v reflect.Value, path []string) {
	switch v.Kind() {
	case reflect.Struct:
		if e, ok := b.lookup(path); ok && len(path) > 0 && e.value != nil {
			b.problem(path, "expected an object with keys, got a single value or an array")
		}
		t := v.Type()
		for i := range t.NumField() {
			if name := t.Field(i).Tag.Get("config"); name != "-" {
				b.bind(v.Field(i), append(slices.Clip(path), cmp.Or(name, t.Field(i).Name)))
			}
		}
	case reflect.Map:
		b.bindMap(v, path)
	case reflect.Slice:
		b.bindSlice(v, path)
	default:
		b.value(v, path)
	}
}

func (b *binder) bindMap(v reflect.Value, path []string) {
	if e, ok := b.lookup(path); ok && e.value != nil {
		b.problem(path, "expected an object with keys, got a single value or an array")
		b.ignoreUnder(path)
		return
	}
	keys := b.children(path)
	if len(keys) == 0 {
		return
	}
	m := reflect.MakeMap(v.Type())
	for it := v.MapRange(); it.Next(); {
		m.SetMapIndex(it.Key(), it.Value())
	}
	for _, k := range keys {
		elem := reflect.New(v.Type().Elem()).Elem()
		if b.value(elem, append(slices.Clip(path), k)) {
			m.SetMapIndex(reflect.ValueOf(k), elem)
		}
	}
	v.Set(m)
}

func (b *binder) bindSlice(v reflect.Value, path []string) {
	e, ok := b.lookup(path)
	if ok && e.value != nil && e.value != (arrayStart{}) {
		// One string holds the whole list, comma-separated: handy in
		// environment variables and --set.
		b.ignoreUnder(path)
		var s string
		if !b.scalar(reflect.ValueOf(&s).Elem(), path, e) {
			return
		}
		list := reflect.MakeSlice(v.Type(), 0, 0)
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = reflect.Append(list, reflect.ValueOf(item).Convert(v.Type().Elem()))
			}
		}
		v.Set(list)
		return
	}
	type indexed struct {
		i   int
		key string
	}
	var items []indexed
	for _, k := range b.children(path) {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 {
			b.problem(append(slices.Clip(path), k), "expected an array index")
			b.lookup(append(slices.Clip(path), k))
			b.ignoreUnder(append(slices.Clip(path), k))
			continue
		}
		items = append(items, indexed{i, k})
	}
	if !ok && len(items) == 0 {
		return
	}
	slices.SortFunc(items, func(a, b indexed) int { return cmp.Compare(a.i, b.i) })
	list := reflect.MakeSlice(v.Type(), 0, len(items))
	for _, it := range items {
		elem := reflect.New(v.Type().Elem()).Elem()
		if b.value(elem, append(slices.Clip(path), it.key)) {
			list = reflect.Append(list, elem)
		}
	}
	v.Set(list)
}

// value sets v, a scalar, from the key at path and reports whether it did.
func (b *binder) value(v reflect.Value, path []string) bool {
	e, ok := b.lookup(path)
	if len(b.children(path)) > 0 || (ok && e.value == arrayStart{}) {
		b.problem(path, "expected a single value, got an object or an array")
		b.ignoreUnder(path)
		return false
	}
	return ok && e.value != nil && b.scalar(v, path, e)
}

// scalar sets v from e, the value at path, and reports whether it could.
func (b *binder) scalar(v reflect.Value, path []string, e entry) bool {
	raw, isNumber := "", false
	switch x := e.value.(type) {
	case string:
		raw = x
	case json.Number:
		raw, isNumber = string(x), true
	case bool:
		raw = strconv.FormatBool(x)
	}
	s := raw
	if _, isString := e.value.(string); isString {
		var err error
		if s, err = expand(raw, b.env); err != nil {
			b.problem(path, "%v", err)
			return false
		}
	}
	if err := convert(v, s, isNumber); err != nil {
		if s != raw { // don't show what a variable expanded to
			err = fmt.Errorf("%q expands to an invalid value", raw)
		}
		b.problem(path, "%v", err)
		return false
	}
	return true
}

// convert parses s into v; isNumber says s is a JSON number.
func convert(v reflect.Value, s string, isNumber bool) error {
	if u, ok := v.Addr().Interface().(json.Unmarshaler); ok {
		if isNumber {
			return u.UnmarshalJSON([]byte(s))
		}
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		x, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", s)
		}
		v.SetBool(x)
	case reflect.Int:
		x, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("expected a whole number, got %q", s)
		}
		v.SetInt(int64(x))
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return fmt.Errorf("expected a number, got %q", s)
		}
		v.SetFloat(x)
	default:
		panic("config: no conversion to " + v.Type().String()) // a programming error in Config
	}
	return nil
}

// expand replaces every ${NAME} in s by the variable's value. Its errors
// name variables, never values.
func expand(s string, env map[string]string) (string, error) {
	var out strings.Builder
	var unset []string
	for {
		start := strings.Index(s, "${")
		if start < 0 {
			break
		}
		end := strings.IndexByte(s[start:], '}')
		if end < 0 {
			return "", errors.New("unterminated ${ in value")
		}
		name := s[start+2 : start+end]
		if name == "" {
			return "", errors.New("empty ${} in value")
		}
		value, ok := env[name]
		if !ok && !slices.Contains(unset, name) {
			unset = append(unset, name)
		}
		out.WriteString(s[:start])
		out.WriteString(value)
		s = s[start+end+1:]
	}
	if len(unset) > 0 {
		return "", fmt.Errorf("references unset environment variable %s", strings.Join(unset, ", "))
	}
	out.WriteString(s)
	return out.String(), nil
}

// unknown returns a warning for each key no field looked at, naming the
// shortest unknown prefix once.
func (b *binder) unknown() []string {
	var warnings []string
	reported := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(b.tree)) {
		if b.seen[k] {
			continue
		}
		e := b.tree[k]
		for n := 1; n <= len(e.segs); n++ {
			if p := treeKey(e.segs[:n]); !b.seen[p] {
				if !reported[p] {
					reported[p] = true
					warnings = append(warnings, fmt.Sprintf("unknown key %s (from %s)", dotted(e.segs[:n]), e.source))
				}
				break
			}
		}
	}
	return warnings
}

// dotted writes a key path the way problems name it:
// Monitoring.Metrics.Tags.region, Authentication.Algorithms[2].
func dotted(path []string) string {
	var b strings.Builder
	for i, seg := range path {
		if _, err := strconv.Atoi(seg); err == nil && i > 0 {
			fmt.Fprintf(&b, "[%s]", seg)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
