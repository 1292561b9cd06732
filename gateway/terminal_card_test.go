package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// swipeVisa is a swiped Visa whose track 2 agrees with its pan and expiry.
var swipeVisa = sterad.Card{PAN: "4111111111111111", Expiry: sterad.Expiry{Year: 2028, Month: 12}, Entry: sterad.EntrySwipe,
	Brand: sterad.BrandVisa, Track2: sterad.Sensitive("4111111111111111=2812101123456789")}

// A card whose track 2 or chip data name another card than its `pan` is
// refused at the terminal before anything reaches the host: sterad would
// record one card while the host charged another (issue 9 #7).
func TestTerminalCardDisagreementRefused(t *testing.T) {
	tests := []struct {
		name   string
		card   func(c *sterad.Card)
		reason string
	}{
		{"track 2 of another card", func(c *sterad.Card) { c.Track2 = sterad.Sensitive("5555555555554444=2812101123456789") }, "track 2"},
		{"track 2 with another expiry", func(c *sterad.Card) { c.Track2 = sterad.Sensitive("4111111111111111=3001101123456789") }, "track 2"},
		{"malformed track 2", func(c *sterad.Card) { c.Track2 = sterad.Sensitive("4111111111111111+2812101") }, "track 2"},
		{"track 2 failing Luhn", func(c *sterad.Card) { c.Track2 = sterad.Sensitive("4111111111111112=2812101") }, "track 2"},
		{"chip data of another card", func(c *sterad.Card) {
			c.Entry, c.Track2 = sterad.EntryChip, nil
			c.ICC = sterad.Sensitive{0x5a, 0x08, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x44, 0x44}
		}, "chip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := swipeVisa
			c.Track2 = append(sterad.Sensitive(nil), c.Track2...)
			tt.card(&c)
			h.term.present(c)
			tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
			if tx.Status != sterad.StatusDeclined || !strings.Contains(tx.Reason, tt.reason) || tx.TerminalResult != "done" || tx.Step != sterad.StepDone {
				t.Fatalf("sale: %s %s %q %q", tx.Status, tx.Step, tx.TerminalResult, tx.Reason)
			}
			if msgs := h.host.messages(); len(msgs) != 0 {
				t.Fatalf("the host saw %v", mtis(msgs))
			}
			out := h.term.shown()
			if len(out) != 1 || out[0].Status != "declined" {
				t.Fatalf("outcome: %+v", out)
			}
			if tx.HasCard {
				t.Fatal("the refused card is kept")
			}
			for _, s := range append([]string{tx.Reason}, out[0].Lines...) {
				if strings.Contains(s, "5555555555554444") || strings.Contains(s, "4111111111111111") {
					t.Fatalf("card data shown: %q", s)
				}
			}
		})
	}
}

// A refund read at the terminal goes back to the charged card: a swipe
// whose `pan` is the charged card but whose track 2 names another one is
// refused, so no money is sent to a card that was never charged.
func TestTerminalRefundToTrack2OfAnotherCardRefused(t *testing.T) {
	h := newHarness(t)
	h.term.present(swipeVisa)
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if sale.Status != sterad.StatusApproved {
		t.Fatalf("sale: %+v", sale)
	}
	other := swipeVisa
	other.Track2 = sterad.Sensitive("5555555555554444=2812101123456789")
	h.term.present(other)
	refund := h.mustSubmit(sterad.Request{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "12800"})
	if refund.Status != sterad.StatusDeclined || !strings.Contains(refund.Reason, "track 2") {
		t.Fatalf("refund: %s %q", refund.Status, refund.Reason)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200" {
		t.Fatalf("the host saw %s", got)
	}
	orig, err := h.gw.Transaction(context.Background(), sale.ID)
	if err != nil || !orig.Refunded.IsZero() {
		t.Fatalf("original after the refused refund: %v %+v", err, orig)
	}
	// The right card is refunded.
	h.term.present(swipeVisa)
	if r := h.mustSubmit(sterad.Request{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "12800"}); r.Status != sterad.StatusApproved {
		t.Fatalf("refund to the charged card: %s %q", r.Status, r.Reason)
	}
}

// The brand comes from the card number's own range, not from the
// terminal's claim; the claim fills in only a range sterad does not know
// (issue 9 #15a).
func TestTerminalBrandFromCardRange(t *testing.T) {
	tests := []struct {
		pan     sterad.PAN
		claimed sterad.Brand
		want    sterad.Brand
	}{
		{"4111111111111111", sterad.BrandAmex, sterad.BrandVisa},
		{"3530111333300000", sterad.BrandVisa, sterad.BrandJCB},
		{"6011000000000004", sterad.BrandDiners, sterad.BrandDiners}, // a range sterad does not know
	}
	for _, tt := range tests {
		h := newHarness(t)
		c := chipVisa
		c.PAN, c.Brand = tt.pan, tt.claimed
		h.term.present(c)
		tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "1000"})
		if tx.Status != sterad.StatusApproved || tx.Brand != tt.want {
			t.Errorf("%s claimed %s: %s, brand %s, want %s", tt.pan, tt.claimed, tx.Status, tx.Brand, tt.want)
		}
		out := h.term.shown()
		if len(out) != 1 || !strings.Contains(strings.Join(out[0].Lines, "\n"), strings.ToUpper(string(tt.want))) {
			t.Errorf("%s: slip %+v", tt.pan, out)
		}
	}
}
