package settlement

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// CSVHeader is the header row of the report's CSV form.
var CSVHeader = []string{"business_day", "brand", "count", "gross", "refunds", "net", "fee_rate", "fee", "paid", "payout_date"}

// WriteCSV writes the report's lines as CSV: the CSVHeader row, then one
// row per line with amounts as plain integers in yen (no separators, a
// minus sign for a negative net), the fee rate in percent ("2.58",
// "2.9"; empty when the brand has none) and dates as YYYY-MM-DD. Totals
// are not written: they are the columns' sums.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	rec := make([]string, len(CSVHeader))
	for i := range r.Lines {
		l := &r.Lines[i]
		rate := ""
		if l.FeeRate.Valid {
			rate = l.FeeRate.Decimal.String()
		}
		rec[0] = l.Day.String()
		rec[1] = string(l.Brand)
		rec[2] = strconv.FormatInt(l.Count, 10)
		rec[3] = strconv.FormatInt(l.Gross, 10)
		rec[4] = strconv.FormatInt(l.Refunds, 10)
		rec[5] = strconv.FormatInt(l.Net, 10)
		rec[6] = rate
		rec[7] = strconv.FormatInt(l.Fee, 10)
		rec[8] = strconv.FormatInt(l.Paid, 10)
		rec[9] = l.PayoutDate.String()
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ParseCSV reads the lines back from WriteCSV's output. It checks the
// header, every field, and that each row adds up (net = gross − refunds,
// paid = net − fee); an error names the CSV line.
func ParseCSV(r io.Reader) ([]Line, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(CSVHeader)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("settlement csv: empty input, want a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("settlement csv: %w", err)
	}
	if !slices.Equal(header, CSVHeader) {
		return nil, fmt.Errorf("settlement csv: line 1: header is %q, want %q", header, CSVHeader)
	}
	lines := []Line{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if err != nil {
			return nil, fmt.Errorf("settlement csv: %w", err)
		}
		n, _ := cr.FieldPos(0)
		l, err := parseCSVLine(rec)
		if err != nil {
			return nil, fmt.Errorf("settlement csv: line %d: %w", n, err)
		}
		lines = append(lines, l)
	}
}

func parseCSVLine(rec []string) (Line, error) {
	var l Line
	var err error
	if l.Day, err = sterad.ParseDate(rec[0]); err != nil {
		return l, fmt.Errorf("business_day %q is not a YYYY-MM-DD date", rec[0])
	}
	l.Brand = sterad.Brand(rec[1])
	if brandOrder[brandIndex(l.Brand)] != l.Brand {
		return l, fmt.Errorf("brand %q is not a card brand", rec[1])
	}
	ints := []struct {
		name string
		dst  *int64
		s    string
	}{{"count", &l.Count, rec[2]}, {"gross", &l.Gross, rec[3]}, {"refunds", &l.Refunds, rec[4]}, {"net", &l.Net, rec[5]}, {"fee", &l.Fee, rec[7]}, {"paid", &l.Paid, rec[8]}}
	for _, f := range ints {
		if *f.dst, err = strconv.ParseInt(f.s, 10, 64); err != nil {
			return l, fmt.Errorf("%s %q is not an integer amount", f.name, f.s)
		}
	}
	if rec[6] != "" {
		rate, err := decimal.NewFromString(rec[6])
		if err != nil || !percentSyntax.MatchString(rec[6]) {
			return l, fmt.Errorf("fee_rate %q is not a percentage", rec[6])
		}
		l.FeeRate = decimal.NewNullDecimal(rate)
	}
	if l.PayoutDate, err = sterad.ParseDate(rec[9]); err != nil {
		return l, fmt.Errorf("payout_date %q is not a YYYY-MM-DD date", rec[9])
	}
	if l.Net != l.Gross-l.Refunds {
		return l, fmt.Errorf("net %d is not gross %d − refunds %d", l.Net, l.Gross, l.Refunds)
	}
	if l.Paid != l.Net-l.Fee {
		return l, fmt.Errorf("paid %d is not net %d − fee %d", l.Paid, l.Net, l.Fee)
	}
	return l, nil
}
