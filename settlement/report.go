package settlement

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// Line is one row of the settlement report: one business day and card
// brand. Amounts are in minor units (yen).
type Line struct {
	Day        sterad.Date         `json:"business_day"`
	Brand      sterad.Brand        `json:"brand"`
	Count      int64               `json:"count"`    // debits + credits
	Gross      int64               `json:"gross"`    // sales, completions and no-show charges
	Refunds    int64               `json:"refunds"`  // refunds, as a positive amount
	Net        int64               `json:"net"`      // Gross − Refunds
	FeeRate    decimal.NullDecimal `json:"fee_rate"` // percent; null when the fee table has no rate for the brand
	Fee        int64               `json:"fee"`      // Fee(Net, FeeRate); 0 without a rate
	Paid       int64               `json:"paid"`     // Net − Fee
	PayoutDate sterad.Date         `json:"payout_date"`
}

// Totals add up report lines: per brand (Brand set) or overall (Brand
// empty). Fee and Paid are the sums of the lines' fees and payouts, not a
// fee computed again on the total, so every column adds up.
type Totals struct {
	Brand   sterad.Brand `json:"brand,omitempty"`
	Count   int64        `json:"count"`
	Gross   int64        `json:"gross"`
	Refunds int64        `json:"refunds"`
	Net     int64        `json:"net"`
	Fee     int64        `json:"fee"`
	Paid    int64        `json:"paid"`
}

func (t *Totals) add(l *Line) {
	t.Count += l.Count
	t.Gross += l.Gross
	t.Refunds += l.Refunds
	t.Net += l.Net
	t.Fee += l.Fee
	t.Paid += l.Paid
}

// Payout is what the acquirer pays on one payout date for the report's
// lines (the sum of their Paid).
type Payout struct {
	Date sterad.Date `json:"payout_date"`
	Paid int64       `json:"paid"`
}

// Report is the settlement report over the business days From–To
// (inclusive): one line per business day and brand with counted
// transactions, in day then brand order; totals per brand (report order) and overall; the
// amount paid per payout date; the closed batches it drew from.
type Report struct {
	From     sterad.Date `json:"from"`
	To       sterad.Date `json:"to"`
	Currency string      `json:"currency"`
	Lines    []Line      `json:"lines"`
	Brands   []Totals    `json:"brands"`
	Total    Totals      `json:"total"`
	Payouts  []Payout    `json:"payouts"`
	Batches  []int       `json:"batches"`            // numbers of the closed batches with days in the range
	Warnings []string    `json:"warnings,omitempty"` // e.g. brands without a fee rate
}

// ParseRange parses a report range given as two YYYY-MM-DD dates. A
// missing or invalid date (CodeInvalidDate) or a from after to
// (CodeInvalidRange) is an EInvalid *sterad.Error that says which.
func ParseRange(from, to string) (sterad.Date, sterad.Date, error) {
	parse := func(name, s string) (sterad.Date, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			return sterad.Date{}, sterad.Errorf(sterad.EInvalid, CodeInvalidDate, "the report's %s date is missing (YYYY-MM-DD)", name)
		}
		d, err := sterad.ParseDate(s)
		if err != nil {
			return sterad.Date{}, sterad.Errorf(sterad.EInvalid, CodeInvalidDate, "the report's %s date %q is not a valid YYYY-MM-DD date", name, s)
		}
		return d, nil
	}
	f, err := parse("from", from)
	if err != nil {
		return sterad.Date{}, sterad.Date{}, err
	}
	t, err := parse("to", to)
	if err != nil {
		return sterad.Date{}, sterad.Date{}, err
	}
	if err := checkRange(f, t); err != nil {
		return sterad.Date{}, sterad.Date{}, err
	}
	return f, t, nil
}

func checkRange(from, to sterad.Date) error {
	for _, d := range []struct {
		name string
		d    sterad.Date
	}{{"from", from}, {"to", to}} {
		if !valid(d.d) {
			return sterad.Errorf(sterad.EInvalid, CodeInvalidDate, "the report's %s date is missing or not a date", d.name)
		}
	}
	if from.After(to) {
		return sterad.Errorf(sterad.EInvalid, CodeInvalidRange, "the report range is reversed: from %s is after to %s", from, to)
	}
	return nil
}

// Build makes the settlement report for the business days from–to
// (inclusive) out of the DayTotals of the batches in state closed (other
// batches are skipped: their totals are not final). Totals of the same
// day and brand from several batches (a business day that two batch
// closes cut through) are added up before the fee is computed, so the
// fee does not depend on when batches closed. Each line's fee is
// Fee(net, rate) with the brand's rate from fees; a brand without a rate
// gets a null rate, a zero fee and a warning. Each line's payout date is
// cal.PayoutDate of its day; a payout date in a year cal does not cover is
// an error (CodeNotCovered), as is a reversed or invalid range. A nil cal
// means DefaultCalendar().
func Build(batches []*sterad.Batch, from, to sterad.Date, fees FeeTable, cal *Calendar) (*Report, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	if cal == nil {
		cal = DefaultCalendar()
	}
	index := map[dayKey]int{}
	var cells []sterad.DayTotals
	var used []int
	for _, b := range batches {
		if b == nil || b.State != sterad.BatchClosed {
			continue
		}
		contributed := false
		for _, d := range b.Days {
			if d.Day.Before(from) || d.Day.After(to) {
				continue
			}
			contributed = true
			k := dayKey{day: d.Day, brand: uint8(brandIndex(d.Brand))}
			i, ok := index[k]
			if !ok {
				i = len(cells)
				index[k] = i
				cells = append(cells, sterad.DayTotals{Day: d.Day, Brand: brandOrder[k.brand]})
			}
			c := &cells[i]
			c.DebitCount += d.DebitCount
			c.DebitAmount += d.DebitAmount
			c.CreditCount += d.CreditCount
			c.CreditAmount += d.CreditAmount
		}
		if contributed {
			used = append(used, b.Number)
		}
	}
	slices.SortFunc(cells, compareDayTotals)

	r := &Report{From: from, To: to, Currency: sterad.JPY.Code, Lines: make([]Line, 0, len(cells)), Batches: used}
	if r.Batches == nil {
		r.Batches = []int{}
	}
	var brandTotals [len(brandOrder)]Totals
	var present [len(brandOrder)]bool
	var noRate [len(brandOrder)]bool
	payouts := map[sterad.Date]int64{}
	// Lines of one half-month share a payout date: compute it once per
	// day.
	var lastDay, lastPayout sterad.Date
	for _, c := range cells {
		l := Line{
			Day:     c.Day,
			Brand:   c.Brand,
			Count:   c.DebitCount + c.CreditCount,
			Gross:   c.DebitAmount,
			Refunds: c.CreditAmount,
			Net:     c.DebitAmount - c.CreditAmount,
		}
		bi := brandIndex(c.Brand)
		if rate, ok := fees.Rate(c.Brand); ok {
			l.FeeRate = decimal.NewNullDecimal(rate)
			l.Fee = Fee(l.Net, rate)
		} else {
			noRate[bi] = true
		}
		l.Paid = l.Net - l.Fee
		if c.Day != lastDay || lastPayout.IsZero() {
			p, err := cal.PayoutDate(c.Day)
			if err != nil {
				return nil, fmt.Errorf("payout date of business day %s: %w", c.Day, err)
			}
			lastDay, lastPayout = c.Day, p
		}
		l.PayoutDate = lastPayout
		r.Lines = append(r.Lines, l)
		brandTotals[bi].add(&l)
		present[bi] = true
		r.Total.add(&l)
		payouts[l.PayoutDate] += l.Paid
	}
	r.Brands = []Totals{}
	for i, b := range brandOrder {
		if present[i] {
			t := brandTotals[i]
			t.Brand = b
			r.Brands = append(r.Brands, t)
		}
		if noRate[i] {
			r.Warnings = append(r.Warnings, fmt.Sprintf("no fee rate for brand %s: its lines show no rate and no fee", b))
		}
	}
	r.Payouts = make([]Payout, 0, len(payouts))
	for d, paid := range payouts {
		r.Payouts = append(r.Payouts, Payout{Date: d, Paid: paid})
	}
	slices.SortFunc(r.Payouts, func(a, b Payout) int { return a.Date.Compare(b.Date) })
	return r, nil
}
