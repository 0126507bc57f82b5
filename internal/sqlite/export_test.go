package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// MigrateReadModelsTo applies the read-model migrations up to version
// only, to build read models of an older schema.
func (s *Store) MigrateReadModelsTo(ctx context.Context, version int64) error {
	names, err := fs.Glob(readModelMigrations, "migrations_readmodels/*.sql")
	if err != nil {
		return err
	}
	older := fstest.MapFS{}
	for _, name := range names {
		n, err := strconv.ParseInt(strings.SplitN(path.Base(name), "_", 2)[0], 10, 64)
		if err != nil || n > version {
			continue
		}
		data, err := fs.ReadFile(readModelMigrations, name)
		if err != nil {
			return err
		}
		older[name] = &fstest.MapFile{Data: data}
	}
	return s.migrate(ctx, older, "migrations_readmodels", "goose_readmodels_version")
}

// WriteDB returns the writer's connection.
func (s *Store) WriteDB() *sql.DB { return s.write }

// CommitBatch writes reqs as one group commit's batch, as the writer
// would hand them over: tests decide what shares a transaction.
func (s *Store) CommitBatch(ctx context.Context, reqs []eventstore.AppendRequest) []eventstore.Outcome {
	batch := make([]eventstore.AppendRequest, len(reqs))
	for i, r := range reqs {
		p, err := r.Prepare()
		if err != nil {
			panic(err)
		}
		batch[i] = p
	}
	return s.commit(ctx, batch)
}
