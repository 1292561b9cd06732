package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// closeOnce makes one attempt at closing: it finishes the batch left
// closing, or switches batches and closes the one that was open. A
// failure is recorded on the batch.
func (cl *closer) closeOnce(ctx context.Context) (*sterad.Batch, error) {
	cl.closeMu.Lock()
	defer cl.closeMu.Unlock()
	b, err := cl.closingBatch(ctx)
	if err != nil {
		return nil, err
	}
	if err := cl.finishClose(ctx, b); err != nil {
		b.Attempts++
		b.LastError = sterad.ErrorMessage(err)
		// Recorded even when the stop cut the attempt off.
		if aerr := cl.j.apply(context.WithoutCancel(ctx), sterad.Change{PutBatches: []*sterad.Batch{b}}); aerr != nil {
			cl.log.Error("record batch close attempt", "batch", b.Number, "err", aerr)
		}
		cl.log.Warn("batch close did not finish: it will be retried", "batch", b.Number, "attempt", b.Attempts, "err", err)
		return b, err
	}
	return b, nil
}

// closingBatch returns the batch left closing, or switches: the open batch
// becomes closing and the next one opens, so transactions arriving from now
// on go to the next batch.
func (cl *closer) closingBatch(ctx context.Context) (*sterad.Batch, error) {
	bs, err := cl.j.store.Batches(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.State == sterad.BatchClosing {
			return b, nil
		}
	}
	defer cl.j.holdBatch()()
	open, err := cl.j.store.CurrentBatch(ctx)
	if err != nil {
		return nil, err
	}
	now := cl.clock.Now()
	open.State, open.ClosingAt = sterad.BatchClosing, now
	next := &sterad.Batch{Number: sterad.NextBatchNumber(open.Number), State: sterad.BatchOpen, OpenedAt: now}
	if err := cl.j.apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{open, next}}); err != nil {
		return nil, fmt.Errorf("switch batches: %w", err)
	}
	cl.log.Info("batch closing", "batch", open.Number, "next", next.Number)
	return open, nil
}

// finishClose settles, reconciles and closes b.
func (cl *closer) finishClose(ctx context.Context, b *sterad.Batch) error {
	if !cl.sd.online() {
		return sterad.ErrHostUnavailable
	}
	cl.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "settling"})
	if err := cl.settle(ctx, b.Number); err != nil {
		return err
	}
	txns, err := cl.j.store.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	if err != nil {
		return err
	}
	b.Terminals, b.Ops = sterad.BatchTotals(txns, b.Terminals), sterad.OpTotalsOf(txns)
	for i := range b.Terminals {
		tt := &b.Terminals[i]
		if tt.Result == "00" {
			continue // closed by an earlier attempt
		}
		if err := cl.reconcile0500(ctx, b, tt, txns); err != nil {
			return fmt.Errorf("terminal %s: %w", tt.TerminalID, err)
		}
		// Each terminal's closure is recorded as it happens.
		if err := cl.j.apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{b}}); err != nil {
			return err
		}
	}
	return cl.closed(ctx, b, txns)
}

// settle waits until every transaction of batch n has its outcome: owed
// messages are forwarded, flows in flight finish. Deferred requests wait
// for the next batch: they join the batch open when they are sent.
func (cl *closer) settle(ctx context.Context, n int) error {
	deadline := time.Now().Add(cl.cfg.SettleTimeout)
	for {
		txns, err := cl.j.store.Transactions(ctx, sterad.TransactionFilter{Batch: n})
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
		cl.setProgress(sterad.BatchProgress{Batch: n, Phase: "settling", ToUpload: len(open)})
		if _, err := cl.fw.flush(ctx); err != nil {
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
func (cl *closer) reconcile0500(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, txns []*sterad.Transaction) error {
	cl.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "reconciling", Terminal: tt.TerminalID})
	resp, err := cl.send0500(ctx, b, tt, false)
	if err != nil {
		return err
	}
	tt.Result = resp.ResponseCode
	switch resp.ResponseCode {
	case "00":
		cl.log.Info("batch reconciled", "batch", b.Number, "terminal", tt.TerminalID)
		return nil
	case "95":
		cl.log.Warn("batch totals differ from the acquirer's: uploading", "batch", b.Number, "terminal", tt.TerminalID)
	default:
		return sterad.Errorf(sterad.EConflict, "reconciliation_refused", "the acquirer answered %s to the reconciliation: %s", resp.ResponseCode, sterad.LookupResponse(resp.ResponseCode).Message)
	}
	var upload []*sterad.Transaction
	for _, t := range txns {
		if t.TerminalID == tt.TerminalID && t.Counted() {
			upload = append(upload, t)
		}
	}
	if err := cl.upload(ctx, b, tt, upload); err != nil {
		return err
	}
	resp, err = cl.send0500(ctx, b, tt, true)
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
func (cl *closer) send0500(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, afterUpload bool) (*sterad.HostMessage, error) {
	now := cl.clock.Now().UTC().Truncate(time.Second)
	stan, err := cl.j.store.NextSTAN(ctx, tt.TerminalID, now)
	if err != nil {
		return nil, err
	}
	totals := tt.Totals
	m := &sterad.HostMessage{
		MTI: sterad.MTIReconciliation, Transmitted: now, STAN: stan, LocalTime: now.In(cl.cfg.Location),
		TerminalID: tt.TerminalID, MerchantID: cl.cfg.MerchantID, Batch: b.Number, Totals: &totals, BatchUpload: afterUpload,
	}
	resp, err := cl.sd.send(ctx, m)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// upload sends one 0320 per financial transaction. Uploads of different
// STANs go out in parallel; the same STAN (possible in a batch that spans
// UTC days) never twice at once, since responses are matched on it.
func (cl *closer) upload(ctx context.Context, b *sterad.Batch, tt *sterad.TerminalTotals, txns []*sterad.Transaction) error {
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
	cl.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "uploading", Terminal: tt.TerminalID, ToUpload: len(txns)})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for grp := range groups {
				for _, t := range grp {
					ok, err := cl.upload0320(ctx, b, t)
					mu.Lock()
					switch {
					case err != nil && firstErr == nil:
						firstErr = err
					case ok:
						uploaded++
					case err == nil:
						skipped++
					}
					cl.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "uploading", Terminal: tt.TerminalID, Uploaded: uploaded + skipped, ToUpload: len(txns)})
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
		cl.log.Warn("transactions not uploaded: no card data is kept for them (refunds linked by TI only)", "batch", b.Number, "terminal", tt.TerminalID, "count", skipped)
	}
	return firstErr
}

// upload0320 uploads one transaction. It reports false without an error
// when the transaction has no card data to upload.
func (cl *closer) upload0320(ctx context.Context, b *sterad.Batch, t *sterad.Transaction) (bool, error) {
	card, err := cl.j.cardOf(ctx, t, nil)
	if err != nil {
		return false, err
	}
	defer card.Wipe()
	blind := cl.blind() && card == nil
	if card == nil && t.Token == "" && !(blind && t.HostTI != "") {
		return false, nil
	}
	now := cl.clock.Now().UTC().Truncate(time.Second)
	m := &sterad.HostMessage{
		MTI: sterad.MTIBatchUpload, Processing: processing(t), HasAmount: true, Amount: t.Amount, Currency: cl.cfg.Currency,
		Transmitted: laterThan(now, t.Transmitted), STAN: t.STAN, LocalTime: now.In(cl.cfg.Location), Entry: t.Entry,
		Condition: t.Condition, RRN: t.RRN, AuthCode: t.AuthCode, TerminalID: t.TerminalID, MerchantID: cl.cfg.MerchantID, Batch: b.Number,
	}
	switch {
	case card != nil:
		m.PAN, m.Expiry = card.PAN, card.Expiry
	case blind:
		// No card data: the host finds it by TI, and TK when the
		// transaction has one (acquirer-host.md §8).
		m.TI, m.Token = t.HostTI, t.Token
	default:
		m.Token = t.Token
	}
	for attempt := 0; ; attempt++ {
		resp, err := cl.sd.send(ctx, m)
		if err == nil {
			if resp.ResponseCode != "00" {
				cl.log.Warn("batch upload refused", "txn", t.ID, "code", resp.ResponseCode)
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
func (cl *closer) closed(ctx context.Context, b *sterad.Batch, txns []*sterad.Transaction) error {
	now := cl.clock.Now()
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
				n, err := cl.destroyClosedCards(ctx, b, t.ID, now)
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
	if cl.cfg.Summarize != nil {
		b.Days = cl.cfg.Summarize(txns)
	}
	if err := cl.j.apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{b}}); err != nil {
		return fmt.Errorf("record batch %06d closed: %w", b.Number, err)
	}
	cl.setProgress(sterad.BatchProgress{Batch: b.Number, Phase: "closed"})
	cl.log.Info("batch closed", "batch", b.Number, "terminals", len(b.Terminals), "cards_destroyed", destroyed)
	return nil
}

// destroyClosedCards destroys the card kept for transaction id (and for
// its pre-authorization, if it is a counted completion) once its batch
// closed, and returns how many cards it destroyed.
func (cl *closer) destroyClosedCards(ctx context.Context, b *sterad.Batch, id string, now time.Time) (int, error) {
	_, c, err := cl.j.modify(ctx, id, func(x *sterad.Transaction, c *txChange) error {
		if x.HasCard {
			x.HasCard = false
			x.Record(x.Step, now, fmt.Sprintf("card destroyed: batch %06d closed", b.Number))
			c.DestroyCards = append(c.DestroyCards, x.ID)
		}
		// A completed pre-authorization's card goes with its completion.
		if x.Op == sterad.OpCompletion && x.Counted() && x.Original != "" {
			o, err := cl.j.lockedOriginal(ctx, x, c)
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
