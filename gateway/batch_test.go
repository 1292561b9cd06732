package gateway_test

import (
	"context"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
)

// dayOf puts a few transactions of each kind in batch 1: keyed on the
// virtual terminal, card present on FRONT001.
func dayOf(t *testing.T, h *harness) (sale, refunded, declined *sterad.Transaction) {
	t.Helper()
	sale = h.mustSubmit(keyedSale("4111111111111111", "10000"))
	refunded = h.mustSubmit(keyedSale("5555555555554444", "8000"))
	h.mustSubmit(sterad.Request{Op: "refund", Original: refunded.ID, Amount: "3000"})
	declined = h.mustSubmit(keyedSale("4000000000000002", "5000"))
	h.term.present(chipVisa)
	h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "2500"})
	pre := h.mustSubmit(sterad.Request{Op: "preauth", Amount: "20000", PAN: "3530111333300000", Expiry: "2812", Reference: "R", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	h.mustSubmit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "21000"})
	return sale, refunded, declined
}

func msgsOf(h *harness, mti sterad.MTI) []*sterad.HostMessage {
	var out []*sterad.HostMessage
	for _, m := range h.host.messages() {
		if m.MTI == mti {
			out = append(out, m)
		}
	}
	return out
}

func TestBatchCloseInBalance(t *testing.T) {
	h := newHarness(t)
	sale, _, _ := dayOf(t, h)
	b, err := h.gw.CloseBatch(context.Background())
	if err != nil || b.State != sterad.BatchClosed || b.Number != 1 {
		t.Fatalf("close: %v %+v", err, b)
	}
	recs := msgsOf(h, sterad.MTIReconciliation)
	if len(recs) != 2 {
		t.Fatalf("%d 0500s, want one per terminal ID", len(recs))
	}
	got := map[string]sterad.Totals{}
	for _, m := range recs {
		if m.Batch != 1 || m.BatchUpload {
			t.Fatalf("0500: %+v", m)
		}
		got[m.TerminalID] = *m.Totals
	}
	// VIRT0001: sales 10000 + 8000 and completion 21000 are debits, the
	// refund of 3000 a credit; FRONT001: the 2500 sale.
	if want := (sterad.Totals{DebitCount: 3, DebitAmount: 39000, CreditCount: 1, CreditAmount: 3000}); got["VIRT0001"] != want {
		t.Fatalf("VIRT0001 totals %+v, want %+v", got["VIRT0001"], want)
	}
	if want := (sterad.Totals{DebitCount: 1, DebitAmount: 2500}); got["FRONT001"] != want {
		t.Fatalf("FRONT001 totals %+v", got["FRONT001"])
	}
	if sign, net := got["VIRT0001"].Net(); sign != "C" || net != 36000 {
		t.Fatalf("DE 97: %s %d", sign, net)
	}
	// The next batch is open; the closed batch's cards are gone.
	if open, _ := h.gw.OpenBatch(context.Background()); open.Number != 2 {
		t.Fatalf("open batch %d", open.Number)
	}
	if _, err := h.db.OpenCard(context.Background(), sale.ID); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the closed batch's card is still kept: %v", err)
	}
	// Void after the close: 409, use a refund; the refund works.
	if _, err := h.submit(sterad.Request{Op: "void", Original: sale.ID}); sterad.ErrorCode(err) != "batch_closed" {
		t.Fatalf("void after close: %v", err)
	}
	if r := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "10000"}); r.Status != sterad.StatusApproved || r.Batch != 2 {
		t.Fatalf("refund after close: %+v", r)
	}
	// Closing an empty batch sends nothing.
	before := len(h.host.messages())
	b2, err := h.gw.CloseBatch(context.Background())
	if err != nil || b2.Number != 2 || len(msgsOf(h, sterad.MTIReconciliation)) != 3 || len(h.host.messages()) != before+1 {
		t.Fatalf("batch 2: %v %+v", err, b2)
	}
}

func TestBatchCloseOutOfBalanceUploads(t *testing.T) {
	h := newHarness(t)
	dayOf(t, h)
	h.host.disagree.Store(true)
	b, err := h.gw.CloseBatch(context.Background())
	if err != nil || b.State != sterad.BatchClosed {
		t.Fatalf("close: %v %+v", err, b)
	}
	uploads := msgsOf(h, sterad.MTIBatchUpload)
	if len(uploads) != 5 { // 3 debits + 1 credit on VIRT0001, 1 on FRONT001
		t.Fatalf("%d uploads", len(uploads))
	}
	for _, u := range uploads {
		if u.PAN == "" || u.RRN == "" || u.AuthCode == "" || u.Batch != 1 || !u.HasAmount || u.STAN == 0 {
			t.Fatalf("0320: %+v", u)
		}
	}
	var bu int
	for _, m := range msgsOf(h, sterad.MTIReconciliation) {
		if m.BatchUpload {
			bu++
		}
	}
	if bu != 2 {
		t.Fatalf("%d 0500 BU=1", bu)
	}
	for _, tt := range b.Terminals {
		if tt.Result != "00" || tt.Uploaded == 0 {
			t.Fatalf("terminal totals %+v", tt)
		}
	}
}

// Host down at the cut-off: the batch stays closing, new transactions go
// to the next batch, and the close is retried until it succeeds.
func TestBatchCloseRetriedWhenHostDown(t *testing.T) {
	h := newHarness(t)
	dayOf(t, h)
	h.host.online.Store(false)
	b, err := h.gw.CloseBatch(context.Background())
	if err == nil || b.State != sterad.BatchClosing || b.Attempts != 1 || b.LastError == "" {
		t.Fatalf("close with the host down: %v %+v", err, b)
	}
	h.host.online.Store(true)
	late := h.mustSubmit(keyedSale("4111111111111111", "700"))
	if late.Batch != 2 {
		t.Fatalf("a transaction during the close went to batch %d", late.Batch)
	}
	b, err = h.gw.CloseBatch(context.Background())
	if err != nil || b.Number != 1 || b.State != sterad.BatchClosed {
		t.Fatalf("retry: %v %+v", err, b)
	}
	for _, m := range msgsOf(h, sterad.MTIReconciliation) {
		if m.Totals.DebitAmount == 700 {
			t.Fatal("batch 1 counted a transaction of batch 2")
		}
	}
}

// The nightly close runs at the cut-off of the injected clock; a stand-in
// still queued is forwarded before the 0500.
func TestNightlyCloseAtCutoff(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, newFakeHost(), newFakeTerminal("FRONT001"), func(c *gateway.Config) {
		c.Cutoff = 2 * time.Hour
		c.RetryInterval = time.Minute
	})
	h.host.online.Store(false)
	stood := presentSale(h, "4000")
	if stood.Status != sterad.StatusStoodIn || stood.Batch != 1 {
		t.Fatalf("stand-in: %+v", stood)
	}
	h.host.online.Store(true)
	testutil.Eventually(t, "the condition", func() bool { return h.clock.Waiters() > 0 })
	// 2026-11-21 23:59 JST: before the cut-off, nothing closes.
	h.clock.Set(time.Date(2026, 11, 22, 1, 59, 0, 0, jst))
	if b, _ := h.gw.Batch(context.Background(), 1); b.State != sterad.BatchOpen {
		t.Fatalf("batch 1 before the cut-off: %s", b.State)
	}
	h.clock.Set(time.Date(2026, 11, 22, 2, 0, 0, 0, jst))
	testutil.Eventually(t, "the condition", func() bool {
		b, _ := h.gw.Batch(context.Background(), 1)
		return b.State == sterad.BatchClosed
	})
	got := mtis(h.host.messages())
	if strings.Join(got, " ") != "0220 0500" {
		t.Fatalf("messages %v: the stand-in must be forwarded before the 0500", got)
	}
	if tx, _ := h.gw.Transaction(context.Background(), stood.ID); tx.Status != sterad.StatusApproved {
		t.Fatalf("stand-in after the close: %s", tx.Status)
	}
}
