package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EPCIS query subscriptions (GS1's binding, /queries/{queryName}/subscriptions):
// webhook subscriptions of the subscriptions' service that deliver a named
// query's events as EPCISQueryDocuments. The WebSocket binding is not
// served.

func (s *server) epcisSubscriptionRoutes(api func(pattern, scope string, h func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	api("POST /epcis/queries/{queryName}/subscriptions", tracking.ScopeWrite, s.subscribeQuery)
	api("GET /epcis/queries/{queryName}/subscriptions", tracking.ScopeRead, s.listQuerySubscriptions)
	api("GET /epcis/queries/{queryName}/subscriptions/{subscriptionID}", tracking.ScopeRead, s.getQuerySubscription)
	api("DELETE /epcis/queries/{queryName}/subscriptions/{subscriptionID}", tracking.ScopeWrite, s.unsubscribeQuery)
}

// scheduleField is a field of a query schedule: GS1 writes them as strings
// ("5", "[1-5]"), its examples also as numbers.
type scheduleField string

func (f *scheduleField) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*f = scheduleField(n.String())
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("a schedule field is a string (or a number)")
	}
	*f = scheduleField(str)
	return nil
}

type querySchedule struct {
	Second     scheduleField `json:"second,omitempty"`
	Minute     scheduleField `json:"minute,omitempty"`
	Hour       scheduleField `json:"hour,omitempty"`
	DayOfMonth scheduleField `json:"dayOfMonth,omitempty"`
	Month      scheduleField `json:"month,omitempty"`
	DayOfWeek  scheduleField `json:"dayOfWeek,omitempty"`
}

// querySubscription is a query subscription as the binding answers it
// (AbstractQuerySubscriptionResponse and QueryStreamSubscription or
// QueryScheduleSubscription), with its delivery status.
type querySubscription struct {
	SubscriptionID    string                 `json:"subscriptionID"`
	QueryName         string                 `json:"queryName"`
	Dest              string                 `json:"dest"`
	CreatedAt         string                 `json:"createdAt"`
	LastNotifiedAt    string                 `json:"lastNotifiedAt,omitempty"`
	InitialRecordTime string                 `json:"initialRecordTime,omitempty"`
	Stream            bool                   `json:"stream,omitempty"`
	Schedule          *subscription.Schedule `json:"schedule,omitempty"`
	ReportIfEmpty     bool                   `json:"reportIfEmpty,omitempty"`
	EPCFormat         string                 `json:"epcFormat,omitempty"`
	// Status is active, paused or suspended (then Reason says why).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// WebhookSecret, only in the answer creating a subscription without a
	// signatureToken, is the key of its Standard Webhooks signatures.
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

func epcisTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func querySubscriptionAnswer(sub subscription.Subscription) querySubscription {
	q := sub.EPCIS
	out := querySubscription{SubscriptionID: sub.ID, QueryName: q.QueryName, Dest: sub.URL, CreatedAt: epcisTime(sub.CreatedAt),
		Stream: q.Stream, Schedule: q.Schedule, ReportIfEmpty: q.ReportIfEmpty, EPCFormat: q.EPCFormat,
		Status: sub.Status, Reason: sub.Reason}
	if sub.LastSuccessAt != nil {
		out.LastNotifiedAt = epcisTime(*sub.LastSuccessAt)
	}
	if q.InitialRecordTime != nil {
		out.InitialRecordTime = epcisTime(*q.InitialRecordTime)
	}
	return out
}

// subscriptionControls maps the subscriptions' refusals to the binding's
// problems.
func subscriptionControls(err error) error {
	var bad *epcis.QueryParameterError
	switch {
	case errors.As(err, &bad):
		return queryError(err)
	case errors.Is(err, subscription.ErrInvalid):
		return epcisProblem(http.StatusBadRequest, "SubscriptionControlsException",
			strings.TrimPrefix(err.Error(), subscription.ErrInvalid.Error()+": "))
	case errors.Is(err, subscription.ErrNotFound):
		return epcisProblem(http.StatusNotFound, "NoSuchNameException", "no subscription of that id to this query")
	}
	return err
}

// maxSubscriptionBytes bounds a subscription request.
const maxSubscriptionBytes = 16 << 10

func (s *server) subscribeQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := requireJSON(r); err != nil {
		return epcisProblem(http.StatusUnsupportedMediaType, "UnsupportedMediaTypeException", "send the subscription as application/json")
	}
	var body struct {
		Dest              string         `json:"dest"`
		SignatureToken    string         `json:"signatureToken"`
		InitialRecordTime *time.Time     `json:"initialRecordTime"`
		Stream            *bool          `json:"stream"`
		Schedule          *querySchedule `json:"schedule"`
		ReportIfEmpty     bool           `json:"reportIfEmpty"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSubscriptionBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return epcisProblem(http.StatusBadRequest, "SubscriptionControlsException",
			`the body must be {"dest", "signatureToken"?, "initialRecordTime"?, "stream": true | "schedule": {...}, "reportIfEmpty"?}: `+err.Error())
	}
	if body.Dest == "" {
		return epcisProblem(http.StatusBadRequest, "SubscriptionControlsException", "dest is required",
			tracking.FieldError{Field: "dest", Message: "required"})
	}
	if body.Stream != nil && !*body.Stream {
		return epcisProblem(http.StatusBadRequest, "SubscriptionControlsException", "stream is true or absent (give a schedule instead)",
			tracking.FieldError{Field: "stream", Message: "true or absent"})
	}
	formats := []string{strings.TrimSpace(r.Header.Get("GS1-EPC-Format")), strings.TrimSpace(r.Header.Get("GS1-CBV-XML-Format"))}
	if _, err := epcisFormats(r); err != nil {
		return err
	}
	ns, err := gs1Extensions(r)
	if err != nil {
		return err
	}
	nq, err := s.namedQuery(r, p)
	if err != nil {
		return err
	}
	params, err := epcis.QueryValues(nq.Query)
	if err != nil {
		return queryError(err)
	}
	q := subscription.EPCISQuery{QueryName: nq.Name, Params: params, Namespaces: ns, Stream: body.Stream != nil,
		ReportIfEmpty: body.ReportIfEmpty, InitialRecordTime: body.InitialRecordTime, EPCFormat: formats[0], CBVFormat: formats[1]}
	if sc := body.Schedule; sc != nil {
		q.Schedule = &subscription.Schedule{Second: string(sc.Second), Minute: string(sc.Minute), Hour: string(sc.Hour),
			DayOfMonth: string(sc.DayOfMonth), Month: string(sc.Month), DayOfWeek: string(sc.DayOfWeek)}
	}
	sub, err := s.Subscriptions.SubscribeEPCIS(r.Context(), p.Tenant, subscription.EPCISDefinition{Dest: body.Dest, Query: q,
		SignatureToken: body.SignatureToken})
	if err != nil {
		return subscriptionControls(err)
	}
	out := querySubscriptionAnswer(sub)
	if body.SignatureToken == "" {
		out.WebhookSecret = sub.Secrets[0].String()
	}
	epcisHeaders(w)
	w.Header().Set("Location", "/epcis/queries/"+url.PathEscape(nq.Name)+"/subscriptions/"+url.PathEscape(sub.ID))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listQuerySubscriptions(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := epcisParams(r)
	if err != nil {
		return err
	}
	perPage, err := perPageParam(q, 30, maxCollectionPage)
	if err != nil {
		return err
	}
	nq, err := s.namedQuery(r, p)
	if err != nil {
		return err
	}
	subs, err := s.Subscriptions.EPCISSubscriptions(r.Context(), p.Tenant, nq.Name, q.Get("nextPageToken"), perPage+1)
	if err != nil {
		return err
	}
	epcisHeaders(w)
	if len(subs) > perPage {
		subs = subs[:perPage]
		next := url.Values{"perPage": {strconv.Itoa(perPage)}, "nextPageToken": {subs[len(subs)-1].ID}}
		w.Header().Set("Link", "<"+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
	}
	out := make([]querySubscription, 0, len(subs))
	for _, sub := range subs {
		out = append(out, querySubscriptionAnswer(sub))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getQuerySubscription(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	sub, err := s.Subscriptions.EPCISSubscription(r.Context(), p.Tenant, r.PathValue("queryName"), r.PathValue("subscriptionID"))
	if err != nil {
		return subscriptionControls(err)
	}
	epcisHeaders(w)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, querySubscriptionAnswer(sub))
	return nil
}

func (s *server) unsubscribeQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := s.Subscriptions.Unsubscribe(r.Context(), p.Tenant, r.PathValue("queryName"), r.PathValue("subscriptionID")); err != nil {
		return subscriptionControls(err)
	}
	epcisHeaders(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
