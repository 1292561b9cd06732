package gateway

import (
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// fingerprint is the canonical form of the validated request: everything
// that defines it (not how the caller waits for it), as values, so that
// "12800" and "12800.0", "jpy" and "JPY", or " R1" and "R1" are the same
// request. It contains the card number: only a keyed MAC of it is ever
// stored.
func (p *plan) fingerprint() []byte {
	var pan, expiry, stay, firstNight string
	if p.card != nil {
		pan = string(p.card.PAN)
		expiry = p.card.Expiry.Digits()
	}
	if p.stay != nil {
		stay = p.stay.CheckIn.String() + "/" + p.stay.CheckOut.String()
	}
	if p.firstNight != nil {
		firstNight = p.firstNight.Value.StringFixed(p.firstNight.Currency.Exponent)
	}
	return []byte(strings.Join([]string{
		"v2", string(p.op), p.termID, p.amount.Currency.Code, p.amount.Value.StringFixed(p.amount.Currency.Exponent),
		p.reference, p.originalID, pan, expiry, p.token, stay, firstNight,
	}, "\x1f"))
}

// plan is a validated request: everything Submit needs to start it.
type plan struct {
	op         sterad.Op
	amount     sterad.Amount
	term       sterad.Terminal // nil unless the card is read at a terminal
	termID     string          // physical terminal ID, "" when keyed
	card       *sterad.Card    // keyed card
	token      string
	reference  string
	stay       *sterad.Stay
	entry      sterad.EntryMode // set when the card is not read (a host token)
	originalID string
	original   *sterad.Transaction // loaded by begin
	firstNight *sterad.Amount      // card check of a guaranteed reservation: the rate its policy applies to
}

// validate checks everything that does not depend on stored state: the
// op, the amount, the card, the dates, which fields the op needs.
// It lives with the flow rather than in the root because it needs the
// merchant's configuration (currency, local day) and the terminals; the
// parsing it builds on (ParseOp, ParseAmount, ValidatePAN, ParseExpiry,
// ParseDate, Card.Validate) is the domain's. The checks against stored
// state (original, reservation, busy terminal) are begin's.
func (rq *requests) validate(r sterad.Request, now time.Time) (*plan, error) {
	op, err := sterad.ParseOp(strings.TrimSpace(r.Op))
	if err != nil {
		return nil, err
	}
	p := &plan{op: op, reference: strings.TrimSpace(r.Reference), token: strings.TrimSpace(r.Token), originalID: strings.TrimSpace(r.Original)}

	cur := rq.cfg.Currency
	if r.Currency != "" {
		c, ok := sterad.LookupCurrency(r.Currency)
		if !ok || c.Code != rq.cfg.Currency.Code {
			return nil, sterad.Errorf(sterad.EInvalid, "invalid_currency", "currency %q is not accepted: this merchant settles in %s", r.Currency, rq.cfg.Currency.Code)
		}
		cur = c
	}

	a, err := requestAmount(op, r.Amount, cur)
	if err != nil {
		return nil, err
	}
	p.amount = a

	if r.Terminal != "" {
		t, ok := rq.tm.lookup(r.Terminal)
		if !ok {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_terminal", "unknown terminal %q", r.Terminal)
		}
		p.term, p.termID = t, r.Terminal
	}
	if r.PAN != "" || r.Expiry != "" {
		if rq.blind() {
			// Card-data-blind: a card number never enters sterad. It is
			// refused before anything else looks at it, and never quoted.
			return nil, sterad.ErrCardDataBlind
		}
		if p.card, err = keyedCard(r.PAN, r.Expiry, now.In(rq.cfg.Location)); err != nil {
			return nil, err
		}
	}
	if r.CheckIn != "" || r.CheckOut != "" {
		if p.stay, err = requestStay(r.CheckIn, r.CheckOut); err != nil {
			return nil, err
		}
	}
	if len(p.reference) > 25 {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_reference", "reference is longer than 25 characters")
	}
	if !printable(p.reference) {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_reference", "reference must be printable ASCII")
	}
	if _, ok := sterad.LooksLikePAN(p.reference); ok {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_reference", "reference looks like a card number (12 to 19 digits passing the Luhn check): a reference is stored and shown in clear, so give the folio or reservation number instead")
	}

	if err := checkInputs(p, r.Original, rq.blind()); err != nil {
		return nil, err
	}
	if err := rq.validateReservationPayment(p, r); err != nil {
		return nil, err
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

// requestAmount parses a request's amount: required and positive for
// everything that moves or holds money; absent (or zero) for card checks
// and voids.
func requestAmount(op sterad.Op, raw string, cur sterad.Currency) (sterad.Amount, error) {
	switch op {
	case sterad.OpAdjust:
		return adjustTotal(raw, cur)
	case sterad.OpCardCheck, sterad.OpVoid, sterad.OpCancellation:
		if strings.TrimSpace(raw) != "" {
			a, err := sterad.ParseAmount(raw, cur)
			if err != nil {
				return sterad.Amount{}, err
			}
			if !a.IsZero() {
				if op == sterad.OpCancellation {
					return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "unexpected_amount", "a cancellation takes no amount: its fee comes from the cancellation policy recorded with the reservation")
				}
				return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "unexpected_amount", "a %s takes no amount: it is not a charge", op)
			}
		}
		return sterad.Amount{Currency: cur}, nil
	default:
		a, err := sterad.ParseAmount(raw, cur)
		if err != nil {
			return sterad.Amount{}, err
		}
		if a.IsZero() {
			return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "amount must be more than zero")
		}
		if a.Value.Cmp(sterad.MaxAmount) >= 0 {
			return sterad.Amount{}, sterad.Errorf(sterad.EInvalid, "invalid_amount", "amount %s is too large: the acquirer accepts less than %s", a, sterad.MaxAmount.StringFixed(cur.Exponent))
		}
		return a, nil
	}
}

// keyedCard parses a keyed card, valid on the merchant's day today.
func keyedCard(pan, expiry string, today time.Time) (*sterad.Card, error) {
	c := &sterad.Card{PAN: sterad.PAN(strings.TrimSpace(pan)), Entry: sterad.EntryKeyed}
	if err := sterad.ValidatePAN(string(c.PAN)); err != nil {
		return nil, err
	}
	e, err := sterad.ParseExpiry(strings.TrimSpace(expiry))
	if err != nil {
		return nil, err
	}
	c.Expiry = e
	if err := c.Validate(today); err != nil {
		return nil, err
	}
	c.Brand = sterad.BrandOf(string(c.PAN))
	return c, nil
}

// requestStay parses a stay's check-in and check-out dates.
func requestStay(checkIn, checkOut string) (*sterad.Stay, error) {
	in, err := sterad.ParseDate(checkIn)
	if err != nil {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_stay", "check-in: %s", sterad.ErrorMessage(err))
	}
	out, err := sterad.ParseDate(checkOut)
	if err != nil {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_stay", "check-out: %s", sterad.ErrorMessage(err))
	}
	if out.Before(in) {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_stay", "check-out %s is before check-in %s", out, in)
	}
	return &sterad.Stay{CheckIn: in, CheckOut: out}, nil
}

// checkInputs checks which inputs p's op takes (original is the request's
// raw original ID). In card-data-blind mode a card check may come as a
// host token instead of a card read at a terminal.
func checkInputs(p *plan, original string, blind bool) error {
	op := p.op
	// Which inputs each op takes.
	if op.NeedsOriginal() {
		if strings.TrimSpace(original) == "" {
			return sterad.Errorf(sterad.EInvalid, "missing_original", "a %s needs the original transaction id", op)
		}
		if p.card != nil || p.token != "" {
			return sterad.Errorf(sterad.EInvalid, "unexpected_card", "a %s uses the card of the original transaction", op)
		}
		if p.term != nil && op != sterad.OpRefund && op != sterad.OpAdjust {
			return sterad.Errorf(sterad.EInvalid, "unexpected_terminal", "a %s does not read a card at a terminal", op)
		}
	} else if original != "" {
		return sterad.Errorf(sterad.EInvalid, "unexpected_original", "a %s does not refer to an original transaction", op)
	}
	switch op {
	case sterad.OpPreauth, sterad.OpSale, sterad.OpCardCheck:
		tokenCheck := blind && op == sterad.OpCardCheck && p.token != ""
		switch {
		case tokenCheck && p.term != nil:
			return sterad.Errorf(sterad.EInvalid, "ambiguous_card", "give a terminal or a token, not both")
		case tokenCheck:
			if len(p.token) != 16 || !printable(p.token) {
				return sterad.Errorf(sterad.EInvalid, "invalid_token", "a card token has 16 characters")
			}
		case p.token != "":
			return sterad.Errorf(sterad.EInvalid, "unexpected_token", "a token is used only by a no-show charge")
		case p.term == nil && p.card == nil && blind && op == sterad.OpCardCheck:
			return sterad.Errorf(sterad.EInvalid, "missing_card", "a card check needs a terminal to read (or key) the card, or a token: sterad runs card-data-blind")
		case p.term == nil && p.card == nil && blind:
			return sterad.Errorf(sterad.EInvalid, "missing_card", "a %s needs a terminal to read the card: sterad runs card-data-blind", op)
		case p.term == nil && p.card == nil:
			return sterad.Errorf(sterad.EInvalid, "missing_card", "a %s needs a terminal to read the card, or a keyed card", op)
		case p.term != nil && p.card != nil:
			return sterad.Errorf(sterad.EInvalid, "ambiguous_card", "give a terminal or a keyed card, not both")
		}
	case sterad.OpNoShow:
		if p.term != nil {
			return sterad.Errorf(sterad.EInvalid, "unexpected_terminal", "a no-show charge is card-not-present: it uses no terminal")
		}
		if p.card != nil && p.token != "" {
			return sterad.Errorf(sterad.EInvalid, "ambiguous_card", "give a keyed card or a token, not both")
		}
		if p.token != "" && (len(p.token) != 16 || !printable(p.token)) {
			return sterad.Errorf(sterad.EInvalid, "invalid_token", "a card token has 16 characters")
		}
	}
	if op == sterad.OpCardCheck && p.stay != nil && p.reference == "" {
		return sterad.Errorf(sterad.EInvalid, "missing_reference", "a card check with stay dates guarantees a reservation: give its reference")
	}
	if op == sterad.OpCardCheck && p.reference != "" && p.stay == nil {
		return sterad.Errorf(sterad.EInvalid, "missing_stay", "a card check with a reference guarantees that reservation: give its stay dates (check-in and check-out), or no reference to only check the card")
	}
	if op == sterad.OpPreauth || op == sterad.OpNoShow {
		if p.reference == "" {
			return sterad.Errorf(sterad.EInvalid, "missing_reference", "a %s needs the reservation reference", op)
		}
		if p.stay == nil {
			return sterad.Errorf(sterad.EInvalid, "missing_stay", "a %s needs the stay dates (check-in and check-out)", op)
		}
	}
	return nil
}
