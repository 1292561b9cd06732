package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sterad/sterad"
)

// TransactionRequest is the body of POST /v1/transactions.
type TransactionRequest struct {
	Op        string     `json:"op"`
	Terminal  string     `json:"terminal,omitempty"`
	Amount    FlexAmount `json:"amount,omitempty"`
	Currency  string     `json:"currency,omitempty"`
	Reference string     `json:"reference,omitempty"`
	Original  string     `json:"original,omitempty"`
	Card      *CardInput `json:"card,omitempty"`
	Token     string     `json:"token,omitempty"`
	Stay      *StayInput `json:"stay,omitempty"`
	// FirstNight: the first night's rate of a guaranteed reservation's
	// card check, for its cancellation policy (version 1.1).
	FirstNight FlexAmount `json:"first_night,omitempty"`
}

// CardInput is a card keyed from the reservation. It prints masked.
type CardInput struct {
	PAN    sterad.PAN `json:"-"`
	Expiry string     `json:"expiry"`
}

// MarshalJSON sends the full number: the client posts it to the API.
func (c CardInput) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		PAN    string `json:"pan"`
		Expiry string `json:"expiry"`
	}{c.PAN.Reveal(), c.Expiry})
}

// UnmarshalJSON reads {"pan","expiry"}.
func (c *CardInput) UnmarshalJSON(b []byte) error {
	var v struct {
		PAN    string `json:"pan"`
		Expiry string `json:"expiry"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("card: %v", scrubJSONError(err))
	}
	c.PAN, c.Expiry = sterad.PAN(v.PAN), v.Expiry
	return nil
}

// StayInput is a lodging stay.
type StayInput struct {
	CheckIn  string `json:"checkin"`
	CheckOut string `json:"checkout"`
}

// FlexAmount accepts an amount as a JSON string ("30000") or a JSON number
// (30000) and keeps its text exactly, for sterad.ParseAmount to judge.
type FlexAmount string

// UnmarshalJSON keeps the literal text of a number or the content of a string.
func (a *FlexAmount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = FlexAmount(s)
		return nil
	}
	if string(b) == "null" {
		*a = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("amount must be a decimal string or number")
	}
	*a = FlexAmount(n.String())
	return nil
}

// Domain converts the request for TransactionService.Submit.
func (r TransactionRequest) Domain() sterad.Request {
	d := sterad.Request{
		Op: r.Op, Terminal: r.Terminal, Amount: string(r.Amount), Currency: r.Currency,
		Reference: r.Reference, Original: r.Original, Token: r.Token, FirstNight: string(r.FirstNight),
	}
	if r.Card != nil {
		d.PAN, d.Expiry = r.Card.PAN.Reveal(), r.Card.Expiry
	}
	if r.Stay != nil {
		d.CheckIn, d.CheckOut = r.Stay.CheckIn, r.Stay.CheckOut
	}
	return d
}

// Transaction is a transaction as the API shows it: never a full card
// number.
type Transaction struct {
	ID              string         `json:"id"`
	Op              string         `json:"op"`
	Status          string         `json:"status"`
	ResponseCode    string         `json:"response_code"`
	Reason          string         `json:"reason,omitempty"`
	AuthCode        string         `json:"auth_code"`
	RRN             string         `json:"rrn"`
	STAN            string         `json:"stan"`
	Batch           *string        `json:"batch"`
	Amount          string         `json:"amount"`
	Currency        string         `json:"currency"`
	MaskedPAN       string         `json:"masked_pan"`
	Brand           string         `json:"brand"`
	Entry           string         `json:"entry"`
	Terminal        *string        `json:"terminal"`
	TerminalID      string         `json:"terminal_id,omitempty"`
	Reference       string         `json:"reference"`
	Original        *string        `json:"original"`
	Offline         bool           `json:"offline"`
	Token           *string        `json:"token"`
	TI              string         `json:"ti,omitempty"`
	Stay            *sterad.Stay   `json:"stay,omitempty"`
	AuthorizedTotal string         `json:"authorized_total,omitempty"`
	Refunded        string         `json:"refunded,omitempty"`
	CompletedBy     string         `json:"completed_by,omitempty"`
	VoidedBy        string         `json:"voided_by,omitempty"`
	TerminalResult  string         `json:"terminal_result,omitempty"`
	Printed         bool           `json:"printed,omitempty"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	Events          []sterad.Event `json:"events,omitempty"`
	// A cancellation (version 1.1): amount is the fee; card_amount what
	// the card was charged (the fee above the deposits).
	CardAmount    string   `json:"card_amount,omitempty"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	PolicyRow     string   `json:"policy_row,omitempty"`
	Linked        []string `json:"linked,omitempty"` // refunds started with it
}

// View converts a domain transaction; events are included when withEvents.
func View(t *sterad.Transaction, withEvents bool) *Transaction {
	v := &Transaction{
		ID: t.ID, Op: string(t.Op), Status: string(t.Status), ResponseCode: t.ResponseCode, Reason: t.Reason,
		AuthCode: t.AuthCode, RRN: t.RRN, Amount: t.Amount.String(), Currency: t.Currency,
		MaskedPAN: t.MaskedPAN, Brand: string(t.Brand), Entry: string(t.Entry), TerminalID: t.TerminalID,
		Reference: t.Reference, Offline: t.Offline, TI: t.HostTI, Stay: t.Stay,
		CompletedBy: t.CompletedBy, VoidedBy: t.VoidedBy, TerminalResult: t.TerminalResult, Printed: t.Printed,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
	if t.STAN != 0 {
		v.STAN = t.STAN.String()
	}
	if t.Batch != 0 {
		b := fmt.Sprintf("%06d", t.Batch)
		v.Batch = &b
	}
	if t.Terminal != "" {
		v.Terminal = &t.Terminal
	}
	if t.Original != "" {
		v.Original = &t.Original
	}
	if t.Token != "" {
		v.Token = &t.Token
	}
	if t.Op == sterad.OpPreauth && t.AuthorizedTotal.Currency.Code != "" {
		v.AuthorizedTotal = t.AuthorizedTotal.String()
	}
	if t.Refunded.Currency.Code != "" && !t.Refunded.IsZero() {
		v.Refunded = t.Refunded.String()
	}
	if t.Op == sterad.OpCancellation {
		v.CardAmount = t.Amount.String()
		if t.Fee.Currency.Code != "" {
			v.Amount = t.Fee.String()
		}
		v.PolicyVersion, v.PolicyRow = t.PolicyVersion, t.PolicyRow
	}
	v.Linked = t.Linked
	if withEvents {
		v.Events = t.Events
	}
	return v
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong. Transaction is set when the request
// did create a transaction before failing (a terminal that turned out to
// be busy).
type ErrorDetail struct {
	Code        string       `json:"code"`
	Message     string       `json:"message"`
	Transaction *Transaction `json:"transaction,omitempty"`
}

// Status is GET /v1/status: the daemon at a glance.
type Status struct {
	Acquirer  sterad.LinkStatus     `json:"acquirer"`
	Terminals []sterad.TerminalInfo `json:"terminals"`
	Queue     QueueSummary          `json:"queue"`
	Batch     *sterad.Batch         `json:"batch,omitempty"`
	Closing   *BatchView            `json:"closing,omitempty"` // a batch left closing: its attempts, last error, next retry
	Alerts    []*Transaction        `json:"alerts"`            // offline approvals the issuer declined: collect another way
	Version   string                `json:"version,omitempty"`
}

// QueueSummary counts the store-and-forward queue.
type QueueSummary struct {
	Depth  int `json:"depth"`
	Parked int `json:"parked"`
}

// FlushResult is POST /v1/queue/flush.
type FlushResult struct {
	Sent  int `json:"sent"`
	Depth int `json:"depth"`
}

// BatchView is a batch and, while it closes, its progress.
type BatchView struct {
	*sterad.Batch
	Progress *sterad.BatchProgress `json:"progress,omitempty"`
}
