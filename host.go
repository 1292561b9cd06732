package sterad

import (
	"context"
	"fmt"
	"time"
)

// MTI is an ISO 8583:1987 message type indicator.
type MTI string

// The message types of the acquirer host interface.
const (
	MTIAuthorization         MTI = "0100"
	MTIAuthorizationResponse MTI = "0110"
	MTIFinancial             MTI = "0200"
	MTIFinancialResponse     MTI = "0210"
	MTIAdvice                MTI = "0220"
	MTIAdviceRepeat          MTI = "0221"
	MTIAdviceResponse        MTI = "0230"
	MTIBatchUpload           MTI = "0320"
	MTIBatchUploadResponse   MTI = "0330"
	MTIVoid                  MTI = "0400"
	MTIVoidResponse          MTI = "0410"
	MTIReversal              MTI = "0420"
	MTIReversalRepeat        MTI = "0421"
	MTIReversalResponse      MTI = "0430"
	MTIReconciliation        MTI = "0500"
	MTIReconciliationResp    MTI = "0510"
	MTINetwork               MTI = "0800"
	MTINetworkResponse       MTI = "0810"
)

// Class returns the message class: the first two digits ("01" for 0100,
// 0110). Responses are matched to requests by class, STAN and terminal.
func (m MTI) Class() string {
	if len(m) < 2 {
		return ""
	}
	return string(m[:2])
}

// IsResponse reports whether the MTI is a response (third digit odd).
func (m MTI) IsResponse() bool {
	return len(m) == 4 && (m[2]-'0')%2 == 1
}

// Response returns the response MTI of a request MTI (0100 → 0110, 0221 →
// 0230).
func (m MTI) Response() MTI {
	if len(m) != 4 {
		return ""
	}
	b := []byte(m)
	b[2]++
	b[3] = '0'
	return MTI(b)
}

// Repeat returns the repeat MTI of an advice or reversal (0220 → 0221,
// 0420 → 0421); other MTIs are returned unchanged.
func (m MTI) Repeat() MTI {
	switch m {
	case MTIAdvice:
		return MTIAdviceRepeat
	case MTIReversal:
		return MTIReversalRepeat
	}
	return m
}

// Processing codes (DE 3).
const (
	ProcPurchase = "000000"
	ProcRefund   = "200000"
)

// POS condition codes (DE 25).
const (
	CondNormal       = "00"
	CondPreauth      = "06"
	CondMailPhone    = "08" // card not present
	CondVerification = "51" // account verification (card check)
)

// Network management codes (DE 70).
const (
	NetSignOn  = "001"
	NetSignOff = "002"
	NetEcho    = "301"
)

// Merchant-initiated reasons (DE 48 MI).
const (
	MINoShow      = "NS"
	MIIncremental = "IA"
	MICancelFee   = "CX" // late-cancellation fee (version 1.1)
	MIDeposit     = "DP" // advance deposit (version 1.1)
)

// Reversal reasons (DE 48 RR).
const (
	RRTimeout        = "TO"
	RRVoid           = "VD"
	RRCustomerCancel = "CU"
)

// STAN is a system trace audit number (DE 11): 1–999999, unique per
// terminal per UTC day.
type STAN int

// String formats the STAN as six digits.
func (s STAN) String() string {
	if s < 0 || s > MaxSTAN {
		return fmt.Sprintf("%06d", int(s))
	}
	return string(appendDigits(make([]byte, 0, 6), int(s), 6))
}

// appendDigits appends v (0 or more) in n decimal digits, zeros first;
// v must have at most n digits.
func appendDigits(b []byte, v, n int) []byte {
	b = append(b, make([]byte, n)...)
	for i := len(b) - 1; i >= len(b)-n; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// MaxSTAN is the largest STAN.
const MaxSTAN STAN = 999999

// Stay is a lodging stay: check-in and check-out dates (DE 48 LD).
type Stay struct {
	CheckIn  Date `json:"checkin"`
	CheckOut Date `json:"checkout"`
}

// OriginalData is DE 90: the original message's MTI, STAN and DE 7.
type OriginalData struct {
	MTI         MTI
	STAN        STAN
	Transmitted time.Time // UTC, second precision
}

// Totals are the reconciliation totals of one terminal's batch (DE 74, 76,
// 86, 88; DE 97 is derived).
type Totals struct {
	CreditCount  int64
	DebitCount   int64
	CreditAmount int64 // minor units
	DebitAmount  int64 // minor units
}

// Net returns DE 97: "C" when debits ≥ credits, else "D", and the absolute
// difference in minor units.
func (t Totals) Net() (sign string, amount int64) {
	if t.DebitAmount >= t.CreditAmount {
		return "C", t.DebitAmount - t.CreditAmount
	}
	return "D", t.CreditAmount - t.DebitAmount
}

// HostMessage is one ISO 8583 message to or from the acquirer, field by
// field in domain terms. The protocol package packs it exactly; zero values
// are absent fields, except Amount which is present whenever HasAmount is
// set (a card check carries DE 4 = 0).
type HostMessage struct {
	MTI MTI

	PAN          PAN           // DE 2
	Processing   string        // DE 3
	HasAmount    bool          // DE 4 present
	Amount       Amount        // DE 4 (minor units of DE 49's currency)
	Currency     Currency      // DE 49
	Transmitted  time.Time     // DE 7, UTC
	STAN         STAN          // DE 11
	LocalTime    time.Time     // DE 12 and 13, the merchant's local time
	Expiry       Expiry        // DE 14
	MCC          string        // DE 18
	Entry        EntryMode     // DE 22
	Condition    string        // DE 25
	Track2       Sensitive     // DE 35
	RRN          string        // DE 37
	AuthCode     string        // DE 38
	ResponseCode string        // DE 39
	TerminalID   string        // DE 41
	MerchantID   string        // DE 42
	ICC          Sensitive     // DE 55
	Batch        int           // DE 60, 0 when absent
	NetworkCode  string        // DE 70
	Totals       *Totals       // DE 74, 76, 86, 88, 97
	Original     *OriginalData // DE 90

	// DE 48 tags.
	Reference         string // RF
	Stay              *Stay  // LD
	MerchantInitiated string // MI
	TI                string // TI
	WantToken         bool   // TR=1
	Token             string // TK
	StandIn           bool   // SI=1
	ReversalReason    string // RR
	BatchUpload       bool   // BU=1
	KSN               string // KS: key serial number of EncryptedCard
	EncryptedCard     string // EC: an encrypting terminal's card block, passed on unchanged
}

// Approved reports whether the response code approves (00, or 85 for a
// card check).
func (m *HostMessage) Approved() bool {
	return m.ResponseCode == "00" || m.ResponseCode == "85"
}

// LinkStatus is the state of the acquirer link.
type LinkStatus struct {
	Online    bool      `json:"online"` // signed on
	State     string    `json:"state"`  // "online", "connecting", "offline"
	Since     time.Time `json:"since"`  // when the state last changed
	LastError string    `json:"last_error,omitempty"`
	Address   string    `json:"address"`
}

// Acquirer exchanges messages with the acquirer host.
type Acquirer interface {
	// Exchange sends req and waits for its response, matched on MTI
	// class, STAN and terminal ID. It returns ErrHostUnavailable when req
	// was certainly not sent (link down, not signed on) and ErrNoResponse
	// when req may have reached the host but no answer came within the
	// timeout; a response arriving later is logged and never returned.
	Exchange(ctx context.Context, req *HostMessage) (*HostMessage, error)
	// Status reports the link state.
	Status() LinkStatus
}

// ResponseInfo describes a DE 39 code: what it means and what the gateway
// does about it.
type ResponseInfo struct {
	Code    string
	Outcome Outcome
	Message string
}

// Outcome is the gateway's reading of a response code.
type Outcome int

// Outcomes of a response code.
const (
	OutcomeApproved  Outcome = iota // 00, 85
	OutcomeDeclined                 // the card was not charged
	OutcomeUnknown                  // 96: treat as no answer and reverse
	OutcomeReconcile                // 95: upload the batch
)

// responseCodes is the one table from host response codes to outcomes
// and the reason shown to the clerk and on the terminal.
var responseCodes = map[string]ResponseInfo{
	"00": {"00", OutcomeApproved, "approved"},
	"85": {"85", OutcomeApproved, "card is valid"},
	"05": {"05", OutcomeDeclined, "do not honor: the card issuer declined"},
	"12": {"12", OutcomeDeclined, "invalid transaction: the acquirer does not accept this transaction"},
	"13": {"13", OutcomeDeclined, "invalid amount"},
	"14": {"14", OutcomeDeclined, "invalid card number"},
	"30": {"30", OutcomeDeclined, "format error: the acquirer could not read the message (a gateway bug)"},
	"51": {"51", OutcomeDeclined, "insufficient funds"},
	"54": {"54", OutcomeDeclined, "expired card"},
	"81": {"81", OutcomeDeclined, "the acquirer could not read the terminal's encrypted card data: check the terminal (its keys), then read the card again"},
	"91": {"91", OutcomeDeclined, "issuer or acquirer unavailable: try again"},
	"95": {"95", OutcomeReconcile, "reconciliation totals differ"},
	"96": {"96", OutcomeUnknown, "system malfunction at the acquirer"},
}

// LookupResponse returns what a DE 39 code means. Unknown codes decline.
func LookupResponse(code string) ResponseInfo {
	if r, ok := responseCodes[code]; ok {
		return r
	}
	return ResponseInfo{Code: code, Outcome: OutcomeDeclined, Message: fmt.Sprintf("declined by the acquirer (code %s)", code)}
}

// ErrBadAnswer is returned (wrapped in an *AnswerError) by the gateway's
// exchanges when the acquirer's answer is not a valid answer to the
// request: the outcome is unknown, exactly as if no answer had come. An
// authorization is reversed, an advice or a void repeated.
var ErrBadAnswer = &Error{Kind: EUnavailable, Code: "bad_answer", Message: "the acquirer's answer does not match the request"}

// AnswerError says why an answer was not taken.
type AnswerError struct{ Why string }

func (e *AnswerError) Error() string { return ErrBadAnswer.Message + ": " + e.Why }

// Unwrap makes errors.Is(err, ErrBadAnswer) and ErrorMessage work.
func (e *AnswerError) Unwrap() error {
	return &Error{Kind: ErrBadAnswer.Kind, Code: ErrBadAnswer.Code, Message: e.Error()}
}

// Is matches ErrBadAnswer.
func (e *AnswerError) Is(target error) bool { return target == ErrBadAnswer }

// CheckAnswer reports why resp cannot be taken as the acquirer's answer to
// req; nil when its response code stands (approved or declined). An
// answer is taken only when it is the response MTI of the request, echoes
// its STAN, terminal ID, processing code and amount, carries a response
// code, and — when it approves an authorization or a financial request
// that holds or moves money — an authorization code. Anything else is not
// an approval, nor a decline: the outcome is unknown.
func CheckAnswer(req, resp *HostMessage) error {
	bad := func(format string, args ...any) error { return &AnswerError{Why: fmt.Sprintf(format, args...)} }
	switch {
	case resp == nil:
		return bad("no message")
	case resp.MTI != req.MTI.Response():
		return bad("MTI %s answers %s", resp.MTI, req.MTI)
	case resp.STAN != req.STAN:
		return bad("STAN %s answers %s", resp.STAN, req.STAN)
	case resp.TerminalID != req.TerminalID:
		return bad("terminal ID %q answers %q", resp.TerminalID, req.TerminalID)
	case resp.ResponseCode == "":
		return bad("no response code (DE 39)")
	case len(resp.ResponseCode) != 2:
		return bad("response code %q is not two characters", resp.ResponseCode)
	case resp.Processing != "" && req.Processing != "" && resp.Processing != req.Processing:
		return bad("processing code %s answers %s", resp.Processing, req.Processing)
	}
	if LookupResponse(resp.ResponseCode).Outcome != OutcomeApproved {
		return nil
	}
	if req.HasAmount {
		holds := req.Amount.Value.Sign() > 0 && (req.MTI == MTIAuthorization || req.MTI == MTIFinancial)
		switch {
		case resp.HasAmount && resp.Amount.Value.Cmp(req.Amount.Value) != 0:
			return bad("approves %s, the request was for %s", resp.Amount.Value, req.Amount.Value)
		case !resp.HasAmount && holds:
			return bad("an approval without its amount (DE 4)")
		}
		if holds && resp.AuthCode == "" {
			return bad("an approval without an authorization code (DE 38)")
		}
	}
	return nil
}
