package settlement_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

var jst = time.FixedZone("JST", 9*60*60)

var txnSeq int

// txn returns an approved transaction of op, brand and yen at time at.
func txn(op sterad.Op, brand sterad.Brand, yen int64, at time.Time) *sterad.Transaction {
	txnSeq++
	return &sterad.Transaction{
		ID:        fmt.Sprintf("t%06d", txnSeq),
		Op:        op,
		Status:    sterad.StatusApproved,
		Step:      sterad.StepDone,
		Amount:    sterad.AmountFromMinor(yen, sterad.JPY),
		Currency:  "JPY",
		Brand:     brand,
		CreatedAt: at,
		UpdatedAt: at,
	}
}

func with(t *sterad.Transaction, status sterad.Status) *sterad.Transaction {
	t.Status = status
	return t
}

func jstTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation(time.DateTime, s, jst)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestParseCutoff(t *testing.T) {
	good := map[string]time.Duration{
		"02:00": 2 * time.Hour,
		"2:00":  2 * time.Hour,
		"00:00": 0,
		"23:59": 23*time.Hour + 59*time.Minute,
		"04:30": 4*time.Hour + 30*time.Minute,
	}
	for s, want := range good {
		got, err := settlement.ParseCutoff(s)
		if err != nil || got != want {
			t.Errorf("ParseCutoff(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2", "24:00", "02:60", "ab:cd", "02:00:00", "-1:00", "+2:00", " 02:00", "2h", "02:0", "002:00", "02:+5"} {
		_, err := settlement.ParseCutoff(s)
		if sterad.ErrorCode(err) != settlement.CodeInvalidCutoff || sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("ParseCutoff(%q): err = %v, want %s", s, err, settlement.CodeInvalidCutoff)
		}
	}
}

func TestBusinessDay(t *testing.T) {
	tests := []struct {
		at     time.Time
		cutoff time.Duration
		loc    *time.Location
		want   string
	}{
		{jstTime(t, "2025-04-06 01:30:00"), 2 * time.Hour, jst, "2025-04-05"},
		{jstTime(t, "2025-04-06 01:59:59"), 2 * time.Hour, jst, "2025-04-05"},
		{jstTime(t, "2025-04-06 02:00:00"), 2 * time.Hour, jst, "2025-04-06"},
		{jstTime(t, "2025-04-06 23:59:59"), 2 * time.Hour, jst, "2025-04-06"},
		{jstTime(t, "2025-04-06 00:00:00"), 0, jst, "2025-04-06"},
		{jstTime(t, "2025-03-01 01:00:00"), 2 * time.Hour, jst, "2025-02-28"}, // month end
		{jstTime(t, "2028-03-01 01:00:00"), 2 * time.Hour, jst, "2028-02-29"}, // leap day
		{jstTime(t, "2026-01-01 01:00:00"), 2 * time.Hour, jst, "2025-12-31"}, // year end
		{jstTime(t, "2025-04-06 23:00:00"), 23*time.Hour + 59*time.Minute, jst, "2025-04-05"},
		// The same instant in UTC is converted to the hotel's zone first.
		{time.Date(2025, 4, 5, 16, 30, 0, 0, time.UTC), 2 * time.Hour, jst, "2025-04-05"}, // 01:30 JST on the 6th
		{time.Date(2025, 4, 5, 17, 0, 0, 0, time.UTC), 2 * time.Hour, jst, "2025-04-06"},  // 02:00 JST
		{time.Date(2025, 4, 5, 17, 0, 0, 0, time.UTC), 2 * time.Hour, nil, "2025-04-05"},  // nil: UTC
	}
	for _, tt := range tests {
		if got := settlement.BusinessDay(tt.at, tt.cutoff, tt.loc); got.String() != tt.want {
			t.Errorf("BusinessDay(%s, %v) = %s, want %s", tt.at, tt.cutoff, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	at := func(s string) time.Time { return jstTime(t, s) }
	preauth := txn(sterad.OpPreauth, sterad.BrandVisa, 50000, at("2025-04-05 15:00:00"))
	txns := []*sterad.Transaction{
		txn(sterad.OpSale, sterad.BrandVisa, 10000, at("2025-04-05 10:00:00")),
		txn(sterad.OpSale, sterad.BrandVisa, 5000, at("2025-04-06 01:30:00")), // night audit: the 5th
		txn(sterad.OpSale, sterad.BrandVisa, 7000, at("2025-04-06 02:00:00")), // the 6th
		txn(sterad.OpRefund, sterad.BrandVisa, 3000, at("2025-04-06 12:00:00")),
		txn(sterad.OpCompletion, sterad.BrandMastercard, 43210, at("2025-04-05 11:00:00")),
		txn(sterad.OpNoShow, sterad.BrandJCB, 12800, at("2025-04-05 23:00:00")),
		txn(sterad.OpSale, "", 1000, at("2025-04-05 12:00:00")),                     // no brand: unknown
		txn(sterad.OpSale, "discover", 2000, at("2025-04-05 13:00:00")),             // not a sterad brand
		txn(sterad.OpRefund, sterad.BrandUnionPay, 4000, at("2025-04-05 14:00:00")), // refund only
		txn(sterad.OpSale, sterad.BrandAmex, 9000, at("2025-04-06 03:00:00")),
		// Not counted.
		with(txn(sterad.OpSale, sterad.BrandVisa, 111, at("2025-04-05 10:00:00")), sterad.StatusDeclined),
		with(txn(sterad.OpSale, sterad.BrandVisa, 222, at("2025-04-05 10:00:00")), sterad.StatusVoided),
		with(txn(sterad.OpSale, sterad.BrandVisa, 333, at("2025-04-05 10:00:00")), sterad.StatusReversed),
		with(txn(sterad.OpSale, sterad.BrandVisa, 444, at("2025-04-05 10:00:00")), sterad.StatusStoodIn),
		with(txn(sterad.OpRefund, sterad.BrandVisa, 555, at("2025-04-05 10:00:00")), sterad.StatusPending),
		with(txn(sterad.OpSale, sterad.BrandVisa, 666, at("2025-04-05 10:00:00")), sterad.StatusUnknown),
		preauth,
		txn(sterad.OpIncremental, sterad.BrandVisa, 10000, at("2025-04-05 16:00:00")),
		txn(sterad.OpCardCheck, sterad.BrandVisa, 0, at("2025-04-05 17:00:00")),
		nil,
	}
	got := settlement.Summarize(txns, 2*time.Hour, jst)
	d5, d6 := date(t, "2025-04-05"), date(t, "2025-04-06")
	want := []sterad.DayTotals{
		{Day: d5, Brand: sterad.BrandVisa, DebitCount: 2, DebitAmount: 15000},
		{Day: d5, Brand: sterad.BrandMastercard, DebitCount: 1, DebitAmount: 43210},
		{Day: d5, Brand: sterad.BrandJCB, DebitCount: 1, DebitAmount: 12800},
		{Day: d5, Brand: sterad.BrandUnionPay, CreditCount: 1, CreditAmount: 4000},
		{Day: d5, Brand: sterad.BrandUnknown, DebitCount: 2, DebitAmount: 3000},
		{Day: d6, Brand: sterad.BrandVisa, DebitCount: 1, DebitAmount: 7000, CreditCount: 1, CreditAmount: 3000},
		{Day: d6, Brand: sterad.BrandAmex, DebitCount: 1, DebitAmount: 9000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Summarize:\n got %+v\nwant %+v", got, want)
	}
	// Order of input does not matter.
	rev := make([]*sterad.Transaction, len(txns))
	for i, tx := range txns {
		rev[len(txns)-1-i] = tx
	}
	if got := settlement.Summarize(rev, 2*time.Hour, jst); !reflect.DeepEqual(got, want) {
		t.Errorf("Summarize(reversed) = %+v", got)
	}
	if got := settlement.Summarize(nil, 2*time.Hour, jst); len(got) != 0 {
		t.Errorf("Summarize(nil) = %+v", got)
	}
}

func TestSummarizeAllocations(t *testing.T) {
	txns := yearOfTransactions(10_000, 2025, 7)
	allocs := testing.AllocsPerRun(10, func() { settlement.Summarize(txns, 2*time.Hour, jst) })
	// A map and the result slice, grown a few times: never per transaction.
	if allocs > 60 {
		t.Errorf("Summarize of 10,000 transactions allocates %v times", allocs)
	}
}
