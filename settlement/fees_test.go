package settlement_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

func rate(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestDefaultFees(t *testing.T) {
	want := map[sterad.Brand]string{
		sterad.BrandVisa: "2.58", sterad.BrandMastercard: "2.58", sterad.BrandUnionPay: "2.9",
		sterad.BrandJCB: "2.48", sterad.BrandAmex: "3.25", sterad.BrandDiners: "3.25",
	}
	fees := settlement.DefaultFees()
	for _, b := range sterad.Brands {
		r, ok := fees.Rate(b)
		if !ok || r.String() != want[b] {
			t.Errorf("%s: %v %v, want %s", b, r, ok, want[b])
		}
	}
	if _, ok := fees.Rate(sterad.BrandUnknown); ok {
		t.Error("unknown has a default rate")
	}
}

func TestParseFeeTable(t *testing.T) {
	fees, err := settlement.ParseFeeTable(map[string]string{
		"Visa": "2.58", "mastercard": "2.58%", " jcb ": "2.480", "UNKNOWN": "3.5", "amex": "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[sterad.Brand]string{
		sterad.BrandVisa: "2.58", sterad.BrandMastercard: "2.58", sterad.BrandJCB: "2.48",
		sterad.BrandUnknown: "3.5", sterad.BrandAmex: "0",
	}
	if len(fees) != len(want) {
		t.Errorf("got %d brands, want %d", len(fees), len(want))
	}
	for b, w := range want {
		if r, ok := fees.Rate(b); !ok || r.String() != w {
			t.Errorf("%s: %v %v, want %s", b, r, ok, w)
		}
	}
	merged := settlement.DefaultFees().With(fees)
	if r, _ := merged.Rate(sterad.BrandDiners); r.String() != "3.25" {
		t.Errorf("With kept diners at %v", r)
	}
	if r, _ := merged.Rate(sterad.BrandAmex); !r.IsZero() {
		t.Errorf("With: amex %v, want the configured 0", r)
	}

	bad := []struct {
		name string
		m    map[string]string
		code string
		says []string
	}{
		{"unknown brand", map[string]string{"visa": "2.58", "discover": "3"}, settlement.CodeUnknownBrand, []string{`"discover"`}},
		{"not a number", map[string]string{"visa": "abc"}, settlement.CodeInvalidRate, []string{"visa", `"abc"`}},
		{"comma", map[string]string{"jcb": "2,48"}, settlement.CodeInvalidRate, []string{"jcb", `"2,48"`}},
		{"empty", map[string]string{"amex": ""}, settlement.CodeInvalidRate, []string{"amex"}},
		{"negative", map[string]string{"visa": "-1"}, settlement.CodeInvalidRate, []string{"visa", `"-1"`}},
		{"over 100", map[string]string{"visa": "101"}, settlement.CodeInvalidRate, []string{"visa", "between 0 and 100"}},
		{"fraction", map[string]string{"visa": "0.0258"}, "", nil}, // a valid (tiny) percentage
		{"twice", map[string]string{"Visa": "2.58", "visa": "2.60"}, settlement.CodeDuplicateBrand, []string{"visa"}},
	}
	for _, tt := range bad {
		_, err := settlement.ParseFeeTable(tt.m)
		if tt.code == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if sterad.ErrorCode(err) != tt.code || sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%s: err = %v, want code %s", tt.name, err, tt.code)
			continue
		}
		for _, s := range tt.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not name %s", tt.name, err, s)
			}
		}
	}
}

func TestFee(t *testing.T) {
	tests := []struct {
		net  int64
		rate string
		want int64
	}{
		{1000, "2.58", 25},   // 25.8 → 25: rounded down
		{3000, "2.58", 77},   // 77.4
		{10000, "2.58", 258}, // exact
		{999, "2.90", 28},    // 28.971 → 28
		{12345, "3.25", 401}, // 401.2125
		{38760, "2.48", 961}, // 961.248
		{1, "2.58", 0},       // under a yen
		{0, "2.58", 0},       //
		{-1000, "2.58", -25}, // refunds exceed sales: toward zero, -Fee(1000)
		{-3000, "2.58", -77}, //
		{100000, "0", 0},     //
		{9_999_999, "100", 9_999_999},
		{9_000_000_000_000_000, "2.58", 232_200_000_000_000}, // the product does not overflow
	}
	for _, tt := range tests {
		if got := settlement.Fee(tt.net, rate(tt.rate)); got != tt.want {
			t.Errorf("Fee(%d, %s) = %d, want %d", tt.net, tt.rate, got, tt.want)
		}
		if got := settlement.Fee(-tt.net, rate(tt.rate)); got != -tt.want {
			t.Errorf("Fee(%d, %s) = %d, want %d (symmetric)", -tt.net, tt.rate, got, -tt.want)
		}
	}
}

// TestFeeRoundingPerLine shows the rounding decision on a concrete day:
// per report line (business day × brand) on the net, not per
// transaction.
func TestFeeRoundingPerLine(t *testing.T) {
	jst := time.FixedZone("JST", 9*60*60)
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation(time.DateTime, s, jst)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	visa := rate("2.58")
	// Three ¥1,000 Visa sales and a ¥1,280 Visa sale on 2025-06-02, and a
	// ¥1,280 refund of the last one on 2025-06-03.
	txns := []*sterad.Transaction{
		txn(sterad.OpSale, sterad.BrandVisa, 1000, at("2025-06-02 09:00:00")),
		txn(sterad.OpSale, sterad.BrandVisa, 1000, at("2025-06-02 12:00:00")),
		txn(sterad.OpSale, sterad.BrandVisa, 1000, at("2025-06-02 18:00:00")),
		txn(sterad.OpSale, sterad.BrandVisa, 1280, at("2025-06-02 20:00:00")),
		txn(sterad.OpRefund, sterad.BrandVisa, 1280, at("2025-06-03 10:00:00")),
	}
	// Per transaction, each slip's fee rounded down: 25+25+25+33 − 33 = 75.
	perTxn := int64(0)
	for _, tx := range txns {
		f := settlement.Fee(tx.Amount.Minor(), visa)
		if tx.Op.Credit() {
			f = -f
		}
		perTxn += f
	}
	if perTxn != 75 {
		t.Fatalf("per-transaction fees = %d, want 75", perTxn)
	}

	// Per line: 2025-06-02 visa net 4,280 → 110.424 → 110; 2025-06-03 visa
	// net −1,280 → −33.024 → −33. Total 77, and the refund gives back
	// exactly the fee its sale would have cost alone (33).
	batch := &sterad.Batch{Number: 1, State: sterad.BatchClosed, Days: settlement.Summarize(txns, 2*time.Hour, jst)}
	r, err := settlement.Build([]*sterad.Batch{batch}, date(t, "2025-06-01"), date(t, "2025-06-30"), settlement.FeeTable{sterad.BrandVisa: visa}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Lines) != 2 || r.Lines[0].Fee != 110 || r.Lines[1].Fee != -33 || r.Total.Fee != 77 {
		t.Fatalf("per-line fees: %+v total %d, want 110 and -33, total 77", r.Lines, r.Total.Fee)
	}
	if r.Total.Paid != 3000-77 {
		t.Errorf("paid %d, want %d", r.Total.Paid, 3000-77)
	}
	// On the ¥3,000 of the three equal sales alone: 77 per line, 75 per slip.
	if got := settlement.Fee(3000, visa); got != 77 {
		t.Errorf("Fee(3000) = %d", got)
	}
}
