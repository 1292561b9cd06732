package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/sterad/sterad"
)

// examplePolicy is interface.md's table: 20 % from 7 days before, 50 %
// from the day before, 100 % on the arrival day and for a no-show.
func examplePolicy(t *testing.T, firstNight int64) *sterad.PolicySnapshot {
	t.Helper()
	p := sterad.CancellationPolicy{Version: "2026-04", Rows: []sterad.FeeRow{
		{DaysBefore: 7, Percent: decimal.NewFromInt(20), Of: sterad.FeeOfFirstNight},
		{DaysBefore: 1, Percent: decimal.NewFromInt(50), Of: sterad.FeeOfFirstNight},
		{DaysBefore: 0, Percent: decimal.NewFromInt(100), Of: sterad.FeeOfFirstNight},
	}, NoShow: &sterad.NoShowFee{Percent: decimal.NewFromInt(100), Of: sterad.FeeOfFirstNight}}
	snap, err := sterad.NewPolicySnapshot(p, sterad.NewAmount(firstNight, sterad.JPY), t0)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func day(t *testing.T, s string) sterad.Date {
	t.Helper()
	d, err := sterad.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// seedReservations: RSV-NS arrived yesterday (a no-show can be charged),
// RSV-TOMORROW arrives tomorrow with a ¥5,000 deposit (t0 is 2025-03-14
// in Tokyo), RSV-NOPOLICY was checked without a first night.
func seedReservations(t *testing.T, e *env) {
	t.Helper()
	e.extra.resv = map[string]*sterad.Reservation{
		"RSV-NS": {Reference: "RSV-NS", State: sterad.ReservationGuaranteed, Stay: sterad.Stay{CheckIn: day(t, "2025-03-13"), CheckOut: day(t, "2025-03-14")},
			MaskedPAN: "411111******1111", Brand: sterad.BrandVisa, CardKept: true, RetainUntil: t0.Add(7 * 24 * 3600e9), Policy: examplePolicy(t, 18000), CheckTxn: "CC1"},
		"RSV-TOMORROW": {Reference: "RSV-TOMORROW", State: sterad.ReservationGuaranteed, Stay: sterad.Stay{CheckIn: day(t, "2025-03-15"), CheckOut: day(t, "2025-03-17")},
			MaskedPAN: "555555******4444", Token: "TK00000000004444", RetainUntil: t0.Add(9 * 24 * 3600e9), Policy: examplePolicy(t, 18000), Deposits: []string{"D1"}},
		"RSV-NOPOLICY": {Reference: "RSV-NOPOLICY", State: sterad.ReservationGuaranteed, Stay: sterad.Stay{CheckIn: day(t, "2025-03-13"), CheckOut: day(t, "2025-03-14")},
			MaskedPAN: "411111******1111", CardKept: true},
	}
	e.extra.vault = []*sterad.VaultEntry{
		{Reference: "RSV-NS", MaskedPAN: "411111******1111", Brand: sterad.BrandVisa, Stay: e.extra.resv["RSV-NS"].Stay, RetainUntil: t0.Add(7 * 24 * 3600e9)},
		{Reference: "RSV-TOMORROW", MaskedPAN: "555555******4444", Token: "TK00000000004444", Stay: e.extra.resv["RSV-TOMORROW"].Stay, RetainUntil: t0.Add(9 * 24 * 3600e9)},
	}
	e.txns.add(&sterad.Transaction{ID: "D1", Op: sterad.OpDeposit, Status: sterad.StatusApproved, Step: sterad.StepDone,
		Amount: sterad.NewAmount(5000, sterad.JPY), Reference: "RSV-TOMORROW", CreatedAt: t0})
}

func TestCardCheckAtATerminal(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	csrf := c.mustLogin("ito")
	page := c.get("/console/reservations")
	if page.code != 200 || !strings.Contains(page.body, `id="cardcheck-form"`) {
		t.Fatalf("reservations page: %d\n%s", page.code, page.body)
	}
	if strings.Contains(page.body, `name="pan"`) {
		t.Fatal("the card check form asks for a card number")
	}
	idem := field(t, idemRE, page.body)
	res := c.post("/console/reservations/cardcheck", url.Values{"csrf": {csrf}, "idem": {idem}, "terminal": {"FRONT001"},
		"reference": {"RSV-7"}, "checkin": {"2025-03-20"}, "checkout": {"2025-03-22"}, "first_night": {"¥18,000"}})
	if res.code != http.StatusSeeOther || res.location != "/console/txn/T001/live" {
		t.Fatalf("card check: %d %q\n%s", res.code, res.location, res.body)
	}
	reqs := e.txns.requests()
	want := sterad.Request{Op: "cardcheck", Terminal: "FRONT001", Reference: "RSV-7", CheckIn: "2025-03-20", CheckOut: "2025-03-22", FirstNight: "18000", IdempotencyKey: "console:" + idem}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("submitted %+v, want %+v", reqs, want)
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "ito txn.cardcheck") {
		t.Errorf("audit log %v lacks the card check", e.store.actions())
	}
	clerk := e.client(t)
	clerk.mustLogin("sato")
	if res := clerk.get("/console/reservations"); res.code != http.StatusForbidden {
		t.Errorf("a clerk opens the reservations: %d", res.code)
	}
}

func TestVaultShowsMaskedCardsAndTokens(t *testing.T) {
	e := newEnv(t)
	seedReservations(t, e)
	c := e.client(t)
	c.mustLogin("ito")
	body := c.get("/console/reservations").body
	for _, w := range []string{`data-ref="RSV-NS"`, "411111******1111", "2025-03-21 19:00:00", `data-ref="RSV-TOMORROW"`, "トークン"} {
		if !strings.Contains(body, w) {
			t.Errorf("vault lacks %q", w)
		}
	}
	body = c.get("/console/reservations/r/RSV-TOMORROW").body
	if strings.Contains(body, "TK00000000004444") || !strings.Contains(body, "••••••••••••4444") {
		t.Errorf("the token is not masked:\n%s", body)
	}
	if res := c.get("/console/reservations?ref=RSV-NS"); res.location != "/console/reservations/r/RSV-NS" {
		t.Errorf("look-up: %q", res.location)
	}
	if res := c.get("/console/reservations/r/NOPE"); res.code != http.StatusNotFound {
		t.Errorf("unknown reservation: %d", res.code)
	}
}

// TestReservationChargesNeedConfirmation: the no-show and the
// cancellation show the amount computed from the recorded policy first;
// only the confirmation charges, and only that amount.
func TestReservationChargesNeedConfirmation(t *testing.T) {
	tests := []struct {
		name, ref, action string
		shows             []string // on the confirmation
		want              sterad.Request
	}{
		{"no-show", "RSV-NS", "noshow", []string{"¥18,000", "no-show: 100 % of the first night", "ノーショー料金 ¥18,000 をカードに請求します"},
			sterad.Request{Op: "noshow", Reference: "RSV-NS", Amount: "18000", CheckIn: "2025-03-13", CheckOut: "2025-03-14"}},
		// The day before arrival: 50 % of ¥18,000 = ¥9,000, ¥5,000 of it
		// out of the deposit: ¥4,000 to the card.
		{"cancellation", "RSV-TOMORROW", "cancel", []string{"¥9,000", "¥5,000", "キャンセル料としてカードに ¥4,000 を請求"},
			sterad.Request{Op: "cancellation", Reference: "RSV-TOMORROW"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seedReservations(t, e)
			c := e.client(t)
			csrf := c.mustLogin("ito")
			page := c.get("/console/reservations/r/" + tt.ref)
			idem := field(t, idemRE, page.body)
			res := c.post("/console/reservations/r/"+tt.ref+"/"+tt.action, url.Values{"csrf": {csrf}, "idem": {idem}})
			if res.code != 200 || !strings.Contains(res.body, `id="confirm"`) {
				t.Fatalf("first POST: %d\n%s", res.code, res.body)
			}
			for _, w := range tt.shows {
				if !strings.Contains(res.body, w) {
					t.Errorf("the confirmation lacks %q", w)
				}
			}
			if n := len(e.txns.requests()); n != 0 {
				t.Fatal("charged before the confirmation")
			}
			shown := field(t, shownRE, res.body)
			// A confirmation of another amount (the day turned) is shown again.
			res = c.post("/console/reservations/r/"+tt.ref+"/"+tt.action, url.Values{"csrf": {csrf}, "idem": {idem}, "confirm": {"yes"}, "shown": {"1/1"}})
			if res.code != 200 || !strings.Contains(res.body, `id="changed"`) || len(e.txns.requests()) != 0 {
				t.Fatalf("confirmation of another amount: %d, %d requests\n%s", res.code, len(e.txns.requests()), res.body)
			}
			res = c.post("/console/reservations/r/"+tt.ref+"/"+tt.action, url.Values{"csrf": {csrf}, "idem": {idem}, "confirm": {"yes"}, "shown": {shown}})
			if res.code != http.StatusSeeOther || !strings.HasSuffix(res.location, "/live") {
				t.Fatalf("confirmed: %d %q\n%s", res.code, res.location, res.body)
			}
			reqs := e.txns.requests()
			tt.want.IdempotencyKey = "console:" + idem
			if len(reqs) != 1 || reqs[0] != tt.want {
				t.Fatalf("submitted %+v, want %+v", reqs, tt.want)
			}
			if !strings.Contains(strings.Join(e.store.actions(), ","), "ito txn."+tt.want.Op) {
				t.Errorf("audit log %v lacks the charge", e.store.actions())
			}
		})
	}
}

func TestNoChargeWithoutARecordedPolicy(t *testing.T) {
	e := newEnv(t)
	seedReservations(t, e)
	c := e.client(t)
	csrf := c.mustLogin("ito")
	page := c.get("/console/reservations/r/RSV-NOPOLICY")
	if strings.Contains(page.body, `id="noshow"`) || !strings.Contains(page.body, "キャンセル規定が記録されていません") {
		t.Fatalf("a reservation without a policy offers a no-show:\n%s", page.body)
	}
	res := c.post("/console/reservations/r/RSV-NOPOLICY/noshow", url.Values{"csrf": {csrf}, "idem": {"0123456789abcdef0123"}, "confirm": {"yes"}})
	if res.code != http.StatusConflict || len(e.txns.requests()) != 0 {
		t.Fatalf("no-show without a policy: %d", res.code)
	}
}

func TestReleaseNeedsConfirmation(t *testing.T) {
	e := newEnv(t)
	seedReservations(t, e)
	c := e.client(t)
	csrf := c.mustLogin("ito")
	idem := field(t, idemRE, c.get("/console/reservations/r/RSV-NS").body)
	res := c.post("/console/reservations/r/RSV-NS/release", url.Values{"csrf": {csrf}, "idem": {idem}})
	if res.code != 200 || !strings.Contains(res.body, "カードを破棄して予約を解放します") || len(e.extra.released) != 0 {
		t.Fatalf("first POST: %d, released %v\n%s", res.code, e.extra.released, res.body)
	}
	res = c.post("/console/reservations/r/RSV-NS/release", url.Values{"csrf": {csrf}, "idem": {idem}, "confirm": {"yes"}, "shown": {""}})
	if res.code != http.StatusSeeOther || len(e.extra.released) != 1 || e.extra.released[0] != "RSV-NS" {
		t.Fatalf("confirmed: %d, released %v", res.code, e.extra.released)
	}
	if body := c.get(res.location).body; !strings.Contains(body, `id="released"`) || strings.Contains(body, `data-ref="RSV-NS"`) {
		t.Error("the vault still lists the released card")
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "ito vault.release") {
		t.Errorf("audit log %v lacks the release", e.store.actions())
	}
}
