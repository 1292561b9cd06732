package gateway_test

import (
	"context"
	"github.com/sterad/sterad/internal/testutil"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

func presentSale(h *harness, amount string) *sterad.Transaction {
	h.t.Helper()
	h.term.present(chipVisa)
	return h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: amount})
}

// While the acquirer is unreachable, card-present sales within the limits
// are approved locally and queued; when the link is back they are reported
// once as 0220 SI=1 with the local code and the decision's DE 7.
func TestStandInAndForward(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	s1 := presentSale(h, "12000")
	if s1.Status != sterad.StatusStoodIn || !s1.Offline || s1.LocalCode == "" || s1.AuthCode != s1.LocalCode || s1.TerminalResult != "done" {
		t.Fatalf("stand-in: %+v", s1)
	}
	if out := h.term.shown(); out[0].Status != "approved" || !strings.Contains(strings.Join(out[0].Lines, " "), "OFFLINE") {
		t.Fatalf("terminal outcome: %+v", out[0])
	}
	// Above the floor limit: declined with the reason.
	big := presentSale(h, "50001")
	if big.Status != sterad.StatusDeclined || !strings.Contains(big.Reason, "floor limit") {
		t.Fatalf("above the floor limit: %s %q", big.Status, big.Reason)
	}
	// Keyed sales are not stood in; refunds are deferred.
	keyedTx := h.mustSubmit(keyedSale("4111111111111111", "1000"))
	if keyedTx.Status != sterad.StatusDeclined || !strings.Contains(keyedTx.Reason, "unreachable") {
		t.Fatalf("keyed offline: %s %q", keyedTx.Status, keyedTx.Reason)
	}
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: s1.ID, Amount: "2000"})
	if refund.Status != sterad.StatusPending || !refund.Offline {
		t.Fatalf("deferred refund: %+v", refund)
	}
	pre := func() *sterad.Transaction {
		h.term.present(chipVisa)
		return h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-OFF", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	}()
	if pre.Status != sterad.StatusStoodIn {
		t.Fatalf("stood-in preauth: %+v", pre)
	}
	q, _ := h.gw.Queue(context.Background())
	if len(q) != 3 {
		t.Fatalf("queue: %+v", q)
	}
	if len(h.host.messages()) != 0 {
		t.Fatal("something reached the host while it was unreachable")
	}

	h.clock.Advance(10 * time.Minute)
	h.host.online.Store(true)
	if n, err := h.gw.Flush(context.Background()); err != nil || n != 3 {
		t.Fatalf("flush: %d %v", n, err)
	}
	msgs := h.host.messages()
	// The stood-in sale's advice goes first, and its refund only after it;
	// the stood-in pre-authorization's 0100 depends on nothing.
	if got := mtis(msgs); len(got) != 3 || got[0] != "0220" || slices.Index(got, "0200") < slices.Index(got, "0220") {
		t.Fatalf("forwarded %v", got)
	}
	slices.SortStableFunc(msgs, func(a, b *sterad.HostMessage) int { return strings.Compare(string(b.MTI), string(a.MTI)) })
	adv := msgs[0]
	if !adv.StandIn || adv.AuthCode != s1.LocalCode || !adv.Transmitted.Equal(s1.Transmitted) || adv.Condition != "00" || adv.STAN != s1.STAN {
		t.Fatalf("stand-in advice: %+v", adv)
	}
	if msgs[1].MTI != "0200" || msgs[1].Processing != "200000" || !msgs[1].Transmitted.After(s1.Transmitted) {
		t.Fatalf("deferred refund sent with a fresh DE 7: %+v", msgs[1])
	}
	for id, want := range map[string]sterad.Status{s1.ID: sterad.StatusApproved, refund.ID: sterad.StatusApproved, pre.ID: sterad.StatusApproved} {
		if got, _ := h.gw.Transaction(context.Background(), id); got.Status != want {
			t.Errorf("%s: %s, want %s", id, got.Status, want)
		}
	}
	if p, _ := h.gw.Transaction(context.Background(), pre.ID); p.HostTI == "" {
		t.Fatal("the stood-in pre-authorization has no TI after its 0100")
	}
	if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("queue after the flush: %+v", q)
	}
}

// An advice the issuer declines marks the sale declined, offline, and
// raises an alert.
func TestStandInDeclinedLater(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	c := chipVisa
	c.PAN = "4000000000009995"
	h.term.present(c)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
	if tx.Status != sterad.StatusStoodIn {
		t.Fatalf("stand-in: %s", tx.Status)
	}
	h.host.online.Store(true)
	h.gw.Flush(context.Background())
	tx, _ = h.gw.Transaction(context.Background(), tx.ID)
	if tx.Status != sterad.StatusDeclined || !tx.Offline || !strings.Contains(tx.Reason, "ALERT") {
		t.Fatalf("declined advice: %s %q", tx.Status, tx.Reason)
	}
	alerts, _ := h.gw.Alerts(context.Background())
	if len(alerts) != 1 || alerts[0].ID != tx.ID {
		t.Fatalf("alerts: %+v", alerts)
	}
}

func TestOfflineLimits(t *testing.T) {
	h := newHarness(t) // limits: floor 50,000, total 500,000, count 100
	h.host.online.Store(false)
	for i := 0; i < 10; i++ {
		if s := presentSale(h, "50000"); s.Status != sterad.StatusStoodIn {
			t.Fatalf("stand-in %d: %s %q", i, s.Status, s.Reason)
		}
	}
	over := presentSale(h, "1")
	if over.Status != sterad.StatusDeclined || !strings.Contains(over.Reason, "would exceed") {
		t.Fatalf("over the total limit: %s %q", over.Status, over.Reason)
	}
}

// Items older than max_age are parked, never dropped; a flush sends them.
func TestParkedItems(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	s := presentSale(h, "1000")
	h.clock.Advance(49 * time.Hour)                   // max_age is 48h
	h.gw.LinkChanged(sterad.LinkStatus{Online: true}) // wakes the forwarder: it parks the item
	testutil.Eventually(t, "the condition", func() bool {
		q, _ := h.gw.Queue(context.Background())
		return len(q) == 1 && q[0].Parked
	})
	if got, _ := h.gw.Transaction(context.Background(), s.ID); got.Status != sterad.StatusStoodIn {
		t.Fatalf("parked stand-in: %s", got.Status)
	}
	h.host.online.Store(true)
	if n, _ := h.gw.Flush(context.Background()); n != 1 {
		t.Fatalf("flush sent %d", n)
	}
	if got, _ := h.gw.Transaction(context.Background(), s.ID); got.Status != sterad.StatusApproved {
		t.Fatalf("flushed stand-in: %s", got.Status)
	}
}

// A card check cannot be answered offline: 503, nothing stored.
func TestCardCheckOffline(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	_, err := h.submit(sterad.Request{Op: "cardcheck", PAN: "4111111111111111", Expiry: "2812"})
	if sterad.ErrorKind(err) != sterad.EUnavailable || !strings.Contains(sterad.ErrorMessage(err), "unreachable") {
		t.Fatalf("offline card check: %v", err)
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{}); len(txns) != 0 {
		t.Fatalf("stored %d", len(txns))
	}
}

// A completion made while offline waits for its stood-in pre-authorization's
// 0100, which gives it the TI it completes; a refund of a stood-in sale
// waits for the sale's advice.
func TestDrainRespectsDependencies(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	h.term.present(chipVisa)
	pre := h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-D", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	comp := h.mustSubmit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "31000"})
	sale := presentSale(h, "5000")
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "5000"})
	if pre.Status != sterad.StatusStoodIn || comp.Status != sterad.StatusPending || refund.Status != sterad.StatusPending {
		t.Fatalf("offline: %s %s %s", pre.Status, comp.Status, refund.Status)
	}
	h.host.online.Store(true)
	h.gw.Flush(context.Background())
	msgs := h.host.messages()
	order := map[string]int{}
	for i, m := range msgs {
		order[string(m.MTI)+m.Processing] = i
	}
	// 0220 of the stood-in sale before its refund's 0200; the 0100 before
	// the completion's 0220, which carries the TI the 0100 got.
	var comp0220 *sterad.HostMessage
	for _, m := range msgs {
		if m.MTI == "0220" && m.TI != "" {
			comp0220 = m
		}
	}
	p, _ := h.gw.Transaction(context.Background(), pre.ID)
	if comp0220 == nil || comp0220.TI != p.HostTI || p.HostTI == "" {
		t.Fatalf("the completion went without its pre-authorization's TI: %v", mtis(msgs))
	}
	for _, id := range []string{pre.ID, comp.ID, sale.ID, refund.ID} {
		if tx, _ := h.gw.Transaction(context.Background(), id); tx.Status != sterad.StatusApproved {
			t.Errorf("%s %s: %s (%s)", tx.Op, id, tx.Status, tx.Reason)
		}
	}
	if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("left in the queue: %+v", q)
	}
}
