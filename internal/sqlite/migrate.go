package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the pending schema migrations. Processes that open the same
// file at once take turns on an exclusive lock on "<file>.migrate.lock".
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, migrations, "migrations", goose.DefaultTablename)
}

// migrate applies one set of migrations (the event store's, or the read
// models') with its own version table, under the file's migration lock.
func (s *Store) migrate(ctx context.Context, fsys fs.FS, dir, table string) error {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return err
	}
	// The lock is taken before the provider opens its first connection:
	// opening one converts a new file to WAL, which must not race either.
	lock := &fileLocker{path: s.path + ".migrate.lock"}
	if err := lock.SessionLock(ctx, nil); err != nil {
		return err
	}
	defer lock.SessionUnlock(ctx, nil)
	p, err := goose.NewProvider(goose.DialectSQLite3, s.write, sub,
		goose.WithTableName(table),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", dir, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate %s (%s): %w", s.path, dir, err)
	}
	return nil
}

// fileLocker is an exclusive flock(2) on a file: SQLite has no advisory
// locks, and its own locks do not span goose's reads and writes.
type fileLocker struct {
	path string
	f    *os.File
}

func (l *fileLocker) SessionLock(ctx context.Context, _ *sql.Conn) error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: migration lock: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return fmt.Errorf("sqlite: migration lock: %w", err)
		}
		l.f = f
		return nil
	case <-ctx.Done():
		f.Close() // releases the lock if the goroutine got it meanwhile
		return ctx.Err()
	}
}

func (l *fileLocker) SessionUnlock(context.Context, *sql.Conn) error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
