package xmlbind

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDocumentToJSON checks, from the corpus as seeds, that any input gives
// either JSON or one of the package's errors, and that JSON it produces can be
// written back as XML.
func FuzzDocumentToJSON(f *testing.F) {
	for _, dir := range []string{"Capture/Documents", "Capture/Events", "Capture/Invalid", "Query", "Query/Documents", "Query/Invalid"} {
		files, _ := filepath.Glob(filepath.Join(corpus, "openepcis-xml", dir, "*.xml"))
		for _, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	lim := Limits{MaxBytes: 1 << 20, MaxDepth: 32, MaxElements: 10000}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := DocumentToJSON(bytes.NewReader(in), lim)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if err := WriteXML(&bytes.Buffer{}, out, Limits{MaxDepth: 2 * lim.MaxDepth}); err != nil {
			t.Fatalf("WriteXML of converted JSON: %v\n%s", err, out)
		}
	})
}
