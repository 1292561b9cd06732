package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
)

// forwarder owns store and forward: the queue of what sterad owes the
// acquirer (reversals, voids and advices whose answer was lost, stood-in
// and deferred requests), its drain (one at a time), and the claims that
// keep two goroutines off one queued message. It also makes a request's
// first exchange (exchange), so that a reversal it leads to is tried at
// once. It may call outcomes, the sender and the journal.
type forwarder struct {
	env
	j  *journal
	sd *sender
	oc *outcomes

	exch *exchanges // the exchanges under way, which a stop lets finish

	kick    chan struct{} // wakes the loop
	drainMu sync.Mutex    // one queue drain at a time

	mu         sync.Mutex
	forwarding map[string]bool // transactions whose queued message is in flight

	// While the link is down the queue is read only to park the items
	// older than max_age. parkRead is when it was last read, parkDue when
	// its oldest unparked item becomes old enough then (parkRead + max_age
	// if none). An item queued later is younger, so until parkDue there is
	// nothing to park and the offline pass does not read the queue: a long
	// outage may queue 100,000 stand-ins, and decoding them all every
	// retry interval kept the daemon's heap going. Guarded by drainMu.
	parkRead, parkDue time.Time
}

func newForwarder(e env, j *journal, sd *sender, oc *outcomes, exch *exchanges) *forwarder {
	return &forwarder{env: e, j: j, sd: sd, oc: oc, exch: exch, kick: make(chan struct{}, 1), forwarding: map[string]bool{}}
}

// exchange sends a journaled request and records what came of it. When
// the outcome is unknown the reversal is attempted at once (and repeated
// by the forwarder until answered).
func (fw *forwarder) exchange(ctx context.Context, id string, msg *sterad.HostMessage) *sterad.Transaction {
	defer fw.exch.begin()()
	resp, err := fw.sd.send(ctx, msg)
	t, owed, ok := fw.oc.record(ctx, id, blockOf(msg), resp, err)
	if !ok {
		return t
	}
	for _, item := range owed {
		if item.Kind == sterad.QueueReversal {
			if r := fw.forwardItem(ctx, item); r != nil {
				t = r
			}
		}
	}
	if len(owed) > 0 {
		fw.wake() // what is still owed goes with the queue
	}
	return t
}

// The forwarder sends what the gateway owes the acquirer: reversals of
// unknown outcomes (0420, then 0421 until answered), voids and advices
// whose answer was lost (repeated until answered). Each queued item reaches
// the host until it answers; it is removed in the same commit that records
// the answer.

// wake makes the forwarder look at the queue now.
func (fw *forwarder) wake() {
	select {
	case fw.kick <- struct{}{}:
	default:
	}
}

// linkChanged tells the gateway that the acquirer link changed state; when
// it comes back, the queue drains at once.
func (fw *forwarder) linkChanged(s sterad.LinkStatus) {
	if s.Online {
		fw.wake()
	}
}

func (fw *forwarder) loop(ctx context.Context) {
	t := time.NewTicker(fw.cfg.RetryInterval)
	defer t.Stop()
	for {
		fw.drain(ctx, false)
		select {
		case <-ctx.Done():
			return
		case <-fw.kick:
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
func (fw *forwarder) drain(ctx context.Context, all bool) (sent int) {
	// One drain at a time: a flush waits for the background drain, then
	// sends what is left, so it returns only once all of it is answered.
	fw.drainMu.Lock()
	defer fw.drainMu.Unlock()
	for pass := 0; pass < 8; pass++ {
		n, waiting := fw.drainPass(ctx, all)
		sent += n
		if n == 0 || waiting == 0 {
			return sent
		}
	}
	return sent
}

// drainPass forwards the items that are ready and returns how many were
// sent and how many wait for their original.
func (fw *forwarder) drainPass(ctx context.Context, all bool) (sent, waiting int) {
	clock := fw.clock.Now()
	// Offline with nothing to park: nothing to do (a clock that stepped
	// back since the last read reads again).
	if !all && !fw.sd.online() && !clock.Before(fw.parkRead) && clock.Before(fw.parkDue) {
		return 0, 0
	}
	items, err := fw.j.store.Queue(ctx)
	if err != nil {
		fw.log.Error("read queue", "err", err)
		return 0, 0
	}
	fw.parkRead, fw.parkDue = clock, time.Time{}
	if fw.park(ctx, items, clock) {
		fw.parkDue = fw.nextPark(items, clock)
	}
	if !fw.sd.online() {
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
		sent += fw.forwardAll(ctx, class)
		class = class[:0]
	}
	for i, it := range items {
		if i > 0 && it.Kind != items[i-1].Kind {
			flush()
		}
		if ctx.Err() != nil || !fw.sd.online() {
			return sent, waiting
		}
		if !all && (it.Parked || it.Attempts > 0 && clock.Sub(it.LastAttempt) < fw.cfg.RetryInterval) {
			continue
		}
		if t, err := fw.j.store.Transaction(ctx, it.TxnID); err == nil && t.Original != "" && queued[t.Original] {
			waiting++
			continue
		}
		class = append(class, it)
	}
	flush()
	return sent, waiting
}

// forwardAll forwards items in order, drainWorkers at a time.
func (fw *forwarder) forwardAll(ctx context.Context, items []sterad.QueueItem) int {
	work := make(chan sterad.QueueItem)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < min(drainWorkers, len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if ctx.Err() == nil && fw.sd.online() && fw.forwardItem(ctx, it) != nil {
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

// park marks the items older than the offline max_age. It reports false
// when one could not be marked.
func (fw *forwarder) park(ctx context.Context, items []sterad.QueueItem, now time.Time) bool {
	maxAge := fw.cfg.Offline.MaxAge
	if maxAge <= 0 {
		return true
	}
	ok := true
	for i := range items {
		if items[i].Parked || now.Sub(items[i].CreatedAt) <= maxAge {
			continue
		}
		items[i].Parked = true
		if err := fw.j.apply(ctx, sterad.Change{UpdateQueue: []sterad.QueueItem{items[i]}}); err != nil {
			fw.log.Error("park queue item", "txn", items[i].TxnID, "err", err)
			ok = false
			continue
		}
		fw.log.Warn("queue item parked: older than offline max_age, an operator must flush it", "txn", items[i].TxnID, "kind", items[i].Kind, "since", items[i].CreatedAt)
	}
	return ok
}

// primePark tells the forwarder what the start's walk over the queue
// found at now: the oldest item not parked (zero: none). Unless one is
// due to be parked already, the offline passes then read the queue only
// once one is: not at once, as the start has just walked it.
func (fw *forwarder) primePark(now, oldestUnparked time.Time) {
	var items []sterad.QueueItem
	if !oldestUnparked.IsZero() {
		if maxAge := fw.cfg.Offline.MaxAge; maxAge > 0 && now.Sub(oldestUnparked) > maxAge {
			return
		}
		items = []sterad.QueueItem{{CreatedAt: oldestUnparked}}
	}
	fw.drainMu.Lock()
	defer fw.drainMu.Unlock()
	fw.parkRead, fw.parkDue = now, fw.nextPark(items, now)
}

// nextPark is when the first of items (read at now) not parked yet, or
// one queued after now, becomes older than the offline max_age.
func (fw *forwarder) nextPark(items []sterad.QueueItem, now time.Time) time.Time {
	maxAge := fw.cfg.Offline.MaxAge
	if maxAge <= 0 {
		return now.AddDate(100, 0, 0) // never
	}
	due := now.Add(maxAge)
	for _, it := range items {
		if !it.Parked && it.CreatedAt.Add(maxAge).Before(due) {
			due = it.CreatedAt.Add(maxAge)
		}
	}
	return due
}

// flush forwards every queued item now, parked ones included, and returns
// how many were sent.
func (fw *forwarder) flush(ctx context.Context) (int, error) {
	if !fw.sd.online() {
		return 0, sterad.ErrHostUnavailable
	}
	return fw.drain(ctx, true), nil
}

// forwardItem sends one queued item once and records the answer (or the
// attempt). It returns the transaction as recorded, nil if the item was
// already being forwarded.
func (fw *forwarder) forwardItem(ctx context.Context, it sterad.QueueItem) *sterad.Transaction {
	if !fw.claim(it.TxnID) {
		return nil
	}
	defer fw.unclaim(it.TxnID)

	if it.Kind == sterad.QueueRequest {
		return fw.sendDeferred(ctx, it)
	}
	t, err := fw.j.store.Transaction(ctx, it.TxnID)
	if err != nil {
		fw.log.Error("queued transaction", "txn", it.TxnID, "err", err)
		return nil
	}
	if !owes(t, it.Kind) {
		// Answered or withdrawn since the queue was read.
		return nil
	}
	if t.Original != "" {
		switch x, err := fw.checkQueuedLink(ctx, it); {
		case errors.Is(err, errWait), errors.Is(err, errStale):
			return nil
		case err != nil:
			fw.log.Error("check queued message against its original", "txn", it.TxnID, "err", err)
			return nil
		case x != nil:
			return x // withdrawn: nothing to send
		}
	}
	msg, err := fw.queuedMessage(ctx, t, it)
	if errors.Is(err, sterad.ErrCardKeyLost) {
		return fw.cardKeyLost(ctx, it)
	}
	if err != nil {
		fw.log.Error("build queued message", "txn", t.ID, "kind", it.Kind, "err", err)
		return t
	}
	defer fw.exch.begin()()
	resp, xerr := fw.sd.send(ctx, msg)
	if xerr == nil && sterad.LookupResponse(resp.ResponseCode).Outcome == sterad.OutcomeUnknown {
		xerr = fmt.Errorf("%w: %s", sterad.ErrNoResponse, sterad.LookupResponse(resp.ResponseCode).Message)
	}
	t, _, err = fw.j.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		now := fw.clock.Now()
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
			return fw.oc.applyResponse(ctx, t, c, resp, now)
		}
		if resp.ResponseCode != "00" {
			// The host refused the reversal: a person must look.
			fw.log.Error("reversal refused by the acquirer", "txn", t.ID, "code", resp.ResponseCode)
			t.Reason = fmt.Sprintf("the acquirer refused the reversal (%s): check with the acquirer", resp.ResponseCode)
			t.Record(fw.oc.nextStep(t), now, t.Reason)
			return nil
		}
		fw.oc.undo(ctx, c, t)
		t.Reason = "reversed: the card was not charged"
		return fw.oc.end(t, c, sterad.StatusReversed, fw.oc.nextStep(t), now, "reversal confirmed")
	})
	if err != nil {
		fw.log.Error("record queued answer", "txn", it.TxnID, "err", err)
	}
	return t
}

// claim marks a transaction's queued message as handled by the caller:
// the forwarder and a withdrawal (a stand-in the customer never saw) never
// act on the same one at once. It reports false when another holds it.
func (fw *forwarder) claim(id string) bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.forwarding[id] {
		return false
	}
	fw.forwarding[id] = true
	return true
}

func (fw *forwarder) unclaim(id string) {
	fw.mu.Lock()
	delete(fw.forwarding, id)
	fw.mu.Unlock()
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
func (fw *forwarder) queuedMessage(ctx context.Context, t *sterad.Transaction, it sterad.QueueItem) (*sterad.HostMessage, error) {
	orig, err := fw.j.originalOf(ctx, t)
	if err != nil {
		return nil, err
	}
	card, err := fw.queuedCard(ctx, t, orig, it)
	if err != nil {
		return nil, err
	}
	defer card.Wipe()
	switch it.Kind {
	case sterad.QueueReversal:
		b, err := fw.j.store.CurrentBatch(ctx)
		if err != nil {
			return nil, err
		}
		return fw.sd.reversalMessage(t, card, it.Attempts > 0, b.Number), nil
	case sterad.QueueVoid:
		return fw.sd.voidMessage(t, orig, card), nil
	default:
		return fw.sd.repeatMessage(t, card, orig, it.Attempts > 0), nil
	}
}

// sendDeferred sends a request accepted while the acquirer was unreachable
// (a stood-in pre-authorization, a refund, a no-show charge) as its normal
// message. It is journaled with a fresh STAN and DE 7 and leaves the queue
// in the same commit: from then on it is an ordinary sent request, reversed
// if its answer is lost — never resent.
func (fw *forwarder) sendDeferred(ctx context.Context, it sterad.QueueItem) *sterad.Transaction {
	var msg *sterad.HostMessage
	withdrawn := false
	t, _, err := fw.j.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		if !owes(t, it.Kind) {
			return errStale
		}
		withdrawn = false
		var orig *sterad.Transaction
		if t.Original != "" {
			o, err := fw.j.lockedOriginal(ctx, t, c)
			if err != nil {
				return err
			}
			if done, err := fw.withdrawIfUnlinked(ctx, t, o, c, it); done || err != nil {
				withdrawn = done
				return err
			}
			orig = o
		}
		card, err := fw.queuedCard(ctx, t, orig, it)
		if err != nil {
			return err
		}
		defer card.Wipe()
		c.unlocks = append(c.unlocks, fw.j.shareBatch()) // until the commit
		now := fw.clock.Now()
		m, err := fw.sd.prepare(ctx, t, card, orig, now)
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
	case errors.Is(err, sterad.ErrCardKeyLost):
		return fw.cardKeyLost(ctx, it)
	case err != nil:
		fw.log.Error("send deferred request", "txn", it.TxnID, "err", err)
		return t
	case withdrawn:
		return t
	}
	return fw.exchange(ctx, t.ID, msg)
}

// blockOf returns the encrypted card block a request carries (DE 48 KS
// and EC), nil when it carries none.
func blockOf(m *sterad.HostMessage) *sterad.EncryptedBlock {
	if m == nil || m.EncryptedCard == "" {
		return nil
	}
	return &sterad.EncryptedBlock{KSN: m.KSN, Data: m.EncryptedCard}
}

// queuedCard is the card a stood-in transaction's queued message carries:
// the block that waited in the queue item (it never reached the host: a
// stand-in is decided only when the request was certainly not sent), or
// the card the store keeps (card-data-clear).
func (fw *forwarder) queuedCard(ctx context.Context, t, orig *sterad.Transaction, it sterad.QueueItem) (*sterad.Card, error) {
	if it.Block != nil {
		return &sterad.Card{Masked: t.MaskedPAN, Brand: t.Brand, Entry: t.Entry, Encrypted: it.Block}, nil
	}
	return fw.j.cardOf(ctx, t, orig)
}

// errStale: a queue item was answered or withdrawn since it was read.
var errStale = errors.New("queue item no longer due")

// errWait: a queue item's original has no outcome yet: it goes later.
var errWait = errors.New("queue item waits for its original")

// checkQueuedLink checks, under the locks of a queued transaction and its
// original, that the original still allows the queued message
// (LinkStillValid); when it does not, the message is withdrawn in the
// same commit and the transaction returned. errWait: not yet.
func (fw *forwarder) checkQueuedLink(ctx context.Context, it sterad.QueueItem) (*sterad.Transaction, error) {
	withdrawn := false
	t, _, err := fw.j.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		if !owes(t, it.Kind) {
			return errStale
		}
		o, err := fw.j.lockedOriginal(ctx, t, c)
		if err != nil {
			return err
		}
		withdrawn, err = fw.withdrawIfUnlinked(ctx, t, o, c, it)
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
func (fw *forwarder) withdrawIfUnlinked(ctx context.Context, t, o *sterad.Transaction, c *txChange, it sterad.QueueItem) (bool, error) {
	wait, why := sterad.LinkStillValid(t, o)
	switch {
	case wait:
		return false, errWait
	case why == nil:
		return false, nil
	}
	now := fw.clock.Now()
	c.Dequeue = append(c.Dequeue, it.Seq)
	fw.oc.undo(ctx, c, t)
	t.ResponseCode = ""
	t.Reason = "not sent: " + sterad.ErrorMessage(why)
	if t.Op == sterad.OpCompletion {
		// The guest has checked out against an authorization that the
		// issuer refused: the hotel must collect another way.
		t.Reason = "ALERT: " + t.Reason + ": collect the stay another way"
	}
	fw.log.Warn("queued message withdrawn: its original no longer allows it", "txn", t.ID, "op", t.Op, "original", o.ID, "original_status", o.Status)
	return true, fw.oc.end(t, c, sterad.StatusDeclined, fw.oc.nextStep(t), now, t.Reason)
}

// cancelStandIn withdraws an offline approval the customer never saw
// through: its advice has not been sent, so nothing is owed to the host.
// It reports false when there is nothing to withdraw (the advice was
// already answered: the caller reverses instead). It waits for a
// forwarding of the same advice under way to finish first.
func (fw *forwarder) cancelStandIn(ctx context.Context, id, reason string) bool {
	for !fw.claim(id) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer fw.unclaim(id)
	done := false
	_, _, err := fw.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		done = false
		if t.Status != sterad.StatusStoodIn || t.Step != sterad.StepQueued {
			return nil
		}
		items, err := fw.j.store.Queue(ctx)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.TxnID == t.ID {
				c.Dequeue = append(c.Dequeue, it.Seq)
			}
		}
		done = true
		t.Reason = reason + " (approved offline): nothing was sent, nothing charged"
		return fw.oc.end(t, c, sterad.StatusReversed, sterad.StepDone, fw.clock.Now(), t.Reason)
	})
	if err != nil {
		fw.log.Error("withdraw offline approval", "txn", id, "err", err)
	}
	return done
}

// cardKeyLost handles a queued message whose card the store keeps but
// cannot read (its key is lost or damaged: sterad.ErrCardKeyLost). The
// message is never sent without its card data — the host would decline
// it and the clerk would blame the issuer. It is parked, and the
// transaction raises an alert that names the cause, once.
func (fw *forwarder) cardKeyLost(ctx context.Context, it sterad.QueueItem) *sterad.Transaction {
	t, _, err := fw.j.modify(ctx, it.TxnID, func(t *sterad.Transaction, c *txChange) error {
		if strings.HasPrefix(t.Reason, cardKeyLostAlert) {
			c.Put = nil
			return nil
		}
		it := it
		it.Parked, it.LastError = true, "the card's key is lost in this store"
		c.UpdateQueue = append(c.UpdateQueue, it)
		t.Reason = cardKeyLostAlert + ": nothing was sent. Restore the store's keys from a backup (sterad restore), then flush the queue; or collect another way"
		t.Record(t.Step, fw.clock.Now(), t.Reason)
		return nil
	})
	if err != nil {
		fw.log.Error("record a lost card key", "txn", it.TxnID, "err", err)
		return t
	}
	fw.log.Error("a queued message's card cannot be read: its key is lost; parked, not sent", "txn", it.TxnID, "kind", it.Kind)
	return t
}

// cardKeyLostAlert begins the reason of a transaction whose kept card
// cannot be read: an ALERT, shown with the others.
const cardKeyLostAlert = "ALERT: the card kept for this transaction cannot be read (its key is lost or damaged in this store)"
