package eventhash

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// vectorDir holds the reference implementation's published vectors.
const vectorDir = "../../../../shared/epcis/hashes"

// repositoryIgnoreFields reads the reference vectors' convention for fields a
// repository adds: an "ignoreFields" list in the https://repository-x.example.com/
// namespace, on the document or on its queryResults.
func repositoryIgnoreFields(t *testing.T, doc []byte) []string {
	t.Helper()
	var d struct {
		Context json.RawMessage `json:"@context"`
		Body    struct {
			QueryResults map[string]json.RawMessage `json:"queryResults"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatal(err)
	}
	ctx, err := ld.Parse(d.Context)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]json.RawMessage{top, d.Body.QueryResults} {
		for k, v := range m {
			if iri, _ := ctx.Expand(k); iri == "https://repository-x.example.com/ignoreFields" {
				var names []string
				if err := json.Unmarshal(v, &names); err != nil {
					t.Fatal(err)
				}
				return names
			}
		}
	}
	return nil
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestReferenceVectors reproduces every hash the reference implementation
// publishes: each X.jsonld's events, in document order, against X.hashes.
func TestReferenceVectors(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(vectorDir, "*.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatalf("no vectors in %s", vectorDir)
	}
	total, passed, expected := 0, 0, 0
	for _, path := range docs {
		base := strings.TrimSuffix(path, ".jsonld")
		t.Run(filepath.Base(base), func(t *testing.T) {
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := readLines(t, base+".hashes")
			if len(want) == 0 {
				t.Fatalf("no %s.hashes", base)
			}
			expected += len(want)
			pre := readLines(t, base+".prehashes")
			opts := []Option{IgnoreFields(repositoryIgnoreFields(t, doc)...)}
			ctx, events, err := documentEvents(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != len(want) {
				t.Fatalf("%d events, %d expected hashes", len(events), len(want))
			}
			for i, ev := range events {
				total++
				got, err := PreHash(ev, ctx, opts...)
				if err != nil {
					t.Errorf("event %d: %v", i, err)
					continue
				}
				if h := HashPreHash(got); h != want[i] {
					msg := "(no reference pre-hash)"
					if i < len(pre) {
						msg = "reference pre-hash:\n" + pre[i]
					}
					t.Errorf("event %d: hash %s, want %s\nour pre-hash:\n%s\n%s", i, h, want[i], got, msg)
					continue
				}
				passed++
			}
		})
	}
	t.Logf("%d/%d reference vectors reproduced", passed, total)
	// The corpus README counts 42 events; its .hashes files list 43.
	if total != expected || total < 42 {
		t.Errorf("%d events hashed, %d expected hashes", total, expected)
	}
}
