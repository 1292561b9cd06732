package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// The check-out with split tender (POST /v1/checkouts, version 1.1):
// travel vouchers against the room plan (sterad.PlanCheckout, with the
// voucher log as what was used), the reservation's deposits, then the card
// pays the rest: the completion of the pre-authorization, or a sale at a
// terminal; or the deposits' excess is refunded. The voucher numbers are
// written to the voucher log in the commit that creates the card's
// transaction, compare-and-swap: a number already logged fails the commit,
// so a voucher is never accepted twice, even by two check-outs at once.

// checkoutPlan is a validated check-out request.
type checkoutPlan struct {
	vc         sterad.VoucherCheckout
	originalID string
	term       sterad.Terminal
	termID     string
}

func (cp *checkoutPlan) fingerprint() []byte {
	b := cp.vc.Bill
	parts := []string{"checkout-v1", cp.vc.Reference, cp.originalID, cp.termID, cp.vc.Stay.CheckIn.String(), cp.vc.Stay.CheckOut.String(),
		strconv.Itoa(cp.vc.Guests), strings.ToLower(strings.TrimSpace(cp.vc.Booking)), b.RoomPlan.String(), b.Other.String(), b.BathingTax.String()}
	for _, v := range cp.vc.Vouchers {
		parts = append(parts, v.Program, sterad.NormalizeVoucherNumber(v.Number), strconv.FormatBool(v.HolderMatches), v.HolderReason)
	}
	return []byte(strings.Join(parts, "\x1f"))
}

// validateCheckout checks a check-out request before anything is read.
func (rq *requests) validateCheckout(r sterad.CheckoutRequest) (*checkoutPlan, error) {
	cp := &checkoutPlan{originalID: strings.TrimSpace(r.Original)}
	ref := strings.TrimSpace(r.Reference)
	if ref == "" {
		return nil, sterad.Errorf(sterad.EInvalid, "missing_reference", "a check-out needs the reservation reference")
	}
	if len(ref) > 25 || !printable(ref) {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_reference", "reference must be at most 25 printable ASCII characters")
	}
	cur := rq.cfg.Currency
	money := func(name, raw string, required bool) (sterad.Amount, error) {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			if required {
				return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "%s is required", name)
			}
			return sterad.Amount{Currency: cur}, nil
		}
		if strings.HasPrefix(raw, "-") {
			return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "%s %s is negative", name, raw)
		}
		a, err := sterad.ParseAmount(raw, cur)
		if err != nil {
			return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "%s: %s", name, sterad.ErrorMessage(err))
		}
		if a.Value.Cmp(sterad.MaxAmount) >= 0 {
			return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "%s %s is too large", name, a)
		}
		return a, nil
	}
	var err error
	b := &cp.vc.Bill
	if b.RoomPlan, err = money("room_plan", r.RoomPlan, true); err != nil {
		return nil, err
	}
	if b.Other, err = money("other", r.Other, false); err != nil {
		return nil, err
	}
	if b.BathingTax, err = money("bathing_tax", r.BathingTax, false); err != nil {
		return nil, err
	}
	if r.CheckIn != "" || r.CheckOut != "" {
		s, err := requestStay(r.CheckIn, r.CheckOut)
		if err != nil {
			return nil, err
		}
		cp.vc.Stay = *s
	}
	if r.Terminal != "" {
		t, ok := rq.tm.lookup(r.Terminal)
		if !ok {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_terminal", "unknown terminal %q", r.Terminal)
		}
		cp.term, cp.termID = t, r.Terminal
	}
	if cp.term != nil && cp.originalID != "" {
		return nil, sterad.Errorf(sterad.EInvalid, "ambiguous_card", "give the pre-authorization to complete (original) or a terminal to read the card at, not both")
	}
	cp.vc.Reference, cp.vc.Guests, cp.vc.Booking, cp.vc.Vouchers = ref, r.Guests, strings.TrimSpace(r.Booking), r.Vouchers
	if len(r.Vouchers) > 0 && len(rq.cfg.VoucherPrograms) == 0 {
		return nil, sterad.Errorf(sterad.EInvalid, "voucher_program", "no voucher program is configured (vouchers:): vouchers cannot be accepted")
	}
	if len(r.Vouchers) > 200 {
		return nil, sterad.Errorf(sterad.EInvalid, "voucher_cap", "%d vouchers are too many for one check-out", len(r.Vouchers))
	}
	return cp, nil
}

// checkout runs a check-out: see the top of this file.
func (rq *requests) checkout(ctx context.Context, r sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error) {
	admitted, err := rq.fl.admit()
	if err != nil {
		return nil, false, err
	}
	leave := sync.OnceFunc(admitted)
	defer leave()
	now := rq.clock.Now()
	cp, err := rq.validateCheckout(r)
	if err != nil {
		return nil, false, err
	}
	replayed, idem, unlock, err := rq.idempotencyKey(ctx, r.IdempotencyKey, cp.fingerprint(), now)
	defer unlock()
	if err != nil {
		return nil, false, err
	}
	if replayed != nil {
		unlock()
		leave()
		res, err := rq.checkoutResult(ctx, cp.vc.Reference, r.Wait)
		return res, true, err
	}
	if idem != nil {
		idem.TxnID = "checkout:" + cp.vc.Reference
	}
	s, err := rq.beginCheckout(ctx, cp, now, idem)
	if err != nil {
		return nil, false, err
	}
	if s != nil {
		rq.startFlows(s)
	}
	leave()
	res, err := rq.checkoutResult(ctx, cp.vc.Reference, r.Wait)
	if err == nil && s != nil && r.Wait && s.err() != nil {
		return res, false, s.err()
	}
	return res, false, err
}

// checkoutResult answers what the reservation's check-out did, with its
// transactions as they are now (once final when wait).
func (rq *requests) checkoutResult(ctx context.Context, ref string, wait bool) (*sterad.CheckoutResult, error) {
	r, err := rq.vt.loadReservation(ctx, ref)
	if err != nil {
		return nil, err
	}
	if r == nil || r.Checkout == nil {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_checkout", "reservation %s has no check-out", ref)
	}
	c := r.Checkout
	res := &sterad.CheckoutResult{Reference: ref, VouchersApplied: c.VouchersApplied, DepositsApplied: c.DepositsApplied,
		CardAmount: c.CardAmount, Refund: c.Refund, Vouchers: c.Vouchers}
	if res.Vouchers == nil {
		res.Vouchers = []sterad.AppliedVoucher{}
	}
	get := func(id string) (*sterad.Transaction, error) {
		if wait {
			return rq.wait(ctx, id)
		}
		return rq.j.transaction(ctx, id)
	}
	for _, id := range c.Refunds {
		t, err := get(id)
		if err != nil {
			return nil, err
		}
		res.Refunds = append(res.Refunds, t)
	}
	if c.Transaction != "" {
		if res.Transaction, err = get(c.Transaction); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// endedWithoutEffect reports whether a check-out's card transaction ended
// without charging anything: its vouchers and deposits are free again.
func endedWithoutEffect(t *sterad.Transaction) bool {
	switch t.Status {
	case sterad.StatusDeclined, sterad.StatusReversed, sterad.StatusCancelled, sterad.StatusVoided:
		return t.Op != sterad.OpVoid
	}
	return false
}

// beginCheckout plans and journals a check-out under the reservation's
// lock, its deposits' and its pre-authorization's. It returns the card's
// transaction to start (nil when the card pays nothing and no hold is
// released), with the refunds as its extras.
func (rq *requests) beginCheckout(ctx context.Context, cp *checkoutPlan, now time.Time, idem *sterad.IdempotencyRecord) (*started, error) {
	ref := cp.vc.Reference
	defer rq.j.lock("ref:" + ref)()
	r, err := rq.vt.loadReservation(ctx, ref)
	if err != nil {
		return nil, err
	}
	if r != nil && r.Checkout != nil {
		done := true
		if r.Checkout.Transaction != "" {
			t, err := rq.j.store.Transaction(ctx, r.Checkout.Transaction)
			if err != nil {
				return nil, err
			}
			done = !endedWithoutEffect(t) || len(r.Checkout.Refunds) > 0
		}
		if done {
			return nil, sterad.Errorf(sterad.EConflict, "already_checked_out", "reservation %s was already checked out (%s)", ref, r.Checkout.Transaction)
		}
	}
	if r != nil && r.Cancellation != "" {
		return nil, sterad.Errorf(sterad.EConflict, "already_cancelled", "reservation %s was cancelled by %s: it cannot be checked out", ref, r.Cancellation)
	}
	if cp.vc.Stay.CheckIn.IsZero() && r != nil {
		cp.vc.Stay = r.Stay
	}
	var lockIDs []string
	if r != nil {
		lockIDs = append(lockIDs, r.Deposits...)
	}
	if cp.originalID != "" {
		lockIDs = append(lockIDs, cp.originalID)
	}
	defer rq.lockTxns(lockIDs)()
	defer rq.j.shareBatch()()
	deps, held, err := rq.depositsOf(ctx, r)
	if err != nil {
		return nil, err
	}

	// The voucher log: a number is used unless the check-out that logged
	// it ended without effect (then its entry is taken over, by version).
	logged := map[string]*sterad.VoucherLogEntry{}
	used := func(program, number string) (bool, error) {
		e, err := rq.j.store.Voucher(ctx, program, number)
		if errors.Is(err, sterad.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if e.Transaction != "" {
			t, err := rq.j.store.Transaction(ctx, e.Transaction)
			if err == nil && endedWithoutEffect(t) {
				logged[program+"\x00"+number] = e
				return false, nil
			}
		}
		return true, nil
	}
	cplan, err := sterad.PlanCheckout(rq.cfg.VoucherPrograms, cp.vc, used, held)
	if err != nil {
		return nil, err
	}
	split := cplan.Split
	rec := &sterad.CheckoutRecord{VouchersApplied: split.Vouchers, DepositsApplied: split.Deposits, CardAmount: split.Card,
		Refund: split.Refund, Vouchers: cplan.Vouchers.Vouchers, At: now}
	change := sterad.Change{Idempotency: idem}

	var s *started
	var orig *sterad.Transaction
	if cp.originalID != "" {
		if orig, err = rq.j.store.Transaction(ctx, cp.originalID); errors.Is(err, sterad.ErrNotFound) {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_original", "unknown original transaction %q", cp.originalID)
		} else if err != nil {
			return nil, err
		}
		if orig.Reference != "" && orig.Reference != ref {
			return nil, sterad.Errorf(sterad.EConflict, "wrong_original", "pre-authorization %s is for reservation %s, not %s", orig.ID, orig.Reference, ref)
		}
	}
	p := &plan{reference: ref, term: cp.term, termID: cp.termID, originalID: cp.originalID, original: orig}
	if !cp.vc.Stay.CheckIn.IsZero() {
		st := cp.vc.Stay
		p.stay = &st
	}
	switch {
	case split.Card.Value.IsPositive() && orig != nil:
		p.op, p.amount = sterad.OpCompletion, split.Card
	case split.Card.Value.IsPositive() && cp.term != nil:
		p.op, p.amount = sterad.OpSale, split.Card
	case split.Card.Value.IsPositive():
		return nil, sterad.Errorf(sterad.EInvalid, "missing_card", "the card pays %s: give the pre-authorization to complete (original) or a terminal to read the card at", split.Card.Display())
	case orig != nil:
		// Nothing left for the card: the hold is released.
		p.op, p.amount = sterad.OpVoid, sterad.Amount{Currency: split.Card.Currency}
	}
	if p.op != "" {
		t := rq.newTxn(p, p.op, p.amount, now, nil)
		s = &started{txn: t, plan: p}
		if p.term != nil {
			if p.term.Info().State == sterad.TerminalOffline {
				return nil, sterad.ErrTerminalOffline
			}
			if !rq.tm.reserve(p.termID, t.ID) {
				return nil, sterad.ErrTerminalBusy
			}
			t.Step = sterad.StepReading
			t.Record(t.Step, now, "created: check-out")
		} else {
			if err := rq.admitLink(ctx, p, t); err != nil {
				return nil, err
			}
			card, err := rq.cardForNew(ctx, p)
			if err != nil {
				return nil, err
			}
			msg, err := rq.sd.prepare(ctx, t, card, orig, now)
			if err != nil {
				return nil, err
			}
			s.msg, s.card = msg, card
			if card != nil && !card.Blind() && !rq.blind() && keepsOwnCard(t.Op) {
				change.SealCards = append(change.SealCards, sterad.SealCard{Owner: t.ID, Card: card})
				t.HasCard = true
			}
			t.Record(t.Step, now, "created: check-out")
		}
		t.Reason = fmt.Sprintf("check-out: bill %s, vouchers %s, deposits %s, card %s", split.Total.Display(), split.Vouchers.Display(), split.Deposits.Display(), split.Card.Display())
		change.Put = append(change.Put, t)
		if orig != nil {
			putOnce(&change, orig)
		}
		rec.Transaction = t.ID
	}
	release := func() {
		if s != nil && p.term != nil {
			rq.tm.free(p.termID, s.txn.ID)
		}
	}
	for _, part := range split.Refunds {
		var dep *sterad.Transaction
		for _, d := range deps {
			if d.ID == part.Original {
				dep = d
			}
		}
		x, seal, err := rq.linkedRefund(ctx, dep, part.Amount, now)
		if err != nil {
			release()
			return nil, err
		}
		x.txn.Reason = "check-out: the deposits' excess given back"
		change.Put = append(change.Put, x.txn)
		putOnce(&change, dep)
		change.SealCards = append(change.SealCards, seal...)
		rec.Refunds = append(rec.Refunds, x.txn.ID)
		if s == nil {
			s = x
		} else {
			s.extra = append(s.extra, x)
		}
	}

	// The voucher log, in this same commit.
	today := sterad.DateOf(now.In(rq.cfg.Location))
	for _, e := range sterad.VoucherLog(rq.cfg.VoucherPrograms, cp.vc, cplan.Vouchers, today, rec.Transaction) {
		if old := logged[e.Program+"\x00"+e.Number]; old != nil {
			e.Version = old.Version
		}
		change.PutVouchers = append(change.PutVouchers, &e)
	}
	if r == nil {
		r = &sterad.Reservation{Reference: ref, Stay: cp.vc.Stay, State: sterad.ReservationUnguaranteed, CreatedAt: now}
	}
	r.Checkout, r.UpdatedAt = rec, now
	if r.Releasable() {
		rq.vt.release(r, &change, "checked out", now)
	} else {
		change.PutReservations = append(change.PutReservations, r)
	}
	if err := rq.j.apply(ctx, change); err != nil {
		release()
		if errors.Is(err, sterad.ErrStale) && len(change.PutVouchers) > 0 {
			return nil, sterad.Errorf(sterad.EConflict, "voucher_used", "a voucher of this check-out was used by another check-out at the same time: a voucher pays once")
		}
		return nil, err
	}
	if s != nil {
		rq.fl.add(s.txn.ID)
		for _, x := range s.extra {
			rq.fl.add(x.txn.ID)
		}
	}
	rq.log.Info("checked out", "reference", ref, "vouchers", split.Vouchers.String(), "deposits", split.Deposits.String(), "card", split.Card.String(), "refund", split.Refund.String())
	return s, nil
}

// holds lists the open pre-authorizations at least olderThan old. It
// reads only those: the watch knows which they are and their age.
func (g *Gateway) holds(ctx context.Context, olderThan time.Duration) ([]sterad.Hold, error) {
	now := g.rq.clock.Now()
	txns, err := g.wt.load(ctx, g.j.store, g.wt.holdsOlder(now, olderThan), sterad.IsOpenHold)
	if err != nil {
		return nil, err
	}
	h := sterad.OpenHolds(txns, sterad.HoldOptions{Now: now, Location: g.cfg.Location, Limit: g.cfg.HoldAlert, OlderThan: olderThan})
	if h == nil {
		h = []sterad.Hold{}
	}
	return h, nil
}

// Checkout runs a check-out with split tender (POST /v1/checkouts).
func (g *Gateway) Checkout(ctx context.Context, r sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error) {
	return g.rq.checkout(ctx, r)
}

// Holds lists the open pre-authorizations at least olderThan old (GET
// /v1/holds).
func (g *Gateway) Holds(ctx context.Context, olderThan time.Duration) ([]sterad.Hold, error) {
	if olderThan < 0 {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_duration", "older_than must not be negative")
	}
	return g.holds(ctx, olderThan)
}

// VoucherReport is the voucher log and the claim of a month (YYYY-MM):
// vouchers whose check-out's card transaction ended without effect are
// not claimed.
func (g *Gateway) VoucherReport(ctx context.Context, month string) (sterad.VoucherReport, error) {
	m, err := sterad.ParseYearMonth(strings.TrimSpace(month))
	if err != nil {
		return sterad.VoucherReport{}, err
	}
	all, err := g.j.store.VoucherLog(ctx)
	if err != nil {
		return sterad.VoucherReport{}, err
	}
	var log []sterad.VoucherLogEntry
	for _, e := range all {
		if e.Transaction != "" {
			t, err := g.j.store.Transaction(ctx, e.Transaction)
			if err == nil && endedWithoutEffect(t) {
				continue
			}
		}
		log = append(log, *e)
	}
	rep := sterad.NewVoucherReport(g.cfg.VoucherPrograms, log, m)
	if rep.Log == nil {
		rep.Log = []sterad.VoucherLogEntry{}
	}
	return rep, nil
}

// holdAlerts are the open holds older than the alert limit, as alerts.
func (g *Gateway) holdAlerts(ctx context.Context) ([]*sterad.Transaction, error) {
	hs, err := g.holds(ctx, g.cfg.HoldAlert)
	if err != nil {
		return nil, err
	}
	var out []*sterad.Transaction
	for _, h := range hs {
		if !h.Old {
			continue
		}
		t, err := g.j.store.Transaction(ctx, h.ID)
		if err != nil {
			return nil, err
		}
		t.Reason = fmt.Sprintf("ALERT: pre-authorization of %s open for %d days (more than %s): complete or void it", h.Amount.Display(),
			int(h.Age.Hours()/24), g.cfg.HoldAlert)
		out = append(out, t)
	}
	return out, nil
}
