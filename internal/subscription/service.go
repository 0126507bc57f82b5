package subscription

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/subscription/destination"
)

// Destinations decides which URLs a subscription may deliver to (the
// destination package's Policy).
type Destinations interface {
	Check(ctx context.Context, raw string) (*url.URL, error)
}

// Positions finds log cursors for starts and replays (the event store).
type Positions interface {
	Head(ctx context.Context) (eventstore.Cursor, error)
	CursorAt(ctx context.Context, tenant string, position int64) (eventstore.Cursor, error)
	CursorBefore(ctx context.Context, t time.Time) (eventstore.Cursor, error)
	Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error)
}

// Service is the subscriptions' API: it checks and stores definitions, and
// tells the dispatcher of changes.
type Service struct {
	store  Store
	sealer *Sealer
	dests  Destinations
	log    Positions
	clock  clockwork.Clock
	// Grace is how long a rotated secret still signs (default 24 h).
	grace  time.Duration
	notify func()
}

// ServiceOptions tune a Service.
type ServiceOptions struct {
	Clock clockwork.Clock
	// SecretGrace is how long a rotated secret still signs (default 24 h).
	SecretGrace time.Duration
	// Notify is called after every change (the dispatcher's Notify).
	Notify func()
}

// NewService returns the subscriptions' API over store.
func NewService(store Store, sealer *Sealer, dests Destinations, log Positions, opts ServiceOptions) *Service {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.SecretGrace <= 0 {
		opts.SecretGrace = 24 * time.Hour
	}
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	return &Service{store: store, sealer: sealer, dests: dests, log: log, clock: opts.Clock, grace: opts.SecretGrace, notify: opts.Notify}
}

// Start says where a new subscription starts: "now" (the default: events
// stored from now on), "beginning" (the whole log), a global position (the
// events after the event at that position), or an RFC 3339 time (the events
// recorded from then on).
type Start string

// Definition is what a client sends to create a subscription.
type Definition struct {
	URL    string
	Filter Filter
	// StatusChanges and Exceptions are shorthands of integration kinds.
	StatusChanges, Exceptions bool
	Start                     Start
	// Secret is the client's own signing secret ("whsec_…"); empty: one is
	// made.
	Secret   string
	MaxBatch int
}

// MaxBatchLimit bounds a subscription's MaxBatch.
const MaxBatchLimit = 1000

// Create checks and stores a new subscription. It returns it with its
// secret in the clear (shown to the client once).
func (s *Service) Create(ctx context.Context, tenant string, d Definition) (Subscription, error) {
	if err := s.checkDest(ctx, "url", d.URL); err != nil {
		return Subscription{}, err
	}
	f, err := d.Filter.Normalize(d.StatusChanges, d.Exceptions)
	if err != nil {
		return Subscription{}, err
	}
	if d.MaxBatch == 0 {
		d.MaxBatch = 1
	}
	if d.MaxBatch < 1 || d.MaxBatch > MaxBatchLimit {
		return Subscription{}, fmt.Errorf("%w: maxBatch: 1 to %d", ErrInvalid, MaxBatchLimit)
	}
	secret := NewSecret()
	if d.Secret != "" {
		if secret, err = ParseSecret(d.Secret); err != nil {
			return Subscription{}, err
		}
	}
	now := s.clock.Now()
	sub := Subscription{Tenant: tenant, ID: uuid.Must(uuid.NewV7()).String(), URL: d.URL, Filter: f, MaxBatch: d.MaxBatch,
		Secrets: []Secret{secret}, Status: StatusActive, CreatedAt: now, Generation: 1}
	if sub.Cursor, sub.Position, sub.Since, err = s.start(ctx, tenant, d.Start); err != nil {
		return Subscription{}, err
	}
	return s.create(ctx, sub)
}

// create stores a new subscription, its secrets sealed, and returns it
// with them in the clear.
func (s *Service) create(ctx context.Context, sub Subscription) (Subscription, error) {
	stored := sub
	stored.Secrets = s.seal(sub.Secrets)
	if err := s.store.CreateSubscription(ctx, stored); err != nil {
		return Subscription{}, err
	}
	s.notify()
	return sub, nil
}

// checkDest checks a destination: a refusal is the client's fault (400);
// a resolver that cannot answer (a DNS outage) is not, and is unavailable
// (503) rather than invalid.
func (s *Service) checkDest(ctx context.Context, field, raw string) error {
	_, err := s.dests.Check(ctx, raw)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, destination.ErrRefused):
		return fmt.Errorf("%w: %s: %w", ErrInvalid, field, err)
	default:
		return fmt.Errorf("%w: %s: %w", eventstore.ErrUnavailable, field, err)
	}
}

// start resolves a Start.
func (s *Service) start(ctx context.Context, tenant string, st Start) (eventstore.Cursor, int64, *time.Time, error) {
	switch v := strings.TrimSpace(string(st)); {
	case v == "" || v == "now":
		c, err := s.log.Head(ctx)
		return c, 0, nil, err
	case v == "beginning":
		return eventstore.Cursor{}, 0, nil, nil
	default:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			c, err := s.cursorAt(ctx, tenant, "start", n)
			return c, n, nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return eventstore.Cursor{}, 0, nil, fmt.Errorf(`%w: start: "now", "beginning", a global position or an RFC 3339 time`, ErrInvalid)
		}
		c, err := s.log.CursorBefore(ctx, t)
		return c, 0, &t, err
	}
}

func (s *Service) cursorAt(ctx context.Context, tenant, field string, position int64) (eventstore.Cursor, error) {
	if position < 1 {
		return eventstore.Cursor{}, fmt.Errorf("%w: %s: a global position is 1 or more", ErrInvalid, field)
	}
	c, err := s.log.CursorAt(ctx, tenant, position)
	if errors.Is(err, eventstore.ErrNotFound) {
		return c, fmt.Errorf("%w: %s: no event of yours is stored at position %d", ErrInvalid, field, position)
	}
	return c, err
}

func (s *Service) seal(secrets []Secret) []Secret {
	out := make([]Secret, len(secrets))
	for i, sc := range secrets {
		out[i] = Secret{Sealed: s.sealer.Seal(sc.Key), Expires: sc.Expires}
	}
	return out
}

// Get returns a tenant's subscription (secrets sealed).
func (s *Service) Get(ctx context.Context, tenant, id string) (Subscription, error) {
	return s.store.Subscription(ctx, tenant, id)
}

// List returns a page of a tenant's subscriptions.
func (s *Service) List(ctx context.Context, tenant, after string, limit int) ([]Subscription, error) {
	return s.store.Subscriptions(ctx, tenant, after, limit)
}

// Delete deletes a subscription; deliveries stop.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	if err := s.store.DeleteSubscription(ctx, tenant, id); err != nil {
		return err
	}
	s.notify()
	return nil
}

// change applies fn to the stored subscription and stores it, retrying
// when it changed concurrently.
func (s *Service) change(ctx context.Context, tenant, id string, resetFailures bool, fn func(*Subscription) error) (Subscription, error) {
	for {
		sub, err := s.store.Subscription(ctx, tenant, id)
		if err != nil {
			return Subscription{}, err
		}
		if err := fn(&sub); err != nil {
			return Subscription{}, err
		}
		sub.Generation++
		err = s.store.UpdateDefinition(ctx, sub, resetFailures)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return Subscription{}, err
		}
		s.notify()
		return sub, nil
	}
}

// Pause stops deliveries until Resume; the checkpoint stays.
func (s *Service) Pause(ctx context.Context, tenant, id string) (Subscription, error) {
	return s.change(ctx, tenant, id, false, func(sub *Subscription) error {
		sub.Status, sub.Reason = StatusPaused, ""
		return nil
	})
}

// Resume resumes a paused or suspended subscription from its checkpoint,
// with a new run of retries.
func (s *Service) Resume(ctx context.Context, tenant, id string) (Subscription, error) {
	return s.change(ctx, tenant, id, true, func(sub *Subscription) error {
		sub.Status, sub.Reason = StatusActive, ""
		sub.FailingSince, sub.NextAttemptAt, sub.Attempts = nil, nil, 0
		return nil
	})
}

// maxSecrets bounds the secrets that sign at once.
const maxSecrets = 3

// Rotate makes a new signing secret (the client's own when secret is not
// empty); the previous ones still sign for the grace period. It returns the
// subscription and the new secret in the clear.
func (s *Service) Rotate(ctx context.Context, tenant, id, secret string) (Subscription, Secret, error) {
	next := NewSecret()
	if secret != "" {
		var err error
		if next, err = ParseSecret(secret); err != nil {
			return Subscription{}, Secret{}, err
		}
	}
	sub, err := s.change(ctx, tenant, id, false, func(sub *Subscription) error {
		now := s.clock.Now()
		end := now.Add(s.grace)
		kept := []Secret{{Sealed: s.sealer.Seal(next.Key)}}
		for _, old := range sub.Secrets {
			if old.Expires != nil && !now.Before(*old.Expires) {
				continue // its grace is over
			}
			if old.Expires == nil || old.Expires.After(end) {
				old.Expires = &end
			}
			if len(kept) < maxSecrets {
				kept = append(kept, old)
			}
		}
		sub.Secrets = kept
		return nil
	})
	return sub, next, err
}

// ReplayRange is a range of the log to deliver again: from a global
// position (inclusive) or a time, to a global position (inclusive) or a
// time (exclusive), at most up to the subscription's checkpoint.
type ReplayRange struct {
	FromPosition, ToPosition int64
	From, To                 *time.Time
}

// Replay delivers the subscription's matching events of a range again,
// before it goes on with new ones. A replay replaces one in progress.
func (s *Service) Replay(ctx context.Context, tenant, id string, rg ReplayRange) (Subscription, error) {
	if (rg.FromPosition != 0) == (rg.From != nil) {
		return Subscription{}, fmt.Errorf("%w: replay: give fromPosition or from", ErrInvalid)
	}
	if rg.ToPosition != 0 && rg.To != nil {
		return Subscription{}, fmt.Errorf("%w: replay: give toPosition or to, not both", ErrInvalid)
	}
	r := Replay{ID: uuid.Must(uuid.NewV7()).String(), Since: rg.From, UntilTime: rg.To}
	if rg.FromPosition != 0 {
		c, err := s.cursorAt(ctx, tenant, "fromPosition", rg.FromPosition)
		if err != nil {
			return Subscription{}, err
		}
		// Just before that event: it is delivered again too.
		r.After = eventstore.Cursor{TxID: c.TxID, Position: c.Position - 1}
	} else {
		c, err := s.log.CursorBefore(ctx, *rg.From)
		if err != nil {
			return Subscription{}, err
		}
		r.After = c
	}
	if rg.ToPosition != 0 {
		c, err := s.cursorAt(ctx, tenant, "toPosition", rg.ToPosition)
		if err != nil {
			return Subscription{}, err
		}
		if c.Less(r.After) {
			return Subscription{}, fmt.Errorf("%w: replay: toPosition comes before fromPosition in the log", ErrInvalid)
		}
		r.Until = &c
	}
	if rg.From != nil && rg.To != nil && !rg.From.Before(*rg.To) {
		return Subscription{}, fmt.Errorf("%w: replay: from must be before to", ErrInvalid)
	}
	return s.change(ctx, tenant, id, false, func(sub *Subscription) error {
		sub.Replay = &r
		return nil
	})
}

// Deliveries returns a page of a subscription's delivery log, newest
// first.
func (s *Service) Deliveries(ctx context.Context, tenant, id string, before time.Time, limit int) ([]Delivery, error) {
	if _, err := s.store.Subscription(ctx, tenant, id); err != nil {
		return nil, err
	}
	return s.store.Deliveries(ctx, tenant, id, before, limit)
}

// Lag returns how far a subscription is behind the log: the events after
// its checkpoint, and the age of the oldest of them.
func (s *Service) Lag(ctx context.Context, sub Subscription) (int64, time.Duration, error) {
	b, err := s.log.Backlog(ctx, sub.Cursor)
	if err != nil || b.Events == 0 || b.Oldest.IsZero() {
		return b.Events, 0, err
	}
	return b.Events, max(s.clock.Since(b.Oldest), 0), nil
}
