package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// outcomes owns what an answer does to the records: it journals a
// request's outcome (approved, declined, unknown and reversed, not sent and
// stood in or deferred), its effect on the original (refunded total,
// completion, void) and on the reservation, and undoes the links of a
// transaction that ends without effect. It owns the stand-in decision
// and its lock (standInMu orders stand-ins against the offline limits).
// It never sends: what is owed goes in the change's Enqueue for the
// forwarder. It may call the vault and the journal.
type outcomes struct {
	env
	j         *journal
	vt        *vault
	standInMu sync.Mutex // orders stand-in decisions against the offline limits
}

// record journals the outcome of a request's exchange. It returns the
// transaction and what it now owes the acquirer (the queue items its
// commit created); ok is false when nothing could be journaled. block is
// the encrypted card block the request carried, if any: a stand-in keeps
// it in its queue item for the advice, since the request never left.
func (oc *outcomes) record(ctx context.Context, id string, block *sterad.EncryptedBlock, resp *sterad.HostMessage, err error) (_ *sterad.Transaction, owed []sterad.QueueItem, ok bool) {
	t, c, uerr := oc.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		now := oc.clock.Now()
		switch {
		case errors.Is(err, sterad.ErrHostUnavailable):
			return oc.notSent(ctx, t, c, now, block)
		case err != nil:
			reason := "no answer from the acquirer"
			switch {
			case errors.Is(err, sterad.ErrBadAnswer):
				reason = sterad.ErrorMessage(err)
			case !errors.Is(err, sterad.ErrNoResponse):
				reason = "the request could not be completed: " + sterad.ErrorMessage(err)
				oc.log.Error("acquirer exchange failed", "txn", t.ID, "err", err)
			}
			return oc.unknownOutcome(t, c, now, reason)
		}
		return oc.applyResponse(ctx, t, c, resp, now)
	})
	if uerr != nil {
		oc.log.Error("record acquirer response", "txn", id, "err", uerr)
		return t, nil, false
	}
	return t, c.Enqueue, true
}

func queueKindOf(t *sterad.Transaction) sterad.QueueKind {
	if t.MTI == sterad.MTIVoid {
		return sterad.QueueVoid
	}
	return sterad.QueueAdvice
}

// applyResponse records a response the host sent to t's request.
func (oc *outcomes) applyResponse(ctx context.Context, t *sterad.Transaction, c *txChange, resp *sterad.HostMessage, now time.Time) error {
	info := sterad.LookupResponse(resp.ResponseCode)
	t.ResponseCode = resp.ResponseCode
	switch info.Outcome {
	case sterad.OutcomeUnknown:
		return oc.unknownOutcome(t, c, now, fmt.Sprintf("%s (%s)", info.Message, info.Code))
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
		return oc.approve(ctx, t, c, oc.nextStep(t), now)
	}
	if info.Code == "30" {
		oc.log.Error("acquirer answered format error: a gateway bug", "txn", t.ID, "mti", t.MTI, "stan", t.STAN)
	}
	oc.undo(ctx, c, t)
	t.Reason = fmt.Sprintf("declined: %s (%s)", info.Message, info.Code)
	if t.StandIn() {
		// The host accepted the report but did not charge the card: the
		// hotel carries the loss unless it collects another way.
		t.Reason = fmt.Sprintf("ALERT: approved offline, then declined by the issuer: %s (%s): collect another way", info.Message, info.Code)
		oc.log.Error("offline approval declined by the issuer: collect another way", "txn", t.ID, "op", t.Op,
			"amount", t.Amount.String(), "card", t.MaskedPAN, "code", info.Code)
	}
	return oc.end(t, c, sterad.StatusDeclined, oc.nextStep(t), now, t.Reason)
}

// nextStep is where a transaction goes once the host is done with it: the
// terminal still has to show the outcome, or nothing is left.
func (oc *outcomes) nextStep(t *sterad.Transaction) sterad.Step {
	if t.Terminal != "" && t.TerminalResult == "" {
		return sterad.StepOutcome
	}
	return sterad.StepDone
}

// unknownOutcome handles a request whose outcome is unknown: an
// authorization or financial request is reversed (never resent); an
// advice or a void is repeated until answered.
func (oc *outcomes) unknownOutcome(t *sterad.Transaction, c *txChange, now time.Time, reason string) error {
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
func (oc *outcomes) approve(ctx context.Context, t *sterad.Transaction, c *txChange, next sterad.Step, now time.Time) error {
	if t.Op == sterad.OpPreauth {
		t.AuthorizedTotal = t.Amount
	}
	switch t.Op {
	case sterad.OpIncremental:
		o, err := oc.j.lockedOriginal(ctx, t, c)
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
			if err := oc.vt.vaultCard(ctx, t, c, now); err != nil {
				return err
			}
		}
		c.DestroyCards = append(c.DestroyCards, t.ID)
		t.HasCard = false
	case sterad.OpNoShow:
		// Charged: the hotel has no reason to keep the card number.
		if err := oc.vt.noShowCharged(ctx, t, c, now); err != nil {
			return err
		}
	case sterad.OpPreauth, sterad.OpSale:
		// The guest checked in with a card at the terminal: the guarantee
		// card is no longer needed.
		if t.Terminal != "" {
			if err := oc.vt.checkedIn(ctx, t, c, now); err != nil {
				return err
			}
		}
	case sterad.OpVoid:
		o, err := oc.j.lockedOriginal(ctx, t, c)
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
		if err := oc.afterVoid(ctx, o, c, now); err != nil {
			return err
		}
	}
	return t.Transition(sterad.StatusApproved, next, now, "approved "+t.ResponseCode)
}

// afterVoid undoes what a voided transaction did to its own original.
func (oc *outcomes) afterVoid(ctx context.Context, o *sterad.Transaction, c *txChange, now time.Time) error {
	switch o.Op {
	case sterad.OpRefund, sterad.OpCompletion:
		orig, err := oc.j.lockedOriginal(ctx, o, c)
		if err != nil {
			return err
		}
		if o.Op == sterad.OpRefund {
			orig.Refunded = orig.Refunded.Sub(o.Amount)
		} else {
			orig.CompletedBy = ""
		}
	case sterad.OpPreauth:
		incs, err := oc.j.store.Transactions(ctx, sterad.TransactionFilter{Original: o.ID, Op: sterad.OpIncremental})
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
func (oc *outcomes) undo(ctx context.Context, c *txChange, t *sterad.Transaction) {
	if t.Original == "" {
		return
	}
	o, err := oc.j.lockedOriginal(ctx, t, c)
	if err != nil {
		oc.log.Error("undo link on original", "txn", t.ID, "original", t.Original, "err", err)
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
func (oc *outcomes) end(t *sterad.Transaction, c *txChange, status sterad.Status, step sterad.Step, now time.Time, note string) error {
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
