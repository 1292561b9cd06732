package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// The harness clock is 2026-11-21 10:00 JST.
func guarantee(ref, pan string) sterad.Request {
	return sterad.Request{Op: "cardcheck", PAN: pan, Expiry: "2812", Reference: ref, CheckIn: "2026-11-21", CheckOut: "2026-11-22"}
}

func noShow(ref string) sterad.Request {
	return sterad.Request{Op: "noshow", Reference: ref, Amount: "18000", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}
}

func TestCardCheckKeyed(t *testing.T) {
	h := newHarness(t)
	cc := h.mustSubmit(sterad.Request{Op: "cardcheck", PAN: "5555555555554444", Expiry: "2812"})
	if cc.Status != sterad.StatusApproved || cc.ResponseCode != "85" || cc.Batch != 0 || !cc.Amount.IsZero() {
		t.Fatalf("card check: %+v", cc)
	}
	m := h.host.messages()[0]
	if m.MTI != "0100" || !m.HasAmount || m.Amount.Minor() != 0 || m.Condition != "51" || m.Entry.POSEntryMode() != "012" || m.WantToken || m.Batch != 0 {
		t.Fatalf("0100: %+v", m)
	}
	// A plain card check keeps nothing.
	if _, err := h.db.OpenCard(context.Background(), cc.ID); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the card check kept its card: %v", err)
	}
	for pan, reason := range map[string]string{"4000000000000002": "do not honor", "4000000000009995": "insufficient", "4000000000000069": "expired"} {
		d := h.mustSubmit(sterad.Request{Op: "cardcheck", PAN: pan, Expiry: "2812"})
		if d.Status != sterad.StatusDeclined || !strings.Contains(d.Reason, reason) {
			t.Errorf("%s: %s %q", sterad.MaskPAN(pan), d.Status, d.Reason)
		}
	}
	// Offline: no answer without the acquirer, nothing stored.
	h.host.online.Store(false)
	_, err := h.submit(sterad.Request{Op: "cardcheck", PAN: "5555555555554444", Expiry: "2812"})
	if sterad.ErrorKind(err) != sterad.EUnavailable {
		t.Fatalf("offline card check: %v", err)
	}
}

func TestGuaranteeVaultAndNoShow(t *testing.T) {
	h := newHarness(t)
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		r, _ := h.host.approve(m)
		if m.WantToken && r.ResponseCode == "85" {
			r.Token = "TK00000000000042"
		}
		return r, nil
	}
	cc := h.mustSubmit(guarantee("RSV-1", "4111111111111111"))
	if cc.Status != sterad.StatusApproved || cc.Token != "TK00000000000042" || !h.host.messages()[0].WantToken {
		t.Fatalf("guarantee card check: %+v", cc)
	}
	vault, _ := h.gw.Vault(context.Background())
	if len(vault) != 1 || vault[0].Reference != "RSV-1" || vault[0].MaskedPAN != "411111******1111" ||
		!vault[0].RetainUntil.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, jst)) {
		t.Fatalf("vault: %+v", vault)
	}

	// Before 18:00 on the arrival day: too early.
	if _, err := h.submit(noShow("RSV-1")); sterad.ErrorCode(err) != "noshow_too_early" {
		t.Fatalf("too early: %v", err)
	}
	h.clock.Set(time.Date(2026, 11, 21, 18, 0, 0, 0, jst))
	ns := h.mustSubmit(noShow("RSV-1")) // uses the vaulted card
	if ns.Status != sterad.StatusApproved || ns.MaskedPAN != "411111******1111" || ns.Batch != 1 {
		t.Fatalf("no-show: %+v", ns)
	}
	m := h.host.messages()[1]
	if m.MTI != "0200" || m.Entry.POSEntryMode() != "012" || m.Condition != "08" || m.MerchantInitiated != "NS" ||
		m.Reference != "RSV-1" || m.Stay == nil || m.PAN != "4111111111111111" || m.TerminalID != "VIRT0001" {
		t.Fatalf("no-show 0200: %+v", m)
	}
	// Charged: the guarantee card is destroyed.
	if v, _ := h.gw.Vault(context.Background()); len(v) != 0 {
		t.Fatalf("vault after the charge: %+v", v)
	}
	if _, err := h.db.OpenCard(context.Background(), sterad.VaultOwner("RSV-1")); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("vault card after the charge: %v", err)
	}
	if _, err := h.submit(noShow("RSV-1")); sterad.ErrorCode(err) != "already_charged" || sterad.ErrorKind(err) != sterad.EConflict {
		t.Fatalf("second no-show: %v", err)
	}
	// A mistaken no-show is voided; then it can be charged again (keyed).
	if v := h.mustSubmit(sterad.Request{Op: "void", Original: ns.ID}); v.Status != sterad.StatusApproved {
		t.Fatalf("void: %+v", v)
	}
	r := noShow("RSV-1")
	r.PAN, r.Expiry = "5555555555554444", "2812"
	if again := h.mustSubmit(r); again.Status != sterad.StatusApproved || again.Brand != sterad.BrandMastercard {
		t.Fatalf("keyed no-show after the void: %+v", again)
	}
}

func TestNoShowWithToken(t *testing.T) {
	h := newHarness(t)
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		r, _ := h.host.approve(m)
		if m.WantToken {
			r.Token = "TK00000000000077"
		}
		return r, nil
	}
	h.mustSubmit(guarantee("RSV-2", "3530111333300000"))
	h.clock.Set(time.Date(2026, 11, 22, 9, 0, 0, 0, jst))
	r := noShow("RSV-2")
	r.Token = "TK00000000000099"
	if _, err := h.submit(r); sterad.ErrorCode(err) != "unknown_token" {
		t.Fatalf("unknown token: %v", err)
	}
	r.Token = "TK00000000000077"
	ns := h.mustSubmit(r)
	m := h.host.messages()[len(h.host.messages())-1]
	if ns.Status != sterad.StatusApproved || m.Entry.POSEntryMode() != "102" || m.Token != "TK00000000000077" || m.PAN != "" {
		t.Fatalf("token no-show: %+v / %+v", ns, m)
	}
}

func TestNoShowBadInput(t *testing.T) {
	h := newHarness(t)
	h.clock.Set(time.Date(2026, 11, 22, 9, 0, 0, 0, jst))
	for name, tt := range map[string]struct {
		r    sterad.Request
		code string
	}{
		"no reference":   {sterad.Request{Op: "noshow", Amount: "1000", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}, "missing_reference"},
		"no stay":        {sterad.Request{Op: "noshow", Amount: "1000", Reference: "R"}, "missing_stay"},
		"unknown ref":    {noShow("NOPE"), "no_card_kept"},
		"bad token":      {sterad.Request{Op: "noshow", Amount: "1000", Reference: "R", CheckIn: "2026-11-21", CheckOut: "2026-11-22", Token: "short"}, "invalid_token"},
		"card and token": {sterad.Request{Op: "noshow", Amount: "1000", Reference: "R", CheckIn: "2026-11-21", CheckOut: "2026-11-22", Token: "TK00000000000077", PAN: "4111111111111111", Expiry: "2812"}, "ambiguous_card"},
		"at a terminal":  {sterad.Request{Op: "noshow", Amount: "1000", Reference: "R", CheckIn: "2026-11-21", CheckOut: "2026-11-22", Terminal: "FRONT001"}, "unexpected_terminal"},
		"stay, no ref":   {sterad.Request{Op: "cardcheck", PAN: "4111111111111111", Expiry: "2812", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}, "missing_reference"},
	} {
		if _, err := h.submit(tt.r); sterad.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", name, err, tt.code)
		}
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{}); len(txns) != 0 {
		t.Fatalf("bad input stored %d transactions", len(txns))
	}
}

// The guarantee card goes when the guest checks in, when the reservation is
// cancelled, and when its retention ends.
func TestVaultRelease(t *testing.T) {
	h := newHarness(t)
	for _, ref := range []string{"CHECKIN", "CANCEL", "EXPIRE"} {
		h.mustSubmit(guarantee(ref, "4111111111111111"))
	}
	// Check-in: a card-present transaction with the same reference.
	h.term.present(chipVisa)
	h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "CHECKIN", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if _, err := h.gw.ReleaseVault(context.Background(), "CANCEL"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.ReleaseVault(context.Background(), "CANCEL"); sterad.ErrorKind(err) != sterad.ENotFound {
		t.Fatalf("second release: %v", err)
	}
	v, _ := h.gw.Vault(context.Background())
	if len(v) != 1 || v[0].Reference != "EXPIRE" {
		t.Fatalf("vault: %+v", v)
	}
	res, _ := h.gw.Purge(context.Background())
	if len(res.Vault) != 0 {
		t.Fatalf("purged before its retention: %+v", res.Vault)
	}
	h.clock.Set(time.Date(2026, 11, 30, 0, 0, 0, 0, jst)) // check-out 22nd + 1 day + 7 days
	res, _ = h.gw.Purge(context.Background())
	if len(res.Vault) != 1 || res.Vault[0].Reference != "EXPIRE" {
		t.Fatalf("purge: %+v", res)
	}
	for _, ref := range []string{"CHECKIN", "CANCEL", "EXPIRE"} {
		if _, err := h.db.OpenCard(context.Background(), sterad.VaultOwner(ref)); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("%s: card still kept (%v)", ref, err)
		}
	}
}

// tokenHost answers card checks that ask for a token with one token per
// card number, as a host does.
func tokenHost(h *harness) {
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		r, _ := h.host.approve(m)
		if m.WantToken && (r.ResponseCode == "85" || r.ResponseCode == "00") {
			r.Token = "TK" + string(m.PAN[len(m.PAN)-14:])
		}
		return r, nil
	}
}

func sent(h *harness, mti sterad.MTI) int {
	n := 0
	for _, m := range h.host.messages() {
		if m.MTI == mti {
			n++
		}
	}
	return n
}

// Issue 9 #4: the no-show is checked against the stay the reservation was
// guaranteed for, never the stay typed in the request.
func TestNoShowUsesTheStoredStay(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	later := guarantee("RSV-LATER", "4111111111111111")
	later.CheckIn, later.CheckOut = "2026-12-05", "2026-12-07" // arrives in two weeks
	cc := h.mustSubmit(later)
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))

	for name, r := range map[string]sterad.Request{
		"vault card": noShow("RSV-LATER"),
		"token":      func() sterad.Request { r := noShow("RSV-LATER"); r.Token = cc.Token; return r }(),
		"keyed": func() sterad.Request {
			r := noShow("RSV-LATER")
			r.PAN, r.Expiry = "5555555555554444", "2812"
			return r
		}(),
	} {
		_, err := h.submit(r)
		if sterad.ErrorCode(err) != "stay_mismatch" || sterad.ErrorKind(err) != sterad.EConflict {
			t.Fatalf("%s: a typed stay of today against a stored stay in two weeks: %v", name, err)
		}
		if msg := sterad.ErrorMessage(err); !strings.Contains(msg, "2026-12-05") || !strings.Contains(msg, "2026-11-21") {
			t.Errorf("%s: the refusal names both stays: %q", name, msg)
		}
	}
	// With the stored stay typed: too early, by the stored arrival day.
	r := noShow("RSV-LATER")
	r.CheckIn, r.CheckOut = "2026-12-05", "2026-12-07"
	if _, err := h.submit(r); sterad.ErrorCode(err) != "noshow_too_early" || !strings.Contains(sterad.ErrorMessage(err), "2026-12-05") {
		t.Fatalf("no-show before the stored arrival: %v", err)
	}
	if n := sent(h, sterad.MTIFinancial); n != 0 {
		t.Fatalf("%d no-show charges sent", n)
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{Op: sterad.OpNoShow}); len(txns) != 0 {
		t.Fatalf("refused no-shows stored: %+v", txns)
	}
	// On the stored arrival day after 18:00 it is charged.
	h.clock.Set(time.Date(2026, 12, 5, 18, 0, 0, 0, jst))
	if ns := h.mustSubmit(r); ns.Status != sterad.StatusApproved {
		t.Fatalf("no-show on the stored arrival day: %+v", ns)
	}
}

// Issue 9 #5: a token is bound to the reservation that obtained it and
// dies with it.
func TestTokenDiesWithItsReservation(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	a := h.mustSubmit(guarantee("RSV-A", "4111111111111111"))
	b := h.mustSubmit(guarantee("RSV-B", "5555555555554444"))
	h.mustSubmit(guarantee("RSV-IN", "3530111333300000"))
	h.mustSubmit(guarantee("RSV-OLD", "378282246310005"))
	if a.Token == "" || b.Token == "" || a.Token == b.Token {
		t.Fatalf("tokens: %q %q", a.Token, b.Token)
	}
	// Released: cancelled, checked in, retention ended.
	if _, err := h.gw.ReleaseVault(context.Background(), "RSV-A"); err != nil {
		t.Fatal(err)
	}
	h.term.present(chipVisa)
	h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "RSV-IN", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	inToken := "TK30111333300000"

	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	withToken := func(ref, token string) sterad.Request {
		r := noShow(ref)
		r.Token = token
		return r
	}
	for name, tt := range map[string]struct {
		r    sterad.Request
		code string
	}{
		"cancelled":          {withToken("RSV-A", a.Token), "reservation_released"},
		"cancelled, vault":   {noShow("RSV-A"), "reservation_released"},
		"checked in":         {withToken("RSV-IN", inToken), "reservation_released"},
		"another reference":  {withToken("RSV-X", b.Token), "token_mismatch"},
		"another guarantee":  {withToken("RSV-B", a.Token), "token_mismatch"},
		"released elsewhere": {withToken("RSV-X", a.Token), "token_mismatch"},
	} {
		_, err := h.submit(tt.r)
		if sterad.ErrorCode(err) != tt.code || sterad.ErrorKind(err) != sterad.EConflict {
			t.Errorf("%s: %v, want 409 %s", name, err, tt.code)
			continue
		}
		if msg := sterad.ErrorMessage(err); tt.r.Token != "" && strings.Contains(msg, tt.r.Token) {
			t.Errorf("%s: the refusal echoes the token: %q", name, msg)
		}
	}
	if n := sent(h, sterad.MTIFinancial); n != 0 {
		t.Fatalf("%d no-show charges sent for dead or foreign tokens", n)
	}
	// Its own token charges its own reservation once.
	if ns := h.mustSubmit(withToken("RSV-B", b.Token)); ns.Status != sterad.StatusApproved {
		t.Fatalf("RSV-B with its token: %+v", ns)
	}
	if _, err := h.submit(withToken("RSV-B", b.Token)); sterad.ErrorCode(err) != "already_charged" {
		t.Fatalf("RSV-B charged twice: %v", err)
	}
	// The retention purge releases the reservation and its token.
	h.clock.Set(time.Date(2026, 11, 30, 0, 0, 0, 0, jst))
	if _, err := h.gw.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.submit(withToken("RSV-OLD", "TK78282246310005")); sterad.ErrorCode(err) != "reservation_released" {
		t.Fatalf("token after the retention purge: %v", err)
	}
}

// A reservation charged as a no-show keeps its token (its card is
// destroyed), so that a charge voided by mistake can be made again. The
// token still dies with the reservation: the hotel can release it, the
// guest's check-in releases it, and the retention purge releases it,
// whether or not it was ever charged.
func TestChargedReservationsTokenDies(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	a := h.mustSubmit(guarantee("RSV-C", "4111111111111111"))
	b := h.mustSubmit(guarantee("RSV-D", "5555555555554444"))
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	for _, ref := range []string{"RSV-C", "RSV-D"} {
		ns := h.mustSubmit(noShow(ref))
		if v := h.mustSubmit(sterad.Request{Op: "void", Original: ns.ID}); v.Status != sterad.StatusApproved {
			t.Fatalf("void of %s's no-show: %+v", ref, v)
		}
	}
	// The charge was voided: the reservation's token charges it again.
	again := h.mustSubmit(noShow("RSV-C"))
	if again.Status != sterad.StatusApproved || again.Entry != sterad.EntryToken {
		t.Fatalf("no-show by reference after the void: %+v", again)
	}
	// Charged: the hotel can still release it; the token dies.
	e, err := h.gw.ReleaseVault(context.Background(), "RSV-C")
	if err != nil || e.Reference != "RSV-C" {
		t.Fatalf("release of a charged reservation = %+v, %v", e, err)
	}
	r := noShow("RSV-C")
	r.Token = a.Token
	if _, err := h.submit(r); sterad.ErrorCode(err) != "reservation_released" {
		t.Fatalf("its token after the release: %v", err)
	}
	// Its charge stands: a released reservation's charge is voided or
	// refunded as any other.
	if v := h.mustSubmit(sterad.Request{Op: "void", Original: again.ID}); v.Status != sterad.StatusApproved {
		t.Fatalf("void after the release: %+v", v)
	}
	// Charged, voided, and the guest arrives after all: the check-in with
	// a card at the terminal releases the reservation and its token.
	e2 := h.mustSubmit(guarantee("RSV-E", "3530111333300000"))
	if v := h.mustSubmit(sterad.Request{Op: "void", Original: h.mustSubmit(noShow("RSV-E")).ID}); v.Status != sterad.StatusApproved {
		t.Fatalf("void of RSV-E's no-show: %+v", v)
	}
	h.term.present(chipVisa)
	h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "RSV-E", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	r = noShow("RSV-E")
	r.Token = e2.Token
	if _, err := h.submit(r); sterad.ErrorCode(err) != "reservation_released" {
		t.Fatalf("RSV-E's token after the check-in: %v", err)
	}
	// The retention purge releases a charged reservation too.
	h.clock.Set(time.Date(2026, 11, 30, 0, 0, 0, 0, jst))
	res, err := h.gw.Purge(context.Background())
	if err != nil || len(res.Vault) != 1 || res.Vault[0].Reference != "RSV-D" {
		t.Fatalf("purge = %+v, %v; want RSV-D released", res, err)
	}
	r = noShow("RSV-D")
	r.Token = b.Token
	if _, err := h.submit(r); sterad.ErrorCode(err) != "reservation_released" {
		t.Fatalf("RSV-D's token after the retention purge: %v", err)
	}
	if n := sent(h, sterad.MTIFinancial); n != 4 {
		t.Fatalf("%d 0200s sent, want 4 (three no-shows, one again after its void)", n)
	}
}

// Issue 9 #6: a reference on a card check means "guarantee this
// reservation", which needs its stay.
func TestCardCheckReferenceNeedsStay(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	_, err := h.submit(sterad.Request{Op: "cardcheck", PAN: "4111111111111111", Expiry: "2812", Reference: "RSV-NOSTAY"})
	if sterad.ErrorCode(err) != "missing_stay" || sterad.ErrorKind(err) != sterad.EInvalid {
		t.Fatalf("card check with a reference and no stay: %v", err)
	}
	if len(h.host.messages()) != 0 {
		t.Fatalf("sent: %+v", h.host.messages())
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{}); len(txns) != 0 {
		t.Fatalf("stored: %+v", txns)
	}
}

// Issue 9 #15b: a no-show by token carries the brand and masked card of
// the card check that issued the token, so the settlement report counts
// its fee.
func TestTokenNoShowHasTheCardsBrand(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	cc := h.mustSubmit(guarantee("RSV-JCB", "3530111333300000"))
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	r := noShow("RSV-JCB")
	r.Token = cc.Token
	ns := h.mustSubmit(r)
	if ns.Status != sterad.StatusApproved || ns.Brand != sterad.BrandJCB || ns.MaskedPAN != "353011******0000" || ns.Entry != sterad.EntryToken {
		t.Fatalf("token no-show: brand %q card %q entry %q (%s)", ns.Brand, ns.MaskedPAN, ns.Entry, ns.Status)
	}
}

// A keyed no-show for a reservation sterad never checked records the
// reservation with the typed stay: a second charge is refused the same
// way, whatever stay it types.
func TestKeyedNoShowRecordsTheReservation(t *testing.T) {
	h := newHarness(t)
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	r := noShow("RSV-WALK")
	r.PAN, r.Expiry = "5555555555554444", "2812"
	if ns := h.mustSubmit(r); ns.Status != sterad.StatusApproved {
		t.Fatalf("keyed no-show: %+v", ns)
	}
	again := r
	again.CheckIn, again.CheckOut = "2026-11-20", "2026-11-21"
	if _, err := h.submit(again); sterad.ErrorCode(err) != "stay_mismatch" {
		t.Fatalf("second keyed no-show with another stay: %v", err)
	}
	if _, err := h.submit(r); sterad.ErrorCode(err) != "already_charged" {
		t.Fatalf("second keyed no-show: %v", err)
	}
}

// A guarantee kept before reservations were stored (a vault entry alone)
// reads as its reservation: its stay decides, and the first write stores
// the reservation.
func TestVaultEntryWithoutReservation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	stay := sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 22}}
	card := &sterad.Card{PAN: "5555555555554444", Expiry: sterad.Expiry{Year: 2028, Month: 12}, Entry: sterad.EntryKeyed, Brand: sterad.BrandMastercard}
	if err := h.db.Apply(ctx, sterad.Change{
		SealCards: []sterad.SealCard{{Owner: sterad.VaultOwner("RSV-OLD"), Card: card}},
		PutVault: []*sterad.VaultEntry{{Reference: "RSV-OLD", MaskedPAN: "555555******4444", Brand: sterad.BrandMastercard, Stay: stay,
			Token: "TK00000000000555", CreatedAt: h.clock.Now(), RetainUntil: time.Date(2026, 11, 30, 0, 0, 0, 0, jst)}},
	}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	r := noShow("RSV-OLD")
	r.CheckIn = "2026-11-20"
	if _, err := h.submit(r); sterad.ErrorCode(err) != "stay_mismatch" {
		t.Fatalf("typed stay against the vault entry's: %v", err)
	}
	r = noShow("RSV-OLD")
	r.Token = "TK00000000000555"
	ns := h.mustSubmit(r)
	if ns.Status != sterad.StatusApproved || ns.Brand != sterad.BrandMastercard {
		t.Fatalf("no-show with the vault entry's token: %+v", ns)
	}
	got, err := h.gw.Reservation(ctx, "RSV-OLD")
	if err != nil || got.State != sterad.ReservationCharged || got.Version == 0 || len(got.Charges) != 1 || got.Charges[0] != ns.ID || got.CardKept {
		t.Fatalf("reservation after the charge: %v %+v", err, got)
	}
	if v, _ := h.gw.Vault(ctx); len(v) != 0 {
		t.Fatalf("vault after the charge: %+v", v)
	}
}

// No-shows, releases and purges racing on one reservation: at most one
// charge, and the stored reservation agrees with what happened.
func TestReservationRaces(t *testing.T) {
	h := newHarness(t)
	tokenHost(h)
	cc := h.mustSubmit(guarantee("RSV-RACE", "4111111111111111"))
	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	ctx := context.Background()
	const n = 8
	errs := make(chan error, 3*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			r := noShow("RSV-RACE")
			if i%2 == 0 {
				r.Token = cc.Token
			}
			r.Wait = true
			_, err := h.submit(r)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := h.gw.ReleaseVault(ctx, "RSV-RACE")
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := h.gw.Purge(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		switch sterad.ErrorCode(err) {
		case "", "already_charged", "reservation_released", "unknown_reference", "no_card_kept":
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	charges, _ := h.gw.Transactions(ctx, sterad.TransactionFilter{Op: sterad.OpNoShow})
	r, err := h.gw.Reservation(ctx, "RSV-RACE")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(charges) > 1:
		t.Fatalf("%d no-show charges", len(charges))
	case len(charges) == 1 && (r.State != sterad.ReservationCharged && r.State != sterad.ReservationReleased || len(r.Charges) != 1 || r.Charges[0] != charges[0].ID):
		// Charged, and perhaps released after the charge (its token dead).
		t.Fatalf("charged %s, reservation %+v", charges[0].ID, r)
	case len(charges) == 0 && r.State != sterad.ReservationReleased:
		t.Fatalf("nothing charged, reservation %+v", r)
	}
	if r.CardKept || r.Token != "" && r.State == sterad.ReservationReleased {
		t.Fatalf("released but kept: %+v", r)
	}
	if _, err := h.db.OpenCard(ctx, sterad.VaultOwner("RSV-RACE")); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("guarantee card still kept: %v", err)
	}
}
