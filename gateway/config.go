package gateway

import (
	"log/slog"
	"time"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// DefaultCutoff is the local time of the nightly close.
const DefaultCutoff = 2 * time.Hour

// DefaultSettleTimeout bounds how long a close waits for the batch's
// transactions in flight to get their outcome.
const DefaultSettleTimeout = time.Minute

// Defaults of Config.
const (
	DefaultMCC = "7011" // lodging
	// DefaultTerminalWait is how long a flow waits for a terminal whose
	// link failed mid-transaction to come back before leaving the
	// transaction to an operator.
	DefaultTerminalWait = 30 * time.Second
	// DefaultRetryInterval is how often queued reversals and advices are
	// retried while the acquirer does not answer them.
	DefaultRetryInterval = 5 * time.Second
	// DefaultNoShowCutoff: a no-show may be charged from 18:00 local time
	// on the arrival day.
	DefaultNoShowCutoff = 18 * time.Hour
	// DefaultVaultRetention: a guarantee card is kept at most 7 days after
	// the check-out day.
	DefaultVaultRetention = 7 * 24 * time.Hour
	// DefaultPurgeInterval: the vault is purged hourly.
	DefaultPurgeInterval = time.Hour
	// DefaultStopGrace is how long Stop lets flows in flight finish: the
	// acquirer client's default timeout (15 s) and 5 s to journal the
	// answer and show it at the terminal.
	DefaultStopGrace = 20 * time.Second
)

// DefaultCompletionTolerance: a completion may exceed the authorized
// total by at most 15 %.
var DefaultCompletionTolerance = decimal.RequireFromString("1.15")

// Config is the merchant's configuration of the flows.
type Config struct {
	MerchantID          string          // DE 42
	VirtualTerminalID   string          // DE 41 of transactions not made at a terminal
	Currency            sterad.Currency // default JPY
	Location            *time.Location  // merchant local time (DE 12/13, dates); default Asia/Tokyo
	MCC                 string          // DE 18; default 7011
	CompletionTolerance decimal.Decimal // final amount ≤ authorized total × this; default 1.15
	TerminalWait        time.Duration   // default DefaultTerminalWait
	RetryInterval       time.Duration   // default DefaultRetryInterval
	// NoShowCutoff is the local time of day on the arrival day from which
	// a no-show may be charged (the card brands' rule: 18:00).
	NoShowCutoff time.Duration
	// VaultRetention is how long after the check-out day a guarantee card
	// is kept at most (default 7 days).
	VaultRetention time.Duration
	// PurgeInterval is how often the vault and the card store are purged
	// (default hourly).
	PurgeInterval time.Duration
	// Offline are the stand-in limits (default DefaultOfflineLimits).
	Offline sterad.OfflineLimits
	// Cutoff is the local time of day of the nightly batch close
	// (default 02:00); negative disables the nightly close.
	Cutoff time.Duration
	// SettleTimeout bounds how long a batch close waits for the batch's
	// transactions in flight (default DefaultSettleTimeout).
	SettleTimeout time.Duration
	// Summarize computes a closing batch's totals by business day and
	// brand for the settlement report (the settlement package's).
	Summarize func([]*sterad.Transaction) []sterad.DayTotals
	// StopGrace bounds how long Stop lets flows in flight finish their
	// acquirer exchange and journal its answer before it cancels them
	// (default DefaultStopGrace; the daemon uses the acquirer timeout + 5 s).
	StopGrace time.Duration
	// CardData is sterad.CardDataBlind (the default when empty: terminals
	// encrypt, sterad never holds a card number, keyed cards are refused)
	// or sterad.CardDataClear (cards read in clear and sealed at rest).
	CardData string
	// CancellationPolicy is the fee table in force (version 1.1): recorded
	// with a reservation when its card is checked with a first night. nil:
	// none configured (a first_night is refused).
	CancellationPolicy *sterad.CancellationPolicy
	// VoucherPrograms are the travel-voucher programs check-outs accept.
	VoucherPrograms []sterad.VoucherProgram
	// HoldAlert: an open pre-authorization older than this is an alert
	// (default sterad.DefaultHoldAlert).
	HoldAlert time.Duration
}

// Deps are the adapters the gateway drives.
type Deps struct {
	Store     sterad.Store
	Acquirer  sterad.Acquirer
	Terminals []sterad.Terminal
	Clock     sterad.Clock
	Logger    *slog.Logger
	NewID     func() string // unique, sortable transaction IDs
}

// env is what every part of the gateway is given: the configuration (read
// only), the clock and the logger.
type env struct {
	cfg   *Config
	clock sterad.Clock
	log   *slog.Logger
}

// blind reports whether sterad runs card-data-blind (docs/non-retention.md).
func (e env) blind() bool { return e.cfg.CardData != sterad.CardDataClear }
