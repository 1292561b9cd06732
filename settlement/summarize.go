package settlement

import (
	"slices"
	"strconv"
	"time"

	"github.com/sterad/sterad"
)

// DefaultCutoff is the usual settlement cut-off: the night audit closes
// the hotel's day at 02:00.
const DefaultCutoff = 2 * time.Hour

// ParseCutoff parses a settlement cut-off, a local time of day "HH:MM"
// (00:00–23:59; "2:00" is accepted too), into the offset from midnight.
// Anything else is an EInvalid *sterad.Error with code CodeInvalidCutoff.
func ParseCutoff(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, sterad.Errorf(sterad.EInvalid, CodeInvalidCutoff,
			"settlement cut-off %q is not a time of day: write it as HH:MM, 00:00 to 23:59 (e.g. \"02:00\")", s)
	}
	hh, mm, ok := cutString(s, ':')
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 {
		return bad()
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || hh[0] == '+' || hh[0] == '-' || mm[0] == '+' || mm[0] == '-' {
		return bad()
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

func cutString(s string, sep byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// BusinessDay returns the hotel's business day of t: the date in loc of
// the wall-clock time of t minus the cut-off. With a 02:00 cut-off, 01:30
// on the 6th belongs to the 5th and 02:00 on the 6th to the 6th. The
// cut-off is applied to the local wall clock, so a daylight-saving change
// (none in Japan) cannot move a sale across days. A nil loc means UTC.
func BusinessDay(t time.Time, cutoff time.Duration, loc *time.Location) sterad.Date {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	h, mi, s := lt.Clock()
	wall := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second + time.Duration(lt.Nanosecond())
	const day = 24 * time.Hour
	off := wall - cutoff
	days := int(off / day) // floor division: off may be negative
	if off%day < 0 {
		days--
	}
	if days == 0 {
		return sterad.Date{Year: y, Month: m, Day: d}
	}
	return sterad.DateOf(time.Date(y, m, d+days, 12, 0, 0, 0, time.UTC))
}

// brandIndex is a brand's position in report order: sterad.Brands, then
// BrandUnknown (which is also where any other value goes).
func brandIndex(b sterad.Brand) int {
	switch b {
	case sterad.BrandVisa:
		return 0
	case sterad.BrandMastercard:
		return 1
	case sterad.BrandJCB:
		return 2
	case sterad.BrandAmex:
		return 3
	case sterad.BrandDiners:
		return 4
	case sterad.BrandUnionPay:
		return 5
	}
	return 6
}

// brandOrder is the report order of brands, indexed by brandIndex.
var brandOrder = [...]sterad.Brand{
	sterad.BrandVisa, sterad.BrandMastercard, sterad.BrandJCB, sterad.BrandAmex,
	sterad.BrandDiners, sterad.BrandUnionPay, sterad.BrandUnknown,
}

func init() {
	// brandOrder must follow sterad.Brands, with BrandUnknown last.
	if !slices.Equal(brandOrder[:len(brandOrder)-1], sterad.Brands) {
		panic("settlement: brandOrder does not match sterad.Brands")
	}
}

// dayKey identifies a (business day, brand) cell.
type dayKey struct {
	day   sterad.Date
	brand uint8
}

// Summarize adds up the transactions that count in the reconciliation
// totals (t.Counted(): approved sales, completions and no-show charges as
// debits, approved refunds as credits) by business day of CreatedAt (see
// BusinessDay) and brand, in minor units. The result is sorted by day,
// then brand in sterad.Brands order with BrandUnknown last; a transaction
// with no brand, or one sterad does not know, counts as BrandUnknown.
// Transactions that do not count are skipped; nil entries are too. This is
// what a batch close stores in Batch.Days.
func Summarize(txns []*sterad.Transaction, cutoff time.Duration, loc *time.Location) []sterad.DayTotals {
	if loc == nil {
		loc = time.UTC
	}
	index := make(map[dayKey]int, 64)
	var out []sterad.DayTotals
	// Transactions arrive mostly in time order: remember the last cell so
	// that most of them skip the map.
	var (
		lastKey dayKey
		lastIdx = -1
	)
	for _, t := range txns {
		if t == nil || !t.Counted() {
			continue
		}
		day := BusinessDay(t.CreatedAt, cutoff, loc)
		k := dayKey{day: day, brand: uint8(brandIndex(t.Brand))}
		i := lastIdx
		if i < 0 || k != lastKey {
			var ok bool
			i, ok = index[k]
			if !ok {
				i = len(out)
				index[k] = i
				out = append(out, sterad.DayTotals{Day: day, Brand: brandOrder[k.brand]})
			}
			lastKey, lastIdx = k, i
		}
		amount := minor(t.Amount)
		c := &out[i]
		if t.Op.Credit() {
			c.CreditCount++
			c.CreditAmount += amount
		} else {
			c.DebitCount++
			c.DebitAmount += amount
		}
	}
	slices.SortFunc(out, compareDayTotals)
	return out
}

func compareDayTotals(a, b sterad.DayTotals) int {
	if c := a.Day.Compare(b.Day); c != 0 {
		return c
	}
	return brandIndex(a.Brand) - brandIndex(b.Brand)
}

// minor returns a in minor units without allocating for the usual case
// (JPY, an integer value).
func minor(a sterad.Amount) int64 {
	if a.Currency.Exponent == 0 {
		return a.Value.IntPart()
	}
	return a.Minor()
}
