package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

func (s *server) subscriptionRoutes(api func(string, string, func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	api("POST /api/v1/subscriptions", tracking.ScopeAdmin, s.createSubscription)
	api("GET /api/v1/subscriptions", tracking.ScopeAdmin, s.listSubscriptions)
	api("GET /api/v1/subscriptions/{id}", tracking.ScopeAdmin, s.getSubscription)
	api("DELETE /api/v1/subscriptions/{id}", tracking.ScopeAdmin, s.deleteSubscription)
	api("POST /api/v1/subscriptions/{id}/pause", tracking.ScopeAdmin, s.changeSubscription(s.Subscriptions.Pause))
	api("POST /api/v1/subscriptions/{id}/resume", tracking.ScopeAdmin, s.changeSubscription(s.Subscriptions.Resume))
	api("POST /api/v1/subscriptions/{id}/rotate-secret", tracking.ScopeAdmin, s.rotateSubscriptionSecret)
	api("POST /api/v1/subscriptions/{id}/replay", tracking.ScopeAdmin, s.replaySubscription)
	api("GET /api/v1/subscriptions/{id}/deliveries", tracking.ScopeAdmin, s.subscriptionDeliveries)
}

// subscriptionProblem maps the subscriptions' errors; others go to
// problemFor.
func subscriptionProblem(err error) error {
	switch {
	case errors.Is(err, subscription.ErrInvalid):
		return badRequest(strings.TrimPrefix(err.Error(), subscription.ErrInvalid.Error()+": "))
	case errors.Is(err, subscription.ErrNotFound):
		return &requestError{newProblem(http.StatusNotFound, "not-found", "no such subscription")}
	}
	return err
}

type subscriptionFilter struct {
	subscription.Filter
	StatusChanges bool `json:"statusChanges,omitempty"`
	Exceptions    bool `json:"exceptions,omitempty"`
}

type subscriptionSecret struct {
	Secret  string     `json:"secret"`
	Expires *time.Time `json:"expires,omitempty"`
}

type subscriptionLag struct {
	Events  int64   `json:"events"`
	Seconds float64 `json:"seconds"`
}

type subscriptionResponse struct {
	ID       string              `json:"id"`
	URL      string              `json:"url"`
	Filter   subscription.Filter `json:"filter"`
	MaxBatch int                 `json:"maxBatch"`
	Since    *time.Time          `json:"since,omitempty"`
	Status   string              `json:"status"`
	Reason   string              `json:"reason,omitempty"`
	// Secret is the new secret in the clear: only in the answers that
	// create it.
	Secret    string               `json:"secret,omitempty"`
	Secrets   []subscriptionSecret `json:"secrets"`
	CreatedAt time.Time            `json:"createdAt"`
	// Position is the global position of the last event acknowledged.
	Position      int64               `json:"position"`
	Delivered     int64               `json:"delivered"`
	Lag           *subscriptionLag    `json:"lag,omitempty"`
	FailingSince  *time.Time          `json:"failingSince,omitempty"`
	Attempts      int                 `json:"failedAttempts"`
	NextAttemptAt *time.Time          `json:"nextAttemptAt,omitempty"`
	LastAttemptAt *time.Time          `json:"lastAttemptAt,omitempty"`
	LastSuccessAt *time.Time          `json:"lastSuccessAt,omitempty"`
	LastError     string              `json:"lastError,omitempty"`
	Replay        *subscriptionReplay `json:"replay,omitempty"`
}

type subscriptionReplay struct {
	ID        string     `json:"id"`
	Since     *time.Time `json:"from,omitempty"`
	UntilTime *time.Time `json:"to,omitempty"`
	Delivered int64      `json:"delivered"`
}

func (s *server) subscriptionAnswer(r *http.Request, sub subscription.Subscription, withLag bool) subscriptionResponse {
	out := subscriptionResponse{ID: sub.ID, URL: sub.URL, Filter: sub.Filter, MaxBatch: sub.MaxBatch, Since: sub.Since,
		Status: sub.Status, Reason: sub.Reason, CreatedAt: sub.CreatedAt, Position: sub.Position, Delivered: sub.Delivered,
		FailingSince: sub.FailingSince, Attempts: sub.Attempts, NextAttemptAt: sub.NextAttemptAt,
		LastAttemptAt: sub.LastAttemptAt, LastSuccessAt: sub.LastSuccessAt, LastError: sub.LastError,
		Secrets: make([]subscriptionSecret, 0, len(sub.Secrets))}
	for _, sc := range sub.Secrets {
		masked := "whsec_…"
		if sc.Key != nil {
			masked = sc.Masked()
		}
		out.Secrets = append(out.Secrets, subscriptionSecret{Secret: masked, Expires: sc.Expires})
	}
	if rp := sub.Replay; rp != nil {
		out.Replay = &subscriptionReplay{ID: rp.ID, Since: rp.Since, UntilTime: rp.UntilTime, Delivered: rp.Delivered}
	}
	if withLag {
		if n, age, err := s.Subscriptions.Lag(r.Context(), sub); err == nil {
			out.Lag = &subscriptionLag{Events: n, Seconds: age.Seconds()}
		}
	}
	return out
}

func (s *server) createSubscription(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var body struct {
		URL      string             `json:"url"`
		Filter   subscriptionFilter `json:"filter"`
		Start    json.RawMessage    `json:"start"`
		Secret   string             `json:"secret"`
		MaxBatch int                `json:"maxBatch"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		return err
	}
	if body.URL == "" {
		return badRequest("url is required", tracking.FieldError{Field: "url", Message: "required"})
	}
	start, err := parseStart(body.Start)
	if err != nil {
		return err
	}
	sub, err := s.Subscriptions.Create(r.Context(), p.Tenant, subscription.Definition{URL: body.URL, Filter: body.Filter.Filter,
		StatusChanges: body.Filter.StatusChanges, Exceptions: body.Filter.Exceptions, Start: start, Secret: body.Secret,
		MaxBatch: body.MaxBatch})
	if err != nil {
		return subscriptionProblem(err)
	}
	out := s.subscriptionAnswer(r, sub, false)
	out.Secret = sub.Secrets[0].String()
	w.Header().Set("Location", "/api/v1/subscriptions/"+url.PathEscape(sub.ID))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// parseStart reads "start": a string ("now", "beginning", a time) or a
// global position (a number).
func parseStart(raw json.RawMessage) (subscription.Start, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return subscription.Start(str), nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		return subscription.Start(strconv.FormatInt(n, 10)), nil
	}
	return "", badRequest(`start: "now", "beginning", a global position or an RFC 3339 time`,
		tracking.FieldError{Field: "start", Message: `"now", "beginning", a global position or an RFC 3339 time`})
}

func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	return listByID(w, r, func(after string, limit int) ([]subscription.Subscription, error) {
		return s.Subscriptions.List(r.Context(), p.Tenant, after, limit)
	}, func(sub subscription.Subscription) string { return sub.ID },
		func(sub subscription.Subscription) subscriptionResponse { return s.subscriptionAnswer(r, sub, false) })
}

func (s *server) getSubscription(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	sub, err := s.Subscriptions.Get(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		return subscriptionProblem(err)
	}
	writeJSON(w, http.StatusOK, s.subscriptionAnswer(r, sub, true))
	return nil
}

func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := s.Subscriptions.Delete(r.Context(), p.Tenant, r.PathValue("id")); err != nil {
		return subscriptionProblem(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changeSubscription serves a change without a body (pause, resume): it
// answers the subscription as changed.
func (s *server) changeSubscription(change func(ctx context.Context, tenant, id string) (subscription.Subscription, error)) func(http.ResponseWriter, *http.Request, tracking.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
		sub, err := change(r.Context(), p.Tenant, r.PathValue("id"))
		if err != nil {
			return subscriptionProblem(err)
		}
		writeJSON(w, http.StatusOK, s.subscriptionAnswer(r, sub, false))
		return nil
	}
}

// optionalJSON decodes a body that may be absent.
func optionalJSON(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	return decodeStrict(r.Body, v)
}

func (s *server) rotateSubscriptionSecret(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	var body struct {
		Secret string `json:"secret"`
	}
	if err := optionalJSON(r, &body); err != nil {
		return err
	}
	sub, secret, err := s.Subscriptions.Rotate(r.Context(), p.Tenant, r.PathValue("id"), body.Secret)
	if err != nil {
		return subscriptionProblem(err)
	}
	out := s.subscriptionAnswer(r, sub, false)
	out.Secret = secret.String()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) replaySubscription(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var body struct {
		FromPosition int64      `json:"fromPosition"`
		ToPosition   int64      `json:"toPosition"`
		From         *time.Time `json:"from"`
		To           *time.Time `json:"to"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		return err
	}
	sub, err := s.Subscriptions.Replay(r.Context(), p.Tenant, r.PathValue("id"), subscription.ReplayRange{
		FromPosition: body.FromPosition, ToPosition: body.ToPosition, From: body.From, To: body.To})
	if err != nil {
		return subscriptionProblem(err)
	}
	writeJSON(w, http.StatusAccepted, s.subscriptionAnswer(r, sub, false))
	return nil
}

type deliveryResponse struct {
	WebhookID     string    `json:"webhookId"`
	AttemptedAt   time.Time `json:"attemptedAt"`
	Attempt       int       `json:"attempt"`
	Events        int       `json:"events"`
	FirstPosition int64     `json:"firstPosition"`
	LastPosition  int64     `json:"lastPosition"`
	Replay        bool      `json:"replay,omitempty"`
	Status        int       `json:"status,omitempty"`
	LatencyMs     float64   `json:"latencyMs"`
	Error         string    `json:"error,omitempty"`
}

func (s *server) subscriptionDeliveries(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "limit", "before")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	var before time.Time
	if v := q.Get("before"); v != "" {
		if before, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return badRequest("before: an RFC 3339 time", tracking.FieldError{Field: "before", Message: "an RFC 3339 time"})
		}
	}
	ds, err := s.Subscriptions.Deliveries(r.Context(), p.Tenant, r.PathValue("id"), before, int(limit))
	if err != nil {
		return subscriptionProblem(err)
	}
	out := struct {
		Items      []deliveryResponse `json:"items"`
		NextBefore *time.Time         `json:"nextBefore,omitempty"`
	}{Items: make([]deliveryResponse, 0, len(ds))}
	for _, d := range ds {
		out.Items = append(out.Items, deliveryResponse{WebhookID: d.WebhookID, AttemptedAt: d.AttemptedAt, Attempt: d.Attempt,
			Events: d.Events, FirstPosition: d.FirstPosition, LastPosition: d.LastPosition, Replay: d.Replay, Status: d.Status,
			LatencyMs: float64(d.Latency.Microseconds()) / 1000, Error: d.Error})
	}
	if len(ds) == int(limit) {
		out.NextBefore = &ds[len(ds)-1].AttemptedAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
