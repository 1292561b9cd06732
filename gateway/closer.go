package gateway

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// The nightly batch close (docs/acquirer-protocol.md §5): at the cut-off the open
// batch stops taking transactions (they go to the next one), everything in
// it gets a final outcome (stand-ins and owed messages are forwarded first),
// and one 0500 per terminal ID reconciles sterad's totals with the host's.
// On 95 every financial transaction of that terminal is uploaded (0320) and
// a 0500 with BU=1 follows. When every terminal ID has 00 the batch is
// closed and the card data kept for it is destroyed. A close that cannot
// finish (link down, no answer) leaves the batch closing and is retried.

// closer owns the batch close: the one runner of closes (the batch
// loop), the close pending or under way that every asker joins, the
// progress shown to the API, and closeMu (one attempt at a time). Its
// attempt switches batches under the journal's batch lock, settles the
// closing batch (the forwarder flushes what it owes), reconciles and
// uploads, then destroys the cards kept for it. It may call the
// forwarder, the sender, the journal and flights.
type closer struct {
	env
	j  *journal
	sd *sender
	fw *forwarder
	fl *flights

	closeMu  sync.Mutex    // one close attempt at a time
	closeAsk chan struct{} // wakes the batch loop: a close was asked for

	mu         sync.Mutex
	progress   map[int]sterad.BatchProgress // batch closes under way
	closeNext  *sterad.CloseRun             // asked for, not started yet
	closeCur   *sterad.CloseRun             // under way
	closeEnded bool                         // the batch loop has ended
}

func newCloser(e env, j *journal, sd *sender, fw *forwarder, fl *flights) *closer {
	return &closer{env: e, j: j, sd: sd, fw: fw, fl: fl, closeAsk: make(chan struct{}, 1), progress: map[int]sterad.BatchProgress{}}
}

// batches lists every batch; the open one's totals are computed now.
func (cl *closer) batches(ctx context.Context) ([]*sterad.Batch, error) {
	bs, err := cl.j.store.Batches(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.State != sterad.BatchClosed {
			if err := cl.liveTotals(ctx, b); err != nil {
				return nil, err
			}
		}
	}
	return bs, nil
}

// batch returns one batch by number.
func (cl *closer) batch(ctx context.Context, n int) (*sterad.Batch, error) {
	b, err := cl.j.store.Batch(ctx, n)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_batch", "unknown batch %06d", n)
	}
	if err != nil {
		return nil, err
	}
	if b.State != sterad.BatchClosed {
		err = cl.liveTotals(ctx, b)
	}
	return b, err
}

// progressOf returns the progress of a close under way, if any.
func (cl *closer) progressOf(n int) (sterad.BatchProgress, bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	p, ok := cl.progress[n]
	return p, ok
}

func (cl *closer) setProgress(p sterad.BatchProgress) {
	p.Running = p.Phase != "closed" && p.Error == ""
	cl.mu.Lock()
	if cl.progress == nil {
		cl.progress = map[int]sterad.BatchProgress{}
	}
	cl.progress[p.Batch] = p
	cl.mu.Unlock()
}

// liveTotals fills the totals of a batch that is not closed yet.
func (cl *closer) liveTotals(ctx context.Context, b *sterad.Batch) error {
	txns, err := cl.j.store.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	if err != nil {
		return err
	}
	b.Terminals, b.Ops = sterad.BatchTotals(txns, b.Terminals), sterad.OpTotalsOf(txns)
	return nil
}

// closingNumber returns the batch a close started now would work on: the
// batch left closing, or the open one.
func (cl *closer) closingNumber(ctx context.Context) (int, error) {
	bs, err := cl.j.store.Batches(ctx)
	if err != nil {
		return 0, err
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return b.Number, nil
		}
	}
	b, err := cl.j.store.CurrentBatch(ctx)
	if err != nil {
		return 0, err
	}
	return b.Number, nil
}

// closeBatch closes the open batch now (or finishes the batch a failed
// close left closing) and waits for that attempt. It returns the batch as
// it stands: closed, or closing with the reason in LastError along with
// the error; a failed close is retried by the batch loop. When ctx ends
// first the close goes on.
func (cl *closer) closeBatch(ctx context.Context) (*sterad.Batch, error) {
	run, err := cl.startClose(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case <-run.Done():
		return run.Result()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startClose asks the batch loop to close the open batch (or to finish
// the batch left closing) now, and returns that attempt at once. A close
// already pending or under way is joined, not started again.
func (cl *closer) startClose(ctx context.Context) (*sterad.CloseRun, error) {
	if run, err := cl.pendingClose(); run != nil || err != nil {
		return run, err
	}
	n, err := cl.closingNumber(ctx)
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if run := cmp.Or(cl.closeCur, cl.closeNext); run != nil {
		return run, nil
	}
	if !cl.fl.accepting() || cl.closeEnded {
		return nil, sterad.ErrStopping
	}
	cl.closeNext = sterad.NewCloseRun(n)
	select {
	case cl.closeAsk <- struct{}{}:
	default:
	}
	return cl.closeNext, nil
}

// pendingClose returns the close pending or under way, if any.
func (cl *closer) pendingClose() (*sterad.CloseRun, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if run := cmp.Or(cl.closeCur, cl.closeNext); run != nil {
		return run, nil
	}
	if !cl.fl.accepting() || cl.closeEnded {
		return nil, sterad.ErrStopping
	}
	return nil, nil
}

// closing returns the batch left closing (a close under way, or failing
// and waiting for its retry), or nil.
func (cl *closer) closing(ctx context.Context) (*sterad.Batch, error) {
	bs, err := cl.j.store.Batches(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return b, nil
		}
	}
	return nil, nil
}

// batchLoop is the one runner of batch closes. It closes the batch every
// day at the cut-off (local time, from the injected clock), runs the
// closes asked for by the API, and retries a close that did not finish,
// whoever started it, with backoff on the injected clock until it
// finishes. It ends with the gateway: Stop waits for it.
func (cl *closer) loop(ctx context.Context) {
	defer cl.endCloses()
	var cutoff, retry <-chan time.Time
	armCutoff := func() {
		if cl.cfg.Cutoff >= 0 {
			now := cl.clock.Now()
			cutoff = cl.clock.After(cl.nextCutoff(now).Sub(now))
		}
	}
	armCutoff()
	for {
		cl.mu.Lock()
		asked := cl.closeNext != nil
		cl.mu.Unlock()
		if asked || cl.closeDue(ctx) {
			retry = nil
			b, err := cl.closeDueBatches(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil && b != nil {
				d := cl.closeBackoff(b.Attempts)
				at := cl.clock.Now().Add(d)
				retry = cl.clock.After(d)
				cl.retryAt(b, at)
			} else if err != nil {
				retry = cl.clock.After(cl.cfg.RetryInterval) // the store failed
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-cl.closeAsk:
		case <-retry:
		case <-cutoff:
			armCutoff()
		}
	}
}

// closeDueBatches closes until nothing is due: the batch left closing
// first, then the batch open at a cut-off that has passed. It returns the
// last batch it worked on.
func (cl *closer) closeDueBatches(ctx context.Context) (*sterad.Batch, error) {
	for i := 0; ; i++ {
		n, err := cl.closingNumber(ctx)
		if err != nil {
			return nil, err
		}
		cl.mu.Lock()
		run := cl.closeNext
		if run == nil {
			run = sterad.NewCloseRun(n)
		}
		cl.closeNext, cl.closeCur = nil, run
		cl.mu.Unlock()

		b, err := cl.closeOnce(ctx)

		cl.mu.Lock()
		cl.closeCur = nil
		run.Finish(b, err)
		cl.mu.Unlock()
		// At most a closing batch and the cut-off's: never spin.
		if err != nil || i >= 2 || !cl.closeDue(ctx) {
			return b, err
		}
	}
}

// closeDue reports whether a close must run now: a batch is left closing,
// or the open batch was open at a cut-off that has passed (the nightly
// close, also when the daemon was down at the cut-off or a close of an
// older batch held it up).
func (cl *closer) closeDue(ctx context.Context) bool {
	bs, err := cl.j.store.Batches(ctx)
	if err != nil {
		return false
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return true
		}
	}
	if cl.cfg.Cutoff < 0 {
		return false
	}
	last := cl.lastCutoff(cl.clock.Now())
	for _, b := range bs {
		if b.State == sterad.BatchOpen && !b.OpenedAt.IsZero() && b.OpenedAt.Before(last) {
			return true
		}
	}
	return false
}

// closeBackoff is the wait before retrying a close that failed attempts
// times.
func (cl *closer) closeBackoff(attempts int) time.Duration {
	d := cl.cfg.RetryInterval
	for i := 1; i < attempts && d < cl.cfg.RetryInterval*sterad.MaxCloseBackoff; i++ {
		d *= 2
	}
	return min(d, cl.cfg.RetryInterval*sterad.MaxCloseBackoff)
}

// retryAt shows the failing close of b: its attempts, its last error and
// when it is tried again (all at once, once the retry is armed).
func (cl *closer) retryAt(b *sterad.Batch, at time.Time) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.progress == nil {
		cl.progress = map[int]sterad.BatchProgress{}
	}
	p := cl.progress[b.Number]
	p.Batch, p.Running, p.Error, p.Attempts, p.NextRetry = b.Number, false, b.LastError, b.Attempts, at
	cl.progress[b.Number] = p
}

// endCloses answers the closes still asked for when the loop ends.
func (cl *closer) endCloses() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.closeEnded = true
	if run := cl.closeNext; run != nil {
		run.Finish(nil, sterad.ErrStopping)
		cl.closeNext = nil
	}
}

// lastCutoff returns the latest cut-off at or before now.
func (cl *closer) lastCutoff(now time.Time) time.Time {
	local := now.In(cl.cfg.Location)
	c := sterad.DateOf(local).Time(cl.cfg.Location).Add(cl.cfg.Cutoff)
	if c.After(now) {
		c = sterad.DateOf(local).AddDays(-1).Time(cl.cfg.Location).Add(cl.cfg.Cutoff)
	}
	return c
}

// nextCutoff returns the next cut-off after now, in the merchant's time.
func (cl *closer) nextCutoff(now time.Time) time.Time {
	local := now.In(cl.cfg.Location)
	c := sterad.DateOf(local).Time(cl.cfg.Location).Add(cl.cfg.Cutoff)
	if !c.After(now) {
		c = sterad.DateOf(local).AddDays(1).Time(cl.cfg.Location).Add(cl.cfg.Cutoff)
	}
	return c
}
