package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// webhookOptions are the flags of the webhook scenario.
type webhookOptions struct {
	subscriptions int
	maxBatch      int
	slowReceivers int
	slowDelay     time.Duration
	drain         time.Duration
}

func (w *webhookOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&w.subscriptions, "subscriptions", 1, "webhook: subscriptions, each following its own share of the entities")
	fs.IntVar(&w.maxBatch, "max-batch", 1, "webhook: events per delivery request (the subscriptions' maxBatch, 1–1000)")
	fs.IntVar(&w.slowReceivers, "slow-receivers", 0, "webhook: subscriptions whose receiver answers after --slow-delay")
	fs.DurationVar(&w.slowDelay, "slow-delay", 5*time.Second, "webhook: how long a slow receiver takes to answer")
	fs.DurationVar(&w.drain, "drain", 30*time.Second, "webhook: how long to wait after the run for the deliveries to drain")
}

// check validates the flags; entities is --entities, which each
// subscription needs a share of.
func (w *webhookOptions) check(entities int) error {
	switch {
	case w.subscriptions < 1:
		return &usageError{"--subscriptions must be positive"}
	case w.maxBatch < 1 || w.maxBatch > 1000:
		return &usageError{"--max-batch must be 1 to 1000"}
	case w.slowReceivers < 0 || w.slowReceivers > w.subscriptions:
		return &usageError{"--slow-receivers must be 0 to --subscriptions"}
	case w.slowDelay < 0 || w.drain <= 0:
		return &usageError{"--slow-delay must not be negative, --drain must be positive"}
	case entities < w.subscriptions:
		return &usageError{"--entities must be at least --subscriptions (each subscription follows its own entities)"}
	}
	return nil
}

// webhookSummary is what the webhook scenario's receiver saw. Events are
// counted once each, whatever the number of their deliveries; the delays
// are from an event's recordedAt (the server's clock) to its first arrival
// (this machine's clock).
type webhookSummary struct {
	Subscriptions int    `json:"subscriptions"`
	SlowReceivers int    `json:"slowReceivers"`
	SlowAnswer    string `json:"slowAnswer,omitempty"`
	MaxBatch      int    `json:"maxBatch"`
	// Appended are the events whose append was answered 2xx.
	Appended  int64 `json:"appended"`
	Delivered int64 `json:"delivered"`
	// DeliveredPerS is Delivered over the time from the start of the run
	// to the last first arrival.
	DeliveredPerS float64 `json:"deliveredPerSecond"`
	// Requests are the delivery requests received.
	Requests int64 `json:"requests"`
	// Duplicates are arrivals of events that had arrived before.
	Duplicates int64 `json:"duplicates"`
	// Undelivered are appended events of the fast receivers that had not
	// arrived when the wait after the run (--drain) ended; SlowUndelivered
	// those of the slow ones (a backlog that grows while a slow receiver
	// cannot keep up).
	Undelivered     int64 `json:"undelivered"`
	SlowUndelivered int64 `json:"slowUndelivered"`
	// Unconfirmed are events that arrived though their append was not
	// answered 2xx (cut off by the end of the run, or failed after
	// storing); Misrouted arrived at a subscription whose filter does not
	// select them.
	Unconfirmed int64 `json:"unconfirmed"`
	Misrouted   int64 `json:"misrouted"`
	// SignaturesChecked are the requests whose signature was verified with
	// the Standard Webhooks library (one in signatureSample); BadSignatures
	// failed. A bad signature is still answered 204, so as not to bring
	// retries into the figures.
	SignaturesChecked int64 `json:"signaturesChecked"`
	BadSignatures     int64 `json:"badSignatures"`
	// DrainSeconds is how long the wait after the run took.
	DrainSeconds float64 `json:"drainSeconds"`
	// Delay and SlowDelay are the stored → delivered delays of the fast
	// and of the slow receivers' events (SlowDelay only with slow ones).
	Delay     latencySummary  `json:"storedToDeliveredMs"`
	SlowDelay *latencySummary `json:"slowStoredToDeliveredMs,omitempty"`
}

// signatureSample is one in how many delivery requests have their
// signature verified.
const signatureSample = 10

// hookSink is the webhook scenario's receiver: one HTTP server on
// 127.0.0.1 where subscription k's deliveries arrive at /hook/k. The
// entities of subscription k are named under its own prefix (with the run's
// tag, so that runs against one server do not mix), and its filter selects
// them; subscriptions 0 to slow-1 are the slow ones.
type hookSink struct {
	o      webhookOptions
	runTag string
	ln     net.Listener
	srv    *http.Server
	// ids and verifiers are the subscriptions' ids and their secrets'
	// verifiers, set before the server serves.
	ids       []string
	verifiers []*standardwebhooks.Webhook

	requests, checked, badSigs atomic.Int64

	mu                       sync.Mutex
	began, last              time.Time
	events                   map[uuid.UUID]*hookEvent
	fast, slow               []time.Duration
	delivered, appendedN     int64
	duplicates, misrouted    int64
	pendingFast, pendingSlow int64
}

// hookEvent is what the sink knows of one event.
type hookEvent struct {
	sub      int // its entity's subscription, once appended
	appended bool
	arrivals int
}

func newHookSink(o webhookOptions, runTag string) (*hookSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadtest: the webhook receiver: %w", err)
	}
	h := &hookSink{o: o, runTag: runTag, ln: ln, ids: make([]string, o.subscriptions),
		verifiers: make([]*standardwebhooks.Webhook, o.subscriptions), events: map[uuid.UUID]*hookEvent{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook/{k}", h.receive)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return h, nil
}

// prefix is the start of the names of subscription k's entities.
func (h *hookSink) prefix(k int) string { return "WH-" + h.runTag + "-s" + strconv.Itoa(k) + "-" }

// entity names entity number i: it belongs to subscription i modulo their
// number.
func (h *hookSink) entity(i int) string { return h.prefix(i%h.o.subscriptions) + strconv.Itoa(i) }

// url is subscription k's destination.
func (h *hookSink) url(k int) string {
	return "http://" + h.ln.Addr().String() + "/hook/" + strconv.Itoa(k)
}

func (h *hookSink) isSlow(k int) bool { return k < h.o.slowReceivers }

// serve starts answering deliveries; the subscriptions' ids and secrets
// must be set.
func (h *hookSink) serve() {
	h.mu.Lock()
	h.began = time.Now()
	h.mu.Unlock()
	go func() { _ = h.srv.Serve(h.ln) }()
}

// close stops the server and its listener (which it closes only once it
// serves).
func (h *hookSink) close() {
	h.srv.Close()
	h.ln.Close()
}

// receive takes one delivery: it counts its events, verifies a sample of
// signatures, and answers 204 (after --slow-delay on a slow receiver).
func (h *hookSink) receive(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	k, err := strconv.Atoi(r.PathValue("k"))
	if err != nil || k < 0 || k >= h.o.subscriptions {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h.requests.Add(1)%signatureSample == 1 {
		h.checked.Add(1)
		if h.verifiers[k].Verify(body, r.Header) != nil {
			h.badSigs.Add(1)
		}
	}
	var got struct {
		Events []struct {
			EventID    uuid.UUID `json:"eventId"`
			EntityID   string    `json:"entityId"`
			RecordedAt time.Time `json:"recordedAt"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	slow := h.isSlow(k)
	h.mu.Lock()
	for _, e := range got.Events {
		if !strings.HasPrefix(e.EntityID, h.prefix(k)) {
			h.misrouted++
		}
		ev := h.events[e.EventID]
		if ev == nil {
			ev = &hookEvent{}
			h.events[e.EventID] = ev
		}
		ev.arrivals++
		if ev.arrivals > 1 {
			h.duplicates++
			continue
		}
		h.delivered++
		h.last = arrived
		if slow {
			h.slow = append(h.slow, arrived.Sub(e.RecordedAt))
		} else {
			h.fast = append(h.fast, arrived.Sub(e.RecordedAt))
		}
		if ev.appended {
			h.pending(ev.sub, -1)
		}
	}
	h.mu.Unlock()
	if slow {
		select {
		case <-time.After(h.o.slowDelay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// pending moves the count of subscription k's events not yet arrived by d
// (h.mu held).
func (h *hookSink) pending(k int, d int64) {
	if h.isSlow(k) {
		h.pendingSlow += d
	} else {
		h.pendingFast += d
	}
}

// appended records events whose append was answered 2xx.
func (h *hookSink) appended(sent []appendedEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range sent {
		h.appendedN++
		ev := h.events[s.id]
		if ev == nil {
			ev = &hookEvent{}
			h.events[s.id] = ev
		}
		ev.sub, ev.appended = s.entity%h.o.subscriptions, true
		if ev.arrivals == 0 {
			h.pending(ev.sub, 1)
		}
	}
}

// drain waits until every appended event has arrived, or for --drain, and
// returns how long it waited.
func (h *hookSink) drain(ctx context.Context) time.Duration {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.o.drain)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		waiting := h.pendingFast+h.pendingSlow > 0
		h.mu.Unlock()
		if !waiting {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-t.C:
		}
	}
}

// summary returns the figures so far.
func (h *hookSink) summary() *webhookSummary {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &webhookSummary{Subscriptions: h.o.subscriptions, SlowReceivers: h.o.slowReceivers, MaxBatch: h.o.maxBatch,
		Appended: h.appendedN, Delivered: h.delivered, Requests: h.requests.Load(), Duplicates: h.duplicates,
		Undelivered: h.pendingFast, SlowUndelivered: h.pendingSlow, Misrouted: h.misrouted,
		SignaturesChecked: h.checked.Load(), BadSignatures: h.badSigs.Load(),
		Delay: summarize(h.fast)}
	if h.o.slowReceivers > 0 {
		s.SlowAnswer = h.o.slowDelay.String()
		slow := summarize(h.slow)
		s.SlowDelay = &slow
	}
	if h.delivered > 0 {
		s.DeliveredPerS = float64(h.delivered) / h.last.Sub(h.began).Seconds()
	}
	for _, ev := range h.events {
		if ev.arrivals > 0 && !ev.appended {
			s.Unconfirmed++
		}
	}
	return s
}

// webhook runs the webhook scenario: it subscribes its receiver, appends
// for the duration, waits for the deliveries to drain, reports, and
// deletes its subscriptions (also when the run is interrupted).
func (lt *loadTester) webhook(ctx context.Context, stdout, stderr io.Writer) (err error) {
	h, err := newHookSink(lt.o.webhook, lt.runTag)
	if err != nil {
		return err
	}
	defer h.close()
	lt.hooks = h
	fmt.Fprintf(stderr, "loadtest: subscribing %d receivers at %s\n", h.o.subscriptions, h.url(0))
	subscribed := lt.subscribe(ctx, h)
	defer func() {
		// Deleted even when ctx is done: a subscription left behind would
		// be retried for days against a receiver that is gone.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if failed := lt.unsubscribe(cleanup, h); failed > 0 {
			err = errors.Join(err, fmt.Errorf("loadtest: %d subscriptions could not be deleted", failed))
		}
	}()
	if subscribed != nil {
		return fmt.Errorf("loadtest: subscribe: %w", subscribed)
	}
	h.serve()
	rep := lt.run(ctx, stderr)
	fmt.Fprintf(stderr, "loadtest: waiting up to %s for the deliveries\n", h.o.drain)
	waited := h.drain(ctx)
	rep.Webhooks = h.summary()
	rep.Webhooks.DrainSeconds = waited.Seconds()
	return writeReport(stdout, rep)
}

// subscribe creates the subscriptions, starting now, and keeps their ids
// and secrets; it returns the first failure and how many there were (the
// subscriptions created are deleted by unsubscribe all the same).
func (lt *loadTester) subscribe(ctx context.Context, h *hookSink) error {
	errs := make([]error, h.o.subscriptions)
	failed := lt.parallel(h.o.subscriptions, func(k int) bool {
		var out struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		}
		body := map[string]any{"url": h.url(k), "filter": map[string]any{"entityIds": []string{h.prefix(k) + "*"}},
			"start": "now", "maxBatch": h.o.maxBatch}
		st, _, err := lt.exchange(ctx, "POST", "/api/v1/subscriptions", body, "", &out)
		switch {
		case err != nil:
			errs[k] = err
		case st != http.StatusCreated:
			errs[k] = fmt.Errorf("POST /api/v1/subscriptions answered %d (is Subscriptions__AllowPrivateDestinations=true set on the server?)", st)
		default:
			h.ids[k] = out.ID
			if h.verifiers[k], err = standardwebhooks.NewWebhook(out.Secret); err != nil {
				errs[k] = fmt.Errorf("the secret of subscription %s: %w", out.ID, err)
			}
		}
		return errs[k] == nil
	})
	if failed == 0 {
		return nil
	}
	first := errs[slices.IndexFunc(errs, func(err error) bool { return err != nil })]
	if failed > 1 {
		return fmt.Errorf("%w (and %d more failures)", first, failed-1)
	}
	return first
}

// unsubscribe deletes the subscriptions created and returns how many
// could not be.
func (lt *loadTester) unsubscribe(ctx context.Context, h *hookSink) int {
	return lt.parallel(len(h.ids), func(k int) bool {
		if h.ids[k] == "" {
			return true // not created
		}
		st := lt.request(ctx, "DELETE", "/api/v1/subscriptions/"+url.PathEscape(h.ids[k]), nil)
		return st == http.StatusNoContent || st == http.StatusNotFound
	})
}
