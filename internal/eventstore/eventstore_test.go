package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
)

func TestExpectedVersionJSON(t *testing.T) {
	for _, c := range []struct {
		in   string
		want eventstore.ExpectedVersion
	}{{`"any"`, eventstore.Any}, {`"none"`, eventstore.NoStream}, {`"exists"`, eventstore.StreamExists}, {`3`, eventstore.Exact(3)}, {`0`, eventstore.NoStream}} {
		var v eventstore.ExpectedVersion
		if err := json.Unmarshal([]byte(c.in), &v); err != nil || v != c.want {
			t.Errorf("%s: %v, %v; want %v", c.in, v, err, c.want)
		}
		b, err := json.Marshal(v)
		var back eventstore.ExpectedVersion
		if err != nil || json.Unmarshal(b, &back) != nil || back != v {
			t.Errorf("%s: round trip through %s gave %v", c.in, b, back)
		}
	}
	for _, bad := range []string{`"maybe"`, `-1`, `1.5`, `{}`} {
		var v eventstore.ExpectedVersion
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s accepted as %v", bad, v)
		}
	}
}
