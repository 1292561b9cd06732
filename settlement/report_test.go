package settlement_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

func dt(t testing.TB, day string, brand sterad.Brand, dc, da, cc, ca int64) sterad.DayTotals {
	return sterad.DayTotals{Day: date(t, day), Brand: brand, DebitCount: dc, DebitAmount: da, CreditCount: cc, CreditAmount: ca}
}

// reportBatches are four batches of October–November 2025: two closed
// ones cutting through 2025-10-16 (whose parts must be added before the
// fee), a closing one and an open one that must not count.
func reportBatches(t testing.TB) []*sterad.Batch {
	return []*sterad.Batch{
		{Number: 7, State: sterad.BatchClosed, Days: []sterad.DayTotals{
			dt(t, "2025-10-14", sterad.BrandVisa, 3, 3000, 0, 0), // outside the range
			dt(t, "2025-10-15", sterad.BrandVisa, 2, 20000, 1, 5000),
			dt(t, "2025-10-15", sterad.BrandJCB, 1, 12800, 0, 0),
			dt(t, "2025-10-16", sterad.BrandVisa, 1, 1000, 0, 0),
		}},
		{Number: 8, State: sterad.BatchClosed, Days: []sterad.DayTotals{
			dt(t, "2025-10-16", sterad.BrandVisa, 1, 1000, 0, 0), // the rest of the 16th
			dt(t, "2025-10-16", sterad.BrandUnknown, 1, 5000, 0, 0),
			dt(t, "2025-10-16", sterad.BrandAmex, 0, 0, 1, 9999),
			dt(t, "2025-11-30", sterad.BrandMastercard, 1, 43210, 0, 0),
		}},
		{Number: 9, State: sterad.BatchClosing, Days: []sterad.DayTotals{
			dt(t, "2025-11-30", sterad.BrandMastercard, 1, 99999, 0, 0),
		}},
		{Number: 10, State: sterad.BatchOpen},
	}
}

func TestBuild(t *testing.T) {
	r, err := settlement.Build(reportBatches(t), date(t, "2025-10-15"), date(t, "2025-11-30"), settlement.DefaultFees(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		day        string
		brand      sterad.Brand
		count      int64
		gross, ref int64
		net        int64
		rate       string // "" = none
		fee, paid  int64
		payout     string
	}
	want := []row{
		// 15,000 × 2.58 % = 387 exactly; paid on Friday Oct 31.
		{"2025-10-15", sterad.BrandVisa, 3, 20000, 5000, 15000, "2.58", 387, 14613, "2025-10-31"},
		{"2025-10-15", sterad.BrandJCB, 1, 12800, 0, 12800, "2.48", 317, 12483, "2025-10-31"},
		// Two batches' parts: 2,000 × 2.58 % = 51.6 → 51 (not 25 + 25).
		{"2025-10-16", sterad.BrandVisa, 2, 2000, 0, 2000, "2.58", 51, 1949, "2025-11-14"},
		// A refund alone: −9,999 × 3.25 % = −324.9675 → −324.
		{"2025-10-16", sterad.BrandAmex, 1, 0, 9999, -9999, "3.25", -324, -9675, "2025-11-14"},
		{"2025-10-16", sterad.BrandUnknown, 1, 5000, 0, 5000, "", 0, 5000, "2025-11-14"},
		{"2025-11-30", sterad.BrandMastercard, 1, 43210, 0, 43210, "2.58", 1114, 42096, "2025-12-15"},
	}
	if len(r.Lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(r.Lines), len(want), r.Lines)
	}
	for i, w := range want {
		l := r.Lines[i]
		rate := ""
		if l.FeeRate.Valid {
			rate = l.FeeRate.Decimal.String()
		}
		got := row{l.Day.String(), l.Brand, l.Count, l.Gross, l.Refunds, l.Net, rate, l.Fee, l.Paid, l.PayoutDate.String()}
		if got != w {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	wantBrands := []settlement.Totals{
		{Brand: sterad.BrandVisa, Count: 5, Gross: 22000, Refunds: 5000, Net: 17000, Fee: 438, Paid: 16562},
		{Brand: sterad.BrandMastercard, Count: 1, Gross: 43210, Net: 43210, Fee: 1114, Paid: 42096},
		{Brand: sterad.BrandJCB, Count: 1, Gross: 12800, Net: 12800, Fee: 317, Paid: 12483},
		{Brand: sterad.BrandAmex, Count: 1, Refunds: 9999, Net: -9999, Fee: -324, Paid: -9675},
		{Brand: sterad.BrandUnknown, Count: 1, Gross: 5000, Net: 5000, Paid: 5000},
	}
	if !reflect.DeepEqual(r.Brands, wantBrands) {
		t.Errorf("brands:\n got %+v\nwant %+v", r.Brands, wantBrands)
	}
	wantTotal := settlement.Totals{Count: 9, Gross: 83010, Refunds: 14999, Net: 68011, Fee: 1545, Paid: 66466}
	if r.Total != wantTotal {
		t.Errorf("total %+v, want %+v", r.Total, wantTotal)
	}
	wantPayouts := []settlement.Payout{
		{Date: date(t, "2025-10-31"), Paid: 14613 + 12483},
		{Date: date(t, "2025-11-14"), Paid: 1949 - 9675 + 5000},
		{Date: date(t, "2025-12-15"), Paid: 42096},
	}
	if !reflect.DeepEqual(r.Payouts, wantPayouts) {
		t.Errorf("payouts %+v, want %+v", r.Payouts, wantPayouts)
	}
	if !reflect.DeepEqual(r.Batches, []int{7, 8}) {
		t.Errorf("batches %v, want [7 8]", r.Batches)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "unknown") {
		t.Errorf("warnings %q, want one about brand unknown", r.Warnings)
	}

	// A rate for unknown cards removes the warning.
	fees := settlement.DefaultFees().With(settlement.FeeTable{sterad.BrandUnknown: rate("3.00")})
	r2, err := settlement.Build(reportBatches(t), date(t, "2025-10-16"), date(t, "2025-10-16"), fees, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Warnings) != 0 || r2.Lines[2].Brand != sterad.BrandUnknown || r2.Lines[2].Fee != 150 {
		t.Errorf("with a rate for unknown: %+v %q", r2.Lines, r2.Warnings)
	}
}

func TestBuildEmpty(t *testing.T) {
	r, err := settlement.Build(nil, date(t, "2025-01-01"), date(t, "2025-01-31"), settlement.DefaultFees(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"from":"2025-01-01","to":"2025-01-31","currency":"JPY","lines":[],"brands":[],"total":{"count":0,"gross":0,"refunds":0,"net":0,"fee":0,"paid":0},"payouts":[],"batches":[]}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
}

func TestReportJSON(t *testing.T) {
	r, err := settlement.Build(reportBatches(t), date(t, "2025-10-16"), date(t, "2025-10-16"), settlement.DefaultFees(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r.Lines[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"business_day":"2025-10-16","brand":"visa","count":2,"gross":2000,"refunds":0,"net":2000,"fee_rate":"2.58","fee":51,"paid":1949,"payout_date":"2025-11-14"}`
	if string(b) != want {
		t.Errorf("line JSON:\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(r.Lines[2])
	if !strings.Contains(string(b), `"brand":"unknown"`) || !strings.Contains(string(b), `"fee_rate":null`) {
		t.Errorf("unknown line JSON %s: want brand unknown and a null rate", b)
	}
	var back settlement.Report
	b, _ = json.Marshal(r)
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Total != r.Total || len(back.Lines) != len(r.Lines) || back.Lines[1].PayoutDate != r.Lines[1].PayoutDate {
		t.Errorf("JSON round trip: %+v", back)
	}
}

func TestBuildErrors(t *testing.T) {
	batches := []*sterad.Batch{{Number: 1, State: sterad.BatchClosed, Days: []sterad.DayTotals{
		dt(t, "2028-12-15", sterad.BrandVisa, 1, 1000, 0, 0),
		dt(t, "2028-12-20", sterad.BrandVisa, 1, 1000, 0, 0),
	}}}
	tests := []struct {
		name     string
		from, to sterad.Date
		code     string
	}{
		{"reversed", date(t, "2025-02-01"), date(t, "2025-01-31"), settlement.CodeInvalidRange},
		{"zero from", sterad.Date{}, date(t, "2025-01-31"), settlement.CodeInvalidDate},
		{"impossible to", date(t, "2025-02-01"), sterad.Date{Year: 2025, Month: 2, Day: 29}, settlement.CodeInvalidDate},
		{"payout in 2029", date(t, "2028-12-01"), date(t, "2028-12-31"), settlement.CodeNotCovered},
	}
	for _, tt := range tests {
		_, err := settlement.Build(batches, tt.from, tt.to, settlement.DefaultFees(), nil)
		if sterad.ErrorCode(err) != tt.code || sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%s: err = %v, want %s", tt.name, err, tt.code)
		}
	}
	// The first half of December 2028 is paid in 2028: fine.
	if _, err := settlement.Build(batches, date(t, "2028-12-01"), date(t, "2028-12-15"), settlement.DefaultFees(), nil); err != nil {
		t.Errorf("2028-12-01..15: %v", err)
	}
}

func TestParseRange(t *testing.T) {
	from, to, err := settlement.ParseRange("2025-04-01", " 2025-04-30 ")
	if err != nil || from.String() != "2025-04-01" || to.String() != "2025-04-30" {
		t.Errorf("ParseRange = %s, %s, %v", from, to, err)
	}
	if _, _, err := settlement.ParseRange("2025-04-01", "2025-04-01"); err != nil {
		t.Errorf("one-day range: %v", err)
	}
	tests := []struct {
		from, to, code string
		says           []string
	}{
		{"2025-05-01", "2025-04-30", settlement.CodeInvalidRange, []string{"reversed", "2025-05-01", "2025-04-30"}},
		{"2025-13-01", "2025-04-30", settlement.CodeInvalidDate, []string{"from", `"2025-13-01"`}},
		{"2025-04-01", "2025-02-29", settlement.CodeInvalidDate, []string{"to", `"2025-02-29"`}},
		{"", "2025-04-30", settlement.CodeInvalidDate, []string{"from", "missing"}},
		{"2025-04-01", "", settlement.CodeInvalidDate, []string{"to", "missing"}},
		{"yesterday", "2025-04-30", settlement.CodeInvalidDate, []string{`"yesterday"`}},
		{"2025/04/01", "2025-04-30", settlement.CodeInvalidDate, []string{`"2025/04/01"`}},
	}
	for _, tt := range tests {
		_, _, err := settlement.ParseRange(tt.from, tt.to)
		if sterad.ErrorCode(err) != tt.code || sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("ParseRange(%q, %q): err = %v, want %s", tt.from, tt.to, err, tt.code)
			continue
		}
		for _, s := range tt.says {
			if !strings.Contains(sterad.ErrorMessage(err), s) {
				t.Errorf("ParseRange(%q, %q): %q does not say %s", tt.from, tt.to, err, s)
			}
		}
	}
}

// TestMonthTotalsAddUp is the property: the sum of a month's
// report equals the sum of its closed batches. Random transactions of
// 2026-03-20..05-10 go into batches that close every day at 03:00 JST (an
// hour after the 02:00 cut-off, so every batch holds parts of two business
// days and the batches of Mar 31/Apr 1 straddle the month end); the last
// batch is still open.
func TestMonthTotalsAddUp(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		start := jstTime(t, "2026-03-20 00:00:00")
		end := jstTime(t, "2026-05-10 00:00:00")
		var txns []*sterad.Transaction
		for at := start; at.Before(end); at = at.Add(time.Duration(1+rng.IntN(40)) * time.Minute) {
			brands := append([]sterad.Brand{sterad.BrandUnknown}, sterad.Brands...)
			op := []sterad.Op{sterad.OpSale, sterad.OpCompletion, sterad.OpNoShow, sterad.OpRefund, sterad.OpPreauth}[rng.IntN(5)]
			tx := txn(op, brands[rng.IntN(len(brands))], int64(1+rng.IntN(50_000)), at)
			if rng.IntN(20) == 0 {
				tx.Status = sterad.StatusVoided
			}
			txns = append(txns, tx)
		}
		// Batches closing at 03:00 every day.
		var batches []*sterad.Batch
		var cur []*sterad.Transaction
		closeAt := jstTime(t, "2026-03-20 03:00:00")
		flush := func(state string) {
			batches = append(batches, &sterad.Batch{Number: len(batches) + 1, State: state, Days: settlement.Summarize(cur, 2*time.Hour, jst)})
			cur = nil
		}
		for _, tx := range txns {
			for !tx.CreatedAt.Before(closeAt) {
				flush(sterad.BatchClosed)
				closeAt = closeAt.Add(24 * time.Hour)
			}
			cur = append(cur, tx)
		}
		flush(sterad.BatchOpen) // 2026-05-09 03:00 onwards: not closed yet

		// An independent oracle: net per business day straight from the
		// transactions of closed batches.
		open := map[*sterad.Transaction]bool{}
		for _, tx := range txns {
			if !tx.CreatedAt.Before(closeAt.Add(-24 * time.Hour)) {
				open[tx] = true
			}
		}
		for _, month := range []struct{ from, to string }{
			{"2026-03-01", "2026-03-31"}, {"2026-04-01", "2026-04-30"}, {"2026-05-01", "2026-05-31"},
		} {
			from, to := date(t, month.from), date(t, month.to)
			r, err := settlement.Build(batches, from, to, settlement.DefaultFees(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var lines, batchSum, oracle, count, oracleCount int64
			for _, l := range r.Lines {
				lines += l.Net
				count += l.Count
			}
			for _, b := range batches {
				if b.State != sterad.BatchClosed {
					continue
				}
				for _, d := range b.Days {
					if !d.Day.Before(from) && !d.Day.After(to) {
						batchSum += d.DebitAmount - d.CreditAmount
					}
				}
			}
			for _, tx := range txns {
				day := settlement.BusinessDay(tx.CreatedAt, 2*time.Hour, jst)
				if open[tx] || !tx.Counted() || day.Before(from) || day.After(to) {
					continue
				}
				oracleCount++
				if tx.Op.Credit() {
					oracle -= tx.Amount.Minor()
				} else {
					oracle += tx.Amount.Minor()
				}
			}
			if lines != batchSum || lines != oracle || r.Total.Net != lines || count != oracleCount {
				t.Errorf("seed %d %s: lines %d, batches %d, transactions %d, total %d; count %d vs %d",
					seed, month.from[:7], lines, batchSum, oracle, r.Total.Net, count, oracleCount)
			}
			// Every column adds up.
			var brands, paid settlement.Totals
			for _, b := range r.Brands {
				brands.Count += b.Count
				brands.Gross += b.Gross
				brands.Refunds += b.Refunds
				brands.Net += b.Net
				brands.Fee += b.Fee
				brands.Paid += b.Paid
			}
			for _, p := range r.Payouts {
				paid.Paid += p.Paid
			}
			if brands != r.Total || paid.Paid != r.Total.Paid || r.Total.Paid != r.Total.Net-r.Total.Fee || r.Total.Net != r.Total.Gross-r.Total.Refunds {
				t.Errorf("seed %d %s: brands %+v, payouts %d, total %+v", seed, month.from[:7], brands, paid.Paid, r.Total)
			}
		}
	}
}
