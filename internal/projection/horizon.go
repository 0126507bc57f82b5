package projection

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// HorizonSource finds the transaction holding the global log's read horizon
// back (the PostgreSQL store; SQLite has no such horizon).
type HorizonSource interface {
	// HorizonHolder returns the holder; ok is false when nothing holds the
	// horizon back.
	HorizonHolder(ctx context.Context) (h eventstore.HorizonHolder, ok bool, err error)
}

// HorizonOptions tune a HorizonMonitor.
type HorizonOptions struct {
	// Threshold is the age from which a holder is warned about and
	// reported (default 30s).
	Threshold time.Duration
	// Interval is the time between looks (default a quarter of Threshold,
	// between 1s and 15s).
	Interval time.Duration
	// WarnEvery spaces the warnings about one holder (default 1 minute).
	WarnEvery time.Duration
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// HorizonStatus is a HorizonMonitor's last look.
type HorizonStatus struct {
	// Held says a transaction holds the horizon; Holder is that transaction.
	Held   bool
	Holder eventstore.HorizonHolder
	// Age is how long it has held the horizon: since it started when the
	// server shows that, else at least since this monitor first saw it.
	Age time.Duration
	// Stalled says Age has reached the threshold.
	Stalled bool
	// Checked is when the look was taken; Err is why it failed.
	Checked time.Time
	Err     error
}

// HorizonMonitor watches what holds the global log's read horizon back. On
// PostgreSQL the log is read below the oldest transaction that has an id
// anywhere on the server (see postgres.Store.ReadAll), so one transaction
// left open stalls every follower of the log without an error: the monitor
// makes that visible as a metric (Status), a rate-limited warning naming the
// transaction, and a readiness detail (Check).
type HorizonMonitor struct {
	src  HorizonSource
	opts HorizonOptions
	log  *slog.Logger

	mu        sync.Mutex
	status    HorizonStatus
	seen      string // the holder's transaction id, when first seen
	firstSeen time.Time
	warned    time.Time
}

// NewHorizonMonitor returns a monitor of src's horizon; Run makes it look.
func NewHorizonMonitor(src HorizonSource, opts HorizonOptions) *HorizonMonitor {
	if opts.Threshold <= 0 {
		opts.Threshold = 30 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = min(max(opts.Threshold/4, time.Second), 15*time.Second)
	}
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HorizonMonitor{src: src, opts: opts, log: log}
}

// Run looks every Interval until ctx is done, then returns nil.
func (m *HorizonMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		m.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll takes one look, logs what it found, and returns it.
func (m *HorizonMonitor) Poll(ctx context.Context) HorizonStatus {
	h, ok, err := m.src.HorizonHolder(ctx)
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Debug("read horizon: look failed", "error", err)
		}
		m.status = HorizonStatus{Checked: now, Err: err}
		return m.status
	}
	if !ok || h.XID != m.seen {
		if !m.warned.IsZero() {
			m.log.Info("read horizon released: the followers of the event log move again",
				"xid", m.seen, "held", now.Sub(m.firstSeen).Round(time.Second).String())
		}
		m.seen, m.firstSeen, m.warned = "", time.Time{}, time.Time{}
	}
	if !ok {
		m.status = HorizonStatus{Checked: now}
		return m.status
	}
	if m.seen == "" {
		m.seen, m.firstSeen = h.XID, now
	}
	age := now.Sub(m.firstSeen)
	if !h.Started.IsZero() {
		age = max(age, now.Sub(h.Started))
	}
	m.status = HorizonStatus{Held: true, Holder: h, Age: age, Stalled: age >= m.opts.Threshold, Checked: now}
	if m.status.Stalled && now.Sub(m.warned) >= m.opts.WarnEvery {
		m.warned = now
		attrs := []any{"pid", h.PID, "application_name", h.ApplicationName, "user", h.User,
			"state", h.State, "backend_type", h.BackendType, "xid", h.XID,
			"age", age.Round(time.Second).String(), "age_seconds", int64(age.Seconds()),
			"waiting_events", h.Waiting, "threshold", m.opts.Threshold.String()}
		if h.PreparedID != "" {
			attrs = append(attrs, "prepared_transaction", h.PreparedID)
		}
		m.log.Warn("a long transaction holds the event log's read horizon back: projections, the relay and "+
			"subscriptions see no event committed after it took its id until it ends (end it, e.g. pg_terminate_backend(pid), "+
			"or bound it with idle_in_transaction_session_timeout / transaction_timeout)", attrs...)
	}
	return m.status
}

// Status returns the last look.
func (m *HorizonMonitor) Status() HorizonStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Check is a readiness check: it fails with a *HorizonHeldError while the
// last look found the horizon held back longer than the threshold.
func (m *HorizonMonitor) Check(ctx context.Context) error {
	if st := m.Status(); st.Stalled {
		return &HorizonHeldError{Status: st}
	}
	return nil
}

// HorizonHeldError reports a read horizon held back past the threshold.
type HorizonHeldError struct{ Status HorizonStatus }

func (e *HorizonHeldError) Error() string { return "read horizon held back: " + e.HealthDetail() }

// HealthDetail says, for a health report, which transaction holds the
// followers back and for how long (never its query text).
func (e *HorizonHeldError) HealthDetail() string {
	h := e.Status.Holder
	var b strings.Builder
	fmt.Fprintf(&b, "followers of the event log (projections, relay, subscriptions) held back for %s by ",
		e.Status.Age.Round(time.Second))
	if h.PreparedID != "" {
		fmt.Fprintf(&b, "prepared transaction %q", h.PreparedID)
	} else {
		fmt.Fprintf(&b, "the transaction of pid %d (application_name %q, state %q)", h.PID, h.ApplicationName, h.State)
	}
	fmt.Fprintf(&b, ", xid %s; %d committed events waiting", h.XID, h.Waiting)
	return b.String()
}
