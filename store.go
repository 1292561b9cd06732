package sterad

import (
	"context"
	"time"
)

// IdempotencyRecord binds an Idempotency-Key to the transaction it created
// and to a keyed fingerprint of the request body (never the body itself:
// it may carry a card number).
type IdempotencyRecord struct {
	Key         string    `json:"key"`
	Fingerprint string    `json:"fingerprint"`
	TxnID       string    `json:"txn_id"`
	CreatedAt   time.Time `json:"created_at"`
}

// SealCard asks the store to keep a card encrypted under an owner: a
// transaction ID, or a vault entry ("vault:" + reference).
type SealCard struct {
	Owner string
	Card  *Card
}

// QueueKind says what a store-and-forward item sends.
type QueueKind string

// Queue kinds, in forwarding priority order.
const (
	QueueReversal QueueKind = "reversal" // 0420, then 0421 until answered
	QueueVoid     QueueKind = "void"     // 0400 repeated until answered
	QueueAdvice   QueueKind = "advice"   // 0220, then 0221 until answered (completions, stand-ins)
	QueueRequest  QueueKind = "request"  // a deferred request (refund, no-show) sent as its normal message
)

// QueueItem is one message owed to the acquirer.
type QueueItem struct {
	Seq         uint64    `json:"seq"` // assigned by the store: FIFO order
	TxnID       string    `json:"txn_id"`
	Kind        QueueKind `json:"kind"`
	CreatedAt   time.Time `json:"created_at"`
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Parked      bool      `json:"parked,omitempty"` // older than max_age: kept, shown, not dropped
	// Block is an encrypting terminal's card block that a stood-in
	// transaction's advice (or deferred 0100) carries (docs/acquirer-protocol.md
	// §8): ciphertext sterad cannot open, kept only while the item waits
	// and gone with it when the host answers.
	Block *EncryptedBlock `json:"block,omitempty"`
}

// QueueCounts count the store-and-forward queue.
type QueueCounts struct {
	Depth  int // items owed to the acquirer
	Parked int // of them, items parked (older than max_age): left for an operator
}

// Batch states.
const (
	BatchOpen    = "open"
	BatchClosing = "closing"
	BatchClosed  = "closed"
)

// TerminalTotals are one terminal ID's totals in a batch and what the host
// answered for them.
type TerminalTotals struct {
	TerminalID string `json:"terminal_id"`
	Totals     Totals `json:"totals"`
	Result     string `json:"result,omitempty"`   // DE 39 of the last 0500
	Uploaded   int    `json:"uploaded,omitempty"` // 0320s sent
}

// DayTotals are a closed batch's financial totals for one business day
// and card brand (minor units): what the settlement report adds up. A
// transaction's business day is the local date of its time minus the
// settlement cut-off (a sale at 01:30 with a 02:00 cut-off belongs to the
// day before: the hotel's night audit closes the day).
type DayTotals struct {
	Day          Date  `json:"day"`
	Brand        Brand `json:"brand"`
	DebitCount   int64 `json:"debit_count"`
	DebitAmount  int64 `json:"debit_amount"`
	CreditCount  int64 `json:"credit_count"`
	CreditAmount int64 `json:"credit_amount"`
}

// Batch is one settlement batch (DE 60).
type Batch struct {
	Number    int              `json:"number"`
	State     string           `json:"state"`
	OpenedAt  time.Time        `json:"opened_at"`
	ClosingAt time.Time        `json:"closing_at,omitzero"`
	ClosedAt  time.Time        `json:"closed_at,omitzero"`
	Terminals []TerminalTotals `json:"terminals,omitempty"`
	Ops       []OpTotals       `json:"ops,omitempty"`  // counted transactions by op
	Days      []DayTotals      `json:"days,omitempty"` // set when the batch closes
	Attempts  int              `json:"attempts,omitempty"`
	LastError string           `json:"last_error,omitempty"`
	Version   uint64           `json:"version,omitempty"` // see Transaction.Version
}

// VaultEntry is a guaranteed reservation's card kept for a possible
// no-show charge. The card itself is sealed under "vault:" + Reference.
type VaultEntry struct {
	Reference   string    `json:"reference"`
	MaskedPAN   string    `json:"masked_pan"`
	Brand       Brand     `json:"brand"`
	Stay        Stay      `json:"stay"`
	Token       string    `json:"token,omitempty"`
	CheckTxn    string    `json:"check_txn,omitempty"` // the card check that vaulted it
	CreatedAt   time.Time `json:"created_at"`
	RetainUntil time.Time `json:"retain_until"`
}

// ReservationState is where a guaranteed reservation stands.
type ReservationState string

// Reservation states.
const (
	// ReservationGuaranteed: an approved card check guarantees it; its
	// card (in the vault) or its token may be charged for a no-show.
	ReservationGuaranteed ReservationState = "guaranteed"
	// ReservationUnguaranteed: known only from a keyed no-show charge
	// (sterad never checked a card for it); nothing is kept.
	ReservationUnguaranteed ReservationState = "unguaranteed"
	// ReservationCharged: a no-show charge was approved; the card is
	// destroyed. A voided charge no longer blocks a new one (keyed, or
	// with the reservation's token).
	ReservationCharged ReservationState = "charged"
	// ReservationReleased: cancelled, checked in, or past its retention
	// before any charge: card and token are dead, nothing can be charged.
	ReservationReleased ReservationState = "released"
)

// Reservation is a reservation sterad guarantees or charged: the stay it
// was guaranteed for, the card or token kept for it and its no-show
// charges. No-shows are checked against it, never against what a request
// types. It is written in the same Change as the transaction that changes
// it, under the gateway's lock "ref:" + Reference.
type Reservation struct {
	Reference string           `json:"reference"`
	Stay      Stay             `json:"stay"`
	State     ReservationState `json:"state"`
	MaskedPAN string           `json:"masked_pan,omitempty"`
	Brand     Brand            `json:"brand,omitempty"`
	// Token is the host token the card check obtained: accepted only for
	// this reservation, and only while it is guaranteed or charged.
	Token string `json:"token,omitempty"`
	// TokenMAC is a keyed MAC of the token (Store.MAC): what stays of it
	// once the reservation is released, to recognise it and refuse it.
	TokenMAC string `json:"token_mac,omitempty"`
	CheckTxn string `json:"check_txn,omitempty"` // the card check that guaranteed it
	// CardKept: the card is sealed under VaultOwner(Reference) (and the
	// vault lists it).
	CardKept    bool      `json:"card_kept"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
	Charges     []string  `json:"charges,omitempty"`  // no-show transactions, oldest first
	Released    string    `json:"released,omitempty"` // why it was released
	// Policy is the cancellation policy in force when the card was
	// checked, with the first night's rate (version 1.1): a cancellation
	// computes its fee from it. nil when the card check gave no first
	// night (or none was configured).
	Policy *PolicySnapshot `json:"policy,omitempty"`
	// Deposits are the advance deposits (op deposit) made for the
	// reservation, oldest first; each counts once approved.
	Deposits []string `json:"deposits,omitempty"`
	// Cancellation is the cancellation that ended the reservation.
	Cancellation string `json:"cancellation,omitempty"`
	// Checkout is the check-out that applied the deposits (POST
	// /v1/checkouts), nil before.
	Checkout  *CheckoutRecord `json:"checkout,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Version is the stored version this copy was read at (0: not
	// stored). Apply refuses a copy whose Version is not the stored one
	// (ErrStale) and stores it as Version+1.
	Version uint64 `json:"version"`
}

// CheckoutRecord is what a check-out did (POST /v1/checkouts): kept with
// its reservation, so that a replay answers the same and a second
// check-out cannot apply the same deposits again.
type CheckoutRecord struct {
	Transaction     string           `json:"transaction,omitempty"` // the completion, sale, or void of the hold
	Refunds         []string         `json:"refunds,omitempty"`     // refunds of the deposits' excess
	VouchersApplied Amount           `json:"vouchers_applied"`
	DepositsApplied Amount           `json:"deposits_applied"`
	CardAmount      Amount           `json:"card_amount"`
	Refund          Amount           `json:"refund"`
	Vouchers        []AppliedVoucher `json:"vouchers,omitempty"`
	At              time.Time        `json:"at"`
}

// VaultOwner returns the card owner key of a vault entry.
func VaultOwner(reference string) string { return "vault:" + reference }

// Change is one atomic, durable write: when Apply returns nil, all of it
// is on disk; when it returns an error, none of it is. Its parts apply in
// the order of the fields. Apply fails with EConflict "idempotency_conflict"
// when the key is bound, EConflict "batch_open" when a second batch would
// be open, ENotFound "queue_item_not_found" when UpdateQueue or Dequeue
// names a missing item (two parties must never both deliver one item), and
// ErrStale when a transaction, batch or reservation it puts is not the stored version
// (compare-and-swap: see Transaction.Version). On success the Version of
// every record put is advanced in place.
type Change struct {
	Put          []*Transaction     // create (Version 0) or replace (the stored Version)
	Idempotency  *IdempotencyRecord // bind a key; fails with EConflict if bound
	SealCards    []SealCard         // encrypt and keep
	DestroyCards []string           // owners whose cards are destroyed beyond recovery
	Enqueue      []QueueItem        // append to the queue; Apply sets each item's Seq in place
	UpdateQueue  []QueueItem        // replace items (attempts, parked) by Seq
	Dequeue      []uint64           // remove by Seq
	PutBatches   []*Batch
	PutVault     []*VaultEntry
	DeleteVault  []string // references
	// PutReservations creates or replaces reservations, compare-and-swap
	// on their Version; Apply sets each one's Version in place.
	PutReservations []*Reservation
	// PutVouchers writes voucher log entries, compare-and-swap on their
	// Version like reservations: an entry with Version 0 is refused
	// (ErrStale) when the log already holds that program's number. The
	// log write is part of the check-out's own commit, so a voucher can
	// never be logged twice, even by two check-outs at once.
	PutVouchers []*VoucherLogEntry
}

// TransactionFilter selects transactions. Zero fields match everything.
type TransactionFilter struct {
	Reference string
	Status    Status
	Op        Op
	Original  string
	Batch     int
	Date      Date           // local creation date
	Location  *time.Location // for Date; UTC when nil
	Limit     int
	Newest    bool // newest first (Limit then keeps the newest); oldest first when false
}

// Store keeps sterad's state durably. Implementations must be safe for
// concurrent use.
type Store interface {
	// Apply writes a change atomically and durably.
	Apply(ctx context.Context, c Change) error

	Transaction(ctx context.Context, id string) (*Transaction, error)
	Transactions(ctx context.Context, f TransactionFilter) ([]*Transaction, error)
	// Unfinished returns transactions whose step is not done, for recovery.
	Unfinished(ctx context.Context) ([]*Transaction, error)
	// IsUnfinished reports whether transaction id is stored with a step
	// other than done, without reading it.
	IsUnfinished(ctx context.Context, id string) (bool, error)
	// ScanTransactions calls fn with every transaction, one at a time:
	// a walk over the whole store that never holds it all. It stops at
	// fn's first error and returns it.
	ScanTransactions(ctx context.Context, fn func(*Transaction) error) error

	Idempotency(ctx context.Context, key string) (*IdempotencyRecord, error)
	// MAC returns a keyed hash of data: fingerprints that must not reveal
	// the card numbers they cover.
	MAC(data []byte) string

	// OpenCard decrypts the card sealed under owner; ErrNotFound when it
	// was never kept or has been destroyed.
	OpenCard(ctx context.Context, owner string) (*Card, error)

	// NextSTAN returns a STAN for terminalID that has not been used on the
	// UTC day of now, durably: never reused after a restart.
	NextSTAN(ctx context.Context, terminalID string, now time.Time) (STAN, error)

	Queue(ctx context.Context) ([]QueueItem, error)
	// ScanQueue calls fn with every queue item in Seq order, without
	// holding them all. It stops at fn's first error and returns it.
	ScanQueue(ctx context.Context, fn func(QueueItem) error) error

	// CurrentBatch returns the open batch, creating the next one (batch 1
	// in a new store) when none is open. Batch(n) returns the newest batch
	// numbered n (numbers wrap after 999999).
	CurrentBatch(ctx context.Context) (*Batch, error)
	Batch(ctx context.Context, number int) (*Batch, error)
	Batches(ctx context.Context) ([]*Batch, error)

	Vault(ctx context.Context) ([]*VaultEntry, error)
	VaultEntry(ctx context.Context, reference string) (*VaultEntry, error)

	// Reservation returns a reservation; ErrNotFound when none is stored.
	Reservation(ctx context.Context, reference string) (*Reservation, error)
	// Reservations returns every reservation in reference order.
	Reservations(ctx context.Context) ([]*Reservation, error)
	// Voucher returns the voucher log's entry of a program's voucher
	// number; ErrNotFound when it was never used.
	Voucher(ctx context.Context, program, number string) (*VoucherLogEntry, error)
	// VoucherLog returns every entry of the voucher log, by program and
	// number.
	VoucherLog(ctx context.Context) ([]*VoucherLogEntry, error)

	Close() error
}
