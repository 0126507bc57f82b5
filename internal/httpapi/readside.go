package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// ReadModels is what the API needs of the projected read models.
type ReadModels interface {
	Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error)
	ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error)
	Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error)
	ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error)
	MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error)
}

// Projections is what the API needs of the projection manager.
type Projections interface {
	Status(ctx context.Context) ([]projection.Status, error)
	Rebuild(ctx context.Context, name string) error
	// Progress returns a channel closed when a projection next advances.
	Progress() <-chan struct{}
}

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	maxBuckets       = 10000
	// pollInterval bounds how late a read-your-writes wait notices progress
	// made by another replica (this one's progress wakes it at once).
	pollInterval = 25 * time.Millisecond
)

// waitProjected waits (bounded) until the projection has applied version
// minVersion of the entity and returns the version it has reached.
func (s *server) waitProjected(ctx context.Context, name, tenant, id string, minVersion int64) (int64, error) {
	return WaitProjected(ctx, s.ReadModels, s.Projections, s.ConsistencyWait, name, tenant, id, minVersion)
}

// ProjectedVersions says how far a projection has applied an entity
// (ReadModels.ProjectedVersion).
type ProjectedVersions interface {
	ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error)
}

// ProgressSignal says when projections next advance (Projections.Progress).
type ProgressSignal interface {
	Progress() <-chan struct{}
}

// WaitProjected waits, at most wait, until projection name has applied
// version minVersion of a tenant's entity, and returns the version it has
// reached: the read-your-writes wait of reads with minVersion.
func WaitProjected(ctx context.Context, versions ProjectedVersions, progress ProgressSignal, wait time.Duration,
	name, tenant, id string, minVersion int64) (int64, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		advanced := progress.Progress()
		v, err := versions.ProjectedVersion(ctx, name, tenant, id)
		if err != nil || v >= minVersion {
			return v, err
		}
		poll := time.NewTimer(pollInterval)
		select {
		case <-advanced:
		case <-poll.C:
		case <-deadline.C:
			poll.Stop()
			return v, nil
		case <-ctx.Done():
			poll.Stop()
			return v, nil
		}
		poll.Stop()
	}
}

func (s *server) getEntity(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "consistent", "minVersion")
	if err != nil {
		return err
	}
	consistent, err := boolParam(q, "consistent")
	if err != nil {
		return err
	}
	minVersion, err := intParam(q, "minVersion", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	id := r.PathValue("entityId")
	var answer []byte
	fromStore := consistent || s.ReadModels == nil
	if !fromStore {
		stale := false
		if minVersion > 0 {
			v, werr := s.waitProjected(r.Context(), tracking.ProjectionEntities, p.Tenant, id, minVersion)
			if werr != nil {
				return werr
			}
			stale = v < minVersion
		}
		var version int64
		if !stale {
			answer, version, err = s.ResponseCache.RenderedEntity(r.Context(), p.Tenant, id, entityVariant, minVersion, entityAnswer)
		}
		// Not projected yet: the event store is the source of truth.
		fromStore = stale || errors.Is(err, eventstore.ErrNotFound) || (err == nil && version < minVersion)
	}
	if fromStore {
		var st tracking.EntityState
		if st, err = s.Tracker.Entity(r.Context(), p.Tenant, id); err == nil {
			answer, err = entityAnswer(st)
		}
	}
	if err != nil {
		return err
	}
	writeAnswer(w, r, answer)
	return nil
}

// entityVariant and timelineVariant name the format of the answers the
// response cache keeps: a change to what entityAnswer or timelineAnswer
// writes needs a new name, so that no answer of the old format is served.
const (
	entityVariant   = "entity/1"
	timelineVariant = "timeline/1"
)

// checkFilters rejects an entityType or status filter that no entity can
// match: a typo would otherwise answer an empty page.
func (s *server) checkFilters(q url.Values) error {
	if t := q.Get("entityType"); t != "" && !s.EntityTypes.Known(t) {
		return badRequest("unknown entityType "+strconv.Quote(t), tracking.FieldError{Field: "entityType",
			Message: "must be one of " + strings.Join(s.EntityTypes.List(), ", ")})
	}
	if st := q.Get("status"); st != "" && !slices.Contains(tracking.Statuses(), st) {
		return badRequest("unknown status "+strconv.Quote(st), tracking.FieldError{Field: "status",
			Message: "must be one of " + strings.Join(tracking.Statuses(), ", ")})
	}
	return nil
}

func (s *server) listEntities(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "entityType", "status", "parentId", "limit", "cursor")
	if err != nil {
		return err
	}
	if err := s.checkFilters(q); err != nil {
		return err
	}
	parent := q.Get("parentId")
	if q.Has("parentId") && !tracking.IsEntityID(parent) {
		return badRequest("parentId must be an entity id", tracking.FieldError{Field: "parentId", Message: "not an entity id"})
	}
	limit, err := intParam(q, "limit", defaultPageLimit, 1, maxPageLimit)
	if err != nil {
		return err
	}
	scope := []string{"entities", p.Tenant, q.Get("entityType"), q.Get("status")}
	if parent != "" {
		// A cursor of a list of children is for that parent's alone (and
		// the lists without one keep the cursors they handed out).
		scope = append(scope, "parent", parent)
	}
	after, err := s.cursors.open(q.Get("cursor"), scope...)
	if err != nil {
		return err
	}
	page, err := s.ReadModels.ListEntities(r.Context(), tracking.EntityQuery{Tenant: p.Tenant,
		EntityType: q.Get("entityType"), Status: q.Get("status"), Parent: parent, Limit: int(limit), After: after})
	if err != nil {
		return err
	}
	out := struct {
		Items      []tracking.EntityState `json:"items"`
		NextCursor string                 `json:"nextCursor,omitempty"`
	}{Items: page.Items}
	if page.Next != "" {
		out.NextCursor = s.cursors.seal(page.Next, scope...)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getTimeline(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "from", "to", "limit", "cursor", "minVersion")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", defaultPageLimit, 1, maxPageLimit)
	if err != nil {
		return err
	}
	minVersion, err := intParam(q, "minVersion", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	from, err := timeParam(q, "from")
	if err != nil {
		return err
	}
	to, err := timeParam(q, "to")
	if err != nil {
		return err
	}
	tq := tracking.TimelineQuery{Tenant: p.Tenant, EntityID: r.PathValue("entityId"), From: from, To: to, Limit: int(limit)}
	scope := []string{"timeline", p.Tenant, tq.EntityID, q.Get("from"), q.Get("to")}
	if c := q.Get("cursor"); c != "" {
		raw, err := s.cursors.open(c, scope...)
		if err != nil {
			return err
		}
		at, ver, ok := strings.Cut(raw, "/")
		us, err1 := strconv.ParseInt(at, 10, 64)
		v, err2 := strconv.ParseInt(ver, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return badCursor()
		}
		tq.After = &tracking.TimelineCursor{OccurredAt: time.UnixMicro(us).UTC(), Version: v}
	}
	// The answer's bytes depend on the query's spelling too: the cursor it
	// hands out is sealed with from and to as given.
	variant := timelineVariant + "|" + strconv.Quote(q.Get("from")) + strconv.Quote(q.Get("to"))
	render := func(minVersion int64) func(tracking.TimelinePage) ([]byte, error) {
		return func(page tracking.TimelinePage) ([]byte, error) { return s.timelineAnswer(tq, scope, page, minVersion) }
	}
	var (
		answer  []byte
		version int64
	)
	if minVersion > 0 {
		// Read your writes: wait for the projection, then take no cached
		// answer older than what it has.
		if tq.MinVersion, err = s.waitProjected(r.Context(), tracking.ProjectionTimeline, p.Tenant, tq.EntityID, minVersion); err != nil {
			return err
		}
	}
	if tq.MinVersion >= minVersion {
		// Cached answers are never stale: render them without minVersion.
		if answer, version, err = s.ResponseCache.RenderedTimeline(r.Context(), tq, variant, render(0)); err != nil {
			return err
		}
	}
	if version < minVersion {
		// The projection is behind the version asked for (the wait ran
		// out): a stale answer, for this request alone.
		if answer, version, err = (renderEveryTime{s.ReadModels}).RenderedTimeline(r.Context(), tq, variant, render(minVersion)); err != nil {
			return err
		}
	}
	if version == 0 {
		// Nothing projected: an unknown entity is a 404, a new one an empty timeline.
		if _, err := s.Tracker.Events(r.Context(), p.Tenant, tq.EntityID, 1, 1); err != nil {
			return err
		}
	}
	writeAnswer(w, r, answer)
	return nil
}

// timelineAnswer renders a timeline page's 200; it is stale when the page
// reflects less than minVersion. Its ETag is a digest of the query and of
// the body, which holds the page, its cursor and the projected version.
func (s *server) timelineAnswer(tq tracking.TimelineQuery, scope []string, page tracking.TimelinePage, minVersion int64) ([]byte, error) {
	out := struct {
		EntityID         string                   `json:"entityId"`
		Entries          []tracking.TimelineEntry `json:"entries"`
		NextCursor       string                   `json:"nextCursor,omitempty"`
		ProjectedVersion int64                    `json:"projectedVersion"`
		Stale            bool                     `json:"stale,omitempty"`
	}{EntityID: tq.EntityID, Entries: page.Entries, ProjectedVersion: page.Projected, Stale: page.Projected < minVersion}
	if out.Entries == nil {
		out.Entries = []tracking.TimelineEntry{}
	}
	position := ""
	if tq.After != nil {
		position = timelinePosition(*tq.After)
	}
	if page.Next != nil {
		out.NextCursor = s.cursors.seal(timelinePosition(*page.Next), scope...)
	}
	body, err := encodeJSON(out)
	if err != nil {
		return nil, err
	}
	var flags byte
	if out.Stale {
		flags |= answerStale
	}
	key := append(scope[:len(scope):len(scope)], strconv.Itoa(tq.Limit), position)
	return packAnswer(body, contentETag(body, key...), flags), nil
}

// timelinePosition is what a timeline cursor seals.
func timelinePosition(c tracking.TimelineCursor) string {
	return strconv.FormatInt(c.OccurredAt.UnixMicro(), 10) + "/" + strconv.FormatInt(c.Version, 10)
}

// metricKinds are the values of the metrics' kind parameter.
var metricKinds = []string{tracking.MetricOperation, tracking.MetricMilestone, tracking.MetricDwell, tracking.MetricException}

// metricsQuery reads what GET /metrics/operational selects. kind names the
// points; without it, it is operation when operation is given, milestone
// when milestone is, exception when code is, dwell when site is given
// alone, else operation. The name
// filters of the other kinds are refused; site filters operations and
// milestones by where they happened, and is the visited site of dwell.
func metricsQuery(q url.Values, tenant string) (tracking.MetricsQuery, error) {
	mq := tracking.MetricsQuery{Tenant: tenant, Kind: q.Get("kind"), EntityType: q.Get("entityType")}
	if q.Has("kind") && !slices.Contains(metricKinds, mq.Kind) {
		return mq, badRequest("unknown kind "+strconv.Quote(mq.Kind), tracking.FieldError{Field: "kind",
			Message: "must be one of " + strings.Join(metricKinds, ", ")})
	}
	if q.Get("operation") != "" && q.Get("milestone") != "" {
		return mq, badRequest("operation and milestone exclude each other", tracking.FieldError{Field: "milestone", Message: "given with operation"})
	}
	if mq.Kind == "" {
		switch {
		case q.Get("operation") != "":
			mq.Kind = tracking.MetricOperation
		case q.Get("milestone") != "":
			mq.Kind = tracking.MetricMilestone
		case q.Get("code") != "":
			mq.Kind = tracking.MetricException
		case q.Has("site") && q.Get("operation") == "":
			mq.Kind = tracking.MetricDwell
		default:
			mq.Kind = tracking.MetricOperation
		}
	}
	// The name filter of each kind; the others are refused.
	names := map[string]string{tracking.MetricOperation: "operation", tracking.MetricMilestone: "milestone",
		tracking.MetricException: "code"}
	for _, other := range []string{"operation", "milestone", "code"} {
		if q.Get(other) != "" && names[mq.Kind] != other {
			return mq, badRequest(other+" does not filter "+mq.Kind+" points", tracking.FieldError{Field: other, Message: "given with kind " + mq.Kind})
		}
	}
	mq.Name = q.Get(names[mq.Kind])
	if c := mq.Name; mq.Kind == tracking.MetricException && c != "" && !slices.Contains(tracking.ExceptionCodes(), c) {
		return mq, badRequest("unknown code "+strconv.Quote(c), tracking.FieldError{Field: "code",
			Message: "must be one of " + strings.Join(tracking.ExceptionCodes(), ", ")})
	}
	if q.Has("site") {
		site := q.Get("site")
		switch {
		case mq.Kind == tracking.MetricException:
			return mq, badRequest("exceptions are counted at no site", tracking.FieldError{Field: "site", Message: "given with kind exception"})
		case site == "" || utf8.RuneCountInString(site) > tracking.MaxIDLength:
			// The site ids events may carry (query already refused what is
			// not text).
			return mq, badRequest("site must be a site id of 1 to "+strconv.Itoa(tracking.MaxIDLength)+" characters",
				tracking.FieldError{Field: "site", Message: "invalid site id"})
		case mq.Kind == tracking.MetricDwell:
			mq.Name = site
		default:
			mq.Site = site
		}
	}
	return mq, nil
}

func (s *server) getMetrics(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q, err := query(r, "entityType", "kind", "operation", "milestone", "code", "site", "from", "to", "interval")
	if err != nil {
		return err
	}
	if err := s.checkFilters(q); err != nil {
		return err
	}
	mq, err := metricsQuery(q, p.Tenant)
	if err != nil {
		return err
	}
	if mq.To, err = timeParam(q, "to"); err != nil {
		return err
	}
	if mq.From, err = timeParam(q, "from"); err != nil {
		return err
	}
	if mq.To.IsZero() {
		mq.To = time.Now().UTC()
	}
	if mq.From.IsZero() {
		mq.From = mq.To.Add(-24 * time.Hour)
	}
	if !mq.From.Before(mq.To) {
		return badRequest("from must be before to", tracking.FieldError{Field: "from", Message: "not before to"})
	}
	mq.Interval = time.Hour
	if iv := q.Get("interval"); iv != "" {
		d, err := config.ParseDuration(iv)
		if err != nil || time.Duration(d) < time.Second {
			return badRequest("interval must be a duration of at least one second, e.g. PT1H or 15m",
				tracking.FieldError{Field: "interval", Message: "invalid"})
		}
		mq.Interval = time.Duration(d)
	}
	if mq.To.Sub(mq.From)/mq.Interval > maxBuckets {
		return badRequest(fmt.Sprintf("the range holds more than %d intervals", maxBuckets),
			tracking.FieldError{Field: "interval", Message: "too small for the range"})
	}
	samples, err := s.ReadModels.MetricSamples(r.Context(), mq)
	if err != nil {
		return err
	}
	var buckets any
	if mq.Kind == tracking.MetricException {
		buckets = tracking.CountExceptions(samples, mq.Interval)
	} else {
		buckets = tracking.Buckets(samples, mq.Interval, mq.Kind == tracking.MetricMilestone, s.OnTimeTolerance)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"measurement": tracking.MeasurementOperationalPerformance,
		"kind":        mq.Kind,
		"interval":    config.Duration(mq.Interval).String(),
		"buckets":     buckets,
	})
	return nil
}

func (s *server) listProjections(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	st, err := s.Projections.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": st})
	return nil
}

func (s *server) rebuildProjection(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	name := r.PathValue("name")
	if err := s.Projections.Rebuild(r.Context(), name); err != nil {
		if errors.Is(err, projection.ErrUnknownProjection) {
			return &requestError{newProblem(http.StatusNotFound, "not-found", "no projection named "+strconv.Quote(name))}
		}
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"name": name, "status": "rebuilding"})
	return nil
}

func boolParam(q url.Values, name string) (bool, error) {
	switch q.Get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, badRequest(name+" must be true or false", tracking.FieldError{Field: name, Message: "must be true or false"})
}

func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, badRequest(name+" must be an RFC 3339 time", tracking.FieldError{Field: name, Message: "must be an RFC 3339 time"})
	}
	return t.UTC(), nil
}

// Eraser erases an entity everywhere (tracking.Eraser).
type Eraser interface {
	Erase(ctx context.Context, tenant, entityID string) (tracking.ErasureResult, error)
}

// eraseEntity hard-deletes an entity: its stream, read models and cached
// values (see tracking.Eraser.Erase for the order and the retries).
func (s *server) eraseEntity(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	id := r.PathValue("entityId")
	res, err := s.Eraser.Erase(r.Context(), p.Tenant, id)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "entity erased", "tenant", p.Tenant, "entity", id, "events", res.Events, "by", p.Subject)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
