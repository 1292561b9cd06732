package sterad

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// VoucherLogEntry is one line of the voucher log: the program office's
// 様式第5号 (宿泊券番号控え書), one line per voucher accepted, with the stay
// date written on the voucher's back, the reservation, the guests and the
// nights. The log is what the monthly claim adds up and what keeps a
// voucher from paying twice.
type VoucherLogEntry struct {
	Number    string `json:"number"`  // canonical (NormalizeVoucherNumber)
	Program   string `json:"program"` // the program's id
	StayDate  Date   `json:"stay_date"`
	Nights    int    `json:"nights"` // the nights of the stay inside the program's dates
	Guests    int    `json:"guests"`
	Reference string `json:"reference"`
	Applied   Amount `json:"applied"`
	// UsedOn is the business day the voucher was accepted (the
	// check-out): its month is the claim month.
	UsedOn        Date   `json:"used_on"`
	CheckIn       Date   `json:"checkin"`
	CheckOut      Date   `json:"checkout"`
	HolderMatches bool   `json:"holder_matches"`
	HolderReason  string `json:"holder_reason,omitempty"`
	Transaction   string `json:"transaction,omitempty"` // the check-out's card transaction, when there is one
	// Version is the stored version this copy was read at (0: not
	// stored): see Change.PutVouchers.
	Version uint64 `json:"version,omitempty"`
}

// VoucherLog returns the log lines of the vouchers a check-out accepted
// (res from ApplyVouchers on c), accepted on the business day usedOn and
// paid with the card transaction txn ("" when the vouchers paid all).
// StayDate is the first night the voucher's program pays for (the stay
// date written on the voucher) and Nights the nights inside its dates.
func VoucherLog(programs []VoucherProgram, c VoucherCheckout, res VoucherResult, usedOn Date, txn string) []VoucherLogEntry {
	byID := map[string]VoucherProgram{}
	for _, p := range programs {
		byID[p.ID] = p
	}
	var out []VoucherLogEntry
	for _, v := range res.Vouchers {
		stayDate, nights := c.Stay.CheckIn, c.Stay.Nights()
		if p, ok := byID[v.Program]; ok {
			if valid := p.ValidNights(c.Stay); len(valid) > 0 {
				stayDate, nights = valid[0], len(valid)
			}
		}
		out = append(out, VoucherLogEntry{
			Number: v.Number, Program: v.Program, StayDate: stayDate, Nights: nights, Guests: c.Guests,
			Reference: c.Reference, Applied: v.Applied, UsedOn: usedOn, CheckIn: c.Stay.CheckIn, CheckOut: c.Stay.CheckOut,
			HolderMatches: v.HolderMatches, HolderReason: v.HolderReason, Transaction: txn,
		})
	}
	return out
}

// VoucherLogOf returns the log lines of month (by UsedOn), sorted by
// program, day and number.
func VoucherLogOf(log []VoucherLogEntry, month YearMonth) []VoucherLogEntry {
	var out []VoucherLogEntry
	for _, e := range log {
		if month.Contains(e.UsedOn) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b VoucherLogEntry) int {
		return cmp.Or(strings.Compare(a.Program, b.Program), a.UsedOn.Compare(b.UsedOn), strings.Compare(a.Number, b.Number))
	})
	return out
}

// VoucherClaim is one program's claim for a month: the vouchers accepted
// that month (closed at month end) and their total, with the day the
// claim documents (請求書, 利用実績報告書, 様式第5号 and the vouchers) are
// due at the program office.
type VoucherClaim struct {
	Program  string    `json:"program"`
	Name     string    `json:"name"`
	Month    YearMonth `json:"month"`
	Vouchers int       `json:"vouchers"`
	Total    Amount    `json:"total"`
	Due      Date      `json:"due"` // zero when the program is no longer configured
}

// VoucherClaims returns the month's claim per program, from the log lines
// whose UsedOn is in month, sorted by program. A program without a
// voucher that month has no claim.
func VoucherClaims(programs []VoucherProgram, log []VoucherLogEntry, month YearMonth) []VoucherClaim {
	byID := map[string]VoucherProgram{}
	for _, p := range programs {
		byID[p.ID] = p
	}
	claims := map[string]*VoucherClaim{}
	for _, e := range VoucherLogOf(log, month) {
		c := claims[e.Program]
		if c == nil {
			c = &VoucherClaim{Program: e.Program, Name: e.Program, Month: month, Total: zero(e.Applied.Currency)}
			if p, ok := byID[e.Program]; ok {
				c.Name, c.Due = p.Name, p.ClaimDue(month)
			}
			claims[e.Program] = c
		}
		c.Vouchers++
		c.Total = c.Total.Add(e.Applied)
	}
	out := make([]VoucherClaim, 0, len(claims))
	for _, c := range claims {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b VoucherClaim) int { return strings.Compare(a.Program, b.Program) })
	return out
}

// VoucherReport is the month's voucher log and claims.
type VoucherReport struct {
	Month  YearMonth         `json:"month"`
	Claims []VoucherClaim    `json:"claims"`
	Log    []VoucherLogEntry `json:"log"`
}

// NewVoucherReport returns the report of month from the whole log.
func NewVoucherReport(programs []VoucherProgram, log []VoucherLogEntry, month YearMonth) VoucherReport {
	return VoucherReport{Month: month, Claims: VoucherClaims(programs, log, month), Log: VoucherLogOf(log, month)}
}

// VoucherLogHeader is the header of the voucher log's CSV.
var VoucherLogHeader = []string{"number", "program", "stay_date", "nights", "guests", "reference", "applied",
	"used_on", "checkin", "checkout", "holder_matches", "holder_reason", "transaction"}

// VoucherClaimHeader is the header of the claim's CSV.
var VoucherClaimHeader = []string{"program", "name", "month", "vouchers", "total", "due"}

// WriteVoucherLogCSV writes the log as CSV (RFC 4180, UTF-8) with
// VoucherLogHeader. A cell that a spreadsheet would take for a formula
// (starting with =, +, -, @, a tab or a carriage return) is written with a
// leading apostrophe, which ReadVoucherLogCSV removes.
func WriteVoucherLogCSV(w io.Writer, log []VoucherLogEntry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(VoucherLogHeader); err != nil {
		return err
	}
	for _, e := range log {
		if err := cw.Write(csvCells(e.Number, e.Program, e.StayDate.String(), strconv.Itoa(e.Nights), strconv.Itoa(e.Guests),
			e.Reference, e.Applied.String(), e.UsedOn.String(), e.CheckIn.String(), e.CheckOut.String(),
			strconv.FormatBool(e.HolderMatches), e.HolderReason, e.Transaction)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadVoucherLogCSV parses what WriteVoucherLogCSV wrote; amounts are in
// cur.
func ReadVoucherLogCSV(r io.Reader, cur Currency) ([]VoucherLogEntry, error) {
	rows, err := readCSV(r, VoucherLogHeader)
	if err != nil {
		return nil, err
	}
	var out []VoucherLogEntry
	for i, c := range rows {
		p := csvParser{line: i + 2}
		e := VoucherLogEntry{Number: c[0], Program: c[1], StayDate: p.date(c[2]), Nights: p.int(c[3]), Guests: p.int(c[4]),
			Reference: c[5], Applied: p.amount(c[6], cur), UsedOn: p.date(c[7]), CheckIn: p.date(c[8]), CheckOut: p.date(c[9]),
			HolderMatches: p.bool(c[10]), HolderReason: c[11], Transaction: c[12]}
		if p.err != nil {
			return nil, p.err
		}
		out = append(out, e)
	}
	return out, nil
}

// WriteVoucherClaimCSV writes the claims as CSV with VoucherClaimHeader.
func WriteVoucherClaimCSV(w io.Writer, claims []VoucherClaim) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(VoucherClaimHeader); err != nil {
		return err
	}
	for _, c := range claims {
		if err := cw.Write(csvCells(c.Program, c.Name, c.Month.String(), strconv.Itoa(c.Vouchers), c.Total.String(), c.Due.String())); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadVoucherClaimCSV parses what WriteVoucherClaimCSV wrote; amounts are
// in cur.
func ReadVoucherClaimCSV(r io.Reader, cur Currency) ([]VoucherClaim, error) {
	rows, err := readCSV(r, VoucherClaimHeader)
	if err != nil {
		return nil, err
	}
	var out []VoucherClaim
	for i, c := range rows {
		p := csvParser{line: i + 2}
		m, err := ParseYearMonth(c[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %s", i+2, ErrorMessage(err))
		}
		cl := VoucherClaim{Program: c[0], Name: c[1], Month: m, Vouchers: p.int(c[3]), Total: p.amount(c[4], cur), Due: p.date(c[5])}
		if p.err != nil {
			return nil, p.err
		}
		out = append(out, cl)
	}
	return out, nil
}

func csvCells(cells ...string) []string {
	for i, c := range cells {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			cells[i] = "'" + c
		}
	}
	return cells
}

func readCSV(r io.Reader, header []string) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(header)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || !slices.Equal(rows[0], header) {
		return nil, errors.New("the CSV does not start with the header " + strings.Join(header, ","))
	}
	rows = rows[1:]
	for _, row := range rows {
		for i, c := range row {
			if len(c) > 1 && c[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(c[1])) {
				row[i] = c[1:]
			}
		}
	}
	return rows, nil
}

type csvParser struct {
	line int
	err  error
}

func (p *csvParser) fail(what, s string) {
	if p.err == nil {
		p.err = fmt.Errorf("line %d: %q is not %s", p.line, s, what)
	}
}

func (p *csvParser) date(s string) Date {
	if s == "" {
		return Date{}
	}
	d, err := ParseDate(s)
	if err != nil {
		p.fail("a date", s)
	}
	return d
}

func (p *csvParser) int(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		p.fail("a number", s)
	}
	return n
}

func (p *csvParser) bool(s string) bool {
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.fail("true or false", s)
	}
	return b
}

func (p *csvParser) amount(s string, cur Currency) Amount {
	a, err := ParseAmount(s, cur)
	if err != nil {
		p.fail("an amount", s)
	}
	return a
}
