package gateway

import (
	"context"
	"fmt"

	"github.com/sterad/sterad"
)

// reconcile decides what happened to a transaction whose terminal link
// failed (docs/terminal-protocol.md §6): wait for the terminal, ask it, and finish.
func (tm *terminals) reconcile(ctx context.Context, id string) { tm.reconcileAttempt(ctx, id, 0) }

// reconcileAttempt is reconcile after attempt OUTCOMEs went unanswered.
func (tm *terminals) reconcileAttempt(ctx context.Context, id string, attempt int) {
	t, err := tm.j.store.Transaction(ctx, id)
	if err != nil {
		tm.log.Error("load transaction", "txn", id, "err", err)
		return
	}
	term := tm.terms[t.Terminal]
	if term == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, tm.cfg.TerminalWait)
	defer cancel()
	if err := term.WaitReady(wctx); err != nil {
		if ctx.Err() == nil {
			tm.leaveForOperator(ctx, id, "the terminal did not come back after its link failed: it will be checked when it reconnects")
		}
		return
	}
	st, err := term.Query(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			tm.leaveForOperator(ctx, id, "the terminal did not answer a status query: check the terminal")
		}
		return
	}
	tm.log.Info("terminal reconciliation", "txn", id, "terminal", t.Terminal, "state", st.State, "step", t.Step)
	switch t.Step {
	case sterad.StepCreated, sterad.StepReading, sterad.StepCardRead:
		tm.reconcileBeforeSend(ctx, t, term, st)
	case sterad.StepSent:
		// Recovery turns this into a reversal before reconciling.
	default:
		tm.reconcileOutcome(ctx, t, term, st, attempt)
	}
}

// reconcileBeforeSend finishes a transaction whose request never went to
// the host: nothing was charged, whatever the terminal says.
func (tm *terminals) reconcileBeforeSend(ctx context.Context, t *sterad.Transaction, term sterad.Terminal, st sterad.TerminalTxnState) {
	reason := "the terminal link failed before the card was read: nothing was charged"
	switch st.State {
	case "waiting_card":
		if _, _, err := term.Cancel(ctx, t.ID); err != nil {
			tm.log.Warn("cancel at terminal", "txn", t.ID, "err", err)
		}
	case "card_sent":
		if t.Step == sterad.StepCardRead {
			reason = "interrupted before the card was sent to the acquirer: nothing was charged, please try again"
		} else {
			reason = "the card did not reach sterad: nothing was charged, please try again"
		}
		// The terminal waits for an OUTCOME: tell it.
		out := sterad.TerminalOutcome{TxnID: t.ID, Status: "error", Amount: t.Amount, MaskedPAN: t.MaskedPAN,
			Lines: []string{"取消 / NOT CHARGED", reason}}
		if _, err := term.ShowOutcome(ctx, out, func(r sterad.TerminalResult) error { return nil }); err != nil {
			tm.log.Warn("show error outcome", "txn", t.ID, "err", err)
		}
	case "done":
		if st.Result != nil && st.Result.Status == "cancelled" {
			reason = "cancelled at the terminal: nothing was charged"
		}
	}
	tm.failBeforeSend(ctx, t.ID, reason)
	_, _, _ = tm.j.modify(ctx, t.ID, func(x *sterad.Transaction, c *txChange) error {
		if x.TerminalResult == "" {
			x.TerminalResult = "cancelled"
		}
		x.Record(sterad.StepDone, tm.clock.Now(), "reconciled with the terminal")
		return nil
	})
}

// reconcileOutcome finishes a transaction whose host outcome is known but
// whose terminal may not have shown it.
func (tm *terminals) reconcileOutcome(ctx context.Context, t *sterad.Transaction, term sterad.Terminal, st sterad.TerminalTxnState, attempt int) {
	switch st.State {
	case "card_sent":
		// Still waiting for our OUTCOME: show it again, a bounded number
		// of times.
		if attempt >= outcomeAttempts {
			tm.outcomeNeverConfirmed(ctx, t.ID, attempt)
			return
		}
		tm.showOutcome(ctx, t.ID, attempt)
	case "done":
		if st.Result != nil {
			if err := tm.terminalResult(ctx, t.ID, *st.Result); err != nil {
				tm.log.Error("journal terminal result", "txn", t.ID, "err", err)
			}
			tm.afterResult(ctx, t.ID, *st.Result)
		}
	default:
		// The terminal lost the transaction (it rebooted), or never knew
		// its card had arrived (waiting_card: our ACK of the CARD was
		// lost): it never showed the outcome. It is told to cancel, so it
		// is free again, and the customer is not charged for an approval
		// never seen.
		if st.State == "waiting_card" {
			if _, _, err := term.Cancel(ctx, t.ID); err != nil {
				tm.log.Warn("cancel at terminal", "txn", t.ID, "err", err)
			}
		}
		tm.undoUnseen(ctx, t.ID, "the terminal lost the transaction before showing its outcome")
		_, _, _ = tm.j.modify(ctx, t.ID, func(x *sterad.Transaction, c *txChange) error {
			x.TerminalResult = "lost"
			step := sterad.StepDone
			if x.Step == sterad.StepReversal {
				step = sterad.StepReversal
			}
			x.Record(step, tm.clock.Now(), "terminal lost the transaction")
			return nil
		})
	}
}

// outcomeNeverConfirmed ends a transaction whose terminal has the card
// but never confirmed an outcome: after attempts OUTCOMEs it still answers
// card_sent and sends no RESULT. It has shown nothing it stands by and
// printed no slip, so the customer never saw the transaction through: like
// a customer who walks away (docs/terminal-protocol.md §5), an approval is reversed
// with RR=CU and a stand-in withdrawn before its advice goes. A declined or
// failed outcome has nothing to undo. What cannot be undone here (the
// journal could not be written) is left for an operator. Either way the
// flow ends: the API call returns and the terminal is free for sterad
// (the terminal itself refuses a new READ_CARD with BUSY until it is
// fixed: CANCEL is TOO_LATE once the card was sent).
func (tm *terminals) outcomeNeverConfirmed(ctx context.Context, id string, attempts int) {
	reason := fmt.Sprintf("the terminal never confirmed the outcome (no RESULT after %d attempts)", attempts)
	tm.log.Warn("terminal never confirmed the outcome: undoing it", "txn", id, "attempts", attempts)
	tm.undoUnseen(ctx, id, reason)
	_, _, err := tm.j.modify(ctx, id, func(x *sterad.Transaction, c *txChange) error {
		if x.TerminalResult != "" {
			return nil
		}
		x.TerminalResult = "unconfirmed"
		now := tm.clock.Now()
		switch {
		case x.Status == sterad.StatusApproved || x.Status == sterad.StatusStoodIn:
			x.Reason = reason + ": it could not be reversed here: check the terminal and the acquirer"
			x.Record(x.Step, now, x.Reason)
		case x.Step == sterad.StepReversal || x.Step == sterad.StepQueued:
			x.Record(x.Step, now, reason) // still owed to the acquirer
		default:
			if x.Status == sterad.StatusPending {
				x.Reason = reason + ": check the terminal"
				return x.Transition(sterad.StatusUnknown, x.Step, now, x.Reason)
			}
			x.Record(sterad.StepDone, now, reason)
		}
		return nil
	})
	if err != nil {
		tm.log.Error("journal unconfirmed outcome", "txn", id, "err", err)
		tm.leaveForOperator(ctx, id, reason+": check the terminal")
	}
}
