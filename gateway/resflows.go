package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// Reservation payments (version 1.1): the late-cancellation fee, the
// advance deposit and the amount change (差額). The money rules are the
// domain's (sterad.PolicySnapshot.Fee, SplitCancellation, Adjust,
// SplitRefund); these flows read what they decide from under the locks,
// journal every message before it is sent, and link what they create to
// its original in the same commit.

// adjustTotal parses an adjust's amount: the new total, zero allowed,
// never negative.
func adjustTotal(raw string, cur sterad.Currency) (sterad.Amount, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "an adjust needs the new total (amount)")
	}
	if strings.HasPrefix(s, "-") {
		return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "negative_total", "the new total %s is negative: an amount change gives the new total, which is at least zero", s)
	}
	a, err := sterad.ParseAmount(s, cur)
	if err != nil {
		return sterad.Amount{}, err
	}
	if a.Value.Cmp(sterad.MaxAmount) >= 0 {
		return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "amount %s is too large: the acquirer accepts less than %s", a, sterad.MaxAmount.StringFixed(cur.Exponent))
	}
	return a, nil
}

// validateReservationPayment checks the inputs of the version 1.1 ops and
// the first night of a card check.
func (rq *requests) validateReservationPayment(p *plan, r sterad.Request) error {
	if fn := strings.TrimSpace(r.FirstNight); fn != "" {
		if p.op != sterad.OpCardCheck || p.reference == "" {
			return sterad.Errorf(sterad.EInvalid, "unexpected_first_night", "first_night is the first night's rate of a guaranteed reservation: give it with the card check of that reservation (reference and stay)")
		}
		if rq.cfg.CancellationPolicy == nil {
			return sterad.Errorf(sterad.EInvalid, "no_policy", "first_night is given but no cancellation policy is configured (reservations.cancellation_policy)")
		}
		a, err := sterad.ParseAmount(fn, p.amount.Currency)
		if err != nil {
			return sterad.Errorf(sterad.EInvalid, "invalid_first_night", "first_night: %s", sterad.ErrorMessage(err))
		}
		if !a.Value.IsPositive() {
			return sterad.Errorf(sterad.EInvalid, "invalid_first_night", "first_night must be more than zero")
		}
		p.firstNight = &a
	}
	switch p.op {
	case sterad.OpCancellation:
		if p.reference == "" {
			return sterad.Errorf(sterad.EInvalid, "missing_reference", "a cancellation needs the reservation reference")
		}
		if p.term != nil || p.card != nil || p.token != "" {
			return sterad.Errorf(sterad.EInvalid, "unexpected_card", "a cancellation charges the card or token kept for the reservation: give only its reference")
		}
		if p.stay != nil {
			return sterad.Errorf(sterad.EInvalid, "unexpected_stay", "a cancellation uses the stay recorded with the reservation: give only its reference")
		}
	case sterad.OpDeposit:
		if p.reference == "" {
			return sterad.Errorf(sterad.EInvalid, "missing_reference", "a deposit is paid for a reservation: give its reference")
		}
		n := 0
		for _, given := range []bool{p.term != nil, p.card != nil, p.token != ""} {
			if given {
				n++
			}
		}
		if n > 1 {
			return sterad.Errorf(sterad.EInvalid, "ambiguous_card", "give a terminal, a token or a keyed card, not more than one")
		}
		if p.token != "" && (len(p.token) != 16 || !printable(p.token)) {
			return sterad.Errorf(sterad.EInvalid, "invalid_token", "a card token has 16 characters")
		}
	case sterad.OpAdjust:
		if p.card != nil || p.token != "" {
			return sterad.Errorf(sterad.EInvalid, "unexpected_card", "an adjust charges the difference like its original: give a terminal only to read a new card")
		}
	}
	return nil
}

// newTxn is a new transaction of p, pending, not yet journaled.
func (rq *requests) newTxn(p *plan, op sterad.Op, amount sterad.Amount, now time.Time, idem *sterad.IdempotencyRecord) *sterad.Transaction {
	t := &sterad.Transaction{
		ID: rq.newID(), Op: op, Status: sterad.StatusPending, Step: sterad.StepCreated,
		Amount: amount, Currency: amount.Currency.Code, Terminal: p.termID, TerminalID: p.termID,
		Reference: p.reference, Stay: p.stay, Token: p.token, CreatedAt: now, UpdatedAt: now,
	}
	if t.TerminalID == "" {
		t.TerminalID = rq.cfg.VirtualTerminalID
	}
	if idem != nil {
		idem.TxnID = t.ID
		t.IdempotencyKey = idem.Key
	}
	return t
}

// lockTxns locks transactions by ID, in ID order, and returns the unlock.
func (rq *requests) lockTxns(ids []string) func() {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var unlocks []func()
	for _, id := range ids {
		unlocks = append(unlocks, rq.j.lock("txn:"+id))
	}
	return func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
}

// depositsOf loads a reservation's deposits (the caller holds their
// locks) and returns those that hold money. A deposit whose outcome is
// not known yet is refused: what it holds cannot be counted.
func (rq *requests) depositsOf(ctx context.Context, r *sterad.Reservation) ([]*sterad.Transaction, []sterad.Refundable, error) {
	var txns []*sterad.Transaction
	var held []sterad.Refundable
	if r == nil {
		return nil, nil, nil
	}
	for _, id := range r.Deposits {
		d, err := rq.j.store.Transaction(ctx, id)
		if err != nil {
			return nil, nil, fmt.Errorf("load deposit %s: %w", id, err)
		}
		switch d.Status {
		case sterad.StatusPending, sterad.StatusUnknown:
			return nil, nil, sterad.Errorf(sterad.EConflict, "deposit_in_progress", "deposit %s of reservation %s has no outcome yet: try again when it has", d.ID, r.Reference)
		}
		if x, ok := sterad.RefundableOf(d); ok {
			txns = append(txns, d)
			held = append(held, x)
		}
	}
	return txns, held, nil
}

// linkedRefund builds a refund of amount against charge o (locked by the
// caller), admitted by the link rules, with its request prepared: the
// caller puts it and o in the change that creates it.
func (rq *requests) linkedRefund(ctx context.Context, o *sterad.Transaction, amount sterad.Amount, now time.Time) (*started, []sterad.SealCard, error) {
	p := &plan{op: sterad.OpRefund, amount: amount, reference: o.Reference, originalID: o.ID, original: o}
	t := rq.newTxn(p, sterad.OpRefund, amount, now, nil)
	linked, err := rq.linked(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	b, err := rq.j.store.CurrentBatch(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := sterad.AdmitLink(t, o, sterad.LinkContext{Linked: linked, OpenBatch: b.Number, Tolerance: rq.cfg.CompletionTolerance}); err != nil {
		return nil, nil, err
	}
	card, err := rq.cardForNew(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	msg, err := rq.sd.prepare(ctx, t, card, o, now)
	if err != nil {
		return nil, nil, err
	}
	var seal []sterad.SealCard
	if card != nil && !card.Blind() && !rq.blind() {
		seal = append(seal, sterad.SealCard{Owner: t.ID, Card: card})
		t.HasCard = true
	}
	t.Record(t.Step, now, "created")
	return &started{txn: t, plan: p, msg: msg, card: card}, seal, nil
}

// putOnce adds x to the change's transactions unless it is there.
func putOnce(c *sterad.Change, x *sterad.Transaction) {
	for _, y := range c.Put {
		if y.ID == x.ID {
			return
		}
	}
	c.Put = append(c.Put, x)
}

// beginCancellation journals the cancellation of a guaranteed reservation:
// the fee by the policy recorded with it for today (the merchant's day),
// out of the deposits first (the rest of them refunded, linked to each
// deposit), and only a fee above the deposits charged to the kept card
// or token (0200 MI=CX). The reservation is released in the same commit:
// its card is destroyed and its token dies (the charge carries its own).
func (rq *requests) beginCancellation(ctx context.Context, p *plan, now time.Time, idem *sterad.IdempotencyRecord) (*started, error) {
	defer rq.j.lock("ref:" + p.reference)()
	r, err := rq.vt.loadReservation(ctx, p.reference)
	if err != nil {
		return nil, err
	}
	if err := cancellable(r, p.reference); err != nil {
		return nil, err
	}
	defer rq.lockTxns(r.Deposits)()
	defer rq.j.shareBatch()()
	deps, held, err := rq.depositsOf(ctx, r)
	if err != nil {
		return nil, err
	}
	today := sterad.DateOf(now.In(rq.cfg.Location))
	fee, rule, err := r.Policy.Fee(r.Stay.CheckIn, today)
	if err != nil {
		return nil, err
	}
	split, err := sterad.SplitCancellation(fee, held)
	if err != nil {
		return nil, err
	}
	stay := r.Stay
	p.stay = &stay
	t := rq.newTxn(p, sterad.OpCancellation, split.Card, now, idem)
	t.Fee, t.PolicyVersion, t.PolicyRow = fee, r.Policy.Policy.Version, rule.Ref()
	t.MaskedPAN, t.Brand = r.MaskedPAN, r.Brand
	s := &started{txn: t, plan: p}
	change := sterad.Change{Idempotency: idem, Put: []*sterad.Transaction{t}}
	for _, part := range split.Refunds {
		i := slices.IndexFunc(deps, func(d *sterad.Transaction) bool { return d.ID == part.Original })
		x, seal, err := rq.linkedRefund(ctx, deps[i], part.Amount, now)
		if err != nil {
			return nil, err
		}
		s.extra = append(s.extra, x)
		t.Linked = append(t.Linked, x.txn.ID)
		change.Put = append(change.Put, x.txn)
		putOnce(&change, deps[i])
		change.SealCards = append(change.SealCards, seal...)
	}
	note := fmt.Sprintf("cancellation fee %s (policy %s: %s)", fee.Display(), t.PolicyVersion, rule)
	if split.Card.IsZero() {
		t.Record(t.Step, now, "created")
		t.Reason = note + "; nothing is charged to the card"
		if !split.Kept.IsZero() {
			t.Reason = fmt.Sprintf("%s; %s kept out of the deposits", note, split.Kept.Display())
		}
		if err := t.Transition(sterad.StatusApproved, sterad.StepDone, now, t.Reason); err != nil {
			return nil, err
		}
	} else {
		switch {
		case r.CardKept:
			card, err := rq.j.store.OpenCard(ctx, sterad.VaultOwner(r.Reference))
			if err != nil {
				return nil, fmt.Errorf("open vault card of %s: %w", r.Reference, err)
			}
			card.Entry = sterad.EntryKeyed
			s.card = card
		case r.Token != "":
			t.Token, t.Entry = r.Token, sterad.EntryToken
		default:
			return nil, sterad.Errorf(sterad.ENotFound, "no_card_kept", "reservation %s keeps no card and no token: the fee of %s cannot be charged", r.Reference, split.Card.Display())
		}
		msg, err := rq.sd.prepare(ctx, t, s.card, nil, now)
		if err != nil {
			return nil, err
		}
		s.msg = msg
		if s.card != nil && !s.card.Blind() && !rq.blind() {
			change.SealCards = append(change.SealCards, sterad.SealCard{Owner: t.ID, Card: s.card})
			t.HasCard = true
		}
		t.Record(t.Step, now, "created: "+note)
	}
	rq.vt.release(r, &change, "cancelled by "+t.ID, now)
	r.Cancellation = t.ID
	if err := rq.j.apply(ctx, change); err != nil {
		return nil, err
	}
	rq.fl.add(t.ID)
	for _, x := range s.extra {
		rq.fl.add(x.txn.ID)
	}
	rq.log.Info("reservation cancelled", "reference", r.Reference, "txn", t.ID, "fee", fee.String(), "card", split.Card.String(), "refund", split.Refund.String())
	return s, nil
}

// cancellable refuses a cancellation of a reservation that has none to
// give: unknown, cancelled, charged, released, or without a policy.
func cancellable(r *sterad.Reservation, ref string) error {
	switch {
	case r == nil:
		return sterad.Errorf(sterad.ENotFound, "unknown_reservation", "no guaranteed reservation %q is known here: a cancellation fee is charged only to a reservation whose card was checked", ref)
	case r.Cancellation != "":
		return sterad.Errorf(sterad.EConflict, "already_cancelled", "reservation %s was already cancelled by %s", ref, r.Cancellation)
	case r.State == sterad.ReservationCharged:
		return sterad.Errorf(sterad.EConflict, "already_charged", "reservation %s was already charged a no-show (%s): it cannot be cancelled", ref, strings.Join(r.Charges, ", "))
	case r.Checkout != nil:
		return sterad.Errorf(sterad.EConflict, "already_checked_out", "reservation %s was checked out: it cannot be cancelled", ref)
	case r.State != sterad.ReservationGuaranteed:
		return sterad.Errorf(sterad.EConflict, "not_guaranteed", "reservation %s is %s (%s): only a guaranteed reservation is cancelled with a fee", ref, r.State, r.Released)
	case r.Policy == nil:
		return sterad.Errorf(sterad.EConflict, "no_policy", "reservation %s has no cancellation policy recorded (its card check gave no first_night): release its card with `sterad vault release` instead", ref)
	}
	return nil
}

// checkDeposit checks an advance deposit against its reservation and
// records it there (in c, the change that creates t): a reservation sterad
// does not know yet is recorded by it. The caller holds the reservation's
// lock.
func (vt *vault) checkDeposit(ctx context.Context, p *plan, t *sterad.Transaction, c *sterad.Change, now time.Time) error {
	r, err := vt.loadReservation(ctx, p.reference)
	if err != nil {
		return err
	}
	if p.stay == nil {
		// The stay defaults to the reservation's (interface.md's CLI gives
		// none); a reservation sterad does not know needs it.
		if r == nil {
			return sterad.Errorf(sterad.EInvalid, "missing_stay", "reservation %s is not known here: a deposit for it needs the stay dates (check-in and check-out)", p.reference)
		}
		st := r.Stay
		p.stay, t.Stay = &st, &st
	}
	if r == nil {
		if p.token != "" {
			owner, err := vt.tokenOwner(ctx, p.token)
			if err != nil {
				return err
			}
			if owner != "" {
				return sterad.Errorf(sterad.EConflict, "token_mismatch", "card token %s was issued for reservation %s, not %s", maskToken(p.token), owner, p.reference)
			}
		}
		r = &sterad.Reservation{Reference: p.reference, Stay: *p.stay, State: sterad.ReservationUnguaranteed, CreatedAt: now}
	}
	switch {
	case r.Cancellation != "":
		return sterad.Errorf(sterad.EConflict, "already_cancelled", "reservation %s was cancelled by %s: no deposit can be taken for it", r.Reference, r.Cancellation)
	case r.Checkout != nil:
		return sterad.Errorf(sterad.EConflict, "already_checked_out", "reservation %s was checked out: no deposit can be taken for it", r.Reference)
	case r.State == sterad.ReservationCharged:
		return sterad.Errorf(sterad.EConflict, "already_charged", "reservation %s was charged a no-show: no deposit can be taken for it", r.Reference)
	}
	if r.Stay != *p.stay {
		return sterad.Errorf(sterad.EConflict, "stay_mismatch", "reservation %s is for the stay %s to %s, not %s to %s as requested",
			r.Reference, r.Stay.CheckIn, r.Stay.CheckOut, p.stay.CheckIn, p.stay.CheckOut)
	}
	switch {
	case p.term != nil || p.card != nil:
	case p.token != "":
		if r.Token != p.token {
			if r.State == sterad.ReservationGuaranteed || r.TokenMAC != "" {
				return vt.foreignToken(ctx, p.reference, p.token)
			}
			owner, err := vt.tokenOwner(ctx, p.token)
			if err != nil {
				return err
			}
			if owner != "" && owner != p.reference {
				return sterad.Errorf(sterad.EConflict, "token_mismatch", "card token %s was issued for reservation %s, not %s", maskToken(p.token), owner, p.reference)
			}
		}
		t.Entry = sterad.EntryToken
		if r.Token == p.token {
			t.MaskedPAN, t.Brand = r.MaskedPAN, r.Brand
		}
	case r.Token != "" && r.State == sterad.ReservationGuaranteed:
		// The reservation's own token (card-data-blind keeps no card).
		p.token, t.Token = r.Token, r.Token
		t.Entry, t.MaskedPAN, t.Brand = sterad.EntryToken, r.MaskedPAN, r.Brand
	case r.CardKept && r.State == sterad.ReservationGuaranteed:
		card, err := vt.j.store.OpenCard(ctx, sterad.VaultOwner(r.Reference))
		if err != nil {
			return fmt.Errorf("open vault card of %s: %w", r.Reference, err)
		}
		card.Entry = sterad.EntryKeyed
		p.card = card
	default:
		return sterad.Errorf(sterad.EInvalid, "missing_card", "a deposit needs a terminal to read the card or the reservation's token: reservation %s keeps none", p.reference)
	}
	r.Deposits = append(r.Deposits, t.ID)
	r.UpdatedAt = now
	c.PutReservations = append(c.PutReservations, r)
	return nil
}

// beginAdjust journals an amount change of a charge: the difference is
// charged (a sale linked to the original, charged like it) or refunded
// (refunds linked to the original first, then to earlier difference
// charges), never more than what is left to refund. The returned
// transaction is the sale or the first refund.
func (rq *requests) beginAdjust(ctx context.Context, p *plan, now time.Time, idem *sterad.IdempotencyRecord) (*started, error) {
	// Earlier difference charges are linked to the original: their locks
	// come first (a transaction before its original), then the original's.
	before, err := rq.j.store.Transactions(ctx, sterad.TransactionFilter{Original: p.originalID})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, x := range before {
		ids = append(ids, x.ID)
	}
	defer rq.lockTxns(ids)()
	defer rq.j.lock("txn:" + p.originalID)()
	defer rq.j.shareBatch()()
	o, err := rq.j.store.Transaction(ctx, p.originalID)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_original", "unknown original transaction %q", p.originalID)
	}
	if err != nil {
		return nil, err
	}
	p.original = o
	linked, err := rq.linked(ctx, o)
	if err != nil {
		return nil, err
	}
	if len(linked) != len(before) {
		return nil, sterad.Errorf(sterad.EConflict, "linked_in_progress", "transaction %s changed while the amount change was prepared: try again", o.ID)
	}
	if !o.IsDebit() {
		return nil, sterad.Errorf(sterad.EConflict, "wrong_original", "an amount change needs a charge (sale, completion, deposit, no-show or cancellation fee), not a %s: a pre-authorization changes by incremental or completion", o.Op)
	}
	first, ok := sterad.RefundableOf(o)
	if !ok {
		return nil, sterad.Errorf(sterad.EConflict, "wrong_state", "transaction %s is %s: only an approved charge can be changed", o.ID, o.Status)
	}
	if o.VoidedBy != "" {
		return nil, sterad.Errorf(sterad.EConflict, "void_in_progress", "transaction %s is being voided by %s", o.ID, o.VoidedBy)
	}
	charges := []sterad.Refundable{first}
	byID := map[string]*sterad.Transaction{o.ID: o}
	for _, x := range linked {
		if x.Op != sterad.OpSale {
			continue
		}
		switch x.Status {
		case sterad.StatusPending, sterad.StatusUnknown:
			return nil, sterad.Errorf(sterad.EConflict, "linked_in_progress", "difference charge %s of %s has no outcome yet: change the amount when it has", x.ID, o.ID)
		}
		if c, ok := sterad.RefundableOf(x); ok {
			charges = append(charges, c)
			byID[x.ID] = x
		}
	}
	adj, err := sterad.Adjust(p.amount, charges)
	if err != nil {
		return nil, err
	}
	change := sterad.Change{Idempotency: idem}
	var s *started
	switch {
	case adj.Charge.Value.IsPositive():
		if s, err = rq.differenceCharge(ctx, p, o, adj.Charge, now, idem, &change); err != nil {
			return nil, err
		}
	case adj.Refund.Value.IsPositive():
		if p.term != nil {
			return nil, sterad.Errorf(sterad.EInvalid, "unexpected_terminal", "the new total %s is less than the %s paid: the difference is refunded to the original card, no terminal is needed", p.amount.Display(), adj.Paid.Display())
		}
		for i, part := range adj.Refunds {
			ch := byID[part.Original]
			x, seal, err := rq.linkedRefund(ctx, ch, part.Amount, now)
			if err != nil {
				return nil, err
			}
			x.txn.Reason = fmt.Sprintf("amount change of %s: %s to %s", o.ID, adj.Paid.Display(), adj.NewTotal.Display())
			change.Put = append(change.Put, x.txn)
			putOnce(&change, ch)
			change.SealCards = append(change.SealCards, seal...)
			if i == 0 {
				s = x
				if idem != nil {
					idem.TxnID = x.txn.ID
					x.txn.IdempotencyKey = idem.Key
				}
			} else {
				s.extra = append(s.extra, x)
				s.txn.Linked = append(s.txn.Linked, x.txn.ID)
			}
		}
	default:
		return nil, sterad.Errorf(sterad.EInvalid, "no_difference", "the new total %s is what %s already paid: there is no difference to charge or refund", p.amount.Display(), o.ID)
	}
	if err := rq.j.apply(ctx, change); err != nil {
		if s.plan.term != nil {
			rq.tm.free(s.plan.termID, s.txn.ID)
		}
		return nil, err
	}
	rq.fl.add(s.txn.ID)
	for _, x := range s.extra {
		rq.fl.add(x.txn.ID)
	}
	return s, nil
}

// differenceCharge builds the sale of an amount change's difference: read
// at the terminal given, or charged card-not-present like its original (a
// reservation charge by its token or card: the same DE 48 MI), or keyed
// with the original's card while sterad keeps it (clear mode).
func (rq *requests) differenceCharge(ctx context.Context, p *plan, o *sterad.Transaction, diff sterad.Amount, now time.Time, idem *sterad.IdempotencyRecord, c *sterad.Change) (*started, error) {
	sp := &plan{op: sterad.OpSale, amount: diff, term: p.term, termID: p.termID, reference: o.Reference, originalID: o.ID, original: o}
	t := rq.newTxn(sp, sterad.OpSale, diff, now, idem)
	if err := sterad.AdmitLink(t, o, sterad.LinkContext{AtTerminal: p.term != nil, Tolerance: rq.cfg.CompletionTolerance}); err != nil {
		return nil, err
	}
	t.Reason = fmt.Sprintf("amount change of %s: the difference %s", o.ID, diff.Display())
	s := &started{txn: t, plan: sp}
	c.Put = append(c.Put, t)
	if p.term != nil {
		if p.term.Info().State == sterad.TerminalOffline {
			return nil, sterad.ErrTerminalOffline
		}
		if !rq.tm.reserve(p.termID, t.ID) {
			return nil, sterad.ErrTerminalBusy
		}
		t.Step = sterad.StepReading
		t.Record(t.Step, now, "created")
		return s, nil
	}
	card, err := rq.cardForNew(ctx, sp)
	if err != nil {
		return nil, err
	}
	mi := merchantInitiated(o)
	switch {
	case mi != "" && mi != sterad.MIIncremental:
		t.MerchantInitiated = mi
		if card == nil {
			if o.Token == "" {
				return nil, sterad.Errorf(sterad.EConflict, "no_card_kept", "neither the card nor a token of %s is kept: charge the difference %s at a terminal (give terminal)", o.ID, diff.Display())
			}
			t.Token, t.Entry = o.Token, sterad.EntryToken
		}
	case card == nil:
		hint := "give the terminal to read the card at"
		if rq.blind() {
			hint += " (sterad runs card-data-blind: the acquirer takes a token only in a reservation charge)"
		}
		return nil, sterad.Errorf(sterad.EConflict, "no_card_kept", "the card of %s is no longer kept: to charge the difference %s, %s", o.ID, diff.Display(), hint)
	}
	s.card = card
	msg, err := rq.sd.prepare(ctx, t, card, o, now)
	if err != nil {
		return nil, err
	}
	s.msg = msg
	if card != nil && !card.Blind() && !rq.blind() {
		c.SealCards = append(c.SealCards, sterad.SealCard{Owner: t.ID, Card: card})
		t.HasCard = true
	}
	t.Record(t.Step, now, "created")
	return s, nil
}
