package gateway_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
)

// Reservation payments (issue 13): cancellation fees, deposits, amount
// changes, check-outs with vouchers, open holds. The harness clock is
// 2026-11-21 10:00 JST; the reservations arrive 2026-11-23.

func testPolicy() *sterad.CancellationPolicy {
	pct := decimal.NewFromInt
	return &sterad.CancellationPolicy{Version: "2026-04", Rows: []sterad.FeeRow{
		{DaysBefore: 7, Percent: pct(20), Of: sterad.FeeOfFirstNight},
		{DaysBefore: 1, Percent: pct(50), Of: sterad.FeeOfFirstNight},
		{DaysBefore: 0, Percent: pct(100), Of: sterad.FeeOfFirstNight},
	}, NoShow: &sterad.NoShowFee{Percent: pct(100), Of: sterad.FeeOfFirstNight}}
}

func oita() sterad.VoucherProgram {
	return sterad.VoucherProgram{ID: "OITA2016", Name: "おおいた宿泊券", FaceValue: sterad.NewAmount(5000, sterad.JPY), PerPersonNight: 4,
		MinPlanPerPersonNight: sterad.NewAmount(5000, sterad.JPY), ValidFrom: sterad.Date{Year: 2026, Month: 11, Day: 1},
		ValidTo: sterad.Date{Year: 2026, Month: 12, Day: 31}, DirectBookingsOnly: true, ClaimDay: 10, NumberPattern: "^[0-9]{10}$"}
}

func withReservationRules(c *gateway.Config) {
	c.CancellationPolicy = testPolicy()
	c.VoucherPrograms = []sterad.VoucherProgram{oita()}
}

func guaranteed(ref string) sterad.Request {
	return sterad.Request{Op: "cardcheck", PAN: "4111111111111111", Expiry: "2812", Reference: ref, CheckIn: "2026-11-23", CheckOut: "2026-11-24", FirstNight: "18000"}
}

func lastMsg(h *harness) *sterad.HostMessage {
	ms := h.host.messages()
	return ms[len(ms)-1]
}

func TestCancellationFeeByRecordedPolicy(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	ctx := context.Background()
	cc := h.mustSubmit(guaranteed("RSV-1"))
	r, err := h.gw.Reservation(ctx, "RSV-1")
	if err != nil || r.Policy == nil || r.Policy.Policy.Version != "2026-04" || r.Policy.FirstNight.String() != "18000" || !r.Policy.RecordedAt.Equal(cc.CreatedAt) {
		t.Fatalf("policy not recorded with the card check: %+v %v", r, err)
	}
	// Two days before arrival: the 7-day row, 20 % of ¥18,000.
	cx := h.mustSubmit(sterad.Request{Op: "cancellation", Reference: "RSV-1"})
	if cx.Status != sterad.StatusApproved || cx.Amount.String() != "3600" || cx.Fee.String() != "3600" || cx.PolicyVersion != "2026-04" || cx.PolicyRow != "7" {
		t.Fatalf("cancellation: %+v", cx)
	}
	m := lastMsg(h)
	if m.MTI != "0200" || m.Condition != "08" || m.MerchantInitiated != sterad.MICancelFee || m.Reference != "RSV-1" || m.Stay == nil ||
		m.Stay.CheckIn.String() != "2026-11-23" || m.Amount.String() != "3600" || m.PAN == "" || m.Entry.POSEntryMode() != "012" {
		t.Fatalf("0200 MI=CX: %+v", m)
	}
	r, _ = h.gw.Reservation(ctx, "RSV-1")
	if r.State != sterad.ReservationReleased || r.CardKept || r.Cancellation != cx.ID {
		t.Fatalf("reservation not released: %+v", r)
	}
	if v, _ := h.gw.Vault(ctx); len(v) != 0 {
		t.Fatalf("card still kept: %+v", v)
	}
	for _, tc := range []struct {
		name string
		req  sterad.Request
		code string
	}{
		{"again", sterad.Request{Op: "cancellation", Reference: "RSV-1"}, "already_cancelled"},
		{"unknown", sterad.Request{Op: "cancellation", Reference: "RSV-404"}, "unknown_reservation"},
		{"with an amount", sterad.Request{Op: "cancellation", Reference: "RSV-1", Amount: "100"}, "unexpected_amount"},
		{"no reference", sterad.Request{Op: "cancellation"}, "missing_reference"},
	} {
		if _, err := h.submit(tc.req); sterad.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// The batch counts the fee as a debit.
	b, _ := h.gw.OpenBatch(ctx)
	txns, _ := h.gw.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	tot := sterad.BatchTotals(txns, nil)
	if len(tot) != 1 || tot[0].Totals.DebitCount != 1 || tot[0].Totals.DebitAmount != 3600 {
		t.Fatalf("batch totals: %+v", tot)
	}
}

func TestCancellationZeroFeeChargesNothing(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	req := guaranteed("RSV-2")
	req.CheckIn, req.CheckOut = "2026-12-20", "2026-12-21" // far ahead: before the table
	h.mustSubmit(req)
	n := len(h.host.messages())
	cx := h.mustSubmit(sterad.Request{Op: "cancellation", Reference: "RSV-2"})
	if cx.Status != sterad.StatusApproved || !cx.Amount.IsZero() || !cx.Fee.IsZero() || cx.PolicyRow != "free" || cx.MTI != "" {
		t.Fatalf("zero fee: %+v", cx)
	}
	if len(h.host.messages()) != n {
		t.Fatal("a zero fee sent a message")
	}
	if cx.Counted() {
		t.Fatal("a zero fee counts in the batch")
	}
	if r, _ := h.gw.Reservation(context.Background(), "RSV-2"); r.State != sterad.ReservationReleased {
		t.Fatalf("not released: %+v", r)
	}
}

func TestCancellationTakesTheFeeFromTheDeposit(t *testing.T) {
	tests := []struct {
		name      string
		arrival   string
		deposit   string
		fee, card string
		refund    string
		ref       string
	}{
		{"fee below the deposit: the rest refunded", "2026-11-23", "10000", "3600", "0", "6400", "RSV-A"},
		{"fee above the deposit: the card pays the rest", "2026-11-21", "10000", "18000", "8000", "0", "RSV-B"},
		{"no fee: all of it back", "2026-12-20", "10000", "0", "0", "10000", "RSV-C"},
		{"fee equals the deposit: nothing moves", "2026-11-21", "18000", "18000", "0", "0", "RSV-D"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
			in, _ := sterad.ParseDate(tc.arrival)
			out := in.AddDays(1).String()
			g := guaranteed(tc.ref)
			g.CheckIn, g.CheckOut = tc.arrival, out
			h.mustSubmit(g)
			dep := h.mustSubmit(sterad.Request{Op: "deposit", Reference: tc.ref, Amount: tc.deposit, CheckIn: tc.arrival, CheckOut: out})
			m := lastMsg(h)
			if dep.Status != sterad.StatusApproved || m.MTI != "0200" || m.MerchantInitiated != sterad.MIDeposit || m.Condition != "08" || m.Reference != tc.ref {
				t.Fatalf("deposit: %+v / %+v", dep, m)
			}
			cx := h.mustSubmit(sterad.Request{Op: "cancellation", Reference: tc.ref})
			if cx.Fee.String() != tc.fee || cx.Amount.String() != tc.card || cx.Status != sterad.StatusApproved {
				t.Fatalf("cancellation: fee %s card %s %s, want %s %s", cx.Fee, cx.Amount, cx.Status, tc.fee, tc.card)
			}
			refunds, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{Original: dep.ID, Op: sterad.OpRefund})
			got := "0"
			if len(refunds) == 1 {
				rf, _ := h.gw.Wait(context.Background(), refunds[0].ID)
				if rf.Status != sterad.StatusApproved || rf.Original != dep.ID {
					t.Fatalf("refund: %+v", rf)
				}
				got = rf.Amount.String()
			} else if len(refunds) > 1 {
				t.Fatalf("%d refunds", len(refunds))
			}
			if got != tc.refund {
				t.Fatalf("refund %s, want %s", got, tc.refund)
			}
		})
	}
}

func TestAdjustChargesOrRefundsTheDifference(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sale := h.mustSubmit(keyedSale("4111111111111111", "10000"))
	up := h.mustSubmit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "12000"})
	if up.Op != sterad.OpSale || up.Original != sale.ID || up.Amount.String() != "2000" || up.Status != sterad.StatusApproved {
		t.Fatalf("adjust up: %+v", up)
	}
	down := h.mustSubmit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "9000"})
	if down.Op != sterad.OpRefund || down.Original != sale.ID || down.Amount.String() != "3000" || down.Status != sterad.StatusApproved {
		t.Fatalf("adjust down: %+v", down)
	}
	// To zero: 9000 paid: 7000 left on the sale, then the 2000 difference.
	zero := h.mustSubmit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "0"})
	if zero.Op != sterad.OpRefund || zero.Amount.String() != "7000" || len(zero.Linked) != 1 {
		t.Fatalf("adjust to zero: %+v", zero)
	}
	second, _ := h.gw.Wait(ctx, zero.Linked[0])
	if second.Original != up.ID || second.Amount.String() != "2000" || second.Status != sterad.StatusApproved {
		t.Fatalf("second refund: %+v", second)
	}
	for _, tc := range []struct {
		amount, code string
	}{{"-1", "negative_total"}, {"0", "no_difference"}, {"", "invalid_amount"}} {
		if _, err := h.submit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: tc.amount}); sterad.ErrorCode(err) != tc.code {
			t.Errorf("adjust %q: %v, want %s", tc.amount, err, tc.code)
		}
	}
	pre := h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "5000", Reference: "R", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if _, err := h.submit(sterad.Request{Op: "adjust", Original: pre.ID, Amount: "100"}); sterad.ErrorCode(err) != "wrong_original" {
		t.Errorf("adjust of a pre-auth: %v", err)
	}
}

func TestBlindReservationPaymentsByToken(t *testing.T) {
	h := newBlindHarness(t, withReservationRules)
	ctx := context.Background()
	h.term.present(p2peCard("353011******0000", sterad.BrandJCB, sterad.EntryKeyed, 1))
	cc := h.mustSubmit(sterad.Request{Op: "cardcheck", Terminal: "FRONT001", Reference: "RSV-9", CheckIn: "2026-11-23", CheckOut: "2026-11-24", FirstNight: "18000"})
	if cc.Status != sterad.StatusApproved || cc.Token == "" {
		t.Fatalf("card check: %+v", cc)
	}
	dep := h.mustSubmit(sterad.Request{Op: "deposit", Reference: "RSV-9", Token: cc.Token, Amount: "2000", CheckIn: "2026-11-23", CheckOut: "2026-11-24"})
	m := lastMsg(h.harness)
	if dep.Status != sterad.StatusApproved || m.Token != cc.Token || m.Entry.POSEntryMode() != "102" || m.MerchantInitiated != sterad.MIDeposit {
		t.Fatalf("deposit by token: %+v / %+v", dep, m)
	}
	cx := h.mustSubmit(sterad.Request{Op: "cancellation", Reference: "RSV-9"}) // 3600, 2000 of it from the deposit
	m = lastMsg(h.harness)
	if cx.Status != sterad.StatusApproved || cx.Amount.String() != "1600" || cx.Fee.String() != "3600" || m.Token != cc.Token ||
		m.MerchantInitiated != sterad.MICancelFee || m.Entry.POSEntryMode() != "102" || m.Amount.String() != "1600" {
		t.Fatalf("cancellation by token: %+v / %+v", cx, m)
	}
	if r, _ := h.gw.Reservation(ctx, "RSV-9"); r.Token != "" || r.State != sterad.ReservationReleased {
		t.Fatalf("token not released: %+v", r)
	}
	// An amount change of the deposit: charged like it, by its token.
	h.term.present(visaP2PE(2))
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "10000"})
	if _, err := h.submit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "11000"}); sterad.ErrorCode(err) != "no_card_kept" {
		t.Fatalf("blind difference without a terminal: %v", err)
	}
	h.term.present(visaP2PE(3))
	up := h.mustSubmit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "11000", Terminal: "FRONT001"})
	if up.Op != sterad.OpSale || up.Amount.String() != "1000" || up.Original != sale.ID || up.Status != sterad.StatusApproved {
		t.Fatalf("difference at the terminal: %+v", up)
	}
	down := h.mustSubmit(sterad.Request{Op: "adjust", Original: sale.ID, Amount: "4000"})
	if down.Op != sterad.OpRefund || down.Amount.String() != "7000" || lastMsg(h.harness).TI == "" {
		t.Fatalf("refund by TI: %+v", down)
	}
}

func checkoutReq(ref, plan string, vouchers ...string) sterad.CheckoutRequest {
	r := sterad.CheckoutRequest{Reference: ref, CheckIn: "2026-11-20", CheckOut: "2026-11-21", Guests: 1, Booking: "direct", RoomPlan: plan, Wait: true}
	for _, v := range vouchers {
		r.Vouchers = append(r.Vouchers, sterad.VoucherUse{Program: "OITA2016", Number: v, HolderMatches: true})
	}
	return r
}

func TestCheckoutWithVouchers(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	ctx := context.Background()
	pre := h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "20000", Reference: "RSV-V", CheckIn: "2026-11-20", CheckOut: "2026-11-21"})

	// The FAQ: a ¥12,800 plan takes two vouchers, three are refused.
	req := checkoutReq("RSV-V", "12800", "0000000001", "0000000002", "0000000003")
	req.Original = pre.ID
	if _, _, err := h.gw.Checkout(ctx, req); sterad.ErrorCode(err) != "voucher_exceeds_plan" {
		t.Fatalf("three vouchers: %v", err)
	}
	req = checkoutReq("RSV-V", "12800", "0000000001", "0000000002")
	req.Original, req.Other = pre.ID, "3000"
	res, replay, err := h.gw.Checkout(ctx, req)
	if err != nil || replay {
		t.Fatal(err)
	}
	if res.VouchersApplied.String() != "10000" || res.CardAmount.String() != "5800" || res.DepositsApplied.String() != "0" ||
		res.Transaction == nil || res.Transaction.Op != sterad.OpCompletion || res.Transaction.Amount.String() != "5800" ||
		res.Transaction.Status != sterad.StatusApproved || len(res.Vouchers) != 2 {
		t.Fatalf("check-out: %+v", res)
	}
	// The voucher log has both numbers, linked to the completion.
	rep, err := h.gw.VoucherReport(ctx, "2026-11")
	if err != nil || len(rep.Log) != 2 || rep.Log[0].Transaction != res.Transaction.ID || len(rep.Claims) != 1 || rep.Claims[0].Total.String() != "10000" ||
		rep.Claims[0].Due.String() != "2026-12-10" {
		t.Fatalf("report: %+v %v", rep, err)
	}
	// Used once: refused at another check-out.
	h.term.present(sterad.Card{PAN: "4111111111111111", Expiry: sterad.Expiry{Year: 2028, Month: 12}, Entry: sterad.EntryChip, ICC: []byte{1}})
	other := checkoutReq("RSV-W", "12800", "0000000002")
	other.Terminal = "FRONT001"
	if _, _, err := h.gw.Checkout(ctx, other); sterad.ErrorCode(err) != "voucher_used" {
		t.Fatalf("reused voucher: %v", err)
	}
	if _, _, err := h.gw.Checkout(ctx, req); sterad.ErrorCode(err) != "already_checked_out" {
		t.Fatalf("second check-out: %v", err)
	}
}

func TestCheckoutVoucherUsedConcurrentlyOnce(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	ctx := context.Background()
	var pres []*sterad.Transaction
	for i := range 8 {
		ref := "RSV-C" + string(rune('0'+i))
		pres = append(pres, h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "20000", Reference: ref, CheckIn: "2026-11-20", CheckOut: "2026-11-21"}))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, used := 0, 0
	for _, p := range pres {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := checkoutReq(p.Reference, "12800", "0000000042")
			req.Original = p.ID
			_, _, err := h.gw.Checkout(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			switch sterad.ErrorCode(err) {
			case "":
				ok++
			case "voucher_used":
				used++
			default:
				t.Errorf("check-out: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || used != len(pres)-1 {
		t.Fatalf("one voucher accepted %d times (%d refused)", ok, used)
	}
}

func TestCheckoutDepositsAndRefund(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	ctx := context.Background()
	h.mustSubmit(guaranteed("RSV-D"))
	dep := h.mustSubmit(sterad.Request{Op: "deposit", Reference: "RSV-D", Amount: "20000", CheckIn: "2026-11-23", CheckOut: "2026-11-24"})
	req := sterad.CheckoutRequest{Reference: "RSV-D", RoomPlan: "15000", Guests: 1, Wait: true}
	res, _, err := h.gw.Checkout(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.DepositsApplied.String() != "15000" || !res.CardAmount.IsZero() || res.Refund.String() != "5000" || len(res.Refunds) != 1 ||
		res.Refunds[0].Original != dep.ID || res.Refunds[0].Status != sterad.StatusApproved || res.Refunds[0].Amount.String() != "5000" {
		t.Fatalf("check-out against the deposit: %+v", res)
	}
	if _, err := h.submit(sterad.Request{Op: "cancellation", Reference: "RSV-D"}); sterad.ErrorCode(err) != "already_checked_out" {
		t.Fatalf("cancel after check-out: %v", err)
	}
	// Idempotent replay answers the same.
	req.IdempotencyKey = "k1"
	req.Reference = "RSV-E"
	h.mustSubmit(sterad.Request{Op: "deposit", Reference: "RSV-E", Amount: "20000", PAN: "4111111111111111", Expiry: "2812", CheckIn: "2026-11-23", CheckOut: "2026-11-24"})
	first, _, err := h.gw.Checkout(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, replay, err := h.gw.Checkout(ctx, req)
	if err != nil || !replay || again.Refund.String() != first.Refund.String() || len(again.Refunds) != len(first.Refunds) {
		t.Fatalf("replay: %+v %v %v", again, replay, err)
	}
}

func TestOpenHoldsAndAlert(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	pre := h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "30000", Reference: "RSV-H", CheckIn: "2026-11-21", CheckOut: "2026-11-23"})
	holds, err := h.gw.Holds(ctx, 0)
	if err != nil || len(holds) != 1 || holds[0].ID != pre.ID || holds[0].Amount.String() != "30000" || holds[0].Old {
		t.Fatalf("holds: %+v %v", holds, err)
	}
	if hs, _ := h.gw.Holds(ctx, 24*time.Hour); len(hs) != 0 {
		t.Fatalf("older_than 24h: %+v", hs)
	}
	h.clock.Advance(8 * 24 * time.Hour)
	alerts, _ := h.gw.Alerts(ctx)
	if len(alerts) != 1 || alerts[0].ID != pre.ID || !strings.HasPrefix(alerts[0].Reason, "ALERT:") {
		t.Fatalf("alerts: %+v", alerts)
	}
	h.mustSubmit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "30000"})
	if hs, _ := h.gw.Holds(ctx, 0); len(hs) != 0 {
		t.Fatalf("completed hold listed: %+v", hs)
	}
}

// A check-out whose card is declined frees its vouchers: the clerk
// checks out again, and the claim counts them once.
func TestCheckoutDeclinedFreesItsVouchers(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	ctx := context.Background()
	declined := chipVisa
	declined.PAN = "4000000000000002"
	h.term.present(declined)
	req := checkoutReq("RSV-X", "12800", "0000000007")
	req.Terminal = "FRONT001"
	res, _, err := h.gw.Checkout(ctx, req)
	if err != nil || res.Transaction == nil || res.Transaction.Status != sterad.StatusDeclined || res.CardAmount.String() != "7800" {
		t.Fatalf("declined check-out: %+v %v", res, err)
	}
	if rep, _ := h.gw.VoucherReport(ctx, "2026-11"); len(rep.Log) != 0 {
		t.Fatalf("a declined check-out's voucher is claimed: %+v", rep.Log)
	}
	h.term.present(chipVisa)
	res, _, err = h.gw.Checkout(ctx, req)
	if err != nil || res.Transaction.Status != sterad.StatusApproved || res.VouchersApplied.String() != "5000" {
		t.Fatalf("check-out again: %+v %v", res, err)
	}
	rep, _ := h.gw.VoucherReport(ctx, "2026-11")
	if len(rep.Log) != 1 || rep.Log[0].Transaction != res.Transaction.ID || rep.Claims[0].Vouchers != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if _, _, err := h.gw.Checkout(ctx, req); sterad.ErrorCode(err) != "already_checked_out" {
		t.Fatalf("third check-out: %v", err)
	}
}

func TestDepositBadInput(t *testing.T) {
	h := startHarness(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), withReservationRules)
	for _, tc := range []struct {
		name string
		req  sterad.Request
		code string
	}{
		{"no reference", sterad.Request{Op: "deposit", Amount: "1000", PAN: "4111111111111111", Expiry: "2812", CheckIn: "2026-11-23", CheckOut: "2026-11-24"}, "missing_reference"},
		{"unknown reservation without a stay", sterad.Request{Op: "deposit", Reference: "R", Amount: "1000", PAN: "4111111111111111", Expiry: "2812"}, "missing_stay"},
		{"no card at all", sterad.Request{Op: "deposit", Reference: "R", Amount: "1000", CheckIn: "2026-11-23", CheckOut: "2026-11-24"}, "missing_card"},
		{"zero", sterad.Request{Op: "deposit", Reference: "R", Amount: "0", Token: "TK00000000000001", CheckIn: "2026-11-23", CheckOut: "2026-11-24"}, "invalid_amount"},
		{"terminal and token", sterad.Request{Op: "deposit", Reference: "R", Amount: "10", Terminal: "FRONT001", Token: "TK00000000000001", CheckIn: "2026-11-23", CheckOut: "2026-11-24"}, "ambiguous_card"},
		{"first night on a sale", sterad.Request{Op: "sale", Amount: "10", PAN: "4111111111111111", Expiry: "2812", FirstNight: "100"}, "unexpected_first_night"},
	} {
		if _, err := h.submit(tc.req); sterad.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{}); len(txns) != 0 {
		t.Fatalf("bad input stored %d transactions", len(txns))
	}
}
