package main

import (
	"context"
	"strings"
	"testing"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// Issue 9, defect 1, end to end: sale ¥8,000, refund ¥3,000, then a void
// of the sale is refused; the host keeps the sale and the refund, and the
// card is never credited for nothing.
func TestVoidOfRefundedSaleEndToEnd(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "8000"})
	if sale.Status != "approved" {
		t.Fatalf("sale: %+v", sale)
	}
	if r := d.post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "3000"}); r.Status != "approved" {
		t.Fatalf("refund: %+v", r)
	}
	ae := d.postErr(api.TransactionRequest{Op: "void", Original: sale.ID})
	if ae.Status != 409 || ae.Code != "has_refunds" {
		t.Fatalf("void of a refunded sale: %+v", ae)
	}
	var debit, credit int64
	for _, e := range d.m.SimHost.Ledger().Approved {
		switch e.Kind {
		case "sale":
			debit += e.Amount.Minor()
		case "refund":
			credit += e.Amount.Minor()
		}
	}
	if debit != 8000 || credit != 3000 {
		t.Fatalf("the host counts debits %d and credits %d, want 8000 and 3000", debit, credit)
	}
	if tx, _ := d.c.Transaction(ctx, sale.ID); tx.Status != "approved" {
		t.Fatalf("sale after the refused void: %s", tx.Status)
	}
}

// Issue 9, defect 2, end to end: a refund accepted while the acquirer was
// away is never sent once its stood-in sale's advice is declined.
func TestRefundOfDeclinedStandInEndToEnd(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	if err := d.m.SimHost.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	d.waitFor("acquirer offline", func() bool {
		st, err := d.c.Status(ctx)
		return err == nil && !st.Acquirer.Online
	})
	d.card("FRONT001", terminal.Card{PAN: "4000000000009995"}) // the issuer answers 51
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
	if sale.Status != "stood_in" {
		t.Fatalf("stand-in: %+v", sale)
	}
	refund := d.post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "2000"})
	if refund.Status != "pending" {
		t.Fatalf("refund offline: %+v", refund)
	}
	if err := d.m.SimHost.SetOutage(false); err != nil {
		t.Fatal(err)
	}
	d.waitFor("refund decided", func() bool {
		tx, err := d.c.Transaction(ctx, refund.ID)
		return err == nil && tx.Status != "pending"
	})
	if tx, _ := d.c.Transaction(ctx, refund.ID); tx.Status != "declined" || !strings.Contains(tx.Reason, "nothing to refund") {
		t.Fatalf("refund of a declined stand-in: %s %q", tx.Status, tx.Reason)
	}
	if tx, _ := d.c.Transaction(ctx, sale.ID); tx.Status != "declined" {
		t.Fatalf("stood-in sale: %s", tx.Status)
	}
	for _, e := range d.m.SimHost.Ledger().Transactions {
		if e.Kind == "refund" {
			t.Fatalf("the refund reached the host: %+v", e)
		}
	}
}
