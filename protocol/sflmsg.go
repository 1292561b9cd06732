package protocol

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/sterad/sterad"
)

// SFLProto is the protocol version carried in HELLO.
const SFLProto = 1

// Hello is the HELLO payload (gateway → terminal, SEQ 0).
type Hello struct {
	Proto     int    `json:"proto"`
	GatewayID string `json:"gateway_id"`
	BootID    string `json:"boot_id"`
}

// HelloResp is the HELLO_RESP payload (terminal → gateway, SEQ 0).
type HelloResp struct {
	Proto      int      `json:"proto"`
	TerminalID string   `json:"terminal_id"`
	Kind       string   `json:"kind"`
	Model      string   `json:"model"`
	FW         string   `json:"fw"`
	BootID     string   `json:"boot_id"`
	Caps       []string `json:"caps"`
	Busy       bool     `json:"busy"`
	CurrentTxn *string  `json:"current_txn"`
}

// ReadCard is the READ_CARD payload.
type ReadCard struct {
	TxnID    string   `json:"txn_id"`
	Op       string   `json:"op"`
	Amount   string   `json:"amount"`
	Currency string   `json:"currency"`
	Entry    []string `json:"entry"`
	Text     string   `json:"text,omitempty"`
}

// Progress codes.
const (
	ProgressPresentCard = "PRESENT_CARD"
	ProgressKeyEntry    = "KEY_ENTRY"
	ProgressEnterPIN    = "ENTER_PIN"
	ProgressRemoveCard  = "REMOVE_CARD"
	ProgressPrinting    = "PRINTING"
)

// Progress is the PROGRESS payload.
type Progress struct {
	TxnID    string `json:"txn_id"`
	Code     string `json:"code"`
	TimeoutS int    `json:"timeout_s,omitempty"`
}

// CardData is the CARD payload. A terminal without "p2pe" (§4) sends the
// full card number, expiry, track 2 and chip data on the local link only;
// an encrypting terminal (§7) sends MaskedPAN, Brand, P2PE and chip data
// without the card's own tags, and no PAN, expiry or track 2. Either way
// it prints and logs masked, and it must never be written anywhere.
type CardData struct {
	TxnID  string `json:"txn_id"`
	Entry  string `json:"entry"`
	PAN    string `json:"pan,omitempty"`
	Expiry string `json:"expiry,omitempty"`
	Track2 string `json:"track2,omitempty"`
	ICC    string `json:"icc,omitempty"`
	Brand  string `json:"brand,omitempty"`

	// An encrypting terminal's card (terminal-link.md §7).
	MaskedPAN string    `json:"masked_pan,omitempty"` // first 6 and last 4 digits, the rest '*'
	P2PE      *P2PEData `json:"p2pe,omitempty"`
}

// P2PEData is the CARD payload's "p2pe" object: the AES DUKPT key serial
// number and the encrypted card block, both uppercase hex, which the
// gateway passes to the acquirer unchanged and cannot decrypt.
type P2PEData struct {
	KSN  string `json:"ksn"`
	Data string `json:"data"`
}

// Masked is the card number as the payload may show it: masked from the
// PAN in clear, else the terminal's masked_pan (itself masked again, so a
// terminal that put a full number there does not reach a log).
func (c CardData) Masked() string {
	if c.PAN != "" {
		return sterad.MaskPAN(c.PAN)
	}
	return sterad.MaskPAN(c.MaskedPAN)
}

// String describes the card masked.
func (c CardData) String() string {
	return fmt.Sprintf("CARD{txn_id:%s entry:%s pan:%s brand:%s p2pe:%t}", c.TxnID, c.Entry, c.Masked(), c.Brand, c.P2PE != nil)
}

// GoString masks under %#v.
func (c CardData) GoString() string { return c.String() }

// Format masks under every verb.
func (c CardData) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue masks in slog output.
func (c CardData) LogValue() slog.Value {
	return slog.GroupValue(slog.String("txn_id", c.TxnID), slog.String("entry", c.Entry), slog.String("pan", c.Masked()),
		slog.Bool("p2pe", c.P2PE != nil))
}

// OutcomeMsg is the OUTCOME payload.
type OutcomeMsg struct {
	TxnID     string   `json:"txn_id"`
	Status    string   `json:"status"`
	Code      string   `json:"code"`
	AuthCode  string   `json:"auth_code"`
	RRN       string   `json:"rrn"`
	Amount    string   `json:"amount"`
	Currency  string   `json:"currency"`
	MaskedPAN string   `json:"masked_pan"`
	Lines     []string `json:"lines"`
}

// Result is the RESULT payload.
type Result struct {
	TxnID   string `json:"txn_id"`
	Status  string `json:"status"`
	Printed bool   `json:"printed"`
	Reason  string `json:"reason,omitempty"`
}

// TxnRef is the payload of CANCEL and STATUS_QUERY.
type TxnRef struct {
	TxnID string `json:"txn_id"`
}

// CancelResp is the CANCEL_RESP payload.
type CancelResp struct {
	TxnID    string `json:"txn_id"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// Terminal transaction states in STATUS_RESP.
const (
	StateUnknown     = "unknown"
	StateWaitingCard = "waiting_card"
	StateCardSent    = "card_sent"
	StateDone        = "done"
)

// StatusResp is the STATUS_RESP payload.
type StatusResp struct {
	TxnID  string  `json:"txn_id"`
	State  string  `json:"state"`
	Result *Result `json:"result,omitempty"`
}

// ERROR codes.
const (
	ErrCodeBusy          = "BUSY"
	ErrCodeBadRequest    = "BAD_REQUEST"
	ErrCodeUnsupported   = "UNSUPPORTED"
	ErrCodeTxnIDReused   = "TXN_ID_REUSED"
	ErrCodeTerminalFault = "TERMINAL_FAULT"
)

// ErrorMsg is the ERROR payload.
type ErrorMsg struct {
	TxnID string `json:"txn_id"`
	Code  string `json:"code"`
	Text  string `json:"text,omitempty"`
}

// MarshalPayload encodes v as a frame payload and checks its size.
func MarshalPayload(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sfl: encode payload: %w", err)
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("sfl: payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	return b, nil
}

// UnmarshalPayload decodes a frame payload into v. Errors never include
// the payload: it may carry a card number.
func UnmarshalPayload(f Frame, v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("sfl: %s payload is not the expected JSON object", f.Type)
	}
	return nil
}
