package sterad

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// Linked transactions. An incremental, a completion, a refund or a void
// acts on an original, and what it may do depends on what is already
// linked to that original: a sale with refunds cannot be voided, a sale
// being voided cannot be refunded, a pre-authorization is completed once.
// These rules live here and nowhere else. Every path asks them: a new
// request (AdmitLink, under the original's lock, before the commit that
// creates it) and a queued message about to be sent (LinkStillValid, when
// the original may have changed while the message waited: an offline
// sale's advice declined by the issuer, a pre-authorization reversed).
//
// The links are kept on the original, in the same commit as the linked
// transaction's own changes, so that the next request sees them:
//   - Refunded: approved and pending refunds (released when one ends
//     without effect);
//   - CompletedBy: the completion, approved or pending;
//   - VoidedBy: the void, approved or pending.

// LinkContext is what AdmitLink decides from besides the two records: the
// flow reads it from the store and the configuration.
type LinkContext struct {
	Linked     []*Transaction  // the transactions that already refer to the original
	OpenBatch  int             // the batch open now (a void needs its original's)
	AtTerminal bool            // the new transaction's card is read at a terminal
	Tolerance  decimal.Decimal // a completion may be up to the authorized total × this
}

// AdmitLink checks that t (a new incremental, completion, refund or void)
// may act on its original o, given the transactions already linked to o,
// and records the link on both. The caller holds o's lock and commits t
// and o together.
func AdmitLink(t, o *Transaction, lc LinkContext) error {
	t.Original = o.ID
	if t.Reference == "" {
		t.Reference = o.Reference
	}
	t.Stay = o.Stay
	if !lc.AtTerminal {
		// Not read at a terminal: the message belongs to the original's
		// terminal ID, so the host finds it in the same batch.
		t.TerminalID = o.TerminalID
	}
	t.MaskedPAN, t.Brand = o.MaskedPAN, o.Brand
	if o.VoidedBy != "" && o.Status != StatusVoided {
		return Errorf(EConflict, "void_in_progress", "transaction %s is being voided by %s: nothing more can be done to it", o.ID, o.VoidedBy)
	}
	switch t.Op {
	case OpIncremental, OpCompletion:
		if o.Op != OpPreauth {
			return Errorf(EConflict, "wrong_original", "a %s needs a pre-authorization, not a %s", t.Op, o.Op)
		}
		if o.Status != StatusApproved && !(o.Status == StatusStoodIn && t.Op == OpCompletion) {
			// A completion may follow a pre-authorization approved offline
			// (it waits in the queue for the 0100); an incremental needs
			// the host's TI now.
			return Errorf(EConflict, "wrong_state", "pre-authorization %s is %s, not approved", o.ID, o.Status)
		}
		if o.CompletedBy != "" {
			return Errorf(EConflict, "already_completed", "pre-authorization %s was already completed by %s", o.ID, o.CompletedBy)
		}
		t.Entry = o.Entry
		if t.Op == OpIncremental {
			t.Entry = EntryKeyed
			return nil
		}
		limit := o.AuthorizedTotal.Value.Mul(lc.Tolerance)
		if t.Amount.Value.GreaterThan(limit) {
			return Errorf(EConflict, "exceeds_authorization",
				"final amount %s is more than the authorized total %s × %s = %s: add an incremental authorization first",
				t.Amount, o.AuthorizedTotal, lc.Tolerance, limit.StringFixed(t.Amount.Currency.Exponent))
		}
		for _, x := range lc.Linked {
			if x.Op == OpIncremental && !x.Status.Final() && x.Status != StatusApproved {
				return Errorf(EConflict, "incremental_in_progress", "incremental authorization %s of %s has no outcome yet: complete when it has", x.ID, o.ID)
			}
		}
		o.CompletedBy = t.ID
	case OpRefund:
		if !o.IsDebit() {
			return Errorf(EConflict, "wrong_original", "only a sale, completion or no-show charge can be refunded, not a %s", o.Op)
		}
		if o.Status != StatusApproved && o.Status != StatusStoodIn {
			return Errorf(EConflict, "wrong_state", "transaction %s is %s: only an approved charge can be refunded", o.ID, o.Status)
		}
		if o.Status == StatusStoodIn && lc.AtTerminal {
			// A refund without a terminal waits in the queue behind the
			// original's advice; a card read now cannot wait.
			return Errorf(EConflict, "original_unconfirmed", "transaction %s was approved offline and the acquirer has not confirmed it yet: refund it without the terminal (it is sent once the acquirer confirms the charge), or later", o.ID)
		}
		left := o.Amount.Sub(o.Refunded.orZero(o.Amount.Currency))
		if t.Amount.Cmp(left) > 0 {
			return Errorf(EConflict, "exceeds_refundable", "refund of %s is more than what is left to refund on %s: %s (charged %s, refunded %s)",
				t.Amount, o.ID, left, o.Amount, o.Refunded.orZero(o.Amount.Currency))
		}
		o.Refunded = o.Refunded.orZero(o.Amount.Currency).Add(t.Amount)
		if !lc.AtTerminal {
			t.Entry = EntryKeyed
		}
	case OpVoid:
		switch {
		case o.Op == OpVoid || o.Op == OpCardCheck:
			return Errorf(EConflict, "wrong_original", "a %s cannot be voided", o.Op)
		case o.Status == StatusVoided:
			return Errorf(EConflict, "already_voided", "transaction %s is already voided", o.ID)
		case o.Status != StatusApproved:
			return Errorf(EConflict, "wrong_state", "transaction %s is %s: only an approved transaction can be voided", o.ID, o.Status)
		case o.Op == OpPreauth && o.CompletedBy != "":
			return Errorf(EConflict, "already_completed", "pre-authorization %s was completed by %s: void the completion instead", o.ID, o.CompletedBy)
		case o.Op == OpIncremental:
			return Errorf(EConflict, "wrong_original", "void the pre-authorization %s, not its incremental authorization", o.Original)
		case o.IsDebit() && !o.Refunded.orZero(o.Amount.Currency).IsZero():
			// The host would reverse the whole charge and keep the
			// refunds: the card would be credited for nothing.
			return Errorf(EConflict, "has_refunds", "transaction %s has refunds of %s: it can no longer be voided; refund what is left (%s) instead",
				o.ID, o.Refunded, o.Amount.Sub(o.Refunded))
		}
		for _, x := range lc.Linked {
			if x.Op != OpVoid && !x.Status.Final() && x.Status != StatusApproved {
				return Errorf(EConflict, "linked_in_progress", "%s %s of %s has no outcome yet: void when it has", x.Op, x.ID, o.ID)
			}
		}
		if o.Batch != 0 {
			if o.Batch != lc.OpenBatch {
				return Errorf(EConflict, "batch_closed", "batch %06d of transaction %s has closed: it can no longer be voided, use a refund", o.Batch, o.ID)
			}
		}
		t.Amount, t.Entry = o.Amount, o.Entry
		o.VoidedBy = t.ID
	}
	return nil
}

// LinkStillValid decides, when t's queued message is about to be sent,
// whether its original still allows it. wait: the original's own outcome
// is not known yet (its advice or 0100 is still queued): send later. err:
// the original ended without effect (declined, reversed, voided): t must
// not be sent at all, and err says why for the clerk.
func LinkStillValid(t, o *Transaction) (wait bool, err error) {
	if o == nil {
		return false, nil
	}
	switch t.Op {
	case OpRefund, OpCompletion, OpIncremental:
		switch o.Status {
		case StatusApproved:
			return false, nil
		case StatusStoodIn, StatusPending, StatusUnknown:
			return true, nil
		}
		what := map[Op]string{OpRefund: "charge", OpCompletion: "pre-authorization", OpIncremental: "pre-authorization"}[t.Op]
		return false, Errorf(EConflict, "original_"+string(o.Status),
			"the original %s %s was %s (%s): there is nothing to %s", what, o.ID, o.Status, o.Reason, verb(t.Op))
	case OpVoid:
		if o.Status == StatusApproved || o.Status == StatusVoided && o.VoidedBy == t.ID {
			return false, nil
		}
		return false, Errorf(EConflict, "original_"+string(o.Status), "transaction %s was %s: there is nothing to void", o.ID, o.Status)
	}
	return false, nil
}

func verb(op Op) string {
	switch op {
	case OpRefund:
		return "refund"
	case OpCompletion:
		return "complete"
	}
	return fmt.Sprint(op)
}

// AwaitsHost reports whether o's outcome still waits for the acquirer:
// approved offline (its advice or 0100 is queued) or otherwise queued. A
// message linked to it waits behind it in the queue and never overtakes
// it (the host would not know the original, or would refund a charge the
// issuer then declines).
func AwaitsHost(o *Transaction) bool {
	return o.Status == StatusStoodIn || o.Step == StepQueued && !o.Status.Final()
}
