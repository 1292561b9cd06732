package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// entriesFor returns the entry modes a READ_CARD offers for op.
func entriesFor(op sterad.Op) []sterad.EntryMode {
	if op == sterad.OpCardCheck {
		return []sterad.EntryMode{sterad.EntryKeyed, sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe}
	}
	return []sterad.EntryMode{sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe}
}

// promptFor is what the terminal shows the customer.
func promptFor(t *sterad.Transaction) string {
	switch t.Op {
	case sterad.OpCardCheck:
		return "カードチェック / Card check"
	case sterad.OpRefund:
		return fmt.Sprintf("返金 / Refund %s", t.Amount.Display())
	case sterad.OpPreauth:
		return fmt.Sprintf("仮売上 / Pre-authorization %s", t.Amount.Display())
	}
	return fmt.Sprintf("お支払い / Payment %s", t.Amount.Display())
}

// runAtTerminal is the flow of a card-present transaction (terminal-link.md
// §5): READ_CARD, the card journaled before its ACK, the request journaled
// and sent, the OUTCOME shown and printed, the RESULT journaled.
func (g *Gateway) runAtTerminal(ctx context.Context, s *started) {
	t, term := s.txn, s.plan.term
	req := sterad.CardRequest{TxnID: t.ID, Op: t.Op, Amount: t.Amount, Entry: entriesFor(t.Op), Text: promptFor(t)}
	card, err := term.ReadCard(ctx, req, func(c *sterad.Card) error { return g.cardRead(ctx, t.ID, c) })
	if err != nil {
		g.cardNotRead(ctx, s, err)
		return
	}
	s.card = card
	g.authorizeRead(ctx, t.ID, card)
	g.showOutcome(ctx, t.ID, 0)
}

// cardRead journals a card read at the terminal, encrypted, before the
// terminal is told it arrived. Its brand is the card number's own (the
// terminal's claim only fills in a range sterad does not know). A card
// whose track 2 or chip data name another card is journaled as read but
// not kept: authorizeRead refuses it.
func (g *Gateway) cardRead(ctx context.Context, id string, c *sterad.Card) error {
	if claimed := c.SettleBrand(); claimed != "" {
		g.log.Warn("the terminal's brand disagrees with the card number's range: the range wins",
			"txn", id, "card", c.PAN.Masked(), "terminal_brand", string(claimed), "brand", string(c.Brand))
	}
	keep := c.CheckCardData() == nil
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, ch *txChange) error {
		if t.Step != sterad.StepReading {
			return nil // a retransmitted CARD: already journaled
		}
		t.MaskedPAN, t.Brand, t.Entry, t.HasCard = c.PAN.Masked(), c.Brand, c.Entry, keep
		if keep {
			ch.SealCards = append(ch.SealCards, sterad.SealCard{Owner: t.ID, Card: c})
		}
		return t.Transition(sterad.StatusPending, sterad.StepCardRead, g.clock.Now(), "card read: "+c.PAN.Masked())
	})
	return err
}

// authorizeRead checks a card read at the terminal, journals the request
// and exchanges it with the acquirer.
func (g *Gateway) authorizeRead(ctx context.Context, id string, card *sterad.Card) {
	var msg *sterad.HostMessage
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		now := g.clock.Now()
		if reason := g.refuseRead(ctx, t, card, now); reason != "" {
			g.undo(c, t)
			t.Reason = reason
			return g.end(t, c, sterad.StatusDeclined, sterad.StepOutcome, now, reason)
		}
		orig, err := g.originalOf(ctx, t)
		if err != nil {
			return err
		}
		g.batchMu.RLock() // until the commit: see Gateway.batchMu
		c.unlocks = append(c.unlocks, g.batchMu.RUnlock)
		m, err := g.prepare(ctx, t, card, orig, now)
		if err != nil {
			return err
		}
		msg = m
		t.Record(sterad.StepSent, now, "request journaled")
		return nil
	})
	if err != nil {
		g.log.Error("journal request", "txn", id, "err", err)
		g.failBeforeSend(ctx, id, "the transaction could not be journaled: nothing was charged")
		return
	}
	if msg != nil {
		g.exchange(ctx, id, msg)
	}
}

// refuseRead returns why a card read at the terminal must not be sent
// ("" when it may).
func (g *Gateway) refuseRead(ctx context.Context, t *sterad.Transaction, card *sterad.Card, now time.Time) string {
	// The card as a whole (Card.Validate): its number, its track 2 and
	// chip data naming that same card, its expiry.
	if err := card.Validate(now.In(g.cfg.Location)); err != nil {
		switch sterad.ErrorCode(err) {
		case "invalid_card":
			return "the terminal sent an invalid card number: " + sterad.ErrorMessage(err)
		case "expired_card":
			return "declined: the card has expired"
		default:
			return "the card was refused, nothing was sent: " + sterad.ErrorMessage(err)
		}
	}
	if t.Op == sterad.OpRefund && t.Original != "" {
		if orig, err := g.store.OpenCard(ctx, t.Original); err == nil {
			same := orig.PAN == card.PAN
			orig.Wipe()
			if !same {
				return "a refund goes back to the card of the original charge: this is another card"
			}
		} else if t.MaskedPAN != "" && t.MaskedPAN != card.PAN.Masked() {
			return "a refund goes back to the card of the original charge: this is another card"
		}
	}
	return ""
}

// failBeforeSend ends a transaction that never reached the host.
func (g *Gateway) failBeforeSend(ctx context.Context, id, reason string) {
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status.Final() || t.Step == sterad.StepSent {
			return nil
		}
		g.undo(c, t)
		t.Reason = reason
		return g.end(t, c, sterad.StatusCancelled, g.nextStep(t), g.clock.Now(), reason)
	})
	if err != nil {
		g.log.Error("cancel transaction", "txn", id, "err", err)
	}
}

// cardNotRead ends a READ_CARD that brought no card.
func (g *Gateway) cardNotRead(ctx context.Context, s *started, err error) {
	id := s.txn.ID
	var reason string
	switch {
	case errors.Is(err, sterad.ErrCustomerCancelled):
		reason = "cancelled at the terminal: nothing was charged"
	case errors.Is(err, sterad.ErrTerminalTimeout):
		reason = "no card was presented in time: nothing was charged"
	case errors.Is(err, sterad.ErrTerminalBusy):
		reason = "the terminal is busy with another transaction: nothing was charged"
		s.setErr(sterad.ErrTerminalBusy)
	case errors.Is(err, sterad.ErrTerminalOffline):
		reason = "the terminal went offline before reading a card: nothing was charged"
		s.setErr(sterad.ErrTerminalOffline)
	case ctx.Err() != nil:
		return // shutting down: recovery finishes it after the restart
	case errors.Is(err, sterad.ErrLinkFailed):
		g.reconcile(ctx, id)
		return
	default:
		reason = "the terminal could not read the card: " + sterad.ErrorMessage(err) + ": nothing was charged"
	}
	_, _, uerr := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status.Final() {
			return nil
		}
		g.undo(c, t)
		t.Reason, t.TerminalResult = reason, "cancelled"
		return g.end(t, c, sterad.StatusCancelled, sterad.StepDone, g.clock.Now(), reason)
	})
	if uerr != nil {
		g.log.Error("cancel transaction", "txn", id, "err", uerr)
	}
}

// outcomeAttempts bounds how often one transaction's OUTCOME is sent while
// its terminal answers STATUS_QUERY card_sent (it has the card, waits for
// the outcome) but never sends the RESULT: after that many the outcome
// counts as never confirmed (outcomeNeverConfirmed).
const outcomeAttempts = 3

// showOutcome shows the outcome at the terminal and journals the RESULT.
// attempt counts the OUTCOMEs already sent without a RESULT.
func (g *Gateway) showOutcome(ctx context.Context, id string, attempt int) {
	t, err := g.store.Transaction(ctx, id)
	if err != nil {
		g.log.Error("load transaction", "txn", id, "err", err)
		return
	}
	if t.TerminalResult != "" || (t.Step != sterad.StepOutcome && t.Step != sterad.StepReversal && t.Step != sterad.StepQueued) {
		return
	}
	term := g.terms[t.Terminal]
	if term == nil {
		return
	}
	res, err := term.ShowOutcome(ctx, g.outcome(t), func(r sterad.TerminalResult) error { return g.terminalResult(ctx, id, r) })
	switch {
	case err == nil:
		g.afterResult(ctx, id, res)
	case ctx.Err() != nil:
	case errors.Is(err, sterad.ErrLinkFailed):
		// No RESULT (or the link failed): ask the terminal what it did.
		g.reconcileAttempt(ctx, id, attempt+1)
	default:
		g.log.Warn("outcome not shown at the terminal", "txn", id, "err", err)
		g.leaveForOperator(ctx, id, "the terminal did not confirm the outcome: check the terminal's slip")
	}
}

// terminalResult journals a RESULT before it is acknowledged.
func (g *Gateway) terminalResult(ctx context.Context, id string, r sterad.TerminalResult) error {
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.TerminalResult != "" {
			return nil
		}
		t.TerminalResult, t.Printed = r.Status, r.Printed
		step := sterad.StepDone
		if t.Step == sterad.StepReversal || t.Step == sterad.StepQueued {
			step = t.Step // still owed to the acquirer
		}
		note := "terminal result " + r.Status
		if r.Reason != "" {
			note += ": " + r.Reason
		}
		t.Record(step, g.clock.Now(), note)
		return nil
	})
	return err
}

// afterResult acts on the RESULT of an outcome: a customer who cancelled
// at the terminal after an approval is never charged.
func (g *Gateway) afterResult(ctx context.Context, id string, r sterad.TerminalResult) {
	if r.Status != "cancelled" {
		return
	}
	g.undoUnseen(ctx, id, "the customer cancelled at the terminal after the approval")
}

// undoUnseen makes sure a customer is not charged for an approval the
// terminal did not complete: a stand-in is withdrawn (nothing was sent), an
// approval (or an accepted stand-in advice) is reversed with RR=CU.
func (g *Gateway) undoUnseen(ctx context.Context, id, reason string) {
	if !g.cancelStandIn(ctx, id, reason) {
		g.reverseApproved(ctx, id, sterad.RRCustomerCancel, reason)
	}
}

// cancelStandIn withdraws an offline approval the customer never saw
// through: its advice has not been sent, so nothing is owed to the host.
// It reports false when there is nothing to withdraw (the advice was
// already answered: the caller reverses instead). It waits for a
// forwarding of the same advice under way to finish first.
func (g *Gateway) cancelStandIn(ctx context.Context, id, reason string) bool {
	for !g.claim(id) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer g.unclaim(id)
	done := false
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		done = false
		if t.Status != sterad.StatusStoodIn || t.Step != sterad.StepQueued {
			return nil
		}
		items, err := g.store.Queue(ctx)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.TxnID == t.ID {
				c.Dequeue = append(c.Dequeue, it.Seq)
			}
		}
		done = true
		t.Reason = reason + " (approved offline): nothing was sent, nothing charged"
		return g.end(t, c, sterad.StatusReversed, sterad.StepDone, g.clock.Now(), t.Reason)
	})
	if err != nil {
		g.log.Error("withdraw offline approval", "txn", id, "err", err)
	}
	return done
}

// reverseApproved reverses an approved authorization whose customer never
// completed the transaction at the terminal.
func (g *Gateway) reverseApproved(ctx context.Context, id, rr, reason string) {
	_, c, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status != sterad.StatusApproved || t.Op == sterad.OpCompletion {
			return nil // a completion is not confirmed at a terminal
		}
		now := g.clock.Now()
		t.Reason = reason + ": the authorization is being reversed and the card will not be charged"
		t.ReversalReason = rr
		t.ReversalTransmitted = laterThan(now.UTC().Truncate(time.Second), t.Transmitted)
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: sterad.QueueReversal, CreatedAt: now})
		return t.Transition(sterad.StatusReversed, sterad.StepReversal, now, reason)
	})
	if err != nil {
		g.log.Error("reverse approved transaction", "txn", id, "err", err)
		return
	}
	for _, it := range c.Enqueue {
		g.forwardItem(ctx, it)
	}
}

// leaveForOperator marks a transaction the gateway cannot finish alone.
func (g *Gateway) leaveForOperator(ctx context.Context, id, reason string) {
	_, _, err := g.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		t.Reason = reason
		if t.Status == sterad.StatusPending {
			return t.Transition(sterad.StatusUnknown, t.Step, g.clock.Now(), reason)
		}
		t.Record(t.Step, g.clock.Now(), reason)
		return nil
	})
	if err != nil {
		g.log.Error("mark transaction for an operator", "txn", id, "err", err)
	}
}

// reconcile decides what happened to a transaction whose terminal link
// failed (terminal-link.md §6): wait for the terminal, ask it, and finish.
func (g *Gateway) reconcile(ctx context.Context, id string) { g.reconcileAttempt(ctx, id, 0) }

// reconcileAttempt is reconcile after attempt OUTCOMEs went unanswered.
func (g *Gateway) reconcileAttempt(ctx context.Context, id string, attempt int) {
	t, err := g.store.Transaction(ctx, id)
	if err != nil {
		g.log.Error("load transaction", "txn", id, "err", err)
		return
	}
	term := g.terms[t.Terminal]
	if term == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, g.cfg.TerminalWait)
	defer cancel()
	if err := term.WaitReady(wctx); err != nil {
		if ctx.Err() == nil {
			g.leaveForOperator(ctx, id, "the terminal did not come back after its link failed: it will be checked when it reconnects")
		}
		return
	}
	st, err := term.Query(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			g.leaveForOperator(ctx, id, "the terminal did not answer a status query: check the terminal")
		}
		return
	}
	g.log.Info("terminal reconciliation", "txn", id, "terminal", t.Terminal, "state", st.State, "step", t.Step)
	switch t.Step {
	case sterad.StepCreated, sterad.StepReading, sterad.StepCardRead:
		g.reconcileBeforeSend(ctx, t, term, st)
	case sterad.StepSent:
		// Recovery turns this into a reversal before reconciling.
	default:
		g.reconcileOutcome(ctx, t, term, st, attempt)
	}
}

// reconcileBeforeSend finishes a transaction whose request never went to
// the host: nothing was charged, whatever the terminal says.
func (g *Gateway) reconcileBeforeSend(ctx context.Context, t *sterad.Transaction, term sterad.Terminal, st sterad.TerminalTxnState) {
	reason := "the terminal link failed before the card was read: nothing was charged"
	switch st.State {
	case "waiting_card":
		if _, _, err := term.Cancel(ctx, t.ID); err != nil {
			g.log.Warn("cancel at terminal", "txn", t.ID, "err", err)
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
			g.log.Warn("show error outcome", "txn", t.ID, "err", err)
		}
	case "done":
		if st.Result != nil && st.Result.Status == "cancelled" {
			reason = "cancelled at the terminal: nothing was charged"
		}
	}
	g.failBeforeSend(ctx, t.ID, reason)
	_, _, _ = g.modify(ctx, t.ID, func(x *sterad.Transaction, c *txChange) error {
		if x.TerminalResult == "" {
			x.TerminalResult = "cancelled"
		}
		x.Record(sterad.StepDone, g.clock.Now(), "reconciled with the terminal")
		return nil
	})
}

// reconcileOutcome finishes a transaction whose host outcome is known but
// whose terminal may not have shown it.
func (g *Gateway) reconcileOutcome(ctx context.Context, t *sterad.Transaction, term sterad.Terminal, st sterad.TerminalTxnState, attempt int) {
	switch st.State {
	case "card_sent":
		// Still waiting for our OUTCOME: show it again, a bounded number
		// of times.
		if attempt >= outcomeAttempts {
			g.outcomeNeverConfirmed(ctx, t.ID, attempt)
			return
		}
		g.showOutcome(ctx, t.ID, attempt)
	case "done":
		if st.Result != nil {
			if err := g.terminalResult(ctx, t.ID, *st.Result); err != nil {
				g.log.Error("journal terminal result", "txn", t.ID, "err", err)
			}
			g.afterResult(ctx, t.ID, *st.Result)
		}
	default:
		// The terminal lost the transaction (it rebooted), or never knew
		// its card had arrived (waiting_card: our ACK of the CARD was
		// lost): it never showed the outcome. It is told to cancel, so it
		// is free again, and the customer is not charged for an approval
		// never seen.
		if st.State == "waiting_card" {
			if _, _, err := term.Cancel(ctx, t.ID); err != nil {
				g.log.Warn("cancel at terminal", "txn", t.ID, "err", err)
			}
		}
		g.undoUnseen(ctx, t.ID, "the terminal lost the transaction before showing its outcome")
		_, _, _ = g.modify(ctx, t.ID, func(x *sterad.Transaction, c *txChange) error {
			x.TerminalResult = "lost"
			step := sterad.StepDone
			if x.Step == sterad.StepReversal {
				step = sterad.StepReversal
			}
			x.Record(step, g.clock.Now(), "terminal lost the transaction")
			return nil
		})
	}
}

// outcomeNeverConfirmed ends a transaction whose terminal has the card
// but never confirmed an outcome: after attempts OUTCOMEs it still answers
// card_sent and sends no RESULT. It has shown nothing it stands by and
// printed no slip, so the customer never saw the transaction through: like
// a customer who walks away (terminal-link.md §5), an approval is reversed
// with RR=CU and a stand-in withdrawn before its advice goes. A declined or
// failed outcome has nothing to undo. What cannot be undone here (the
// journal could not be written) is left for an operator. Either way the
// flow ends: the API call returns and the terminal is free for sterad
// (the terminal itself refuses a new READ_CARD with BUSY until it is
// fixed: CANCEL is TOO_LATE once the card was sent).
func (g *Gateway) outcomeNeverConfirmed(ctx context.Context, id string, attempts int) {
	reason := fmt.Sprintf("the terminal never confirmed the outcome (no RESULT after %d attempts)", attempts)
	g.log.Warn("terminal never confirmed the outcome: undoing it", "txn", id, "attempts", attempts)
	g.undoUnseen(ctx, id, reason)
	_, _, err := g.modify(ctx, id, func(x *sterad.Transaction, c *txChange) error {
		if x.TerminalResult != "" {
			return nil
		}
		x.TerminalResult = "unconfirmed"
		now := g.clock.Now()
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
		g.log.Error("journal unconfirmed outcome", "txn", id, "err", err)
		g.leaveForOperator(ctx, id, reason+": check the terminal")
	}
}

// outcome is the OUTCOME of t: what the terminal shows and prints.
func (g *Gateway) outcome(t *sterad.Transaction) sterad.TerminalOutcome {
	o := sterad.TerminalOutcome{TxnID: t.ID, Code: t.ResponseCode, AuthCode: t.AuthCode, RRN: t.RRN, Amount: t.Amount, MaskedPAN: t.MaskedPAN}
	title := map[sterad.Op]string{sterad.OpSale: "売上 / SALE", sterad.OpPreauth: "仮売上 / PRE-AUTHORIZATION", sterad.OpRefund: "返品 / REFUND",
		sterad.OpCardCheck: "カードチェック / CARD CHECK"}[t.Op]
	lines := []string{title, fmt.Sprintf("%s %s", strings.ToUpper(string(t.Brand)), t.MaskedPAN)}
	if t.Op != sterad.OpCardCheck {
		lines = append(lines, fmt.Sprintf("金額 / AMOUNT %s", t.Amount.Display()))
	}
	switch t.Status {
	case sterad.StatusApproved, sterad.StatusStoodIn:
		o.Status = "approved"
		if t.Status == sterad.StatusStoodIn {
			lines = append(lines, "オフライン承認 / OFFLINE APPROVAL")
		}
		if t.Op == sterad.OpCardCheck {
			lines = append(lines, "有効 / CARD VALID ("+t.ResponseCode+")")
		} else {
			lines = append(lines, "承認 / APPROVED", "承認番号 / AUTH "+t.AuthCode)
		}
		if t.RRN != "" {
			lines = append(lines, "RRN "+t.RRN)
		}
	case sterad.StatusDeclined:
		o.Status = "declined"
		lines = append(lines, "お取扱いできません / DECLINED", t.Reason)
	default:
		o.Status = "error"
		lines = append(lines, "取消 / NOT CHARGED", t.Reason)
	}
	lines = append(lines, t.CreatedAt.In(g.cfg.Location).Format("2006-01-02 15:04:05"), "TXN "+t.ID)
	o.Lines = lines
	return o
}
