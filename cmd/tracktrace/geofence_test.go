package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// Issue 19, Done when 2, end to end on both engines: sites put through the
// API (a Maasvlakte terminal polygon, Taveuni across the 180th meridian, a
// Hamburg yard without its building) turn posted position fixes into one
// arrived and one departed milestone per visit despite jitter at the edge;
// a fix in the building is outside the yard; a dwell rule raises at its
// threshold, not before, and the departure resolves it; the alerts'
// follower sent back to the beginning of the log derives nothing twice.
func TestGeofencesAndDwellEndToEnd(t *testing.T) {
	t.Parallel()
	for _, eng := range []string{"sqlite", "postgres"} {
		t.Run(eng, func(t *testing.T) {
			t.Parallel()
			var (
				env    []string
				rewind func()
			)
			switch eng {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "t.db")
				env = []string{"EventStore__ConnectionString=file:" + path}
				rewind = func() {
					db, err := sql.Open("sqlite", "file:"+path)
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					if _, err := db.Exec(`UPDATE projection_checkpoints SET tx_id = 0, position = 0 WHERE name = 'alerts'`); err != nil {
						t.Fatal(err)
					}
				}
			case "postgres":
				dsn := pgtest.NewDatabase(t)
				env = []string{"ConnectionStrings__EventStore=" + dsn}
				rewind = func() {
					conn, err := pgx.Connect(context.Background(), dsn)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(context.Background())
					if _, err := conn.Exec(context.Background(),
						`UPDATE projection_checkpoints SET tx_id = '0', position = 0 WHERE name = 'alerts'`); err != nil {
						t.Fatal(err)
					}
				}
			}
			env = append(env, "ReadModels__RefreshInterval=00:00:00.2")
			srv := startServer(t, env)
			must := func(want int, r response) response {
				t.Helper()
				if r.StatusCode != want {
					t.Fatalf("%s %s = %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
				}
				return r
			}
			for id, geometry := range map[string]string{
				"maasvlakte": `{"type": "Polygon", "coordinates": [[[3.9950, 51.9620], [4.0050, 51.9400], [4.0400, 51.9400],
					[4.0620, 51.9500], [4.0550, 51.9680], [4.0180, 51.9780], [3.9950, 51.9620]]]}`,
				"taveuni": `{"type": "Polygon", "coordinates": [[[179.85, -16.70], [-179.85, -16.70], [-179.85, -17.05],
					[179.85, -17.05], [179.85, -16.70]]]}`,
				"altenwerder-4": `{"type": "Polygon", "coordinates": [
					[[9.9200, 53.5000], [9.9350, 53.5000], [9.9350, 53.5070], [9.9200, 53.5070], [9.9200, 53.5000]],
					[[9.9260, 53.5020], [9.9260, 53.5040], [9.9290, 53.5040], [9.9290, 53.5020], [9.9260, 53.5020]]]}`,
			} {
				must(201, srv.do(t, "PUT", "/api/v1/sites/"+id, map[string]any{"name": "site " + id, "geometry": rawJSON(geometry)}))
			}
			must(201, srv.do(t, "POST", "/api/v1/rules", map[string]any{"kind": "dwell", "after": "PT1M", "siteIds": []string{"altenwerder-4"}}))

			// Fixes in the past (the dwell threshold is near), a second apart.
			start := time.Now().Add(-3 * time.Minute).UTC().Truncate(time.Second)
			post := func(entity string, from time.Duration, positions ...[2]float64) {
				t.Helper()
				var events []any
				for i, p := range positions {
					events = append(events, map[string]any{"type": "LocationReported",
						"occurredAt": start.Add(from + time.Duration(i)*time.Second).Format(time.RFC3339),
						"data":       map[string]any{"lat": p[0], "lon": p[1]}})
				}
				must(201, srv.do(t, "POST", "/api/v1/entities/"+entity+"/events", map[string]any{"entityType": "container", "events": events}))
			}
			type derived struct{ types, milestones []string }
			derivedOf := func(entity string) derived {
				t.Helper()
				var page struct {
					Events []struct {
						Type     string
						Data     map[string]any
						Metadata struct{ Source string }
					}
				}
				must(200, srv.do(t, "GET", "/api/v1/entities/"+entity+"/events?limit=1000", nil)).JSON(t, &page)
				var d derived
				for _, e := range page.Events {
					if e.Metadata.Source != "tracktrace/alerts" {
						continue
					}
					d.types = append(d.types, e.Type)
					if e.Type == "MilestoneReached" {
						d.milestones = append(d.milestones, fmt.Sprint(e.Data["milestone"], "@", e.Data["siteId"]))
					}
				}
				return d
			}
			waitFor := func(what string, cond func() bool) {
				t.Helper()
				for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s", what)
					}
				}
			}
			expect := func(entity string, want ...string) {
				t.Helper()
				if got := derivedOf(entity).milestones; strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s's derived milestones %q, want %q", entity, got, want)
				}
			}

			in10, out10 := [2]float64{51.94009, 4.0200}, [2]float64{51.93991, 4.0200} // 10 m either side of the edge
			in100, out200 := [2]float64{51.9409, 4.0200}, [2]float64{51.9382, 4.0200}
			post("MSKU-1", 0, out10, in10, out10, in10, in100, in100, out10, in10, out10, out200, out200)
			post("MSKU-2", 0, [2]float64{-18.1416, 178.4419}, [2]float64{-16.85, 179.95}, [2]float64{-16.85, -179.95},
				[2]float64{-18.1416, 178.4419}, [2]float64{-18.1416, 178.4419})
			building, yard := [2]float64{53.5030, 9.9275}, [2]float64{53.5010, 9.9230}
			post("MSKU-3", 0, building, building, building)
			waitFor("the Taveuni visit", func() bool { return len(derivedOf("MSKU-2").milestones) == 2 })
			waitFor("the Maasvlakte visit", func() bool { return len(derivedOf("MSKU-1").milestones) == 2 })
			expect("MSKU-1", "arrived@maasvlakte", "departed@maasvlakte")
			expect("MSKU-2", "arrived@taveuni", "departed@taveuni")
			expect("MSKU-3") // the building is not in the yard

			// Into the yard: arrived 50 s ago, the dwell check is due in 10 s.
			start = time.Now().Add(-51 * time.Second).UTC().Truncate(time.Second)
			post("MSKU-3", 0, yard, yard)
			waitFor("the yard arrival", func() bool { return len(derivedOf("MSKU-3").milestones) == 1 })
			if types := derivedOf("MSKU-3").types; strings.Contains(strings.Join(types, " "), "ExceptionRaised") {
				t.Fatalf("a dwell exception before the threshold: %q", types)
			}
			waitFor("the dwell exception", func() bool {
				return strings.Contains(strings.Join(derivedOf("MSKU-3").types, " "), "ExceptionRaised")
			})
			var entity struct {
				OpenExceptions []struct{ Code, Description string }
			}
			must(200, srv.do(t, "GET", "/api/v1/entities/MSKU-3?consistent=true", nil)).JSON(t, &entity)
			if len(entity.OpenExceptions) != 1 || entity.OpenExceptions[0].Code != "dwell" ||
				!strings.Contains(entity.OpenExceptions[0].Description, "site altenwerder-4") {
				t.Fatalf("open exceptions %+v, want one dwell at the yard", entity.OpenExceptions)
			}
			start = time.Now().Add(-5 * time.Second).UTC().Truncate(time.Second)
			post("MSKU-3", 0, building, building)
			waitFor("the resolution", func() bool {
				return strings.Contains(strings.Join(derivedOf("MSKU-3").types, " "), "ExceptionResolved")
			})
			expect("MSKU-3", "arrived@altenwerder-4", "departed@altenwerder-4")
			before := map[string][]string{}
			for _, id := range []string{"MSKU-1", "MSKU-2", "MSKU-3"} {
				before[id] = derivedOf(id).types
			}

			// The alerts' follower from the beginning of the log again.
			if err := srv.stop(); err != nil {
				t.Fatal(err)
			}
			rewind()
			srv = startServer(t, env)
			// A visit after everything else: once derived, the log before it
			// was evaluated again.
			start = time.Now().Add(-5 * time.Second).UTC().Truncate(time.Second)
			post("MSKU-4", 0, [2]float64{-16.85, 179.95}, [2]float64{-16.85, 179.95})
			waitFor("the sentinel's arrival", func() bool { return len(derivedOf("MSKU-4").milestones) == 1 })
			time.Sleep(time.Second) // a re-fired dwell check would land now
			for id, want := range before {
				if got := derivedOf(id).types; strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s after evaluating the log again: derived %q, want %q", id, got, want)
				}
			}
			var raw json.RawMessage
			must(200, srv.do(t, "GET", "/api/v1/entities/MSKU-3?consistent=true", nil)).JSON(t, &raw)
			if strings.Contains(string(raw), `"dwell"`) {
				t.Errorf("MSKU-3 has a dwell exception open again: %s", raw)
			}
		})
	}
}
