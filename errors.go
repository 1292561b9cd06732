package sterad

import (
	"errors"
	"fmt"
)

// Error kinds. Each maps to one transport status in one table (api/http.go).
const (
	EInvalid     = "invalid"     // bad input: nothing was stored or sent
	ENotFound    = "not_found"   // unknown transaction, terminal, token, reference
	EConflict    = "conflict"    // state conflict: busy terminal, wrong state, reused key
	EUnavailable = "unavailable" // terminal offline, acquirer unreachable for an online-only op
	EInternal    = "internal"    // a bug or an I/O failure
)

// Error is a domain error: a kind that decides the transport status, a
// machine-readable code and a message a clerk can act on. Messages never
// contain card data beyond the masked form.
type Error struct {
	Kind    string
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error of the given kind and code.
func Errorf(kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of err: the Kind of an *Error in its chain, or
// EInternal for anything else (and "" for nil).
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return EInternal
}

// ErrorCode returns the code of the *Error in err's chain, or "internal".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "internal"
}

// ErrorMessage returns the message of the *Error in err's chain. Other
// errors are internal and their text is not shown to clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return "internal error"
}

// Sentinels shared by adapters and flows.
var (
	// ErrNotFound is returned by stores when a record does not exist.
	ErrNotFound = &Error{Kind: ENotFound, Code: "not_found", Message: "not found"}

	// ErrStale is returned by Store.Apply when a Change writes a copy of
	// a record that is older than the stored one (its Version differs), or
	// creates a record that already exists. Nothing of the Change is
	// written: the caller re-reads the record and decides again.
	ErrStale = &Error{Kind: EConflict, Code: "stale_record", Message: "the record was changed by someone else: read it again"}

	// ErrCardDataBlind is returned when a card number reaches sterad in
	// card-data-blind mode (a keyed card through the API, a terminal's
	// CARD in clear): it is refused and dropped, never stored or sent.
	ErrCardDataBlind = &Error{Kind: EInvalid, Code: "card_data_blind", Message: "sterad runs card-data-blind: it does not take card numbers; read the card at an encrypting terminal, or give a token"}

	// ErrCardKeyLost is returned by Store.OpenCard when a card is kept
	// (its record exists, it was never destroyed) but its key is gone or
	// does not open it: the key file was lost, damaged or restored from
	// elsewhere. Unlike ErrNotFound it is not the guest's or the
	// issuer's doing: nothing may be sent in place of the card data, and
	// the operator must be told (restore the keys from a backup, or
	// collect another way).
	ErrCardKeyLost = &Error{Kind: EInternal, Code: "card_key_lost", Message: "the kept card cannot be read: its key is lost or damaged in this store"}

	// ErrHostUnavailable is returned by an Acquirer when the request was
	// certainly not sent: the link is down or not signed on. The outcome
	// is known: nothing happened at the host.
	ErrHostUnavailable = &Error{Kind: EUnavailable, Code: "acquirer_unavailable", Message: "the acquirer is unreachable"}

	// ErrNoResponse is returned by an Acquirer when a request may have
	// reached the host but no response came in time. The outcome is
	// unknown: an authorization must be reversed, never resent.
	ErrNoResponse = &Error{Kind: EUnavailable, Code: "no_response", Message: "no response from the acquirer"}

	// ErrTerminalOffline is returned when a terminal's link is down.
	ErrTerminalOffline = &Error{Kind: EUnavailable, Code: "terminal_offline", Message: "the terminal is offline"}

	// ErrTerminalBusy is returned when a terminal already runs a transaction.
	ErrTerminalBusy = &Error{Kind: EConflict, Code: "terminal_busy", Message: "the terminal is busy with another transaction"}

	// ErrCustomerCancelled is returned by Terminal.ReadCard when the
	// customer (or the clerk at the terminal) cancelled before a card was read.
	ErrCustomerCancelled = &Error{Kind: EConflict, Code: "cancelled", Message: "cancelled at the terminal"}

	// ErrTerminalTimeout is returned by Terminal.ReadCard when no card was
	// presented within T4; the terminal was told to cancel.
	ErrTerminalTimeout = &Error{Kind: EConflict, Code: "terminal_timeout", Message: "no card was presented in time"}

	// ErrLinkFailed is returned by Terminal methods when the link failed
	// while a transaction was in progress: the terminal's state is unknown
	// until the link is back and a STATUS_QUERY answers.
	ErrLinkFailed = &Error{Kind: EUnavailable, Code: "terminal_link_failed", Message: "the terminal link failed during the transaction"}
)

// ErrStopping is returned for requests that arrive while the gateway stops.
var ErrStopping = &Error{Kind: EUnavailable, Code: "stopping", Message: "sterad is stopping: try again once it has restarted"}
