package sterad

import (
	"fmt"
	"strings"
	"time"
)

// Request is a clerk's or the property system's request to start a
// transaction, as it arrived: strings not yet validated. Gateway.Submit
// validates all of it before anything is stored or sent.
type Request struct {
	Op        string
	Terminal  string // card read at this terminal; empty for keyed, token or linked ops
	Amount    string // major units ("30000")
	Currency  string // default JPY
	Reference string // folio or reservation number
	Original  string // transaction ID for incremental, completion, refund, void
	PAN       string // keyed card number
	Expiry    string // keyed card expiry, YYMM
	Token     string // host token instead of a card (no-show)
	CheckIn   string // YYYY-MM-DD
	CheckOut  string // YYYY-MM-DD

	// IdempotencyKey: the same key and body return the same transaction
	// and never send anything twice; the same key with another body is a
	// conflict.
	IdempotencyKey string
	// Wait makes Submit return only when the transaction is final (or ctx
	// ends); otherwise it returns as soon as the transaction is journaled.
	Wait bool
}

// fingerprint is the canonical form of the validated request: everything
// that defines it (not how the caller waits for it), as values, so that
// "12800" and "12800.0", "jpy" and "JPY", or " R1" and "R1" are the same
// request. It contains the card number: only a keyed MAC of it is ever
// stored.
func (p *plan) fingerprint() []byte {
	var pan, expiry, stay string
	if p.card != nil {
		pan = string(p.card.PAN)
		expiry = fmt.Sprintf("%04d%02d", p.card.Expiry.Year, p.card.Expiry.Month)
	}
	if p.stay != nil {
		stay = p.stay.CheckIn.String() + "/" + p.stay.CheckOut.String()
	}
	return []byte(strings.Join([]string{
		"v2", string(p.op), p.termID, p.amount.Currency.Code, p.amount.Value.StringFixed(p.amount.Currency.Exponent),
		p.reference, p.originalID, pan, expiry, p.token, stay,
	}, "\x1f"))
}

// plan is a validated request: everything Submit needs to start it.
type plan struct {
	op         Op
	amount     Amount
	term       Terminal // nil unless the card is read at a terminal
	termID     string   // physical terminal ID, "" when keyed
	card       *Card    // keyed card
	token      string
	reference  string
	stay       *Stay
	entry      EntryMode // set when the card is not read (a host token)
	originalID string
	original   *Transaction // loaded by begin
}

// validate checks everything that does not depend on stored state: the
// op, the amount, the card, the dates, which fields the op needs.
func (g *Gateway) validate(r Request, now time.Time) (*plan, error) {
	op, err := ParseOp(strings.TrimSpace(r.Op))
	if err != nil {
		return nil, err
	}
	p := &plan{op: op, reference: strings.TrimSpace(r.Reference), token: strings.TrimSpace(r.Token), originalID: strings.TrimSpace(r.Original)}

	cur := g.cfg.Currency
	if r.Currency != "" {
		c, ok := LookupCurrency(r.Currency)
		if !ok || c.Code != g.cfg.Currency.Code {
			return nil, Errorf(EInvalid, "invalid_currency", "currency %q is not accepted: this merchant settles in %s", r.Currency, g.cfg.Currency.Code)
		}
		cur = c
	}

	// Amount: required and positive for everything that moves or holds
	// money; absent (or zero) for card checks and voids.
	switch op {
	case OpCardCheck, OpVoid:
		if strings.TrimSpace(r.Amount) != "" {
			a, err := ParseAmount(r.Amount, cur)
			if err != nil {
				return nil, err
			}
			if !a.IsZero() {
				return nil, Errorf(EInvalid, "unexpected_amount", "a %s takes no amount: it is not a charge", op)
			}
		}
		p.amount = Amount{Currency: cur}
	default:
		a, err := ParseAmount(r.Amount, cur)
		if err != nil {
			return nil, err
		}
		if a.IsZero() {
			return nil, Errorf(EInvalid, "invalid_amount", "amount must be more than zero")
		}
		if a.Value.Cmp(MaxAmount) >= 0 {
			return nil, Errorf(EInvalid, "invalid_amount", "amount %s is too large: the acquirer accepts less than %s", a, MaxAmount.StringFixed(cur.Exponent))
		}
		p.amount = a
	}

	if r.Terminal != "" {
		t, ok := g.terms[r.Terminal]
		if !ok {
			return nil, Errorf(ENotFound, "unknown_terminal", "unknown terminal %q", r.Terminal)
		}
		p.term, p.termID = t, r.Terminal
	}
	if r.PAN != "" || r.Expiry != "" {
		c := &Card{PAN: PAN(strings.TrimSpace(r.PAN)), Entry: EntryKeyed}
		if err := ValidatePAN(string(c.PAN)); err != nil {
			return nil, err
		}
		e, err := ParseExpiry(strings.TrimSpace(r.Expiry))
		if err != nil {
			return nil, err
		}
		c.Expiry = e
		if err := c.Validate(now.In(g.cfg.Location)); err != nil {
			return nil, err
		}
		c.Brand = BrandOf(string(c.PAN))
		p.card = c
	}
	if r.CheckIn != "" || r.CheckOut != "" {
		in, err := ParseDate(r.CheckIn)
		if err != nil {
			return nil, Errorf(EInvalid, "invalid_stay", "check-in: %s", ErrorMessage(err))
		}
		out, err := ParseDate(r.CheckOut)
		if err != nil {
			return nil, Errorf(EInvalid, "invalid_stay", "check-out: %s", ErrorMessage(err))
		}
		if out.Before(in) {
			return nil, Errorf(EInvalid, "invalid_stay", "check-out %s is before check-in %s", out, in)
		}
		p.stay = &Stay{CheckIn: in, CheckOut: out}
	}
	if len(p.reference) > 25 {
		return nil, Errorf(EInvalid, "invalid_reference", "reference is longer than 25 characters")
	}
	if !printable(p.reference) {
		return nil, Errorf(EInvalid, "invalid_reference", "reference must be printable ASCII")
	}
	if looksLikePAN(p.reference) {
		return nil, Errorf(EInvalid, "invalid_reference", "reference looks like a card number (12 to 19 digits passing the Luhn check): a reference is stored and shown in clear, so give the folio or reservation number instead")
	}

	// Which inputs each op takes.
	if op.NeedsOriginal() {
		if strings.TrimSpace(r.Original) == "" {
			return nil, Errorf(EInvalid, "missing_original", "a %s needs the original transaction id", op)
		}
		if p.card != nil || p.token != "" {
			return nil, Errorf(EInvalid, "unexpected_card", "a %s uses the card of the original transaction", op)
		}
		if p.term != nil && op != OpRefund {
			return nil, Errorf(EInvalid, "unexpected_terminal", "a %s does not read a card at a terminal", op)
		}
	} else if r.Original != "" {
		return nil, Errorf(EInvalid, "unexpected_original", "a %s does not refer to an original transaction", op)
	}
	switch op {
	case OpPreauth, OpSale, OpCardCheck:
		if p.term == nil && p.card == nil {
			return nil, Errorf(EInvalid, "missing_card", "a %s needs a terminal to read the card, or a keyed card", op)
		}
		if p.term != nil && p.card != nil {
			return nil, Errorf(EInvalid, "ambiguous_card", "give a terminal or a keyed card, not both")
		}
		if p.token != "" {
			return nil, Errorf(EInvalid, "unexpected_token", "a token is used only by a no-show charge")
		}
	case OpNoShow:
		if p.term != nil {
			return nil, Errorf(EInvalid, "unexpected_terminal", "a no-show charge is card-not-present: it uses no terminal")
		}
		if p.card != nil && p.token != "" {
			return nil, Errorf(EInvalid, "ambiguous_card", "give a keyed card or a token, not both")
		}
		if p.token != "" && (len(p.token) != 16 || !printable(p.token)) {
			return nil, Errorf(EInvalid, "invalid_token", "a card token has 16 characters")
		}
	}
	if op == OpCardCheck && p.stay != nil && p.reference == "" {
		return nil, Errorf(EInvalid, "missing_reference", "a card check with stay dates guarantees a reservation: give its reference")
	}
	if op == OpCardCheck && p.reference != "" && p.stay == nil {
		return nil, Errorf(EInvalid, "missing_stay", "a card check with a reference guarantees that reservation: give its stay dates (check-in and check-out), or no reference to only check the card")
	}
	if op == OpPreauth || op == OpNoShow {
		if p.reference == "" {
			return nil, Errorf(EInvalid, "missing_reference", "a %s needs the reservation reference", op)
		}
		if p.stay == nil {
			return nil, Errorf(EInvalid, "missing_stay", "a %s needs the stay dates (check-in and check-out)", op)
		}
	}
	return p, nil
}

// printable reports whether s is printable ASCII (DE 48's ans).
func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// looksLikePAN reports whether a reference is a card number: 12 to 19
// digits, spaces and dashes aside, that pass the Luhn check.
func looksLikePAN(s string) bool {
	digits := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
	if n := len(digits); n < 12 || n > 19 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return Luhn(digits)
}
