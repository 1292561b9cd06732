package sterad_test

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/sterad/sterad"
)

func charge(id string, charged, refunded int64) sterad.Refundable {
	return sterad.Refundable{ID: id, Charged: yen(charged), Refunded: yen(refunded)}
}

func parts(ps []sterad.RefundPart) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("%s:%s ", p.Original, p.Amount)
	}
	return s
}

func TestSplitCheckout(t *testing.T) {
	tests := []struct {
		name                  string
		plan, other, tax      int64
		vouchers              int64
		deposits              []sterad.Refundable
		depositsApplied, card int64
		refund                int64
		refunds               string
	}{
		{"card pays all", 30000, 3000, 0, 0, nil, 0, 33000, 0, ""},
		{"deposit, card pays the rest", 30000, 3000, 0, 0, []sterad.Refundable{charge("D1", 10000, 0)}, 10000, 23000, 0, ""},
		{"deposit covers it exactly", 30000, 3000, 0, 0, []sterad.Refundable{charge("D1", 33000, 0)}, 33000, 0, 0, ""},
		{"deposit above the bill: the difference is refunded", 30000, 0, 0, 0, []sterad.Refundable{charge("D1", 40000, 0)}, 30000, 0, 10000, "D1:10000 "},
		{"vouchers then card (the FAQ)", 12800, 0, 0, 10000, nil, 0, 2800, 0, ""},
		{"vouchers, other charges and bathing tax by card", 12800, 3000, 150, 10000, nil, 0, 5950, 0, ""},
		{"vouchers and a deposit above the rest", 12800, 3000, 0, 10000, []sterad.Refundable{charge("D1", 20000, 0)}, 5800, 0, 14200, "D1:14200 "},
		{"two deposits, refunded in the order given", 10000, 0, 0, 0, []sterad.Refundable{charge("D1", 8000, 0), charge("D2", 5000, 0)}, 10000, 0, 3000, "D1:3000 "},
		{"a partly refunded deposit counts what is left", 10000, 0, 0, 0, []sterad.Refundable{charge("D1", 8000, 6000), charge("D2", 5000, 0)}, 7000, 3000, 0, ""},
		{"a refund larger than the first deposit", 1000, 0, 0, 0, []sterad.Refundable{charge("D1", 3000, 0), charge("D2", 5000, 0)}, 1000, 0, 7000, "D1:3000 D2:4000 "},
		{"nothing to pay", 0, 0, 0, 0, nil, 0, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sterad.SplitCheckout(sterad.Bill{RoomPlan: yen(tt.plan), Other: yen(tt.other), BathingTax: yen(tt.tax)}, yen(tt.vouchers), tt.deposits)
			if err != nil {
				t.Fatal(err)
			}
			if s.Deposits.Minor() != tt.depositsApplied || s.Card.Minor() != tt.card || s.Refund.Minor() != tt.refund || parts(s.Refunds) != tt.refunds {
				t.Errorf("deposits %s card %s refund %s (%s), want %d, %d, %d (%s)", s.Deposits, s.Card, s.Refund, parts(s.Refunds), tt.depositsApplied, tt.card, tt.refund, tt.refunds)
			}
			if s.Vouchers.Add(s.Deposits).Add(s.Card).Cmp(s.Total) != 0 {
				t.Errorf("vouchers %s + deposits %s + card %s ≠ total %s", s.Vouchers, s.Deposits, s.Card, s.Total)
			}
		})
	}

	for name, tt := range map[string]struct {
		bill     sterad.Bill
		vouchers int64
		code     string
	}{
		"vouchers above the room plan": {sterad.Bill{RoomPlan: yen(12800), Other: yen(5000)}, 15000, "voucher_exceeds_plan"},
		"a negative charge":            {sterad.Bill{RoomPlan: yen(12800), Other: yen(-500)}, 0, "invalid_amount"},
		"a fraction of a yen":          {sterad.Bill{RoomPlan: sterad.Amount{Value: pct("100.5"), Currency: sterad.JPY}}, 0, "invalid_amount"},
	} {
		if _, err := sterad.SplitCheckout(tt.bill, yen(tt.vouchers), nil); sterad.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", name, err, tt.code)
		}
	}
}

func TestSplitCancellation(t *testing.T) {
	tests := []struct {
		name               string
		fee                int64
		deposits           []sterad.Refundable
		kept, card, refund int64
		refunds            string
	}{
		{"no deposit: the fee is charged to the card", 3600, nil, 0, 3600, 0, ""},
		{"no deposit, no fee: nothing moves", 0, nil, 0, 0, 0, ""},
		{"a zero fee refunds everything (取消料 0 円 = 全額返金)", 0, []sterad.Refundable{charge("D1", 20000, 0)}, 0, 0, 20000, "D1:20000 "},
		{"a 100 % fee of a deposit paid in full: nothing back", 18000, []sterad.Refundable{charge("D1", 18000, 0)}, 18000, 0, 0, ""},
		{"the fee comes out of the deposit, the rest is refunded", 9000, []sterad.Refundable{charge("D1", 18000, 0)}, 9000, 0, 9000, "D1:9000 "},
		{"a fee above the deposit: only the excess is charged", 18000, []sterad.Refundable{charge("D1", 5000, 0)}, 5000, 13000, 0, ""},
		{"two deposits", 3000, []sterad.Refundable{charge("D1", 2000, 0), charge("D2", 4000, 0)}, 3000, 0, 3000, "D1:2000 D2:1000 "},
		{"a partly refunded deposit", 9000, []sterad.Refundable{charge("D1", 18000, 10000)}, 8000, 1000, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sterad.SplitCancellation(yen(tt.fee), tt.deposits)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kept.Minor() != tt.kept || s.Card.Minor() != tt.card || s.Refund.Minor() != tt.refund || parts(s.Refunds) != tt.refunds {
				t.Errorf("kept %s card %s refund %s (%s), want %d, %d, %d (%s)", s.Kept, s.Card, s.Refund, parts(s.Refunds), tt.kept, tt.card, tt.refund, tt.refunds)
			}
		})
	}
	if _, err := sterad.SplitCancellation(yen(-1), nil); sterad.ErrorCode(err) != "invalid_amount" {
		t.Errorf("a negative fee: %v", err)
	}
	if _, err := sterad.SplitCancellation(yen(100), []sterad.Refundable{charge("D1", 100, 200)}); sterad.ErrorKind(err) != sterad.EInternal {
		t.Errorf("a deposit refunded above its charge: %v", err)
	}
}

func TestAdjust(t *testing.T) {
	tests := []struct {
		name           string
		newTotal       int64
		charges        []sterad.Refundable
		paid           int64
		charge, refund int64
		refunds        string
	}{
		{"the total goes up: charge the difference", 35000, []sterad.Refundable{charge("S1", 30000, 0)}, 30000, 5000, 0, ""},
		{"the total goes down: refund the difference", 20000, []sterad.Refundable{charge("S1", 30000, 0)}, 30000, 0, 10000, "S1:10000 "},
		{"the same total: nothing moves", 30000, []sterad.Refundable{charge("S1", 30000, 0)}, 30000, 0, 0, ""},
		{"to zero: everything back", 0, []sterad.Refundable{charge("S1", 30000, 0)}, 30000, 0, 30000, "S1:30000 "},
		{"after a refund: charged minus refunded", 25000, []sterad.Refundable{charge("S1", 30000, 10000)}, 20000, 5000, 0, ""},
		{"after an earlier increase: the original first", 10000, []sterad.Refundable{charge("S1", 30000, 0), charge("S2", 5000, 0)}, 35000, 0, 25000, "S1:25000 "},
		{"to zero after an increase: both back", 0, []sterad.Refundable{charge("S1", 30000, 0), charge("S2", 5000, 0)}, 35000, 0, 35000, "S1:30000 S2:5000 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := sterad.Adjust(yen(tt.newTotal), tt.charges)
			if err != nil {
				t.Fatal(err)
			}
			if a.Paid.Minor() != tt.paid || a.Charge.Minor() != tt.charge || a.Refund.Minor() != tt.refund || parts(a.Refunds) != tt.refunds {
				t.Errorf("paid %s charge %s refund %s (%s), want %d, %d, %d (%s)", a.Paid, a.Charge, a.Refund, parts(a.Refunds), tt.paid, tt.charge, tt.refund, tt.refunds)
			}
		})
	}
	for name, tt := range map[string]struct {
		total   sterad.Amount
		charges []sterad.Refundable
		code    string
	}{
		"a negative total":    {yen(-1), []sterad.Refundable{charge("S1", 30000, 0)}, "negative_total"},
		"nothing charged":     {yen(100), nil, "nothing_charged"},
		"a fraction of a yen": {sterad.Amount{Value: pct("0.5"), Currency: sterad.JPY}, []sterad.Refundable{charge("S1", 30000, 0)}, "invalid_amount"},
	} {
		if _, err := sterad.Adjust(tt.total, tt.charges); sterad.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", name, err, tt.code)
		}
	}
}

func TestSplitRefundNeverAboveCharged(t *testing.T) {
	_, err := sterad.SplitRefund(yen(5001), []sterad.Refundable{charge("S1", 3000, 0), charge("S2", 3000, 1000)})
	if sterad.ErrorCode(err) != "exceeds_refundable" || sterad.ErrorKind(err) != sterad.EConflict {
		t.Fatalf("a refund above what is left: %v", err)
	}
	p, err := sterad.SplitRefund(yen(5000), []sterad.Refundable{charge("S1", 3000, 0), charge("S2", 3000, 1000)})
	if err != nil || parts(p) != "S1:3000 S2:2000 " {
		t.Fatalf("all that is left: %s %v", parts(p), err)
	}
}

func TestRefundableOf(t *testing.T) {
	sale := &sterad.Transaction{ID: "S1", Op: sterad.OpSale, Status: sterad.StatusApproved, Amount: yen(30000), Refunded: yen(1000)}
	r, ok := sterad.RefundableOf(sale)
	if !ok || r.Left().Minor() != 29000 {
		t.Fatalf("an approved sale: %+v %v", r, ok)
	}
	for _, t2 := range []*sterad.Transaction{
		{ID: "P1", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(30000)},
		{ID: "S2", Op: sterad.OpSale, Status: sterad.StatusDeclined, Amount: yen(30000)},
		{ID: "S3", Op: sterad.OpSale, Status: sterad.StatusVoided, Amount: yen(30000)},
		{ID: "R1", Op: sterad.OpRefund, Status: sterad.StatusApproved, Amount: yen(30000)},
	} {
		if _, ok := sterad.RefundableOf(t2); ok {
			t.Errorf("%s holds no money to refund", t2)
		}
	}
}

// Whatever the bill, vouchers, deposits, fee or new total: every yen is
// accounted for, nothing is negative, and no charge is refunded more than
// is left on it.
func TestMoneyIsConserved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := func(label string, max int64) sterad.Amount { return yen(rapid.Int64Range(0, max).Draw(t, label)) }
		var deposits []sterad.Refundable
		for i := range rapid.IntRange(0, 3).Draw(t, "deposits") {
			c := rapid.Int64Range(1, 50000).Draw(t, "charged")
			deposits = append(deposits, charge(fmt.Sprintf("D%d", i), c, rapid.Int64Range(0, c).Draw(t, "refunded")))
		}
		held := yen(0)
		for _, d := range deposits {
			held = held.Add(d.Left())
		}
		checkParts := func(what string, refund sterad.Amount, ps []sterad.RefundPart) {
			sum := yen(0)
			for _, p := range ps {
				var left sterad.Amount
				for _, d := range deposits {
					if d.ID == p.Original {
						left = d.Left()
					}
				}
				if !p.Amount.Value.IsPositive() || p.Amount.Cmp(left) > 0 {
					t.Fatalf("%s: refund part %s of %s, %s left on it", what, p.Amount, p.Original, left)
				}
				sum = sum.Add(p.Amount)
			}
			if sum.Cmp(refund) != 0 {
				t.Fatalf("%s: refund parts %s ≠ refund %s", what, sum, refund)
			}
		}

		bill := sterad.Bill{RoomPlan: gen("plan", 100000), Other: gen("other", 20000), BathingTax: gen("tax", 300)}
		vouchers := yen(rapid.Int64Range(0, bill.RoomPlan.Minor()).Draw(t, "vouchers"))
		s, err := sterad.SplitCheckout(bill, vouchers, deposits)
		if err != nil {
			t.Fatal(err)
		}
		if s.Card.Value.IsNegative() || s.Refund.Value.IsNegative() || s.Deposits.Value.IsNegative() {
			t.Fatalf("a negative part: %+v", s)
		}
		if s.Vouchers.Add(s.Deposits).Add(s.Card).Cmp(bill.Total()) != 0 || s.Deposits.Add(s.Refund).Cmp(held) != 0 {
			t.Fatalf("check-out does not add up: %+v, deposits held %s", s, held)
		}
		if !s.Card.IsZero() && !s.Refund.IsZero() {
			t.Fatalf("both a charge and a refund: %+v", s)
		}
		checkParts("check-out", s.Refund, s.Refunds)

		fee := gen("fee", 60000)
		c, err := sterad.SplitCancellation(fee, deposits)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kept.Add(c.Card).Cmp(fee) != 0 || c.Kept.Add(c.Refund).Cmp(held) != 0 || c.Card.Value.IsNegative() || c.Refund.Value.IsNegative() {
			t.Fatalf("cancellation does not add up: %+v, held %s", c, held)
		}
		checkParts("cancellation", c.Refund, c.Refunds)

		if len(deposits) > 0 {
			total := gen("new total", 150000)
			a, err := sterad.Adjust(total, deposits)
			if err != nil {
				t.Fatal(err)
			}
			if a.Paid.Add(a.Charge).Sub(a.Refund).Cmp(total) != 0 || a.Refund.Cmp(held) > 0 || (!a.Charge.IsZero() && !a.Refund.IsZero()) {
				t.Fatalf("adjustment does not add up: %+v", a)
			}
			checkParts("adjustment", a.Refund, a.Refunds)
		}
	})
}
