package sterad

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// FeeBasis is what a cancellation fee's percentage is taken of.
type FeeBasis string

// FeeOfFirstNight: the fee is a percentage of the first night's rate, as
// recorded with the reservation when its card was checked.
const FeeOfFirstNight FeeBasis = "first_night"

// FeeBases lists every known basis.
var FeeBases = []FeeBasis{FeeOfFirstNight}

var hundred = decimal.NewFromInt(100)

// FeeRow is one row of a cancellation fee table: from DaysBefore days
// before the arrival day (0 is the arrival day itself) the fee is Percent
// of Of, until a row with fewer days before takes over.
type FeeRow struct {
	DaysBefore int             `json:"days_before"`
	Percent    decimal.Decimal `json:"percent"` // 0–100
	Of         FeeBasis        `json:"of"`
}

// NoShowFee is the fee of a guaranteed reservation whose guest neither
// arrived nor cancelled (無断不泊).
type NoShowFee struct {
	Percent decimal.Decimal `json:"percent"` // 0–100
	Of      FeeBasis        `json:"of"`
}

// CancellationPolicy is a hotel's cancellation fee table, configured as
// data and versioned: the version in force is recorded with each
// reservation when its card is checked (PolicySnapshot), and the fee of a
// later cancellation comes from that recorded copy, never from whatever
// the configuration says on the day of the cancellation.
//
// What "covers every day before arrival" means: a table must have a row
// for the arrival day (days_before 0); every day from the row with the
// most days before down to the arrival day then falls in exactly one row
// (the row with the fewest days before that is still at least the days
// left), and a cancellation earlier than the row with the most days
// before costs nothing. Two rows with the same days_before overlap and
// are refused, as is a table whose fee falls as arrival approaches (a
// row's percentage is never below that of a row further out): such a
// table is a typing error, never a hotel's intent.
type CancellationPolicy struct {
	Version string     `json:"version"`
	Rows    []FeeRow   `json:"rows"` // any order; Normalize sorts them, most days before first
	NoShow  *NoShowFee `json:"noshow"`
}

// Validate checks the table and returns every problem at once (joined).
// Each problem is an *Error of kind EInvalid and code "invalid_policy"
// whose message starts with the key it is about ("rows[1]: …", "noshow:
// …", "version: …"), so that the configuration can prefix its own path.
func (p CancellationPolicy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, Errorf(EInvalid, "invalid_policy", format, args...))
	}
	if p.Version == "" {
		bad("version: is required: it is recorded with each reservation")
	} else if len(p.Version) > 32 || !printableASCII(p.Version) {
		bad("version: %q must be 1–32 printable ASCII characters", p.Version)
	}
	if len(p.Rows) == 0 {
		bad("rows: at least one row is required, with days_before 0 for the arrival day")
	}
	seen := map[int]int{}
	hasDay := false
	for i, r := range p.Rows {
		where := fmt.Sprintf("rows[%d]", i)
		if r.DaysBefore < 0 {
			bad("%s: days_before %d is negative: 0 is the arrival day", where, r.DaysBefore)
		} else if r.DaysBefore > 366 {
			bad("%s: days_before %d is more than a year", where, r.DaysBefore)
		}
		if j, dup := seen[r.DaysBefore]; dup {
			bad("%s: days_before %d overlaps rows[%d]: each day before arrival has one fee", where, r.DaysBefore, j)
		} else {
			seen[r.DaysBefore] = i
		}
		if r.DaysBefore == 0 {
			hasDay = true
		}
		if msg := checkPercent(r.Percent); msg != "" {
			bad("%s: percent %s %s", where, r.Percent, msg)
		}
		if !slices.Contains(FeeBases, r.Of) {
			bad("%s: of %q is unknown: use first_night", where, r.Of)
		}
	}
	if len(p.Rows) > 0 && !hasDay {
		bad("rows: no row covers the arrival day: add one with days_before 0 (every day from the earliest row to arrival must have a fee)")
	}
	// A fee that falls as arrival approaches.
	rows := p.sorted()
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		if a.DaysBefore != b.DaysBefore && b.Percent.LessThan(a.Percent) {
			bad("rows: the fee falls from %s %% at %d days before to %s %% at %d days before: a fee never falls as arrival approaches",
				a.Percent, a.DaysBefore, b.Percent, b.DaysBefore)
		}
	}
	if p.NoShow == nil {
		bad("noshow: is required: the fee of a guest who neither arrives nor cancels")
	} else {
		if msg := checkPercent(p.NoShow.Percent); msg != "" {
			bad("noshow: percent %s %s", p.NoShow.Percent, msg)
		}
		if !slices.Contains(FeeBases, p.NoShow.Of) {
			bad("noshow: of %q is unknown: use first_night", p.NoShow.Of)
		}
	}
	return errors.Join(errs...)
}

func checkPercent(d decimal.Decimal) string {
	if d.IsNegative() || d.GreaterThan(hundred) {
		return "is outside 0–100"
	}
	if !d.Equal(d.Truncate(2)) {
		return "has more than two decimal places"
	}
	return ""
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// sorted returns the rows, most days before first.
func (p CancellationPolicy) sorted() []FeeRow {
	rows := slices.Clone(p.Rows)
	slices.SortStableFunc(rows, func(a, b FeeRow) int { return b.DaysBefore - a.DaysBefore })
	return rows
}

// Normalize returns a deep copy of the policy with its rows sorted, most
// days before first (the order a guest reads them in).
func (p CancellationPolicy) Normalize() CancellationPolicy {
	q := CancellationPolicy{Version: p.Version, Rows: p.sorted()}
	if p.NoShow != nil {
		n := *p.NoShow
		q.NoShow = &n
	}
	return q
}

// Fee rule kinds (FeeRule.Kind).
const (
	FeeRuleDaysBefore = "days_before" // a row of the table
	FeeRuleNoShow     = "noshow"      // the no-show row
	FeeRuleFree       = "free"        // earlier than the table's earliest row: no fee
)

// FeeRule is the rule a fee was computed by: a row of the table, the
// no-show row, or none (free).
type FeeRule struct {
	Kind       string          `json:"kind"`        // days_before, noshow, free
	DaysBefore int             `json:"days_before"` // for days_before (0: the arrival day)
	Percent    decimal.Decimal `json:"percent"`
	Of         FeeBasis        `json:"of,omitempty"`
}

// Ref names the rule in one word, as a response's policy_row: "7" (the row
// from 7 days before), "0" (the arrival day), "noshow", or "free".
func (r FeeRule) Ref() string {
	switch r.Kind {
	case FeeRuleDaysBefore:
		return fmt.Sprint(r.DaysBefore)
	default:
		return r.Kind
	}
}

// String describes the rule for a clerk.
func (r FeeRule) String() string {
	switch r.Kind {
	case FeeRuleDaysBefore:
		if r.DaysBefore == 0 {
			return fmt.Sprintf("on the arrival day: %s %% of the first night", r.Percent)
		}
		return fmt.Sprintf("from %d days before arrival: %s %% of the first night", r.DaysBefore, r.Percent)
	case FeeRuleNoShow:
		return fmt.Sprintf("no-show: %s %% of the first night", r.Percent)
	default:
		return "before the fee table starts: no fee"
	}
}

// DaysBetween returns the number of calendar days from one date to
// another: 1 from a day to the next, negative when to is before from.
func DaysBetween(from, to Date) int {
	return int(to.Time(time.UTC).Sub(from.Time(time.UTC)).Hours() / 24)
}

// Nights returns the number of nights of the stay (0 for a day use or an
// unset stay; negative when check-out is before check-in).
func (s Stay) Nights() int {
	if s.CheckIn.IsZero() || s.CheckOut.IsZero() {
		return 0
	}
	return DaysBetween(s.CheckIn, s.CheckOut)
}

// Fee returns the cancellation fee of a reservation arriving on arrival
// and cancelled on cancelledOn (both local calendar dates of the hotel),
// and the rule that gave it. firstNight is the first night's rate the
// policy applies to.
//
//   - cancelledOn more days before arrival than the earliest row: no fee
//     (rule "free").
//   - from a row's days_before down to the next row: that row's percent of
//     the first night.
//   - after the arrival day: the guest neither arrived nor cancelled in
//     time, so the no-show row applies (rule "noshow").
//
// Rounding: percent × first night is truncated to the currency's minor
// unit (whole yen), in the guest's favour: 50 % of ¥12,345 is ¥6,172.
// The policy must be valid (Validate); Fee refuses bad input with
// EInvalid: a negative or missing first night, a missing date.
func (p CancellationPolicy) Fee(firstNight Amount, arrival, cancelledOn Date) (Amount, FeeRule, error) {
	if err := checkFeeInput(firstNight); err != nil {
		return Amount{}, FeeRule{}, err
	}
	if arrival.IsZero() || cancelledOn.IsZero() {
		return Amount{}, FeeRule{}, Errorf(EInvalid, "invalid_date", "the arrival and cancellation dates are required to compute a cancellation fee")
	}
	days := DaysBetween(cancelledOn, arrival)
	if days < 0 {
		fee, rule, err := p.NoShowFee(firstNight)
		return fee, rule, err
	}
	rows := p.sorted()
	for i := len(rows) - 1; i >= 0; i-- { // fewest days before first
		r := rows[i]
		if r.DaysBefore >= days {
			return percentOf(r.Percent, firstNight), FeeRule{Kind: FeeRuleDaysBefore, DaysBefore: r.DaysBefore, Percent: r.Percent, Of: r.Of}, nil
		}
	}
	return Amount{Value: decimal.Zero, Currency: firstNight.Currency}, FeeRule{Kind: FeeRuleFree, Percent: decimal.Zero}, nil
}

// NoShowFee returns the fee of a no-show (the guest neither arrived nor
// cancelled), truncated to the currency's minor unit like Fee.
func (p CancellationPolicy) NoShowFee(firstNight Amount) (Amount, FeeRule, error) {
	if err := checkFeeInput(firstNight); err != nil {
		return Amount{}, FeeRule{}, err
	}
	if p.NoShow == nil {
		return Amount{}, FeeRule{}, Errorf(EInvalid, "invalid_policy", "cancellation policy %s has no no-show row", p.Version)
	}
	return percentOf(p.NoShow.Percent, firstNight), FeeRule{Kind: FeeRuleNoShow, Percent: p.NoShow.Percent, Of: p.NoShow.Of}, nil
}

func checkFeeInput(firstNight Amount) error {
	if firstNight.Currency.Code == "" {
		return Errorf(EInvalid, "invalid_amount", "the first night's rate is missing: it is recorded when the card is checked")
	}
	if firstNight.Value.IsNegative() {
		return Errorf(EInvalid, "invalid_amount", "the first night's rate %s is negative", firstNight)
	}
	return nil
}

// percentOf returns pct % of a, truncated to a's currency minor unit.
func percentOf(pct decimal.Decimal, a Amount) Amount {
	v := a.Value.Mul(pct).Shift(-2).Truncate(a.Currency.Exponent)
	return Amount{Value: v, Currency: a.Currency}
}

// PolicySnapshot is the cancellation policy recorded with a reservation
// when its card is checked: the brands require the guest to have been
// shown it, so the version, the rows as they were, when it was recorded
// and the first night's rate are kept with the reservation, and a later
// cancellation or no-show computes its fee from this copy only.
type PolicySnapshot struct {
	Policy     CancellationPolicy `json:"policy"`
	FirstNight Amount             `json:"first_night"`
	RecordedAt time.Time          `json:"recorded_at"` // when the card was checked with the guest shown the policy
}

// NewPolicySnapshot records policy for a reservation whose first night
// costs firstNight, at the time at. It refuses an invalid policy and a
// first night that is not a positive amount (EInvalid).
func NewPolicySnapshot(policy CancellationPolicy, firstNight Amount, at time.Time) (*PolicySnapshot, error) {
	if err := policy.Validate(); err != nil {
		return nil, Errorf(EInvalid, "invalid_policy", "cancellation policy %q is invalid: %s", policy.Version, err)
	}
	if err := checkFeeInput(firstNight); err != nil {
		return nil, err
	}
	if !firstNight.Value.IsPositive() {
		return nil, Errorf(EInvalid, "invalid_amount", "the first night's rate must be more than zero")
	}
	return &PolicySnapshot{Policy: policy.Normalize(), FirstNight: firstNight, RecordedAt: at}, nil
}

// Fee returns the fee of cancelling on cancelledOn a reservation arriving
// on arrival, by the recorded policy and first night (see
// CancellationPolicy.Fee).
func (s *PolicySnapshot) Fee(arrival, cancelledOn Date) (Amount, FeeRule, error) {
	return s.Policy.Fee(s.FirstNight, arrival, cancelledOn)
}

// NoShowFee returns the no-show fee by the recorded policy.
func (s *PolicySnapshot) NoShowFee() (Amount, FeeRule, error) {
	return s.Policy.NoShowFee(s.FirstNight)
}

// Clone returns a deep copy.
func (s *PolicySnapshot) Clone() *PolicySnapshot {
	if s == nil {
		return nil
	}
	c := *s
	c.Policy = s.Policy.Normalize()
	return &c
}
