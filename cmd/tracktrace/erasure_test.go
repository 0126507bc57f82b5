package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// tablesByColumn names every table that holds an entity's rows, by the
// column that names the entity. (The events table keeps one row of an
// erased entity: its erasure marker in the global log, counted apart.)
var tablesByColumn = map[string][]string{
	"stream_id": {"events", "streams", "snapshots"},
	"entity_id": {"rm_timeline", "rm_entities", "rm_operation_starts", "rm_metric_points", "rm_positions_timeline", "rm_positions_entities", "rm_positions_metrics"},
}

// After erasure no row of the entity remains in any table, and no cache
// entry serves it; another tenant cannot erase it; other entities stay.
func TestErasure(t *testing.T) {
	t.Parallel()
	for _, eng := range []string{"sqlite", "postgres"} {
		t.Run(eng, func(t *testing.T) {
			t.Parallel()
			var env []string
			// count counts the rows of table whose column holds id and that meet
			// the extra condition where ("" or " AND …").
			var count func(table, column, id, where string) int
			switch eng {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "t.db")
				env = []string{"EventStore__ConnectionString=file:" + path}
				count = func(table, column, id, where string) int {
					db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					var n int
					if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = ?", table, column)+where, id).Scan(&n); err != nil {
						t.Fatalf("%s: %v", table, err)
					}
					return n
				}
			case "postgres":
				dsn := pgtest.NewDatabase(t)
				env = []string{"ConnectionStrings__EventStore=" + dsn}
				count = func(table, column, id, where string) int {
					conn, err := pgx.Connect(context.Background(), dsn)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(context.Background())
					var n int
					if err := conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", table, column)+where, id).Scan(&n); err != nil {
						t.Fatalf("%s: %v", table, err)
					}
					return n
				}
			}
			srv := startServer(t, append(env, "EventStore__SnapshotFrequency=2"))
			record := func(id string) {
				r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"entityType": "package", "events": []any{
					ev("EntityRegistered", 0, `{"reference":"personal"}`),
					ev("OperationStarted", time.Minute, `{"operation":"sorting","operationId":"o1"}`),
					ev("MilestoneReached", 2*time.Minute, `{"milestone":"arrived","plannedAt":"`+at(time.Minute)+`"}`),
					ev("OperationStarted", 3*time.Minute, `{"operation":"loading","operationId":"o2"}`),
					ev("OperationCompleted", 4*time.Minute, `{"operation":"sorting","operationId":"o1","outcome":"succeeded"}`)}})
				if r.StatusCode != 201 {
					t.Fatalf("record %s: %d %s", id, r.StatusCode, r.Body)
				}
			}
			record("ERASE-ME")
			record("KEEP-ME")
			srv.do(t, "GET", "/api/v1/entities/ERASE-ME?minVersion=5", nil)
			srv.do(t, "GET", "/api/v1/entities/ERASE-ME/timeline?minVersion=5", nil)
			waitProjections(t, srv)
			// Every table holds the entity before erasure (else the check proves nothing).
			deadline := time.Now().Add(10 * time.Second)
			for column, tables := range tablesByColumn {
				for _, table := range tables {
					for count(table, column, "ERASE-ME", notMarker(table)) == 0 {
						if time.Now().After(deadline) {
							t.Fatalf("%s holds no row of the entity before erasure", table)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
			}
			if r := srv.do(t, "DELETE", "/api/v1/entities/ERASE-ME", nil, "X-Tenant-ID", "other"); r.StatusCode != 404 {
				t.Fatalf("another tenant's erase: %d", r.StatusCode)
			}
			if r := srv.do(t, "DELETE", "/api/v1/entities/ERASE-ME", nil); r.StatusCode != 204 {
				t.Fatalf("erase: %d %s", r.StatusCode, r.Body)
			}
			for column, tables := range tablesByColumn {
				for _, table := range tables {
					if n := count(table, column, "ERASE-ME", notMarker(table)); n != 0 {
						t.Errorf("%s still holds %d rows of the erased entity", table, n)
					}
					if n := count(table, column, "KEEP-ME", notMarker(table)); n == 0 {
						t.Errorf("%s lost the other entity's rows", table)
					}
				}
			}
			if n := count("events", "stream_id", "ERASE-ME", " AND event_type = '"+eventstore.ErasureType+"' AND version = 0"); n != 1 {
				t.Errorf("the log holds %d erasure markers of the entity, want 1", n)
			}
			for _, path := range []string{"/api/v1/entities/ERASE-ME", "/api/v1/entities/ERASE-ME/events", "/api/v1/entities/ERASE-ME/timeline"} {
				if r := srv.do(t, "GET", path, nil); r.StatusCode != 404 {
					t.Errorf("GET %s after erasure = %d (a cache entry?): %s", path, r.StatusCode, r.Body)
				}
			}
			if r := srv.do(t, "GET", "/api/v1/entities", nil); strings.Contains(string(r.Body), "ERASE-ME") {
				t.Errorf("the list still shows the erased entity")
			}
			if r := srv.do(t, "DELETE", "/api/v1/entities/ERASE-ME", nil); r.StatusCode != 404 {
				t.Errorf("second erase: %d", r.StatusCode)
			}
		})
	}
}

// notMarker is the condition that leaves erasure markers out of a count of
// the events table's rows.
func notMarker(table string) string {
	if table != "events" {
		return ""
	}
	return " AND event_type <> '" + eventstore.ErasureType + "'"
}
