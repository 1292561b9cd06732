package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// Reservation payments end to end (issue 13, interface.md version 1.1):
// the daemon, the test acquirer and the simulated terminals, in both
// card-data modes (blind: by token, and cards read at encrypting
// terminals).

var cardModes = []struct {
	name string
	tune func(*Main)
}{
	{"blind", func(m *Main) { m.Config.CardData = sterad.CardDataBlind }},
	{"clear", clearMode},
}

// jstDay is the hotel's date today plus days.
func jstDay(days int) string {
	loc, _ := time.LoadLocation("Asia/Tokyo")
	return time.Now().In(loc).AddDate(0, 0, days).Format(time.DateOnly)
}

// withRules configures the cancellation policy of interface.md and a
// voucher program valid around today.
func withRules(m *Main) {
	d := func(n int) *int { return &n }
	m.Config.Reservations.CancellationPolicy = &CancellationPolicyConfig{Version: "2026-04", Rows: []FeeRowConfig{
		{DaysBefore: d(7), Percent: "20", Of: "first_night"},
		{DaysBefore: d(1), Percent: "50", Of: "first_night"},
		{DaysBefore: d(0), Percent: "100", Of: "first_night"},
	}, NoShow: &NoShowConfig{Percent: "100", Of: "first_night"}}
	m.Config.Vouchers = []VoucherConfig{{ID: "OITA2016", Name: "おおいた宿泊券", FaceValue: "5000", PerPersonNight: 4,
		MinPlanPerPersonNight: "5000", ValidFrom: jstDay(-40), ValidTo: jstDay(40), DirectBookingsOnly: true, ClaimDay: 10,
		NumberPattern: "^[0-9]{10}$"}}
}

// cliEnv runs a client command with the API token in the environment:
// commands with their own --token flag (a card token) shadow the global
// one.
func cliEnv(d *testDaemon, args ...string) (string, error) {
	d.t.Helper()
	d.t.Setenv("STERAD_API_TOKEN", d.m.Token)
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--api", d.m.APIAddr}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func ledgerOf(d *testDaemon, ref string) []acquirer.Transaction {
	var out []acquirer.Transaction
	for _, tx := range d.m.SimHost.Ledger().Approved {
		if tx.Reference == ref || ref == "" {
			out = append(out, tx)
		}
	}
	return out
}

func kinds(txs []acquirer.Transaction) string {
	var s []string
	for _, tx := range txs {
		s = append(s, tx.Kind+":"+tx.Amount.String())
	}
	return strings.Join(s, " ")
}

// guaranteeAt checks a card at the front terminal for a reservation with
// its first night, and returns the card check (its token carries the card
// on in both modes).
func guaranteeAt(d *testDaemon, ref, arrival string) *api.Transaction {
	d.t.Helper()
	in, _ := sterad.ParseDate(arrival)
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444", Entry: "keyed"})
	cc := d.post(api.TransactionRequest{Op: "cardcheck", Terminal: "FRONT001", Reference: ref, FirstNight: "18000",
		Stay: &api.StayInput{CheckIn: arrival, CheckOut: in.AddDays(1).String()}})
	if cc.Status != "approved" || cc.Token == nil {
		d.t.Fatalf("guarantee %s: %+v", ref, cc)
	}
	return cc
}

func TestE2ECancellationAndDeposits(t *testing.T) {
	for _, mode := range cardModes {
		t.Run(mode.name, func(t *testing.T) {
			d := startDaemon(t, mode.tune, withRules)
			ctx := context.Background()

			// Two days before arrival: 20 % of ¥18,000 = ¥3,600, ¥2,000 of
			// it from the deposit, ¥1,600 charged by MI=CX.
			arrival := jstDay(2)
			cc := guaranteeAt(d, "RSV-CX1", arrival)
			res, err := d.c.Reservation(ctx, "RSV-CX1")
			if err != nil || res.Policy == nil || res.Policy.Policy.Version != "2026-04" {
				t.Fatalf("policy recorded: %+v %v", res, err)
			}
			st := &api.StayInput{CheckIn: arrival, CheckOut: jstDay(3)}
			dep := d.post(api.TransactionRequest{Op: "deposit", Reference: "RSV-CX1", Amount: "2000", Token: *cc.Token, Stay: st})
			if dep.Status != "approved" || dep.Entry != "token" {
				t.Fatalf("deposit by token: %+v", dep)
			}
			out, err := d.cli("--json", "cancel", "--ref", "RSV-CX1")
			if err != nil {
				t.Fatalf("sterad cancel: %v\n%s", err, out)
			}
			var cx api.Transaction
			if err := json.Unmarshal([]byte(out), &cx); err != nil {
				t.Fatal(err)
			}
			if cx.Op != "cancellation" || cx.Status != "approved" || cx.Amount != "3600" || cx.CardAmount != "1600" || cx.PolicyVersion != "2026-04" || cx.PolicyRow != "7" {
				t.Fatalf("cancellation: %+v", cx)
			}
			if got := kinds(ledgerOf(d, "RSV-CX1")); got != "deposit:2000 cancelfee:1600" {
				t.Fatalf("host ledger: %s", got)
			}
			if ae := d.postErr(api.TransactionRequest{Op: "cancellation", Reference: "RSV-CX1"}); ae.Status != 409 || ae.Code != "already_cancelled" {
				t.Fatalf("second cancellation: %v", ae)
			}
			if ae := d.postErr(api.TransactionRequest{Op: "cancellation", Reference: "RSV-NONE"}); ae.Status != 404 || ae.Code != "unknown_reservation" {
				t.Fatalf("unknown reservation: %v", ae)
			}
			if ae := d.postErr(api.TransactionRequest{Op: "deposit", Amount: "1000", Token: *cc.Token, Stay: st}); ae.Status != 400 || ae.Code != "missing_reference" {
				t.Fatalf("deposit without a reservation: %v", ae)
			}

			// Far ahead: no fee, the deposit (keyed at the terminal) all back.
			far := jstDay(30)
			guaranteeAt(d, "RSV-CX2", far)
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			out, err = cliEnv(d, "--json", "deposit", "--ref", "RSV-CX2", "--amount", "5000", "--terminal", "FRONT001") // the reservation's stay
			if err != nil {
				t.Fatalf("sterad deposit: %v\n%s", err, out)
			}
			if !strings.Contains(out, `"status": "approved"`) {
				t.Fatalf("deposit at the terminal:\n%s", out)
			}
			cx2 := d.post(api.TransactionRequest{Op: "cancellation", Reference: "RSV-CX2"})
			if cx2.Amount != "0" || cx2.CardAmount != "0" || cx2.PolicyRow != "free" || len(cx2.Linked) != 1 {
				t.Fatalf("free cancellation: %+v", cx2)
			}
			rf, err := d.c.WaitFinal(ctx, cx2.Linked[0], 10*time.Millisecond)
			if err != nil || rf.Op != "refund" || rf.Status != "approved" || rf.Amount != "5000" {
				t.Fatalf("deposit refund: %+v %v", rf, err)
			}
			if got := kinds(ledgerOf(d, "")); !strings.HasSuffix(got, "deposit:5000 refund:5000") || kinds(ledgerOf(d, "RSV-CX2")) != "deposit:5000" {
				t.Fatalf("host ledger: %s", got)
			}

			// The batch reconciles: the fee and the deposits are debits.
			var closed api.BatchView
			if _, err := d.c.Do(ctx, http.MethodPost, "/v1/batches/close", nil, nil, &closed); err != nil || closed.State != sterad.BatchClosed {
				t.Fatalf("close: %+v %v", closed.Batch, err)
			}
			for _, hb := range d.m.SimHost.Ledger().Batches {
				if hb.Result != "00" || len(hb.Uploads) != 0 {
					t.Fatalf("host batch not in balance at once: %+v", hb)
				}
			}
		})
	}
}

func TestE2EAdjust(t *testing.T) {
	for _, mode := range cardModes {
		t.Run(mode.name, func(t *testing.T) {
			d := startDaemon(t, mode.tune, withRules)
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "10000", Reference: "FOLIO-1"})
			out, err := d.cli("--json", "adjust", "--txn", sale.ID, "--amount", "8000")
			if err != nil {
				t.Fatalf("sterad adjust: %v\n%s", err, out)
			}
			var down api.Transaction
			if err := json.Unmarshal([]byte(out), &down); err != nil {
				t.Fatal(err)
			}
			if down.Op != "refund" || down.Amount != "2000" || down.Original == nil || *down.Original != sale.ID || down.Status != "approved" {
				t.Fatalf("adjust down: %+v", down)
			}
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			up := d.post(api.TransactionRequest{Op: "adjust", Original: sale.ID, Amount: "12000", Terminal: "FRONT001"})
			if up.Op != "sale" || up.Amount != "4000" || *up.Original != sale.ID || up.Status != "approved" {
				t.Fatalf("adjust up: %+v", up)
			}
			if ae := d.postErr(api.TransactionRequest{Op: "adjust", Original: sale.ID, Amount: "-1"}); ae.Status != 400 || ae.Code != "negative_total" {
				t.Fatalf("negative total: %v", ae)
			}
			// To zero refunds everything paid, never more.
			zero := d.post(api.TransactionRequest{Op: "adjust", Original: sale.ID, Amount: "0"})
			if zero.Op != "refund" || zero.Amount != "8000" || len(zero.Linked) != 1 {
				t.Fatalf("adjust to zero: %+v", zero)
			}
			if _, err := d.c.WaitFinal(context.Background(), zero.Linked[0], 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			var paid int64
			for _, tx := range ledgerOf(d, "") {
				switch tx.Kind {
				case "refund":
					paid -= tx.Amount.Minor()
				default:
					paid += tx.Amount.Minor()
				}
			}
			if paid != 0 {
				t.Fatalf("the guest paid %d after an adjust to zero: %s", paid, kinds(ledgerOf(d, "")))
			}
		})
	}
}

func TestE2ECheckoutWithVouchersHoldsAndReport(t *testing.T) {
	for _, mode := range cardModes {
		t.Run(mode.name, func(t *testing.T) {
			d := startDaemon(t, mode.tune, withRules)
			ctx := context.Background()
			st := &api.StayInput{CheckIn: jstDay(-1), CheckOut: jstDay(0)}
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			pre := d.post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "RSV-FAQ", Stay: st})
			d.card("FRONT001", terminal.Card{PAN: "3530111333300000"})
			open := d.post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-OPEN", Stay: st})

			// Open holds, by the API and the CLI.
			hs, err := d.c.Holds(ctx, "")
			if err != nil || len(hs) != 2 {
				t.Fatalf("holds: %+v %v", hs, err)
			}
			out, err := d.cli("holds")
			if err != nil || !strings.Contains(out, "RSV-OPEN") || !strings.Contains(out, "¥30,000") {
				t.Fatalf("sterad holds: %v\n%s", err, out)
			}
			if hs, _ := d.c.Holds(ctx, "7d"); len(hs) != 0 {
				t.Fatalf("holds older than 7 days: %+v", hs)
			}

			// The FAQ's examples through the API.
			voucher := func(ns ...string) []sterad.VoucherUse {
				var vs []sterad.VoucherUse
				for _, n := range ns {
					vs = append(vs, sterad.VoucherUse{Program: "OITA2016", Number: n, HolderMatches: true})
				}
				return vs
			}
			body := api.CheckoutRequest{Reference: "RSV-FAQ", Original: pre.ID, Stay: st, Guests: 1, Booking: "direct", RoomPlan: "12800", Other: "3000"}
			for _, tc := range []struct {
				name   string
				edit   func(*api.CheckoutRequest)
				status int
				code   string
			}{
				{"three vouchers on ¥12,800: no change", func(b *api.CheckoutRequest) { b.Vouchers = voucher("1000000001", "1000000002", "1000000003") }, 400, "voucher_exceeds_plan"},
				{"not a direct booking", func(b *api.CheckoutRequest) { b.Vouchers, b.Booking = voucher("1000000001"), "jalan" }, 400, "voucher_not_direct"},
				{"malformed number", func(b *api.CheckoutRequest) { b.Vouchers = voucher("12-34") }, 400, "voucher_number"},
				{"plan under ¥5,000 per person night", func(b *api.CheckoutRequest) { b.Vouchers, b.Guests = voucher("1000000001"), 3 }, 400, "voucher_plan_minimum"},
				{"over the cap", func(b *api.CheckoutRequest) {
					b.Vouchers, b.RoomPlan = voucher("1000000001", "1000000002", "1000000003", "1000000004", "1000000005"), "30000"
				}, 400, "voucher_cap"},
				{"someone else's voucher without a reason", func(b *api.CheckoutRequest) {
					b.Vouchers = []sterad.VoucherUse{{Program: "OITA2016", Number: "1000000001"}}
				}, 400, "voucher_holder_reason"},
				{"outside the dates", func(b *api.CheckoutRequest) {
					b.Vouchers, b.Stay = voucher("1000000001"), &api.StayInput{CheckIn: jstDay(60), CheckOut: jstDay(61)}
				}, 400, "voucher_dates"},
			} {
				b := body
				tc.edit(&b)
				_, code, err := d.c.Checkout(ctx, b, api.CheckoutOptions{})
				var ae *api.Error
				if !errors.As(err, &ae) || code != tc.status || ae.Code != tc.code {
					t.Errorf("%s: %d %v, want %d %s", tc.name, code, err, tc.status, tc.code)
				}
			}
			b := body
			b.Vouchers = voucher("1000000001", "1000000002")
			res, code, err := d.c.Checkout(ctx, b, api.CheckoutOptions{IdempotencyKey: "co-1"})
			if err != nil || code != 201 {
				t.Fatalf("check-out: %d %v", code, err)
			}
			if res.VouchersApplied != "10000" || res.DepositsApplied != "0" || res.CardAmount != "5800" || res.Transaction == nil ||
				res.Transaction.Op != "completion" || res.Transaction.Amount != "5800" || res.Transaction.Status != "approved" || len(res.Vouchers) != 2 {
				t.Fatalf("check-out answer: %+v", res)
			}
			again, code, err := d.c.Checkout(ctx, b, api.CheckoutOptions{IdempotencyKey: "co-1"})
			if err != nil || code != 200 || again.Transaction.ID != res.Transaction.ID {
				t.Fatalf("replay: %d %v %+v", code, err, again)
			}
			if got := kinds(ledgerOf(d, "")); !strings.Contains(got, "completion:5800") {
				t.Fatalf("host ledger: %s", got)
			}
			// The same voucher at another check-out (by the CLI, at a terminal).
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			out, err = d.cli("checkout", "--ref", "RSV-OTHER", "--room-plan", "12800", "--guests", "1", "--terminal", "FRONT001",
				"--checkin", st.CheckIn, "--checkout", st.CheckOut, "--voucher", "OITA2016:1000000002")
			if err == nil || !strings.Contains(err.Error(), "voucher_used") {
				t.Fatalf("reused voucher: %v\n%s", err, out)
			}
			out, err = d.cli("checkout", "--ref", "RSV-OTHER", "--room-plan", "12800", "--guests", "1", "--terminal", "FRONT001",
				"--checkin", st.CheckIn, "--checkout", st.CheckOut, "--voucher", "OITA2016:1000000009")
			if err != nil || !strings.Contains(out, "CHECKED OUT") || !strings.Contains(out, "¥7,800") {
				t.Fatalf("sterad checkout: %v\n%s", err, out)
			}
			if hs, _ := d.c.Holds(ctx, ""); len(hs) != 1 || hs[0].ID != open.ID {
				t.Fatalf("holds after the check-out: %+v", hs)
			}

			// The month's claim: JSON, and the CSVs parsed back.
			month := jstDay(0)[:7]
			var rep sterad.VoucherReport
			if err := d.c.VoucherReport(ctx, month, false, "", &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Claims) != 1 || rep.Claims[0].Vouchers != 3 || rep.Claims[0].Total.String() != "15000" || len(rep.Log) != 3 {
				t.Fatalf("report: %+v", rep)
			}
			var claimCSV, logCSV bytes.Buffer
			if err := d.c.VoucherReport(ctx, month, true, "", &claimCSV); err != nil {
				t.Fatal(err)
			}
			claims, err := sterad.ReadVoucherClaimCSV(&claimCSV, sterad.JPY)
			if err != nil || len(claims) != 1 || claims[0].Program != "OITA2016" || claims[0].Total.String() != "15000" || claims[0].Due != rep.Claims[0].Due {
				t.Fatalf("claim CSV: %+v %v", claims, err)
			}
			if err := d.c.VoucherReport(ctx, month, true, "log", &logCSV); err != nil {
				t.Fatal(err)
			}
			log, err := sterad.ReadVoucherLogCSV(&logCSV, sterad.JPY)
			if err != nil || len(log) != 3 || log[0].Reference == "" || log[0].Guests != 1 {
				t.Fatalf("log CSV: %+v %v", log, err)
			}
			out, err = d.cli("report", "vouchers", "--month", month)
			if err != nil || !strings.Contains(out, "おおいた宿泊券") || !strings.Contains(out, "¥15,000") {
				t.Fatalf("sterad report vouchers: %v\n%s", err, out)
			}
		})
	}
}
