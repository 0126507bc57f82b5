package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/alerting/geofence"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

var _ alerting.PresenceStore = (*Store)(nil)

// presenceState is the JSON of a presence's state column.
type presenceState struct {
	geofence.Presence
	Visit     string    `json:"visit,omitempty"`
	ArrivedAt time.Time `json:"arrivedAt,omitzero"`
}

// Presences returns the stored presences of entities of a tenant.
func (s *Store) Presences(ctx context.Context, tenant string, entityIDs []string) ([]alerting.SitePresence, error) {
	var out []alerting.SitePresence
	for rest := entityIDs; len(rest) > 0; {
		n := min(len(rest), 500)
		q := `SELECT entity_id, site_id, state FROM site_presence WHERE tenant_id = ? AND entity_id IN (?` +
			strings.Repeat(", ?", n-1) + `) ORDER BY entity_id, site_id`
		args := make([]any, 0, n+1)
		args = append(args, tenant)
		for _, id := range rest[:n] {
			args = append(args, id)
		}
		rows, err := s.engine.SQL().Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: presences: %w", s.name, err)
		}
		for rows.Next() {
			p := alerting.SitePresence{Tenant: tenant}
			var (
				state string
				st    presenceState
			)
			if err := rows.Scan(&p.EntityID, &p.SiteID, &state); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: presences: %w", s.name, err)
			}
			if err := json.Unmarshal([]byte(state), &st); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: presence of %s at %s: %w", s.name, p.EntityID, p.SiteID, err)
			}
			p.Presence, p.VisitEventID, p.ArrivedAt = st.Presence, st.Visit, st.ArrivedAt
			out = append(out, p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: presences: %w", s.name, err)
		}
		rest = rest[n:]
	}
	return out, nil
}

// CommitPresences stores a batch's presences and checks and moves the
// checkpoint, in one transaction.
func (s *Store) CommitPresences(ctx context.Context, name string, from, to eventstore.Cursor, b alerting.PresenceBatch) error {
	var kept, gone []alerting.SitePresence
	for _, p := range b.Presences {
		if p.Kept() {
			kept = append(kept, p)
		} else {
			gone = append(gone, p)
		}
	}
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		if err := lockAt(ctx, tx, name, from); err != nil {
			return err
		}
		db := tx.SQL()
		for _, e := range b.Erased {
			if _, err := db.Exec(ctx, `DELETE FROM site_presence WHERE tenant_id = ? AND entity_id = ?`, e.Tenant, e.EntityID); err != nil {
				return err
			}
		}
		if err := inChunks(ctx, tx, gone, func(chunk []alerting.SitePresence) (string, []any) {
			keys := make([][]any, len(chunk))
			for i, p := range chunk {
				keys[i] = []any{p.Tenant, p.EntityID, p.SiteID}
			}
			return deleteEach("site_presence", []string{"tenant_id", "entity_id", "site_id"}, keys)
		}); err != nil {
			return err
		}
		var encodeErr error
		if err := inChunks(ctx, tx, kept, func(chunk []alerting.SitePresence) (string, []any) {
			var q strings.Builder
			q.WriteString(`INSERT INTO site_presence (tenant_id, entity_id, site_id, state) VALUES `)
			args := make([]any, 0, len(chunk)*4)
			for i, p := range chunk {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString("(?, ?, ?, ?)")
				state, err := json.Marshal(presenceState{Presence: p.Presence, Visit: p.VisitEventID, ArrivedAt: p.ArrivedAt})
				encodeErr = errors.Join(encodeErr, err)
				args = append(args, p.Tenant, p.EntityID, p.SiteID, string(state))
			}
			q.WriteString(` ON CONFLICT (tenant_id, entity_id, site_id) DO UPDATE SET state = excluded.state`)
			return q.String(), args
		}); err != nil || encodeErr != nil {
			return errors.Join(err, encodeErr)
		}
		for _, k := range b.Cancel {
			if _, err := db.Exec(ctx, `DELETE FROM alert_due WHERE tenant_id = ? AND entity_id = ? AND check_key = ?`,
				k.Tenant, k.EntityID, k.Key); err != nil {
				return err
			}
		}
		if err := schedule(ctx, tx, b.Schedule); err != nil {
			return err
		}
		return tx.SetCheckpoints(ctx, []string{name}, to)
	})
	if err != nil && !errors.Is(err, projection.ErrCheckpointMoved) {
		return fmt.Errorf("%s: commit presences: %w", s.name, err)
	}
	return err
}
