package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sterad/sterad"
)

// cardForNew returns the card a request without a terminal sends: the
// keyed card, or the card of its original while the store still holds it.
func (g *Gateway) cardForNew(ctx context.Context, p *plan) (*sterad.Card, error) {
	if p.card != nil {
		return p.card, nil
	}
	if p.original == nil {
		return nil, nil
	}
	c, err := g.store.OpenCard(ctx, p.original.ID)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, nil // linked by TI only
	}
	if err != nil {
		return nil, fmt.Errorf("open card of %s: %w", p.original.ID, err)
	}
	c.Entry = sterad.EntryKeyed
	return c, nil
}

// prepare assigns the request's MTI, STAN, DE 7, condition and batch, marks
// it sent and returns the message. The caller journals t before sending.
func (g *Gateway) prepare(ctx context.Context, t *sterad.Transaction, card *sterad.Card, orig *sterad.Transaction, now time.Time) (*sterad.HostMessage, error) {
	now = now.UTC().Truncate(time.Second)
	switch t.Op {
	case sterad.OpPreauth, sterad.OpIncremental, sterad.OpCardCheck:
		t.MTI = sterad.MTIAuthorization
	case sterad.OpCompletion:
		t.MTI = sterad.MTIAdvice
	case sterad.OpVoid:
		t.MTI = sterad.MTIVoid
	default:
		t.MTI = sterad.MTIFinancial
	}
	if card != nil && t.Entry == "" {
		t.Entry = card.Entry
	}
	if t.Entry == "" {
		t.Entry = sterad.EntryKeyed
	}
	if card != nil && t.MaskedPAN == "" {
		t.MaskedPAN, t.Brand = card.PAN.Masked(), card.Brand
	}
	t.Condition = g.condition(t)
	if t.Op == sterad.OpVoid {
		// A void carries the original's STAN; its DE 7 must differ from
		// the original's so the host cannot take it for a duplicate.
		t.STAN = orig.STAN
		t.Transmitted = laterThan(now, orig.Transmitted)
	} else {
		stan, err := g.store.NextSTAN(ctx, t.TerminalID, now)
		if err != nil {
			return nil, fmt.Errorf("assign STAN: %w", err)
		}
		t.STAN, t.Transmitted = stan, now
	}
	if t.MTI.Class() != "01" {
		b, err := g.store.CurrentBatch(ctx)
		if err != nil {
			return nil, err
		}
		t.Batch = b.Number
	}
	t.Step, t.UpdatedAt = sterad.StepSent, now
	return g.message(t, card, orig), nil
}

// laterThan returns now, or one second after prev when now is not later.
func laterThan(now, prev time.Time) time.Time {
	if !now.After(prev) {
		return prev.Add(time.Second)
	}
	return now
}

// condition returns DE 25 for t.
func (g *Gateway) condition(t *sterad.Transaction) string {
	switch t.Op {
	case sterad.OpPreauth, sterad.OpIncremental, sterad.OpCompletion:
		return sterad.CondPreauth
	case sterad.OpCardCheck:
		return sterad.CondVerification
	case sterad.OpNoShow:
		return sterad.CondMailPhone
	case sterad.OpSale:
		if t.Terminal == "" {
			return sterad.CondMailPhone // keyed: telephone or mail order
		}
	}
	return sterad.CondNormal
}

// run is the flow of one transaction, on the daemon's context.
func (g *Gateway) run(s *started) {
	t := s.txn
	defer g.finish(t)
	defer s.card.Wipe()
	ctx := g.ctx
	if s.plan.term != nil {
		g.runAtTerminal(ctx, s)
		return
	}
	g.exchange(ctx, t.ID, s.msg)
}

// exchange sends a journaled request and records what came of it. When
// the outcome is unknown the reversal is attempted at once (and repeated
// by the forwarder until answered).
func (g *Gateway) exchange(ctx context.Context, id string, msg *sterad.HostMessage) *sterad.Transaction {
	resp, err := g.send(ctx, msg)
	return g.record(ctx, id, resp, err)
}

// send exchanges msg with the acquirer. Every message the gateway sends
// goes through here, so that no answer is ever used unless CheckAnswer
// takes it as the answer to msg; one that is not is an unknown outcome
// (ErrBadAnswer), like no answer at all.
func (g *Gateway) send(ctx context.Context, msg *sterad.HostMessage) (*sterad.HostMessage, error) {
	resp, err := g.acquirer.Exchange(ctx, msg)
	if err != nil {
		return nil, err
	}
	if err := sterad.CheckAnswer(msg, resp); err != nil {
		g.log.Error("acquirer answer not taken: the outcome is unknown", "mti", msg.MTI, "stan", msg.STAN, "terminal", msg.TerminalID, "why", err.(*sterad.AnswerError).Why)
		return nil, err
	}
	return resp, nil
}

// record journals the outcome of a request's exchange.
func (g *Gateway) record(ctx context.Context, id string, resp *sterad.HostMessage, err error) *sterad.Transaction {
	t, c, uerr := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		now := g.clock.Now()
		switch {
		case errors.Is(err, sterad.ErrHostUnavailable):
			return g.notSent(ctx, t, c, now)
		case err != nil:
			reason := "no answer from the acquirer"
			switch {
			case errors.Is(err, sterad.ErrBadAnswer):
				reason = sterad.ErrorMessage(err)
			case !errors.Is(err, sterad.ErrNoResponse):
				reason = "the request could not be completed: " + sterad.ErrorMessage(err)
				g.log.Error("acquirer exchange failed", "txn", t.ID, "err", err)
			}
			return g.unknownOutcome(t, c, now, reason)
		}
		return g.applyResponse(ctx, t, c, resp, now)
	})
	if uerr != nil {
		g.log.Error("record acquirer response", "txn", id, "err", uerr)
		return t
	}
	for _, item := range c.Enqueue {
		if item.Kind == sterad.QueueReversal {
			if r := g.forwardItem(ctx, item); r != nil {
				t = r
			}
		}
	}
	g.wake()
	return t
}

func queueKindOf(t *sterad.Transaction) sterad.QueueKind {
	if t.MTI == sterad.MTIVoid {
		return sterad.QueueVoid
	}
	return sterad.QueueAdvice
}

// applyResponse records a response the host sent to t's request.
func (g *Gateway) applyResponse(ctx context.Context, t *sterad.Transaction, c *txChange, resp *sterad.HostMessage, now time.Time) error {
	info := sterad.LookupResponse(resp.ResponseCode)
	t.ResponseCode = resp.ResponseCode
	switch info.Outcome {
	case sterad.OutcomeUnknown:
		return g.unknownOutcome(t, c, now, fmt.Sprintf("%s (%s)", info.Message, info.Code))
	case sterad.OutcomeApproved:
		if resp.AuthCode != "" {
			t.AuthCode = resp.AuthCode
		}
		if resp.RRN != "" {
			t.RRN = resp.RRN
		}
		if resp.TI != "" {
			t.HostTI = resp.TI
		}
		if resp.Token != "" {
			t.Token = resp.Token
		}
		t.Reason = ""
		return g.approve(ctx, t, c, g.nextStep(t), now)
	}
	if info.Code == "30" {
		g.log.Error("acquirer answered format error: a gateway bug", "txn", t.ID, "mti", t.MTI, "stan", t.STAN)
	}
	g.undo(c, t)
	t.Reason = fmt.Sprintf("declined: %s (%s)", info.Message, info.Code)
	if t.StandIn() {
		// The host accepted the report but did not charge the card: the
		// hotel carries the loss unless it collects another way.
		t.Reason = fmt.Sprintf("ALERT: approved offline, then declined by the issuer: %s (%s): collect another way", info.Message, info.Code)
		g.log.Error("offline approval declined by the issuer: collect another way", "txn", t.ID, "op", t.Op,
			"amount", t.Amount.String(), "card", t.MaskedPAN, "code", info.Code)
	}
	return g.end(t, c, sterad.StatusDeclined, g.nextStep(t), now, t.Reason)
}

// nextStep is where a transaction goes once the host is done with it: the
// terminal still has to show the outcome, or nothing is left.
func (g *Gateway) nextStep(t *sterad.Transaction) sterad.Step {
	if t.Terminal != "" && t.TerminalResult == "" {
		return sterad.StepOutcome
	}
	return sterad.StepDone
}

// unknownOutcome handles a request whose outcome is unknown: an
// authorization or financial request is reversed (never resent); an
// advice or a void is repeated until answered.
func (g *Gateway) unknownOutcome(t *sterad.Transaction, c *txChange, now time.Time, reason string) error {
	switch t.MTI {
	case sterad.MTIAdvice, sterad.MTIVoid:
		t.Reason = reason + ": it will be repeated until the acquirer answers"
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: queueKindOf(t), CreatedAt: now, Attempts: 1, LastAttempt: now, LastError: reason})
		return t.Transition(sterad.StatusPending, sterad.StepQueued, now, reason)
	}
	t.Reason = reason + ": the authorization is being reversed and the card will not be charged"
	t.ReversalReason = sterad.RRTimeout
	t.ReversalTransmitted = laterThan(now.UTC().Truncate(time.Second), t.Transmitted)
	c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: sterad.QueueReversal, CreatedAt: now})
	return t.Transition(sterad.StatusUnknown, sterad.StepReversal, now, reason)
}

// approve records an approval and its effect on the original.
func (g *Gateway) approve(ctx context.Context, t *sterad.Transaction, c *txChange, next sterad.Step, now time.Time) error {
	if t.Op == sterad.OpPreauth {
		t.AuthorizedTotal = t.Amount
	}
	switch t.Op {
	case sterad.OpIncremental:
		o, err := g.lockedOriginal(ctx, t, c)
		if err != nil {
			return err
		}
		o.AuthorizedTotal = o.AuthorizedTotal.Add(t.Amount)
		// The incremental's own card copy is only for its reversal.
		c.DestroyCards = append(c.DestroyCards, t.ID)
		t.HasCard = false
	case sterad.OpCardCheck:
		// A guarantee card is kept in the vault for a possible no-show;
		// the card check's own copy is not needed any more.
		if t.Reference != "" && t.Stay != nil {
			if err := g.vaultCard(ctx, t, c, now); err != nil {
				return err
			}
		}
		c.DestroyCards = append(c.DestroyCards, t.ID)
		t.HasCard = false
	case sterad.OpNoShow:
		// Charged: the hotel has no reason to keep the card number.
		if err := g.noShowCharged(ctx, t, c, now); err != nil {
			return err
		}
	case sterad.OpPreauth, sterad.OpSale:
		// The guest checked in with a card at the terminal: the guarantee
		// card is no longer needed.
		if t.Terminal != "" {
			if err := g.checkedIn(ctx, t, c, now); err != nil {
				return err
			}
		}
	case sterad.OpVoid:
		o, err := g.lockedOriginal(ctx, t, c)
		if err != nil {
			return err
		}
		if err := o.Transition(sterad.StatusVoided, sterad.StepDone, now, "voided by "+t.ID); err != nil {
			return err
		}
		if o.HasCard {
			c.DestroyCards = append(c.DestroyCards, o.ID)
			o.HasCard = false
		}
		if err := g.afterVoid(ctx, o, c, now); err != nil {
			return err
		}
	}
	return t.Transition(sterad.StatusApproved, next, now, "approved "+t.ResponseCode)
}

// afterVoid undoes what a voided transaction did to its own original.
func (g *Gateway) afterVoid(ctx context.Context, o *sterad.Transaction, c *txChange, now time.Time) error {
	switch o.Op {
	case sterad.OpRefund, sterad.OpCompletion:
		orig, err := g.lockedOriginal(ctx, o, c)
		if err != nil {
			return err
		}
		if o.Op == sterad.OpRefund {
			orig.Refunded = orig.Refunded.Sub(o.Amount)
		} else {
			orig.CompletedBy = ""
		}
	case sterad.OpPreauth:
		incs, err := g.store.Transactions(ctx, sterad.TransactionFilter{Original: o.ID, Op: sterad.OpIncremental})
		if err != nil {
			return err
		}
		for _, inc := range incs {
			if inc.Status == sterad.StatusApproved {
				if err := inc.Transition(sterad.StatusVoided, sterad.StepDone, now, "pre-authorization voided"); err != nil {
					return err
				}
				c.Put = append(c.Put, inc)
			}
		}
	}
	return nil
}

// undo reverses, on the original, what t's creation did to it (refund
// total, completion link, void link) when t ends without effect.
func (g *Gateway) undo(c *txChange, t *sterad.Transaction) {
	if t.Original == "" {
		return
	}
	o, err := g.lockedOriginal(g.ctx, t, c)
	if err != nil {
		g.log.Error("undo link on original", "txn", t.ID, "original", t.Original, "err", err)
		return
	}
	switch t.Op {
	case sterad.OpRefund:
		o.Refunded = o.Refunded.Sub(t.Amount)
	case sterad.OpCompletion:
		if o.CompletedBy == t.ID {
			o.CompletedBy = ""
		}
	case sterad.OpVoid:
		if o.VoidedBy == t.ID {
			o.VoidedBy = ""
		}
	}
}

// end moves t to a final status and destroys its card: nothing will need
// it. A transaction already in that status (a reversal decided earlier and
// now confirmed) only moves on to step.
func (g *Gateway) end(t *sterad.Transaction, c *txChange, status sterad.Status, step sterad.Step, now time.Time, note string) error {
	if t.HasCard {
		c.DestroyCards = append(c.DestroyCards, t.ID)
		t.HasCard = false
	}
	if t.Status == status {
		t.Record(step, now, note)
		return nil
	}
	return t.Transition(status, step, now, note)
}

// lockedOriginal loads t's original into the change. The caller holds t's
// lock; the original's lock is taken for the rest of the modify call.
func (g *Gateway) lockedOriginal(ctx context.Context, t *sterad.Transaction, c *txChange) (*sterad.Transaction, error) {
	for _, x := range c.Put {
		if x.ID == t.Original {
			return x, nil
		}
	}
	unlock := g.locks.lock("txn:" + t.Original)
	c.unlocks = append(c.unlocks, unlock)
	o, err := g.store.Transaction(ctx, t.Original)
	if err != nil {
		return nil, fmt.Errorf("load original %s: %w", t.Original, err)
	}
	c.Put = append(c.Put, o)
	return o, nil
}

// txChange is a Change being built under transaction locks.
type txChange struct {
	sterad.Change
	unlocks []func()
}

// modify loads transaction id under its lock, lets fn change it (and add
// to the change), and commits. It returns the transaction as committed
// and the change (whose Enqueue items carry the Seq the store assigned).
//
// The store refuses a stale copy of any record the change puts (ErrStale:
// someone wrote it since it was read). modify then reads everything again
// and runs fn once more, so fn must decide from the records it is given,
// never from what an earlier call saw.
func (g *Gateway) modify(ctx context.Context, id string, fn func(t *sterad.Transaction, c *txChange) error) (*sterad.Transaction, *txChange, error) {
	defer g.lockReservationOf(ctx, id)() // before the transaction's: see Gateway.batchMu
	unlock := g.locks.lock("txn:" + id)
	defer unlock()
	for attempt := 1; ; attempt++ {
		t, c, err := g.modifyOnce(ctx, id, fn)
		if !errors.Is(err, sterad.ErrStale) || attempt == maxStaleRetries {
			return t, c, err
		}
		g.log.Warn("record changed while it was being updated: reading it again", "txn", id, "attempt", attempt)
	}
}

// maxStaleRetries bounds modify's re-reads: only a writer that ignores
// the locks can make one fail, so a few are plenty.
const maxStaleRetries = 5

func (g *Gateway) modifyOnce(ctx context.Context, id string, fn func(t *sterad.Transaction, c *txChange) error) (*sterad.Transaction, *txChange, error) {
	t, err := g.store.Transaction(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", id, err)
	}
	c := &txChange{Change: sterad.Change{Put: []*sterad.Transaction{t}}}
	defer func() {
		for _, u := range c.unlocks {
			u()
		}
		c.unlocks = nil
	}()
	if err := fn(t, c); err != nil {
		return t, c, err
	}
	if err := g.store.Apply(ctx, c.Change); err != nil {
		return t, c, err
	}
	return t, c, nil
}
