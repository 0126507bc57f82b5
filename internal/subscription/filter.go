package subscription

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Filter selects the events a subscription (or a live stream) receives.
// Every list left empty matches everything; the lists are combined with
// "and", the values of one list with "or".
type Filter struct {
	EntityTypes []string `json:"entityTypes,omitempty"`
	EventTypes  []string `json:"eventTypes,omitempty"`
	// EntityIDs are entity ids, or prefixes of them ending in "*".
	EntityIDs []string `json:"entityIds,omitempty"`
	// IntegrationKinds, when set, keeps only events that change the
	// entity's state in one of these ways (tracking.Integration* kinds:
	// EntityStatusChanged, ExceptionRaised, ExceptionResolved,
	// EtaChanged); each delivered event carries those changes.
	IntegrationKinds []string `json:"integrationKinds,omitempty"`
}

// Bounds of a filter.
const (
	maxFilterValues = 100
	maxFilterValue  = 256
)

var integrationKinds = []string{tracking.IntegrationEntityStatusChanged, tracking.IntegrationExceptionRaised,
	tracking.IntegrationExceptionResolved, tracking.IntegrationEtaChanged}

// Normalize checks a filter a client sent and returns it with its lists
// sorted and deduplicated; statusChanges and exceptions are the shorthands
// of the integration kinds they name.
func (f Filter) Normalize(statusChanges, exceptions bool) (Filter, error) {
	if statusChanges {
		f.IntegrationKinds = append(f.IntegrationKinds, tracking.IntegrationEntityStatusChanged)
	}
	if exceptions {
		f.IntegrationKinds = append(f.IntegrationKinds, tracking.IntegrationExceptionRaised, tracking.IntegrationExceptionResolved)
	}
	lists := []struct {
		name string
		vals *[]string
	}{{"entityTypes", &f.EntityTypes}, {"eventTypes", &f.EventTypes}, {"entityIds", &f.EntityIDs}, {"integrationKinds", &f.IntegrationKinds}}
	for _, l := range lists {
		if len(*l.vals) > maxFilterValues {
			return Filter{}, fmt.Errorf("%w: filter.%s has more than %d values", ErrInvalid, l.name, maxFilterValues)
		}
		for _, v := range *l.vals {
			if v == "" || len(v) > maxFilterValue || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return Filter{}, fmt.Errorf("%w: filter.%s: each value is 1–%d printable characters", ErrInvalid, l.name, maxFilterValue)
			}
			if l.name == "entityIds" && strings.Contains(strings.TrimSuffix(v, "*"), "*") {
				return Filter{}, fmt.Errorf("%w: filter.entityIds: %q: \"*\" may only end a prefix", ErrInvalid, v)
			}
			if l.name == "entityIds" && v == "*" {
				return Filter{}, fmt.Errorf("%w: filter.entityIds: \"*\" alone is no prefix (leave the list out to match every entity)", ErrInvalid)
			}
			if l.name == "integrationKinds" && !slices.Contains(integrationKinds, v) {
				return Filter{}, fmt.Errorf("%w: filter.integrationKinds: %q is none of %s", ErrInvalid, v, strings.Join(integrationKinds, ", "))
			}
		}
		slices.Sort(*l.vals)
		*l.vals = slices.Compact(*l.vals)
	}
	return f, nil
}

// Match reports whether an event of the log passes the filter's entity and
// event conditions (the integration kinds are checked on the changes the
// event caused: MatchKinds). Events that are not tracking events (erasure
// markers, EPCIS capture streams, whose entity types start with "$") never
// match.
func (f Filter) Match(r eventstore.Recorded) bool {
	if r.Version <= 0 || r.Type == eventstore.ErasureType || strings.HasPrefix(r.EntityType, "$") {
		return false
	}
	if len(f.EntityTypes) > 0 && !slices.Contains(f.EntityTypes, r.EntityType) {
		return false
	}
	if len(f.EventTypes) > 0 && !slices.Contains(f.EventTypes, r.Type) {
		return false
	}
	if len(f.EntityIDs) > 0 && !slices.ContainsFunc(f.EntityIDs, func(id string) bool {
		if p, ok := strings.CutSuffix(id, "*"); ok {
			return strings.HasPrefix(r.StreamID, p)
		}
		return id == r.StreamID
	}) {
		return false
	}
	return true
}

// MatchKinds returns the integration events among ies whose kinds the
// filter names (all of them when it names none).
func (f Filter) MatchKinds(ies []tracking.IntegrationEvent) []tracking.IntegrationEvent {
	if len(f.IntegrationKinds) == 0 {
		return ies
	}
	var out []tracking.IntegrationEvent
	for _, ie := range ies {
		if slices.Contains(f.IntegrationKinds, ie.Kind) {
			out = append(out, ie)
		}
	}
	return out
}

// Candidates returns the filter a follower of the log picks candidates
// with (see Select): the filter itself, or, when it names integration
// kinds, the filter without its event types, for an entity's state folds
// all its events: each goes through the deriver, and the event types
// filter after.
func (f Filter) Candidates() Filter {
	if len(f.IntegrationKinds) > 0 {
		f.EventTypes = nil
	}
	return f
}

// Select returns the delivered form of the candidates that pass the filter,
// and the index of each in candidates. Candidates are the subscriber's
// events that pass f.Candidates().Match, in log order. When the filter names
// integration kinds, changes derives the state changes of every candidate
// and keeps the states it folded (Commit), and an event passes with the
// changes of those kinds it caused; with changes nil none passes.
func (f Filter) Select(ctx context.Context, changes Changes, candidates []eventstore.Recorded) ([]Event, []int, error) {
	kinds := len(f.IntegrationKinds) > 0
	if kinds && (changes == nil || len(candidates) == 0) {
		return nil, nil, nil
	}
	var derived [][]tracking.IntegrationEvent
	if kinds {
		var err error
		if derived, err = changes.DeriveBatch(ctx, candidates); err != nil {
			changes.Discard()
			return nil, nil, fmt.Errorf("derive state changes: %w", err)
		}
		if len(derived) != len(candidates) {
			changes.Discard()
			return nil, nil, fmt.Errorf("derive state changes: %d answers for %d events", len(derived), len(candidates))
		}
		changes.Commit()
	}
	var (
		events []Event
		at     []int
	)
	for i, r := range candidates {
		var ies []tracking.IntegrationEvent
		if kinds {
			if !f.Match(r) {
				continue
			}
			if ies = f.MatchKinds(derived[i]); len(ies) == 0 {
				continue
			}
		}
		events, at = append(events, NewEvent(r, ies)), append(at, i)
	}
	return events, at, nil
}
