package sterad

import (
	"cmp"
	"slices"
	"time"
)

// DefaultHoldAlert is how old an open pre-authorization may get before it
// raises an alert, when the configuration sets no limit (7 days: holds
// usually lapse at the issuer after about that long, and the guest's
// money is held meanwhile).
const DefaultHoldAlert = 7 * 24 * time.Hour

// Hold is an open pre-authorization: money held on a guest's card that is
// neither completed nor voided yet.
type Hold struct {
	ID        string        `json:"id"`
	Reference string        `json:"reference,omitempty"`
	Amount    Amount        `json:"amount"` // the authorized total: the pre-authorization and its approved incrementals
	Status    Status        `json:"status"` // approved, or stood_in (approved locally, the 0100 still queued)
	Terminal  string        `json:"terminal,omitempty"`
	MaskedPAN string        `json:"masked_pan,omitempty"`
	Stay      *Stay         `json:"stay,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	Age       time.Duration `json:"-"`
	// AgeSeconds is Age in whole seconds, for JSON.
	AgeSeconds int64 `json:"age_seconds"`
	// Old: older than the alert limit (the hold may lapse at the issuer,
	// and the guest's money is held for nothing).
	Old bool `json:"old"`
	// CheckoutToday: the stay's check-out is today: complete or void it in
	// the night audit.
	CheckoutToday bool `json:"checkout_today"`
	// CheckoutPassed: the stay's check-out day is over and the hold is
	// still open.
	CheckoutPassed bool `json:"checkout_passed"`
}

// HoldOptions are what OpenHolds decides by.
type HoldOptions struct {
	Now       time.Time      // from the injected clock
	Location  *time.Location // the hotel's time zone, for "today" (default UTC)
	Limit     time.Duration  // the alert limit (0: DefaultHoldAlert)
	OlderThan time.Duration  // list only holds at least this old (0: all)
}

// IsOpenHold reports whether t is an open pre-authorization: a
// pre-authorization approved (or stood in), with no completion or void
// approved or under way.
func IsOpenHold(t *Transaction) bool {
	return t.Op == OpPreauth && (t.Status == StatusApproved || t.Status == StatusStoodIn) &&
		t.CompletedBy == "" && t.VoidedBy == ""
}

// OpenHolds lists the open pre-authorizations among txns (any
// transactions: only open holds are kept), oldest first, with their age
// at o.Now and the flags of the alert and the night audit.
func OpenHolds(txns []*Transaction, o HoldOptions) []Hold {
	limit := o.Limit
	if limit <= 0 {
		limit = DefaultHoldAlert
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	today := DateOf(o.Now.In(loc))
	var out []Hold
	for _, t := range txns {
		if !IsOpenHold(t) {
			continue
		}
		age := max(o.Now.Sub(t.CreatedAt), 0)
		if age < o.OlderThan {
			continue
		}
		amount := t.Amount
		if !t.AuthorizedTotal.IsZero() {
			amount = t.AuthorizedTotal
		}
		h := Hold{ID: t.ID, Reference: t.Reference, Amount: amount, Status: t.Status, Terminal: t.Terminal,
			MaskedPAN: t.MaskedPAN, CreatedAt: t.CreatedAt, Age: age, AgeSeconds: int64(age / time.Second), Old: age > limit}
		if t.Stay != nil {
			s := *t.Stay
			h.Stay = &s
			h.CheckoutToday = s.CheckOut == today
			h.CheckoutPassed = !s.CheckOut.IsZero() && s.CheckOut.Before(today)
		}
		out = append(out, h)
	}
	slices.SortStableFunc(out, func(a, b Hold) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}
