package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/epcis/validate"
	"github.com/tlm/tracktrace/internal/epcis/xmlbind"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// EPCIS is what the EPCIS 2.0 binding (/epcis) needs.
type EPCIS struct {
	Capturer  Capturer
	Validator *validate.Validator
	Jobs      epcis.Jobs
	Index     EPCISIndex
	Queries   epcis.Queries
	// CaptureLimit bounds the events of one capture (GS1-EPCIS-Capture-Limit);
	// FileSizeLimit its bytes (GS1-EPCIS-Capture-File-Size-Limit).
	CaptureLimit  int
	FileSizeLimit int64
}

// Capturer stores EPCIS events (epcis.Capturer).
type Capturer interface {
	Capture(ctx context.Context, req epcis.Request) (epcis.Job, error)
}

// The versions of the standards the binding speaks.
const (
	epcisVersion = "2.0.0"
	cbvVersion   = "2.0.0"
)

// epcisProblem is a problem of the EPCIS binding: its type is one of the
// binding's exception names (epcisException:...).
func epcisProblem(status int, exception, detail string, fields ...tracking.FieldError) error {
	return &requestError{&Problem{Type: "epcisException:" + exception, Title: exceptionTitle(exception),
		Status: status, Detail: detail, Errors: fields}}
}

func exceptionTitle(exception string) string {
	var b strings.Builder
	for i, r := range strings.TrimSuffix(exception, "Exception") {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *server) epcisRoutes(api func(pattern, scope string, h func(http.ResponseWriter, *http.Request, tracking.Principal) error)) {
	api("OPTIONS /epcis/capture", tracking.ScopeWrite, s.captureOptions)
	api("POST /epcis/capture", tracking.ScopeWrite, s.capture)
	api("GET /epcis/capture", tracking.ScopeRead, s.listCaptureJobs)
	api("GET /epcis/capture/{captureID}", tracking.ScopeRead, s.getCaptureJob)
	api("POST /epcis/events", tracking.ScopeWrite, s.captureEvent)
	s.epcisQueryRoutes(api)
	// OPTIONS discovery on every other resource: its methods and the
	// versions of the standards.
	methods := map[string][]string{}
	var paths []string
	for _, pattern := range s.patterns {
		method, path, _ := strings.Cut(pattern, " ")
		if !strings.HasPrefix(path, "/epcis/") {
			continue
		}
		if _, seen := methods[path]; !seen {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	for _, path := range paths {
		if slices.Contains(methods[path], http.MethodOptions) {
			continue
		}
		allow := "OPTIONS, " + strings.Join(methods[path], ", ")
		api("OPTIONS "+path, tracking.ScopeRead, func(w http.ResponseWriter, _ *http.Request, _ tracking.Principal) error {
			epcisHeaders(w)
			h := w.Header()
			h.Set("Allow", allow)
			h.Set("GS1-EPCIS-Min", epcisVersion)
			h.Set("GS1-EPCIS-Max", epcisVersion)
			h.Set("GS1-CBV-Min", cbvVersion)
			h.Set("GS1-CBV-Max", cbvVersion)
			w.WriteHeader(http.StatusNoContent)
			return nil
		})
	}
}

// epcisHeaders sets the headers every EPCIS answer carries.
func epcisHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("GS1-EPCIS-Version", epcisVersion)
	h.Set("GS1-CBV-Version", cbvVersion)
	h.Set("GS1-Extensions", "")
}

func (s *server) captureOptions(w http.ResponseWriter, r *http.Request, _ tracking.Principal) error {
	epcisHeaders(w)
	h := w.Header()
	h.Set("Allow", "OPTIONS, GET, POST")
	h.Set("GS1-EPCIS-Capture-Limit", strconv.Itoa(s.EPCIS.CaptureLimit))
	h.Set("GS1-EPCIS-Capture-File-Size-Limit", strconv.FormatInt(s.EPCIS.FileSizeLimit, 10))
	// "all" is how the binding announces both rollback and proceed.
	h.Set("GS1-Capture-Error-Behaviour", "all")
	h.Set("GS1-EPCIS-Min", epcisVersion)
	h.Set("GS1-EPCIS-Max", epcisVersion)
	h.Set("GS1-CBV-Min", cbvVersion)
	h.Set("GS1-CBV-Max", cbvVersion)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// epcisBody reads a capture body within the file size limit, in the JSON
// binding (converted from the XML binding when that is what was sent).
func (s *server) epcisBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.EPCIS.FileSizeLimit
	tooLarge := epcisProblem(http.StatusRequestEntityTooLarge, "CaptureLimitExceededException",
		fmt.Sprintf("the document exceeds the capture file size limit of %d bytes (GS1-EPCIS-Capture-File-Size-Limit)", limit))
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	switch mt {
	case "application/json", "application/ld+json":
		raw, err := io.ReadAll(body)
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return nil, tooLarge
		}
		return raw, err
	case "application/xml", "text/xml":
		raw, err := xmlbind.DocumentToJSON(body, xmlbind.Limits{MaxBytes: limit})
		var big *http.MaxBytesError
		switch {
		case errors.As(err, &big), errors.Is(err, xmlbind.ErrTooLarge):
			return nil, tooLarge
		case err != nil:
			return nil, epcisProblem(http.StatusBadRequest, "ValidationException", "the XML document cannot be read: "+err.Error())
		}
		return raw, nil
	default:
		return nil, epcisProblem(http.StatusUnsupportedMediaType, "UnsupportedMediaTypeException",
			"send the EPCIS JSON binding (application/json or application/ld+json) or the XML binding (application/xml)")
	}
}

// validationError turns validation problems into the binding's 400.
func validationError(problems []validate.Problem) error {
	fields := make([]tracking.FieldError, len(problems))
	for i, p := range problems {
		fields[i] = tracking.FieldError{Field: strings.TrimPrefix(p.Pointer, "/"), Message: p.Message}
	}
	detail := problems[0].String()
	if len(problems) > 1 {
		detail += fmt.Sprintf(" (and %d more problems: see errors)", len(problems)-1)
	}
	return epcisProblem(http.StatusBadRequest, "ValidationException", detail, fields...)
}

func (s *server) capture(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	behaviour := strings.ToLower(strings.TrimSpace(r.Header.Get("GS1-Capture-Error-Behaviour")))
	switch behaviour {
	case "":
		behaviour = epcis.Rollback
	case epcis.Rollback, epcis.Proceed:
	default:
		return epcisProblem(http.StatusBadRequest, "ValidationException",
			"GS1-Capture-Error-Behaviour must be rollback or proceed")
	}
	raw, err := s.epcisBody(w, r)
	if err != nil {
		return err
	}
	vdoc, problems := s.EPCIS.Validator.Document(raw)
	docProblems, byEvent := validate.Split(problems)
	if vdoc == nil || len(docProblems) > 0 || (behaviour == epcis.Rollback && len(problems) > 0) {
		if len(problems) == 0 {
			return epcisProblem(http.StatusBadRequest, "ValidationException", "the body is not an EPCIS document")
		}
		return validationError(problems)
	}
	if vdoc.Len > s.EPCIS.CaptureLimit {
		return epcisProblem(http.StatusRequestEntityTooLarge, "CaptureLimitExceededException",
			fmt.Sprintf("the document has %d events; at most %d are captured at once (GS1-EPCIS-Capture-Limit)", vdoc.Len, s.EPCIS.CaptureLimit))
	}
	doc, err := epcis.ParseDocument(raw, s.EPCIS.CaptureLimit)
	if err != nil {
		return epcisProblem(http.StatusBadRequest, "ValidationException", err.Error())
	}
	req := epcis.Request{Tenant: p.Tenant, Behaviour: behaviour,
		Metadata: eventstore.Metadata{Source: "epcis", Principal: p.Subject, TraceID: sampledTraceID(r.Context())}}
	for _, e := range doc.Events {
		if ps, bad := byEvent[e.Index]; bad {
			for _, pr := range ps {
				req.Refused = append(req.Refused, epcis.Problem{Type: "epcisException:ValidationException",
					Title: "Invalid EPCIS event", Status: http.StatusBadRequest, Detail: pr.String(), Instance: pr.Pointer})
			}
			continue
		}
		req.Events = append(req.Events, e)
	}
	job, err := s.EPCIS.Capturer.Capture(r.Context(), req)
	if err != nil {
		return err
	}
	epcisHeaders(w)
	w.Header().Set("Location", "/epcis/capture/"+url.PathEscape(job.CaptureID))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *server) captureEvent(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	raw, err := s.epcisBody(w, r)
	if err != nil {
		return err
	}
	if problems := s.EPCIS.Validator.Event(raw); len(problems) > 0 {
		return validationError(problems)
	}
	e, err := epcis.ParseEvent(raw)
	if err != nil {
		return epcisProblem(http.StatusBadRequest, "ValidationException", err.Error())
	}
	job, err := s.EPCIS.Capturer.Capture(r.Context(), epcis.Request{Tenant: p.Tenant, Behaviour: epcis.Rollback,
		Events:   []epcis.Event{e},
		Metadata: eventstore.Metadata{Source: "epcis", Principal: p.Subject, TraceID: sampledTraceID(r.Context())}})
	if err != nil {
		return err
	}
	if len(job.Errors) > 0 {
		switch pr := job.Errors[0]; pr.Status {
		case http.StatusConflict:
			return epcisProblem(http.StatusConflict, "ResourceAlreadyExistsException", pr.Detail)
		case http.StatusBadRequest:
			return epcisProblem(http.StatusBadRequest, "ValidationException", pr.Detail)
		default:
			return fmt.Errorf("epcis: capture %s: %s: %w", job.CaptureID, pr.Detail, eventstore.ErrUnavailable)
		}
	}
	// The answer is the event as stored: with its context and, when it
	// had none, the eventID it is stored under (its hash).
	stored := job.Events[0]
	epcisHeaders(w)
	w.Header().Set("Location", "/epcis/events/"+url.PathEscape(stored.EventID))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(stored.Data)
	return nil
}

// maxJobsPerPage bounds a page of GET /epcis/capture.
const maxJobsPerPage = 100

func (s *server) listCaptureJobs(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := epcisParams(r)
	if err != nil {
		return err
	}
	perPage, err := perPageParam(q, 30, maxJobsPerPage)
	if err != nil {
		return err
	}
	before := q.Get("nextPageToken")
	jobs, err := s.EPCIS.Jobs.ListJobs(r.Context(), p.Tenant, before, perPage+1)
	if err != nil {
		return err
	}
	if len(jobs) > perPage {
		jobs = jobs[:perPage]
		next := url.Values{"perPage": {strconv.Itoa(perPage)}, "nextPageToken": {jobs[len(jobs)-1].CaptureID}}
		w.Header().Set("Link", `</epcis/capture?`+next.Encode()+`>; rel="next"`)
	}
	if jobs == nil {
		jobs = []epcis.Job{}
	}
	epcisHeaders(w)
	writeJSON(w, http.StatusOK, jobs)
	return nil
}

func (s *server) getCaptureJob(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	job, err := s.EPCIS.Jobs.Job(r.Context(), p.Tenant, r.PathValue("captureID"))
	if errors.Is(err, epcis.ErrJobNotFound) {
		// The binding's 404 names NoSuchNameException (its example says
		// NoSuchResourceException; the schema is what clients check).
		return epcisProblem(http.StatusNotFound, "NoSuchNameException", "no capture job of that id")
	}
	if err != nil {
		return err
	}
	epcisHeaders(w)
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(job); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
	return nil
}
