package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/alerting/geofence"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// SitesVersion tells whether a tenant's sites changed since it was read:
// how many there are and when the latest of them was put. Creating,
// replacing and deleting a site each change it.
type SitesVersion struct {
	Count     int64
	UpdatedAt time.Time
}

// Equal reports whether two versions are the same.
func (v SitesVersion) Equal(o SitesVersion) bool {
	return v.Count == o.Count && v.UpdatedAt.Equal(o.UpdatedAt)
}

// SitePresence is an entity's presence at one of its tenant's sites, as
// the evaluator keeps it between batches of the log: the hysteresis' state,
// and while inside the visit, named by the event of the fix that entered
// (a dwell check's cause, so that it tells one visit from the next).
type SitePresence struct {
	Tenant   string
	EntityID string
	SiteID   string
	geofence.Presence
	// VisitEventID is the entering fix's event id, while inside.
	VisitEventID string
	ArrivedAt    time.Time
}

// Kept reports whether the presence is stored: only while the entity is
// inside or an arrival is pending (outside with nothing pending is where
// every entity is at every site).
func (p SitePresence) Kept() bool { return p.Inside || p.Pending > 0 }

// EntityRef names a tenant's entity.
type EntityRef struct{ Tenant, EntityID string }

// DueKey names an entity's pending checks of one key, whatever their rule
// (a dwell check at a site: "dwell/" + the site's id).
type DueKey struct{ Tenant, EntityID, Key string }

// PresenceBatch is what a batch of the log changes in the read-model
// database for the geofences: it commits together with the move of the
// rules' follower's checkpoint, so that a batch evaluated again (after a
// crash) starts from the presences it started from the first time and
// derives the same events (with the same ids), and a check is never due
// before the presence it reads is stored.
type PresenceBatch struct {
	// Erased entities lose every presence first.
	Erased []EntityRef
	// Presences are stored, those not Kept deleted.
	Presences []SitePresence
	// Cancel deletes pending checks, then Schedule stores checks as
	// ScheduleStore.Schedule does.
	Cancel   []DueKey
	Schedule []Due
}

// PresenceStore keeps the entities' presences at sites (the read models'
// database).
type PresenceStore interface {
	// Presences returns the stored presences of entities of a tenant.
	Presences(ctx context.Context, tenant string, entityIDs []string) ([]SitePresence, error)
	// CommitPresences stores a batch's changes and moves the checkpoint
	// name from `from` to `to` in one transaction; it returns
	// projection.ErrCheckpointMoved, storing nothing, when the checkpoint
	// is not at `from`.
	CommitPresences(ctx context.Context, name string, from, to eventstore.Cursor, b PresenceBatch) error
}

// dwellKey is the key of a dwell check at a site.
func dwellKey(siteID string) string { return "dwell/" + siteID }

// dwellPayload is what a dwell check carries to its firing.
type dwellPayload struct {
	SiteID    string        `json:"siteId"`
	SiteName  string        `json:"siteName,omitempty"`
	ArrivedAt time.Time     `json:"arrivedAt"`
	After     time.Duration `json:"after"`
}

// dwellExceptionID is the id of the exception a dwell rule raises for a
// visit (named by its entering fix's event).
func dwellExceptionID(tenant, entityID, ruleID, siteID, visit string) string {
	return "dwell-" + derivedID("dwell", tenant, entityID, ruleID, siteID, visit).String()
}

// shapedSite is a site with its geometry parsed.
type shapedSite struct {
	Site
	shape geofence.Geometry
}

// tenantSites is a tenant's sites as the evaluator caches them.
type tenantSites struct {
	version SitesVersion
	sites   []shapedSite
}

// siteCache keeps each tenant's parsed sites; the follower's handler owns
// it (Handle is not called concurrently).
type siteCache map[string]*tenantSites

// tenantSites returns a tenant's sites (by id) with their geometries parsed:
// read again when their version changed, each parsed again only when it
// was put since.
func (e *Evaluator) tenantSites(ctx context.Context, tenant string) ([]shapedSite, error) {
	if e.sites == nil {
		return nil, nil
	}
	v, err := e.sites.SitesVersion(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("alerts: sites: %w", err)
	}
	cached := e.siteCache[tenant]
	if cached != nil && cached.version.Equal(v) {
		return cached.sites, nil
	}
	if v.Count == 0 {
		delete(e.siteCache, tenant)
		return nil, nil
	}
	before := map[string]shapedSite{}
	if cached != nil {
		for _, s := range cached.sites {
			before[s.ID] = s
		}
	}
	var out []shapedSite
	for after := ""; ; {
		page, err := e.sites.ListSites(ctx, tenant, after, 500)
		if err != nil {
			return nil, fmt.Errorf("alerts: sites: %w", err)
		}
		for _, s := range page {
			if old, ok := before[s.ID]; ok && old.UpdatedAt.Equal(s.UpdatedAt) && bytes.Equal(old.Geometry, s.Geometry) {
				out = append(out, shapedSite{Site: s, shape: old.shape})
				continue
			}
			shape, err := s.Shape()
			if err != nil { // the API accepted it: a geometry this version cannot read
				e.log.Warn("a site's geometry is not evaluated", "tenant", tenant, "site", s.ID, "error", err)
				continue
			}
			out = append(out, shapedSite{Site: s, shape: shape})
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	e.siteCache[tenant] = &tenantSites{version: v, sites: out}
	return out, nil
}

// geoBatch is the geofences' part of a batch of the log: the presences it
// read and changed, what it derives, schedules and cancels.
type geoBatch struct {
	e      *Evaluator
	events []eventstore.Recorded
	sites  map[string][]shapedSite
	// presence holds the presences of the entities read (or erased), by
	// site id; loaded says which tenants' entities were read.
	presence map[EntityRef]map[string]*SitePresence
	loaded   map[string]bool
	changed  map[[3]string]*SitePresence
	erased   []EntityRef
	dues     map[[4]string]Due
	order    [][4]string
	cancels  []DueKey
	cmds     []tracking.RecordCommand
	// now holds entities' current states read for resolutions; resolved
	// the exceptions this batch resolves.
	now      map[EntityRef]*tracking.EntityState
	resolved map[string]bool
}

func (e *Evaluator) geofences(events []eventstore.Recorded) *geoBatch {
	return &geoBatch{e: e, events: events, sites: map[string][]shapedSite{}, presence: map[EntityRef]map[string]*SitePresence{},
		loaded: map[string]bool{}, changed: map[[3]string]*SitePresence{}, dues: map[[4]string]Due{},
		now: map[EntityRef]*tracking.EntityState{}, resolved: map[string]bool{}}
}

// tenant reads a tenant's sites for the batch and says whether it has any.
func (g *geoBatch) tenant(ctx context.Context, tenant string) (bool, error) {
	sites, ok := g.sites[tenant]
	if !ok {
		var err error
		if sites, err = g.e.tenantSites(ctx, tenant); err != nil {
			return false, err
		}
		g.sites[tenant] = sites
	}
	return len(sites) > 0, nil
}

// erase forgets an erased entity's presences: stored ones are deleted, and
// its next life starts outside every site.
func (g *geoBatch) erase(tenant, entityID string) {
	ref := EntityRef{tenant, entityID}
	g.erased = append(g.erased, ref)
	g.presence[ref] = map[string]*SitePresence{}
	for k := range g.changed {
		if k[0] == tenant && k[1] == entityID {
			delete(g.changed, k)
		}
	}
	for k := range g.dues {
		if k[0] == tenant && k[1] == entityID {
			delete(g.dues, k)
		}
	}
}

// presences returns an entity's presences, reading those of every entity
// of its tenant in the batch the first time one is needed.
func (g *geoBatch) presences(ctx context.Context, ref EntityRef) (map[string]*SitePresence, error) {
	if p, ok := g.presence[ref]; ok {
		return p, nil
	}
	if !g.loaded[ref.Tenant] {
		g.loaded[ref.Tenant] = true
		seen := map[string]bool{}
		var ids []string
		for _, r := range g.events {
			if r.Tenant == ref.Tenant && !seen[r.StreamID] && (r.Type == tracking.TypeLocationReported || r.Type == tracking.TypeExceptionRaised) {
				seen[r.StreamID] = true
				ids = append(ids, r.StreamID)
			}
		}
		stored, err := g.e.presence.Presences(ctx, ref.Tenant, ids)
		if err != nil {
			return nil, fmt.Errorf("alerts: presences: %w", err)
		}
		// Entities erased earlier in the batch keep what they have: nothing.
		fresh := map[string]map[string]*SitePresence{}
		for _, id := range ids {
			if _, ok := g.presence[EntityRef{ref.Tenant, id}]; !ok {
				fresh[id] = map[string]*SitePresence{}
				g.presence[EntityRef{ref.Tenant, id}] = fresh[id]
			}
		}
		for i := range stored {
			if m := fresh[stored[i].EntityID]; m != nil {
				m[stored[i].SiteID] = &stored[i]
			}
		}
	}
	if _, ok := g.presence[ref]; !ok {
		g.presence[ref] = map[string]*SitePresence{}
	}
	return g.presence[ref], nil
}

// observe evaluates an event of a tenant with sites: a position fix is
// measured against every site, and a dwell exception derived after its
// visit ended (a check that fired while the departure was being
// evaluated) is resolved.
func (g *geoBatch) observe(ctx context.Context, r eventstore.Recorded, view tracking.EntityState, rules []Rule) error {
	sites := g.sites[r.Tenant]
	if len(sites) == 0 {
		return nil
	}
	switch {
	case r.Type == tracking.TypeLocationReported && r.Metadata.Source != Source:
		return g.fix(ctx, r, view, rules, sites)
	case r.Type == tracking.TypeExceptionRaised && r.Metadata.Source == Source:
		return g.lateDwell(ctx, r)
	}
	return nil
}

// fix takes a position fix: for each site (a fix far from a site it is not
// known to be at costs a bounding-box test), the entity's presence takes
// it, and entering or leaving derives arrived or departed.
func (g *geoBatch) fix(ctx context.Context, r eventstore.Recorded, view tracking.EntityState, rules []Rule, sites []shapedSite) error {
	var fix tracking.LocationReported
	if err := json.Unmarshal(r.Data, &fix); err != nil {
		g.e.log.Warn("a position fix is not evaluated", "tenant", r.Tenant, "entity", r.StreamID, "error", err)
		return nil
	}
	ref := EntityRef{r.Tenant, r.StreamID}
	at, err := g.presences(ctx, ref)
	if err != nil {
		return err
	}
	type departure struct {
		site  shapedSite
		visit string
	}
	var arrived []shapedSite
	var departed []departure
	for _, s := range sites {
		// A site applies from when it was put: a replay of older fixes
		// does not find visits nobody was told of.
		if r.RecordedAt.Before(s.UpdatedAt) {
			continue
		}
		p := at[s.ID]
		if p == nil {
			// Outside with nothing pending: only a fix inside counts.
			if !s.shape.Near(fix.Lat, fix.Lon, 0) {
				continue
			}
			p = &SitePresence{Tenant: r.Tenant, EntityID: r.StreamID, SiteID: s.ID}
			at[s.ID] = p
		}
		entered, left := p.Observe(s.shape.Distance(fix.Lat, fix.Lon), r.OccurredAt)
		g.changed[[3]string{r.Tenant, r.StreamID, s.ID}] = p
		switch {
		case entered:
			p.VisitEventID, p.ArrivedAt = r.ID.String(), r.OccurredAt
			arrived = append(arrived, s)
		case left:
			departed = append(departed, departure{s, p.VisitEventID})
			p.VisitEventID, p.ArrivedAt = "", time.Time{}
		}
	}
	// Departures first: a fix leaving one site for another ends at the
	// arrival.
	for _, d := range departed {
		g.milestone(r, fix, tracking.MilestoneDeparted, d.site.ID)
		if err := g.departDwell(ctx, r, rules, d.site, d.visit); err != nil {
			return err
		}
	}
	for _, s := range arrived {
		g.milestone(r, fix, tracking.MilestoneArrived, s.ID)
		g.arriveDwell(r, view, rules, s)
	}
	return nil
}

// milestone derives arrived or departed at a site from the fix r.
func (g *geoBatch) milestone(r eventstore.Recorded, fix tracking.LocationReported, milestone, siteID string) {
	data, _ := json.Marshal(tracking.MilestoneReached{Milestone: milestone, SiteID: siteID,
		Location: &tracking.GeoPoint{Lat: fix.Lat, Lon: fix.Lon}})
	g.cmds = append(g.cmds, tracking.RecordCommand{Tenant: r.Tenant, EntityID: r.StreamID, Expected: eventstore.Any, Source: Source,
		Events: []tracking.NewEvent{{ID: derivedID(milestone, r.Tenant, r.StreamID, siteID, r.ID.String()),
			Type: tracking.TypeMilestoneReached, OccurredAt: r.OccurredAt, Data: data,
			Metadata: eventstore.Metadata{Source: Source, CausationID: r.ID.String()}}}})
}

// arriveDwell schedules the check of each dwell rule whose scope takes in
// the entity at the site it arrived at.
func (g *geoBatch) arriveDwell(r eventstore.Recorded, view tracking.EntityState, rules []Rule, s shapedSite) {
	for _, rule := range rules {
		if rule.Kind != KindDwell || !rule.AppliesAtSite(s.ID) || !rule.Applies(firstNonEmpty(view.EntityType, r.EntityType), view.Status) {
			continue
		}
		p, _ := json.Marshal(dwellPayload{SiteID: s.ID, SiteName: s.Name, ArrivedAt: r.OccurredAt, After: rule.After})
		k := [4]string{r.Tenant, r.StreamID, rule.ID, dwellKey(s.ID)}
		if _, ok := g.dues[k]; !ok {
			g.order = append(g.order, k)
		}
		g.dues[k] = Due{Tenant: r.Tenant, EntityID: r.StreamID, RuleID: rule.ID, Key: dwellKey(s.ID), At: r.OccurredAt.Add(rule.After),
			Cause: Cause{EventID: r.ID.String(), Position: r.Position}, Payload: p}
	}
}

// departDwell cancels the dwell checks of the visit that ended and
// resolves the dwell exceptions raised for it.
func (g *geoBatch) departDwell(ctx context.Context, r eventstore.Recorded, rules []Rule, s shapedSite, visit string) error {
	key := dwellKey(s.ID)
	g.cancels = append(g.cancels, DueKey{r.Tenant, r.StreamID, key})
	for k := range g.dues {
		if k[0] == r.Tenant && k[1] == r.StreamID && k[3] == key {
			delete(g.dues, k)
		}
	}
	if visit == "" {
		return nil
	}
	var ids []string
	for _, rule := range rules {
		if rule.Kind == KindDwell && rule.AppliesAtSite(s.ID) {
			ids = append(ids, dwellExceptionID(r.Tenant, r.StreamID, rule.ID, s.ID, visit))
		}
	}
	return g.resolveOpen(ctx, r, ids, "the entity left "+siteLabel(s.ID, s.Name))
}

// lateDwell resolves a dwell exception derived for a visit that has ended
// by the time it is in the log.
func (g *geoBatch) lateDwell(ctx context.Context, r eventstore.Recorded) error {
	var x tracking.ExceptionRaised
	if json.Unmarshal(r.Data, &x) != nil || x.Code != tracking.ExceptionDwell {
		return nil
	}
	at, err := g.presences(ctx, EntityRef{r.Tenant, r.StreamID})
	if err != nil {
		return err
	}
	for _, p := range at {
		if p.Inside && p.VisitEventID == r.Metadata.CausationID {
			return nil // still there
		}
	}
	return g.resolveOpen(ctx, r, []string{x.ExceptionID}, "the entity had left the site")
}

// resolveOpen resolves those of the exceptions that are open now: the
// entity's current state says (a check may have fired after the event r).
func (g *geoBatch) resolveOpen(ctx context.Context, r eventstore.Recorded, exceptionIDs []string, resolution string) error {
	if len(exceptionIDs) == 0 {
		return nil
	}
	ref := EntityRef{r.Tenant, r.StreamID}
	now, ok := g.now[ref]
	if !ok {
		state, err := g.e.rec.Entity(ctx, r.Tenant, r.StreamID)
		switch {
		case errors.Is(err, tracking.ErrNotFound):
		case err != nil:
			return fmt.Errorf("alerts: entity %s: %w", r.StreamID, err)
		default:
			now = &state
		}
		g.now[ref] = now
	}
	if now == nil {
		return nil
	}
	for _, id := range exceptionIDs {
		for _, x := range now.OpenExceptions {
			if x.ExceptionID == id && !g.resolved[id] {
				g.resolved[id] = true
				g.cmds = append(g.cmds, g.e.resolve(r, x, resolution))
			}
		}
	}
	return nil
}

// commit stores the batch's presences and checks with the follower's
// checkpoint (only the checkpoint, when there are none).
func (g *geoBatch) commit(ctx context.Context, from, to eventstore.Cursor) error {
	b := PresenceBatch{Erased: g.erased, Cancel: g.cancels}
	for _, p := range g.changed {
		b.Presences = append(b.Presences, *p)
	}
	for _, k := range g.order {
		if d, ok := g.dues[k]; ok {
			b.Schedule = append(b.Schedule, d)
		}
	}
	if len(b.Erased)+len(b.Presences)+len(b.Cancel)+len(b.Schedule) == 0 || g.e.presence == nil {
		return g.e.cps.MoveCheckpoint(ctx, Checkpoint, from, to)
	}
	if err := g.e.presence.CommitPresences(ctx, Checkpoint, from, to, b); err != nil {
		return err
	}
	if len(b.Schedule) > 0 && g.e.Wake != nil {
		g.e.Wake()
	}
	return nil
}

// fireDwell raises the dwell exception of a due dwell check when the
// entity is still in the visit that scheduled it (ok false: it is not).
func (e *Evaluator) fireDwell(ctx context.Context, d Due) (tracking.RecordCommand, bool, error) {
	var p dwellPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil || p.SiteID == "" {
		e.log.Warn("a dwell check without its payload is dropped", "tenant", d.Tenant, "entity", d.EntityID, "error", err)
		return tracking.RecordCommand{}, false, nil
	}
	if e.presence == nil {
		return tracking.RecordCommand{}, false, nil
	}
	stored, err := e.presence.Presences(ctx, d.Tenant, []string{d.EntityID})
	if err != nil {
		return tracking.RecordCommand{}, false, fmt.Errorf("alerts: presences: %w", err)
	}
	for _, at := range stored {
		if at.SiteID != p.SiteID || !at.Inside || at.VisitEventID != d.Cause.EventID {
			continue
		}
		exceptionID := dwellExceptionID(d.Tenant, d.EntityID, d.RuleID, p.SiteID, d.Cause.EventID)
		data, _ := json.Marshal(tracking.ExceptionRaised{ExceptionID: exceptionID, Code: tracking.ExceptionDwell, Severity: tracking.SeverityMedium,
			Description: fmt.Sprintf("at %s for more than %s (arrived at %s)", siteLabel(p.SiteID, p.SiteName),
				config.Duration(p.After), p.ArrivedAt.UTC().Format(time.RFC3339))})
		return tracking.RecordCommand{Tenant: d.Tenant, EntityID: d.EntityID, Expected: eventstore.Any, Source: Source,
			Events: []tracking.NewEvent{{ID: derivedID("raise", exceptionID), Type: tracking.TypeExceptionRaised, OccurredAt: d.At,
				Data: data, Metadata: eventstore.Metadata{Source: Source, CausationID: d.Cause.EventID}}}}, true, nil
	}
	return tracking.RecordCommand{}, false, nil
}

// siteLabel names a site in a description: its name and id.
func siteLabel(id, name string) string {
	if name == "" {
		return fmt.Sprintf("site %q", id)
	}
	return fmt.Sprintf("%s (site %q)", name, id)
}
