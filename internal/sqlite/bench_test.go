package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
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

// go test -run '^$' -bench ProjectionApply ./internal/sqlite/
func BenchmarkProjectionApply(b *testing.B) {
	projectiontest.BenchmarkApply(b, func(b *testing.B) projectiontest.ReadModels {
		s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(b.TempDir(), "events.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		rm, err := sqlite.OpenReadModels(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		return rm
	})
}
