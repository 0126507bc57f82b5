package tracking

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Projection names. Each has its own checkpoint and can be rebuilt alone.
const (
	ProjectionTimeline = "timeline"            // EntityTimelineProjection
	ProjectionEntities = "entities"            // entity current state
	ProjectionMetrics  = "performance-metrics" // PerformanceMetricsProjection
	// ProjectionEPCIS is the index the EPCIS query language runs on (package
	// epcis); it follows only the EPCIS capture streams, which the others
	// leave alone.
	ProjectionEPCIS = "epcis"
)

// EntityProjections lists the projections of tracking entities: every
// projection but the EPCIS index, which follows EPCIS capture streams.
func EntityProjections() []string {
	return []string{ProjectionTimeline, ProjectionEntities, ProjectionMetrics}
}

// Projections lists every projection, in the order they are reported.
func Projections() []string {
	return []string{ProjectionTimeline, ProjectionEntities, ProjectionMetrics, ProjectionEPCIS}
}

// MeasurementOperationalPerformance is the measurement name of metric points,
// as the seed's PerformanceMetricsProjection writes them.
const MeasurementOperationalPerformance = "operational_performance"

// TimelineEntry is one event on an entity's timeline.
type TimelineEntry struct {
	EventID    uuid.UUID           `json:"eventId"`
	Version    int64               `json:"version"`
	Type       string              `json:"type"`
	OccurredAt time.Time           `json:"occurredAt"`
	RecordedAt time.Time           `json:"recordedAt"`
	Data       json.RawMessage     `json:"data"`
	Metadata   eventstore.Metadata `json:"metadata"`
}

// TimelineCursor is a position on a timeline, which is ordered by
// occurredAt, then version.
type TimelineCursor struct {
	OccurredAt time.Time
	Version    int64
}

// TimelineQuery selects a page of an entity's timeline.
type TimelineQuery struct {
	Tenant, EntityID string
	From, To         time.Time // occurredAt bounds, [From, To); zero = unbounded
	Limit            int
	After            *TimelineCursor
	// MinVersion: a cached page must reflect at least this version of the
	// entity (the version the caller saw projected). Engines ignore it.
	MinVersion int64
}

// TimelinePage is a page of a timeline. Next is set when more may follow.
type TimelinePage struct {
	Entries []TimelineEntry
	Next    *TimelineCursor
	// Projected is the version of the entity the page reflects, where the
	// source knows it (the cache does); 0 otherwise.
	Projected int64
}

// EntityQuery selects a page of entities, ordered by entity id.
type EntityQuery struct {
	Tenant     string
	EntityType string // "" = any
	Status     string // "" = any
	// Parent, when set, selects the entity's children: the entities whose
	// current parent (EntityState.ParentID) it is.
	Parent string
	Limit  int
	After  string // entity id of the previous page's last item
}

// EntityPage is a page of entities. Next is the cursor of the next page.
type EntityPage struct {
	Items []EntityState
	Next  string
}

// Metric point kinds.
const (
	MetricOperation = "operation" // field: duration_seconds
	MetricMilestone = "milestone" // field: delay_seconds against plannedAt
	// MetricDwell is a visit to a site: from a MilestoneReached arrived to
	// the next departed of the same entity with the same siteId (field
	// dwell_seconds; the point's Name is the siteId).
	MetricDwell = "dwell"
	// MetricException is an exception raised (ExceptionRaised, those the
	// alert rules derive among them): the point's Name is its code and its
	// Value 1, so that a bucket's count is the number raised.
	MetricException = "exception"
)

// MetricPoint is one point of the operational_performance measurement: a
// completed operation and its duration, a milestone and its delay against
// plannedAt, a visit to a site and its dwell time, or an exception raised.
// Tags: tenant, entity type, operation (or milestone, site, exception
// code), outcome, site.
type MetricPoint struct {
	Tenant     string
	EntityID   string
	Version    int64 // of the event; with Tenant, EntityID and Kind, the point's identity
	EntityType string
	Kind       string // MetricOperation, MetricMilestone, MetricDwell or MetricException
	Name       string // the operation, the milestone, the site id or the exception code
	Outcome    string // succeeded or failed, for operations
	// Site is where the point happened: an operation's siteId (its
	// completion's, else its start's), a milestone's, the site of a visit;
	// "" when the events name none (and for exceptions).
	Site       string
	OccurredAt time.Time
	Value      float64 // duration, delay or dwell time, in seconds
}

// OperationStart is what the metrics projection remembers of something
// started until it completes: an operation (Kind MetricOperation,
// OperationID the client's operationId, Operation its name) or a visit to
// a site (Kind MetricDwell, OperationID and Operation the siteId). Kind
// keeps them apart: an operationId can be any string, a site id too. SiteID
// is the start's siteId (the visit's site), which a completion naming no
// site takes.
type OperationStart struct {
	Tenant, EntityID  string
	Kind, OperationID string
	Operation         string
	SiteID            string
	StartedAt         time.Time
}

// MetricsChange is what one event does to the performance metrics.
type MetricsChange struct {
	Start    *OperationStart // remember a start (replacing one with its key)
	Complete *OperationKey   // forget this start
	Points   []MetricPoint
}

// MetricsOf derives the metrics change of one event. started looks up a
// start of the event's entity. Events that are not valid payloads (which
// the service never stores) change nothing.
//
// A MilestoneReached arrived with a siteId starts a visit of the entity to
// that site, and the next departed with the same siteId completes it into
// a MetricDwell point: the seconds from the arrival's occurredAt to the
// departure's. A second arrival at a site before a departure from it
// replaces the visit's start (the entity was not seen leaving: the newer
// arrival is the one a departure ends); a departure without an arrival
// yields no dwell point. Visits to different sites are apart: an arrival at
// one site does not end a visit to another. A milestone with plannedAt
// yields its punctuality point as well. An ExceptionRaised yields a
// MetricException point of its code.
//
// Every point carries the site it happened at (MetricPoint.Site): an
// operation's is its completion's siteId, or its start's when the
// completion names none.
func MetricsOf(rec eventstore.Recorded, started func(OperationKey) (OperationStart, bool)) MetricsChange {
	p, err := DecodeStored(rec.Type, rec.Data)
	if err != nil {
		return MetricsChange{}
	}
	point := func(kind, name, outcome, site string, value float64) MetricPoint {
		return MetricPoint{Tenant: rec.Tenant, EntityID: rec.StreamID, Version: rec.Version, EntityType: rec.EntityType,
			Kind: kind, Name: name, Outcome: outcome, Site: site, OccurredAt: rec.OccurredAt, Value: value}
	}
	var ch MetricsChange
	switch p := p.(type) {
	case OperationStarted:
		ch.Start = &OperationStart{Tenant: rec.Tenant, EntityID: rec.StreamID, Kind: MetricOperation,
			OperationID: p.OperationID, Operation: p.Operation, SiteID: p.SiteID, StartedAt: rec.OccurredAt}
	case OperationCompleted:
		k := OperationKey{rec.Tenant, rec.StreamID, MetricOperation, p.OperationID}
		if st, ok := started(k); ok {
			site := p.SiteID
			if site == "" {
				site = st.SiteID
			}
			ch.Complete = &k
			ch.Points = []MetricPoint{point(MetricOperation, st.Operation, p.Outcome, site, OperationDuration(st.StartedAt, rec.OccurredAt))}
		}
	case ExceptionRaised:
		ch.Points = []MetricPoint{point(MetricException, p.Code, "", "", 1)}
	case MilestoneReached:
		if !p.PlannedAt.IsZero() {
			ch.Points = append(ch.Points, point(MetricMilestone, p.Milestone, "", p.SiteID, rec.OccurredAt.Sub(p.PlannedAt).Seconds()))
		}
		if p.SiteID == "" {
			break
		}
		switch k := (OperationKey{rec.Tenant, rec.StreamID, MetricDwell, p.SiteID}); p.Milestone {
		case MilestoneArrived:
			ch.Start = &OperationStart{Tenant: rec.Tenant, EntityID: rec.StreamID, Kind: MetricDwell,
				OperationID: p.SiteID, Operation: p.SiteID, SiteID: p.SiteID, StartedAt: rec.OccurredAt}
		case MilestoneDeparted:
			if st, ok := started(k); ok {
				ch.Complete = &k
				ch.Points = append(ch.Points, point(MetricDwell, p.SiteID, "", p.SiteID, OperationDuration(st.StartedAt, rec.OccurredAt)))
			}
		}
	}
	return ch
}

// MetricsQuery selects metric points and buckets them.
type MetricsQuery struct {
	Tenant     string
	Kind       string // MetricOperation, MetricMilestone, MetricDwell or MetricException
	EntityType string // "" = any
	Name       string // operation, milestone, site id or exception code; "" = any
	Site       string // the site the points happened at (MetricPoint.Site); "" = any
	From, To   time.Time
	Interval   time.Duration
}

// MetricSample is a point as the bucketing needs it.
type MetricSample struct {
	OccurredAt time.Time
	Value      float64
	Name       string // the point's name: exceptions are counted per code
}

// MetricBucket summarizes the points whose occurredAt falls in
// [Start, Start+interval). Values are seconds. OnTimeRate is set for
// milestone punctuality.
type MetricBucket struct {
	Start      time.Time `json:"start"`
	Count      int       `json:"count"`
	Avg        float64   `json:"avg"`
	Min        float64   `json:"min"`
	Max        float64   `json:"max"`
	P50        float64   `json:"p50"`
	P95        float64   `json:"p95"`
	P99        float64   `json:"p99"`
	OnTimeRate *float64  `json:"onTimeRate,omitempty"`
}

// Buckets groups samples into buckets that start at UTC multiples of
// interval (counted from the Unix epoch) and summarizes each, in time order;
// empty buckets are left out. For milestones (punctuality) the on-time rate
// is the share of delays ≤ tolerance.
func Buckets(samples []MetricSample, interval time.Duration, milestone bool, tolerance time.Duration) []MetricBucket {
	if interval <= 0 || len(samples) == 0 {
		return []MetricBucket{}
	}
	groups := map[int64][]float64{}
	for _, s := range samples {
		k := floorDiv(s.OccurredAt.UnixNano(), int64(interval))
		groups[k] = append(groups[k], s.Value)
	}
	keys := make([]int64, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]MetricBucket, 0, len(keys))
	for _, k := range keys {
		vals := groups[k]
		slices.Sort(vals)
		b := MetricBucket{Start: time.Unix(0, k*int64(interval)).UTC(), Count: len(vals), Min: vals[0], Max: vals[len(vals)-1],
			P50: PercentileCont(vals, 0.50), P95: PercentileCont(vals, 0.95), P99: PercentileCont(vals, 0.99)}
		var sum float64
		onTime := 0
		for _, v := range vals {
			sum += v
			if v <= tolerance.Seconds() {
				onTime++
			}
		}
		b.Avg = sum / float64(len(vals))
		if milestone {
			r := float64(onTime) / float64(len(vals))
			b.OnTimeRate = &r
		}
		out = append(out, b)
	}
	return out
}

// ExceptionBucket counts the exceptions raised with occurredAt in [Start,
// Start+interval): in all, and per code.
type ExceptionBucket struct {
	Start  time.Time      `json:"start"`
	Count  int            `json:"count"`
	ByCode map[string]int `json:"byCode"`
}

// CountExceptions groups MetricException samples into buckets as Buckets
// does (UTC multiples of interval, empty ones left out, in time order) and
// counts them, per code (the samples' Name).
func CountExceptions(samples []MetricSample, interval time.Duration) []ExceptionBucket {
	if interval <= 0 || len(samples) == 0 {
		return []ExceptionBucket{}
	}
	groups := map[int64]*ExceptionBucket{}
	for _, s := range samples {
		k := floorDiv(s.OccurredAt.UnixNano(), int64(interval))
		b := groups[k]
		if b == nil {
			b = &ExceptionBucket{Start: time.Unix(0, k*int64(interval)).UTC(), ByCode: map[string]int{}}
			groups[k] = b
		}
		b.Count++
		b.ByCode[s.Name]++
	}
	out := make([]ExceptionBucket, 0, len(groups))
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, *groups[k])
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// PercentileCont is PostgreSQL's percentile_cont: linear interpolation
// between the closest ranks of sorted values, p in [0, 1].
func PercentileCont(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := p * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	if lo == hi {
		return sorted[lo]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}

// FoldEntity applies a stream's events (in version order) to its projected
// aggregate, restored from state (nil for a new entity), and returns the new
// state and the view. Events at or below the aggregate's version are ignored,
// so that folding an event twice changes nothing.
func FoldEntity(entityID string, state json.RawMessage, events []eventstore.Recorded) (json.RawMessage, EntityState) {
	var ent *Entity
	if state != nil {
		var head struct{ Version int64 }
		_ = json.Unmarshal(state, &head)
		ent, _ = RestoreEntity(eventstore.Snapshot{StreamID: entityID, Version: head.Version, SchemaVersion: SnapshotSchemaVersion, State: state})
	}
	if ent == nil {
		ent = NewEntity(entityID)
	}
	for _, r := range events {
		if ent.EntityType() == "" && r.EntityType != "" {
			ent.SetEntityType(r.EntityType)
		}
		ent.Apply(r)
	}
	out, _ := ent.MarshalSnapshot()
	return out, ent.State()
}

// OperationKey identifies a start of an entity (see OperationStart): Kind
// MetricOperation and an operationId, or MetricDwell and a site id.
type OperationKey struct{ Tenant, EntityID, Kind, OperationID string }

// Key returns the start's OperationKey.
func (s OperationStart) Key() OperationKey {
	return OperationKey{s.Tenant, s.EntityID, s.Kind, s.OperationID}
}

// CompletedOperations lists the starts a batch may complete (operations
// completed, visits departed from): the metrics projection loads them
// before FoldMetrics.
func CompletedOperations(events []eventstore.Recorded) []OperationKey {
	var out []OperationKey
	for _, e := range events {
		var p struct {
			OperationID string `json:"operationId"`
			Milestone   string `json:"milestone"`
			SiteID      string `json:"siteId"`
		}
		switch {
		case e.Type != TypeOperationCompleted && e.Type != TypeMilestoneReached, json.Unmarshal(e.Data, &p) != nil:
		case e.Type == TypeOperationCompleted:
			out = append(out, OperationKey{e.Tenant, e.StreamID, MetricOperation, p.OperationID})
		case p.Milestone == MilestoneDeparted && p.SiteID != "":
			out = append(out, OperationKey{e.Tenant, e.StreamID, MetricDwell, p.SiteID})
		}
	}
	return out
}

// MetricsBatch is what a batch of events does to the metrics projection.
type MetricsBatch struct {
	Open      []OperationStart // starts to store (operations and visits open after the batch)
	Completed []OperationKey   // starts to delete
	Points    []MetricPoint
}

// FoldMetrics applies a batch (in log order) to the open operations, which
// hold at least the starts of the batch's completions (see
// CompletedOperations), and says what changes.
func FoldMetrics(events []eventstore.Recorded, open map[OperationKey]OperationStart) MetricsBatch {
	var b MetricsBatch
	completed := map[OperationKey]bool{}
	for _, e := range events {
		ch := MetricsOf(e, func(k OperationKey) (OperationStart, bool) {
			s, ok := open[k]
			return s, ok
		})
		if ch.Start != nil {
			open[ch.Start.Key()] = *ch.Start
			delete(completed, ch.Start.Key())
		}
		if k := ch.Complete; k != nil {
			delete(open, *k)
			completed[*k] = true
		}
		b.Points = append(b.Points, ch.Points...)
	}
	for k := range completed {
		b.Completed = append(b.Completed, k)
	}
	for _, s := range open {
		b.Open = append(b.Open, s)
	}
	return b
}

// SeedEntity restores the projected aggregate of a retained stream from its
// snapshot (a rebuild starts such a stream there: retention deleted the
// events before it) and returns its state and view, as FoldEntity would
// after folding every event up to the snapshot's version; false when the
// snapshot does not restore (an unknown schema version).
func SeedEntity(snap eventstore.Snapshot) (json.RawMessage, EntityState, bool) {
	ent, ok := RestoreEntity(snap)
	if !ok {
		return nil, EntityState{}, false
	}
	out, _ := ent.MarshalSnapshot()
	return out, ent.State(), true
}

// OpenOperationStarts returns the starts of the operations and visits
// open in a snapshot, as the metrics projection remembers them
// (FoldMetrics): a rebuild seeds a retained stream with them, so that their
// completions after the snapshot still yield their points.
func OpenOperationStarts(snap eventstore.Snapshot) []OperationStart {
	ent, ok := RestoreEntity(snap)
	if !ok {
		return nil
	}
	out := make([]OperationStart, 0, len(ent.operations)+len(ent.visits))
	for _, id := range slices.Sorted(maps.Keys(ent.operations)) {
		op := ent.operations[id]
		out = append(out, OperationStart{Tenant: snap.Tenant, EntityID: snap.StreamID, Kind: MetricOperation,
			OperationID: id, Operation: op.Operation, SiteID: op.SiteID, StartedAt: op.StartedAt})
	}
	for _, site := range slices.Sorted(maps.Keys(ent.visits)) {
		out = append(out, OperationStart{Tenant: snap.Tenant, EntityID: snap.StreamID, Kind: MetricDwell,
			OperationID: site, Operation: site, SiteID: site, StartedAt: ent.visits[site]})
	}
	return out
}
