package sterad

import (
	"fmt"
	"slices"
	"time"
)

// Op is what a transaction does.
type Op string

// Operations, as the API names them.
const (
	OpPreauth     Op = "preauth"     // pre-authorization at check-in (0100, DE 25 = 06)
	OpIncremental Op = "incremental" // more authorization on a pre-auth (0100, MI=IA)
	OpCompletion  Op = "completion"  // final amount at check-out (0220)
	OpSale        Op = "sale"        // card-present or keyed sale (0200)
	OpRefund      Op = "refund"      // refund of a sale (0200, DE 3 = 200000)
	OpVoid        Op = "void"        // cancel before the batch closes (0400)
	OpCardCheck   Op = "cardcheck"   // account verification (0100, DE 4 = 0, DE 25 = 51)
	OpNoShow      Op = "noshow"      // no-show charge of a guaranteed reservation (0200, MI=NS)
	// Version 1.1 (reservation payments).
	OpCancellation Op = "cancellation" // late-cancellation fee of a guaranteed reservation (0200, MI=CX)
	OpDeposit      Op = "deposit"      // advance deposit before arrival (0200, MI=DP)
	OpAdjust       Op = "adjust"       // an amount change: becomes a sale or refund of the difference
)

// Ops lists every operation.
var Ops = []Op{OpPreauth, OpIncremental, OpCompletion, OpSale, OpRefund, OpVoid, OpCardCheck, OpNoShow,
	OpCancellation, OpDeposit, OpAdjust}

// ParseOp returns the op named s.
func ParseOp(s string) (Op, error) {
	if slices.Contains(Ops, Op(s)) {
		return Op(s), nil
	}
	return "", Errorf(EInvalid, "unknown_op", "unknown op %q: use one of preauth, incremental, completion, sale, refund, void, cardcheck, noshow, cancellation, deposit, adjust", s)
}

// Financial reports whether the op moves money and so belongs in the
// batch totals: sales, completions, no-show charges, late-cancellation
// fees and advance deposits are debits, refunds are credits. (An adjust
// is never stored as such: it becomes a sale or a refund.)
func (o Op) Financial() bool {
	switch o {
	case OpSale, OpCompletion, OpNoShow, OpRefund, OpCancellation, OpDeposit:
		return true
	}
	return false
}

// Credit reports whether the op is a credit to the cardholder.
func (o Op) Credit() bool { return o == OpRefund }

// NeedsOriginal reports whether the op refers to an earlier transaction.
func (o Op) NeedsOriginal() bool {
	switch o {
	case OpIncremental, OpCompletion, OpRefund, OpVoid, OpAdjust:
		return true
	}
	return false
}

// Status is a transaction's state as clients see it.
type Status string

// Statuses.
const (
	StatusPending   Status = "pending"   // in progress, or queued for the acquirer
	StatusApproved  Status = "approved"  // approved by the acquirer (85 for a card check)
	StatusDeclined  Status = "declined"  // declined; the card was not charged
	StatusStoodIn   Status = "stood_in"  // approved locally while the acquirer was unreachable
	StatusReversed  Status = "reversed"  // the outcome was unknown and the acquirer confirmed a reversal
	StatusVoided    Status = "voided"    // voided by the hotel before the batch closed
	StatusCancelled Status = "cancelled" // cancelled before anything was charged
	StatusUnknown   Status = "unknown"   // outcome unknown; a reversal is under way or an operator must look
)

// Final reports whether no further change of status is possible.
func (s Status) Final() bool {
	switch s {
	case StatusDeclined, StatusReversed, StatusVoided, StatusCancelled:
		return true
	}
	return false
}

// transitions is the state machine: the statuses each status may move to.
// A status may always stay as it is (a step changes within it).
var transitions = map[Status][]Status{
	StatusPending:  {StatusApproved, StatusDeclined, StatusStoodIn, StatusCancelled, StatusUnknown, StatusReversed},
	StatusUnknown:  {StatusReversed, StatusApproved, StatusDeclined},
	StatusStoodIn:  {StatusApproved, StatusDeclined, StatusVoided, StatusReversed, StatusUnknown},
	StatusApproved: {StatusVoided, StatusReversed},
}

// CanTransition reports whether a transaction may move from one status to
// another.
func CanTransition(from, to Status) bool {
	return from == to && !from.Final() || slices.Contains(transitions[from], to)
}

// Step records how far a transaction got, so that recovery after a crash
// knows what may have happened outside sterad.
type Step string

// Steps, in order.
const (
	StepCreated  Step = "created"   // journaled; nothing sent anywhere yet
	StepReading  Step = "reading"   // READ_CARD is (about to be) at the terminal
	StepCardRead Step = "card_read" // the card is persisted; no request sent
	StepSent     Step = "sent"      // the request is journaled and may have reached the host
	StepAnswered Step = "answered"  // the host's answer is persisted
	StepQueued   Step = "queued"    // waiting in the store-and-forward queue
	StepReversal Step = "reversal"  // a reversal (0420/0421) is owed to the host
	StepOutcome  Step = "outcome"   // the outcome is being shown at the terminal
	StepDone     Step = "done"      // nothing is left to do
)

// Event is one journaled state change.
type Event struct {
	At     time.Time `json:"at"`
	Status Status    `json:"status"`
	Step   Step      `json:"step"`
	Note   string    `json:"note,omitempty"`
}

// Transaction is one operation on a card and everything sterad keeps about
// it. It never holds a full card number: the card lives encrypted in the
// store while later messages need it (see CardStore).
type Transaction struct {
	ID           string    `json:"id"`
	Op           Op        `json:"op"`
	Status       Status    `json:"status"`
	Step         Step      `json:"step"`
	Reason       string    `json:"reason,omitempty"` // for the clerk: why declined, cancelled, reversed
	ResponseCode string    `json:"response_code,omitempty"`
	AuthCode     string    `json:"auth_code,omitempty"`
	RRN          string    `json:"rrn,omitempty"`
	HostTI       string    `json:"ti,omitempty"` // DE 48 TI returned by the host
	Token        string    `json:"token,omitempty"`
	Amount       Amount    `json:"amount"`
	Currency     string    `json:"currency"`
	MaskedPAN    string    `json:"masked_pan,omitempty"`
	Brand        Brand     `json:"brand,omitempty"`
	KSN          string    `json:"ksn,omitempty"` // key serial number of an encrypting terminal's card block
	Entry        EntryMode `json:"entry,omitempty"`
	Terminal     string    `json:"terminal,omitempty"`    // physical terminal that read the card
	TerminalID   string    `json:"terminal_id,omitempty"` // DE 41 sent: the terminal or the virtual terminal
	Reference    string    `json:"reference,omitempty"`
	Stay         *Stay     `json:"stay,omitempty"`
	Original     string    `json:"original,omitempty"`
	Offline      bool      `json:"offline,omitempty"`
	Batch        int       `json:"batch,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`

	// The request as journaled before it was sent.
	MTI         MTI       `json:"mti,omitempty"`
	STAN        STAN      `json:"stan,omitempty"`
	Transmitted time.Time `json:"transmitted,omitzero"` // DE 7, UTC
	Condition   string    `json:"condition,omitempty"`  // DE 25 sent
	LocalCode   string    `json:"local_code,omitempty"` // stand-in authorization code

	// A reversal owed or sent for this transaction (RR and its own DE 7,
	// kept so that 0421 repeats carry the same DE 7 as the first 0420).
	ReversalReason      string    `json:"reversal_reason,omitempty"`
	ReversalTransmitted time.Time `json:"reversal_transmitted,omitzero"`

	// Links between transactions.
	AuthorizedTotal Amount `json:"authorized_total,omitzero"` // pre-auth: pre-auth plus approved incrementals
	Refunded        Amount `json:"refunded,omitzero"`         // debits: approved and pending refunds
	CompletedBy     string `json:"completed_by,omitempty"`
	VoidedBy        string `json:"voided_by,omitempty"`

	// A late-cancellation fee (op cancellation): the whole fee by the
	// policy recorded with the reservation, and the rule that gave it.
	// Amount is what the card is charged (DE 4): the fee above the
	// deposits, zero when the deposits pay it all (nothing is sent).
	Fee           Amount `json:"fee,omitzero"`
	PolicyVersion string `json:"policy_version,omitempty"`
	PolicyRow     string `json:"policy_row,omitempty"`
	// Linked are the transactions this one started in the same commit:
	// the refunds of deposits of a cancellation or a check-out, the
	// further refunds of an amount change.
	Linked []string `json:"linked,omitempty"`
	// MerchantInitiated is DE 48 MI of a difference charge (an adjust of
	// a deposit, cancellation fee or no-show charge is charged the same
	// way as its original, card not present).
	MerchantInitiated string `json:"mi,omitempty"`
	// Policy is the cancellation policy shown to the guest, recorded with
	// a card check of a guaranteed reservation (request first_night) and
	// copied to the reservation when the check is approved.
	Policy *PolicySnapshot `json:"policy,omitempty"`
	// The card kept encrypted for later messages, if any.
	HasCard bool `json:"has_card,omitempty"`

	// What the terminal reported at the end (RESULT).
	TerminalResult string `json:"terminal_result,omitempty"`
	Printed        bool   `json:"printed,omitempty"`

	IdempotencyKey string  `json:"idempotency_key,omitempty"`
	Events         []Event `json:"events,omitempty"`

	// Version counts the writes of this record. A store refuses to write
	// a copy whose Version is not the stored one (ErrStale) and, on
	// success, advances the stored record and the written copy by one: a
	// stale copy can never overwrite a newer record.
	Version uint64 `json:"version,omitempty"`
}

// Clone returns a deep copy of t.
func (t *Transaction) Clone() *Transaction {
	c := *t
	if t.Stay != nil {
		s := *t.Stay
		c.Stay = &s
	}
	c.Events = slices.Clone(t.Events)
	c.Linked = slices.Clone(t.Linked)
	c.Policy = t.Policy.Clone()
	return &c
}

// Transition moves t to status and step at time at, journaling an event. It
// returns an *Error of kind EConflict when the state machine forbids it.
func (t *Transaction) Transition(to Status, step Step, at time.Time, note string) error {
	if !CanTransition(t.Status, to) {
		return Errorf(EConflict, "invalid_state", "transaction %s is %s and cannot become %s", t.ID, t.Status, to)
	}
	t.Status, t.Step, t.UpdatedAt = to, step, at
	t.Events = append(t.Events, Event{At: at, Status: to, Step: step, Note: note})
	return nil
}

// Record journals progress that does not change the status (a step, a
// terminal result), final statuses included.
func (t *Transaction) Record(step Step, at time.Time, note string) {
	t.Step, t.UpdatedAt = step, at
	t.Events = append(t.Events, Event{At: at, Status: t.Status, Step: step, Note: note})
}

// IsDebit reports whether t is an approved (or stood-in) debit that can be
// refunded or voided.
func (t *Transaction) IsDebit() bool {
	return t.Op.Financial() && !t.Op.Credit()
}

// Counted reports whether t counts in its batch's reconciliation totals:
// a financial transaction approved by the host (or stood in and since
// accepted) and not reversed or voided.
// A cancellation whose fee the deposits paid charges nothing and sends
// nothing: it is not counted.
func (t *Transaction) Counted() bool {
	return t.Op.Financial() && t.Status == StatusApproved && !t.Amount.IsZero()
}

// String is a short, card-safe description for logs.
func (t *Transaction) String() string {
	return fmt.Sprintf("%s %s %s %s", t.ID, t.Op, t.Status, t.Amount)
}
