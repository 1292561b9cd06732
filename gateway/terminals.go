package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// terminals owns the card-present flow (docs/terminal-protocol.md §5: READ_CARD,
// the card journaled before its ACK, the request, the OUTCOME, the
// RESULT), its reconciliation when a link fails (§6), and which terminal
// is busy with which transaction. It may call the forwarder (exchange, an
// undo's reversal, a stand-in's withdrawal), outcomes, the sender and the
// journal.
type terminals struct {
	env
	j  *journal
	sd *sender
	oc *outcomes
	fw *forwarder

	terms map[string]sterad.Terminal
	ids   []string // in order

	mu   sync.Mutex
	busy map[string]string // terminal ID → transaction in progress
}

func newTerminals(e env, list []sterad.Terminal, j *journal, sd *sender, oc *outcomes, fw *forwarder) (*terminals, error) {
	tm := &terminals{env: e, j: j, sd: sd, oc: oc, fw: fw, terms: map[string]sterad.Terminal{}, busy: map[string]string{}}
	for _, t := range list {
		id := t.Info().ID
		if _, dup := tm.terms[id]; dup {
			return nil, fmt.Errorf("gateway: terminal %s configured twice", id)
		}
		tm.terms[id] = t
		tm.ids = append(tm.ids, id)
	}
	slices.Sort(tm.ids)
	return tm, nil
}

// lookup returns the configured terminal id.
func (tm *terminals) lookup(id string) (sterad.Terminal, bool) {
	t, ok := tm.terms[id]
	return t, ok
}

// reserve makes terminal id busy with transaction txn; false when it is
// busy with another.
func (tm *terminals) reserve(id, txn string) bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.busy[id] != "" {
		return false
	}
	tm.busy[id] = txn
	return true
}

// hold makes terminal id busy with txn, whatever it was busy with: a
// recovered transaction the terminal must be asked about.
func (tm *terminals) hold(id, txn string) {
	tm.mu.Lock()
	tm.busy[id] = txn
	tm.mu.Unlock()
}

// free ends txn's hold on terminal id.
func (tm *terminals) free(id, txn string) {
	tm.mu.Lock()
	if tm.busy[id] == txn {
		delete(tm.busy, id)
	}
	tm.mu.Unlock()
}

// list describes every configured terminal, in ID order.
func (tm *terminals) list() []sterad.TerminalInfo {
	out := make([]sterad.TerminalInfo, 0, len(tm.ids))
	for _, id := range tm.ids {
		info := tm.terms[id].Info()
		tm.mu.Lock()
		if txn := tm.busy[id]; txn != "" && info.State != sterad.TerminalOffline {
			info.State, info.CurrentTxn = sterad.TerminalBusy, txn
		}
		tm.mu.Unlock()
		out = append(out, info)
	}
	return out
}

// entriesFor returns the entry modes a READ_CARD offers for op.
func entriesFor(op sterad.Op) []sterad.EntryMode {
	if op == sterad.OpCardCheck {
		return []sterad.EntryMode{sterad.EntryKeyed, sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe}
	}
	return []sterad.EntryMode{sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe}
}

// terminalOp is the op a READ_CARD names (terminal-link.md knows sale,
// preauth, refund, cardcheck and noshow): an advance deposit read at a
// terminal is a payment like a sale.
func terminalOp(op sterad.Op) sterad.Op {
	if op == sterad.OpDeposit {
		return sterad.OpSale
	}
	return op
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
	case sterad.OpDeposit:
		return fmt.Sprintf("前受金 / Deposit %s", t.Amount.Display())
	}
	return fmt.Sprintf("お支払い / Payment %s", t.Amount.Display())
}

// runAtTerminal is the flow of a card-present transaction (docs/terminal-protocol.md
// §5): READ_CARD, the card journaled before its ACK, the request journaled
// and sent, the OUTCOME shown and printed, the RESULT journaled.
func (tm *terminals) runAtTerminal(ctx context.Context, s *started) {
	t, term := s.txn, s.plan.term
	req := sterad.CardRequest{TxnID: t.ID, Op: terminalOp(t.Op), Amount: t.Amount, Entry: entriesFor(t.Op), Text: promptFor(t)}
	card, err := term.ReadCard(ctx, req, func(c *sterad.Card) error { return tm.cardRead(ctx, t.ID, c) })
	if err != nil {
		tm.cardNotRead(ctx, s, err)
		return
	}
	s.card = card
	tm.authorizeRead(ctx, t.ID, card)
	tm.showOutcome(ctx, t.ID, 0)
}

// cardRead journals a card read at the terminal, encrypted, before the
// terminal is told it arrived. Its brand is the card number's own (the
// terminal's claim only fills in a range sterad does not know). A card
// whose track 2 or chip data name another card is journaled as read but
// not kept: authorizeRead refuses it.
//
// An encrypting terminal's card (Card.Blind) is journaled as the masked
// number, brand and key serial number it showed; its block stays in
// memory for the request and is never written (docs/non-retention.md). In
// card-data-blind mode a card in clear is dropped here: nothing of it is
// journaled or logged, and authorizeRead refuses the read.
func (tm *terminals) cardRead(ctx context.Context, id string, c *sterad.Card) error {
	if tm.blind() && !c.Blind() {
		dropClearCard(c)
		_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, ch *txChange) error {
			if t.Step != sterad.StepReading {
				return nil
			}
			return t.Transition(sterad.StatusPending, sterad.StepCardRead, tm.clock.Now(), "card refused: the terminal sent it in clear")
		})
		return err
	}
	if c.Blind() {
		if c.Brand == "" {
			c.Brand = sterad.BrandUnknown
		}
	} else if claimed := c.SettleBrand(); claimed != "" {
		tm.log.Warn("the terminal's brand disagrees with the card number's range: the range wins",
			"txn", id, "card", c.PAN.Masked(), "terminal_brand", string(claimed), "brand", string(c.Brand))
	}
	keep := !c.Blind() && c.CheckCardData() == nil
	_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, ch *txChange) error {
		if t.Step != sterad.StepReading {
			return nil // a retransmitted CARD: already journaled
		}
		t.MaskedPAN, t.Brand, t.Entry, t.HasCard = c.MaskedPAN(), c.Brand, c.Entry, keep
		if c.Blind() {
			t.KSN = c.Encrypted.KSN
		}
		if keep {
			ch.SealCards = append(ch.SealCards, sterad.SealCard{Owner: t.ID, Card: c})
		}
		return t.Transition(sterad.StatusPending, sterad.StepCardRead, tm.clock.Now(), "card read: "+c.MaskedPAN())
	})
	return err
}

// dropClearCard forgets the card data of a card in clear that reached
// sterad in card-data-blind mode: the sensitive data is zeroed and the
// number and expiry dropped (a Go string cannot be zeroed; nothing keeps
// a reference to it once the read is over).
func dropClearCard(c *sterad.Card) {
	c.Wipe()
	c.PAN, c.Expiry, c.Masked, c.Brand = "", sterad.Expiry{}, "", ""
}

// authorizeRead checks a card read at the terminal, journals the request
// and exchanges it with the acquirer.
func (tm *terminals) authorizeRead(ctx context.Context, id string, card *sterad.Card) {
	var msg *sterad.HostMessage
	_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		now := tm.clock.Now()
		if reason := tm.refuseRead(ctx, t, card, now); reason != "" {
			tm.oc.undo(ctx, c, t)
			t.Reason = reason
			return tm.oc.end(t, c, sterad.StatusDeclined, sterad.StepOutcome, now, reason)
		}
		orig, err := tm.j.originalOf(ctx, t)
		if err != nil {
			return err
		}
		c.unlocks = append(c.unlocks, tm.j.shareBatch()) // until the commit
		m, err := tm.sd.prepare(ctx, t, card, orig, now)
		if err != nil {
			return err
		}
		msg = m
		t.Record(sterad.StepSent, now, "request journaled")
		return nil
	})
	if err != nil {
		tm.log.Error("journal request", "txn", id, "err", err)
		tm.failBeforeSend(ctx, id, "the transaction could not be journaled: nothing was charged")
		return
	}
	if msg != nil {
		tm.fw.exchange(ctx, id, msg)
	}
}

// refuseRead returns why a card read at the terminal must not be sent
// ("" when it may).
func (tm *terminals) refuseRead(ctx context.Context, t *sterad.Transaction, card *sterad.Card, now time.Time) string {
	if tm.blind() && !card.Blind() {
		dropClearCard(card)
		tm.log.Warn("card refused: the terminal sent card data in clear while sterad runs card-data-blind", "txn", t.ID, "terminal", t.Terminal)
		return "the terminal sent the card in clear and sterad runs card-data-blind: the card was refused, nothing was charged: check the terminal's encryption (p2pe)"
	}
	// The card as a whole (Card.Validate): its number, its track 2 and
	// chip data naming that same card, its expiry.
	if err := card.Validate(now.In(tm.cfg.Location)); err != nil {
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
		another := "a refund goes back to the card of the original charge: this is another card"
		if !card.Blind() {
			if orig, err := tm.j.store.OpenCard(ctx, t.Original); err == nil {
				same := orig.PAN == card.PAN
				orig.Wipe()
				if !same {
					return another
				}
				return ""
			}
		}
		// No card kept (card-data-blind, or destroyed): the masked
		// numbers must agree.
		if o, err := tm.j.store.Transaction(ctx, t.Original); err == nil && o.MaskedPAN != "" && o.MaskedPAN != card.MaskedPAN() {
			return another
		}
	}
	return ""
}

// failBeforeSend ends a transaction that never reached the host.
func (tm *terminals) failBeforeSend(ctx context.Context, id, reason string) {
	_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status.Final() || t.Step == sterad.StepSent {
			return nil
		}
		tm.oc.undo(ctx, c, t)
		t.Reason = reason
		return tm.oc.end(t, c, sterad.StatusCancelled, tm.oc.nextStep(t), tm.clock.Now(), reason)
	})
	if err != nil {
		tm.log.Error("cancel transaction", "txn", id, "err", err)
	}
}

// cardNotRead ends a READ_CARD that brought no card.
func (tm *terminals) cardNotRead(ctx context.Context, s *started, err error) {
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
		tm.reconcile(ctx, id)
		return
	default:
		reason = "the terminal could not read the card: " + sterad.ErrorMessage(err) + ": nothing was charged"
	}
	_, _, uerr := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status.Final() {
			return nil
		}
		tm.oc.undo(ctx, c, t)
		t.Reason, t.TerminalResult = reason, "cancelled"
		return tm.oc.end(t, c, sterad.StatusCancelled, sterad.StepDone, tm.clock.Now(), reason)
	})
	if uerr != nil {
		tm.log.Error("cancel transaction", "txn", id, "err", uerr)
	}
}

// outcomeAttempts bounds how often one transaction's OUTCOME is sent while
// its terminal answers STATUS_QUERY card_sent (it has the card, waits for
// the outcome) but never sends the RESULT: after that many the outcome
// counts as never confirmed (outcomeNeverConfirmed).
const outcomeAttempts = 3

// showOutcome shows the outcome at the terminal and journals the RESULT.
// attempt counts the OUTCOMEs already sent without a RESULT.
func (tm *terminals) showOutcome(ctx context.Context, id string, attempt int) {
	t, err := tm.j.store.Transaction(ctx, id)
	if err != nil {
		tm.log.Error("load transaction", "txn", id, "err", err)
		return
	}
	if t.TerminalResult != "" || (t.Step != sterad.StepOutcome && t.Step != sterad.StepReversal && t.Step != sterad.StepQueued) {
		return
	}
	term := tm.terms[t.Terminal]
	if term == nil {
		return
	}
	res, err := term.ShowOutcome(ctx, tm.outcome(t), func(r sterad.TerminalResult) error { return tm.terminalResult(ctx, id, r) })
	switch {
	case err == nil:
		tm.afterResult(ctx, id, res)
	case ctx.Err() != nil:
	case errors.Is(err, sterad.ErrLinkFailed):
		// No RESULT (or the link failed): ask the terminal what it did.
		tm.reconcileAttempt(ctx, id, attempt+1)
	default:
		tm.log.Warn("outcome not shown at the terminal", "txn", id, "err", err)
		tm.leaveForOperator(ctx, id, "the terminal did not confirm the outcome: check the terminal's slip")
	}
}

// terminalResult journals a RESULT before it is acknowledged.
func (tm *terminals) terminalResult(ctx context.Context, id string, r sterad.TerminalResult) error {
	_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
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
		t.Record(step, tm.clock.Now(), note)
		return nil
	})
	return err
}

// afterResult acts on the RESULT of an outcome: a customer who cancelled
// at the terminal after an approval is never charged.
func (tm *terminals) afterResult(ctx context.Context, id string, r sterad.TerminalResult) {
	if r.Status != "cancelled" {
		return
	}
	tm.undoUnseen(ctx, id, "the customer cancelled at the terminal after the approval")
}

// undoUnseen makes sure a customer is not charged for an approval the
// terminal did not complete: a stand-in is withdrawn (nothing was sent), an
// approval (or an accepted stand-in advice) is reversed with RR=CU.
func (tm *terminals) undoUnseen(ctx context.Context, id, reason string) {
	if !tm.fw.cancelStandIn(ctx, id, reason) {
		tm.reverseApproved(ctx, id, sterad.RRCustomerCancel, reason)
	}
}

// reverseApproved reverses an approved authorization whose customer never
// completed the transaction at the terminal.
func (tm *terminals) reverseApproved(ctx context.Context, id, rr, reason string) {
	_, c, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		if t.Status != sterad.StatusApproved || t.Op == sterad.OpCompletion {
			return nil // a completion is not confirmed at a terminal
		}
		now := tm.clock.Now()
		t.Reason = reason + ": the authorization is being reversed and the card will not be charged"
		t.ReversalReason = rr
		t.ReversalTransmitted = laterThan(now.UTC().Truncate(time.Second), t.Transmitted)
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: sterad.QueueReversal, CreatedAt: now})
		return t.Transition(sterad.StatusReversed, sterad.StepReversal, now, reason)
	})
	if err != nil {
		tm.log.Error("reverse approved transaction", "txn", id, "err", err)
		return
	}
	for _, it := range c.Enqueue {
		tm.fw.forwardItem(ctx, it)
	}
}

// leaveForOperator marks a transaction the gateway cannot finish alone.
func (tm *terminals) leaveForOperator(ctx context.Context, id, reason string) {
	_, _, err := tm.j.modify(ctx, id, func(t *sterad.Transaction, c *txChange) error {
		t.Reason = reason
		if t.Status == sterad.StatusPending {
			return t.Transition(sterad.StatusUnknown, t.Step, tm.clock.Now(), reason)
		}
		t.Record(t.Step, tm.clock.Now(), reason)
		return nil
	})
	if err != nil {
		tm.log.Error("mark transaction for an operator", "txn", id, "err", err)
	}
}

// outcome is the OUTCOME of t: what the terminal shows and prints.
func (tm *terminals) outcome(t *sterad.Transaction) sterad.TerminalOutcome {
	o := sterad.TerminalOutcome{TxnID: t.ID, Code: t.ResponseCode, AuthCode: t.AuthCode, RRN: t.RRN, Amount: t.Amount, MaskedPAN: t.MaskedPAN}
	title := map[sterad.Op]string{sterad.OpSale: "売上 / SALE", sterad.OpPreauth: "仮売上 / PRE-AUTHORIZATION", sterad.OpRefund: "返品 / REFUND",
		sterad.OpCardCheck: "カードチェック / CARD CHECK", sterad.OpDeposit: "前受金 / DEPOSIT"}[t.Op]
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
	lines = append(lines, t.CreatedAt.In(tm.cfg.Location).Format("2006-01-02 15:04:05"), "TXN "+t.ID)
	o.Lines = lines
	return o
}
