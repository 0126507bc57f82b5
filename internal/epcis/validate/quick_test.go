package validate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// quickCorpus is ../shared/epcis seen from the repository root.
const quickCorpus = "../../../../shared/epcis"

// loadtestEvent is an event as `tracktrace loadtest --scenario
// epcis-capture` sends it.
const loadtestEvent = `{"type": "ObjectEvent", "eventID": "urn:uuid:6f2b1a4e-0000-4000-8000-000000000001",
 "eventTime": "2026-12-02T10:00:01.001+01:00", "eventTimeZoneOffset": "+01:00",
 "epcList": ["urn:epc:id:sgtin:0614141.107346.lt1", "urn:epc:id:sgtin:0614141.107346.lt2"],
 "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
 "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"}, "bizLocation": {"id": "urn:epc:id:sgln:0614141.00888.0"},
 "example:shipmentRef": "SHP-1"}`

func decodeJSON(t testing.TB, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// corpusEvents returns every event of the corpus's JSON captures, valid
// and invalid, each a tree as the validator decodes it.
func corpusEvents(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, dir := range []string{"Documents", "Events", "Invalid"} {
		files, err := filepath.Glob(filepath.Join(quickCorpus, "openepcis/Capture", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no corpus files in %s (%v)", dir, err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			top, _ := decodeJSON(t, raw).(map[string]any)
			if body, ok := top["epcisBody"].(map[string]any); ok {
				list, _ := body["eventList"].([]any)
				for _, e := range list {
					if m, ok := e.(map[string]any); ok {
						out = append(out, m)
					}
				}
			} else if top != nil {
				out = append(out, top)
			}
		}
	}
	out = append(out, decodeJSON(t, []byte(loadtestEvent)).(map[string]any))
	return out
}

func newSchemas(t testing.TB) schemas {
	t.Helper()
	s, err := compileSchemas()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The quick predicate proves the events captures mostly carry, so that
// they skip the schema library: the loadtest's, and the corpus's valid
// events of the standard types.
func TestQuickProvesCommonEvents(t *testing.T) {
	s := newSchemas(t)
	e := decodeJSON(t, []byte(loadtestEvent)).(map[string]any)
	if !s.quickEvents["ObjectEvent"].holds(e) {
		t.Fatal("the loadtest's ObjectEvent is not proven valid: every capture of it pays for the schema library")
	}
	proven, valid := 0, 0
	for _, e := range corpusEvents(t) {
		typ, _ := e["type"].(string)
		if q := s.quickEvents[typ]; q != nil && s.event(typ).Validate(e) == nil {
			valid++
			if q.holds(e) {
				proven++
			} else {
				t.Logf("not proven: %s %v", typ, e["eventID"])
			}
		}
	}
	if valid == 0 || proven < valid*9/10 {
		t.Errorf("proved %d of the corpus's %d valid events of standard types", proven, valid)
	}
}

// The quick predicate never accepts what the schema refuses: every
// corpus event, and every variant of it changed in one place (a field
// removed, given another value, or added), is either refused by the
// predicate or accepted by the library.
func TestQuickNeverAcceptsWhatTheSchemaRefuses(t *testing.T) {
	s := newSchemas(t)
	replacements := []any{nil, true, false, json.Number("1"), json.Number("-1.5"), json.Number("1e400"), "", " ", "x",
		"OBSERVE", "ADD", "shipping", "urn:epcglobal:cbv:bizstep:shipping", "https://ns.gs1.org/cbv/BizStep-shipping",
		"https://example.com/x", "urn:epc:id:sgtin:0614141.107346.2017", "not a uri", "http://[::1", ":",
		"2026-12-02T10:00:00Z", "2026-13-02T10:00:00Z", "+01:00", "+15:00",
		[]any{}, []any{""}, []any{"urn:x:a", "urn:x:a"}, []any{"urn:x:a", json.Number("1")}, []any{map[string]any{}},
		map[string]any{}, map[string]any{"id": "urn:x:a"}, map[string]any{"id": "x"}, map[string]any{"type": "x"}}
	added := []string{"ilmd", "quantityList", "sensorElementList", "epcList", "childEPCs", "parentID", "EPCLIST", "foo",
		"x:y", "example:field", "errorDeclaration", "persistentDisposition", "bizTransactionList", "certificationInfo"}
	addedValues := []any{nil, json.Number("1"), "", "x", "urn:x:a", "not a uri", []any{}, []any{"urn:x:a"}, map[string]any{}}
	proven, refused := 0, 0
	check := func(e map[string]any, what string) {
		typ, _ := e["type"].(string)
		if q := s.quickEvents[typ]; q == nil || !q.holds(e) {
			return
		}
		proven++
		if err := s.event(typ).Validate(e); err != nil {
			refused++
			if refused <= 10 {
				b, _ := json.Marshal(e)
				t.Errorf("%s: proven valid, but the schema refuses it: %v\n%s", what, err, b)
			}
		}
	}
	for i, e := range corpusEvents(t) {
		check(e, "event "+strconv.Itoa(i))
		for _, path := range paths(e, nil, 3) {
			where := "event " + strconv.Itoa(i) + " at " + pathString(path)
			if _, member := path[len(path)-1].(string); member {
				m := clone(e).(map[string]any)
				remove(m, path)
				check(m, where+" removed")
			}
			for _, r := range replacements {
				m := clone(e).(map[string]any)
				set(m, path, clone(r))
				check(m, where+" replaced")
			}
		}
		for _, path := range append(objectPaths(e, nil, 2), nil) {
			for _, key := range added {
				for _, r := range addedValues {
					m := clone(e).(map[string]any)
					set(m, append(append([]any{}, path...), key), clone(r))
					check(m, "event "+strconv.Itoa(i)+" with "+pathString(path)+"/"+key)
				}
			}
		}
	}
	if proven < 1000 {
		t.Errorf("only %d variants proven valid: the test no longer exercises the predicate", proven)
	}
	t.Logf("%d variants proven valid, %d of them refused by the schema", proven, refused)
}

// FuzzQuick: whatever the input, an event the predicate proves valid is
// valid for the schema.
func FuzzQuick(f *testing.F) {
	f.Add([]byte(loadtestEvent))
	for _, e := range corpusEvents(f) {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	s := newSchemas(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var e map[string]any
		if dec.Decode(&e) != nil {
			return
		}
		typ, _ := e["type"].(string)
		if q := s.quickEvents[typ]; q != nil && q.holds(e) {
			if err := s.event(typ).Validate(e); err != nil {
				t.Errorf("proven valid, but the schema refuses it: %v", err)
			}
		}
	})
}

func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = clone(x)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, x := range v {
			a[i] = clone(x)
		}
		return a
	}
	return v
}

// paths lists the positions (member names and element indexes) of every
// value under v, to depth levels.
func paths(v any, prefix []any, depth int) [][]any {
	if depth == 0 {
		return nil
	}
	var out [][]any
	step := func(k any, x any) {
		p := append(append([]any{}, prefix...), k)
		out = append(out, p)
		out = append(out, paths(x, p, depth-1)...)
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			step(k, x)
		}
	case []any:
		for i, x := range v {
			step(i, x)
		}
	}
	return out
}

// objectPaths lists the positions of the objects under v.
func objectPaths(v any, prefix []any, depth int) [][]any {
	var out [][]any
	for _, p := range paths(v, prefix, depth) {
		if _, ok := get(v, p[len(prefix):]).(map[string]any); ok {
			out = append(out, p)
		}
	}
	return out
}

func get(v any, path []any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func set(root map[string]any, path []any, val any) {
	parent := get(root, path[:len(path)-1])
	switch k := path[len(path)-1].(type) {
	case string:
		parent.(map[string]any)[k] = val
	case int:
		parent.([]any)[k] = val
	}
}

func remove(root map[string]any, path []any) {
	delete(get(root, path[:len(path)-1]).(map[string]any), path[len(path)-1].(string))
}

func pathString(path []any) string {
	s := ""
	for _, k := range path {
		switch k := k.(type) {
		case string:
			s += "/" + k
		case int:
			s += "/" + strconv.Itoa(k)
		}
	}
	return s
}
