package sterad

// Request is a clerk's or the property system's request to start a
// transaction, as it arrived: strings not yet validated. Gateway.Submit
// validates all of it before anything is stored or sent.
type Request struct {
	Op        string
	Terminal  string // card read at this terminal; empty for keyed, token or linked ops
	Amount    string // major units ("30000")
	Currency  string // default JPY
	Reference string // folio or reservation number
	Original  string // transaction ID for incremental, completion, refund, void
	PAN       string // keyed card number
	Expiry    string // keyed card expiry, YYMM
	Token     string // host token instead of a card (no-show)
	CheckIn   string // YYYY-MM-DD
	CheckOut  string // YYYY-MM-DD
	// FirstNight is the first night's rate of a guaranteed reservation
	// whose card is checked: the cancellation policy in force is recorded
	// with the reservation for it (version 1.1).
	FirstNight string

	// IdempotencyKey: the same key and body return the same transaction
	// and never send anything twice; the same key with another body is a
	// conflict.
	IdempotencyKey string
	// Wait makes Submit return only when the transaction is final (or ctx
	// ends); otherwise it returns as soon as the transaction is journaled.
	Wait bool
}

// CheckoutRequest is a check-out with split tender (POST /v1/checkouts,
// version 1.1): travel vouchers against the room plan, the reservation's
// deposits, then the card: the completion of Original (a pre-authorization)
// or a sale at Terminal.
type CheckoutRequest struct {
	Reference  string
	Original   string // the pre-authorization to complete
	Terminal   string // or the terminal to read the card at
	CheckIn    string // YYYY-MM-DD
	CheckOut   string
	Guests     int
	Booking    string // "direct", or the channel
	RoomPlan   string // the basic room plan (宿泊プラン) of the stay
	Other      string // everything outside the plan
	BathingTax string // 入湯税: never paid by vouchers
	Vouchers   []VoucherUse
	// IdempotencyKey: the same key and body answer the same check-out.
	IdempotencyKey string
	// Wait: answer once the card's transaction is final.
	Wait bool
}

// CheckoutResult is what a check-out did.
type CheckoutResult struct {
	Reference       string           `json:"reference"`
	VouchersApplied Amount           `json:"vouchers_applied"`
	DepositsApplied Amount           `json:"deposits_applied"`
	CardAmount      Amount           `json:"card_amount"`
	Refund          Amount           `json:"refund"`
	Transaction     *Transaction     `json:"transaction"` // the completion or sale (or the void of the hold); nil when the card pays nothing
	Refunds         []*Transaction   `json:"refunds,omitempty"`
	Vouchers        []AppliedVoucher `json:"vouchers"`
}
