package subscription

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// LeaderName is the lock the dispatcher holds while it delivers: one
// process of a deployment delivers every subscription.
const LeaderName = "subscriptions"

// Changes derives the state changes (integration events) that events of
// the log cause, for the filters that ask for them: tracking.Deriver. Each
// worker that needs one has its own (it is not safe for concurrent use).
type Changes interface {
	// DeriveBatch returns, per event, the integration events it causes (nil
	// for events that are not tracking events), staging the states it
	// folded.
	DeriveBatch(ctx context.Context, events []eventstore.Recorded) ([][]tracking.IntegrationEvent, error)
	// Commit keeps the staged states; Discard drops them.
	Commit()
	Discard()
}

// Observer is told how deliveries go (the service's metrics).
type Observer interface {
	// Attempted is told of every attempt.
	Attempted(d Delivery)
	// Lag is told how far behind the log a subscription is: events after
	// its checkpoint, and the age of the oldest one not delivered.
	Lag(tenant, id string, events int64, seconds float64)
	// Failing is told when a subscription's run of failed attempts starts
	// (true) and ends (false).
	Failing(tenant, id string, failing bool)
	// Forget is told when a subscription stops being delivered here.
	Forget(tenant, id string)
}

// Options tune a Dispatcher.
type Options struct {
	// Clock tells the time and waits (a fake one in tests).
	Clock clockwork.Clock
	// Client sends the requests: the destination policy's client, which
	// refuses forbidden addresses when it connects.
	Client *http.Client
	// RequestTimeout bounds one request (default 10 s).
	RequestTimeout time.Duration
	// RetryFor is how long a batch is retried before the subscription is
	// suspended (default 72 h).
	RetryFor time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff with jitter (defaults 5 s and 1 h).
	MinBackoff, MaxBackoff time.Duration
	// Refresh is how often the subscriptions are reloaded, for changes made
	// by other processes (default 2 s).
	Refresh time.Duration
	// Interval is the polling fallback when no commit signal arrives
	// (default 5 s).
	Interval time.Duration
	// ReadBatch is the number of log events a worker reads at once and
	// keeps until it has delivered or passed them (default 500).
	ReadBatch int
	// SaveEvery spaces the saves of a checkpoint while deliveries succeed
	// (default 250 ms); a crash re-delivers at most that much.
	SaveEvery time.Duration
	// DeliveryLogFor is how long the delivery logs keep an attempt
	// (default 7 days).
	DeliveryLogFor time.Duration
	UserAgent      string
	// Changes makes a worker's deriver of state changes, for filters with
	// integration kinds (nil: such filters match nothing).
	Changes func() Changes
	// EPCIS matches the events of EPCIS query subscriptions (nil: they
	// deliver nothing and log why).
	EPCIS    EPCISIndex
	Observer Observer
	Logger   *slog.Logger
}

// Dispatcher delivers every subscription while this process leads: one
// worker per active subscription, each following the log from its own
// checkpoint, so that a slow or failing endpoint delays only its own.
type Dispatcher struct {
	store  Store
	feed   projection.Feed
	leader projection.Leader
	sealer *Sealer
	opts   Options
	log    *slog.Logger
	kick   chan struct{}
	logged chan Delivery
}

// NewDispatcher returns a dispatcher of the subscriptions in store, read
// from feed (the store's log, or a Tail of it).
func NewDispatcher(store Store, sealer *Sealer, feed projection.Feed, leader projection.Leader, opts Options) *Dispatcher {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.RequestTimeout, 10*time.Second)
	def(&opts.RetryFor, 72*time.Hour)
	def(&opts.MinBackoff, 5*time.Second)
	def(&opts.MaxBackoff, time.Hour)
	def(&opts.Refresh, 2*time.Second)
	def(&opts.Interval, 5*time.Second)
	def(&opts.SaveEvery, 250*time.Millisecond)
	def(&opts.DeliveryLogFor, 7*24*time.Hour)
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 500
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "tracktrace-webhooks"
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{store: store, sealer: sealer, feed: feed, leader: leader, opts: opts,
		log: log.With("component", "subscriptions"), kick: make(chan struct{}, 1), logged: make(chan Delivery, 4096)}
}

type nopObserver struct{}

func (nopObserver) Attempted(Delivery)                 {}
func (nopObserver) Lag(string, string, int64, float64) {}
func (nopObserver) Failing(string, string, bool)       {}
func (nopObserver) Forget(string, string)              {}

// Notify tells the dispatcher that subscriptions changed (it reloads them
// now rather than at its next refresh).
func (d *Dispatcher) Notify() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run competes for leadership and delivers while leading, until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		lost, release, ok, err := d.leader.TryLead(ctx, LeaderName)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("leadership unavailable", "error", err)
		}
		if !ok {
			d.sleep(ctx, d.opts.Interval)
			continue
		}
		d.log.Info("delivering subscriptions")
		d.lead(ctx, lost)
		release()
	}
	return nil
}

func (d *Dispatcher) sleep(ctx context.Context, t time.Duration) {
	select {
	case <-ctx.Done():
	case <-d.opts.Clock.After(t):
	}
}

type subKey struct{ tenant, id string }

// lead runs the workers until ctx ends or leadership is lost.
func (d *Dispatcher) lead(ctx context.Context, lost <-chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	logDone := make(chan struct{})
	go func() { defer close(logDone); d.writeLog(ctx) }()
	workers := map[subKey]*worker{}
	defer func() {
		for k, w := range workers {
			w.stop()
			d.opts.Observer.Forget(k.tenant, k.id)
		}
		wg.Wait()
		<-logDone
	}()
	for {
		subs, err := d.store.AllSubscriptions(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("cannot load subscriptions", "error", err)
		}
		if err == nil {
			seen := make(map[subKey]bool, len(subs))
			for _, s := range subs {
				k := subKey{s.Tenant, s.ID}
				seen[k] = true
				if w, ok := workers[k]; ok {
					w.offer(s)
					continue
				}
				if err := d.open(&s); err != nil {
					d.log.Error("subscription skipped", "tenant", s.Tenant, "subscription", s.ID, "error", err)
					continue
				}
				w := newWorker(d, s)
				workers[k] = w
				w.start(ctx, &wg)
			}
			for k, w := range workers {
				if !seen[k] {
					w.stop()
					delete(workers, k)
					d.opts.Observer.Forget(k.tenant, k.id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-d.opts.Clock.After(d.opts.Refresh):
		}
	}
}

// open decrypts a subscription's secrets.
func (d *Dispatcher) open(s *Subscription) error {
	for i := range s.Secrets {
		if s.Secrets[i].Key != nil {
			continue
		}
		k, err := d.sealer.Open(s.Secrets[i].Sealed)
		if err != nil {
			return err
		}
		s.Secrets[i].Key = k
	}
	return nil
}

// writeLog writes the delivery log in batches, and trims it hourly.
func (d *Dispatcher) writeLog(ctx context.Context) {
	var pending []Delivery
	flush := func() {
		if len(pending) == 0 {
			return
		}
		// A shutdown still writes what it has.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.store.LogDeliveries(wctx, pending); err != nil {
			d.log.Warn("delivery log not written", "entries", len(pending), "error", err)
		}
		pending = pending[:0]
	}
	trim := time.NewTicker(time.Hour)
	defer trim.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-d.logged:
			pending = append(pending, e)
			if len(pending) >= 500 {
				flush()
			}
		case <-tick.C:
			flush()
		case <-trim.C:
			if _, err := d.store.TrimDeliveries(ctx, d.opts.Clock.Now().Add(-d.opts.DeliveryLogFor)); err != nil && ctx.Err() == nil {
				d.log.Warn("delivery log not trimmed", "error", err)
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-d.logged:
					pending = append(pending, e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// record logs an attempt.
func (d *Dispatcher) record(e Delivery) {
	d.opts.Observer.Attempted(e)
	select {
	case d.logged <- e:
	default:
		d.log.Warn("delivery log full; an attempt is not logged", "tenant", e.Tenant, "subscription", e.SubscriptionID)
	}
}
