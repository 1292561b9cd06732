package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/console"
)

func seedHold(e *env) {
	e.txns.add(&sterad.Transaction{ID: "H1", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Step: sterad.StepDone,
		Amount: sterad.NewAmount(30000, sterad.JPY), MaskedPAN: "411111******1111", Brand: sterad.BrandVisa, AuthCode: "555001",
		Reference: "RSV-0050", Terminal: "FRONT001", CreatedAt: t0, Stay: &sterad.Stay{CheckIn: sterad.Date{Year: 2025, Month: 3, Day: 12}, CheckOut: sterad.Date{Year: 2025, Month: 3, Day: 14}}})
}

func TestIncrementalOnAnOpenHold(t *testing.T) {
	e := newEnv(t)
	seedHold(e)
	seedTxns(e)
	c := e.client(t)
	csrf := c.mustLogin("sato")
	if body := c.get("/console/txn/A1").body; strings.Contains(body, `id="incremental"`) {
		t.Error("a sale offers an incremental")
	}
	slip := c.get("/console/txn/H1").body
	if !strings.Contains(slip, `id="incremental"`) || !strings.Contains(slip, `id="checkout"`) {
		t.Fatalf("the slip of an open hold lacks the incremental or the check-out:\n%s", slip)
	}
	idem := field(t, idemRE, c.get("/console/txn/H1/incremental").body)
	res := c.post("/console/txn/H1/incremental", url.Values{"csrf": {csrf}, "idem": {idem}, "amount": {"8,000"}})
	if res.code != 200 || !strings.Contains(res.body, "追加で8000円をオーソリします") || len(e.txns.requests()) != 0 {
		t.Fatalf("first POST: %d\n%s", res.code, res.body)
	}
	res = c.post("/console/txn/H1/incremental", url.Values{"csrf": {csrf}, "idem": {idem}, "amount": {"8000"}, "confirm": {"yes"}})
	reqs := e.txns.requests()
	if res.code != http.StatusSeeOther || len(reqs) != 1 || reqs[0].Op != "incremental" || reqs[0].Original != "H1" || reqs[0].Amount != "8000" {
		t.Fatalf("confirmed: %d %+v", res.code, reqs)
	}
}

func TestCheckoutWithVouchersAndDepositsConfirmed(t *testing.T) {
	e := newEnv(t)
	seedHold(e)
	seedReservations(t, e)
	e.extra.resv["RSV-0050"] = &sterad.Reservation{Reference: "RSV-0050", State: sterad.ReservationGuaranteed, Deposits: []string{"D1"}}
	e.pay.holds = []sterad.Hold{{ID: "H1", Reference: "RSV-0050", Amount: sterad.NewAmount(30000, sterad.JPY), MaskedPAN: "411111******1111"}}
	done := &sterad.Transaction{ID: "C1", Op: sterad.OpCompletion, Status: sterad.StatusPending, Amount: sterad.NewAmount(27150, sterad.JPY)}
	e.pay.result = &sterad.CheckoutResult{Reference: "RSV-0050", VouchersApplied: sterad.NewAmount(10000, sterad.JPY),
		DepositsApplied: sterad.NewAmount(5000, sterad.JPY), CardAmount: sterad.NewAmount(27150, sterad.JPY), Refund: sterad.NewAmount(0, sterad.JPY),
		Transaction: done, Vouchers: []sterad.AppliedVoucher{{Program: "OITA2016", Number: "0000000001", Applied: sterad.NewAmount(5000, sterad.JPY)},
			{Program: "OITA2016", Number: "0000000002", Applied: sterad.NewAmount(5000, sterad.JPY)}}}
	c := e.client(t)
	csrf := c.mustLogin("sato")
	form := c.get("/console/desk/checkout?original=H1").body
	for _, w := range []string{`value="RSV-0050"`, `<option value="H1" selected>`, `value="2025-03-12"`} {
		if !strings.Contains(form, w) {
			t.Errorf("the check-out form lacks %q", w)
		}
	}
	idem := field(t, idemRE, form)
	v := url.Values{"csrf": {csrf}, "idem": {idem}, "reference": {"RSV-0050"}, "original": {"H1"}, "terminal": {"FRONT001"},
		"checkin": {"2025-03-12"}, "checkout": {"2025-03-14"}, "guests": {"2"}, "booking": {"direct"},
		"room_plan": {"36,000"}, "other": {"5,400"}, "bathing_tax": {"750"},
		"vp1": {"OITA2016"}, "vn1": {"0000000001"}, "vp2": {"OITA2016"}, "vn2": {"0000000002"}, "vx2": {"on"}, "vr2": {"family"}}
	res := c.post("/console/desk/checkout", v)
	if res.code != 200 || !strings.Contains(res.body, `id="confirm"`) {
		t.Fatalf("first POST: %d\n%s", res.code, res.body)
	}
	for _, w := range []string{"¥42,150", "2 枚", "¥5,000", "H1"} {
		if !strings.Contains(res.body, w) {
			t.Errorf("the confirmation lacks %q", w)
		}
	}
	if n := len(e.pay.requests()); n != 0 {
		t.Fatal("checked out before the confirmation")
	}
	// The confirmation carries the form; confirm it as the browser would.
	v.Set("confirm", "yes")
	res = c.post("/console/desk/checkout", v)
	if res.code != 200 || !strings.Contains(res.body, `id="co-card-amount"`) || !strings.Contains(res.body, "¥27,150") || !strings.Contains(res.body, `href="/console/txn/C1/live"`) {
		t.Fatalf("confirmed: %d\n%s", res.code, res.body)
	}
	reqs := e.pay.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d check-outs", len(reqs))
	}
	r := reqs[0]
	if r.Reference != "RSV-0050" || r.Original != "H1" || r.Terminal != "" || r.RoomPlan != "36000" || r.Other != "5400" || r.BathingTax != "750" ||
		r.Guests != 2 || r.Booking != "direct" || r.IdempotencyKey != "console:"+idem || len(r.Vouchers) != 2 ||
		r.Vouchers[0] != (sterad.VoucherUse{Program: "OITA2016", Number: "0000000001", HolderMatches: true}) ||
		r.Vouchers[1] != (sterad.VoucherUse{Program: "OITA2016", Number: "0000000002", HolderMatches: false, HolderReason: "family"}) {
		t.Fatalf("check-out request %+v", r)
	}
	// A second confirmation (a reload) is the same check-out.
	c.post("/console/desk/checkout", v)
	if n := len(e.pay.requests()); n != 1 {
		t.Fatalf("%d check-outs after a reload", n)
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "sato checkout") {
		t.Errorf("audit log %v lacks the check-out", e.store.actions())
	}
}

// TestKeyedEntryOnlyInClearMode: card-data-blind, the page does not exist;
// in clear mode the number is typed in a masked field, goes to the
// service, and never into the audit log, the log or a page.
func TestKeyedEntryOnlyInClearMode(t *testing.T) {
	const pan = "4111111111111111"
	t.Run("blind", func(t *testing.T) {
		e := newEnv(t, func(s *console.Server) { s.Blind = true })
		c := e.client(t)
		csrf := c.mustLogin("sato")
		if body := c.get("/console/desk").body; strings.Contains(body, "/desk/keyed") {
			t.Error("the desk offers keyed entry card-data-blind")
		}
		if res := c.get("/console/desk/keyed"); res.code != http.StatusNotFound {
			t.Errorf("keyed page card-data-blind: %d", res.code)
		}
		res := c.post("/console/desk/keyed", url.Values{"csrf": {csrf}, "idem": {"0123456789abcdef0123"}, "op": {"sale"}, "pan": {pan}, "expiry": {"12/30"}, "amount": {"100"}})
		if res.code != http.StatusNotFound || len(e.txns.requests()) != 0 {
			t.Errorf("keyed POST card-data-blind: %d, %d requests", res.code, len(e.txns.requests()))
		}
	})
	t.Run("clear", func(t *testing.T) {
		e := newEnv(t)
		c := e.client(t)
		csrf := c.mustLogin("sato")
		page := c.get("/console/desk/keyed")
		if page.code != 200 || !strings.Contains(page.body, `type="password" name="pan"`) || !strings.Contains(page.body, `autocomplete="off"`) {
			t.Fatalf("keyed page: %d\n%s", page.code, page.body)
		}
		idem := field(t, idemRE, page.body)
		res := c.post("/console/desk/keyed", url.Values{"csrf": {csrf}, "idem": {idem}, "op": {"sale"}, "pan": {"4111 1111 1111 1111"}, "expiry": {"12/30"},
			"amount": {"12,800"}, "reference": {"TEL-1"}})
		if res.code != http.StatusSeeOther || !strings.HasSuffix(res.location, "/live") {
			t.Fatalf("keyed sale: %d\n%s", res.code, res.body)
		}
		reqs := e.txns.requests()
		if len(reqs) != 1 || reqs[0].PAN != pan || reqs[0].Expiry != "3012" || reqs[0].Terminal != "" || reqs[0].Amount != "12800" {
			t.Fatalf("submitted %+v", reqs)
		}
		// A refused number is not echoed back.
		res = c.post("/console/desk/keyed", url.Values{"csrf": {csrf}, "idem": {"another-key-0123456789"}, "op": {"sale"}, "pan": {pan}, "expiry": {"12/30"}, "amount": {"abc"}})
		if res.code != http.StatusBadRequest || strings.Contains(res.body, pan) || strings.Contains(res.body, "1111 1111") {
			t.Errorf("refused keyed sale: %d\n%s", res.code, res.body)
		}
		if a := strings.Join(e.store.texts(), "\n"); strings.Contains(a, pan) || !strings.Contains(a, "txn.sale.keyed") {
			t.Errorf("audit log:\n%s", a)
		}
		if strings.Contains(e.logs.String(), pan) || strings.Contains(e.logs.String(), "1111 1111") {
			t.Errorf("the log holds the card number:\n%s", e.logs.String())
		}
	})
}
