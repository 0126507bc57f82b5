package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
)

// go test -run '^$' -bench Append -benchtime 5s ./internal/sqlite/
func BenchmarkAppend(b *testing.B) {
	eventstoretest.BenchmarkAppend(b, func(b *testing.B) eventstore.Store {
		return open(b, filepath.Join(b.TempDir(), "events.db"))
	})
}

// go test -run '^$' -bench ProjectionApply ./internal/sqlite/
func BenchmarkProjectionApply(b *testing.B) {
	projectiontest.BenchmarkApply(b, func(b *testing.B) projectiontest.ReadModels {
		return openReadModels(b, open(b, filepath.Join(b.TempDir(), "events.db")))
	})
}
