package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
)

var metadataInputs = []string{
	`{}`, ` { } `, `{"source":"epcis"}`,
	`{"correlationId":"c","causationId":"urn:uuid:1","source":"epcis","principal":"p","traceId":"t"}`,
	// jsonb's own rendering, as PostgreSQL returns it
	`{"source": "epcis", "causationId": "urn:uuid:6f2b1a4e-0000-4000-8000-000000000001"}`,
	"{\n\t\"source\" :\r\"x\" }\n",
	`{"source":"a","source":"b"}`, `{"Source":"a"}`, `{"SOURCE":"a","source":"b"}`, `{"source":"a","Source":"b"}`,
	`{"source":"a\"b"}`, `{"source":"\u00e9"}`, `{"source":"é"}`, "{\"source\":\"a\xffb\"}", "{\"source\":\"a\x01\"}",
	`{"source":1}`, `{"source":null}`, `{"source":["a"]}`, `{"source":{"a":"b"}}`, `{"other":"x"}`, `{"source":"a","other":1}`,
	`null`, ``, ` `, `[]`, `"x"`, `{`, `{"source"}`, `{"source":"a"`, `{"source":"a",}`, `{"source":"a"} x`,
	`{"source":"a"}{}`, `{,}`, `{"source" "a"}`, `{"source":"a" "principal":"b"}`, `{'source':'a'}`,
}

// DecodeMetadata gives what json.Unmarshal gives, value and failure, for
// the stored forms it reads itself and for everything it passes on.
func TestDecodeMetadataAsUnmarshal(t *testing.T) {
	for _, in := range metadataInputs {
		checkDecodeMetadata(t, in)
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	for _, in := range metadataInputs {
		f.Add(in)
	}
	f.Fuzz(checkDecodeMetadata)
}

func checkDecodeMetadata(t *testing.T, in string) {
	var want eventstore.Metadata
	wantErr := json.Unmarshal([]byte(in), &want)
	got, err := eventstore.DecodeMetadata(in)
	if (err != nil) != (wantErr != nil) || err == nil && got != want {
		t.Errorf("DecodeMetadata(%q) = %+v, %v; json.Unmarshal gives %+v, %v", in, got, err, want, wantErr)
	}
}

// BenchmarkDecodeMetadata: the metadata of an event the EPCIS mapping
// derives, as PostgreSQL returns it, read by DecodeMetadata and by
// json.Unmarshal (what the engines used before).
func BenchmarkDecodeMetadata(b *testing.B) {
	in := `{"source": "epcis", "causationId": "urn:uuid:6f2b1a4e-0000-4000-8000-000000000001", "correlationId": "0b6f3d1c-5a8e-4a63-9b0e-1f2d3c4b5a69"}`
	b.Run("DecodeMetadata", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := eventstore.DecodeMetadata(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m eventstore.Metadata
			if err := json.Unmarshal([]byte(in), &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
