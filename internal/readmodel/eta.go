package readmodel

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
)

var _ alerting.EtaStore = (*Store)(nil)

// EtaDecisions returns what is decided for an entity's ETA changes up to
// position.
func (s *Store) EtaDecisions(ctx context.Context, tenant, entityID string, position int64) (alerting.EtaDecisions, error) {
	var d alerting.EtaDecisions
	rows, err := s.engine.SQL().Query(ctx, `SELECT decided_position FROM eta_decisions WHERE tenant_id = ? AND entity_id = ?`,
		tenant, entityID)
	if err != nil {
		return d, fmt.Errorf("%s: ETA decisions: %w", s.name, err)
	}
	for rows.Next() {
		if err := rows.Scan(&d.Decided); err != nil {
			rows.Close()
			return d, fmt.Errorf("%s: ETA decisions: %w", s.name, err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("%s: ETA decisions: %w", s.name, err)
	}
	// The change at position, if announced, and the announcement before.
	rows, err = s.engine.SQL().Query(ctx, `SELECT position, eta FROM eta_announcements
		WHERE tenant_id = ? AND entity_id = ? AND position <= ? ORDER BY position DESC LIMIT 2`, tenant, entityID, position)
	if err != nil {
		return d, fmt.Errorf("%s: ETA announcements: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() && d.Last == nil {
		var (
			a   alerting.EtaAnnouncement
			eta sql.NullInt64
		)
		if err := rows.Scan(&a.Position, &eta); err != nil {
			return d, fmt.Errorf("%s: ETA announcements: %w", s.name, err)
		}
		a.ETA = fromMicros(eta)
		if a.Position == position && !d.Announced {
			d.Announced = true
			continue
		}
		d.Last = &a
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("%s: ETA announcements: %w", s.name, err)
	}
	return d, nil
}

// DecideEta records the decision on an entity's ETA change at position,
// if its decided position is still at from.
func (s *Store) DecideEta(ctx context.Context, tenant, entityID string, from, position int64, announced bool, eta *time.Time) (bool, error) {
	var moved int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		var err error
		if from == 0 {
			moved, err = tx.SQL().Exec(ctx, `INSERT INTO eta_decisions (tenant_id, entity_id, decided_position) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id, entity_id) DO NOTHING`, tenant, entityID, position)
		} else {
			moved, err = tx.SQL().Exec(ctx, `UPDATE eta_decisions SET decided_position = ?
				WHERE tenant_id = ? AND entity_id = ? AND decided_position = ?`, position, tenant, entityID, from)
		}
		if err != nil || moved == 0 || !announced {
			return err
		}
		_, err = tx.SQL().Exec(ctx, `INSERT INTO eta_announcements (tenant_id, entity_id, position, eta) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, entity_id, position) DO NOTHING`, tenant, entityID, position, micros(eta))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: decide an ETA change: %w", s.name, err)
	}
	return moved > 0, nil
}
