package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

var _ projection.RetainedSource = (*Store)(nil)

// RetainedSnapshots lists the streams whose log no longer starts at version
// 1 (retention deleted their oldest events), after `after` in (tenant,
// stream) order, each with its newest snapshot of schemaVersion of its
// current incarnation and the lowest version left.
func (s *Store) RetainedSnapshots(ctx context.Context, after eventstore.StreamRef, schemaVersion, limit int) ([]projection.Retained, error) {
	rows, err := s.pool.Query(ctx, `SELECT st.tenant_id, st.stream_id, sn.version, sn.schema_version, sn.state::text, sn.created_at,
			sn.incarnation,
			coalesce((SELECT min(e.version) FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id), 0)
		FROM streams st
		JOIN LATERAL (SELECT x.version, x.schema_version, x.state, x.created_at, x.incarnation FROM snapshots x
			WHERE x.tenant_id = st.tenant_id AND x.stream_id = st.stream_id AND x.incarnation = st.incarnation
				AND x.schema_version = $1
			ORDER BY x.version DESC LIMIT 1) sn ON true
		WHERE (st.tenant_id, st.stream_id) > ($2, $3)
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id AND e.version = 1)
		ORDER BY st.tenant_id, st.stream_id LIMIT $4`, schemaVersion, after.Tenant, after.StreamID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: retained snapshots: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (projection.Retained, error) {
		var r projection.Retained
		var state string
		sn := &r.Snapshot
		err := row.Scan(&sn.Tenant, &sn.StreamID, &sn.Version, &sn.SchemaVersion, &state, &sn.CreatedAt, &sn.Incarnation, &r.First)
		sn.State, sn.CreatedAt = json.RawMessage(state), sn.CreatedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: retained snapshots: %w", classify(err))
	}
	return out, nil
}
