package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// A terminal that keeps answering STATUS_QUERY card_sent but never sends
// the RESULT of an OUTCOME: sterad shows the outcome a bounded number of
// times, then ends the transaction safely — the approval the customer
// never saw through is reversed (RR=CU), a stand-in is withdrawn — and
// the API call returns with the terminal free (issue 9 #12).
func TestOutcomeNeverConfirmed(t *testing.T) {
	for _, offline := range []bool{false, true} {
		h := newHarness(t)
		h.term.mu.Lock()
		h.term.showErr, h.term.noResult, h.term.query = sterad.ErrLinkFailed, true, "card_sent"
		h.term.mu.Unlock()
		h.host.online.Store(!offline)
		h.term.present(chipVisa)
		tx, _, err := h.gw.Submit(context.Background(), sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "7000"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tx, _ = h.gw.Wait(ctx, tx.ID)
		ended := ctx.Err() == nil
		cancel()
		h.term.mu.Lock()
		shows := h.term.shows
		h.term.mu.Unlock()
		if !ended {
			t.Fatalf("offline=%v: the flow is still running after %d OUTCOMEs: %s %s", offline, shows, tx.Status, tx.Step)
		}
		if shows > 3 {
			t.Errorf("offline=%v: %d OUTCOMEs sent, want at most 3", offline, shows)
		}
		if tx.Status != sterad.StatusReversed || tx.TerminalResult != "unconfirmed" || !strings.Contains(tx.Reason, "not charged") && !strings.Contains(tx.Reason, "nothing charged") {
			t.Fatalf("offline=%v: %s %s %q %q", offline, tx.Status, tx.Step, tx.TerminalResult, tx.Reason)
		}
		if !hasNote(tx, "never confirmed the outcome") {
			t.Fatalf("offline=%v: the journal does not say why: %+v", offline, tx.Events)
		}
		if info := h.gw.Terminals()[0]; info.State != sterad.TerminalReady || info.CurrentTxn != "" {
			t.Fatalf("offline=%v: terminal %+v", offline, info)
		}
		h.host.online.Store(true)
		h.gw.Flush(context.Background())
		msgs := h.host.messages()
		got := strings.Join(mtis(msgs), " ")
		if offline && got != "" || !offline && (got != "0200 0420" || msgs[1].ReversalReason != sterad.RRCustomerCancel) {
			t.Fatalf("offline=%v: the host saw %q", offline, got)
		}
		if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
			t.Fatalf("offline=%v: queue %+v", offline, q)
		}
		if final, _ := h.gw.Transaction(context.Background(), tx.ID); final.Step != sterad.StepDone {
			t.Fatalf("offline=%v: final step %s", offline, final.Step)
		}
	}
}

// A declined outcome the terminal never confirms ends too: nothing to
// reverse, the transaction stays declined.
func TestDeclineNeverConfirmed(t *testing.T) {
	h := newHarness(t)
	h.term.mu.Lock()
	h.term.showErr, h.term.noResult, h.term.query = sterad.ErrLinkFailed, true, "card_sent"
	h.term.mu.Unlock()
	c := chipVisa
	c.PAN = "4000000000009995"
	h.term.present(c)
	tx, _, err := h.gw.Submit(context.Background(), sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "8000"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, _ = h.gw.Wait(ctx, tx.ID)
	if ctx.Err() != nil {
		t.Fatalf("the flow is still running: %s %s", tx.Status, tx.Step)
	}
	if tx.Status != sterad.StatusDeclined || tx.TerminalResult != "unconfirmed" || tx.Step != sterad.StepDone {
		t.Fatalf("decline: %s %s %q %q", tx.Status, tx.Step, tx.TerminalResult, tx.Reason)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200" {
		t.Fatalf("the host saw %s", got)
	}
}

// hasNote reports whether one of t's journal events says what.
func hasNote(t *sterad.Transaction, what string) bool {
	for _, e := range t.Events {
		if strings.Contains(e.Note, what) {
			return true
		}
	}
	return false
}

// The same terminal found again on a reconnect (the transaction was left
// for the operator when the OUTCOME could not be sent and the terminal did
// not come back in time): the reconciliation is bounded too, and ends with
// the approval reversed.
func TestOutcomeNeverConfirmedAfterReconnect(t *testing.T) {
	h := newHarness(t)
	h.term.mu.Lock()
	h.term.showErr, h.term.gone = sterad.ErrTerminalOffline, true
	h.term.mu.Unlock()
	tx := presentSale(h, "7000")
	if tx.Status != sterad.StatusApproved || tx.TerminalResult != "" || tx.Step != sterad.StepOutcome {
		t.Fatalf("before the reconnect: %s %s %q", tx.Status, tx.Step, tx.TerminalResult)
	}
	h.term.mu.Lock()
	h.term.showErr, h.term.noResult, h.term.query, h.term.gone = sterad.ErrLinkFailed, true, "card_sent", false
	h.term.shows = 0
	h.term.mu.Unlock()
	h.gw.TerminalReconnected("FRONT001", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, _ = h.gw.Wait(ctx, tx.ID)
	if ctx.Err() != nil {
		t.Fatalf("the reconciliation is still running: %s %s", tx.Status, tx.Step)
	}
	h.term.mu.Lock()
	shows := h.term.shows
	h.term.mu.Unlock()
	if shows > 3 || tx.Status != sterad.StatusReversed || tx.TerminalResult != "unconfirmed" {
		t.Fatalf("after the reconnect: %d OUTCOMEs, %s %s %q", shows, tx.Status, tx.Step, tx.TerminalResult)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200 0420" {
		t.Fatalf("the host saw %s", got)
	}
}

// Found by the crash test: the terminal's link failed just before the
// OUTCOME went out (ShowOutcome: terminal offline) and the terminal came
// back at once having lost the transaction. The client was told
// "approved", then the approval was reversed. The flow now waits for the
// terminal and asks it before anyone is told: the answer is "reversed".
func TestOutcomeTerminalOfflineAskedBeforeAnswering(t *testing.T) {
	h := newHarness(t)
	h.term.mu.Lock()
	h.term.showErr, h.term.query = sterad.ErrTerminalOffline, "waiting_card"
	h.term.mu.Unlock()
	tx := presentSale(h, "7000")
	if tx.Status != sterad.StatusReversed {
		t.Fatalf("told %s (%q), want reversed: the terminal never showed the approval", tx.Status, tx.Reason)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200 0420" {
		t.Fatalf("the host saw %s", got)
	}
}
