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

	// IdempotencyKey: the same key and body return the same transaction
	// and never send anything twice; the same key with another body is a
	// conflict.
	IdempotencyKey string
	// Wait makes Submit return only when the transaction is final (or ctx
	// ends); otherwise it returns as soon as the transaction is journaled.
	Wait bool
}
