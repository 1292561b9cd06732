package settlement

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// The years DefaultCalendar covers.
const (
	DefaultFirstYear = 2025
	DefaultLastYear  = 2028
)

// The years NationalHolidays accepts: the law as it stands has applied
// unchanged since 2022 (after the one-off moves of 2020 and 2021), and the
// equinox approximation is valid through 2099.
const (
	RulesFirstYear = 2022
	RulesLastYear  = 2099
)

// Holiday names as written in the calendar file: the legal Japanese name,
// then an English gloss.
const (
	NameSubstitute = "振替休日 (substitute holiday)"
	NameCitizens   = "国民の休日 (citizens' holiday)"
	NameBank       = "銀行休業日 (bank holiday)"
)

// Holiday is a day on which Japanese banks are closed, other than a
// Saturday or Sunday that is nothing else.
type Holiday struct {
	Date sterad.Date `json:"date"`
	Name string      `json:"name"`
}

// Calendar is a Japanese bank-holiday calendar for a set of covered years:
// the national holidays, substitute and citizens' holidays, and the bank
// holidays Dec 31, Jan 2 and Jan 3. Weekends are never business days.
// Asking about a date in a year the calendar does not cover is an error
// (code CodeNotCovered), never a guess. A Calendar is immutable and safe
// for concurrent use.
type Calendar struct {
	years    map[int]bool
	holidays map[sterad.Date]string
}

// DefaultCalendar returns the calendar generated from the holiday rules
// for DefaultFirstYear through DefaultLastYear. The result is shared and
// must not be modified (Calendar has no mutating methods).
func DefaultCalendar() *Calendar { return defaultCalendar() }

var defaultCalendar = sync.OnceValue(func() *Calendar {
	c := &Calendar{years: map[int]bool{}, holidays: map[sterad.Date]string{}}
	for y := DefaultFirstYear; y <= DefaultLastYear; y++ {
		hs, err := BankHolidays(y)
		if err != nil {
			panic(err) // the constants are inside the rules' years
		}
		c.years[y] = true
		for _, h := range hs {
			c.holidays[h.Date] = h.Name
		}
	}
	return c
})

// LoadCalendar reads an operator-provided calendar file (the format of
// WriteTo: one "YYYY-MM-DD name" per line, blank lines and lines starting
// with # ignored) and returns DefaultCalendar with the file's years
// replaced or added: every year the file lists at least one date of is
// taken entirely from the file (plus the fixed bank holidays Dec 31 and
// Jan 1–3, which the Banking Act's order fixes and which are added when
// the file omits them); the other default years stay. A malformed line is
// an error naming the file and the line.
func LoadCalendar(path string) (*Calendar, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("holiday calendar: %w", err)
	}
	defer f.Close()
	file, err := ReadCalendar(f)
	if err != nil {
		return nil, fmt.Errorf("holiday calendar %s: %w", path, err)
	}
	return DefaultCalendar().extend(file), nil
}

// ReadCalendar parses a calendar file (see LoadCalendar) on its own,
// without the default years: the years it covers are those it lists a
// date of.
func ReadCalendar(r io.Reader) (*Calendar, error) {
	c := &Calendar{years: map[int]bool{}, holidays: map[sterad.Date]string{}}
	seen := map[sterad.Date]int{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF") // a BOM left by a spreadsheet
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		field, name := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			field, name = line[:i], strings.TrimSpace(line[i+1:])
		}
		d, err := sterad.ParseDate(field)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not a valid YYYY-MM-DD date", n, field)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: %s has no name (want \"YYYY-MM-DD name\")", n, d)
		}
		if prev, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: %s is already listed on line %d", n, d, prev)
		}
		seen[d] = n
		c.years[d.Year] = true
		c.holidays[d] = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	if len(c.years) == 0 {
		return nil, fmt.Errorf("no holidays listed")
	}
	for y := range c.years {
		for _, d := range fixedBankDays(y) {
			if _, ok := c.holidays[d.Date]; !ok {
				c.holidays[d.Date] = d.Name
			}
		}
	}
	return c, nil
}

// extend returns c with other's years replacing or adding to c's.
func (c *Calendar) extend(other *Calendar) *Calendar {
	out := &Calendar{years: map[int]bool{}, holidays: map[sterad.Date]string{}}
	for y := range c.years {
		if !other.years[y] {
			out.years[y] = true
		}
	}
	for d, name := range c.holidays {
		if out.years[d.Year] {
			out.holidays[d] = name
		}
	}
	for y := range other.years {
		out.years[y] = true
	}
	for d, name := range other.holidays {
		out.holidays[d] = name
	}
	return out
}

// Years returns the covered years in order.
func (c *Calendar) Years() []int {
	ys := make([]int, 0, len(c.years))
	for y := range c.years {
		ys = append(ys, y)
	}
	slices.Sort(ys)
	return ys
}

// Covers reports whether the calendar covers year.
func (c *Calendar) Covers(year int) bool { return c.years[year] }

// Holidays returns the bank holidays of a covered year in date order, or
// nil when the year is not covered.
func (c *Calendar) Holidays(year int) []Holiday {
	if !c.years[year] {
		return nil
	}
	var hs []Holiday
	for d, name := range c.holidays {
		if d.Year == year {
			hs = append(hs, Holiday{Date: d, Name: name})
		}
	}
	slices.SortFunc(hs, func(a, b Holiday) int { return a.Date.Compare(b.Date) })
	return hs
}

// WriteTo writes the calendar in the file format LoadCalendar reads, with
// a header comment.
func (c *Calendar) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	years := c.Years()
	fmt.Fprintf(&b, "# Japanese bank holidays %s: the days banks are closed besides Saturdays and Sundays.\n", c.coverage())
	b.WriteString("# Generated from the rules of the 国民の祝日に関する法律 (national holidays, 振替休日, 国民の休日;\n")
	b.WriteString("# equinox days by the astronomical approximation valid 1980-2099) plus the bank holidays\n")
	b.WriteString("# Dec 31, Jan 2 and Jan 3. Format: one \"YYYY-MM-DD name\" per line; # starts a comment.\n")
	b.WriteString("# Regenerate: go test ./settlement/ -run TestCalendarFile -update\n")
	for _, y := range years {
		hs := c.Holidays(y)
		fmt.Fprintf(&b, "\n# %d: %d days\n", y, len(hs))
		for _, h := range hs {
			b.WriteString(h.Date.String())
			b.WriteByte(' ')
			b.WriteString(h.Name)
			b.WriteByte('\n')
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// coverage describes the covered years: "2025–2028", "2025–2028, 2030".
func (c *Calendar) coverage() string {
	years := c.Years()
	if len(years) == 0 {
		return "no years"
	}
	var parts []string
	for i := 0; i < len(years); {
		j := i
		for j+1 < len(years) && years[j+1] == years[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(years[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", years[i], years[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func (c *Calendar) check(d sterad.Date) error {
	if !valid(d) {
		return sterad.Errorf(sterad.EInvalid, CodeInvalidDate, "%04d-%02d-%02d is not a date", d.Year, int(d.Month), d.Day)
	}
	if !c.years[d.Year] {
		return sterad.Errorf(sterad.EInvalid, CodeNotCovered,
			"the bank-holiday calendar covers %s, not %d (asked about %s): load a calendar file that includes %d",
			c.coverage(), d.Year, d, d.Year)
	}
	return nil
}

// IsBusinessDay reports whether banks are open on d: a weekday that is
// not a holiday. It fails with CodeNotCovered when d's year is not
// covered.
func (c *Calendar) IsBusinessDay(d sterad.Date) (bool, error) {
	if err := c.check(d); err != nil {
		return false, err
	}
	return c.isBusinessDay(d), nil
}

func (c *Calendar) isBusinessDay(d sterad.Date) bool {
	switch d.Weekday() {
	case time.Saturday, time.Sunday:
		return false
	}
	_, holiday := c.holidays[d]
	return !holiday
}

// PreviousBusinessDay returns the last business day strictly before d. It
// fails with CodeNotCovered when the search reaches a year the calendar
// does not cover.
func (c *Calendar) PreviousBusinessDay(d sterad.Date) (sterad.Date, error) {
	if !valid(d) {
		return sterad.Date{}, c.check(d)
	}
	return c.onOrBefore(d.AddDays(-1))
}

// onOrBefore returns d when it is a business day, else the business day
// before it.
func (c *Calendar) onOrBefore(d sterad.Date) (sterad.Date, error) {
	for {
		if err := c.check(d); err != nil {
			return sterad.Date{}, err
		}
		if c.isBusinessDay(d) {
			return d, nil
		}
		d = d.AddDays(-1)
	}
}

// PayoutDate returns the day the sales of business day sale are paid out:
// sales of the 1st–15th on the last day of that month, sales of the 16th
// to the month's end on the 15th of the next month; a payout date that is
// not a business day moves to the previous business day. It fails with
// CodeNotCovered when the payout date falls in a year the calendar does
// not cover: a payout date is never computed from an unknown year.
func (c *Calendar) PayoutDate(sale sterad.Date) (sterad.Date, error) {
	if !valid(sale) {
		return sterad.Date{}, c.check(sale)
	}
	var p sterad.Date
	if sale.Day <= 15 {
		p = sterad.Date{Year: sale.Year, Month: sale.Month, Day: daysIn(sale.Year, sale.Month)}
	} else {
		p = sterad.DateOf(time.Date(sale.Year, sale.Month+1, 15, 0, 0, 0, 0, time.UTC))
	}
	return c.onOrBefore(p)
}

// valid reports whether d is a real date.
func valid(d sterad.Date) bool {
	return d.Month >= time.January && d.Month <= time.December && d.Day >= 1 && d.Day <= daysIn(d.Year, d.Month)
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// The national holidays' names.
const (
	nameNewYear      = "元日 (New Year's Day)"
	nameComingOfAge  = "成人の日 (Coming of Age Day)"
	nameFoundation   = "建国記念の日 (National Foundation Day)"
	nameEmperor      = "天皇誕生日 (Emperor's Birthday)"
	nameVernal       = "春分の日 (Vernal Equinox Day)"
	nameShowa        = "昭和の日 (Showa Day)"
	nameConstitution = "憲法記念日 (Constitution Memorial Day)"
	nameGreenery     = "みどりの日 (Greenery Day)"
	nameChildren     = "こどもの日 (Children's Day)"
	nameMarine       = "海の日 (Marine Day)"
	nameMountain     = "山の日 (Mountain Day)"
	nameAged         = "敬老の日 (Respect for the Aged Day)"
	nameAutumnal     = "秋分の日 (Autumnal Equinox Day)"
	nameSports       = "スポーツの日 (Sports Day)"
	nameCulture      = "文化の日 (Culture Day)"
	nameLabour       = "勤労感謝の日 (Labour Thanksgiving Day)"
)

// NationalHolidays returns the holidays of year under the
// 国民の祝日に関する法律 as it stands (articles 2 and 3): the named national
// holidays, 振替休日 and 国民の休日, in date order. Years outside
// RulesFirstYear to RulesLastYear are an error. For years whose equinox days the National
// Astronomical Observatory has not yet announced (it does so each
// February for the next year) the equinox days are the approximation's
// prediction.
func NationalHolidays(year int) ([]Holiday, error) {
	if year < RulesFirstYear || year > RulesLastYear {
		return nil, fmt.Errorf("national holidays: the rules are implemented for %d-%d, not %d", RulesFirstYear, RulesLastYear, year)
	}
	date := func(m time.Month, d int) sterad.Date { return sterad.Date{Year: year, Month: m, Day: d} }
	// nthMonday returns the n-th Monday of month m (ハッピーマンデー).
	nthMonday := func(m time.Month, n int) sterad.Date {
		first := date(m, 1).Weekday()
		d := 1 + (int(time.Monday)-int(first)+7)%7
		return date(m, d+7*(n-1))
	}
	n := year - 1980
	// 春分日 and 秋分日 (1980–2099): int(20.8431 + 0.242194n − int(n/4)) and
	// int(23.2488 + 0.242194n − int(n/4)), here in millionths so that
	// no floating point is involved.
	vernal := (20_843_100 + 242_194*n - 1_000_000*(n/4)) / 1_000_000
	autumnal := (23_248_800 + 242_194*n - 1_000_000*(n/4)) / 1_000_000

	named := map[sterad.Date]string{
		date(time.January, 1):          nameNewYear,
		nthMonday(time.January, 2):     nameComingOfAge,
		date(time.February, 11):        nameFoundation,
		date(time.February, 23):        nameEmperor,
		date(time.March, vernal):       nameVernal,
		date(time.April, 29):           nameShowa,
		date(time.May, 3):              nameConstitution,
		date(time.May, 4):              nameGreenery,
		date(time.May, 5):              nameChildren,
		nthMonday(time.July, 3):        nameMarine,
		date(time.August, 11):          nameMountain,
		nthMonday(time.September, 3):   nameAged,
		date(time.September, autumnal): nameAutumnal,
		nthMonday(time.October, 2):     nameSports,
		date(time.November, 3):         nameCulture,
		date(time.November, 23):        nameLabour,
	}
	all := make(map[sterad.Date]string, len(named)+4)
	for d, name := range named {
		all[d] = name
	}
	for d := range named {
		// Art. 3(2): a national holiday on a Sunday makes the nearest
		// following day that is not a national holiday a holiday.
		if d.Weekday() == time.Sunday {
			s := d.AddDays(1)
			for named[s] != "" {
				s = s.AddDays(1)
			}
			if all[s] == "" {
				all[s] = NameSubstitute
			}
		}
		// Art. 3(3): a day that is not a national holiday, between two
		// national holidays, is a holiday.
		if next := d.AddDays(2); named[next] != "" && named[d.AddDays(1)] == "" {
			if all[d.AddDays(1)] == "" {
				all[d.AddDays(1)] = NameCitizens
			}
		}
	}
	hs := make([]Holiday, 0, len(all))
	for d, name := range all {
		hs = append(hs, Holiday{Date: d, Name: name})
	}
	slices.SortFunc(hs, func(a, b Holiday) int { return a.Date.Compare(b.Date) })
	return hs, nil
}

// fixedBankDays are the days banks close besides national holidays and
// weekends (Banking Act Enforcement Order art. 5: Dec 31 to Jan 3).
func fixedBankDays(year int) []Holiday {
	return []Holiday{
		{Date: sterad.Date{Year: year, Month: time.January, Day: 1}, Name: nameNewYear},
		{Date: sterad.Date{Year: year, Month: time.January, Day: 2}, Name: NameBank},
		{Date: sterad.Date{Year: year, Month: time.January, Day: 3}, Name: NameBank},
		{Date: sterad.Date{Year: year, Month: time.December, Day: 31}, Name: NameBank},
	}
}

// BankHolidays returns NationalHolidays(year) plus the bank holidays
// Dec 31, Jan 2 and Jan 3 (a day that is both keeps its national
// holiday's name), in date order.
func BankHolidays(year int) ([]Holiday, error) {
	hs, err := NationalHolidays(year)
	if err != nil {
		return nil, err
	}
	for _, b := range fixedBankDays(year) {
		if !slices.ContainsFunc(hs, func(h Holiday) bool { return h.Date == b.Date }) {
			hs = append(hs, b)
		}
	}
	slices.SortFunc(hs, func(a, b Holiday) int { return a.Date.Compare(b.Date) })
	return hs, nil
}
