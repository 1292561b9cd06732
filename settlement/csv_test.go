package settlement_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

func TestWriteCSV(t *testing.T) {
	r, err := settlement.Build(reportBatches(t), date(t, "2025-10-15"), date(t, "2025-11-30"), settlement.DefaultFees(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	want := `business_day,brand,count,gross,refunds,net,fee_rate,fee,paid,payout_date
2025-10-15,visa,3,20000,5000,15000,2.58,387,14613,2025-10-31
2025-10-15,jcb,1,12800,0,12800,2.48,317,12483,2025-10-31
2025-10-16,visa,2,2000,0,2000,2.58,51,1949,2025-11-14
2025-10-16,amex,1,0,9999,-9999,3.25,-324,-9675,2025-11-14
2025-10-16,unknown,1,5000,0,5000,,0,5000,2025-11-14
2025-11-30,mastercard,1,43210,0,43210,2.58,1114,42096,2025-12-15
`
	if buf.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", buf.String(), want)
	}

	// Parsed back, the CSV gives the report's lines.
	lines, err := settlement.ParseCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != len(r.Lines) {
		t.Fatalf("%d lines back, want %d", len(lines), len(r.Lines))
	}
	for i, got := range lines {
		w := r.Lines[i]
		sameRate := got.FeeRate.Valid == w.FeeRate.Valid && got.FeeRate.Decimal.Equal(w.FeeRate.Decimal)
		got.FeeRate = w.FeeRate // compared above, by value
		if !sameRate || got != w {
			t.Errorf("line %d back: %+v, want %+v", i, lines[i], r.Lines[i])
		}
	}
}

func TestWriteCSVEmpty(t *testing.T) {
	r, err := settlement.Build(nil, date(t, "2025-01-01"), date(t, "2025-01-31"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines, err := settlement.ParseCSV(&buf)
	if err != nil || len(lines) != 0 {
		t.Errorf("empty report back: %v, %v", lines, err)
	}
}

// TestCSVYear writes and reads back a whole year's report.
func TestCSVYear(t *testing.T) {
	txns := yearOfTransactions(20_000, 2026, 3)
	days := settlement.Summarize(txns, settlement.DefaultCutoff, jst)
	r, err := settlement.Build([]*sterad.Batch{{Number: 1, State: sterad.BatchClosed, Days: days}}, date(t, "2026-01-01"), date(t, "2026-12-31"), settlement.DefaultFees(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines, err := settlement.ParseCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var net, fee int64
	for _, l := range lines {
		net += l.Net
		fee += l.Fee
	}
	if len(lines) != len(r.Lines) || net != r.Total.Net || fee != r.Total.Fee {
		t.Errorf("back: %d lines, net %d, fee %d; want %d, %d, %d", len(lines), net, fee, len(r.Lines), r.Total.Net, r.Total.Fee)
	}
}

func TestParseCSVErrors(t *testing.T) {
	const header = "business_day,brand,count,gross,refunds,net,fee_rate,fee,paid,payout_date\n"
	tests := []struct {
		name, csv, want string
	}{
		{"empty", "", "empty input"},
		{"header", "day,brand\n", "line 1"},
		{"wrong header", strings.Replace(header, "gross", "sales", 1), "line 1: header"},
		{"short row", header + "2025-10-15,visa,3\n", "line 2"},
		{"bad day", header + "2025-13-15,visa,1,100,0,100,2.58,2,98,2025-10-31\n", `line 2: business_day "2025-13-15"`},
		{"bad brand", header + "2025-10-15,discover,1,100,0,100,2.58,2,98,2025-10-31\n", `line 2: brand "discover"`},
		{"bad amount", header + "2025-10-15,visa,1,1.000,0,100,2.58,2,98,2025-10-31\n", `line 2: gross "1.000"`},
		{"bad rate", header + "2025-10-15,visa,1,100,0,100,2.58%,2,98,2025-10-31\n", `line 2: fee_rate "2.58%"`},
		{"bad payout", header + "2025-10-15,visa,1,100,0,100,2.58,2,98,\n", `line 2: payout_date ""`},
		{"net", header + "2025-10-15,visa,1,100,10,100,2.58,2,98,2025-10-31\n", "line 2: net 100 is not gross 100 − refunds 10"},
		{"paid", header + "2025-10-15,visa,1,100,0,100,2.58,2,99,2025-10-31\n", "line 2: paid 99"},
		{"third line", header + "2025-10-15,visa,1,100,0,100,2.58,2,98,2025-10-31\n2025-10-15,jcb,x,100,0,100,2.48,2,98,2025-10-31\n", `line 3: count "x"`},
	}
	for _, tt := range tests {
		_, err := settlement.ParseCSV(strings.NewReader(tt.csv))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}
