package sterad

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Travel vouchers (宿泊券) of a government travel-subsidy program, as the
// program office's handling manual sets them (travel-voucher-handling.ja.txt):
// a face value of ¥5,000, at most 4 per person per night, valid for the
// nights of a period, only for bookings made directly with the hotel, only
// against the basic room plan (宿泊プラン) of at least ¥5,000 per person per
// night, never for food, drinks or souvenirs outside the plan nor for the
// bathing tax, no change given, named vouchers checked against the guest,
// and a monthly claim with the documents due on the 10th of the next
// month. The card pays what the vouchers do not (split tender).

// BookingDirect is the booking channel of a reservation made directly with
// the hotel: by telephone or on the hotel's own web site. Any other
// channel (a travel agent, an online travel agency) is not direct.
const BookingDirect = "direct"

// VoucherProgram is one configured voucher program.
type VoucherProgram struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	FaceValue             Amount `json:"face_value"`
	PerPersonNight        int    `json:"per_person_night"`          // vouchers per person per night, at most
	MinPlanPerPersonNight Amount `json:"min_plan_per_person_night"` // the room plan per person per night, at least
	ValidFrom             Date   `json:"valid_from"`                // the first night vouchers pay for
	ValidTo               Date   `json:"valid_to"`                  // the last night vouchers pay for
	DirectBookingsOnly    bool   `json:"direct_bookings_only"`
	ClaimDay              int    `json:"claim_day"` // the claim documents are due on this day of the next month
	// NumberPattern is a regular expression (RE2) a voucher number must
	// match as a whole: it is anchored at both ends whether or not it
	// says so. Empty: 1–32 letters, digits or hyphens.
	NumberPattern string `json:"number_pattern"`
}

var programIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// defaultNumberPattern is used when a program sets none.
const defaultNumberPattern = `[0-9A-Za-z-]{1,32}`

// Validate checks the program and returns every problem at once (joined).
// Each is an *Error of kind EInvalid and code "invalid_voucher_program"
// whose message starts with the key it is about ("face_value: …").
func (p VoucherProgram) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, Errorf(EInvalid, "invalid_voucher_program", format, args...))
	}
	if !programIDRe.MatchString(p.ID) {
		bad("id: %q must be 1–32 letters, digits, '-' or '_'", p.ID)
	}
	if strings.TrimSpace(p.Name) == "" {
		bad("name: is required")
	}
	if p.FaceValue.Currency.Code == "" || !p.FaceValue.Value.IsPositive() {
		bad("face_value: must be more than zero")
	} else if !p.FaceValue.Value.Equal(p.FaceValue.Value.Truncate(p.FaceValue.Currency.Exponent)) {
		bad("face_value: %s is finer than the %s minor unit", p.FaceValue.Value, p.FaceValue.Currency.Code)
	}
	if p.PerPersonNight < 1 {
		bad("per_person_night: %d: at least 1 voucher per person per night", p.PerPersonNight)
	}
	if p.MinPlanPerPersonNight.Value.IsNegative() {
		bad("min_plan_per_person_night: must not be negative")
	}
	if p.MinPlanPerPersonNight.Currency.Code != "" && p.FaceValue.Currency.Code != "" && p.MinPlanPerPersonNight.Currency.Code != p.FaceValue.Currency.Code {
		bad("min_plan_per_person_night: is in %s, the face value in %s", p.MinPlanPerPersonNight.Currency.Code, p.FaceValue.Currency.Code)
	}
	if p.ValidFrom.IsZero() {
		bad("valid_from: is required")
	}
	if p.ValidTo.IsZero() {
		bad("valid_to: is required")
	}
	if !p.ValidFrom.IsZero() && !p.ValidTo.IsZero() && p.ValidTo.Before(p.ValidFrom) {
		bad("valid_to: %s is before valid_from %s", p.ValidTo, p.ValidFrom)
	}
	if p.ClaimDay < 1 || p.ClaimDay > 31 {
		bad("claim_day: %d is not a day of the month (1–31)", p.ClaimDay)
	}
	if _, err := compileNumberPattern(p.NumberPattern); err != nil {
		bad("number_pattern: %q is not a regular expression: %v", p.NumberPattern, err)
	}
	return errors.Join(errs...)
}

func compileNumberPattern(p string) (*regexp.Regexp, error) {
	if p == "" {
		p = defaultNumberPattern
	}
	if _, err := regexp.Compile(p); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + p + `)$`)
}

// ValidNight reports whether the program pays for the night of d (the
// night that starts on d): valid_from and valid_to are both included.
func (p VoucherProgram) ValidNight(d Date) bool {
	return !d.Before(p.ValidFrom) && !d.After(p.ValidTo)
}

// ValidNights returns the nights of the stay the program pays for, in
// order (the handling manual's Q7: a guest staying the nights of 30
// September and 1 October may pay only the first with vouchers).
func (p VoucherProgram) ValidNights(s Stay) []Date {
	var nights []Date
	for d, i := s.CheckIn, 0; i < s.Nights(); d, i = d.AddDays(1), i+1 {
		if p.ValidNight(d) {
			nights = append(nights, d)
		}
	}
	return nights
}

// NormalizeVoucherNumber returns a voucher number as typed at a front
// desk in its canonical form: surrounding spaces removed and full-width
// letters, digits and hyphens (０１２３, Ａ, －) turned into ASCII.
func NormalizeVoucherNumber(s string) string {
	s = strings.TrimFunc(s, unicode.IsSpace)
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '！' && r <= '～': // U+FF01–U+FF5E: full-width ASCII
			return r - 0xFEE0
		case r == 'ー' || r == '‐' || r == '−' || r == '–':
			return '-'
		}
		return r
	}, s)
}

// CheckNumber returns the canonical form of a voucher number of this
// program (NormalizeVoucherNumber), or EInvalid "voucher_number" when it
// does not match the program's pattern.
func (p VoucherProgram) CheckNumber(number string) (string, error) {
	re, err := compileNumberPattern(p.NumberPattern)
	if err != nil {
		return "", Errorf(EInvalid, "invalid_voucher_program", "voucher program %s: number_pattern is not a regular expression", p.ID)
	}
	n := NormalizeVoucherNumber(number)
	if n == "" {
		return "", Errorf(EInvalid, "voucher_number", "a voucher number of %s is missing", p.ID)
	}
	if len(n) > 64 || !re.MatchString(n) {
		return "", Errorf(EInvalid, "voucher_number", "voucher number %q is not a number of %s (%s): check it against the voucher", safeVoucherNumber(n), p.ID, p.Name)
	}
	return n, nil
}

// safeVoucherNumber keeps card numbers typed into the voucher field out of
// messages and logs: a string of 12–19 digits that passes the Luhn check
// is shown masked.
func safeVoucherNumber(n string) string {
	if len(n) > 64 {
		n = n[:64] + "…"
	}
	if digits, ok := LooksLikePAN(n); ok {
		return MaskPAN(digits)
	}
	return n
}

// ClaimDue returns the day the claim documents for the vouchers used in
// month are due at the program office: ClaimDay of the next month (the
// manual: July's vouchers by 10 August), or that month's last day when it
// is shorter.
func (p VoucherProgram) ClaimDue(month YearMonth) Date {
	next := month.Next()
	last := next.LastDay().Day
	day := min(max(p.ClaimDay, 1), last)
	return Date{Year: next.Year, Month: next.Month, Day: day}
}

// YearMonth is a calendar month: the unit of the voucher claim.
type YearMonth struct {
	Year  int
	Month time.Month
}

// ParseYearMonth parses "YYYY-MM".
func ParseYearMonth(s string) (YearMonth, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return YearMonth{}, Errorf(EInvalid, "invalid_month", "month %q is not a YYYY-MM month", s)
	}
	return YearMonth{t.Year(), t.Month()}, nil
}

// MonthOf returns the month of d.
func MonthOf(d Date) YearMonth { return YearMonth{d.Year, d.Month} }

// String formats "YYYY-MM".
func (m YearMonth) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Next returns the month after m.
func (m YearMonth) Next() YearMonth {
	if m.Month == time.December {
		return YearMonth{m.Year + 1, time.January}
	}
	return YearMonth{m.Year, m.Month + 1}
}

// FirstDay returns the first day of the month.
func (m YearMonth) FirstDay() Date { return Date{m.Year, m.Month, 1} }

// LastDay returns the last day of the month.
func (m YearMonth) LastDay() Date { return m.Next().FirstDay().AddDays(-1) }

// Contains reports whether d is in the month.
func (m YearMonth) Contains(d Date) bool { return d.Year == m.Year && d.Month == m.Month }

// MarshalJSON encodes "YYYY-MM".
func (m YearMonth) MarshalJSON() ([]byte, error) { return []byte(`"` + m.String() + `"`), nil }

// UnmarshalJSON decodes "YYYY-MM".
func (m *YearMonth) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return Errorf(EInvalid, "invalid_month", "a month must be a \"YYYY-MM\" string")
	}
	v, err := ParseYearMonth(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// VoucherUse is one voucher the clerk enters at check-out. Vouchers are
// named (記名式): HolderMatches says the clerk checked the name on the
// voucher against the guest; when it is someone else's (a present from
// family is fine), HolderReason says why, and is recorded in the voucher
// log (the manual's Q10, against resale and fraud).
type VoucherUse struct {
	Program       string `json:"program"`
	Number        string `json:"number"`
	HolderMatches bool   `json:"holder_matches"`
	HolderReason  string `json:"holder_reason,omitempty"`
}

// VoucherCheckout is what ApplyVouchers decides from: the stay, the number
// of guests, how it was booked, the bill and the vouchers entered.
type VoucherCheckout struct {
	Reference string       `json:"reference"`
	Stay      Stay         `json:"stay"`
	Guests    int          `json:"guests"`
	Booking   string       `json:"booking"` // BookingDirect, or anything else for a booking through others
	Bill      Bill         `json:"bill"`
	Vouchers  []VoucherUse `json:"vouchers"`
}

// AppliedVoucher is a voucher accepted at check-out and what it paid:
// always its whole face value (no change is given, and a set of vouchers
// worth more than the room plan is refused as a whole).
type AppliedVoucher struct {
	Program       string `json:"program"`
	Number        string `json:"number"` // canonical (NormalizeVoucherNumber)
	Applied       Amount `json:"applied"`
	HolderMatches bool   `json:"holder_matches"`
	HolderReason  string `json:"holder_reason,omitempty"`
}

// VoucherResult is the outcome of ApplyVouchers.
type VoucherResult struct {
	Vouchers     []AppliedVoucher `json:"vouchers"`
	Applied      Amount           `json:"vouchers_applied"` // the vouchers' total, against the room plan only
	RoomPlanLeft Amount           `json:"room_plan_left"`   // the room plan the vouchers do not pay
	Remainder    Amount           `json:"remainder"`        // the bill minus the vouchers: for deposits and the card
}

// VoucherUsed reports whether a voucher number (canonical, as
// NormalizeVoucherNumber gives it) of a program was already accepted: it
// is in the voucher log. An error stops ApplyVouchers. The caller holds
// whatever lock keeps two check-outs from accepting one voucher at once,
// until the voucher log lines are committed.
type VoucherUsed func(program, number string) (bool, error)

// ApplyVouchers checks the vouchers entered at a check-out and applies
// them to the room plan only; the card (after any deposits) pays the
// rest. The first rule broken refuses the check-out as a whole, with an
// *Error naming the rule (the codes of docs/api.md), checked in this order:
//
//   - voucher_program (EInvalid): a program that is not configured;
//   - voucher_number (EInvalid): a number that does not match the
//     program's pattern;
//   - voucher_holder_reason (EInvalid): a voucher of someone else without
//     a reason;
//   - voucher_used (EConflict): a number entered twice;
//   - voucher_not_direct (EInvalid): a program for direct bookings only,
//     and a booking that was not direct;
//   - voucher_dates (EInvalid): no night of the stay inside the program's
//     dates (a day use has no night at all);
//   - voucher_plan_minimum (EInvalid): a room plan per person per night
//     below the program's minimum (other charges do not count: the
//     manual's Q16);
//   - voucher_cap (EInvalid): more vouchers than per_person_night × guests
//     × the nights the program pays for;
//   - voucher_exceeds_plan (EInvalid): vouchers worth more than the room
//     plan of those nights: no change is given, and vouchers never pay
//     other charges (food, drinks, souvenirs) or the bathing tax (the
//     FAQ: a ¥12,800 plan takes two ¥5,000 vouchers and ¥2,800 by card,
//     never three);
//   - voucher_used (EConflict): a number already accepted before (used
//     is asked only when every other rule holds; a nil used is an
//     internal error, never "not used").
//
// When only some nights are inside the program's dates, the room plan is
// taken as spread evenly over the nights, and the part of the eligible
// nights (truncated to the minor unit) is what the vouchers may pay.
// Bad input (no guests, a check-out before check-in, negative amounts) is
// EInvalid "invalid_guests", "invalid_stay", "invalid_amount".
func ApplyVouchers(programs []VoucherProgram, c VoucherCheckout, used VoucherUsed) (VoucherResult, error) {
	if err := c.Bill.Validate(); err != nil {
		return VoucherResult{}, err
	}
	cur := c.Bill.Currency()
	plan := c.Bill.RoomPlan.orZero(cur)
	res := VoucherResult{Applied: zero(cur), RoomPlanLeft: plan, Remainder: c.Bill.Total()}
	if len(c.Vouchers) == 0 {
		return res, nil
	}
	if c.Guests < 1 || c.Guests > 999 {
		return VoucherResult{}, Errorf(EInvalid, "invalid_guests", "the number of guests must be from 1 to 999 (it is %d)", c.Guests)
	}
	if c.Stay.CheckIn.IsZero() || c.Stay.CheckOut.IsZero() || c.Stay.Nights() < 0 || c.Stay.Nights() > 366 {
		return VoucherResult{}, Errorf(EInvalid, "invalid_stay", "vouchers need the stay: a check-in and a check-out on or after it, at most 366 nights later")
	}

	// Each voucher: its program, its number, its holder.
	byID := map[string]VoucherProgram{}
	for _, p := range programs {
		byID[p.ID] = p
	}
	type group struct {
		p        VoucherProgram
		vouchers []int
	}
	var groups []*group
	groupOf := map[string]*group{}
	seen := map[string]int{}
	applied := make([]AppliedVoucher, len(c.Vouchers))
	for i, v := range c.Vouchers {
		p, ok := byID[v.Program]
		if !ok {
			return VoucherResult{}, Errorf(EInvalid, "voucher_program", "voucher %d: %q is not a configured voucher program", i+1, v.Program)
		}
		if p.FaceValue.Currency.Code != cur.Code {
			return VoucherResult{}, Errorf(EInvalid, "currency_mismatch", "voucher program %s is in %s, the bill in %s", p.ID, p.FaceValue.Currency.Code, cur.Code)
		}
		n, err := p.CheckNumber(v.Number)
		if err != nil {
			return VoucherResult{}, err
		}
		reason := strings.TrimSpace(v.HolderReason)
		if !v.HolderMatches {
			if reason == "" {
				return VoucherResult{}, Errorf(EInvalid, "voucher_holder_reason",
					"voucher %s is named for someone else: ask the guest why and enter the reason (holder_reason); a present from family is fine", n)
			}
			if utf8.RuneCountInString(reason) > 200 || !utf8.ValidString(reason) || strings.ContainsFunc(reason, unicode.IsControl) {
				return VoucherResult{}, Errorf(EInvalid, "voucher_holder_reason", "the holder reason of voucher %s must be at most 200 characters of text", n)
			}
		} else {
			reason = ""
		}
		key := p.ID + "\x00" + n
		if j, dup := seen[key]; dup {
			return VoucherResult{}, Errorf(EConflict, "voucher_used", "voucher %s of %s is entered twice (vouchers %d and %d)", n, p.ID, j+1, i+1)
		}
		seen[key] = i
		applied[i] = AppliedVoucher{Program: p.ID, Number: n, Applied: p.FaceValue, HolderMatches: v.HolderMatches, HolderReason: reason}
		g := groupOf[p.ID]
		if g == nil {
			g = &group{p: p}
			groupOf[p.ID] = g
			groups = append(groups, g)
		}
		g.vouchers = append(g.vouchers, i)
	}

	// Each program: the booking, the dates, the plan, the cap, the plan's value.
	nights := c.Stay.Nights()
	total := zero(cur)
	for _, g := range groups {
		p := g.p
		if p.DirectBookingsOnly && !strings.EqualFold(strings.TrimSpace(c.Booking), BookingDirect) {
			booking := c.Booking
			if booking == "" {
				booking = "not given"
			}
			return VoucherResult{}, Errorf(EInvalid, "voucher_not_direct",
				"%s vouchers are only for bookings made directly with the hotel (telephone or its own web site); this booking is %s", p.Name, booking)
		}
		if nights == 0 {
			return VoucherResult{}, Errorf(EInvalid, "voucher_dates", "%s vouchers pay for nights: a stay without a night (a day use) cannot use them", p.Name)
		}
		valid := p.ValidNights(c.Stay)
		if len(valid) == 0 {
			stayNights := fmt.Sprintf("the nights of %s to %s", c.Stay.CheckIn, c.Stay.CheckOut.AddDays(-1))
			if nights == 1 {
				stayNights = "the night of " + c.Stay.CheckIn.String()
			}
			return VoucherResult{}, Errorf(EInvalid, "voucher_dates",
				"%s vouchers pay for the nights of %s to %s; this stay (%s) is outside them",
				p.Name, p.ValidFrom, p.ValidTo, stayNights)
		}
		minPlan := p.MinPlanPerPersonNight.orZero(cur)
		if need := minPlan.Value.Mul(decimal.NewFromInt(int64(c.Guests * nights))); plan.Value.LessThan(need) {
			per := plan.Value.Div(decimal.NewFromInt(int64(c.Guests * nights))).Truncate(cur.Exponent)
			return VoucherResult{}, Errorf(EInvalid, "voucher_plan_minimum",
				"the room plan is %s per person per night (%s for %d guest(s) × %d night(s)); %s vouchers need a plan of at least %s per person per night (charges outside the plan do not count)",
				Amount{Value: per, Currency: cur}.Display(), plan.Display(), c.Guests, nights, p.Name, minPlan.Display())
		}
		limit := p.PerPersonNight * c.Guests * len(valid)
		if len(g.vouchers) > limit {
			return VoucherResult{}, Errorf(EInvalid, "voucher_cap",
				"%d %s vouchers are more than the %d allowed: at most %d per person per night, %d guest(s) × %d night(s) inside the program's dates",
				len(g.vouchers), p.Name, limit, p.PerPersonNight, c.Guests, len(valid))
		}
		eligible := plan
		if len(valid) < nights {
			eligible = Amount{Value: plan.Value.Mul(decimal.NewFromInt(int64(len(valid)))).Div(decimal.NewFromInt(int64(nights))).Truncate(cur.Exponent), Currency: cur}
		}
		sum := zero(cur)
		for range g.vouchers {
			sum = sum.Add(p.FaceValue)
		}
		if sum.Cmp(eligible) > 0 {
			return VoucherResult{}, exceedsPlan(p, len(g.vouchers), sum, eligible, len(valid) < nights, c.Bill)
		}
		total = total.Add(sum)
	}
	if total.Cmp(plan) > 0 {
		return VoucherResult{}, Errorf(EInvalid, "voucher_exceeds_plan",
			"vouchers of %s in all are more than the room plan %s: vouchers give no change and pay the room plan only", total.Display(), plan.Display())
	}
	if used == nil {
		return VoucherResult{}, Errorf(EInternal, "internal", "vouchers cannot be checked without the voucher log")
	}
	for _, a := range applied {
		u, err := used(a.Program, a.Number)
		if err != nil {
			return VoucherResult{}, err
		}
		if u {
			return VoucherResult{}, Errorf(EConflict, "voucher_used", "voucher %s of %s was already used: a voucher pays once", a.Number, a.Program)
		}
	}
	res.Vouchers = applied
	res.Applied = total
	res.RoomPlanLeft = plan.Sub(total)
	res.Remainder = c.Bill.Total().Sub(total)
	return res, nil
}

func exceedsPlan(p VoucherProgram, n int, sum, eligible Amount, partial bool, bill Bill) error {
	fit := eligible.Value.Div(p.FaceValue.Value).IntPart()
	what := "the room plan " + eligible.Display()
	if partial {
		what = "the room plan of the nights inside the program's dates, " + eligible.Display()
	}
	extra := ""
	cur := bill.Currency()
	if !bill.Other.orZero(cur).IsZero() || !bill.BathingTax.orZero(cur).IsZero() {
		extra = "; other charges and the bathing tax are never paid by vouchers"
	}
	return Errorf(EInvalid, "voucher_exceeds_plan",
		"%d %s vouchers (%s) are more than %s: vouchers give no change, so take at most %d and the rest by card or cash%s",
		n, p.Name, sum.Display(), what, fit, extra)
}

// CheckoutPlan is a check-out's whole split tender: the vouchers, then
// the deposits, then the card.
type CheckoutPlan struct {
	Vouchers VoucherResult `json:"vouchers"`
	Split    CheckoutSplit `json:"split"`
}

// PlanCheckout applies the vouchers (ApplyVouchers) and then the deposits
// (SplitCheckout): the card pays Split.Card, and Split.Refund of the
// deposits goes back. Nothing is decided twice: the flow journals this
// plan and carries it out.
func PlanCheckout(programs []VoucherProgram, c VoucherCheckout, used VoucherUsed, deposits []Refundable) (CheckoutPlan, error) {
	v, err := ApplyVouchers(programs, c, used)
	if err != nil {
		return CheckoutPlan{}, err
	}
	s, err := SplitCheckout(c.Bill, v.Applied, deposits)
	if err != nil {
		return CheckoutPlan{}, err
	}
	return CheckoutPlan{Vouchers: v, Split: s}, nil
}

// ValidateVoucherPrograms validates each program and refuses two programs
// with the same id. Problems are joined, each prefixed "[i] (ID): ".
func ValidateVoucherPrograms(programs []VoucherProgram) error {
	var errs []error
	ids := map[string]int{}
	for i, p := range programs {
		if err := p.Validate(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, Errorf(EInvalid, "invalid_voucher_program", "[%d] (%s): %s", i, p.ID, ErrorMessage(e)))
			}
		}
		if j, dup := ids[p.ID]; dup && p.ID != "" {
			errs = append(errs, Errorf(EInvalid, "invalid_voucher_program", "[%d] (%s): id is also used by [%d]", i, p.ID, j))
		}
		ids[p.ID] = i
	}
	return errors.Join(errs...)
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return slices.Clone(j.Unwrap())
	}
	return []error{err}
}
