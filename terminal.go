package sterad

import (
	"context"
	"time"
)

// Terminal kinds.
const (
	KindFixed    = "fixed"    // countertop terminal on RS-232
	KindHandheld = "handheld" // handheld terminal on USB
)

// Terminal states as clients see them.
const (
	TerminalReady   = "ready"
	TerminalBusy    = "busy"
	TerminalOffline = "offline"
)

// TerminalInfo describes a terminal and its link.
type TerminalInfo struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Transport  string    `json:"transport"`          // "serial" or "usb"
	Path       string    `json:"path,omitempty"`     // serial port
	USB        string    `json:"usb,omitempty"`      // "vid:pid[/serial]"
	State      string    `json:"state"`              // ready, busy, offline
	Model      string    `json:"model,omitempty"`    // from HELLO_RESP
	Firmware   string    `json:"firmware,omitempty"` // from HELLO_RESP
	Caps       []string  `json:"capabilities,omitempty"`
	BootID     string    `json:"boot_id,omitempty"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	CurrentTxn string    `json:"current_txn,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
}

// CapP2PE is the HELLO_RESP capability of a terminal that encrypts card
// data itself (terminal-link §7).
const CapP2PE = "p2pe"

// Card data modes (configuration card_data).
const (
	// CardDataBlind: terminals must encrypt; sterad never holds a card
	// number (非保持化). The default.
	CardDataBlind = "blind"
	// CardDataClear: sterad reads card numbers and seals them at rest,
	// for a gateway that is itself assessed (PCI DSS).
	CardDataClear = "clear"
)

// CardRequest is a READ_CARD: what the terminal asks the customer for.
type CardRequest struct {
	TxnID  string
	Op     Op
	Amount Amount
	Entry  []EntryMode // allowed entry modes
	Text   string      // shown to the customer
}

// TerminalOutcome is an OUTCOME: what the terminal shows and prints.
type TerminalOutcome struct {
	TxnID     string
	Status    string // "approved", "declined", "error"
	Code      string // DE 39, or "" for a gateway error
	AuthCode  string
	RRN       string
	Amount    Amount
	MaskedPAN string
	Lines     []string // slip and display lines
}

// TerminalResult is a RESULT: the last message of every transaction at the
// terminal.
type TerminalResult struct {
	TxnID   string
	Status  string // "done", "cancelled", "error"
	Printed bool
	Reason  string
}

// TerminalTxnState is a STATUS_RESP: what the terminal knows of a
// transaction after a link failure.
type TerminalTxnState struct {
	TxnID  string
	State  string          // "unknown", "waiting_card", "card_sent", "done"
	Result *TerminalResult // when done
}

// Terminal is one card terminal seen through its link session. Methods
// block until the terminal answers, ctx ends, or the link fails.
type Terminal interface {
	// Info describes the terminal and the state of its link.
	Info() TerminalInfo

	// ReadCard sends READ_CARD and waits for the card. persist is called
	// with the card before the CARD frame is acknowledged: the card is
	// journaled before the terminal is told it arrived. If persist fails
	// the frame is not acknowledged. It returns ErrCustomerCancelled,
	// ErrTerminalTimeout (after sending CANCEL), ErrTerminalBusy,
	// ErrTerminalOffline, ErrLinkFailed (the terminal's state is unknown:
	// reconcile with Query), or an *Error with code "terminal_bad_card"
	// when the terminal sent an unusable card (it was told to cancel).
	// When ctx ends while waiting for the card, CANCEL is sent and ctx's
	// error is returned (or the card, if the terminal answered TOO_LATE).
	ReadCard(ctx context.Context, req CardRequest, persist func(*Card) error) (*Card, error)

	// ShowOutcome sends OUTCOME and waits for the RESULT; persist is
	// called with the RESULT before it is acknowledged.
	ShowOutcome(ctx context.Context, o TerminalOutcome, persist func(TerminalResult) error) (TerminalResult, error)

	// Cancel sends CANCEL and returns the CANCEL_RESP: whether the terminal
	// accepted it and why not. The RESULT that follows an accepted cancel
	// completes a waiting ReadCard.
	Cancel(ctx context.Context, txnID string) (accepted bool, reason string, err error)

	// Query sends STATUS_QUERY for a transaction.
	Query(ctx context.Context, txnID string) (TerminalTxnState, error)

	// WaitReady blocks until the link is up (HELLO answered) or ctx ends.
	WaitReady(ctx context.Context) error
}
