package sterad

import (
	"context"
	"io"
	"time"
)

// The services below are what the HTTP API (package api) asks of the
// daemon, one small interface per concern. The Gateway implements all but
// SettlementService; the settlement report is built by package settlement
// from the gateway's batches (cmd/sterad wires it). Tests of the API
// implement them with fakes.

// TransactionService starts payment transactions and finds them.
type TransactionService interface {
	// Submit validates a request, journals the new transaction and starts
	// its flow; with r.Wait it returns once the transaction is final.
	// replay is true when r.IdempotencyKey returned an existing
	// transaction. A transaction returned along with an error was created
	// before the request failed (a terminal that turned out to be busy).
	Submit(ctx context.Context, r Request) (t *Transaction, replay bool, err error)
	// Transaction returns a transaction with its journal; an unknown ID is
	// ENotFound.
	Transaction(ctx context.Context, id string) (*Transaction, error)
	// Transactions searches transactions.
	Transactions(ctx context.Context, f TransactionFilter) ([]*Transaction, error)
}

// TerminalService describes the payment terminals.
type TerminalService interface {
	// Terminals describes every configured terminal, in ID order.
	Terminals() []TerminalInfo
}

// QueueService is the store-and-forward queue of messages owed to the
// acquirer.
type QueueService interface {
	Queue(ctx context.Context) ([]QueueItem, error)
	// QueueCounts counts the queue without reading its items.
	QueueCounts(ctx context.Context) (QueueCounts, error)
	// Flush forwards the queue now and returns how many were sent.
	Flush(ctx context.Context) (int, error)
}

// BatchService is the batches and their close.
type BatchService interface {
	// Batches lists every batch.
	Batches(ctx context.Context) ([]*Batch, error)
	// Batch returns one batch; an unknown number is ENotFound.
	Batch(ctx context.Context, n int) (*Batch, error)
	// Progress returns the progress of batch n's close under way, if any.
	Progress(n int) (BatchProgress, bool)
	// StartClose asks for the batch to be closed now and returns that
	// attempt at once; a close already pending or under way is joined.
	StartClose(ctx context.Context) (*CloseRun, error)
	// OpenBatch returns the batch new financial transactions go to.
	OpenBatch(ctx context.Context) (*Batch, error)
	// Closing returns the batch left closing, or nil.
	Closing(ctx context.Context) (*Batch, error)
}

// VaultService is the guarantee cards kept for reservations.
type VaultService interface {
	// Vault lists the cards kept, masked.
	Vault(ctx context.Context) ([]*VaultEntry, error)
	// Purge destroys every card past its retention now.
	Purge(ctx context.Context) (*PurgeResult, error)
	// ReleaseVault destroys the card of a cancelled reservation.
	ReleaseVault(ctx context.Context, ref string) (*VaultEntry, error)
}

// ReservationService finds reservations.
type ReservationService interface {
	// Reservation returns a reservation as stored; an unknown reference is
	// ENotFound.
	Reservation(ctx context.Context, ref string) (*Reservation, error)
}

// StatusService is what the daemon's status shows beyond the terminals,
// the queue and the batches.
type StatusService interface {
	// Acquirer returns the acquirer link's status.
	Acquirer() LinkStatus
	// Alerts lists the offline approvals the issuer later declined.
	Alerts(ctx context.Context) ([]*Transaction, error)
}

// SettlementService makes the settlement report.
type SettlementService interface {
	// SettlementReport reports the business days from–to (YYYY-MM-DD,
	// inclusive) out of the closed batches. A missing, invalid or
	// reversed range is EInvalid.
	SettlementReport(ctx context.Context, from, to string) (SettlementReport, error)
}

// SettlementReport is a settlement report as built: it encodes itself as
// JSON (encoding/json) and writes its lines as CSV.
type SettlementReport interface {
	// Period returns the report's first and last business days.
	Period() (from, to Date)
	// WriteCSV writes the report's lines as CSV.
	WriteCSV(w io.Writer) error
}

// StoreService is the running daemon's care of its own store: a hot
// backup and a rotation of the key-encryption key, both while payments go
// on (docs/storage.md).
type StoreService interface {
	// Backup writes a consistent copy of the store, encrypted to the age
	// recipients, to w. Bad recipients are EInvalid, before anything is
	// written.
	Backup(ctx context.Context, w io.Writer, recipients []string) error
	// RotateKEK re-wraps the store's keys under the key-encryption key
	// in kekFile (an absolute path, outside the data directory).
	RotateKEK(ctx context.Context, kekFile string) (KEKRotation, error)
	// Retention archives and removes the transactions older than the
	// retention period now (dryRun: only says what it would remove).
	Retention(ctx context.Context, dryRun bool) (RetentionReport, error)
}

// RetentionReport says what a retention run did (or would do).
type RetentionReport struct {
	Before   time.Time          `json:"before"`
	DryRun   bool               `json:"dry_run"`
	Removed  int                `json:"removed"`  // removed, or removable in a dry run
	Kept     map[string]int     `json:"kept"`     // older than the cut-off but kept, by reason
	Archives []RetentionArchive `json:"archives"` // the archive files written
}

// RetentionArchive is one month's archive of removed transactions.
type RetentionArchive struct {
	Month        string `json:"month"` // YYYY-MM
	Path         string `json:"path"`
	Transactions int    `json:"transactions"`
}

// KEKRotation says what a key rotation did.
type KEKRotation struct {
	OldKEK   string `json:"old_kek"`
	KEK      string `json:"kek"`
	CardKeys int    `json:"card_keys"` // card keys re-wrapped
}

// ReservationPaymentService is the version 1.1 check-out with split
// tender, the open holds and the voucher report.
type ReservationPaymentService interface {
	// Checkout applies vouchers, deposits and the card (see
	// CheckoutRequest); replay is true when the idempotency key answered
	// an earlier check-out.
	Checkout(ctx context.Context, r CheckoutRequest) (res *CheckoutResult, replay bool, err error)
	// Holds lists the open pre-authorizations at least olderThan old.
	Holds(ctx context.Context, olderThan time.Duration) ([]Hold, error)
	// VoucherReport is the voucher log and claim of a month (YYYY-MM).
	VoucherReport(ctx context.Context, month string) (VoucherReport, error)
}
