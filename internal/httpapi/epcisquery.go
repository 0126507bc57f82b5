package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/xmlbind"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EPCISIndex is what the EPCIS queries need of the read models.
type EPCISIndex interface {
	EPCISEvents(ctx context.Context, tenant string, q epcis.Query, page string, perPage int) (epcis.Page, error)
	// EPCISValues lists the distinct values of a kind (bizStep,
	// disposition, readPoint, bizLocation, epc) a tenant's events hold,
	// after `after`, at most limit.
	EPCISValues(ctx context.Context, tenant, kind, after string, limit int) ([]string, error)
}

func (s *server) epcisQueryRoutes(api func(pattern, scope string, h func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	read := tracking.ScopeRead
	api("GET /epcis/events", read, s.queryEvents(nil))
	api("GET /epcis/events/{eventID}", read, s.queryEvents(func(r *http.Request, q url.Values) { q.Set("EQ_eventID", r.PathValue("eventID")) }))
	api("GET /epcis/eventTypes", read, s.epcisCollection(func(context.Context, tracking.Principal, string, int) ([]string, error) {
		return epcis.EventTypes(), nil
	}))
	api("GET /epcis/eventTypes/{eventType}/events", read, s.queryEvents(func(r *http.Request, q url.Values) { q.Set("eventType", r.PathValue("eventType")) }))
	for _, res := range []struct{ path, kind, param string }{
		{"epcs", "epc", "MATCH_anyEPC"},
		{"bizSteps", "bizStep", "EQ_bizStep"},
		{"bizLocations", "bizLocation", "EQ_bizLocation"},
		{"readPoints", "readPoint", "EQ_readPoint"},
		{"dispositions", "disposition", "EQ_disposition"},
	} {
		kind, param, segment := res.kind, res.param, strings.TrimSuffix(res.path, "s")
		if res.path == "epcs" {
			segment = "epc"
		}
		api("GET /epcis/"+res.path, read, s.epcisCollection(func(ctx context.Context, p tracking.Principal, after string, limit int) ([]string, error) {
			return s.EPCIS.Index.EPCISValues(ctx, p.Tenant, kind, after, limit)
		}))
		api("GET /epcis/"+res.path+"/{"+segment+"}/events", read, s.queryEvents(func(r *http.Request, q url.Values) {
			q.Set(param, r.PathValue(segment))
		}))
	}
	api("GET /epcis/queries", read, s.listQueries)
	api("POST /epcis/queries", tracking.ScopeWrite, s.createQuery)
	api("GET /epcis/queries/{queryName}", read, s.getQuery)
	api("DELETE /epcis/queries/{queryName}", tracking.ScopeWrite, s.deleteQuery)
	api("GET /epcis/queries/{queryName}/events", read, s.namedQueryEvents)
	if s.Subscriptions != nil {
		s.epcisSubscriptionRoutes(api)
	}
}

// epcisFormats reads the answer formats a request asks for.
func epcisFormats(r *http.Request) (epcis.Formats, error) {
	ef, err := epc.ParseEPCFormat(r.Header.Get("GS1-EPC-Format"))
	if err != nil {
		return epcis.Formats{}, epcisProblem(http.StatusBadRequest, "ValidationException", "GS1-EPC-Format: "+err.Error())
	}
	cf, err := epc.ParseCBVFormat(r.Header.Get("GS1-CBV-XML-Format"))
	if err != nil {
		return epcis.Formats{}, epcisProblem(http.StatusBadRequest, "ValidationException", "GS1-CBV-XML-Format: "+err.Error())
	}
	return epcis.Formats{EPC: ef, CBV: cf}, nil
}

// gs1Extensions reads the request's GS1-Extensions header.
func gs1Extensions(r *http.Request) (epcis.Namespaces, error) {
	ns, err := epcis.ParseExtensions(r.Header.Get("GS1-Extensions"))
	if err != nil {
		return nil, epcisProblem(http.StatusBadRequest, "ValidationException", "GS1-Extensions: "+err.Error())
	}
	return ns, nil
}

// wantsXML reports whether the client prefers the XML binding.
func wantsXML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/xml", "text/xml":
			return true
		case "application/json", "application/ld+json", "*/*", "application/*":
			return false
		}
	}
	return false
}

// queryError maps the query layer's errors to the binding's problems.
func queryError(err error) error {
	var bad *epcis.QueryParameterError
	var large *epcis.QueryTooLargeError
	switch {
	case errors.As(err, &bad):
		return epcisProblem(http.StatusBadRequest, "QueryParameterException", bad.Error(),
			tracking.FieldError{Field: bad.Param, Message: bad.Message})
	case errors.As(err, &large):
		return epcisProblem(http.StatusRequestEntityTooLarge, "QueryTooLargeException", large.Error())
	}
	return err
}

// epcisParams reads the request's query string. A malformed one (a ';'
// separator, a broken %-escape) is refused: r.URL.Query() would drop the
// pair and answer as if that filter had not been asked for.
func epcisParams(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, epcisProblem(http.StatusBadRequest, "QueryParameterException",
			"malformed query string: parameters are separated by '&', and '%' starts an escape of two hex digits")
	}
	return q, nil
}

// queryEvents answers an events resource: the request's query parameters,
// and what the path fixes (set).
func (s *server) queryEvents(set func(*http.Request, url.Values)) func(http.ResponseWriter, *http.Request, tracking.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
		q, err := epcisParams(r)
		if err != nil {
			return err
		}
		if set != nil {
			set(r, q)
		}
		return s.answerQuery(w, r, p, "SimpleEventQuery", r.URL.Path, q)
	}
}

// answerQuery runs a query and writes its page as an EPCISQueryDocument
// (JSON, or XML when asked for), with a Link to the next page.
func (s *server) answerQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal, queryName, path string, params url.Values) error {
	formats, err := epcisFormats(r)
	if err != nil {
		return err
	}
	ns, err := gs1Extensions(r)
	if err != nil {
		return err
	}
	q, err := epcis.ParseQuery(params, ns)
	if err != nil {
		return queryError(err)
	}
	page, err := s.EPCIS.Index.EPCISEvents(r.Context(), p.Tenant, q, q.PageToken, q.PerPage)
	if err != nil {
		return queryError(err)
	}
	events := make([]json.RawMessage, len(page.Events))
	for i, f := range page.Events {
		if events[i], err = epcis.Format(f.Data, f.RecordTime, formats); err != nil {
			return err
		}
	}
	doc, err := epcis.QueryDocument(queryName, events, time.Now())
	if err != nil {
		return err
	}
	epcisHeaders(w)
	if page.Next != "" {
		next, err := epcisParams(r)
		if err != nil {
			return err
		}
		next.Set("nextPageToken", page.Next)
		w.Header().Set("Link", "<"+path+"?"+next.Encode()+`>; rel="next"`)
	}
	return writeEPCIS(w, r, doc)
}

// writeEPCIS writes a JSON EPCIS document, or its XML binding when the
// client prefers it.
func writeEPCIS(w http.ResponseWriter, r *http.Request, doc []byte) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Accept, GS1-EPC-Format, GS1-CBV-XML-Format, GS1-Extensions")
	if wantsXML(r) {
		var b bytes.Buffer
		if err := xmlbind.WriteXML(&b, doc, xmlbind.Limits{}); err != nil {
			return fmt.Errorf("epcis: answer as XML: %w", err)
		}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(b.Bytes())
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
	return nil
}

// perPageParam reads perPage (default def, at most max).
func perPageParam(q url.Values, def, max int) (int, error) {
	v := q.Get("perPage")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, epcisProblem(http.StatusBadRequest, "QueryParameterException", "perPage must be a positive number",
			tracking.FieldError{Field: "perPage", Message: "must be a positive number"})
	}
	return min(n, max), nil
}

// maxCollectionPage bounds a page of a collection resource.
const maxCollectionPage = 1000

// epcisCollection answers a collection resource (event types, EPCs,
// business steps, ...): {"@context", "type": "Collection", "member"}, by
// value, paged with perPage and nextPageToken (the last value of a page).
func (s *server) epcisCollection(list func(ctx context.Context, p tracking.Principal, after string, limit int) ([]string, error)) func(http.ResponseWriter, *http.Request, tracking.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
		q, err := epcisParams(r)
		if err != nil {
			return err
		}
		perPage, err := perPageParam(q, 100, maxCollectionPage)
		if err != nil {
			return err
		}
		after := q.Get("nextPageToken")
		members, err := list(r.Context(), p, after, perPage+1)
		if err != nil {
			return err
		}
		var kept []string
		for _, m := range members { // static lists are not paged by the store
			if after == "" || m > after {
				kept = append(kept, m)
			}
		}
		epcisHeaders(w)
		if len(kept) > perPage {
			kept = kept[:perPage]
			next := url.Values{"perPage": {strconv.Itoa(perPage)}, "nextPageToken": {kept[len(kept)-1]}}
			w.Header().Set("Link", "<"+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
		}
		if kept == nil {
			kept = []string{}
		}
		doc, err := json.Marshal(map[string]any{"@context": []string{epcis.ContextURL}, "type": "Collection", "member": kept})
		if err != nil {
			return err
		}
		return writeJSONDoc(w, doc)
	}
}

func writeJSONDoc(w http.ResponseWriter, doc []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(doc)
	return nil
}

// maxQueryNameLength bounds a named query's name.
const maxQueryNameLength = 128

func validQueryName(name string) bool {
	if name == "" || len(name) > maxQueryNameLength {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// maxQueryBytes bounds a named query's definition.
const maxQueryBytes = 64 << 10

func (s *server) createQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var nq epcis.NamedQuery
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxQueryBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&nq); err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return epcisProblem(http.StatusRequestEntityTooLarge, "QueryTooLargeException", "a query definition has at most 64KiB")
		}
		return epcisProblem(http.StatusBadRequest, "QueryParameterException", "the body must be {\"name\": ..., \"query\": {...}}: "+err.Error())
	}
	if !validQueryName(nq.Name) {
		return epcisProblem(http.StatusBadRequest, "QueryParameterException", "name must be 1 to 128 letters, digits, '-', '_' or '.'",
			tracking.FieldError{Field: "name", Message: "1 to 128 letters, digits, '-', '_' or '.'"})
	}
	params, err := epcis.QueryValues(nq.Query)
	if err != nil {
		return queryError(err)
	}
	ns, err := gs1Extensions(r)
	if err != nil {
		return err
	}
	if _, err := epcis.ParseQuery(params, ns); err != nil {
		return queryError(err)
	}
	if err := s.EPCIS.Queries.CreateQuery(r.Context(), p.Tenant, nq); err != nil {
		if errors.Is(err, epcis.ErrQueryExists) {
			return epcisProblem(http.StatusConflict, "ResourceAlreadyExistsException", "a query named "+strconv.Quote(nq.Name)+" exists")
		}
		return err
	}
	epcisHeaders(w)
	w.Header().Set("Location", "/epcis/queries/"+url.PathEscape(nq.Name))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *server) namedQuery(r *http.Request, p tracking.Principal) (epcis.NamedQuery, error) {
	nq, err := s.EPCIS.Queries.NamedQuery(r.Context(), p.Tenant, r.PathValue("queryName"))
	if errors.Is(err, epcis.ErrQueryNotFound) {
		return nq, epcisProblem(http.StatusNotFound, "NoSuchNameException", "no query of that name")
	}
	return nq, err
}

func (s *server) getQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	nq, err := s.namedQuery(r, p)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(nq)
	if err != nil {
		return err
	}
	epcisHeaders(w)
	return writeJSONDoc(w, doc)
}

func (s *server) deleteQuery(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if s.Subscriptions != nil {
		// The binding: deleting a query unsubscribes its subscribers.
		nq, err := s.namedQuery(r, p)
		if err != nil {
			return err
		}
		if _, err := s.Subscriptions.UnsubscribeQuery(r.Context(), p.Tenant, nq.Name); err != nil {
			return err
		}
	}
	err := s.EPCIS.Queries.DeleteQuery(r.Context(), p.Tenant, r.PathValue("queryName"))
	if errors.Is(err, epcis.ErrQueryNotFound) {
		return epcisProblem(http.StatusNotFound, "NoSuchNameException", "no query of that name")
	}
	if err != nil {
		return err
	}
	epcisHeaders(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) listQueries(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := epcisParams(r)
	if err != nil {
		return err
	}
	perPage, err := perPageParam(q, 30, maxCollectionPage)
	if err != nil {
		return err
	}
	qs, err := s.EPCIS.Queries.NamedQueries(r.Context(), p.Tenant, q.Get("nextPageToken"), perPage+1)
	if err != nil {
		return err
	}
	epcisHeaders(w)
	if len(qs) > perPage {
		qs = qs[:perPage]
		next := url.Values{"perPage": {strconv.Itoa(perPage)}, "nextPageToken": {qs[len(qs)-1].Name}}
		w.Header().Set("Link", `</epcis/queries?`+next.Encode()+`>; rel="next"`)
	}
	if qs == nil {
		qs = []epcis.NamedQuery{}
	}
	doc, err := json.Marshal(qs)
	if err != nil {
		return err
	}
	return writeJSONDoc(w, doc)
}

func (s *server) namedQueryEvents(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	nq, err := s.namedQuery(r, p)
	if err != nil {
		return err
	}
	params, err := epcis.QueryValues(nq.Query)
	if err != nil {
		return queryError(err)
	}
	// Paging and the answer's size come from the request.
	q, err := epcisParams(r)
	if err != nil {
		return err
	}
	for _, k := range []string{"perPage", "nextPageToken"} {
		if v, ok := q[k]; ok {
			params[k] = v
		}
	}
	return s.answerQuery(w, r, p, nq.Name, r.URL.Path, params)
}
