package settlement_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

// yearOfTransactions returns n transactions spread evenly over the 365
// days of year (JST), in time order as a batch holds them: brands drawn
// by a Japanese hotel's mix (Visa 40 %, JCB 25 %, Mastercard 20 %, Amex
// 7 %, UnionPay 5 %, Diners 2 %, unknown 1 %), about 5 % refunds, sales,
// completions and no-show charges of ¥1,000–¥300,000, and about 4 % that
// do not count (declined, voided, pre-authorizations, card checks).
func yearOfTransactions(n int, year int, seed uint64) []*sterad.Transaction {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	start := time.Date(year, time.January, 1, 2, 0, 0, 0, jst) // the first business day's cut-off
	span := 365 * 24 * time.Hour
	slab := make([]sterad.Transaction, n)
	txns := make([]*sterad.Transaction, n)
	for i := range slab {
		t := &slab[i]
		at := start.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		t.ID = fmt.Sprintf("t%07d", i)
		t.Status = sterad.StatusApproved
		t.Step = sterad.StepDone
		t.Currency = "JPY"
		t.CreatedAt, t.UpdatedAt = at, at
		t.Amount = sterad.AmountFromMinor(int64(100+rng.IntN(30_000))*10, sterad.JPY)
		switch b := rng.IntN(100); {
		case b < 40:
			t.Brand = sterad.BrandVisa
		case b < 65:
			t.Brand = sterad.BrandJCB
		case b < 85:
			t.Brand = sterad.BrandMastercard
		case b < 92:
			t.Brand = sterad.BrandAmex
		case b < 97:
			t.Brand = sterad.BrandUnionPay
		case b < 99:
			t.Brand = sterad.BrandDiners
		default:
			t.Brand = sterad.BrandUnknown
		}
		switch o := rng.IntN(100); {
		case o < 5:
			t.Op = sterad.OpRefund
		case o < 60:
			t.Op = sterad.OpSale
		case o < 92:
			t.Op = sterad.OpCompletion
		case o < 96:
			t.Op = sterad.OpNoShow
		case o < 97:
			t.Op, t.Status = sterad.OpSale, sterad.StatusDeclined
		case o < 98:
			t.Op, t.Status = sterad.OpSale, sterad.StatusVoided
		case o < 99:
			t.Op = sterad.OpPreauth
		default:
			t.Op = sterad.OpCardCheck
		}
		txns[i] = t
	}
	return txns
}

var (
	benchOnce    sync.Once
	benchTxns    []*sterad.Transaction
	benchBatches []*sterad.Batch
)

// benchData is a million transactions of 2025 and the 365 closed batches
// (one per business day, closed at the cut-off) that hold their totals.
func benchData(b *testing.B) ([]*sterad.Transaction, []*sterad.Batch) {
	b.Helper()
	benchOnce.Do(func() {
		benchTxns = yearOfTransactions(1_000_000, 2025, 1)
		days := settlement.Summarize(benchTxns, 2*time.Hour, jst)
		byDay := map[sterad.Date]*sterad.Batch{}
		for _, d := range days {
			bt := byDay[d.Day]
			if bt == nil {
				bt = &sterad.Batch{Number: len(benchBatches) + 1, State: sterad.BatchClosed}
				byDay[d.Day] = bt
				benchBatches = append(benchBatches, bt)
			}
			bt.Days = append(bt.Days, d)
		}
	})
	if len(benchBatches) != 365 {
		b.Fatalf("%d batches, want 365", len(benchBatches))
	}
	return benchTxns, benchBatches
}

// BenchmarkSummarize1M summarizes a year's 1,000,000 transactions into
// DayTotals at once: the work the year's batch closes do between them.
func BenchmarkSummarize1M(b *testing.B) {
	txns, _ := benchData(b)
	b.ReportAllocs()
	for b.Loop() {
		settlement.Summarize(txns, 2*time.Hour, jst)
	}
}

// BenchmarkSummarizeBatch10k summarizes one large batch at its close.
func BenchmarkSummarizeBatch10k(b *testing.B) {
	txns, _ := benchData(b)
	batch := txns[:10_000]
	b.ReportAllocs()
	for b.Loop() {
		settlement.Summarize(batch, 2*time.Hour, jst)
	}
}

// BenchmarkReportYear builds 2025's settlement report out of the 365
// closed batches holding the million transactions' totals.
func BenchmarkReportYear(b *testing.B) {
	_, batches := benchData(b)
	from, to := sterad.Date{Year: 2025, Month: 1, Day: 1}, sterad.Date{Year: 2025, Month: 12, Day: 31}
	fees, cal := settlement.DefaultFees(), settlement.DefaultCalendar()
	b.ReportAllocs()
	for b.Loop() {
		r, err := settlement.Build(batches, from, to, fees, cal)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Lines) != 365*7 {
			b.Fatalf("%d lines", len(r.Lines))
		}
	}
}

// BenchmarkSettlementYear1M is the goal end to end (under 2 s): a
// million transactions summarized into a year of batches and the year's
// report built from them.
func BenchmarkSettlementYear1M(b *testing.B) {
	txns, _ := benchData(b)
	from, to := sterad.Date{Year: 2025, Month: 1, Day: 1}, sterad.Date{Year: 2025, Month: 12, Day: 31}
	fees, cal := settlement.DefaultFees(), settlement.DefaultCalendar()
	b.ReportAllocs()
	for b.Loop() {
		days := settlement.Summarize(txns, 2*time.Hour, jst)
		batch := &sterad.Batch{Number: 1, State: sterad.BatchClosed, Days: days}
		if _, err := settlement.Build([]*sterad.Batch{batch}, from, to, fees, cal); err != nil {
			b.Fatal(err)
		}
	}
}
