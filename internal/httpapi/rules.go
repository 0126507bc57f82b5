package httpapi

import (
	"net/http"
	"net/url"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/tracking"
)

func (s *server) ruleRoutes(api func(string, string, func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	api("POST /api/v1/rules", tracking.ScopeAdmin, s.createRule)
	api("GET /api/v1/rules", tracking.ScopeAdmin, s.listRules)
	api("GET /api/v1/rules/{id}", tracking.ScopeAdmin, s.getRule)
	api("PUT /api/v1/rules/{id}", tracking.ScopeAdmin, s.replaceRule)
	api("DELETE /api/v1/rules/{id}", tracking.ScopeAdmin, s.deleteRule)
}

// ruleRequest is the body of a rule's creation or replacement.
type ruleRequest struct {
	Kind        string   `json:"kind"`
	After       *string  `json:"after"`
	Levels      []string `json:"levels"`
	ExpireAfter *string  `json:"expireAfter"`
	Tolerance   *string  `json:"tolerance"`
	ETADelta    *string  `json:"etaDelta"`
	EntityTypes []string `json:"entityTypes"`
	Statuses    []string `json:"statuses"`
	SiteIDs     []string `json:"siteIds"`
}

func readRule(r *http.Request) (alerting.Definition, error) {
	if err := requireJSON(r); err != nil {
		return alerting.Definition{}, err
	}
	var b ruleRequest
	if err := decodeStrict(r.Body, &b); err != nil {
		return alerting.Definition{}, err
	}
	return alerting.Definition{Kind: b.Kind, After: b.After, Levels: b.Levels, ExpireAfter: b.ExpireAfter, Tolerance: b.Tolerance,
		ETADelta: b.ETADelta, EntityTypes: b.EntityTypes, Statuses: b.Statuses, SiteIDs: b.SiteIDs}, nil
}

// ruleResponse is a rule as the API shows it: the settings of its kind,
// defaults filled in, durations in ISO-8601.
type ruleResponse struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	EntityTypes []string          `json:"entityTypes"`
	Statuses    []string          `json:"statuses"`
	SiteIDs     []string          `json:"siteIds,omitempty"`
	Levels      []config.Duration `json:"levels,omitempty"`
	ExpireAfter *config.Duration  `json:"expireAfter,omitempty"`
	Tolerance   *config.Duration  `json:"tolerance,omitempty"`
	ETADelta    *config.Duration  `json:"etaDelta,omitempty"`
	After       *config.Duration  `json:"after,omitempty"`
	Generation  int64             `json:"generation"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
}

func ruleAnswer(r alerting.Rule) ruleResponse {
	d := func(v time.Duration) *config.Duration { c := config.Duration(v); return &c }
	out := ruleResponse{ID: r.ID, Kind: r.Kind, EntityTypes: r.EntityTypes, Statuses: r.Statuses,
		Generation: r.Generation, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if out.EntityTypes == nil {
		out.EntityTypes = []string{}
	}
	if out.Statuses == nil {
		out.Statuses = []string{}
	}
	switch r.Kind {
	case alerting.KindStale:
		for _, l := range r.Levels {
			out.Levels = append(out.Levels, config.Duration(l))
		}
		out.ExpireAfter = d(r.ExpireAfter)
	case alerting.KindDelay:
		out.Tolerance, out.ETADelta = d(r.Tolerance), d(r.ETADelta)
	case alerting.KindDwell:
		out.After = d(r.After)
		out.SiteIDs = r.SiteIDs
		if out.SiteIDs == nil {
			out.SiteIDs = []string{}
		}
	}
	return out
}

func (s *server) createRule(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	def, err := readRule(r)
	if err != nil {
		return err
	}
	rule, err := s.Rules.Create(r.Context(), p.Tenant, def)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/rules/"+url.PathEscape(rule.ID))
	writeJSON(w, http.StatusCreated, ruleAnswer(rule))
	return nil
}

func (s *server) replaceRule(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	def, err := readRule(r)
	if err != nil {
		return err
	}
	rule, err := s.Rules.Replace(r.Context(), p.Tenant, r.PathValue("id"), def)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ruleAnswer(rule))
	return nil
}

func (s *server) listRules(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	return listByID(w, r, func(after string, limit int) ([]alerting.Rule, error) {
		return s.Rules.List(r.Context(), p.Tenant, after, limit)
	}, func(rule alerting.Rule) string { return rule.ID }, ruleAnswer)
}

// listByID answers a page of a list ordered by id: `{"items", "nextAfter"?}`,
// at most ?limit= items (default 100) after the id ?after=.
func listByID[T, A any](w http.ResponseWriter, r *http.Request, list func(after string, limit int) ([]T, error),
	id func(T) string, answer func(T) A,
) error {
	q, err := query(r, "limit", "after")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	items, err := list(q.Get("after"), int(limit))
	if err != nil {
		return err
	}
	out := struct {
		Items []A    `json:"items"`
		Next  string `json:"nextAfter,omitempty"`
	}{Items: make([]A, 0, len(items))}
	for _, it := range items {
		out.Items = append(out.Items, answer(it))
	}
	if len(items) == int(limit) {
		out.Next = id(items[len(items)-1])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getRule(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	rule, err := s.Rules.Get(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ruleAnswer(rule))
	return nil
}

func (s *server) deleteRule(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := s.Rules.Delete(r.Context(), p.Tenant, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
