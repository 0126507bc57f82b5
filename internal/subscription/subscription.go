// Package subscription delivers the events of the store's global log to
// webhook endpoints that tenants subscribe: each subscription is a follower
// of the log with a checkpoint of its own, delivered at least once, in log
// order (so each entity's events in their order), signed by the Standard
// Webhooks convention, retried with back-off for days before it is
// suspended with a reason, with a log of its attempts and a replay of a
// range. The checkpoint moves only past events the endpoint acknowledged
// with a 2xx.
package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Statuses of a subscription.
const (
	StatusActive    = "active"
	StatusPaused    = "paused"
	StatusSuspended = "suspended"
)

// Errors of the subscriptions' store and API.
var (
	// ErrNotFound: no such subscription for the tenant.
	ErrNotFound = errors.New("subscription: not found")
	// ErrInvalid wraps every refusal of a definition (400).
	ErrInvalid = errors.New("subscription: invalid")
	// ErrConflict: the subscription changed under the request (retry).
	ErrConflict = errors.New("subscription: changed concurrently")
)

// Subscription is a tenant's subscription: its definition, which the API
// changes, and its progress, which the dispatcher keeps.
type Subscription struct {
	Tenant string
	ID     string
	URL    string
	Filter Filter
	// MaxBatch is the largest number of events one request carries
	// (1–1000). 1 (the default) makes every request one event, whose
	// webhook-id is the event's id.
	MaxBatch int
	// Since, when set, leaves out events recorded before it (a start "from
	// a time").
	Since *time.Time
	// Secrets sign the requests: the newest first; older ones until their
	// Expires (a rotation's grace period). Kept sealed at rest.
	Secrets   []Secret
	Status    string
	Reason    string // why it is suspended
	CreatedAt time.Time
	// Generation counts the definition's changes (pause, resume, rotate,
	// replay): the dispatcher reloads a subscription whose generation moved.
	Generation int64
	// Replay, when set, is a range of the log being delivered again.
	Replay *Replay
	// EPCIS, when set, makes this an EPCIS query subscription (epcis.go):
	// it delivers the EPCIS events a named query selects as
	// EPCISQueryDocuments, as they are captured or on a schedule.
	EPCIS *EPCISQuery

	Progress
}

// Secret is one signing secret: the raw key bytes (the "whsec_" form is
// its base64) and, for a rotated one, when it stops signing. Stores keep
// only Sealed, the key encrypted by a Sealer.
type Secret struct {
	Key     []byte     `json:"-"`
	Sealed  string     `json:"sealed"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Replay is a range of the log delivered again: the matching events after
// the cursor After, up to and including the cursor Until (nil: no bound),
// recorded at or after Since and before UntilTime (nil: no bound), and
// never past the subscription's own checkpoint.
type Replay struct {
	// ID tells one replay from the next.
	ID        string             `json:"id"`
	After     eventstore.Cursor  `json:"after"`
	Until     *eventstore.Cursor `json:"until,omitempty"`
	Since     *time.Time         `json:"since,omitempty"`
	UntilTime *time.Time         `json:"untilTime,omitempty"`
	// Delivered counts the events it delivered so far.
	Delivered int64 `json:"delivered"`
}

// Progress is what the dispatcher records of a subscription.
type Progress struct {
	// Cursor is the checkpoint: every matching event up to it was
	// acknowledged.
	Cursor eventstore.Cursor
	// Position is the global position of the last acknowledged event.
	Position int64
	// FailingSince is when the current run of failed attempts began (nil
	// while deliveries succeed).
	FailingSince  *time.Time
	Attempts      int // failed attempts in the current run
	NextAttemptAt *time.Time
	LastAttemptAt *time.Time
	LastSuccessAt *time.Time
	LastError     string
	Delivered     int64 // events acknowledged, in all
}

// Delivery is one attempt's entry in a subscription's delivery log.
type Delivery struct {
	Tenant         string
	SubscriptionID string
	WebhookID      string
	AttemptedAt    time.Time
	Attempt        int // 1 for the first attempt of a batch
	Events         int
	FirstPosition  int64
	LastPosition   int64
	Replay         bool
	Status         int // HTTP status; 0 when no answer came
	Latency        time.Duration
	Error          string
}

// Store keeps subscriptions and their delivery logs (the read models'
// database). A subscription's definition (URL, filter, secrets, status,
// replay) is the API's to change, each change moving its generation; its
// progress is the dispatcher's.
type Store interface {
	// CreateSubscription stores a new subscription.
	CreateSubscription(ctx context.Context, s Subscription) error
	// Subscription returns a tenant's subscription, or ErrNotFound.
	Subscription(ctx context.Context, tenant, id string) (Subscription, error)
	// Subscriptions returns up to limit subscriptions of a tenant, by id,
	// after `after`.
	Subscriptions(ctx context.Context, tenant, after string, limit int) ([]Subscription, error)
	// AllSubscriptions returns every tenant's subscriptions (the
	// dispatcher's view).
	AllSubscriptions(ctx context.Context) ([]Subscription, error)
	// UpdateDefinition stores s's definition (URL, filter, batch, since,
	// secrets, status, reason, replay) and generation if the stored
	// generation is s.Generation-1 (ErrConflict otherwise, ErrNotFound when
	// it is gone); resetFailures also clears the run of failed attempts (a
	// resume).
	UpdateDefinition(ctx context.Context, s Subscription, resetFailures bool) error
	// SaveProgress records a subscription's progress.
	SaveProgress(ctx context.Context, tenant, id string, p Progress) error
	// SaveReplay records a replay's progress (r nil: it ended) if the
	// subscription's replay is still the one named replayID.
	SaveReplay(ctx context.Context, tenant, id, replayID string, r *Replay) error
	// Suspend marks the subscription suspended with a reason (moving its
	// generation) unless its generation moved past generation.
	Suspend(ctx context.Context, tenant, id string, generation int64, reason string) error
	// DeleteSubscription deletes a subscription and its delivery log.
	DeleteSubscription(ctx context.Context, tenant, id string) error
	// LogDeliveries appends entries to the delivery logs.
	LogDeliveries(ctx context.Context, ds []Delivery) error
	// Deliveries returns up to limit entries of a subscription's delivery
	// log, newest first, attempted before `before` (zero: the newest).
	Deliveries(ctx context.Context, tenant, id string, before time.Time, limit int) ([]Delivery, error)
	// TrimDeliveries deletes delivery log entries attempted before `before`.
	TrimDeliveries(ctx context.Context, before time.Time) (int64, error)
}
