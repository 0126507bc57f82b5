package readmodel

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/subscription"
)

var _ subscription.Store = (*Store)(nil)

// definition is the JSON of a subscription's definition column.
type definition struct {
	URL      string                `json:"url"`
	Filter   subscription.Filter   `json:"filter"`
	MaxBatch int                   `json:"maxBatch"`
	Since    *time.Time            `json:"since,omitempty"`
	Secrets  []subscription.Secret `json:"secrets"`
	// EPCIS is set for EPCIS query subscriptions (absent from the
	// definitions of webhook subscriptions, and of those stored before).
	EPCIS *subscription.EPCISQuery `json:"epcis,omitempty"`
}

const subscriptionColumns = `tenant_id, id, created_at, generation, status, reason, definition, replay, cursor, position,
	failing_since, attempts, next_attempt_at, last_attempt_at, last_success_at, last_error, delivered`

// CreateSubscription stores a new subscription.
func (s *Store) CreateSubscription(ctx context.Context, sub subscription.Subscription) error {
	def, replay, replayID, err := encodeDefinition(sub)
	if err != nil {
		return err
	}
	p := sub.Progress
	_, err = s.engine.SQL().Exec(ctx, `INSERT INTO subscriptions (`+subscriptionColumns+`, replay_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sub.Tenant, sub.ID, sub.CreatedAt.UnixMicro(), sub.Generation, sub.Status, sub.Reason, def, replay,
		p.Cursor.String(), p.Position, micros(p.FailingSince), int64(p.Attempts), micros(p.NextAttemptAt),
		micros(p.LastAttemptAt), micros(p.LastSuccessAt), p.LastError, p.Delivered, replayID)
	if err != nil {
		return fmt.Errorf("%s: create subscription: %w", s.name, err)
	}
	return nil
}

func encodeDefinition(sub subscription.Subscription) (def string, replay any, replayID string, err error) {
	b, err := json.Marshal(definition{URL: sub.URL, Filter: sub.Filter, MaxBatch: sub.MaxBatch, Since: sub.Since, Secrets: sub.Secrets,
		EPCIS: sub.EPCIS})
	if err != nil {
		return "", nil, "", err
	}
	if sub.Replay != nil {
		r, err := json.Marshal(sub.Replay)
		if err != nil {
			return "", nil, "", err
		}
		replay, replayID = string(r), sub.Replay.ID
	}
	return string(b), replay, replayID, nil
}

// micros is a nullable time as unix microseconds.
func micros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// Subscription returns a tenant's subscription, or subscription.ErrNotFound.
func (s *Store) Subscription(ctx context.Context, tenant, id string) (subscription.Subscription, error) {
	subs, err := s.subscriptions(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return subscription.Subscription{}, err
	}
	if len(subs) == 0 {
		return subscription.Subscription{}, fmt.Errorf("%w: %q", subscription.ErrNotFound, id)
	}
	return subs[0], nil
}

// Subscriptions returns up to limit subscriptions of a tenant, by id, after
// `after`.
func (s *Store) Subscriptions(ctx context.Context, tenant, after string, limit int) ([]subscription.Subscription, error) {
	return s.subscriptions(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
		tenant, after, int64(limit))
}

// AllSubscriptions returns every tenant's subscriptions.
func (s *Store) AllSubscriptions(ctx context.Context) ([]subscription.Subscription, error) {
	return s.subscriptions(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions ORDER BY tenant_id, id`)
}

func (s *Store) subscriptions(ctx context.Context, query string, args ...any) ([]subscription.Subscription, error) {
	rows, err := s.engine.SQL().Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: subscriptions: %w", s.name, err)
	}
	defer rows.Close()
	var out []subscription.Subscription
	for rows.Next() {
		var (
			sub                                     subscription.Subscription
			created, attempts                       int64
			def, cursor                             string
			replay                                  sql.NullString
			failing, next, lastAttempt, lastSuccess sql.NullInt64
		)
		if err := rows.Scan(&sub.Tenant, &sub.ID, &created, &sub.Generation, &sub.Status, &sub.Reason, &def, &replay, &cursor,
			&sub.Position, &failing, &attempts, &next, &lastAttempt, &lastSuccess, &sub.LastError, &sub.Delivered); err != nil {
			return nil, fmt.Errorf("%s: subscriptions: %w", s.name, err)
		}
		var d definition
		if err := json.Unmarshal([]byte(def), &d); err != nil {
			return nil, fmt.Errorf("%s: subscription %s: %w", s.name, sub.ID, err)
		}
		if replay.Valid {
			sub.Replay = new(subscription.Replay)
			if err := json.Unmarshal([]byte(replay.String), sub.Replay); err != nil {
				return nil, fmt.Errorf("%s: subscription %s: replay: %w", s.name, sub.ID, err)
			}
		}
		if sub.Cursor, err = eventstore.ParseCursor(cursor); err != nil {
			return nil, fmt.Errorf("%s: subscription %s: %w", s.name, sub.ID, err)
		}
		sub.URL, sub.Filter, sub.MaxBatch, sub.Since, sub.Secrets, sub.EPCIS = d.URL, d.Filter, d.MaxBatch, d.Since, d.Secrets, d.EPCIS
		sub.CreatedAt = time.UnixMicro(created).UTC()
		sub.Attempts = int(attempts)
		sub.FailingSince, sub.NextAttemptAt = fromMicros(failing), fromMicros(next)
		sub.LastAttemptAt, sub.LastSuccessAt = fromMicros(lastAttempt), fromMicros(lastSuccess)
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: subscriptions: %w", s.name, err)
	}
	return out, nil
}

// UpdateDefinition stores a subscription's new definition if nobody else
// changed it since it was read.
func (s *Store) UpdateDefinition(ctx context.Context, sub subscription.Subscription, resetFailures bool) error {
	def, replay, replayID, err := encodeDefinition(sub)
	if err != nil {
		return err
	}
	reset := ""
	if resetFailures {
		reset = `, failing_since = NULL, attempts = 0, next_attempt_at = NULL`
	}
	n, err := s.engine.SQL().Exec(ctx, `UPDATE subscriptions SET generation = ?, status = ?, reason = ?, definition = ?,
		replay = ?, replay_id = ?`+reset+` WHERE tenant_id = ? AND id = ? AND generation = ?`,
		sub.Generation, sub.Status, sub.Reason, def, replay, replayID, sub.Tenant, sub.ID, sub.Generation-1)
	if err != nil {
		return fmt.Errorf("%s: update subscription: %w", s.name, err)
	}
	if n == 0 {
		if _, err := s.Subscription(ctx, sub.Tenant, sub.ID); err != nil {
			return err
		}
		return subscription.ErrConflict
	}
	return nil
}

// SaveProgress records a subscription's progress.
func (s *Store) SaveProgress(ctx context.Context, tenant, id string, p subscription.Progress) error {
	n, err := s.engine.SQL().Exec(ctx, `UPDATE subscriptions SET cursor = ?, position = ?, failing_since = ?, attempts = ?,
		next_attempt_at = ?, last_attempt_at = ?, last_success_at = ?, last_error = ?, delivered = ? WHERE tenant_id = ? AND id = ?`,
		p.Cursor.String(), p.Position, micros(p.FailingSince), int64(p.Attempts), micros(p.NextAttemptAt), micros(p.LastAttemptAt),
		micros(p.LastSuccessAt), p.LastError, p.Delivered, tenant, id)
	if err != nil {
		return fmt.Errorf("%s: subscription progress: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", subscription.ErrNotFound, id)
	}
	return nil
}

// SaveReplay records a replay's progress, or its end (r nil).
func (s *Store) SaveReplay(ctx context.Context, tenant, id, replayID string, r *subscription.Replay) error {
	var replay any
	newID := ""
	if r != nil {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		replay, newID = string(b), replayID
	}
	_, err := s.engine.SQL().Exec(ctx, `UPDATE subscriptions SET replay = ?, replay_id = ? WHERE tenant_id = ? AND id = ? AND replay_id = ?`,
		replay, newID, tenant, id, replayID)
	if err != nil {
		return fmt.Errorf("%s: subscription replay: %w", s.name, err)
	}
	return nil
}

// Suspend marks a subscription suspended unless its definition changed.
func (s *Store) Suspend(ctx context.Context, tenant, id string, generation int64, reason string) error {
	n, err := s.engine.SQL().Exec(ctx, `UPDATE subscriptions SET status = ?, reason = ?, generation = generation + 1
		WHERE tenant_id = ? AND id = ? AND generation = ?`, subscription.StatusSuspended, reason, tenant, id, generation)
	if err != nil {
		return fmt.Errorf("%s: suspend subscription: %w", s.name, err)
	}
	if n == 0 {
		return subscription.ErrConflict
	}
	return nil
}

// DeleteSubscription deletes a subscription and its delivery log.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string) error {
	db := s.engine.SQL()
	n, err := db.Exec(ctx, `DELETE FROM subscriptions WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("%s: delete subscription: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", subscription.ErrNotFound, id)
	}
	if _, err := db.Exec(ctx, `DELETE FROM subscription_deliveries WHERE tenant_id = ? AND subscription_id = ?`, tenant, id); err != nil {
		return fmt.Errorf("%s: delete subscription's deliveries: %w", s.name, err)
	}
	return nil
}

// LogDeliveries appends entries to the delivery logs, in statements of at
// most 100 rows.
func (s *Store) LogDeliveries(ctx context.Context, ds []subscription.Delivery) error {
	const perStatement = 100
	for len(ds) > 0 {
		n := min(len(ds), perStatement)
		q := make([]byte, 0, 64+n*40)
		q = append(q, `INSERT INTO subscription_deliveries (tenant_id, subscription_id, attempted_at, webhook_id, attempt, events,
			first_position, last_position, replay, status, latency_us, error) VALUES `...)
		args := make([]any, 0, n*12)
		for i, d := range ds[:n] {
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"...)
			replay := int64(0)
			if d.Replay {
				replay = 1
			}
			args = append(args, d.Tenant, d.SubscriptionID, d.AttemptedAt.UnixMicro(), d.WebhookID, int64(d.Attempt), int64(d.Events),
				d.FirstPosition, d.LastPosition, replay, int64(d.Status), d.Latency.Microseconds(), d.Error)
		}
		q = append(q, " ON CONFLICT DO NOTHING"...)
		if _, err := s.engine.SQL().Exec(ctx, string(q), args...); err != nil {
			return fmt.Errorf("%s: delivery log: %w", s.name, err)
		}
		ds = ds[n:]
	}
	return nil
}

// Deliveries returns up to limit entries of a subscription's delivery log,
// newest first, attempted before `before` (zero: the newest).
func (s *Store) Deliveries(ctx context.Context, tenant, id string, before time.Time, limit int) ([]subscription.Delivery, error) {
	at := int64(1<<63 - 1)
	if !before.IsZero() {
		at = before.UnixMicro()
	}
	rows, err := s.engine.SQL().Query(ctx, `SELECT attempted_at, webhook_id, attempt, events, first_position, last_position, replay,
		status, latency_us, error FROM subscription_deliveries WHERE tenant_id = ? AND subscription_id = ? AND attempted_at < ?
		ORDER BY attempted_at DESC, webhook_id DESC, attempt DESC LIMIT ?`, tenant, id, at, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("%s: delivery log: %w", s.name, err)
	}
	defer rows.Close()
	var out []subscription.Delivery
	for rows.Next() {
		var (
			d                                                   subscription.Delivery
			attempted, attempt, events, replay, status, latency int64
		)
		if err := rows.Scan(&attempted, &d.WebhookID, &attempt, &events, &d.FirstPosition, &d.LastPosition, &replay, &status,
			&latency, &d.Error); err != nil {
			return nil, fmt.Errorf("%s: delivery log: %w", s.name, err)
		}
		d.Tenant, d.SubscriptionID = tenant, id
		d.AttemptedAt = time.UnixMicro(attempted).UTC()
		d.Attempt, d.Events, d.Replay, d.Status = int(attempt), int(events), replay == 1, int(status)
		d.Latency = time.Duration(latency) * time.Microsecond
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: delivery log: %w", s.name, err)
	}
	return out, nil
}

// TrimDeliveries deletes delivery log entries attempted before `before`.
func (s *Store) TrimDeliveries(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.engine.SQL().Exec(ctx, `DELETE FROM subscription_deliveries WHERE attempted_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("%s: trim delivery log: %w", s.name, err)
	}
	return n, nil
}
