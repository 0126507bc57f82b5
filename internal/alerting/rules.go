// Package alerting tells a tenant what did not happen: rules a tenant
// configures (stale tracking, delays, dwell too long) derive exceptions
// from the events tracktrace stores and from time passing. Time-based
// rules run from a durable schedule of due checks (schedule.go), never
// from in-memory timers.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Kinds of rules. A derived exception's code is its rule's kind.
const (
	// KindStale: no event for a duration while in a given status.
	KindStale = "stale"
	// KindDelay: the ETA later than the planned arrival plus a tolerance.
	KindDelay = "delay"
	// KindDwell: a visit to a site lasting longer than a duration.
	KindDwell = "dwell"
)

// Kinds lists the kinds of rules.
func Kinds() []string { return []string{KindStale, KindDelay, KindDwell} }

// Defaults and bounds of rule definitions.
const (
	// MinDuration and MaxDuration bound every threshold but a delay's
	// tolerance, which may be zero.
	MinDuration = time.Minute
	MaxDuration = 365 * 24 * time.Hour
	// MaxLevels bounds a stale rule's levels.
	MaxLevels = 10
	// MaxScopeItems bounds each of a rule's scope lists.
	MaxScopeItems = 100

	// DefaultExpireAfter is how long after its last event an entity stops
	// being checked by a stale rule (AfterShip expires tracking after 30
	// days).
	DefaultExpireAfter = 30 * 24 * time.Hour
	// DefaultETADelta is how far an ETA must move for a delay rule to
	// derive an ETA change (project44's threshold).
	DefaultETADelta = 30 * time.Minute
)

// DefaultStaleLevels are a stale rule's levels when it names none: no
// event for 24, 48 and 72 hours.
func DefaultStaleLevels() []time.Duration {
	return []time.Duration{24 * time.Hour, 48 * time.Hour, 72 * time.Hour}
}

// DefaultStaleStatuses are the statuses a stale rule applies in when it
// names none: those an entity still moves on from.
func DefaultStaleStatuses() []string {
	return []string{tracking.StatusRegistered, tracking.StatusInTransit, tracking.StatusOutForDelivery}
}

// ErrNotFound: no such rule for the tenant.
var ErrNotFound = errors.New("alerting: no such rule")

// Rule is a tenant's rule: its kind, its scope and the thresholds of its
// kind (the others are zero). A rule changes only by being replaced, which
// moves its Generation: what was evaluated or scheduled under an older
// generation is told apart by it, so that a change applies to new
// evaluations only.
type Rule struct {
	Tenant string
	ID     string
	Kind   string

	// Scope: the rule applies to entities of these types (empty: every
	// type), in these statuses (empty: every status), at these sites
	// (dwell only; empty: every site).
	EntityTypes []string
	Statuses    []string
	SiteIDs     []string

	// Levels are a stale rule's thresholds, ascending: an exception is
	// raised at each.
	Levels []time.Duration
	// ExpireAfter: a stale rule stops checking an entity this long after
	// its last event.
	ExpireAfter time.Duration
	// Tolerance: a delay rule raises when the ETA is later than the
	// planned arrival by more than this.
	Tolerance time.Duration
	// ETADelta: a delay rule derives an ETA change only when the ETA moves
	// by more than this.
	ETADelta time.Duration
	// After: a dwell rule raises when a visit lasts longer than this.
	After time.Duration

	CreatedAt  time.Time
	UpdatedAt  time.Time
	Generation int64
}

// Applies reports whether the rule's scope takes in an entity of a type,
// in a status.
func (r Rule) Applies(entityType, status string) bool {
	return (len(r.EntityTypes) == 0 || slices.Contains(r.EntityTypes, entityType)) &&
		(len(r.Statuses) == 0 || slices.Contains(r.Statuses, status))
}

// AppliesAtSite reports whether a dwell rule's scope takes in a site.
func (r Rule) AppliesAtSite(siteID string) bool {
	return len(r.SiteIDs) == 0 || slices.Contains(r.SiteIDs, siteID)
}

// Definition is what a client sends to create or replace a rule:
// durations as ISO-8601 text, nil when absent. Which fields a kind takes:
//
//   - stale: Levels (default PT24H, PT48H, PT72H) or After (one level),
//     ExpireAfter (default P30D);
//   - delay: Tolerance (default PT0S), ETADelta (default PT30M);
//   - dwell: After (required), SiteIDs.
//
// Every kind takes EntityTypes and Statuses. A stale rule without
// Statuses applies in DefaultStaleStatuses; an empty list (not nil) means
// every status.
type Definition struct {
	Kind        string
	After       *string
	Levels      []string
	ExpireAfter *string
	Tolerance   *string
	ETADelta    *string
	EntityTypes []string
	Statuses    []string
	SiteIDs     []string
}

// RuleStore keeps the rules (the read models' database).
type RuleStore interface {
	// CreateRule stores a new rule.
	CreateRule(ctx context.Context, r Rule) error
	// Rule returns a tenant's rule, or ErrNotFound.
	Rule(ctx context.Context, tenant, id string) (Rule, error)
	// Rules returns up to limit rules of a tenant, by id, after `after`.
	Rules(ctx context.Context, tenant, after string, limit int) ([]Rule, error)
	// ReplaceRule stores r's definition if the stored rule's generation is
	// r.Generation-1; it reports false when it is not (changed meanwhile),
	// ErrNotFound when the rule is gone.
	ReplaceRule(ctx context.Context, r Rule) (bool, error)
	// DeleteRule deletes a rule and cancels its due checks, or returns
	// ErrNotFound.
	DeleteRule(ctx context.Context, tenant, id string) error
}

// RuleService is the rules' API: it checks definitions and stores rules.
type RuleService struct {
	store RuleStore
	types tracking.EntityTypes
	clock clockwork.Clock
}

// RuleOptions tune a RuleService.
type RuleOptions struct {
	// EntityTypes are the types a scope may name (zero: the built-in ones).
	EntityTypes tracking.EntityTypes
	Clock       clockwork.Clock
}

// NewRuleService returns the rules' API over store.
func NewRuleService(store RuleStore, opts RuleOptions) *RuleService {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	return &RuleService{store: store, types: opts.EntityTypes, clock: opts.Clock}
}

// Create checks a definition and stores it as a new rule of the tenant.
// An invalid definition is a *tracking.ValidationError naming the fields.
func (s *RuleService) Create(ctx context.Context, tenant string, d Definition) (Rule, error) {
	r, err := s.Validate(d)
	if err != nil {
		return Rule{}, err
	}
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	r.Tenant, r.ID, r.CreatedAt, r.UpdatedAt, r.Generation = tenant, uuid.Must(uuid.NewV7()).String(), now, now, 1
	if err := s.store.CreateRule(ctx, r); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// Replace checks a definition and stores it in place of a rule's, moving
// its generation. The kind cannot change.
func (s *RuleService) Replace(ctx context.Context, tenant, id string, d Definition) (Rule, error) {
	next, err := s.Validate(d)
	if err != nil {
		return Rule{}, err
	}
	for {
		old, err := s.store.Rule(ctx, tenant, id)
		if err != nil {
			return Rule{}, err
		}
		if old.Kind != next.Kind {
			return Rule{}, &tracking.ValidationError{Errors: []tracking.FieldError{{Field: "kind",
				Message: fmt.Sprintf("a %s rule stays one; delete it and create a %s rule", old.Kind, next.Kind)}}}
		}
		next.Tenant, next.ID, next.CreatedAt, next.Generation = tenant, id, old.CreatedAt, old.Generation+1
		next.UpdatedAt = s.clock.Now().UTC().Truncate(time.Microsecond)
		ok, err := s.store.ReplaceRule(ctx, next)
		if err != nil || ok {
			return next, err
		}
		if err := ctx.Err(); err != nil {
			return Rule{}, err
		}
	}
}

// Get returns a tenant's rule, or ErrNotFound.
func (s *RuleService) Get(ctx context.Context, tenant, id string) (Rule, error) {
	return s.store.Rule(ctx, tenant, id)
}

// List returns up to limit rules of a tenant, by id, after `after`.
func (s *RuleService) List(ctx context.Context, tenant, after string, limit int) ([]Rule, error) {
	return s.store.Rules(ctx, tenant, after, limit)
}

// Delete deletes a rule: it derives nothing more, and its due checks are
// cancelled.
func (s *RuleService) Delete(ctx context.Context, tenant, id string) error {
	return s.store.DeleteRule(ctx, tenant, id)
}

// Validate checks a definition and returns the rule it defines (without
// tenant, id or times), the defaults of its kind filled in. Every problem
// found is reported, each naming its field.
func (s *RuleService) Validate(d Definition) (Rule, error) {
	v := &validator{}
	r := Rule{Kind: d.Kind}
	switch d.Kind {
	case KindStale:
		v.refuse("tolerance", d.Tolerance != nil, "not a setting of a stale rule")
		v.refuse("etaDelta", d.ETADelta != nil, "not a setting of a stale rule")
		v.refuse("siteIds", d.SiteIDs != nil, "not a setting of a stale rule")
		switch {
		case d.After != nil && d.Levels != nil:
			v.add("levels", `give "levels" or "after" (one level), not both`)
		case d.After != nil:
			r.Levels = []time.Duration{v.duration("after", *d.After, MinDuration)}
		case d.Levels != nil:
			r.Levels = v.levels(d.Levels)
		default:
			r.Levels = DefaultStaleLevels()
		}
		r.ExpireAfter = DefaultExpireAfter
		if d.ExpireAfter != nil {
			r.ExpireAfter = v.duration("expireAfter", *d.ExpireAfter, MinDuration)
		}
		if n := len(r.Levels); n > 0 && r.Levels[n-1] > 0 && r.ExpireAfter > 0 && r.ExpireAfter <= r.Levels[n-1] {
			v.add("expireAfter", fmt.Sprintf("must be longer than the last level (%s)", config.Duration(r.Levels[n-1])))
		}
	case KindDelay:
		v.refuse("after", d.After != nil, "not a setting of a delay rule")
		v.refuse("levels", d.Levels != nil, "not a setting of a delay rule")
		v.refuse("expireAfter", d.ExpireAfter != nil, "not a setting of a delay rule")
		v.refuse("siteIds", d.SiteIDs != nil, "not a setting of a delay rule")
		if d.Tolerance != nil {
			r.Tolerance = v.duration("tolerance", *d.Tolerance, 0)
		}
		r.ETADelta = DefaultETADelta
		if d.ETADelta != nil {
			r.ETADelta = v.duration("etaDelta", *d.ETADelta, MinDuration)
		}
	case KindDwell:
		v.refuse("levels", d.Levels != nil, "not a setting of a dwell rule")
		v.refuse("expireAfter", d.ExpireAfter != nil, "not a setting of a dwell rule")
		v.refuse("tolerance", d.Tolerance != nil, "not a setting of a dwell rule")
		v.refuse("etaDelta", d.ETADelta != nil, "not a setting of a dwell rule")
		if d.After == nil {
			v.add("after", "required for a dwell rule: how long a visit may last")
		} else {
			r.After = v.duration("after", *d.After, MinDuration)
		}
		r.SiteIDs = v.list("siteIds", d.SiteIDs, func(id string) string {
			if err := ValidateSiteID(id); err != nil {
				return err.Error()
			}
			return ""
		})
	case "":
		v.add("kind", "required: "+strings.Join(Kinds(), ", "))
	default:
		v.add("kind", "one of "+strings.Join(Kinds(), ", "))
	}
	r.EntityTypes = v.list("entityTypes", d.EntityTypes, func(t string) string {
		if !s.types.Known(t) {
			return "one of " + strings.Join(s.types.List(), ", ")
		}
		return ""
	})
	r.Statuses = v.list("statuses", d.Statuses, func(st string) string {
		if !slices.Contains(tracking.Statuses(), st) {
			return "one of " + strings.Join(tracking.Statuses(), ", ")
		}
		return ""
	})
	if d.Kind == KindStale && d.Statuses == nil {
		r.Statuses = DefaultStaleStatuses()
	}
	if len(v.errs) > 0 {
		return Rule{}, &tracking.ValidationError{Errors: v.errs}
	}
	return r, nil
}

// validator collects the field errors of a definition.
type validator struct{ errs []tracking.FieldError }

func (v *validator) add(field, msg string) {
	v.errs = append(v.errs, tracking.FieldError{Field: field, Message: msg})
}

func (v *validator) refuse(field string, present bool, msg string) {
	if present {
		v.add(field, msg)
	}
}

// duration parses an ISO-8601 duration of at least lowest and at most
// MaxDuration.
func (v *validator) duration(field, text string, lowest time.Duration) time.Duration {
	var d config.Duration
	var err error
	if !strings.HasPrefix(text, "P") {
		err = errors.New("not ISO-8601")
	} else {
		d, err = config.ParseDuration(text)
	}
	switch {
	case err != nil:
		v.add(field, "an ISO-8601 duration such as PT30M, PT24H or P30D")
	case time.Duration(d) < lowest || time.Duration(d) > MaxDuration:
		v.add(field, fmt.Sprintf("from %s to %s", config.Duration(lowest), config.Duration(MaxDuration)))
	default:
		return time.Duration(d)
	}
	return 0
}

// levels parses a stale rule's levels: 1 to MaxLevels, ascending.
func (v *validator) levels(texts []string) []time.Duration {
	if len(texts) == 0 || len(texts) > MaxLevels {
		v.add("levels", fmt.Sprintf("1 to %d durations", MaxLevels))
		return nil
	}
	out := make([]time.Duration, len(texts))
	for i, t := range texts {
		field := fmt.Sprintf("levels/%d", i)
		out[i] = v.duration(field, t, MinDuration)
		if i > 0 && out[i] > 0 && out[i-1] > 0 && out[i] <= out[i-1] {
			v.add(field, "levels must be ascending")
		}
	}
	return out
}

// list checks a scope list: at most MaxScopeItems, no duplicates, each
// item accepted by check (which says what is wrong, or "").
func (v *validator) list(field string, items []string, check func(string) string) []string {
	if len(items) > MaxScopeItems {
		v.add(field, fmt.Sprintf("at most %d items", MaxScopeItems))
		return nil
	}
	for i, it := range items {
		f := fmt.Sprintf("%s/%d", field, i)
		if msg := check(it); msg != "" {
			v.add(f, msg)
		} else if slices.Contains(items[:i], it) {
			v.add(f, "a duplicate")
		}
	}
	if len(items) == 0 {
		return nil
	}
	return slices.Clone(items)
}
