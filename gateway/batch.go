package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// The nightly batch close (acquirer-host.md §5): at the cut-off the open
// batch stops taking transactions (they go to the next one), everything in
// it gets a final outcome (stand-ins and owed messages are forwarded first),
// and one 0500 per terminal ID reconciles sterad's totals with the host's.
// On 95 every financial transaction of that terminal is uploaded (0320) and
// a 0500 with BU=1 follows. When every terminal ID has 00 the batch is
// closed and the card data kept for it is destroyed. A close that cannot
// finish (link down, no answer) leaves the batch closing and is retried.

// DefaultCutoff is the local time of the nightly close.
const DefaultCutoff = 2 * time.Hour

// DefaultSettleTimeout bounds how long a close waits for the batch's
// transactions in flight to get their outcome.
const DefaultSettleTimeout = time.Minute

// Batches lists every batch; the open one's totals are computed now.
func (g *Gateway) Batches(ctx context.Context) ([]*sterad.Batch, error) {
	bs, err := g.store.Batches(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.State != sterad.BatchClosed {
			if err := g.liveTotals(ctx, b); err != nil {
				return nil, err
			}
		}
	}
	return bs, nil
}

// Batch returns one batch by number.
func (g *Gateway) Batch(ctx context.Context, n int) (*sterad.Batch, error) {
	b, err := g.store.Batch(ctx, n)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_batch", "unknown batch %06d", n)
	}
	if err != nil {
		return nil, err
	}
	if b.State != sterad.BatchClosed {
		err = g.liveTotals(ctx, b)
	}
	return b, err
}

// Progress returns the progress of a close under way, if any.
func (g *Gateway) Progress(n int) (sterad.BatchProgress, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.progress[n]
	return p, ok
}

func (g *Gateway) setProgress(p sterad.BatchProgress) {
	p.Running = p.Phase != "closed" && p.Error == ""
	g.mu.Lock()
	if g.progress == nil {
		g.progress = map[int]sterad.BatchProgress{}
	}
	g.progress[p.Batch] = p
	g.mu.Unlock()
}

// liveTotals fills the totals of a batch that is not closed yet.
func (g *Gateway) liveTotals(ctx context.Context, b *sterad.Batch) error {
	txns, err := g.store.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	if err != nil {
		return err
	}
	b.Terminals, b.Ops = sterad.BatchTotals(txns, b.Terminals), sterad.OpTotalsOf(txns)
	return nil
}

// ClosingNumber returns the batch a close started now would work on: the
// batch left closing, or the open one.
func (g *Gateway) ClosingNumber(ctx context.Context) (int, error) {
	bs, err := g.store.Batches(ctx)
	if err != nil {
		return 0, err
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return b.Number, nil
		}
	}
	b, err := g.store.CurrentBatch(ctx)
	if err != nil {
		return 0, err
	}
	return b.Number, nil
}

// CloseBatch closes the open batch now (or finishes the batch a failed
// close left closing) and waits for that attempt. It returns the batch as
// it stands: closed, or closing with the reason in LastError along with
// the error; a failed close is retried by the batch loop. When ctx ends
// first the close goes on.
func (g *Gateway) CloseBatch(ctx context.Context) (*sterad.Batch, error) {
	run, err := g.StartClose(ctx)
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

// StartClose asks the batch loop to close the open batch (or to finish
// the batch left closing) now, and returns that attempt at once. A close
// already pending or under way is joined, not started again.
func (g *Gateway) StartClose(ctx context.Context) (*sterad.CloseRun, error) {
	if run, err := g.pendingClose(); run != nil || err != nil {
		return run, err
	}
	n, err := g.ClosingNumber(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if run := cmp.Or(g.closeCur, g.closeNext); run != nil {
		return run, nil
	}
	if g.stopping || g.closeEnded {
		return nil, sterad.ErrStopping
	}
	g.closeNext = sterad.NewCloseRun(n)
	select {
	case g.closeAsk <- struct{}{}:
	default:
	}
	return g.closeNext, nil
}

// pendingClose returns the close pending or under way, if any.
func (g *Gateway) pendingClose() (*sterad.CloseRun, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if run := cmp.Or(g.closeCur, g.closeNext); run != nil {
		return run, nil
	}
	if g.ctx == nil || g.stopping || g.closeEnded {
		return nil, sterad.ErrStopping
	}
	return nil, nil
}

// Closing returns the batch left closing (a close under way, or failing
// and waiting for its retry), or nil.
func (g *Gateway) Closing(ctx context.Context) (*sterad.Batch, error) {
	bs, err := g.store.Batches(ctx)
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

// closeOnce makes one attempt at closing: it finishes the batch left
// closing, or switches batches and closes the one that was open. A
// failure is recorded on the batch.
func (g *Gateway) closeOnce(ctx context.Context) (*sterad.Batch, error) {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	b, err := g.closingBatch(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.finishClose(ctx, b); err != nil {
		b.Attempts++
		b.LastError = sterad.ErrorMessage(err)
		// Recorded even when the stop cut the attempt off.
		if aerr := g.store.Apply(context.WithoutCancel(ctx), sterad.Change{PutBatches: []*sterad.Batch{b}}); aerr != nil {
			g.log.Error("record batch close attempt", "batch", b.Number, "err", aerr)
		}
		g.log.Warn("batch close did not finish: it will be retried", "batch", b.Number, "attempt", b.Attempts, "err", err)
		return b, err
	}
	return b, nil
}

// closingBatch returns the batch left closing, or switches: the open batch
// becomes closing and the next one opens, so transactions arriving from now
// on go to the next batch.
func (g *Gateway) closingBatch(ctx context.Context) (*sterad.Batch, error) {
	bs, err := g.store.Batches(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return b, nil
		}
	}
	g.batchMu.Lock()
	defer g.batchMu.Unlock()
	open, err := g.store.CurrentBatch(ctx)
	if err != nil {
		return nil, err
	}
	now := g.clock.Now()
	open.State, open.ClosingAt = sterad.BatchClosing, now
	next := &sterad.Batch{Number: sterad.NextBatchNumber(open.Number), State: sterad.BatchOpen, OpenedAt: now}
	if err := g.store.Apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{open, next}}); err != nil {
		return nil, fmt.Errorf("switch batches: %w", err)
	}
	g.log.Info("batch closing", "batch", open.Number, "next", next.Number)
	return open, nil
}

// finishClose settles, reconciles and closes b.
func (g *Gateway) finishClose(ctx context.Context, b *sterad.Batch) error {
	if !g.acquirer.Status().Online {
		return sterad.ErrHostUnavailable
	}
	g.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "settling"})
	if err := g.settle(ctx, b.Number); err != nil {
		return err
	}
	txns, err := g.store.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	if err != nil {
		return err
	}
	b.Terminals, b.Ops = sterad.BatchTotals(txns, b.Terminals), sterad.OpTotalsOf(txns)
	for i := range b.Terminals {
		tt := &b.Terminals[i]
		if tt.Result == "00" {
			continue // closed by an earlier attempt
		}
		if err := g.reconcile0500(ctx, b, tt, txns); err != nil {
			return fmt.Errorf("terminal %s: %w", tt.TerminalID, err)
		}
		// Each terminal's closure is recorded as it happens.
		if err := g.store.Apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{b}}); err != nil {
			return err
		}
	}
	return g.closed(ctx, b, txns)
}

// settle waits until every transaction of batch n has its outcome: owed
// messages are forwarded, flows in flight finish. Deferred requests wait
// for the next batch: they join the batch open when they are sent.
func (g *Gateway) settle(ctx context.Context, n int) error {
	deadline := time.Now().Add(g.cfg.SettleTimeout)
	for {
		txns, err := g.store.Transactions(ctx, sterad.TransactionFilter{Batch: n})
		if err != nil {
			return err
		}
		var open []*sterad.Transaction
		for _, t := range txns {
			if t.Unsettled() {
				open = append(open, t)
			}
		}
		if len(open) == 0 {
			return nil
		}
		g.setProgress(sterad.BatchProgress{Batch: n, Phase: "settling", ToUpload: len(open)})
		if _, err := g.Flush(ctx); err != nil {
			return fmt.Errorf("forward what batch %06d owes the acquirer: %w", n, err)
		}
		if time.Now().After(deadline) {
			return sterad.Errorf(sterad.EUnavailable, "batch_unsettled", "%d transaction(s) of batch %06d have no outcome yet (e.g. %s, %s)", len(open), n, open[0].ID, open[0].Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reconcile0500 reconciles one terminal ID's totals; on 95 it uploads its
// transactions and reconciles again with BU=1.
func (g *Gateway) reconcile0500(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, txns []*sterad.Transaction) error {
	g.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "reconciling", Terminal: tt.TerminalID})
	resp, err := g.send0500(ctx, b, tt, false)
	if err != nil {
		return err
	}
	tt.Result = resp.ResponseCode
	switch resp.ResponseCode {
	case "00":
		g.log.Info("batch reconciled", "batch", b.Number, "terminal", tt.TerminalID)
		return nil
	case "95":
		g.log.Warn("batch totals differ from the acquirer's: uploading", "batch", b.Number, "terminal", tt.TerminalID)
	default:
		return sterad.Errorf(sterad.EConflict, "reconciliation_refused", "the acquirer answered %s to the reconciliation: %s", resp.ResponseCode, sterad.LookupResponse(resp.ResponseCode).Message)
	}
	var upload []*sterad.Transaction
	for _, t := range txns {
		if t.TerminalID == tt.TerminalID && t.Counted() {
			upload = append(upload, t)
		}
	}
	if err := g.upload(ctx, b, tt, upload); err != nil {
		return err
	}
	resp, err = g.send0500(ctx, b, tt, true)
	if err != nil {
		return err
	}
	tt.Result = resp.ResponseCode
	if resp.ResponseCode != "00" {
		return sterad.Errorf(sterad.EConflict, "reconciliation_refused", "the acquirer answered %s to the reconciliation after the upload", resp.ResponseCode)
	}
	return nil
}

// send0500 sends one reconciliation.
func (g *Gateway) send0500(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, afterUpload bool) (*sterad.HostMessage, error) {
	now := g.clock.Now().UTC().Truncate(time.Second)
	stan, err := g.store.NextSTAN(ctx, tt.TerminalID, now)
	if err != nil {
		return nil, err
	}
	totals := tt.Totals
	m := &sterad.HostMessage{
		MTI: sterad.MTIReconciliation, Transmitted: now, STAN: stan, LocalTime: now.In(g.cfg.Location),
		TerminalID: tt.TerminalID, MerchantID: g.cfg.MerchantID, Batch: b.Number, Totals: &totals, BatchUpload: afterUpload,
	}
	resp, err := g.acquirer.Exchange(ctx, m)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// upload sends one 0320 per financial transaction. Uploads of different
// STANs go out in parallel; the same STAN (possible in a batch that spans
// UTC days) never twice at once, since responses are matched on it.
func (g *Gateway) upload(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, txns []*sterad.Transaction) error {
	byStan := map[sterad.STAN][]*sterad.Transaction{}
	for _, t := range txns {
		byStan[t.STAN] = append(byStan[t.STAN], t)
	}
	groups := make(chan []*sterad.Transaction, len(byStan))
	for _, grp := range byStan {
		groups <- grp
	}
	close(groups)
	var (
		mu       sync.Mutex
		uploaded int
		skipped  int
		firstErr error
	)
	g.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "uploading", Terminal: tt.TerminalID, ToUpload: len(txns)})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for grp := range groups {
				for _, t := range grp {
					ok, err := g.upload0320(ctx, b, t)
					mu.Lock()
					switch {
					case err != nil && firstErr == nil:
						firstErr = err
					case ok:
						uploaded++
					case err == nil:
						skipped++
					}
					g.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "uploading", Terminal: tt.TerminalID, Uploaded: uploaded + skipped, ToUpload: len(txns)})
					stop := firstErr != nil
					mu.Unlock()
					if stop {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	tt.Uploaded = uploaded
	if skipped > 0 {
		g.log.Warn("transactions not uploaded: no card data is kept for them (refunds linked by TI only)", "batch", b.Number, "terminal", tt.TerminalID, "count", skipped)
	}
	return firstErr
}

// upload0320 uploads one transaction. It reports false without an error
// when the transaction has no card data to upload.
func (g *Gateway) upload0320(ctx context.Context, b *sterad.Batch, t *sterad.Transaction) (bool, error) {
	card, err := g.cardOf(ctx, t, nil)
	if err != nil {
		return false, err
	}
	defer card.Wipe()
	if card == nil && t.Token == "" {
		return false, nil
	}
	now := g.clock.Now().UTC().Truncate(time.Second)
	m := &sterad.HostMessage{
		MTI: sterad.MTIBatchUpload, Processing: processing(t), HasAmount: true, Amount: t.Amount, Currency: g.cfg.Currency,
		Transmitted: laterThan(now, t.Transmitted), STAN: t.STAN, LocalTime: now.In(g.cfg.Location), Entry: t.Entry,
		Condition: t.Condition, RRN: t.RRN, AuthCode: t.AuthCode, TerminalID: t.TerminalID, MerchantID: g.cfg.MerchantID, Batch: b.Number,
	}
	if card != nil {
		m.PAN, m.Expiry = card.PAN, card.Expiry
	} else {
		m.Token = t.Token
	}
	for attempt := 0; ; attempt++ {
		resp, err := g.acquirer.Exchange(ctx, m)
		if err == nil {
			if resp.ResponseCode != "00" {
				g.log.Warn("batch upload refused", "txn", t.ID, "code", resp.ResponseCode)
			}
			return true, nil
		}
		// An upload reports what happened: repeating it (same DE 7, so
		// the host's duplicate detection answers again) is safe.
		if attempt >= 2 || errors.Is(err, sterad.ErrHostUnavailable) {
			return false, fmt.Errorf("upload %s: %w", t.ID, err)
		}
	}
}

// errUnchanged ends a modify that has nothing to write.
var errUnchanged = errors.New("unchanged")

// closed destroys the card data kept for the batch's transactions (nothing
// will be sent for them any more) and records the batch closed, with its
// per-day totals for the settlement report. Each transaction is changed
// under its lock from its current record: a refund or anything else
// committed while the close waited for the host is kept.
func (g *Gateway) closed(ctx context.Context, b *sterad.Batch, txns []*sterad.Transaction) error {
	now := g.clock.Now()
	var (
		mu        sync.Mutex
		destroyed int
		firstErr  error
	)
	// Each transaction is changed under its own lock from its current
	// record, never from the copy read for the totals; many at once, so
	// that their commits are grouped.
	work := make(chan *sterad.Transaction)
	var wg sync.WaitGroup
	for w := 0; w < min(16, len(txns)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				n, err := g.destroyClosedCards(ctx, b, t.ID, now)
				mu.Lock()
				destroyed += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range txns {
		if t.HasCard || t.Op == sterad.OpCompletion {
			work <- t
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("destroy the cards of batch %06d: %w", b.Number, firstErr)
	}
	b.State, b.ClosedAt, b.LastError = sterad.BatchClosed, now, ""
	if g.cfg.Summarize != nil {
		b.Days = g.cfg.Summarize(txns)
	}
	if err := g.store.Apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{b}}); err != nil {
		return fmt.Errorf("record batch %06d closed: %w", b.Number, err)
	}
	g.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "closed"})
	g.log.Info("batch closed", "batch", b.Number, "terminals", len(b.Terminals), "cards_destroyed", destroyed)
	return nil
}

// destroyClosedCards destroys the card kept for transaction id (and for
// its pre-authorization, if it is a counted completion) once its batch
// closed, and returns how many cards it destroyed.
func (g *Gateway) destroyClosedCards(ctx context.Context, b *sterad.Batch, id string, now time.Time) (int, error) {
	_, c, err := g.modify(ctx, id, func(x *sterad.Transaction, c *txChange) error {
		if x.HasCard {
			x.HasCard = false
			x.Record(x.Step, now, fmt.Sprintf("card destroyed: batch %06d closed", b.Number))
			c.DestroyCards = append(c.DestroyCards, x.ID)
		}
		// A completed pre-authorization's card goes with its completion.
		if x.Op == sterad.OpCompletion && x.Counted() && x.Original != "" {
			o, err := g.lockedOriginal(ctx, x, c)
			if err != nil {
				return err
			}
			if o.HasCard {
				o.HasCard = false
				o.Record(o.Step, now, fmt.Sprintf("card destroyed: its completion's batch %06d closed", b.Number))
				c.DestroyCards = append(c.DestroyCards, o.ID)
			}
		}
		if len(c.DestroyCards) == 0 {
			return errUnchanged
		}
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return len(c.DestroyCards), nil
}

// batchLoop is the one runner of batch closes. It closes the batch every
// day at the cut-off (local time, from the injected clock), runs the
// closes asked for by the API, and retries a close that did not finish,
// whoever started it, with backoff on the injected clock until it
// finishes. It ends with the gateway: Stop waits for it.
func (g *Gateway) batchLoop(ctx context.Context) {
	defer g.endCloses()
	var cutoff, retry <-chan time.Time
	armCutoff := func() {
		if g.cfg.Cutoff >= 0 {
			now := g.clock.Now()
			cutoff = g.clock.After(g.nextCutoff(now).Sub(now))
		}
	}
	armCutoff()
	for {
		g.mu.Lock()
		asked := g.closeNext != nil
		g.mu.Unlock()
		if asked || g.closeDue(ctx) {
			retry = nil
			b, err := g.closeDueBatches(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil && b != nil {
				d := g.closeBackoff(b.Attempts)
				at := g.clock.Now().Add(d)
				retry = g.clock.After(d)
				g.retryAt(b, at)
			} else if err != nil {
				retry = g.clock.After(g.cfg.RetryInterval) // the store failed
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-g.closeAsk:
		case <-retry:
		case <-cutoff:
			armCutoff()
		}
	}
}

// closeDueBatches closes until nothing is due: the batch left closing
// first, then the batch open at a cut-off that has passed. It returns the
// last batch it worked on.
func (g *Gateway) closeDueBatches(ctx context.Context) (*sterad.Batch, error) {
	for i := 0; ; i++ {
		n, err := g.ClosingNumber(ctx)
		if err != nil {
			return nil, err
		}
		g.mu.Lock()
		run := g.closeNext
		if run == nil {
			run = sterad.NewCloseRun(n)
		}
		g.closeNext, g.closeCur = nil, run
		g.mu.Unlock()

		b, err := g.closeOnce(ctx)

		g.mu.Lock()
		g.closeCur = nil
		run.Finish(b, err)
		g.mu.Unlock()
		// At most a closing batch and the cut-off's: never spin.
		if err != nil || i >= 2 || !g.closeDue(ctx) {
			return b, err
		}
	}
}

// closeDue reports whether a close must run now: a batch is left closing,
// or the open batch was open at a cut-off that has passed (the nightly
// close, also when the daemon was down at the cut-off or a close of an
// older batch held it up).
func (g *Gateway) closeDue(ctx context.Context) bool {
	bs, err := g.store.Batches(ctx)
	if err != nil {
		return false
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return true
		}
	}
	if g.cfg.Cutoff < 0 {
		return false
	}
	last := g.lastCutoff(g.clock.Now())
	for _, b := range bs {
		if b.State == sterad.BatchOpen && !b.OpenedAt.IsZero() && b.OpenedAt.Before(last) {
			return true
		}
	}
	return false
}

// closeBackoff is the wait before retrying a close that failed attempts
// times.
func (g *Gateway) closeBackoff(attempts int) time.Duration {
	d := g.cfg.RetryInterval
	for i := 1; i < attempts && d < g.cfg.RetryInterval*sterad.MaxCloseBackoff; i++ {
		d *= 2
	}
	return min(d, g.cfg.RetryInterval*sterad.MaxCloseBackoff)
}

// retryAt shows the failing close of b: its attempts, its last error and
// when it is tried again (all at once, once the retry is armed).
func (g *Gateway) retryAt(b *sterad.Batch, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.progress == nil {
		g.progress = map[int]sterad.BatchProgress{}
	}
	p := g.progress[b.Number]
	p.Batch, p.Running, p.Error, p.Attempts, p.NextRetry = b.Number, false, b.LastError, b.Attempts, at
	g.progress[b.Number] = p
}

// endCloses answers the closes still asked for when the loop ends.
func (g *Gateway) endCloses() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closeEnded = true
	if run := g.closeNext; run != nil {
		run.Finish(nil, sterad.ErrStopping)
		g.closeNext = nil
	}
}

// lastCutoff returns the latest cut-off at or before now.
func (g *Gateway) lastCutoff(now time.Time) time.Time {
	local := now.In(g.cfg.Location)
	c := sterad.DateOf(local).Time(g.cfg.Location).Add(g.cfg.Cutoff)
	if c.After(now) {
		c = sterad.DateOf(local).AddDays(-1).Time(g.cfg.Location).Add(g.cfg.Cutoff)
	}
	return c
}

// nextCutoff returns the next cut-off after now, in the merchant's time.
func (g *Gateway) nextCutoff(now time.Time) time.Time {
	local := now.In(g.cfg.Location)
	c := sterad.DateOf(local).Time(g.cfg.Location).Add(g.cfg.Cutoff)
	if !c.After(now) {
		c = sterad.DateOf(local).AddDays(1).Time(g.cfg.Location).Add(g.cfg.Cutoff)
	}
	return c
}
