package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sterad/sterad"
)

// Issue 9, defect 1: a refunded sale could still be voided; the host
// reversed the sale and the refund stayed.
func TestVoidOfRefundedSaleIsRefused(t *testing.T) {
	h := newHarness(t)
	sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
	if r := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "3000"}); r.Status != sterad.StatusApproved {
		t.Fatalf("refund: %s", r.Status)
	}
	sent := len(h.host.messages())
	_, err := h.submit(sterad.Request{Op: "void", Original: sale.ID})
	if sterad.ErrorCode(err) != "has_refunds" || !strings.Contains(sterad.ErrorMessage(err), "refund what is left (5000") {
		t.Fatalf("void of a refunded sale: %v, want has_refunds", err)
	}
	if len(h.host.messages()) != sent {
		t.Fatal("the void reached the host")
	}
	if s, _ := h.gw.Transaction(context.Background(), sale.ID); s.Status != sterad.StatusApproved || s.VoidedBy != "" {
		t.Fatalf("sale after the refused void: %s voided by %q", s.Status, s.VoidedBy)
	}
	// The rest can still be refunded.
	if r := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "5000"}); r.Status != sterad.StatusApproved {
		t.Fatalf("refund of the rest: %s", r.Status)
	}
}

// The same when a void and refunds race: either the void wins and no
// refund is approved, or refunds win and the void is refused.
func TestVoidAndRefundsRace(t *testing.T) {
	for round := 0; round < 20; round++ {
		h := newHarness(t)
		sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
		var wg sync.WaitGroup
		var voidErr error
		var void *sterad.Transaction
		refunds := make([]*sterad.Transaction, 10)
		wg.Add(11)
		go func() {
			defer wg.Done()
			void, _, voidErr = h.gw.Submit(context.Background(), sterad.Request{Op: "void", Original: sale.ID, Wait: true})
		}()
		for i := range refunds {
			go func() {
				defer wg.Done()
				refunds[i], _, _ = h.gw.Submit(context.Background(), sterad.Request{Op: "refund", Original: sale.ID, Amount: "500", Wait: true})
			}()
		}
		wg.Wait()
		approvedRefunds := 0
		for _, r := range refunds {
			if r != nil && r.Status == sterad.StatusApproved {
				approvedRefunds++
			}
		}
		voided := voidErr == nil && void.Status == sterad.StatusApproved
		if voided && approvedRefunds > 0 {
			t.Fatalf("round %d: the void and %d refunds were all approved", round, approvedRefunds)
		}
		if !voided && approvedRefunds == 0 {
			t.Fatalf("round %d: neither the void (%v) nor any refund was approved", round, voidErr)
		}
		s, _ := h.gw.Transaction(context.Background(), sale.ID)
		if voided != (s.Status == sterad.StatusVoided) || s.Refunded.Minor() != int64(500*approvedRefunds) {
			t.Fatalf("round %d: sale %s refunded %s, want voided=%v refunded %d", round, s.Status, s.Refunded, voided, 500*approvedRefunds)
		}
	}
}

// A sale being voided cannot be refunded, and a refund in progress
// blocks a void.
func TestRefundOfSaleBeingVoidedIsRefused(t *testing.T) {
	h := newHarness(t)
	sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
	// The void's answer is lost: it is queued and repeated, the sale is
	// being voided.
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) { return nil, sterad.ErrNoResponse }
	void := h.mustSubmit(sterad.Request{Op: "void", Original: sale.ID})
	if void.Status != sterad.StatusPending || void.Step != sterad.StepQueued {
		t.Fatalf("void without an answer: %s %s", void.Status, void.Step)
	}
	h.host.answer = h.host.approve
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "1000"}); sterad.ErrorCode(err) != "void_in_progress" {
		t.Fatalf("refund of a sale being voided: %v, want void_in_progress", err)
	}
}

// Issue 9, defect 2: a refund accepted offline was sent after its
// stood-in sale's advice was declined: the guest, never charged, got
// the refund.
func TestQueuedRefundOfDeclinedStandInIsWithdrawn(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	c := chipVisa
	c.PAN = "4000000000009995" // the issuer declines it (51)
	h.term.present(c)
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
	if sale.Status != sterad.StatusStoodIn {
		t.Fatalf("stand-in: %s", sale.Status)
	}
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "2000"})
	if refund.Status != sterad.StatusPending {
		t.Fatalf("deferred refund: %s", refund.Status)
	}
	h.host.online.Store(true)
	if _, err := h.gw.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.host.messages() {
		if m.Processing == "200000" {
			t.Fatalf("the refund of a declined sale reached the host: %+v", m)
		}
	}
	refund, _ = h.gw.Transaction(context.Background(), refund.ID)
	if refund.Status != sterad.StatusDeclined || !strings.Contains(refund.Reason, "nothing to refund") {
		t.Fatalf("refund after its sale was declined: %s %q", refund.Status, refund.Reason)
	}
	if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
	if s, _ := h.gw.Transaction(context.Background(), sale.ID); !s.Refunded.IsZero() {
		t.Fatalf("declined sale still counts a refund: %s", s.Refunded)
	}
}

// Issue 9, defect 3 at its root: a stale copy of a transaction cannot
// overwrite a newer one, whichever flow holds it.
func TestStaleCopyCannotUndoARefund(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
	stale, _ := h.gw.Transaction(ctx, sale.ID) // e.g. a batch close's copy
	h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "8000"})
	stale.Printed = true
	if err := h.db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{stale}}); !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("writing back a stale copy: %v, want ErrStale", err)
	}
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "8000"}); sterad.ErrorCode(err) != "exceeds_refundable" {
		t.Fatalf("second full refund: %v, want exceeds_refundable", err)
	}
}

// Found by the model test: a refund of a sale approved offline, asked
// once the link was back but before the sale's advice was answered, went
// straight to the host — and the advice was then declined: the guest was
// refunded a charge the issuer refused. It now waits behind the advice
// and is withdrawn when the advice is declined.
func TestRefundOfUnconfirmedStandInWaitsForTheAdvice(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	c := chipVisa
	c.PAN = "4000000000009995" // the issuer declines it (51)
	h.term.present(c)
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
	if sale.Status != sterad.StatusStoodIn {
		t.Fatalf("stand-in: %s", sale.Status)
	}
	h.host.online.Store(true) // back, but nothing forwarded yet
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "2000"})
	if refund.Status != sterad.StatusPending || refund.Step != sterad.StepQueued {
		t.Fatalf("refund of an unconfirmed stand-in: %s %s, want queued behind the advice", refund.Status, refund.Step)
	}
	if _, err := h.gw.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.host.messages() {
		if m.Processing == "200000" {
			t.Fatalf("the refund reached the host: %+v", m)
		}
	}
	if r, _ := h.gw.Transaction(context.Background(), refund.ID); r.Status != sterad.StatusDeclined {
		t.Fatalf("refund after the advice was declined: %s %q", r.Status, r.Reason)
	}
	// At the terminal, the refund is refused until the sale is confirmed.
	h.host.online.Store(false)
	h.term.present(chipVisa)
	sale2 := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "3000"})
	h.host.online.Store(true)
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale2.ID, Terminal: "FRONT001", Amount: "1000"}); sterad.ErrorCode(err) != "original_unconfirmed" {
		t.Fatalf("refund at the terminal of an unconfirmed stand-in: %v", err)
	}
}
