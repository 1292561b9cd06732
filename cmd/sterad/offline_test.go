package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// The acquirer goes away: sterad says so, stands in within its limits,
// defers what can wait, refuses what cannot, and forwards everything once
// when the link is back.
func TestOfflineStandInEndToEnd(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "6000"})

	if err := d.m.SimHost.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	d.waitFor("acquirer offline", func() bool {
		st, err := d.c.Status(ctx)
		return err == nil && !st.Acquirer.Online
	})
	var metrics strings.Builder
	if _, err := d.c.Do(ctx, http.MethodGet, "/metrics", nil, nil, &metrics); err != nil || !strings.Contains(metrics.String(), "sterad_acquirer_online 0") {
		t.Fatalf("metrics while offline: %v", err)
	}
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444", Entry: "ctls"})
	stood := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if stood.Status != "stood_in" || !stood.Offline || !strings.HasPrefix(stood.AuthCode, "S") {
		t.Fatalf("stand-in: %+v", stood)
	}
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444"})
	if tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "60000"}); tx.Status != "declined" || !strings.Contains(tx.Reason, "floor limit") {
		t.Fatalf("above the floor limit: %+v", tx)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111")}); ae.Status != 503 {
		t.Fatalf("card check offline: %v", ae)
	}
	refund := d.post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "1000"})
	if refund.Status != "pending" {
		t.Fatalf("refund offline: %+v", refund)
	}
	items, sum, err := d.c.Queue(ctx)
	if err != nil || sum.Depth != 2 || len(items) != 2 {
		t.Fatalf("queue: %v %+v", err, items)
	}

	if err := d.m.SimHost.SetOutage(false); err != nil {
		t.Fatal(err)
	}
	// A deferred request leaves the queue when it is journaled as sent;
	// wait for the answers, not for the queue.
	for _, id := range []string{stood.ID, refund.ID} {
		d.waitFor(id+" answered", func() bool {
			tx, err := d.c.Transaction(ctx, id)
			return err == nil && tx.Status != "pending" && tx.Status != "stood_in"
		})
		if tx, _ := d.c.Transaction(ctx, id); tx.Status != "approved" {
			t.Errorf("%s: %s (%s)", id, tx.Status, tx.Reason)
		}
	}
	if _, sum, err := d.c.Queue(ctx); err != nil || sum.Depth != 0 {
		t.Fatalf("queue after the answers: %v %+v", err, sum)
	}
	// The host has each exactly once: the advice counted as a debit.
	var advices int
	for _, e := range d.m.SimHost.Ledger().Approved {
		if e.Kind == "standin" {
			advices++
		}
	}
	if advices != 1 {
		t.Fatalf("the host counted %d stand-in advices", advices)
	}
}
