package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// A swipe whose track 2 names another card than its `pan` is refused at
// the terminal: nothing reaches the host, so no card is charged (or, for
// a refund, credited) other than the one sterad records (issue 9 #7).
func TestTerminalTrack2OfAnotherCard(t *testing.T) {
	const visa, mc = "4111111111111111", "5555555555554444"
	d := startDaemon(t, clearMode)
	sim := d.m.SimTerminals["FRONT001"]
	otherTrack2 := mc + "=" + expiry() + "101000000"

	d.card("FRONT001", terminal.Card{PAN: visa, Expiry: expiry(), Entry: "swipe", Track2: otherTrack2})
	tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != "declined" || !strings.Contains(tx.Reason, "track 2") || tx.TerminalResult != "done" {
		t.Fatalf("sale with another card's track 2: %s %q %q", tx.Status, tx.Reason, tx.TerminalResult)
	}
	if n := d.m.SimHost.Stats().Requests["0200"]; n != 0 {
		t.Fatalf("the host saw %d sales", n)
	}
	if slips := sim.Slips(); len(slips) != 1 || slips[0].TxnID != tx.ID || slips[0].Status != "declined" {
		t.Fatalf("slips: %+v", slips)
	}

	// A refund: the charged card's pan, another card's track 2.
	d.card("FRONT001", terminal.Card{PAN: visa, Expiry: expiry(), Entry: "swipe"})
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "5000"})
	if sale.Status != "approved" {
		t.Fatalf("sale: %+v", sale)
	}
	d.card("FRONT001", terminal.Card{PAN: visa, Expiry: expiry(), Entry: "swipe", Track2: otherTrack2})
	refund := d.post(api.TransactionRequest{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "5000"})
	if refund.Status != "declined" || !strings.Contains(refund.Reason, "track 2") {
		t.Fatalf("refund with another card's track 2: %s %q", refund.Status, refund.Reason)
	}
	for _, e := range d.m.SimHost.Ledger().Transactions {
		if e.Kind == "refund" || e.MaskedPAN == sterad.MaskPAN(mc) {
			t.Fatalf("the host booked %s %s to %s", e.Kind, e.Amount, e.MaskedPAN)
		}
	}
	// The refund to the charged card still goes through.
	d.card("FRONT001", terminal.Card{PAN: visa, Expiry: expiry(), Entry: "swipe"})
	if r := d.post(api.TransactionRequest{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "5000"}); r.Status != "approved" {
		t.Fatalf("refund to the charged card: %s %q", r.Status, r.Reason)
	}
	if logs := d.log.String(); strings.Contains(logs, visa) || strings.Contains(logs, mc) || strings.Contains(logs, otherTrack2) {
		t.Fatal("card data in the daemon's log")
	}
}

// The brand is the card number's own, whatever the terminal claims; the
// disagreement is logged, masked (issue 9 #15a).
func TestTerminalBrandDisagreement(t *testing.T) {
	d := startDaemon(t, clearMode)
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111", Entry: "chip", Brand: "amex"})
	tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "3000"})
	if tx.Status != "approved" || tx.Brand != "visa" {
		t.Fatalf("sale: %s brand %s", tx.Status, tx.Brand)
	}
	logs := d.log.String()
	if !strings.Contains(logs, "brand disagrees") || !strings.Contains(logs, "411111******1111") || strings.Contains(logs, "4111111111111111") {
		t.Fatal("the disagreement is not logged, or not masked")
	}
}

// A terminal that takes the card, then never sends the RESULT of the
// OUTCOME (it keeps answering STATUS_QUERY card_sent): the API call
// returns after a bounded number of OUTCOMEs, the approval the customer
// never saw through is reversed with RR=CU, and sterad no longer holds
// the terminal (issue 9 #12).
func TestTerminalNeverSendsResult(t *testing.T) {
	d := startDaemon(t, clearMode)
	sim := d.m.SimTerminals["FRONT001"]
	if err := sim.Fault(terminal.FaultNoResult, 100, 0); err != nil {
		t.Fatal(err)
	}
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111", Entry: "chip"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	tx, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "6400"}, api.CreateOptions{})
	if err != nil {
		t.Fatalf("the API call did not return: %v (after %s)", err, time.Since(start))
	}
	if tx.Status != "reversed" || tx.TerminalResult != "unconfirmed" {
		t.Fatalf("sale: %s %q %q", tx.Status, tx.TerminalResult, tx.Reason)
	}
	if ignored := 100 - sim.State().Faults.NoResult; ignored > 3 {
		t.Fatalf("%d OUTCOMEs sent, want at most 3", ignored)
	}
	d.waitFor("the reversal at the host", func() bool { return d.m.SimHost.Stats().Requests["0420"] >= 1 })
	if n := d.m.SimHost.Ledger().Totals.Minor(); n.DebitCount != 0 {
		t.Fatalf("the host still counts %d sales", n.DebitCount)
	}
	for _, info := range d.m.Gateway.Terminals() {
		if info.ID == "FRONT001" && (info.State == sterad.TerminalBusy || info.CurrentTxn != "") {
			t.Fatalf("sterad still holds the terminal: %+v", info)
		}
	}
	final, err := d.m.Gateway.Transaction(context.Background(), tx.ID)
	if err != nil || final.Step != sterad.StepDone {
		t.Fatalf("final: %v %+v", err, final)
	}
}
