package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/sqlite"
)

// go test -run '^$' -bench Append -benchtime 5s ./internal/sqlite/
func BenchmarkAppend(b *testing.B) {
	eventstoretest.BenchmarkAppend(b, func(b *testing.B) eventstore.Store {
		s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(b.TempDir(), "events.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
