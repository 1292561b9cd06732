package sterad_test

import (
	"context"
	"errors"
	"strings"
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
