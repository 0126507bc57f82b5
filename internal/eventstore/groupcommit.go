package eventstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Outcome is what became of one append of a group commit.
type Outcome struct {
	Result AppendResult
	Err    error
}

// CommitFunc writes a batch of prepared appends, in queue order, and returns
// one Outcome per append. A failure of the batch as a whole is reported in
// every append's Outcome.
type CommitFunc func(ctx context.Context, batch []AppendRequest) []Outcome

// GroupCommitOptions tune a GroupCommit.
type GroupCommitOptions struct {
	// Writers is the number of writer goroutines (default 1). Each commits
	// one batch at a time.
	Writers int
	// MaxBatchEvents bounds the events a writer takes into one batch
	// (default 10,000). A single append larger than that is a batch of its own.
	MaxBatchEvents int
	// CommitTimeout bounds one batch's commit (default 30s). A writer is not
	// tied to any one request: a canceled caller does not abort its
	// neighbours' commit.
	CommitTimeout time.Duration
	// Name prefixes errors ("sqlite", "postgres").
	Name string
}

// GroupCommit is the write path every engine shares: concurrent appends
// queue to a few writers; a writer takes what is queued, with no timer (a
// lone append is not delayed), and hands it to the engine's CommitFunc as
// one batch, so that one transaction and one fsync serve many appends.
type GroupCommit struct {
	commit    CommitFunc
	opts      GroupCommitOptions
	closedErr error

	queue     chan *pending
	quit      chan struct{} // closed when Close starts
	closed    chan struct{} // closed when Close has answered every queued append
	writers   sync.WaitGroup
	closeOnce sync.Once
}

type pending struct {
	req  AppendRequest
	done chan Outcome
}

// NewGroupCommit starts the writers. Close stops them.
func NewGroupCommit(commit CommitFunc, opts GroupCommitOptions) *GroupCommit {
	if opts.Writers <= 0 {
		opts.Writers = 1
	}
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = 10_000
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 30 * time.Second
	}
	g := &GroupCommit{
		commit:    commit,
		opts:      opts,
		closedErr: fmt.Errorf("%s: %w: store closed", opts.Name, ErrUnavailable),
		queue:     make(chan *pending, 4096),
		quit:      make(chan struct{}),
		closed:    make(chan struct{}),
	}
	for range opts.Writers {
		g.writers.Go(g.writer)
	}
	return g
}

// Append validates the request (Prepare), queues it for a writer and waits
// for its commit. When ctx ends first the append may still commit; a retry
// with the same event ids is safe.
func (g *GroupCommit) Append(ctx context.Context, r AppendRequest) (AppendResult, error) {
	r, err := r.Prepare()
	if err != nil {
		return AppendResult{}, fmt.Errorf("%s: append: %w", g.opts.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	p := &pending{req: r, done: make(chan Outcome, 1)}
	select {
	case <-g.quit:
		return AppendResult{}, g.closedErr
	default:
	}
	select {
	case g.queue <- p:
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	case <-g.quit:
		return AppendResult{}, g.closedErr
	}
	select {
	case out := <-p.done:
		return out.Result, out.Err
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	case <-g.closed:
		// Queued as Close drained the queue: answered by it, or never taken.
		select {
		case out := <-p.done:
			return out.Result, out.Err
		default:
			return AppendResult{}, g.closedErr
		}
	}
}

// AppendAll validates and queues every request at once, so that a writer
// takes them into as few batches as MaxBatchEvents allows, and waits for all
// of them. out[i] is reqs[i]'s outcome. With several writers, requests to
// one stream may commit in any order.
func (g *GroupCommit) AppendAll(ctx context.Context, reqs []AppendRequest) []Outcome {
	out := make([]Outcome, len(reqs))
	ps := make([]*pending, len(reqs))
	for i, r := range reqs {
		r, err := r.Prepare()
		if err != nil {
			out[i].Err = fmt.Errorf("%s: append: %w", g.opts.Name, err)
			continue
		}
		ps[i] = &pending{req: r, done: make(chan Outcome, 1)}
	}
	queued := 0
enqueue:
	for i, p := range ps {
		if p == nil {
			continue
		}
		select {
		case <-g.quit:
			break enqueue
		case <-ctx.Done():
			break enqueue
		default:
		}
		select {
		case g.queue <- p:
			queued = i + 1
		case <-ctx.Done():
			break enqueue
		case <-g.quit:
			break enqueue
		}
	}
	for i, p := range ps {
		if p == nil {
			continue
		}
		if i >= queued {
			out[i].Err = ctx.Err()
			if out[i].Err == nil {
				out[i].Err = g.closedErr
			}
			continue
		}
		select {
		case out[i] = <-p.done:
		case <-ctx.Done():
			out[i].Err = ctx.Err()
		case <-g.closed:
			select {
			case out[i] = <-p.done:
			default:
				out[i].Err = g.closedErr
			}
		}
	}
	return out
}

// Close stops the writers after their current batch and fails what is
// still queued.
func (g *GroupCommit) Close() {
	g.closeOnce.Do(func() {
		close(g.quit)
		g.writers.Wait()
		defer close(g.closed)
		for {
			select {
			case p := <-g.queue:
				p.done <- Outcome{Err: g.closedErr}
			default:
				return
			}
		}
	})
}

func (g *GroupCommit) writer() {
	var batch []*pending
	var reqs []AppendRequest
	for {
		batch, reqs = batch[:0], reqs[:0]
		select {
		case p := <-g.queue:
			batch = append(batch, p)
		case <-g.quit:
			return
		}
		n := len(batch[0].req.Events)
	drain:
		for n < g.opts.MaxBatchEvents {
			select {
			case p := <-g.queue:
				batch = append(batch, p)
				n += len(p.req.Events)
			default:
				break drain
			}
		}
		for _, p := range batch {
			reqs = append(reqs, p.req)
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.opts.CommitTimeout)
		outs := g.commit(ctx, reqs)
		cancel()
		if len(outs) != len(batch) {
			err := fmt.Errorf("%s: %w: commit answered %d of %d appends", g.opts.Name, ErrUnavailable, len(outs), len(batch))
			outs = make([]Outcome, len(batch))
			for i := range outs {
				outs[i].Err = err
			}
		}
		for i, p := range batch {
			p.done <- outs[i]
		}
	}
}

// Check applies the contract's rules to an append against its stream's
// current version (0 when the stream does not exist), entity type and
// incarnation. When it fails with replayable true, the request may be an
// idempotent replay of an append already stored: the engine looks its event
// ids up (in the same transaction) and decides with Resolve.
func (r AppendRequest) Check(version int64, entityType string, incarnation int64) (replayable bool, err error) {
	switch {
	case r.Incarnation != 0 && (version == 0 || r.Incarnation != incarnation):
		return true, &WrongExpectedVersionError{Tenant: r.Tenant, StreamID: r.StreamID, Expected: r.Expected, Actual: version, Replaced: true}
	case !r.Expected.Allows(version):
		return true, &WrongExpectedVersionError{Tenant: r.Tenant, StreamID: r.StreamID, Expected: r.Expected, Actual: version}
	case version == 0 && r.EntityType == "":
		return false, fmt.Errorf("%w: entity type is required on a stream's first append", ErrInvalid)
	case version > 0 && r.EntityType != "" && r.EntityType != entityType:
		return true, fmt.Errorf("%w: stream is a %s, not a %s", ErrEntityTypeMismatch, entityType, r.EntityType)
	}
	return false, nil
}

// Resolve decides a replayable failure (from Check, or an event id's unique
// violation): with none of the request's events stored, the failure stands;
// otherwise it is a replay (ReplayResult).
func Resolve(r AppendRequest, stored []Recorded, failure error) (AppendResult, error) {
	if len(stored) == 0 {
		return AppendResult{}, failure
	}
	return ReplayResult(r, stored)
}
