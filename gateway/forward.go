package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
)

// The forwarder sends what the gateway owes the acquirer: reversals of
// unknown outcomes (0420, then 0421 until answered), voids and advices
// whose answer was lost (repeated until answered). Each queued item reaches
// the host until it answers; it is removed in the same commit that records
// the answer.

// wake makes the forwarder look at the queue now.
func (g *Gateway) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// LinkChanged tells the gateway that the acquirer link changed state; when
// it comes back, the queue drains at once.
func (g *Gateway) LinkChanged(s sterad.LinkStatus) {
	if s.Online {
		g.wake()
	}
}

func (g *Gateway) forwardLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.RetryInterval)
	defer t.Stop()
	for {
		g.drain(ctx, false)
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
		case <-t.C:
		}
	}
}

// queuePriority orders the queue: reversals first, then voids, advices
// and deferred requests; FIFO within each.
var queuePriority = map[sterad.QueueKind]int{sterad.QueueReversal: 0, sterad.QueueVoid: 1, sterad.QueueAdvice: 2, sterad.QueueRequest: 3}

// drainWorkers is how many queued messages are in flight at once.
const drainWorkers = 16

// drain forwards every due item while the link is up: reversals first,
// then voids, advices and deferred requests, FIFO within each class and up
// to drainWorkers at a time. An item whose original transaction still has
// an item queued waits for it (a completion for its stood-in
// pre-authorization's 0100, a void or refund for its sale's advice): it
// goes in a later pass. Items older than the offline max_age are parked:
// kept and shown, but left for an operator. With all set (queue flush),
// every item goes now, parked ones included.
func (g *Gateway) drain(ctx context.Context, all bool) (sent int) {
	// One drain at a time: a flush waits for the background drain, then
	// sends what is left, so it returns only once all of it is answered.
	g.drainMu.Lock()
	defer g.drainMu.Unlock()
	for pass := 0; pass < 8; pass++ {
		n, waiting := g.drainPass(ctx, all)
		sent += n
		if n == 0 || waiting == 0 {
			return sent
		}
	}
	return sent
}

// drainPass forwards the items that are ready and returns how many were
// sent and how many wait for their original.
func (g *Gateway) drainPass(ctx context.Context, all bool) (sent, waiting int) {
	items, err := g.store.Queue(ctx)
	if err != nil {
		g.log.Error("read queue", "err", err)
		return 0, 0
	}
	clock := g.clock.Now()
	g.park(ctx, items, clock)
	if !g.acquirer.Status().Online {
		return 0, 0
	}
	queued := make(map[string]bool, len(items))
	for _, it := range items {
		queued[it.TxnID] = true
	}
	slices.SortStableFunc(items, func(a, b sterad.QueueItem) int {
		return cmp.Or(cmp.Compare(queuePriority[a.Kind], queuePriority[b.Kind]), cmp.Compare(a.Seq, b.Seq))
	})
	var class []sterad.QueueItem
	flush := func() {
		sent += g.forwardAll(ctx, class)
		class = class[:0]
	}
	for i, it := range items {
		if i > 0 && it.Kind != items[i-1].Kind {
			flush()
		}
		if ctx.Err() != nil || !g.acquirer.Status().Online {
			return sent, waiting
		}
		if !all && (it.Parked || it.Attempts > 0 && clock.Sub(it.LastAttempt) < g.cfg.RetryInterval) {
			continue
		}
		if t, err := g.store.Transaction(ctx, it.TxnID); err == nil && t.Original != "" && queued[t.Original] {
			waiting++
			continue
		}
		class = append(class, it)
	}
	flush()
	return sent, waiting
}

// forwardAll forwards items in order, drainWorkers at a time.
func (g *Gateway) forwardAll(ctx context.Context, items []sterad.QueueItem) int {
	work := make(chan sterad.QueueItem)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < min(drainWorkers, len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if ctx.Err() == nil && g.acquirer.Status().Online && g.forwardItem(ctx, it) != nil {
					sent.Add(1)
				}
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	return int(sent.Load())
}

// park marks the items older than the offline max_age.
func (g *Gateway) park(ctx context.Context, items []sterad.QueueItem, now time.Time) {
	maxAge := g.cfg.Offline.MaxAge
	if maxAge <= 0 {
		return
	}
	for i := range items {
		if items[i].Parked || now.Sub(items[i].CreatedAt) <= maxAge {
			continue
		}
		items[i].Parked = true
		if err := g.store.Apply(ctx, sterad.Change{UpdateQueue: []sterad.QueueItem{items[i]}}); err != nil {
			g.log.Error("park queue item", "txn", items[i].TxnID, "err", err)
			continue
		}
		g.log.Warn("queue item parked: older than offline max_age, an operator must flush it", "txn", items[i].TxnID, "kind", items[i].Kind, "since", items[i].CreatedAt)
	}
}

// Flush forwards every queued item now, parked ones included, and returns
// how many were sent.
func (g *Gateway) Flush(ctx context.Context) (int, error) {
	if !g.acquirer.Status().Online {
		return 0, sterad.ErrHostUnavailable
	}
	return g.drain(ctx, true), nil
}

// Queue lists the store-and-forward queue.
func (g *Gateway) Queue(ctx context.Context) ([]sterad.QueueItem, error) { return g.store.Queue(ctx) }

// forwardItem sends one queued item once and records the answer (or the
// attempt). It returns the transaction as recorded, nil if the item was
// already being forwarded.
func (g *Gateway) forwardItem(ctx context.Context, it sterad.QueueItem) *sterad.Transaction {
	if !g.claim(it.TxnID) {
		return nil
	}
	defer g.unclaim(it.TxnID)

	if it.Kind == sterad.QueueRequest {
		return g.sendDeferred(ctx, it)
	}
	t, err := g.store.Transaction(ctx, it.TxnID)
	if err != nil {
		g.log.Error("queued transaction", "txn", it.TxnID, "err", err)
		return nil
	}
	if !owes(t, it.Kind) {
		// Answered or withdrawn since the queue was read.
		return nil
	}
	if t.Original != "" {
		switch x, err := g.checkQueuedLink(ctx, it); {
		case errors.Is(err, errWait), errors.Is(err, errStale):
			return nil
		case err != nil:
			g.log.Error("check queued message against its original", "txn", it.TxnID, "err", err)
			return nil
		case x != nil:
			return x // withdrawn: nothing to send
		}
	}
	msg, err := g.queuedMessage(ctx, t, it)
	if err != nil {
		g.log.Error("build queued message", "txn", t.ID, "kind", it.Kind, "err", err)
		return t
	}
	resp, xerr := g.send(ctx, msg)
	if xerr == nil && sterad.LookupResponse(resp.ResponseCode).Outcome == sterad.OutcomeUnknown {
		xerr = fmt.Errorf("%w: %s", sterad.ErrNoResponse, sterad.LookupResponse(resp.ResponseCode).Message)
	}
	t, _, err = g.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		now := g.clock.Now()
		it := it // modify may call this again: start from the item as read
		if xerr != nil {
			it.Attempts++
			it.LastAttempt = now
			it.LastError = sterad.ErrorMessage(xerr)
			if errors.Is(xerr, sterad.ErrHostUnavailable) {
				it.Attempts-- // never sent: the next send is not a repeat
				it.LastError = "the acquirer is unreachable"
			}
			c.UpdateQueue = append(c.UpdateQueue, it)
			return nil
		}
		c.Dequeue = append(c.Dequeue, it.Seq)
		if it.Kind != sterad.QueueReversal {
			return g.applyResponse(ctx, t, c, resp, now)
		}
		if resp.ResponseCode != "00" {
			// The host refused the reversal: a person must look.
			g.log.Error("reversal refused by the acquirer", "txn", t.ID, "code", resp.ResponseCode)
			t.Reason = fmt.Sprintf("the acquirer refused the reversal (%s): check with the acquirer", resp.ResponseCode)
			t.Record(g.nextStep(t), now, t.Reason)
			return nil
		}
		g.undo(c, t)
		t.Reason = "reversed: the card was not charged"
		return g.end(t, c, sterad.StatusReversed, g.nextStep(t), now, "reversal confirmed")
	})
	if err != nil {
		g.log.Error("record queued answer", "txn", it.TxnID, "err", err)
	}
	return t
}

// claim marks a transaction's queued message as handled by the caller:
// the forwarder and a withdrawal (a stand-in the customer never saw) never
// act on the same one at once. It reports false when another holds it.
func (g *Gateway) claim(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.forwarding == nil {
		g.forwarding = map[string]bool{}
	}
	if g.forwarding[id] {
		return false
	}
	g.forwarding[id] = true
	return true
}

func (g *Gateway) unclaim(id string) {
	g.mu.Lock()
	delete(g.forwarding, id)
	g.mu.Unlock()
}

// owes reports whether t still owes the message of a queue item of kind
// k. Every item is created in the commit that moves its transaction to
// that step and removed in the commit that moves it on, so the step says
// whether an item read a moment ago is still due.
func owes(t *sterad.Transaction, k sterad.QueueKind) bool {
	if k == sterad.QueueReversal {
		return t.Step == sterad.StepReversal
	}
	return t.Step == sterad.StepQueued
}

// queuedMessage rebuilds the message an item sends.
func (g *Gateway) queuedMessage(ctx context.Context, t *sterad.Transaction, it sterad.QueueItem) (*sterad.HostMessage, error) {
	orig, err := g.originalOf(ctx, t)
	if err != nil {
		return nil, err
	}
	card, err := g.cardOf(ctx, t, orig)
	if err != nil {
		return nil, err
	}
	defer card.Wipe()
	switch it.Kind {
	case sterad.QueueReversal:
		b, err := g.store.CurrentBatch(ctx)
		if err != nil {
			return nil, err
		}
		return g.reversalMessage(t, card, it.Attempts > 0, b.Number), nil
	case sterad.QueueVoid:
		return g.voidMessage(t, orig, card), nil
	default:
		return g.repeatMessage(t, card, orig, it.Attempts > 0), nil
	}
}

// cardOf opens the card a later message of t carries: t's own copy, or its
// original's (a void uses the voided transaction's card). nil when the
// store no longer holds one.
func (g *Gateway) cardOf(ctx context.Context, t, orig *sterad.Transaction) (*sterad.Card, error) {
	owner := t.ID
	if t.Op == sterad.OpVoid && orig != nil {
		owner = orig.ID
	}
	c, err := g.store.OpenCard(ctx, owner)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open card of %s: %w", owner, err)
	}
	return c, nil
}

// sendDeferred sends a request accepted while the acquirer was unreachable
// (a stood-in pre-authorization, a refund, a no-show charge) as its normal
// message. It is journaled with a fresh STAN and DE 7 and leaves the queue
// in the same commit: from then on it is an ordinary sent request, reversed
// if its answer is lost — never resent.
func (g *Gateway) sendDeferred(ctx context.Context, it sterad.QueueItem) *sterad.Transaction {
	var msg *sterad.HostMessage
	withdrawn := false
	t, _, err := g.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		if !owes(t, it.Kind) {
			return errStale
		}
		withdrawn = false
		var orig *sterad.Transaction
		if t.Original != "" {
			o, err := g.lockedOriginal(ctx, t, c)
			if err != nil {
				return err
			}
			if done, err := g.withdrawIfUnlinked(t, o, c, it); done || err != nil {
				withdrawn = done
				return err
			}
			orig = o
		}
		card, err := g.cardOf(ctx, t, orig)
		if err != nil {
			return err
		}
		defer card.Wipe()
		g.batchMu.RLock() // until the commit: see Gateway.batchMu
		c.unlocks = append(c.unlocks, g.batchMu.RUnlock)
		now := g.clock.Now()
		m, err := g.prepare(ctx, t, card, orig, now)
		if err != nil {
			return err
		}
		msg = m
		c.Dequeue = append(c.Dequeue, it.Seq)
		t.Record(sterad.StepSent, now, "deferred request sent")
		return nil
	})
	switch {
	case errors.Is(err, errStale), errors.Is(err, errWait):
		return nil
	case err != nil:
		g.log.Error("send deferred request", "txn", it.TxnID, "err", err)
		return t
	case withdrawn:
		return t
	}
	return g.exchange(ctx, t.ID, msg)
}

// errStale: a queue item was answered or withdrawn since it was read.
var errStale = errors.New("queue item no longer due")

// errWait: a queue item's original has no outcome yet: it goes later.
var errWait = errors.New("queue item waits for its original")

// checkQueuedLink checks, under the locks of a queued transaction and its
// original, that the original still allows the queued message
// (LinkStillValid); when it does not, the message is withdrawn in the
// same commit and the transaction returned. errWait: not yet.
func (g *Gateway) checkQueuedLink(ctx context.Context, it sterad.QueueItem) (*sterad.Transaction, error) {
	withdrawn := false
	t, _, err := g.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		if !owes(t, it.Kind) {
			return errStale
		}
		o, err := g.lockedOriginal(ctx, t, c)
		if err != nil {
			return err
		}
		withdrawn, err = g.withdrawIfUnlinked(t, o, c, it)
		if err == nil && !withdrawn {
			c.Put = nil // nothing to write
		}
		return err
	})
	if err != nil || !withdrawn {
		return nil, err
	}
	return t, nil
}

// withdrawIfUnlinked ends t without sending it when its original no
// longer allows it: the queue item goes, its link on the original is
// released, and the clerk is told why.
func (g *Gateway) withdrawIfUnlinked(t, o *sterad.Transaction, c *txChange, it sterad.QueueItem) (bool, error) {
	wait, why := sterad.LinkStillValid(t, o)
	switch {
	case wait:
		return false, errWait
	case why == nil:
		return false, nil
	}
	now := g.clock.Now()
	c.Dequeue = append(c.Dequeue, it.Seq)
	g.undo(c, t)
	t.ResponseCode = ""
	t.Reason = "not sent: " + sterad.ErrorMessage(why)
	if t.Op == sterad.OpCompletion {
		// The guest has checked out against an authorization that the
		// issuer refused: the hotel must collect another way.
		t.Reason = "ALERT: " + t.Reason + ": collect the stay another way"
	}
	g.log.Warn("queued message withdrawn: its original no longer allows it", "txn", t.ID, "op", t.Op, "original", o.ID, "original_status", o.Status)
	return true, g.end(t, c, sterad.StatusDeclined, g.nextStep(t), now, t.Reason)
}

// originalOf loads t's original transaction, nil when it has none.
func (g *Gateway) originalOf(ctx context.Context, t *sterad.Transaction) (*sterad.Transaction, error) {
	if t.Original == "" {
		return nil, nil
	}
	o, err := g.store.Transaction(ctx, t.Original)
	if err != nil {
		return nil, fmt.Errorf("load original %s: %w", t.Original, err)
	}
	return o, nil
}
