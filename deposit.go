package sterad

import (
	"github.com/shopspring/decimal"
)

// Money arithmetic of reservations: what the card pays and what is given
// back at check-out, on a cancellation and on an amount change. These
// functions only compute; the flows journal and send what they decide.
// Every result is in whole minor units, never negative: a charge is a
// charge and a refund is a refund, never a negative charge.

// Refundable is a charge that money can be given back from: an approved
// deposit, sale, completion, no-show or cancellation charge, with what was
// already refunded on it (approved and pending refunds).
type Refundable struct {
	ID       string `json:"id"`
	Charged  Amount `json:"charged"`
	Refunded Amount `json:"refunded"`
}

// Left returns what may still be refunded on the charge.
func (r Refundable) Left() Amount {
	return r.Charged.Sub(r.Refunded.orZero(r.Charged.Currency))
}

// RefundableOf returns t as a Refundable when it is a debit that holds the
// guest's money (approved, or stood in and not yet refused): a sale,
// completion or no-show charge, or any op the domain counts as a debit.
func RefundableOf(t *Transaction) (Refundable, bool) {
	if !t.IsDebit() || (t.Status != StatusApproved && t.Status != StatusStoodIn) {
		return Refundable{}, false
	}
	return Refundable{ID: t.ID, Charged: t.Amount, Refunded: t.Refunded.orZero(t.Amount.Currency)}, true
}

// RefundPart is one refund to send: Amount back against the charge
// Original.
type RefundPart struct {
	Original string `json:"original"`
	Amount   Amount `json:"amount"`
}

// SplitRefund splits a refund of amount over charges, in the order given
// (put the original first, later difference charges after it), each at
// most what is left on it. It refuses (EConflict "exceeds_refundable") to
// refund more than is left in all: never more than was charged goes back.
func SplitRefund(amount Amount, charges []Refundable) ([]RefundPart, error) {
	if amount.Value.IsNegative() {
		return nil, Errorf(EInvalid, "invalid_amount", "a refund of %s is negative", amount)
	}
	left, err := sumLeft(amount.Currency, charges)
	if err != nil {
		return nil, err
	}
	if amount.Cmp(left) > 0 {
		return nil, Errorf(EConflict, "exceeds_refundable", "a refund of %s is more than what is left to refund: %s", amount, left)
	}
	var parts []RefundPart
	rest := amount
	for _, c := range charges {
		if !rest.Value.IsPositive() {
			break
		}
		l := c.Left()
		if !l.Value.IsPositive() {
			continue
		}
		take := minAmount(rest, l)
		parts = append(parts, RefundPart{Original: c.ID, Amount: take})
		rest = rest.Sub(take)
	}
	return parts, nil
}

func sumLeft(cur Currency, charges []Refundable) (Amount, error) {
	total := zero(cur)
	for _, c := range charges {
		if err := sameCurrency(cur, c.Charged); err != nil {
			return Amount{}, err
		}
		l := c.Left()
		if l.Value.IsNegative() {
			return Amount{}, Errorf(EInternal, "refunded_above_charge", "charge %s has %s refunded, more than the %s charged", c.ID, c.Refunded, c.Charged)
		}
		total = total.Add(l)
	}
	return total, nil
}

func zero(cur Currency) Amount { return Amount{Value: decimal.Zero, Currency: cur} }

func minAmount(a, b Amount) Amount {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

func sameCurrency(cur Currency, a Amount) error {
	if a.Currency.Code != "" && cur.Code != "" && a.Currency.Code != cur.Code {
		return Errorf(EInvalid, "currency_mismatch", "an amount in %s cannot be set against one in %s", a.Currency.Code, cur.Code)
	}
	return nil
}

// checkMoney refuses a negative amount, a fraction finer than the
// currency's minor unit, and a foreign currency.
func checkMoney(name string, a Amount, cur Currency) error {
	if err := sameCurrency(cur, a); err != nil {
		return err
	}
	if a.Value.IsNegative() {
		return Errorf(EInvalid, "invalid_amount", "%s %s is negative", name, a)
	}
	if !a.Value.Equal(a.Value.Truncate(cur.Exponent)) {
		return Errorf(EInvalid, "invalid_amount", "%s %s is finer than the %s minor unit", name, a.Value, cur.Code)
	}
	return nil
}

// Bill is a folio at check-out, split by what may pay for it.
type Bill struct {
	// RoomPlan is the basic room plan (宿泊プラン) of the whole stay,
	// including what the plan itself includes (meals, a golf pack): the
	// only part travel vouchers may pay.
	RoomPlan Amount `json:"room_plan"`
	// Other is everything outside the plan: food and drinks added at the
	// hotel, room service, souvenirs.
	Other Amount `json:"other"`
	// BathingTax is the bathing tax (入湯税), never paid by vouchers.
	BathingTax Amount `json:"bathing_tax"`
}

// Currency returns the bill's currency (JPY when none is set).
func (b Bill) Currency() Currency {
	for _, a := range []Amount{b.RoomPlan, b.Other, b.BathingTax} {
		if a.Currency.Code != "" {
			return a.Currency
		}
	}
	return JPY
}

// Total returns room plan + other + bathing tax.
func (b Bill) Total() Amount {
	cur := b.Currency()
	return b.RoomPlan.orZero(cur).Add(b.Other.orZero(cur)).Add(b.BathingTax.orZero(cur))
}

// Validate refuses negative parts, fractions of the minor unit and mixed
// currencies (EInvalid "invalid_amount", "currency_mismatch").
func (b Bill) Validate() error {
	cur := b.Currency()
	for _, p := range []struct {
		name string
		a    Amount
	}{{"room_plan", b.RoomPlan}, {"other", b.Other}, {"bathing_tax", b.BathingTax}} {
		if err := checkMoney(p.name, p.a.orZero(cur), cur); err != nil {
			return err
		}
	}
	return nil
}

// CheckoutSplit is how a check-out is paid: vouchers against the room
// plan first, then the deposits against what is left, then the card. When
// the deposits are more than what is left, the difference is refunded
// (Refunds says against which deposits).
type CheckoutSplit struct {
	Total    Amount       `json:"total"`            // the whole bill
	Vouchers Amount       `json:"vouchers_applied"` // paid by travel vouchers
	Deposits Amount       `json:"deposits_applied"` // deposits counted against the bill
	Card     Amount       `json:"card_amount"`      // what the card pays now (0: nothing to charge)
	Refund   Amount       `json:"refund"`           // deposit money given back (0: none)
	Refunds  []RefundPart `json:"refunds,omitempty"`
}

// SplitCheckout computes a check-out's split tender: vouchers (already
// checked by ApplyVouchers: they pay the room plan only, never more than
// it), then the deposits (what is left on each), then the card. A refund
// of deposits comes off them in the order given. It refuses vouchers above the room plan (EInvalid
// "voucher_exceeds_plan") and bad amounts.
func SplitCheckout(bill Bill, vouchers Amount, deposits []Refundable) (CheckoutSplit, error) {
	if err := bill.Validate(); err != nil {
		return CheckoutSplit{}, err
	}
	cur := bill.Currency()
	vouchers = vouchers.orZero(cur)
	if err := checkMoney("vouchers", vouchers, cur); err != nil {
		return CheckoutSplit{}, err
	}
	if vouchers.Cmp(bill.RoomPlan.orZero(cur)) > 0 {
		return CheckoutSplit{}, Errorf(EInvalid, "voucher_exceeds_plan", "vouchers of %s are more than the room plan %s: vouchers pay the room plan only and give no change",
			vouchers.Display(), bill.RoomPlan.orZero(cur).Display())
	}
	held, err := sumLeft(cur, deposits)
	if err != nil {
		return CheckoutSplit{}, err
	}
	total := bill.Total()
	due := total.Sub(vouchers) // ≥ 0: vouchers ≤ room plan ≤ total
	s := CheckoutSplit{Total: total, Vouchers: vouchers, Card: zero(cur), Refund: zero(cur)}
	s.Deposits = minAmount(held, due)
	if held.Cmp(due) >= 0 {
		s.Refund = held.Sub(due)
		if s.Refunds, err = SplitRefund(s.Refund, deposits); err != nil {
			return CheckoutSplit{}, err
		}
	} else {
		s.Card = due.Sub(held)
	}
	return s, nil
}

// CancellationSplit is how a cancellation fee is paid when the reservation
// has deposits: the fee comes out of the deposits first, the rest of the
// deposits is refunded, and only a fee above the deposits is charged to
// the kept card or token. A 100 % fee on a stay paid in full gives nothing
// back; a zero fee gives everything back (取消料 0 円 = 全額返金).
type CancellationSplit struct {
	Fee      Amount       `json:"fee"`
	Deposits Amount       `json:"deposits"`    // deposits held (what is left on them)
	Kept     Amount       `json:"kept"`        // the part of the fee kept out of the deposits
	Card     Amount       `json:"card_amount"` // the fee above the deposits: charged to the card (0: nothing)
	Refund   Amount       `json:"refund"`      // the deposits minus the fee: given back (0: nothing)
	Refunds  []RefundPart `json:"refunds,omitempty"`
}

// SplitCancellation computes where a cancellation fee comes from, given
// the reservation's deposits. The refund comes off the deposits in the
// order given.
func SplitCancellation(fee Amount, deposits []Refundable) (CancellationSplit, error) {
	cur := fee.Currency
	if cur.Code == "" {
		cur = JPY
		fee = zero(cur)
	}
	if err := checkMoney("fee", fee, cur); err != nil {
		return CancellationSplit{}, err
	}
	held, err := sumLeft(cur, deposits)
	if err != nil {
		return CancellationSplit{}, err
	}
	s := CancellationSplit{Fee: fee, Deposits: held, Kept: minAmount(fee, held), Card: zero(cur), Refund: zero(cur)}
	if fee.Cmp(held) > 0 {
		s.Card = fee.Sub(held)
	} else {
		s.Refund = held.Sub(fee)
		if s.Refunds, err = SplitRefund(s.Refund, deposits); err != nil {
			return CancellationSplit{}, err
		}
	}
	return s, nil
}

// Adjustment is an amount change after a charge (差額): the guest has paid
// Paid (charged minus refunded); the new total is NewTotal; only the
// difference moves: Charge when the total went up, Refund (split over the
// charges by Refunds) when it went down, neither when it is the same.
type Adjustment struct {
	NewTotal Amount       `json:"new_total"`
	Paid     Amount       `json:"paid"`
	Charge   Amount       `json:"charge"` // the difference to charge (0: none)
	Refund   Amount       `json:"refund"` // the difference to refund (0: none)
	Refunds  []RefundPart `json:"refunds,omitempty"`
}

// Adjust computes an amount change: charges holds the original charge
// first, then any earlier difference charges linked to it. A negative new
// total is refused (EInvalid "negative_total"), as are a fraction of the
// minor unit and a change with nothing charged (EConflict
// "nothing_charged"). A refund is never more than what is left to refund
// on the charges, so never more than was charged; it comes off the
// original first.
func Adjust(newTotal Amount, charges []Refundable) (Adjustment, error) {
	if len(charges) == 0 {
		return Adjustment{}, Errorf(EConflict, "nothing_charged", "nothing was charged: there is no amount to change")
	}
	cur := charges[0].Charged.Currency
	if newTotal.Currency.Code == "" {
		newTotal.Currency = cur
	}
	if newTotal.Value.IsNegative() {
		return Adjustment{}, Errorf(EInvalid, "negative_total", "the new total %s is negative: an amount change gives the new total, which is at least zero", newTotal)
	}
	if err := checkMoney("the new total", newTotal, cur); err != nil {
		return Adjustment{}, err
	}
	paid, err := sumLeft(cur, charges)
	if err != nil {
		return Adjustment{}, err
	}
	a := Adjustment{NewTotal: newTotal, Paid: paid, Charge: zero(cur), Refund: zero(cur)}
	switch newTotal.Cmp(paid) {
	case 1:
		a.Charge = newTotal.Sub(paid)
	case -1:
		a.Refund = paid.Sub(newTotal)
		if a.Refunds, err = SplitRefund(a.Refund, charges); err != nil {
			return Adjustment{}, err
		}
	}
	return a, nil
}
