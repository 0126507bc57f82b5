package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/tracking"
)

// maxSiteBytes bounds a site's body: 10,000 positions (the most a
// geometry may have) take about 400 KB.
const maxSiteBytes = 1 << 20

func (s *server) siteRoutes(api func(string, string, func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	api("PUT /api/v1/sites/{siteId}", tracking.ScopeAdmin, s.putSite)
	api("GET /api/v1/sites/{siteId}", tracking.ScopeRead, s.getSite)
	api("GET /api/v1/sites", tracking.ScopeRead, s.listSites)
	api("DELETE /api/v1/sites/{siteId}", tracking.ScopeAdmin, s.deleteSite)
}

type siteResponse struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	Geometry  json.RawMessage `json:"geometry"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

func siteAnswer(site alerting.Site) siteResponse {
	return siteResponse{ID: site.ID, Name: site.Name, Geometry: site.Geometry, UpdatedAt: site.UpdatedAt}
}

func (s *server) putSite(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	var body struct {
		Name     string          `json:"name"`
		Geometry json.RawMessage `json:"geometry"`
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	limit := min(s.MaxBodyBytes, maxSiteBytes)
	if r.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, limit), &body); err != nil {
		return err
	}
	site, created, err := s.Sites.Put(r.Context(), p.Tenant, r.PathValue("siteId"), body.Name, body.Geometry)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/sites/"+url.PathEscape(site.ID))
	}
	writeJSON(w, status, siteAnswer(site))
	return nil
}

func (s *server) getSite(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	site, err := s.Sites.Get(r.Context(), p.Tenant, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, siteAnswer(site))
	return nil
}

func (s *server) listSites(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", defaultPageLimit, 1, maxPageLimit)
	if err != nil {
		return err
	}
	scope := []string{"sites", p.Tenant}
	after, err := s.cursors.open(q.Get("cursor"), scope...)
	if err != nil {
		return err
	}
	sites, err := s.Sites.List(r.Context(), p.Tenant, after, int(limit)+1)
	if err != nil {
		return err
	}
	out := struct {
		Items      []siteResponse `json:"items"`
		NextCursor string         `json:"nextCursor,omitempty"`
	}{Items: make([]siteResponse, 0, len(sites))}
	if len(sites) > int(limit) {
		sites = sites[:limit]
		out.NextCursor = s.cursors.seal(sites[len(sites)-1].ID, scope...)
	}
	for _, site := range sites {
		out.Items = append(out.Items, siteAnswer(site))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) deleteSite(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := s.Sites.Delete(r.Context(), p.Tenant, r.PathValue("siteId")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
