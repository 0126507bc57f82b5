// Package pgtest gives tests a private PostgreSQL database on the machine's
// server. Under CI=true an unreachable server fails the test; elsewhere the
// test is skipped, saying why.
package pgtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AdminDSN is the server tests use: TRACKTRACE_TEST_POSTGRES, or the local
// server with trust authentication.
func AdminDSN() string {
	if dsn := os.Getenv("TRACKTRACE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Unreachable fails (CI) or skips (elsewhere) the test because PostgreSQL
// cannot be reached.
func Unreachable(t testing.TB, err error) {
	t.Helper()
	if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
		t.Fatalf("PostgreSQL at %s is unreachable under CI: %v", redact(AdminDSN()), err)
	}
	t.Skipf("skipping: PostgreSQL at %s is unreachable (%v); set TRACKTRACE_TEST_POSTGRES or start it", redact(AdminDSN()), err)
}

// NewDatabase creates an empty database for the test, drops it at cleanup,
// and returns its connection string.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminDSN())
	if err != nil {
		Unreachable(t, err)
	}
	defer admin.Close(ctx)
	name := "tt_test_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, AdminDSN())
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatalf("parse %s: %v", redact(AdminDSN()), err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
