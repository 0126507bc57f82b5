package console

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// listQuery is the entity list's filters and position. Parent lists the
// children of an entity.
type listQuery struct {
	EntityType, Status, Parent, After string
}

// values is the query string of the list's filters (not its position).
func (q listQuery) values() url.Values {
	v := url.Values{}
	if q.EntityType != "" {
		v.Set("entityType", q.EntityType)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Parent != "" {
		v.Set("parentId", q.Parent)
	}
	return v
}

func (h *handler) readListQuery(r *http.Request) (listQuery, error) {
	q := r.URL.Query()
	lq := listQuery{EntityType: q.Get("entityType"), Status: q.Get("status"), Parent: q.Get("parentId"), After: q.Get("after")}
	if lq.EntityType != "" && !h.EntityTypes.Known(lq.EntityType) {
		return lq, badRequest("There is no entity type " + strconv.Quote(lq.EntityType) + "; pick one of " +
			strings.Join(h.EntityTypes.List(), ", ") + ".")
	}
	if lq.Status != "" && !slices.Contains(tracking.Statuses(), lq.Status) {
		return lq, badRequest("There is no status " + strconv.Quote(lq.Status) + "; pick one of " +
			strings.Join(tracking.Statuses(), ", ") + ".")
	}
	if lq.Parent != "" && !tracking.IsEntityID(lq.Parent) {
		return lq, badRequest("There is no entity " + strconv.Quote(lq.Parent) + " to list the contents of.")
	}
	if lq.After != "" && !tracking.IsEntityID(lq.After) {
		return lq, badRequest("The list's position is not an entity id.")
	}
	return lq, nil
}

// entityList is the home page: a search by id, and a page of the tenant's
// entities with the list's filters.
func (h *handler) entityList(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if id := strings.TrimSpace(r.URL.Query().Get("id")); id != "" {
		if !tracking.IsEntityID(id) {
			return badRequest("There is no entity " + strconv.Quote(id) +
				": an entity id is letters, digits, '.', '_', ':' and '-', starting with a letter or digit.")
		}
		http.Redirect(w, r, Prefix+"/entities/"+url.PathEscape(id), http.StatusSeeOther)
		return nil
	}
	data, err := h.listData(r, p)
	if err != nil {
		return err
	}
	data["Title"] = "Entities"
	h.render(w, r, http.StatusOK, "list", p, data)
	return nil
}

// entityListFragment is the list alone, which a live page swaps in; with
// entity and v it first waits (bounded) for the entities projection to
// reach that version of that entity.
func (h *handler) entityListFragment(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	if id := r.URL.Query().Get("entity"); tracking.IsEntityID(id) {
		h.waitFor(r.Context(), p.Tenant, id, r.URL.Query().Get("v"), tracking.ProjectionEntities)
	}
	data, err := h.listData(r, p)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, "list", "entity-list", data)
	return nil
}

func (h *handler) listData(r *http.Request, p tracking.Principal) (map[string]any, error) {
	lq, err := h.readListQuery(r)
	if err != nil {
		return nil, err
	}
	page, err := h.ReadModels.ListEntities(r.Context(), tracking.EntityQuery{Tenant: p.Tenant,
		EntityType: lq.EntityType, Status: lq.Status, Parent: lq.Parent, Limit: listPageSize, After: lq.After})
	if err != nil {
		return nil, err
	}
	filters := lq.values()
	data := map[string]any{"Query": lq, "Items": page.Items, "EntityTypes": h.EntityTypes.List(),
		"Statuses": tracking.Statuses(), "First": lq.After != ""}
	if page.Next != "" {
		next := lq.values()
		next.Set("after", page.Next)
		data["Next"] = Prefix + "/entities?" + next.Encode()
	}
	data["FirstURL"] = Prefix + "/entities?" + filters.Encode()
	fragment := lq.values()
	if lq.After != "" {
		fragment.Set("after", lq.After)
	}
	data["FragmentURL"] = Prefix + "/fragments/entities?" + fragment.Encode()
	if h.Live != nil {
		stream := url.Values{}
		if lq.EntityType != "" {
			stream.Set("entityType", lq.EntityType)
		}
		data["StreamURL"] = Prefix + "/stream?" + stream.Encode()
	}
	return data, nil
}

// waitFor waits, at most ConsistencyWait, for the projections to reach
// version v (a query parameter; nothing when absent) of an entity, so that
// a fragment asked for after a live event shows it.
func (h *handler) waitFor(ctx context.Context, tenant, id, v string, names ...string) {
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil || version <= 0 || h.Projections == nil {
		return
	}
	for _, name := range names {
		// A read that fails here fails again when the fragment is read,
		// where it is answered.
		if _, err := httpapi.WaitProjected(ctx, h.ReadModels, h.Projections, h.opts.ConsistencyWait,
			name, tenant, id, version); err != nil {
			return
		}
	}
}

// entityPage is an entity's journey: its state, open exceptions, timeline
// and map.
func (h *handler) entityPage(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	data, err := h.entityData(r, p)
	if err != nil {
		return err
	}
	data["Title"] = "Entity " + r.PathValue("entityId")
	h.render(w, r, http.StatusOK, "entity", p, data)
	return nil
}

// entityFragment is the part of the entity page that events change; with
// v it first waits (bounded) for the projections to reach that version.
func (h *handler) entityFragment(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	h.waitFor(r.Context(), p.Tenant, r.PathValue("entityId"), r.URL.Query().Get("v"),
		tracking.ProjectionEntities, tracking.ProjectionTimeline)
	data, err := h.entityData(r, p)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, "entity", "entity-live", data)
	return nil
}

// timelineRow is a timeline entry as the page shows it.
type timelineRow struct {
	tracking.TimelineEntry
	Summary string
}

func (h *handler) entityData(r *http.Request, p tracking.Principal) (map[string]any, error) {
	ctx, id := r.Context(), r.PathValue("entityId")
	st, err := h.ReadModels.Entity(ctx, p.Tenant, id)
	if errors.Is(err, eventstore.ErrNotFound) && h.Tracker != nil {
		// Not projected yet: the event store is the source of truth.
		st, err = h.Tracker.Entity(ctx, p.Tenant, id)
	}
	if errors.Is(err, eventstore.ErrNotFound) {
		return nil, errNotFound("There is no entity " + id + ".")
	}
	if err != nil {
		return nil, err
	}
	page, err := h.ReadModels.Timeline(ctx, tracking.TimelineQuery{Tenant: p.Tenant, EntityID: id, Limit: timelineLimit})
	if err != nil {
		return nil, err
	}
	children, err := h.ReadModels.ListEntities(ctx, tracking.EntityQuery{Tenant: p.Tenant, Parent: id, Limit: childrenLimit})
	if err != nil {
		return nil, err
	}
	rows := make([]timelineRow, len(page.Entries))
	var points []trackPoint
	siteIDs := map[string]bool{}
	for i, e := range page.Entries {
		// The data of a stored event is a JSON object; its members are
		// cut once, without decoding it.
		members, err := epcis.Members(e.Data)
		rows[i] = timelineRow{TimelineEntry: e, Summary: summarize(e.Data, members, err == nil)}
		pt, site := position(e, members)
		if pt != nil {
			points = append(points, *pt)
		}
		if site != "" {
			siteIDs[site] = true
		}
	}
	if st.LastLocation != nil && st.LastLocation.SiteID != "" {
		siteIDs[st.LastLocation.SiteID] = true
	}
	sites := h.sitesOf(ctx, p.Tenant, siteIDs)
	base := Prefix + "/entities/" + url.PathEscape(id)
	data := map[string]any{"Entity": st, "Timeline": rows, "More": page.Next != nil, "TimelineLimit": timelineLimit,
		"Map": h.basemap.draw(points, sites), "PointCount": len(points), "FragmentURL": base + "/fragment",
		"Children": children.Items, "MoreChildren": children.Next != "", "ChildrenLimit": childrenLimit,
		"ChildrenURL": Prefix + "/entities?" + listQuery{Parent: id}.values().Encode()}
	if h.Live != nil {
		data["StreamURL"] = base + "/stream"
	}
	return data, nil
}

// position returns the position an event reports, if any, and the site it
// names, from the event's members.
func position(e tracking.TimelineEntry, members []epcis.Member) (*trackPoint, string) {
	var lat, lon, location json.RawMessage
	var site string
	for _, m := range members {
		switch m.Key {
		case "lat":
			lat = m.Value
		case "lon":
			lon = m.Value
		case "location":
			location = m.Value
		case "siteId":
			_ = json.Unmarshal(m.Value, &site)
		}
	}
	pt := &trackPoint{OccurredAt: e.OccurredAt, Version: e.Version, Type: e.Type, SiteID: site}
	var ok bool
	switch e.Type {
	case tracking.TypeLocationReported:
		ok = lat != nil && lon != nil && json.Unmarshal(lat, &pt.Lat) == nil && json.Unmarshal(lon, &pt.Lon) == nil
	case tracking.TypeMilestoneReached:
		var l *struct{ Lat, Lon float64 }
		ok = location != nil && json.Unmarshal(location, &l) == nil && l != nil
		if ok {
			pt.Lat, pt.Lon = l.Lat, l.Lon
		}
	}
	if !ok || pt.Lat < -90 || pt.Lat > 90 || pt.Lon < -180 || pt.Lon > 180 {
		return nil, site
	}
	return pt, site
}

// sitesOf reads the sites an entity's events name, up to maxMapSites (a
// bounded number of reads); a site that cannot be read is left off the map.
func (h *handler) sitesOf(ctx context.Context, tenant string, ids map[string]bool) []mapSite {
	if h.Sites == nil {
		return nil
	}
	var out []mapSite
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if len(out) == maxMapSites {
			break
		}
		s, err := h.Sites.Get(ctx, tenant, id)
		if err != nil {
			continue
		}
		if ms, ok := parseSite(s); ok {
			out = append(out, ms)
		}
	}
	return out
}

// summarize writes an event's data for a table cell: its top-level
// members in key order, values of nested objects as JSON, at most
// maxSummary bytes; the data itself when it is not an object.
func summarize(data json.RawMessage, members []epcis.Member, object bool) string {
	const maxSummary = 300
	if !object {
		return truncate(string(data), maxSummary)
	}
	slices.SortFunc(members, func(a, b epcis.Member) int { return strings.Compare(a.Key, b.Key) })
	var b strings.Builder
	for _, m := range members {
		if b.Len() > 0 {
			b.WriteString(" · ")
		}
		v := string(m.Value)
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(m.Value, &s) == nil {
			v = s
		}
		b.WriteString(m.Key + ": " + v)
		if b.Len() > maxSummary {
			break
		}
	}
	return truncate(b.String(), maxSummary)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// metricRange is a time range of the metrics page and its bucket width.
type metricRange struct {
	Name, Label    string
	Span, Interval time.Duration
}

// metricRanges are the metrics page's time ranges and the bucket width of
// each.
var metricRanges = []metricRange{
	{"24h", "last 24 hours, hourly", 24 * time.Hour, time.Hour},
	{"7d", "last 7 days, every 6 hours", 7 * 24 * time.Hour, 6 * time.Hour},
	{"30d", "last 30 days, daily", 30 * 24 * time.Hour, 24 * time.Hour},
}

// metricsPage is the network's performance: operation durations
// (p50/p95/p99 per bucket) and milestone punctuality (on-time rate).
func (h *handler) metricsPage(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	q := r.URL.Query()
	entityType, operation, milestone, rng := q.Get("entityType"), q.Get("operation"), q.Get("milestone"), q.Get("range")
	site := strings.TrimSpace(q.Get("site"))
	if entityType != "" && !h.EntityTypes.Known(entityType) {
		return badRequest("There is no entity type " + strconv.Quote(entityType) + ".")
	}
	if len(operation) > tracking.MaxIDLength || len(milestone) > tracking.MaxIDLength || len(site) > tracking.MaxIDLength {
		return badRequest("An operation or milestone name, or a site id, is at most " + strconv.Itoa(tracking.MaxIDLength) + " bytes.")
	}
	if rng == "" {
		rng = metricRanges[0].Name
	}
	i := slices.IndexFunc(metricRanges, func(m metricRange) bool { return m.Name == rng })
	if i < 0 {
		return badRequest("There is no range " + strconv.Quote(rng) + ".")
	}
	span, interval := metricRanges[i].Span, metricRanges[i].Interval
	compute := func(ctx context.Context) (*metricsView, error) {
		var moved <-chan struct{}
		if h.Projections != nil {
			moved = h.Projections.Progress()
		}
		to := h.opts.Now().UTC()
		from := to.Add(-span)
		ops, err := h.ReadModels.MetricSamples(ctx, tracking.MetricsQuery{Tenant: p.Tenant, Kind: tracking.MetricOperation,
			EntityType: entityType, Name: operation, Site: site, From: from, To: to, Interval: interval})
		if err != nil {
			return nil, err
		}
		miles, err := h.ReadModels.MetricSamples(ctx, tracking.MetricsQuery{Tenant: p.Tenant, Kind: tracking.MetricMilestone,
			EntityType: entityType, Name: milestone, Site: site, From: from, To: to, Interval: interval})
		if err != nil {
			return nil, err
		}
		// Exceptions are raised at no site: the site filter leaves them be.
		raised, err := h.ReadModels.MetricSamples(ctx, tracking.MetricsQuery{Tenant: p.Tenant, Kind: tracking.MetricException,
			EntityType: entityType, From: from, To: to, Interval: interval})
		if err != nil {
			return nil, err
		}
		opBuckets := tracking.Buckets(ops, interval, false, h.opts.OnTimeTolerance)
		mileBuckets := tracking.Buckets(miles, interval, true, h.opts.OnTimeTolerance)
		exceptions := exceptionTable(tracking.CountExceptions(raised, interval))
		what := "all operations"
		if operation != "" {
			what = "operation " + strconv.Quote(operation)
		}
		if site != "" {
			what += " at site " + strconv.Quote(site)
		}
		durations, err := chart("Duration of "+what, "seconds", opBuckets, interval, 0, percentileSeries())
		if err != nil {
			return nil, err
		}
		punctuality, err := chart("Milestones on time", "percent", mileBuckets, interval, 100, onTimeSeries())
		if err != nil {
			return nil, err
		}
		return &metricsView{points: len(ops) + len(miles) + len(raised), at: to, moved: moved, data: map[string]any{
			"Title": "Performance", "EntityType": entityType, "Operation": operation, "Milestone": milestone, "Site": site,
			"Range": rng, "Ranges": metricRanges, "EntityTypes": h.EntityTypes.List(), "From": from, "To": to, "Exceptions": exceptions,
			"OperationBuckets": opBuckets, "MilestoneBuckets": mileBuckets, "DurationChart": durations,
			"PunctualityChart": punctuality, "Tolerance": formatSeconds(h.opts.OnTimeTolerance.Seconds()),
		}}, nil
	}
	// Fresh for a 120th of a bucket: 30 s of hourly buckets, 12 min of
	// daily ones.
	fresh := interval / 120
	key := strings.Join([]string{p.Tenant, entityType, operation, milestone, site, rng}, "\x00")
	v, err := h.metrics.get(r.Context(), key, h.opts.Now(), fresh, 10*fresh, h.opts.RequestTimeout, compute)
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, "metrics", p, v.data)
	return nil
}

// exceptionRows are the metrics page's exception counts: a row per
// interval, a column per code raised in the range (at most the codes
// there are), alphabetically.
type exceptionRows struct {
	Codes []string
	Rows  []exceptionRow
	Total int
}

// exceptionRow is an interval's exceptions: in all, and per code in the
// order of exceptionRows.Codes.
type exceptionRow struct {
	Start  time.Time
	Count  int
	ByCode []int
}

func exceptionTable(buckets []tracking.ExceptionBucket) exceptionRows {
	codes := map[string]bool{}
	var t exceptionRows
	for _, b := range buckets {
		for c := range b.ByCode {
			codes[c] = true
		}
		t.Total += b.Count
	}
	t.Codes = slices.Sorted(maps.Keys(codes))
	for _, b := range buckets {
		row := exceptionRow{Start: b.Start, Count: b.Count, ByCode: make([]int, len(t.Codes))}
		for i, c := range t.Codes {
			row.ByCode[i] = b.ByCode[c]
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// backlogRow is a follower's distance behind the log.
type backlogRow struct {
	Name   string
	Events int64
	Oldest time.Time
	Error  bool
}

// opsPage is the service's operation: the projections' and followers' lag
// (operators), and the tenant's subscriptions with their delivery health
// (tenant admins), as the API shows them to the same scopes.
func (h *handler) opsPage(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	data := map[string]any{"Title": "Operations", "Operator": p.Has(tracking.ScopeOperator), "Admin": p.Has(tracking.ScopeAdmin)}
	if p.Has(tracking.ScopeOperator) {
		if h.Projections != nil {
			st, err := h.Projections.Status(r.Context())
			if err != nil {
				return err
			}
			data["Projections"] = st
		}
		var rows []backlogRow
		for _, b := range h.Backlogs {
			bl, err := b.Source.Backlog(r.Context())
			if err != nil {
				h.log.WarnContext(r.Context(), "console: backlog unavailable", "follower", b.Name, "error", err)
			}
			rows = append(rows, backlogRow{Name: b.Name, Events: bl.Events, Oldest: bl.Oldest, Error: err != nil})
		}
		data["Backlogs"] = rows
	}
	if p.Has(tracking.ScopeAdmin) && h.Subscriptions != nil {
		after := r.URL.Query().Get("after")
		subs, err := h.Subscriptions.List(r.Context(), p.Tenant, after, subscriptionPage+1)
		if err != nil {
			return err
		}
		if len(subs) > subscriptionPage {
			subs = subs[:subscriptionPage]
			data["NextSubscriptions"] = Prefix + "/ops?after=" + url.QueryEscape(subs[len(subs)-1].ID)
		}
		data["Subscriptions"] = subs
		data["SubscriptionsShown"] = true
	}
	h.render(w, r, http.StatusOK, "ops", p, data)
	return nil
}

// tenantStream is the list's live stream: the tenant's events, of one
// entity type when the list is filtered by it.
func (h *handler) tenantStream(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	var f subscription.Filter
	if t := r.URL.Query().Get("entityType"); t != "" {
		if !h.EntityTypes.Known(t) {
			return badRequest("There is no entity type " + strconv.Quote(t) + ".")
		}
		f.EntityTypes = []string{t}
	}
	h.Live.ServeStream(w, r, p.Tenant, f)
	return nil
}

// entityStream is an entity page's live stream: that entity's events.
func (h *handler) entityStream(w http.ResponseWriter, r *http.Request, p tracking.Principal) error {
	h.Live.ServeStream(w, r, p.Tenant, subscription.Filter{EntityIDs: []string{r.PathValue("entityId")}})
	return nil
}

// statusLabel names a projection's state for the operations page.
func statusLabel(s projection.Status) string {
	switch {
	case s.LastError != "":
		return "failing"
	case s.Rebuild != nil:
		return "rebuilding"
	case s.LagEvents > 0:
		return "behind"
	}
	return "up to date"
}
