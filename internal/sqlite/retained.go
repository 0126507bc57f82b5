package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

var _ projection.RetainedSource = (*Store)(nil)

// RetainedSnapshots lists the streams whose log no longer starts at version
// 1 (retention deleted their oldest events), after `after` in (tenant,
// stream) order, each with its newest snapshot of schemaVersion of its
// current incarnation and the lowest version left.
func (s *Store) RetainedSnapshots(ctx context.Context, after eventstore.StreamRef, schemaVersion, limit int) ([]projection.Retained, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT st.tenant_id, st.stream_id, sn.version, sn.schema_version, sn.state, sn.created_at,
			sn.incarnation,
			coalesce((SELECT min(e.version) FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id), 0)
		FROM streams st
		JOIN snapshots sn ON sn.tenant_id = st.tenant_id AND sn.stream_id = st.stream_id AND sn.incarnation = st.incarnation
			AND sn.version = (SELECT max(x.version) FROM snapshots x WHERE x.tenant_id = st.tenant_id AND x.stream_id = st.stream_id
				AND x.incarnation = st.incarnation AND x.schema_version = ?1)
		WHERE (st.tenant_id, st.stream_id) > (?2, ?3)
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = st.tenant_id AND e.stream_id = st.stream_id AND e.version = 1)
		ORDER BY st.tenant_id, st.stream_id LIMIT ?4`, schemaVersion, after.Tenant, after.StreamID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: retained snapshots: %w", classify(err))
	}
	defer rows.Close()
	var out []projection.Retained
	for rows.Next() {
		var r projection.Retained
		var state string
		var created int64
		sn := &r.Snapshot
		if err := rows.Scan(&sn.Tenant, &sn.StreamID, &sn.Version, &sn.SchemaVersion, &state, &created, &sn.Incarnation, &r.First); err != nil {
			return nil, fmt.Errorf("sqlite: retained snapshots: %w", classify(err))
		}
		sn.State, sn.CreatedAt = json.RawMessage(state), time.UnixMicro(created).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: retained snapshots: %w", classify(err))
	}
	return out, nil
}
