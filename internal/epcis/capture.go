package epcis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Capture error behaviours (GS1-Capture-Error-Behaviour).
const (
	// Rollback stores all events of a capture or none (the default).
	Rollback = "rollback"
	// Proceed stores the valid events and reports the others.
	Proceed = "proceed"
)

// Problem is an RFC 7807 problem, as a capture job's errors list them.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Problem types of capture errors.
const (
	ProblemValidation = "epcisException:ValidationException"
	// ProblemConflict: an eventID is stored already with other content.
	ProblemConflict = "epcisException:ResourceAlreadyExistsException"
	ProblemInternal = "epcisException:ImplementationException"
)

// Job is a capture job, as GET /capture/{captureID} answers it.
type Job struct {
	Tenant     string     `json:"-"`
	CaptureID  string     `json:"captureID"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Running    bool       `json:"running"`
	Success    bool       `json:"success"`
	Behaviour  string     `json:"captureErrorBehaviour"`
	Errors     []Problem  `json:"errors"`
	// Captured counts the events the job stored; Unchanged those it found
	// stored already with the same content.
	Captured  int `json:"capturedEvents"`
	Unchanged int `json:"unchangedEvents"`
	// Events are the request's events as stored (or as they would have
	// been), in order, each once: for the answer of the capture's own
	// request, not kept with the job.
	Events []StoredEvent `json:"-"`
}

// StoredEvent is an event in the form the store keeps it.
type StoredEvent struct {
	EventID string
	Data    json.RawMessage
}

// Jobs keeps capture jobs, shared by every replica.
type Jobs interface {
	// SaveJob stores a job, replacing one of the same tenant and id.
	SaveJob(ctx context.Context, j Job) error
	// Job returns a tenant's job, or ErrJobNotFound.
	Job(ctx context.Context, tenant, captureID string) (Job, error)
	// ListJobs returns up to limit jobs of a tenant, newest first, those
	// created before the job `before` (all when "").
	ListJobs(ctx context.Context, tenant, before string, limit int) ([]Job, error)
}

// ErrJobNotFound: no capture job of that id in the tenant.
var ErrJobNotFound = fmt.Errorf("capture job %w", eventstore.ErrNotFound)

// Hasher computes the CBV 2.0 event hash of an event as stored (with its
// "@context").
type Hasher func(stored json.RawMessage) (string, error)

// Capturer stores EPCIS events in the event store.
type Capturer struct {
	store eventstore.Store
	jobs  Jobs
	hash  Hasher
	now   func() time.Time
	// Logger receives the causes of failures to store (the job says only
	// that nothing was stored). Nil: discarded.
	Logger *slog.Logger
	// OnJob, when set, is told of every finished job (metrics).
	OnJob func(Job)
}

// NewCapturer returns a Capturer. now may be nil (time.Now).
func NewCapturer(store eventstore.Store, jobs Jobs, hash Hasher, now func() time.Time) *Capturer {
	if now == nil {
		now = time.Now
	}
	return &Capturer{store: store, jobs: jobs, hash: hash, now: now}
}

// Request is one capture: a document's valid events, and the problems of
// those that are not (which fail a rollback capture).
type Request struct {
	Tenant    string
	Behaviour string
	Events    []Event
	// Refused are the problems of the document's invalid events.
	Refused  []Problem
	Metadata eventstore.Metadata
}

// prepared is an event ready to append.
type prepared struct {
	Event
	eventID string
	id      uuid.UUID
	data    json.RawMessage
}

// Capture runs a capture job to its end and returns it, saved: with
// Rollback, any refused or conflicting event stores nothing; with Proceed,
// the others are stored. An error is returned only when the job could not
// be saved; a failure to store is the job's error.
func (c *Capturer) Capture(ctx context.Context, req Request) (Job, error) {
	if req.Behaviour == "" {
		req.Behaviour = Rollback
	}
	job := Job{Tenant: req.Tenant, CaptureID: newCaptureID(), CreatedAt: c.now().UTC(), Behaviour: req.Behaviour,
		Errors: append([]Problem{}, req.Refused...)}
	if req.Metadata.CorrelationID == "" {
		req.Metadata.CorrelationID = job.CaptureID
	}
	c.run(ctx, req, &job)
	done := c.now().UTC()
	job.FinishedAt = &done
	job.Success = len(job.Errors) == 0
	if err := c.jobs.SaveJob(ctx, job); err != nil {
		return Job{}, fmt.Errorf("epcis: save capture job: %w", err)
	}
	if c.OnJob != nil {
		c.OnJob(job)
	}
	return job, nil
}

func (c *Capturer) run(ctx context.Context, req Request, job *Job) {
	if req.Behaviour == Rollback && len(job.Errors) > 0 {
		return
	}
	events, problems := c.prepare(req)
	job.Errors = append(job.Errors, problems...)
	for _, e := range events {
		job.Events = append(job.Events, StoredEvent{EventID: e.eventID, Data: e.data})
	}
	if req.Behaviour == Rollback && len(job.Errors) > 0 {
		return
	}
	// One retry: a concurrent capture of the same events makes the append
	// fail on their ids; the second look finds them stored.
	for attempt := 0; ; attempt++ {
		fresh, unchanged, conflicts, err := c.unseen(ctx, req.Tenant, events)
		if err != nil {
			c.logFailure(ctx, job, err)
			job.Errors = append(job.Errors, internal(err))
			return
		}
		if len(conflicts) > 0 {
			job.Errors = append(job.Errors, conflicts...)
			if req.Behaviour == Rollback {
				return
			}
		}
		job.Unchanged = unchanged
		if len(fresh) == 0 {
			return
		}
		err = c.append(ctx, req, job.CaptureID, fresh)
		if err == nil {
			job.Captured = len(fresh)
			return
		}
		if attempt == 0 && errors.Is(err, eventstore.ErrDuplicateEvent) {
			job.Errors = job.Errors[:len(job.Errors)-len(conflicts)]
			continue
		}
		c.logFailure(ctx, job, err)
		job.Errors = append(job.Errors, internal(err))
		return
	}
}

func (c *Capturer) logFailure(ctx context.Context, job *Job, err error) {
	if c.Logger != nil {
		c.Logger.ErrorContext(ctx, "EPCIS capture failed", "tenant", job.Tenant, "captureID", job.CaptureID, "error", err)
	}
}

// prepare gives each event its eventID (the event hash when it had none),
// its store id and its stored form; an event repeated within the document
// with the same content is kept once.
func (c *Capturer) prepare(req Request) ([]prepared, []Problem) {
	var out []prepared
	var problems []Problem
	at := map[uuid.UUID]int{}
	for _, e := range req.Events {
		p := prepared{Event: e, eventID: e.EventID}
		data, err := e.Stored("")
		if err != nil {
			problems = append(problems, invalidEvent(e, err.Error()))
			continue
		}
		if p.eventID == "" {
			if p.eventID, err = c.hash(data); err != nil {
				problems = append(problems, invalidEvent(e, "cannot compute the event hash: "+err.Error()))
				continue
			}
			if data, err = e.Stored(p.eventID); err != nil {
				problems = append(problems, invalidEvent(e, err.Error()))
				continue
			}
		}
		p.data = data
		p.id = StoreID(req.Tenant, p.eventID, e.Declared)
		if i, seen := at[p.id]; seen {
			if !c.same(out[i].data, data) {
				problems = append(problems, conflict(e, p.eventID, "an earlier event of the document has this eventID"))
			}
			continue
		}
		at[p.id] = len(out)
		out = append(out, p)
	}
	return out, problems
}

// unseen returns the events not stored yet, counts those stored with the
// same content, and reports those stored with other content.
func (c *Capturer) unseen(ctx context.Context, tenant string, events []prepared) ([]prepared, int, []Problem, error) {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.id
	}
	stored, err := c.store.Lookup(ctx, tenant, ids)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(stored) == 0 {
		return events, 0, nil, nil
	}
	byID := make(map[uuid.UUID]eventstore.Recorded, len(stored))
	for _, r := range stored {
		byID[r.ID] = r
	}
	fresh := make([]prepared, 0, len(events)-len(stored))
	var unchanged int
	var problems []Problem
	for _, e := range events {
		r, ok := byID[e.id]
		switch {
		case !ok:
			fresh = append(fresh, e)
		case c.same(r.Data, e.data):
			unchanged++
		default:
			problems = append(problems, conflict(e.Event, e.eventID,
				"an event with this eventID is stored already with other content; correct it with an errorDeclaration"))
		}
	}
	return fresh, unchanged, problems, nil
}

// same reports whether two stored forms are the same EPCIS event: the same
// event hash (so the same content whatever its JSON-LD form), or the same
// JSON when a hash cannot be computed.
func (c *Capturer) same(a, b json.RawMessage) bool {
	if eventstore.JSONEqual(a, b) {
		return true
	}
	ha, errA := c.hash(a)
	hb, errB := c.hash(b)
	return errA == nil && errB == nil && ha == hb
}

func (c *Capturer) append(ctx context.Context, req Request, captureID string, events []prepared) error {
	out := make([]eventstore.Event, len(events))
	for i, e := range events {
		out[i] = eventstore.Event{ID: e.id, Type: StoredType(e.Type), Data: e.data, Metadata: req.Metadata, OccurredAt: e.Time}
	}
	_, err := c.store.Append(ctx, eventstore.AppendRequest{
		Tenant: req.Tenant, StreamID: StreamID(captureID), EntityType: StreamType,
		Expected: eventstore.NoStream, Events: out,
	})
	return err
}

func newCaptureID() string { return uuid.Must(uuid.NewV7()).String() }

func invalidEvent(e Event, msg string) Problem {
	return Problem{Type: ProblemValidation, Title: "Invalid EPCIS event", Status: 400,
		Detail: fmt.Sprintf("event %d: %s", e.Index, msg), Instance: pointer(e.Index, "")}
}

func conflict(e Event, eventID, msg string) Problem {
	return Problem{Type: ProblemConflict, Title: "eventID conflict", Status: 409,
		Detail: fmt.Sprintf("event %d (eventID %s): %s", e.Index, eventID, msg), Instance: pointer(e.Index, "eventID")}
}

// internal is the job's problem for a failure to store: what the client
// can act on, nothing of the cause (which the server logs with the job).
func internal(err error) Problem {
	if errors.Is(err, eventstore.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return Problem{Type: ProblemInternal, Title: "The events could not be stored", Status: 503,
			Detail: "the event store is unavailable: nothing of this capture was stored; capture it again"}
	}
	return Problem{Type: ProblemInternal, Title: "The events could not be stored", Status: 500,
		Detail: "an internal error occurred: nothing of this capture was stored"}
}

// pointer is the JSON pointer of a field of the index-th event of a
// document.
func pointer(index int, field string) string {
	p := fmt.Sprintf("/epcisBody/eventList/%d", index)
	if field != "" {
		p += "/" + field
	}
	return p
}

// NamedQuery is a query a tenant saved under a name (POST /queries): its
// definition is the query object of GS1's query schema.
type NamedQuery struct {
	Name  string          `json:"name"`
	Query json.RawMessage `json:"query"`
}

// Queries keeps named queries, shared by every replica.
type Queries interface {
	// CreateQuery saves a query; ErrQueryExists when the name is taken.
	CreateQuery(ctx context.Context, tenant string, q NamedQuery) error
	// NamedQuery returns a query, or ErrQueryNotFound.
	NamedQuery(ctx context.Context, tenant, name string) (NamedQuery, error)
	// NamedQueries returns up to limit queries of a tenant by name, those
	// after `after`.
	NamedQueries(ctx context.Context, tenant, after string, limit int) ([]NamedQuery, error)
	// DeleteQuery deletes a query; ErrQueryNotFound when there is none.
	DeleteQuery(ctx context.Context, tenant, name string) error
}

// Errors of Queries.
var (
	ErrQueryExists   = errors.New("a query of that name exists")
	ErrQueryNotFound = fmt.Errorf("query %w", eventstore.ErrNotFound)
)
