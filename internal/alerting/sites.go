// Package alerting derives what a tenant wants to be told from the events
// tracktrace stores: the rules a tenant configures and the sites
// (geofences) they name.
package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tlm/tracktrace/internal/alerting/geofence"
	"github.com/tlm/tracktrace/internal/tracking"
)

// ErrSiteNotFound: the tenant has no site of that id.
var ErrSiteNotFound = errors.New("alerting: no such site")

// Limits of a site's id and name, in characters.
const (
	MaxSiteIDLength   = 128
	MaxSiteNameLength = 200
)

// Site is a tenant's named place: a circle or polygon (DESIGN §10) whose
// entering and leaving derive milestones.
type Site struct {
	Tenant string
	// ID is the tenant's name for it: 1–MaxSiteIDLength printable
	// characters, no '/'.
	ID   string
	Name string
	// Geometry is the site's GeoJSON as given (compacted): ParseGeometry
	// accepted it.
	Geometry  json.RawMessage
	UpdatedAt time.Time
}

// Shape parses the site's geometry.
func (s Site) Shape() (geofence.Geometry, error) { return geofence.ParseGeometry(s.Geometry) }

// Sites stores the tenants' sites. Every method is per tenant: another
// tenant's site of the same id is another site.
type Sites interface {
	// PutSite stores a site, replacing the tenant's site of that id, and
	// says whether there was none.
	PutSite(ctx context.Context, site Site) (created bool, err error)
	// Site returns a tenant's site, or ErrSiteNotFound.
	Site(ctx context.Context, tenant, id string) (Site, error)
	// ListSites returns up to limit sites of a tenant, by id, after
	// `after`.
	ListSites(ctx context.Context, tenant, after string, limit int) ([]Site, error)
	// DeleteSite deletes a tenant's site (and the entities' presences at
	// it), or answers ErrSiteNotFound.
	DeleteSite(ctx context.Context, tenant, id string) error
	// SitesVersion returns the version of a tenant's sites: it changes
	// whenever one is created, replaced or deleted.
	SitesVersion(ctx context.Context, tenant string) (SitesVersion, error)
}

// SiteService is the sites' use cases: it validates what it stores.
type SiteService struct {
	store Sites
	now   func() time.Time
}

// NewSiteService returns the sites' use cases on a store; now (nil:
// time.Now) stamps UpdatedAt.
func NewSiteService(store Sites, now func() time.Time) *SiteService {
	if now == nil {
		now = time.Now
	}
	return &SiteService{store: store, now: now}
}

// Put creates or replaces a tenant's site and says whether it created it.
// A bad id, name or geometry is a *tracking.ValidationError naming the
// fault (the geometry's at "geometry/…").
func (s *SiteService) Put(ctx context.Context, tenant, id, name string, geometry json.RawMessage) (Site, bool, error) {
	var faults []tracking.FieldError
	if err := ValidateSiteID(id); err != nil {
		faults = append(faults, tracking.FieldError{Field: "siteId", Message: err.Error()})
	}
	if utf8.RuneCountInString(name) > MaxSiteNameLength || !printable(name) {
		faults = append(faults, tracking.FieldError{Field: "name",
			Message: "a name is at most 200 printable characters"})
	}
	var compact bytes.Buffer
	if len(bytes.TrimSpace(geometry)) == 0 || string(bytes.TrimSpace(geometry)) == "null" {
		faults = append(faults, tracking.FieldError{Field: "geometry", Message: "required"})
	} else if _, err := geofence.ParseGeometry(geometry); err != nil {
		faults = append(faults, geometryFault(err))
	} else if err := json.Compact(&compact, geometry); err != nil {
		faults = append(faults, tracking.FieldError{Field: "geometry", Message: err.Error()})
	}
	if len(faults) > 0 {
		return Site{}, false, &tracking.ValidationError{Errors: faults}
	}
	site := Site{Tenant: tenant, ID: id, Name: name, Geometry: compact.Bytes(), UpdatedAt: s.now().UTC().Truncate(time.Microsecond)}
	created, err := s.store.PutSite(ctx, site)
	if err != nil {
		return Site{}, false, err
	}
	return site, created, nil
}

func geometryFault(err error) tracking.FieldError {
	var gerr *geofence.Error
	if errors.As(err, &gerr) {
		field := "geometry"
		if gerr.Field != "" {
			field += "/" + gerr.Field
		}
		return tracking.FieldError{Field: field, Message: gerr.Reason}
	}
	return tracking.FieldError{Field: "geometry", Message: err.Error()}
}

// Get returns a tenant's site, or ErrSiteNotFound.
func (s *SiteService) Get(ctx context.Context, tenant, id string) (Site, error) {
	if ValidateSiteID(id) != nil {
		return Site{}, ErrSiteNotFound
	}
	return s.store.Site(ctx, tenant, id)
}

// List returns up to limit sites of a tenant, by id, after `after`.
func (s *SiteService) List(ctx context.Context, tenant, after string, limit int) ([]Site, error) {
	return s.store.ListSites(ctx, tenant, after, limit)
}

// Delete deletes a tenant's site, or answers ErrSiteNotFound.
func (s *SiteService) Delete(ctx context.Context, tenant, id string) error {
	if ValidateSiteID(id) != nil {
		return ErrSiteNotFound
	}
	return s.store.DeleteSite(ctx, tenant, id)
}

// ValidateSiteID accepts 1–MaxSiteIDLength printable characters without
// '/'.
func ValidateSiteID(id string) error {
	switch n := utf8.RuneCountInString(id); {
	case n == 0:
		return errors.New("a site id is required")
	case n > MaxSiteIDLength:
		return errors.New("a site id is at most 128 characters")
	case strings.Contains(id, "/"), !printable(id):
		return errors.New("a site id is printable characters without '/'")
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
