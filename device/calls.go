package device

import (
	"context"
	"fmt"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// stepTimeout is base, or the terminal's timeout_s for this step when it
// is longer.
func stepTimeout(base time.Duration, timeoutS int) time.Duration {
	if d := time.Duration(timeoutS) * time.Second; d > base {
		return d
	}
	return base
}

// ReadCard sends READ_CARD and waits for the card. persist is called with
// the card on the link's reader goroutine before the CARD frame is
// acknowledged; if it fails the frame is not acknowledged, the terminal
// retransmits it and persist is called again (if no retransmission comes
// within T3, ReadCard returns the persist error). persist must be quick.
//
// ReadCard returns:
//   - the card, persisted;
//   - ErrCustomerCancelled when the terminal sends RESULT(cancelled)
//     (including after a Cancel by another goroutine);
//   - ErrTerminalTimeout when no PROGRESS or CARD came for T4 (or the
//     longer timeout_s of the last PROGRESS): CANCEL was sent and the
//     terminal confirmed it;
//   - ErrTerminalBusy when another transaction runs (here or at the
//     terminal: ERROR BUSY);
//   - ErrTerminalOffline when the link is down (nothing was sent);
//   - ErrLinkFailed when the link failed after READ_CARD went out, the
//     terminal did not answer within T3, or did not answer a CANCEL: the
//     terminal's state is unknown until Query answers;
//   - a *sterad.Error with code terminal_bad_card for a CARD that is not
//     a card, or carries card data in clear where sterad must not hold it
//     (beside an encrypted block; any card number under RequireP2PE): it
//     is acknowledged, its card data dropped, and CANCEL is sent; another
//     *sterad.Error for RESULT(error) or an ERROR.
//
// When ctx ends while the card is awaited, ReadCard sends CANCEL and
// waits (T3 per step) for the terminal to confirm, as on T4: it then
// returns ctx's error wrapped, or the card if the terminal answered
// TOO_LATE (the card was already sent, and is persisted).
func (s *Session) ReadCard(ctx context.Context, req sterad.CardRequest, persist func(*sterad.Card) error) (*sterad.Card, error) {
	op := "read card " + req.TxnID
	if req.TxnID == "" {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_request", "read card: the transaction id is missing")
	}
	if persist == nil {
		persist = func(*sterad.Card) error { return nil }
	}
	msg := protocol.ReadCard{
		TxnID:    req.TxnID,
		Op:       string(req.Op),
		Amount:   req.Amount.String(),
		Currency: req.Amount.Currency.Code,
		Entry:    make([]string, 0, len(req.Entry)),
		Text:     req.Text,
	}
	for _, e := range req.Entry {
		msg.Entry = append(msg.Entry, string(e))
	}
	w := newWaiter(req.TxnID, protocol.TypeProgress, protocol.TypeCard, protocol.TypeResult,
		protocol.TypeError, protocol.TypeCancelResp)
	w.persistCard = persist
	c, err := s.begin(op, w, true)
	if err != nil {
		return nil, err
	}
	defer s.end(c, w)
	if err := c.send(ctx, protocol.TypeReadCard, msg); err != nil {
		return nil, sendError(op, err, false)
	}
	return s.awaitCard(ctx, op, c, w)
}

// Phases of a ReadCard after READ_CARD was acknowledged.
const (
	awaitFirst      = iota // T3: PROGRESS, CARD, RESULT or ERROR
	awaitCard              // T4 inactivity, reset by PROGRESS
	awaitCancelResp        // T3 after our CANCEL was acknowledged
	awaitResult            // T3: the RESULT after an accepted CANCEL
)

func (s *Session) awaitCard(ctx context.Context, op string, c *conn, w *waiter) (*sterad.Card, error) {
	phase := awaitFirst
	timer := time.NewTimer(s.cfg.T3)
	defer timer.Stop()
	var cause error      // why we sent CANCEL: returned once it is confirmed
	var persistErr error // the last CARD could not be persisted
	ctxDone := ctx.Done()

	cancel := func(why error) error {
		cause = why
		if err := c.send(context.WithoutCancel(ctx), protocol.TypeCancel, protocol.TxnRef{TxnID: w.txnID}); err != nil {
			return sendError(op+": cancel", err, false)
		}
		phase = awaitCancelResp
		timer.Reset(s.cfg.T3)
		return nil
	}

	for {
		select {
		case <-w.sig:
			for _, ev := range w.take() {
				switch ev.typ {
				case protocol.TypeProgress:
					if phase == awaitFirst || phase == awaitCard {
						phase = awaitCard
						timer.Reset(stepTimeout(s.cfg.T4, ev.progress.TimeoutS))
					}
				case protocol.TypeCard:
					switch {
					case ev.persistErr != nil:
						// Not acknowledged: the terminal retransmits
						// within T2.
						persistErr = ev.persistErr
						if phase == awaitFirst {
							phase = awaitCard
						}
						timer.Reset(s.cfg.T3)
					case ev.cardErr != nil:
						s.log.Warn("unusable card from the terminal: cancelling", "txn_id", w.txnID)
						if err := c.send(context.WithoutCancel(ctx), protocol.TypeCancel, protocol.TxnRef{TxnID: w.txnID}); err != nil {
							s.log.Warn("cancel after an unusable card failed", "txn_id", w.txnID, "err", err)
						}
						return nil, ev.cardErr
					default:
						return ev.card, nil
					}
				case protocol.TypeResult:
					if cause != nil {
						return nil, cause
					}
					return nil, readCardResult(op, ev.result)
				case protocol.TypeError:
					if cause != nil {
						return nil, cause
					}
					return nil, fmt.Errorf("%s: %w", op, terminalError(ev.errMsg))
				case protocol.TypeCancelResp:
					if phase != awaitCancelResp {
						continue // the answer to a Cancel call: its RESULT follows
					}
					switch {
					case ev.cancel.Accepted:
						phase = awaitResult
						timer.Reset(s.cfg.T3)
					case ev.cancel.Reason == "TOO_LATE":
						// The card is on its way: wait for it as usual.
						phase = awaitCard
						timer.Reset(s.cfg.T4)
					default: // UNKNOWN_TXN: nothing runs at the terminal
						return nil, cause
					}
				}
			}
		case <-timer.C:
			switch {
			case persistErr != nil && (phase == awaitFirst || phase == awaitCard):
				return nil, fmt.Errorf("%s: persist card: %w", op, persistErr)
			case phase == awaitFirst:
				return nil, linkFailed(op, fmt.Sprintf("no answer to READ_CARD within %s", s.cfg.T3))
			case phase == awaitCard && cause != nil:
				return nil, linkFailed(op, "the terminal said the card was sent, but it never came")
			case phase == awaitCard:
				s.log.Info("no card presented in time: cancelling", "txn_id", w.txnID)
				if err := cancel(fmt.Errorf("%s: %w", op, sterad.ErrTerminalTimeout)); err != nil {
					return nil, err
				}
			case phase == awaitCancelResp:
				return nil, linkFailed(op, fmt.Sprintf("no answer to CANCEL within %s", s.cfg.T3))
			case phase == awaitResult:
				// Accepted, but the RESULT is late: the transaction is
				// cancelled all the same.
				return nil, cause
			}
		case <-ctxDone:
			ctxDone = nil
			if cause != nil {
				continue // already cancelling
			}
			s.log.Info("read card abandoned by the caller: cancelling", "txn_id", w.txnID)
			if err := cancel(fmt.Errorf("%s: %w", op, context.Cause(ctx))); err != nil {
				return nil, err
			}
		case <-c.link.Done():
			return nil, linkFailed(op, "link down")
		}
	}
}

// readCardResult maps a RESULT that ends a ReadCard without a card.
func readCardResult(op string, r protocol.Result) error {
	switch r.Status {
	case "cancelled":
		return fmt.Errorf("%s: %w", op, sterad.ErrCustomerCancelled)
	case "error":
		return fmt.Errorf("%s: %w", op, sterad.Errorf(sterad.EUnavailable, "terminal_error",
			"the terminal ended the transaction with an error: %s", orNone(safeText(r.Reason))))
	default:
		return fmt.Errorf("%s: %w", op, sterad.Errorf(sterad.EInternal, "terminal_protocol",
			"the terminal ended the transaction (%s) before sending a card", safeText(r.Status)))
	}
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// ShowOutcome sends OUTCOME and waits for the RESULT. persist is called
// with the RESULT on the link's reader goroutine before it is
// acknowledged (an error withholds the ACK; the terminal retransmits).
// The terminal answers within T3, or within the timeout_s of its
// PROGRESS(PRINTING) when longer. Any RESULT status (done, error,
// cancelled) is returned without error: the outcome was delivered and
// the result says what the terminal did with it. It returns
// ErrTerminalOffline, ErrTerminalBusy, ErrLinkFailed (no answer, or the
// link failed: the slip may or may not have printed), a *sterad.Error
// for an ERROR, or ctx's error.
func (s *Session) ShowOutcome(ctx context.Context, o sterad.TerminalOutcome, persist func(sterad.TerminalResult) error) (sterad.TerminalResult, error) {
	op := "show outcome " + o.TxnID
	if o.TxnID == "" {
		return sterad.TerminalResult{}, sterad.Errorf(sterad.EInvalid, "invalid_request", "show outcome: the transaction id is missing")
	}
	if persist == nil {
		persist = func(sterad.TerminalResult) error { return nil }
	}
	msg := protocol.OutcomeMsg{
		TxnID:     o.TxnID,
		Status:    o.Status,
		Code:      o.Code,
		AuthCode:  o.AuthCode,
		RRN:       o.RRN,
		Amount:    o.Amount.String(),
		Currency:  o.Amount.Currency.Code,
		MaskedPAN: o.MaskedPAN,
		Lines:     o.Lines,
	}
	if msg.Lines == nil {
		msg.Lines = []string{}
	}
	w := newWaiter(o.TxnID, protocol.TypeProgress, protocol.TypeResult, protocol.TypeError)
	w.persistResult = persist
	c, err := s.begin(op, w, false)
	if err != nil {
		return sterad.TerminalResult{}, err
	}
	defer s.end(c, w)
	if err := c.send(ctx, protocol.TypeOutcome, msg); err != nil {
		return sterad.TerminalResult{}, sendError(op, err, false)
	}
	timer := time.NewTimer(s.cfg.T3)
	defer timer.Stop()
	var persistErr error
	for {
		select {
		case <-w.sig:
			for _, ev := range w.take() {
				switch ev.typ {
				case protocol.TypeProgress:
					d := s.cfg.T3
					if ev.progress.Code == protocol.ProgressPrinting {
						d = stepTimeout(d, ev.progress.TimeoutS)
					}
					timer.Reset(d)
				case protocol.TypeResult:
					if ev.persistErr != nil {
						persistErr = ev.persistErr
						timer.Reset(s.cfg.T3)
						continue
					}
					return terminalResult(ev.result), nil
				case protocol.TypeError:
					return sterad.TerminalResult{}, fmt.Errorf("%s: %w", op, terminalError(ev.errMsg))
				}
			}
		case <-timer.C:
			if persistErr != nil {
				return sterad.TerminalResult{}, fmt.Errorf("%s: persist result: %w", op, persistErr)
			}
			return sterad.TerminalResult{}, linkFailed(op, fmt.Sprintf("no RESULT within %s", s.cfg.T3))
		case <-ctx.Done():
			return sterad.TerminalResult{}, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		case <-c.link.Done():
			return sterad.TerminalResult{}, linkFailed(op, "link down")
		}
	}
}

// Cancel sends CANCEL for txnID and returns the terminal's CANCEL_RESP:
// whether it accepted, and its reason when not (TOO_LATE, UNKNOWN_TXN).
// When accepted, the RESULT that follows completes a waiting ReadCard
// with ErrCustomerCancelled. Cancel does not wait for that RESULT.
// It returns ErrTerminalOffline when the link is down, ErrLinkFailed when
// the terminal did not answer within T3 or the link failed after CANCEL
// went out (it may have been acted on), or a *sterad.Error for an ERROR.
func (s *Session) Cancel(ctx context.Context, txnID string) (accepted bool, reason string, err error) {
	ev, err := s.roundTrip(ctx, "cancel "+txnID, txnID, protocol.TypeCancel, protocol.TypeCancelResp, false)
	if err != nil {
		return false, "", err
	}
	return ev.cancel.Accepted, safeText(ev.cancel.Reason), nil
}

// Query sends STATUS_QUERY for txnID and returns what the terminal knows
// of it. It returns ErrTerminalOffline when the link is down or fails
// before the answer, ErrLinkFailed when no STATUS_RESP comes within T3,
// or a *sterad.Error for an ERROR.
func (s *Session) Query(ctx context.Context, txnID string) (sterad.TerminalTxnState, error) {
	ev, err := s.roundTrip(ctx, "query "+txnID, txnID, protocol.TypeStatusQuery, protocol.TypeStatusResp, true)
	if err != nil {
		return sterad.TerminalTxnState{}, err
	}
	st := sterad.TerminalTxnState{TxnID: ev.status.TxnID, State: ev.status.State}
	if ev.status.Result != nil {
		r := terminalResult(*ev.status.Result)
		st.Result = &r
	}
	return st, nil
}

// roundTrip sends a request about txnID and waits up to T3 for its answer
// (or an ERROR). harmless says the request changes nothing at the
// terminal (STATUS_QUERY): a link failure then only means offline, not an
// unknown outcome.
func (s *Session) roundTrip(ctx context.Context, op, txnID string, send, want protocol.FrameType, harmless bool) (event, error) {
	c, err := s.live(op)
	if err != nil {
		return event{}, err
	}
	w := c.register(txnID, want, protocol.TypeError)
	defer c.remove(w)
	if err := c.send(ctx, send, protocol.TxnRef{TxnID: txnID}); err != nil {
		return event{}, sendError(op, err, harmless)
	}
	timer := time.NewTimer(s.cfg.T3)
	defer timer.Stop()
	for {
		select {
		case <-w.sig:
			for _, ev := range w.take() {
				switch ev.typ {
				case want:
					return ev, nil
				case protocol.TypeError:
					return event{}, fmt.Errorf("%s: %w", op, terminalError(ev.errMsg))
				}
			}
		case <-timer.C:
			return event{}, linkFailed(op, fmt.Sprintf("no %s within %s", want, s.cfg.T3))
		case <-ctx.Done():
			return event{}, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		case <-c.link.Done():
			if harmless {
				return event{}, fmt.Errorf("%s: %w", op, sterad.ErrTerminalOffline)
			}
			return event{}, linkFailed(op, "link down")
		}
	}
}
