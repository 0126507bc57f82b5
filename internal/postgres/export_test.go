package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateTo applies the event-store migrations up to version only, to build
// a store of an older schema.
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, version int64) error {
	return migrateTo(ctx, pool, "events", "goose_db_version", 0x7472616b01, version)
}

// MigrateReadModelsTo applies the read-model migrations up to version
// only, to build read models of an older schema.
func MigrateReadModelsTo(ctx context.Context, pool *pgxpool.Pool, version int64) error {
	return migrateTo(ctx, pool, "readmodels", "goose_readmodels_version", 0x7472616b02, version)
}
