package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting/alertingtest"
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

// BenchmarkEPCISQuery: projectiontest.BenchmarkEPCISQuery on a new file, or
// on BENCH_EPCIS_DB (a file kept between runs: the first run seeds it,
// later runs query what it holds).
//
//	BENCH_EPCIS_EVENTS=1000000 go test -run '^$' -bench EPCISQuery -benchtime 1x -timeout 2h ./internal/sqlite/
func BenchmarkEPCISQuery(b *testing.B) {
	projectiontest.BenchmarkEPCISQuery(b, func(b *testing.B) projectiontest.Harness {
		path := os.Getenv("BENCH_EPCIS_DB")
		if path == "" {
			path = filepath.Join(b.TempDir(), "events.db")
		}
		s := open(b, path)
		return projectiontest.Harness{Store: s, ReadModels: openReadModels(b, s)}
	})
}

// BenchmarkAlertsStale: alertingtest.BenchmarkStale on a new file.
//
//	go test -run '^$' -bench AlertsStale -benchtime 1x -timeout 1h ./internal/sqlite/
func BenchmarkAlertsStale(b *testing.B) {
	alertingtest.BenchmarkStale(b, func(b *testing.B) alertingtest.BenchHarness {
		s := open(b, filepath.Join(b.TempDir(), "events.db"))
		return alertingtest.BenchHarness{Store: s, ReadModels: openReadModels(b, s)}
	})
}
