package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/postgres/pgtest"
)

// A transaction left open on another connection (one that took a
// transaction id) holds the PostgreSQL log's read horizon back: appends go
// on, but no follower sees them. The service says so: a gauge with the
// holder's age, a warning naming its pid, application_name and state (not
// its query), and a Degraded readiness detail, while /health/ready stays
// 200. After the holder commits, the followers catch up and all of it clears.
func TestLongTransactionHoldingTheHorizonIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	srv := startServer(t, []string{"ConnectionStrings__EventStore=" + dsn,
		"EventStore__LongTransactionWarning=PT1S", "ReadModels__RefreshInterval=00:00:01"})

	const entity = "/api/v1/entities/HZN-1"
	post := func(events ...map[string]any) {
		t.Helper()
		r := srv.do(t, "POST", entity+"/events", map[string]any{"entityType": "shipment", "events": events})
		if r.StatusCode != 201 {
			t.Fatalf("append: %d %s", r.StatusCode, r.Body)
		}
	}
	timeline := func() int {
		t.Helper()
		var tl struct{ Entries []json.RawMessage }
		srv.do(t, "GET", entity+"/timeline", nil).JSON(t, &tl)
		return len(tl.Entries)
	}
	type check struct{ Name, Status, Detail string }
	ready := func() (int, check) {
		t.Helper()
		r := srv.do(t, "GET", "/health/ready", nil)
		var rep struct{ Checks []check }
		r.JSON(t, &rep)
		for _, c := range rep.Checks {
			if c.Name == "log-horizon" {
				return r.StatusCode, c
			}
		}
		t.Fatalf("/health/ready has no log-horizon check: %s", r.Body)
		return 0, check{}
	}
	post(ev("EntityRegistered", 0, `{}`))
	waitProjections(t, srv)

	// The holder: a transaction that took an id and sits idle, as a
	// forgotten psql session or a stuck job would.
	conn, err := pgx.Connect(ctx, dsn+"&application_name=horizon-holder")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id() /* secret-customer-data */"); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	post(ev("MilestoneReached", time.Minute, `{"milestone": "picked_up"}`),
		ev("MilestoneReached", 2*time.Minute, `{"milestone": "departed"}`))

	// Readiness names the holder (other tests' transactions on the shared
	// server may be reported first, briefly).
	wantDetail := "pid " + strconv.Itoa(pid) + ` (application_name "horizon-holder", state "idle in transaction")`
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, c := ready()
		if status != 200 {
			t.Fatalf("/health/ready = %d while the horizon is held; want 200 (Degraded, not unready)", status)
		}
		if c.Status == "Degraded" && strings.Contains(c.Detail, wantDetail) {
			if !strings.Contains(c.Detail, "2 committed events waiting") {
				t.Errorf("readiness detail %q does not count the 2 events waiting", c.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness never named the holder: last %+v, want a detail with %q", c, wantDetail)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The followers did not move: the timeline still has the first event.
	if n := timeline(); n != 1 {
		t.Fatalf("the timeline has %d entries while the horizon is held; want 1", n)
	}
	if age := scrape(t, srv)["tracktrace_eventstore_horizon_holder_age_seconds"]; age < 1 || age > time.Since(held).Seconds()+1 {
		t.Errorf("tracktrace_eventstore_horizon_holder_age_seconds = %v, want between 1 and %v", age, time.Since(held).Seconds()+1)
	}
	if n := scrape(t, srv)["tracktrace_eventstore_horizon_waiting_events"]; n != 2 {
		t.Errorf("tracktrace_eventstore_horizon_waiting_events = %v, want 2", n)
	}
	logs := srv.logs.String()
	if !warned(logs, pid) {
		t.Errorf("no warning naming pid %d, application_name and state in the log:\n%s", pid, logs)
	}
	if strings.Contains(logs, "secret-customer-data") {
		t.Errorf("the log carries the holder's query text")
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, c := ready()
		n := timeline()
		age := scrape(t, srv)["tracktrace_eventstore_horizon_holder_age_seconds"]
		if n == 3 && !strings.Contains(c.Detail, "pid "+strconv.Itoa(pid)+" ") && age < 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the commit: timeline %d entries (want 3), readiness %+v, age %v (want below 1)", n, c, age)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(srv.logs.String(), "read horizon released") {
		t.Errorf("no log line says the horizon was released")
	}
}

// warned reports a warning log line naming the holder's pid, its
// application_name and its state.
func warned(logs string, pid int) bool {
	for line := range strings.SplitSeq(logs, "\n") {
		var rec struct {
			Level, Msg, State string
			PID               int
			ApplicationName   string `json:"application_name"`
			AgeSeconds        int64  `json:"age_seconds"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec.Level == "WARN" && rec.PID == pid && rec.ApplicationName == "horizon-holder" &&
			rec.State == "idle in transaction" && rec.AgeSeconds >= 1 && strings.Contains(rec.Msg, "read horizon") {
			return true
		}
	}
	return false
}
