package alerting

import (
	"context"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/tracking"
)

// EtaDecisions is what an EtaStore knows of an entity's ETA changes
// decided up to a position of the log.
type EtaDecisions struct {
	// Decided is the highest position decided for the entity (0: none).
	Decided int64
	// Announced reports whether the change at the position asked about was
	// announced (meaningful when it is not after Decided).
	Announced bool
	// Last is the latest announcement before the position asked about
	// (nil: none).
	Last *EtaAnnouncement
}

// EtaAnnouncement is an announced ETA change: its position in the log and
// the ETA it announced (nil: the ETA was withdrawn).
type EtaAnnouncement struct {
	Position int64
	ETA      *time.Time
}

// EtaStore keeps the decisions on entities' ETA changes (the read models'
// database): every announcement, and the highest position decided, so that
// a change decided once is answered the same ever after.
type EtaStore interface {
	// EtaDecisions returns what is decided for an entity up to position.
	EtaDecisions(ctx context.Context, tenant, entityID string, position int64) (EtaDecisions, error)
	// DecideEta records the decision on the change at position: the
	// entity's decided position moves from `from` to position, and an
	// announced change is kept with its ETA. It reports false, recording
	// nothing, when the decided position is not at `from` (decided
	// meanwhile).
	DecideEta(ctx context.Context, tenant, entityID string, from, position int64, announced bool, eta *time.Time) (bool, error)
}

// EtaAnnouncer is the tracking.EtaPolicy of the tenants' delay rules: a
// tenant with a delay rule has an ETA change announced only when the ETA
// moved by more than the rule's ETADelta (the smallest of its delay rules')
// from the ETA announced last, so that small drifts add up and are
// announced once they exceed it; an ETA set or withdrawn is always
// announced, as is an entity's first change since the tenant has a rule. A
// tenant without a delay rule has every change announced.
//
// Each change is decided once, by the first follower of the log that asks
// (the Kafka relay, a webhook subscription, a live stream), and the
// decision is stored before it is published: a follower that publishes a
// batch again, or replays the log, gets the same answers, whatever the
// rules say since.
type EtaAnnouncer struct {
	rules RuleStore
	store EtaStore
}

var _ tracking.EtaPolicy = (*EtaAnnouncer)(nil)

// NewEtaAnnouncer returns the policy of the delay rules in rules, keeping
// its decisions in store.
func NewEtaAnnouncer(rules RuleStore, store EtaStore) *EtaAnnouncer {
	return &EtaAnnouncer{rules: rules, store: store}
}

// maxDecideAttempts bounds how often a decision is tried again when
// another follower decided the entity's change meanwhile.
const maxDecideAttempts = 10

// AnnounceEta implements tracking.EtaPolicy.
func (a *EtaAnnouncer) AnnounceEta(ctx context.Context, tenant, entityID string, position int64, previous, eta *time.Time) (bool, *time.Time, error) {
	delta, ok, err := a.delta(ctx, tenant)
	if err != nil || !ok {
		return true, previous, err
	}
	for range maxDecideAttempts {
		d, err := a.store.EtaDecisions(ctx, tenant, entityID, position)
		if err != nil {
			return false, nil, fmt.Errorf("alerts: ETA decisions: %w", err)
		}
		announced := previous
		if d.Last != nil {
			announced = d.Last.ETA
		}
		if position <= d.Decided {
			return d.Announced, announced, nil
		}
		announce := d.Last == nil || etaMoved(d.Last.ETA, eta, delta)
		ok, err := a.store.DecideEta(ctx, tenant, entityID, d.Decided, position, announce, eta)
		if err != nil {
			return false, nil, fmt.Errorf("alerts: decide an ETA change: %w", err)
		}
		if ok {
			return announce, announced, nil
		}
	}
	return false, nil, fmt.Errorf("alerts: the ETA change of %s at %d: decided concurrently %d times", entityID, position, maxDecideAttempts)
}

// delta returns the smallest ETADelta of a tenant's delay rules (ok false:
// it has none).
func (a *EtaAnnouncer) delta(ctx context.Context, tenant string) (delta time.Duration, found bool, err error) {
	rules, err := allRules(ctx, a.rules, tenant)
	for _, r := range rules {
		if r.Kind == KindDelay && (!found || r.ETADelta < delta) {
			delta, found = r.ETADelta, true
		}
	}
	return delta, found, err
}

// etaMoved reports whether an ETA moved by more than delta from the one
// announced last: set or withdrawn, or further away than delta.
func etaMoved(last, eta *time.Time, delta time.Duration) bool {
	if last == nil || eta == nil {
		return (last == nil) != (eta == nil)
	}
	d := eta.Sub(*last)
	return d > delta || d < -delta
}
