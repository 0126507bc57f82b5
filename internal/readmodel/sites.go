package readmodel

import (
	"context"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
)

var _ alerting.Sites = (*Store)(nil)

// PutSite stores a site, replacing the tenant's site of that id.
func (s *Store) PutSite(ctx context.Context, site alerting.Site) (created bool, err error) {
	db := s.engine.SQL()
	// Insert, else update: a delete between the two inserts again.
	for range 3 {
		n, err := db.Exec(ctx, `INSERT INTO sites (tenant_id, id, name, geometry, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, id) DO NOTHING`,
			site.Tenant, site.ID, site.Name, string(site.Geometry), site.UpdatedAt.UnixMicro())
		if err != nil {
			return false, fmt.Errorf("%s: put site: %w", s.name, err)
		}
		if n == 1 {
			return true, nil
		}
		n, err = db.Exec(ctx, `UPDATE sites SET name = ?, geometry = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			site.Name, string(site.Geometry), site.UpdatedAt.UnixMicro(), site.Tenant, site.ID)
		if err != nil {
			return false, fmt.Errorf("%s: put site: %w", s.name, err)
		}
		if n == 1 {
			return false, nil
		}
	}
	return false, fmt.Errorf("%s: put site %q: deleted and created concurrently, again and again", s.name, site.ID)
}

// Site returns a tenant's site, or alerting.ErrSiteNotFound.
func (s *Store) Site(ctx context.Context, tenant, id string) (alerting.Site, error) {
	sites, err := s.sites(ctx, `SELECT tenant_id, id, name, geometry, updated_at FROM sites WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return alerting.Site{}, err
	}
	if len(sites) == 0 {
		return alerting.Site{}, fmt.Errorf("%w: %q", alerting.ErrSiteNotFound, id)
	}
	return sites[0], nil
}

// ListSites returns up to limit sites of a tenant, by id, after `after`.
func (s *Store) ListSites(ctx context.Context, tenant, after string, limit int) ([]alerting.Site, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%s: list sites: limit %d must be positive", s.name, limit)
	}
	return s.sites(ctx, `SELECT tenant_id, id, name, geometry, updated_at FROM sites WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
		tenant, after, int64(limit))
}

func (s *Store) sites(ctx context.Context, query string, args ...any) ([]alerting.Site, error) {
	rows, err := s.engine.SQL().Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: sites: %w", s.name, err)
	}
	defer rows.Close()
	var out []alerting.Site
	for rows.Next() {
		var (
			site     alerting.Site
			geometry string
			updated  int64
		)
		if err := rows.Scan(&site.Tenant, &site.ID, &site.Name, &geometry, &updated); err != nil {
			return nil, fmt.Errorf("%s: sites: %w", s.name, err)
		}
		site.Geometry = []byte(geometry)
		site.UpdatedAt = time.UnixMicro(updated).UTC()
		out = append(out, site)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: sites: %w", s.name, err)
	}
	return out, nil
}

// DeleteSite deletes a tenant's site and the entities' presences at it,
// or answers alerting.ErrSiteNotFound.
func (s *Store) DeleteSite(ctx context.Context, tenant, id string) error {
	var n int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		var err error
		if n, err = tx.SQL().Exec(ctx, `DELETE FROM sites WHERE tenant_id = ? AND id = ?`, tenant, id); err != nil || n == 0 {
			return err
		}
		_, err = tx.SQL().Exec(ctx, `DELETE FROM site_presence WHERE tenant_id = ? AND site_id = ?`, tenant, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: delete site: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", alerting.ErrSiteNotFound, id)
	}
	return nil
}

// SitesVersion returns how many sites a tenant has and when the latest was
// put.
func (s *Store) SitesVersion(ctx context.Context, tenant string) (alerting.SitesVersion, error) {
	rows, err := s.engine.SQL().Query(ctx, `SELECT count(*), coalesce(max(updated_at), 0) FROM sites WHERE tenant_id = ?`, tenant)
	if err != nil {
		return alerting.SitesVersion{}, fmt.Errorf("%s: sites version: %w", s.name, err)
	}
	defer rows.Close()
	var v alerting.SitesVersion
	if rows.Next() {
		var updated int64
		if err := rows.Scan(&v.Count, &updated); err != nil {
			return alerting.SitesVersion{}, fmt.Errorf("%s: sites version: %w", s.name, err)
		}
		v.UpdatedAt = time.UnixMicro(updated).UTC()
	}
	if err := rows.Err(); err != nil {
		return alerting.SitesVersion{}, fmt.Errorf("%s: sites version: %w", s.name, err)
	}
	return v, nil
}
