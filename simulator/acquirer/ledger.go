package acquirer

import (
	"fmt"
	"time"

	"github.com/sterad/sterad"
)

// Ledger is what the host has recorded. It never holds a full card number.
type Ledger struct {
	// Transactions are the financial entries, in arrival order, whatever
	// their status.
	Transactions []Transaction `json:"transactions"`
	// Approved are the transactions that count: approved and not
	// reversed or voided (Counted).
	Approved       []Transaction   `json:"approved"`
	Authorizations []Authorization `json:"authorizations"`
	Batches        []Batch         `json:"batches"`
	// Totals are the totals of Approved over every batch.
	Totals Totals `json:"totals"`
}

// Transaction is a financial entry: a sale, refund, completion, no-show
// charge, late-cancellation fee, advance deposit or stand-in advice.
type Transaction struct {
	Terminal    string        `json:"terminal"`
	Batch       int           `json:"batch"`
	STAN        string        `json:"stan"`
	MTI         string        `json:"mti"`  // 0200 or 0220 (repeats normalised)
	Kind        string        `json:"kind"` // sale, refund, completion, noshow, cancelfee, deposit, standin
	Amount      sterad.Amount `json:"amount"`
	Currency    string        `json:"currency"`
	MaskedPAN   string        `json:"masked_pan"`
	RRN         string        `json:"rrn,omitempty"`
	AuthCode    string        `json:"auth_code,omitempty"`
	TI          string        `json:"ti,omitempty"`
	Token       string        `json:"token,omitempty"` // issued on TR=1
	Response    string        `json:"response_code"`
	Status      string        `json:"status"`  // approved, reversed, voided, declined_advice
	Counted     bool          `json:"counted"` // counts in the totals
	Reference   string        `json:"reference,omitempty"`
	Transmitted time.Time     `json:"transmitted"` // DE 7
	At          time.Time     `json:"at"`          // when the host received it
}

// Authorization is a pre-authorization, incremental authorization or
// card check.
type Authorization struct {
	Terminal  string        `json:"terminal"`
	STAN      string        `json:"stan"`
	Kind      string        `json:"kind"` // preauth, incremental, cardcheck
	Amount    sterad.Amount `json:"amount"`
	Total     sterad.Amount `json:"total"` // preauth: amount plus live incrementals
	Currency  string        `json:"currency"`
	MaskedPAN string        `json:"masked_pan"`
	RRN       string        `json:"rrn,omitempty"`
	AuthCode  string        `json:"auth_code,omitempty"`
	TI        string        `json:"ti,omitempty"`
	Token     string        `json:"token,omitempty"`
	Response  string        `json:"response_code"`
	Status    string        `json:"status"` // approved (live), completed, reversed, voided
	Reference string        `json:"reference,omitempty"`
	At        time.Time     `json:"at"`
}

// Batch is one terminal's batch.
type Batch struct {
	Terminal string `json:"terminal"`
	Number   int    `json:"number"`
	State    string `json:"state"` // open, closed
	// HostTotals are the host's totals: at close for a closed batch, so
	// far for an open one.
	HostTotals Totals `json:"host_totals"`
	// GatewayTotals are those of the last 0500, if any.
	GatewayTotals *Totals    `json:"gateway_totals"`
	Uploads       []Upload   `json:"uploads"`
	Result        string     `json:"result,omitempty"` // DE 39 of the last 0500
	ClosedAt      *time.Time `json:"closed_at"`
}

// Upload is a 0320 as the host recorded it.
type Upload struct {
	STAN       string        `json:"stan"`
	Processing string        `json:"processing"`
	MaskedPAN  string        `json:"masked_pan,omitempty"`
	TI         string        `json:"ti,omitempty"`
	Token      string        `json:"token,omitempty"`
	Amount     sterad.Amount `json:"amount"`
	RRN        string        `json:"rrn"`
	AuthCode   string        `json:"auth_code"`
	Matched    bool          `json:"matched"` // same RRN, amount and card as a host transaction
	At         time.Time     `json:"at"`
}

// Totals are reconciliation totals.
type Totals struct {
	CreditCount  int64         `json:"credit_count"`
	CreditAmount sterad.Amount `json:"credit_amount"`
	DebitCount   int64         `json:"debit_count"`
	DebitAmount  sterad.Amount `json:"debit_amount"`
	Net          string        `json:"net"` // DE 97: C or D and the amount
}

// Minor returns the totals in minor units, as in a 0500.
func (t Totals) Minor() sterad.Totals {
	return sterad.Totals{
		CreditCount:  t.CreditCount,
		DebitCount:   t.DebitCount,
		CreditAmount: t.CreditAmount.Minor(),
		DebitAmount:  t.DebitAmount.Minor(),
	}
}

func viewTotals(t sterad.Totals) Totals {
	sign, net := t.Net()
	return Totals{
		CreditCount:  t.CreditCount,
		CreditAmount: sterad.AmountFromMinor(t.CreditAmount, sterad.JPY),
		DebitCount:   t.DebitCount,
		DebitAmount:  sterad.AmountFromMinor(t.DebitAmount, sterad.JPY),
		Net:          sign + sterad.AmountFromMinor(net, sterad.JPY).String(),
	}
}

// Batch returns the terminal's batch.
func (l Ledger) Batch(terminal string, number int) (Batch, bool) {
	for _, b := range l.Batches {
		if b.Terminal == terminal && b.Number == number {
			return b, true
		}
	}
	return Batch{}, false
}

// Transaction returns the transaction of the terminal with this STAN
// (the latest, if the STAN was used on several days).
func (l Ledger) Transaction(terminal string, stan sterad.STAN) (Transaction, bool) {
	for i := len(l.Transactions) - 1; i >= 0; i-- {
		if t := l.Transactions[i]; t.Terminal == terminal && t.STAN == stan.String() {
			return t, true
		}
	}
	return Transaction{}, false
}

func amountOf(minor int64, code string) sterad.Amount {
	cur, ok := sterad.LookupCurrency(code)
	if !ok {
		cur = sterad.JPY
	}
	return sterad.AmountFromMinor(minor, cur)
}

func stanString(n int) string { return fmt.Sprintf("%06d", n) }

// Ledger returns a copy of what the host has recorded.
func (h *Host) Ledger() Ledger {
	s := h.st
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Ledger{
		Transactions:   make([]Transaction, 0, len(s.txns)),
		Approved:       []Transaction{},
		Authorizations: make([]Authorization, 0, len(s.auths)),
		Batches:        make([]Batch, 0, len(s.order)),
	}
	var all sterad.Totals
	for _, t := range s.txns {
		v := Transaction{
			Terminal:    t.Terminal,
			Batch:       t.Batch,
			STAN:        stanString(t.STAN),
			MTI:         t.MTI,
			Kind:        t.Kind,
			Amount:      amountOf(t.Minor, t.Currency),
			Currency:    t.Currency,
			MaskedPAN:   t.Masked,
			RRN:         t.RRN,
			AuthCode:    t.AuthCode,
			TI:          t.TI,
			Token:       t.Token,
			Response:    t.Code,
			Status:      t.Status,
			Counted:     t.Status == StatusApproved,
			Reference:   t.Reference,
			Transmitted: t.Transmitted,
			At:          t.At,
		}
		l.Transactions = append(l.Transactions, v)
		if v.Counted {
			l.Approved = append(l.Approved, v)
			if t.credit() {
				all.CreditCount++
				all.CreditAmount += t.Minor
			} else {
				all.DebitCount++
				all.DebitAmount += t.Minor
			}
		}
	}
	l.Totals = viewTotals(all)
	for _, a := range s.auths {
		total := a.Minor
		if a.Kind == KindPreauth {
			total = a.total
		}
		l.Authorizations = append(l.Authorizations, Authorization{
			Terminal:  a.Terminal,
			STAN:      stanString(a.STAN),
			Kind:      a.Kind,
			Amount:    amountOf(a.Minor, a.Currency),
			Total:     amountOf(total, a.Currency),
			Currency:  a.Currency,
			MaskedPAN: a.Masked,
			RRN:       a.RRN,
			AuthCode:  a.AuthCode,
			TI:        a.TI,
			Token:     a.Token,
			Response:  a.Code,
			Status:    a.Status,
			Reference: a.Reference,
			At:        a.At,
		})
	}
	for _, b := range s.order {
		v := Batch{
			Terminal: b.Terminal,
			Number:   b.Number,
			State:    b.State,
			Result:   b.Result,
			Uploads:  make([]Upload, 0, len(b.uploads)),
		}
		if b.Host != nil {
			v.HostTotals = viewTotals(*b.Host)
		} else {
			v.HostTotals = viewTotals(hostTotals(b))
		}
		if b.Gateway != nil {
			g := viewTotals(*b.Gateway)
			v.GatewayTotals = &g
		}
		if !b.ClosedAt.IsZero() {
			at := b.ClosedAt
			v.ClosedAt = &at
		}
		for _, u := range b.uploads {
			v.Uploads = append(v.Uploads, Upload{
				STAN:       stanString(u.STAN),
				Processing: u.Processing,
				MaskedPAN:  u.Masked,
				TI:         u.TI,
				Token:      u.Token,
				Amount:     amountOf(u.Minor, u.Currency),
				RRN:        u.RRN,
				AuthCode:   u.AuthCode,
				Matched:    u.Matched,
				At:         u.At,
			})
		}
		l.Batches = append(l.Batches, v)
	}
	return l
}
