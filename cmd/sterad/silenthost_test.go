package main

import (
	"context"
	"strings"
	"testing"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// Issue 9, defect 9, end to end: a host that takes requests and never
// answers is noticed. The sales it swallowed are reversed (never resent),
// the link is declared dead, card-present sales are stood in instead of
// waiting for the timeout, and everything owed goes out once the host
// answers again.
func TestSilentHostIsNoticed(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	d.m.SimHost.SetSilent(true)
	// Keyed sales until the client gives the link up: each one the host
	// swallowed is an unknown outcome being reversed; once the link is
	// dead, a keyed sale is declined at once, certainly not sent.
	var swallowed []string
	for i := 0; ; i++ {
		tx := d.post(api.TransactionRequest{Op: "sale", Card: keyed("4111111111111111"), Amount: "1000"})
		if tx.Status == "declined" && strings.Contains(tx.Reason, "unreachable") {
			break
		}
		if tx.Status != "unknown" && tx.Status != "reversed" {
			t.Fatalf("sale to a silent host: %s (%s), want an unknown outcome being reversed", tx.Status, tx.Reason)
		}
		swallowed = append(swallowed, tx.ID)
		if i == 10 {
			t.Fatal("the link was never declared dead")
		}
	}
	d.waitFor("the link declared dead", func() bool {
		st, err := d.c.Status(ctx)
		return err == nil && !st.Acquirer.Online
	})
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444"})
	stood := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4800"})
	if stood.Status != "stood_in" {
		t.Fatalf("card-present sale while the host is silent: %s (%s), want stood_in", stood.Status, stood.Reason)
	}

	d.m.SimHost.SetSilent(false)
	for _, id := range append(swallowed, stood.ID) {
		d.waitFor(id+" settled", func() bool {
			tx, err := d.c.Transaction(ctx, id)
			return err == nil && (tx.Status == "reversed" || tx.Status == "approved")
		})
	}
	for _, id := range swallowed {
		if tx, _ := d.c.Transaction(ctx, id); tx.Status != "reversed" {
			t.Errorf("swallowed sale %s: %s, want reversed", id, tx.Status)
		}
	}
	if tx, _ := d.c.Transaction(ctx, stood.ID); tx.Status != "approved" {
		t.Errorf("stood-in sale after the host is back: %s", tx.Status)
	}
	var sales int
	for _, e := range d.m.SimHost.Ledger().Approved {
		if e.Kind == "sale" {
			sales++
		}
	}
	if sales != 0 {
		t.Errorf("the host counts %d keyed sales it never answered", sales)
	}
}
