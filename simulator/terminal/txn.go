package terminal

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// phase is where the transaction in flight is.
type phase int

const (
	phaseWaiting     phase = iota // PROGRESS sent, waiting for the customer (or CARD not delivered)
	phaseCardPending              // CARD queued or on the wire, not yet acknowledged
	phaseCardSent                 // CARD acknowledged: the gateway has it; waiting for OUTCOME
	phaseFinishing                // result journaled, RESULT queued or on the wire
)

func (p phase) display() string {
	switch p {
	case phaseWaiting:
		return StateWaitingCard
	case phaseCardPending, phaseCardSent:
		return StateCardSent
	default:
		return StateOutcome
	}
}

// txn is the transaction in flight.
type txn struct {
	req   protocol.ReadCard
	card  Card   // what the customer does
	entry string // resolved entry mode
	phase phase
	data  *protocol.CardData // the card read, until the transaction ends
	// cardsOut counts CARD frames queued or on the wire.
	cardsOut int
	timer    *time.Timer // the customer's presentation
}

func (tx *txn) stop() {
	if tx.timer != nil {
		tx.timer.Stop()
	}
	tx.data = nil // the terminal forgets track 2 and chip data when it is done
}

var errSessionReset = errors.New("terminal: session restarted by HELLO")

// handleFrame processes one data frame from the gateway. It runs on the
// session's processor goroutine, never on the link's reader.
func (t *Terminal) handleFrame(s *session, f protocol.Frame) {
	t.log.Debug("frame in", "frame", f.String())
	t.mu.Lock()
	defer t.mu.Unlock()
	switch f.Type {
	case protocol.TypeHello:
		t.onHello(s, f)
	case protocol.TypePing:
		s.push(outItem{typ: protocol.TypePong})
	case protocol.TypeReadCard:
		t.onReadCard(s, f)
	case protocol.TypeOutcome:
		t.onOutcome(s, f)
	case protocol.TypeCancel:
		t.onCancel(s, f)
	case protocol.TypeStatusQuery:
		t.onStatusQuery(s, f)
	default:
		// Frames of the terminal's own direction (CARD, RESULT, PONG, ...)
		// mean nothing here: acknowledged by the link, otherwise ignored.
		t.log.Debug("ignored frame", "frame", f.String())
	}
}

// reply queues a payload on s. Marshalling our own payload types cannot
// fail; if it somehow did, the gateway gets ERROR TERMINAL_FAULT.
func (t *Terminal) reply(s *session, typ protocol.FrameType, v any, onSent func(error)) {
	b, err := protocol.MarshalPayload(v)
	if err != nil {
		t.log.Error("encode payload", "type", typ.String(), "err", err)
		typ = protocol.TypeError
		b, _ = protocol.MarshalPayload(protocol.ErrorMsg{Code: protocol.ErrCodeTerminalFault, Text: "internal error"})
	}
	s.push(outItem{typ: typ, payload: b, onSent: onSent})
}

func (t *Terminal) sendError(s *session, txnID, code, text string) {
	t.log.Info("error sent", "txn_id", txnID, "code", code)
	t.reply(s, protocol.TypeError, protocol.ErrorMsg{TxnID: txnID, Code: code, Text: text}, nil)
}

func (t *Terminal) onHello(s *session, f protocol.Frame) {
	// A HELLO starts a new session: frames queued for the old one are
	// dropped (the frame already on the wire cannot be recalled).
	for _, it := range s.dropQueued() {
		if it.onSent != nil {
			go it.onSent(errSessionReset)
		}
	}
	var h protocol.Hello
	if err := protocol.UnmarshalPayload(f, &h); err != nil {
		t.sendError(s, "", protocol.ErrCodeBadRequest, "HELLO payload is not the expected JSON object")
		return
	}
	if h.Proto != protocol.SFLProto {
		t.sendError(s, "", protocol.ErrCodeUnsupported, fmt.Sprintf("proto %d is not supported; this terminal speaks %d", h.Proto, protocol.SFLProto))
		return
	}
	t.log.Info("session started", "gateway_id", h.GatewayID, "boot_id", t.bootID)
	s.push(outItem{typ: protocol.TypeHelloResp, build: t.helloRespLocked})
}

// helloRespLocked builds HELLO_RESP when it goes on the wire, so busy and
// current_txn are current.
func (t *Terminal) helloRespLocked() any {
	r := protocol.HelloResp{
		Proto: protocol.SFLProto, TerminalID: t.cfg.ID, Kind: t.cfg.Kind, Model: t.cfg.Model,
		FW: t.cfg.FW, BootID: t.bootID, Caps: slices.Clone(t.cfg.Caps),
	}
	if tx := t.cur; tx != nil {
		id := tx.req.TxnID
		r.Busy, r.CurrentTxn = true, &id
	}
	return r
}

var knownOps = []string{"sale", "preauth", "refund", "cardcheck", "noshow"}

// checkReadCard validates a READ_CARD and returns the entry modes both it
// and the terminal allow, or a reason for BAD_REQUEST.
func (t *Terminal) checkReadCard(rc protocol.ReadCard) ([]string, string) {
	if rc.TxnID == "" || len(rc.TxnID) > 64 {
		return nil, "txn_id must be 1 to 64 characters"
	}
	if !slices.Contains(knownOps, rc.Op) {
		return nil, "op must be sale, preauth, refund, cardcheck or noshow"
	}
	cur, ok := sterad.LookupCurrency(currencyOf(rc))
	if !ok {
		return nil, "currency is not supported"
	}
	if rc.Amount != "" || rc.Op != "cardcheck" {
		if _, err := sterad.ParseAmount(rc.Amount, cur); err != nil {
			return nil, "amount is not a valid amount in the currency"
		}
	}
	var allowed []string
	for _, e := range rc.Entry {
		switch sterad.EntryMode(e) {
		case sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe, sterad.EntryKeyed:
			if t.hasCap(e) && !slices.Contains(allowed, e) {
				allowed = append(allowed, e)
			}
		}
	}
	if len(allowed) == 0 {
		return nil, "entry lists no mode this terminal supports"
	}
	return allowed, ""
}

// sameRequest compares two READ_CARDs field by field (the JSON text may
// differ in spacing or order).
func sameRequest(a, b protocol.ReadCard) bool {
	return a.TxnID == b.TxnID && a.Op == b.Op && a.Amount == b.Amount && a.Currency == b.Currency &&
		a.Text == b.Text && slices.Equal(a.Entry, b.Entry)
}

func (t *Terminal) onReadCard(s *session, f protocol.Frame) {
	var rc protocol.ReadCard
	if err := protocol.UnmarshalPayload(f, &rc); err != nil {
		t.sendError(s, "", protocol.ErrCodeBadRequest, "READ_CARD payload is not the expected JSON object")
		return
	}
	allowed, bad := t.checkReadCard(rc)
	if bad != "" {
		t.sendError(s, rc.TxnID, protocol.ErrCodeBadRequest, bad)
		return
	}
	if rec, ok := t.journal[rc.TxnID]; ok {
		if !sameRequest(rec.req, rc) {
			t.sendError(s, rc.TxnID, protocol.ErrCodeTxnIDReused, "txn_id was used for another request")
			return
		}
		// The same request again: the stored state is its RESULT.
		t.log.Info("read card replayed", "txn_id", rc.TxnID, "state", protocol.StateDone)
		t.reply(s, protocol.TypeResult, rec.result, nil)
		return
	}
	if tx := t.cur; tx != nil {
		if tx.req.TxnID != rc.TxnID {
			t.sendError(s, rc.TxnID, protocol.ErrCodeBusy, "the terminal is busy with another transaction")
			return
		}
		if !sameRequest(tx.req, rc) {
			t.sendError(s, rc.TxnID, protocol.ErrCodeTxnIDReused, "txn_id was used for another request")
			return
		}
		// The same request again while it is in flight: repeat where we are.
		t.log.Info("read card replayed", "txn_id", rc.TxnID, "state", tx.phase.display())
		switch {
		case tx.data == nil:
			t.reply(s, protocol.TypeProgress, protocol.Progress{TxnID: tx.req.TxnID, Code: tx.prompt(), TimeoutS: PresentTimeoutS}, nil)
		case tx.phase == phaseCardSent:
			t.reply(s, protocol.TypeCard, tx.data, nil)
		default: // read, the CARD not acknowledged (yet): send it again
			t.sendCardLocked(s, tx)
		}
		return
	}

	tx := &txn{req: rc, card: t.popCardLocked()}
	tx.entry = resolveEntry(tx.card.Entry, allowed)
	t.cur = tx
	t.log.Info("read card", "txn_id", rc.TxnID, "op", rc.Op, "entry", tx.entry, "action", tx.card.Action)
	t.reply(s, protocol.TypeProgress, protocol.Progress{TxnID: rc.TxnID, Code: tx.prompt(), TimeoutS: PresentTimeoutS}, nil)

	if tx.card.Action == ActionWalkaway {
		return // nothing happens until the gateway cancels
	}
	act := func(s *session) {
		if tx.card.Action == ActionCancel {
			t.log.Info("customer cancelled", "txn_id", tx.req.TxnID)
			t.finishLocked(s, tx, protocol.Result{TxnID: tx.req.TxnID, Status: "cancelled", Reason: ReasonCustomerCancel})
			return
		}
		data, err := t.cardData(tx)
		if err != nil {
			// A terminal that cannot encrypt sends no card at all.
			t.log.Error("card not encrypted: transaction ended", "txn_id", tx.req.TxnID, "err", err)
			t.finishLocked(s, tx, protocol.Result{TxnID: tx.req.TxnID, Status: "error", Reason: ReasonEncryptionFault})
			return
		}
		tx.data = data
		t.log.Info("card presented", "txn_id", tx.req.TxnID, "entry", tx.data.Entry, "brand", tx.data.Brand, "p2pe", tx.data.P2PE != nil)
		t.sendCardLocked(s, tx)
	}
	d := tx.card.delay(t.cfg.PresentDelay)
	if d <= 0 {
		act(s)
		return
	}
	tx.timer = time.AfterFunc(d, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.cur != tx || tx.phase != phaseWaiting || tx.data != nil {
			return
		}
		act(t.sess) // the line may have been replaced meanwhile
	})
}

// prompt is the PROGRESS code shown while waiting for the customer.
func (tx *txn) prompt() string {
	if tx.entry == string(sterad.EntryKeyed) {
		return protocol.ProgressKeyEntry
	}
	return protocol.ProgressPresentCard
}

// sendCardLocked queues the CARD. The transaction counts as card_sent for
// STATUS_QUERY only once the gateway acknowledged the CARD (it persists it
// before the ACK); if the link fails first, it is back to waiting_card
// with the card still read, and a replayed READ_CARD sends it again.
func (t *Terminal) sendCardLocked(s *session, tx *txn) {
	tx.phase = phaseCardPending
	tx.cardsOut++
	t.reply(s, protocol.TypeCard, tx.data, func(err error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		tx.cardsOut--
		if t.cur != tx || tx.phase != phaseCardPending {
			return
		}
		switch {
		case err == nil:
			tx.phase = phaseCardSent
		case tx.cardsOut == 0:
			t.log.Info("card not delivered", "txn_id", tx.req.TxnID, "err", err)
			tx.phase = phaseWaiting
		}
	})
}

// finishLocked journals the result of tx and queues its RESULT. The
// terminal is idle at once: the gateway may send the next READ_CARD as
// soon as it has the RESULT, before our link has seen its ACK. Until then
// State shows "outcome".
func (t *Terminal) finishLocked(s *session, tx *txn, res protocol.Result) {
	tx.stop()
	tx.phase = phaseFinishing
	t.journalLocked(&record{req: tx.req, result: res})
	if t.cur == tx {
		t.cur = nil
	}
	t.finishing = tx
	t.reply(s, protocol.TypeResult, res, func(error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.finishing == tx {
			t.finishing = nil
		}
	})
}

func (t *Terminal) journalLocked(r *record) {
	id := r.req.TxnID
	if _, ok := t.journal[id]; !ok {
		t.order = append(t.order, id)
	}
	t.journal[id] = r
	for len(t.order) > JournalSize {
		delete(t.journal, t.order[0])
		t.order = t.order[1:]
	}
}

var outcomeStatuses = []string{"approved", "declined", "error"}

func (t *Terminal) onOutcome(s *session, f protocol.Frame) {
	var o protocol.OutcomeMsg
	if err := protocol.UnmarshalPayload(f, &o); err != nil {
		t.sendError(s, "", protocol.ErrCodeBadRequest, "OUTCOME payload is not the expected JSON object")
		return
	}
	if o.TxnID == "" {
		t.sendError(s, "", protocol.ErrCodeBadRequest, "txn_id is missing")
		return
	}
	if rec, ok := t.journal[o.TxnID]; ok {
		t.log.Info("outcome replayed", "txn_id", o.TxnID)
		t.reply(s, protocol.TypeResult, rec.result, nil)
		return
	}
	tx := t.cur
	if tx == nil || tx.req.TxnID != o.TxnID {
		t.sendError(s, o.TxnID, protocol.ErrCodeBadRequest, "unknown transaction")
		return
	}
	if tx.data == nil {
		t.sendError(s, o.TxnID, protocol.ErrCodeBadRequest, "no card has been read for this transaction")
		return
	}
	if !slices.Contains(outcomeStatuses, o.Status) {
		t.sendError(s, o.TxnID, protocol.ErrCodeBadRequest, "status must be approved, declined or error")
		return
	}
	if t.takeNoResult() {
		t.log.Info("outcome ignored (no_result fault)", "txn_id", o.TxnID)
		return
	}
	printed := t.hasCap(CapPrinter)
	t.log.Info("outcome", "txn_id", o.TxnID, "status", o.Status, "printed", printed)
	if printed {
		t.reply(s, protocol.TypeProgress, protocol.Progress{TxnID: o.TxnID, Code: protocol.ProgressPrinting}, nil)
		masked := sterad.MaskPAN(o.MaskedPAN)
		if o.MaskedPAN == "" {
			masked = tx.data.Masked()
		}
		t.slips = append(t.slips, Slip{
			TxnID: o.TxnID, Op: tx.req.Op, Status: o.Status, Code: o.Code, AuthCode: o.AuthCode, RRN: o.RRN,
			Amount: o.Amount, Currency: o.Currency, MaskedPAN: masked, Brand: tx.data.Brand, Entry: tx.data.Entry,
			Lines: maskLines(o.Lines), PrintedAt: t.cfg.Clock.Now(),
		})
		if n := len(t.slips); n > MaxSlips {
			t.slips = slices.Delete(t.slips, 0, n-MaxSlips)
		}
	}
	t.finishLocked(s, tx, protocol.Result{TxnID: o.TxnID, Status: "done", Printed: printed})
}

func (t *Terminal) onCancel(s *session, f protocol.Frame) {
	var r protocol.TxnRef
	if err := protocol.UnmarshalPayload(f, &r); err != nil || r.TxnID == "" {
		t.sendError(s, r.TxnID, protocol.ErrCodeBadRequest, "CANCEL needs a txn_id")
		return
	}
	if rec, ok := t.journal[r.TxnID]; ok {
		if rec.result.Status == "cancelled" {
			// Cancelled already: the same answer again, and its RESULT.
			t.reply(s, protocol.TypeCancelResp, protocol.CancelResp{TxnID: r.TxnID, Accepted: true}, nil)
			t.reply(s, protocol.TypeResult, rec.result, nil)
			return
		}
		t.reply(s, protocol.TypeCancelResp, protocol.CancelResp{TxnID: r.TxnID, Reason: "TOO_LATE"}, nil)
		return
	}
	tx := t.cur
	if tx == nil || tx.req.TxnID != r.TxnID {
		t.reply(s, protocol.TypeCancelResp, protocol.CancelResp{TxnID: r.TxnID, Reason: "UNKNOWN_TXN"}, nil)
		return
	}
	if tx.phase != phaseWaiting {
		t.log.Info("cancel too late", "txn_id", r.TxnID)
		t.reply(s, protocol.TypeCancelResp, protocol.CancelResp{TxnID: r.TxnID, Reason: "TOO_LATE"}, nil)
		return
	}
	t.log.Info("cancelled by the gateway", "txn_id", r.TxnID)
	t.reply(s, protocol.TypeCancelResp, protocol.CancelResp{TxnID: r.TxnID, Accepted: true}, nil)
	t.finishLocked(s, tx, protocol.Result{TxnID: r.TxnID, Status: "cancelled", Reason: ReasonCancelRequest})
}

func (t *Terminal) onStatusQuery(s *session, f protocol.Frame) {
	var r protocol.TxnRef
	if err := protocol.UnmarshalPayload(f, &r); err != nil || r.TxnID == "" {
		t.sendError(s, r.TxnID, protocol.ErrCodeBadRequest, "STATUS_QUERY needs a txn_id")
		return
	}
	id := r.TxnID
	// Built when it goes on the wire, after every frame queued before it
	// has been acknowledged or lost, so card_sent means the gateway has it.
	s.push(outItem{typ: protocol.TypeStatusResp, build: func() any { return t.statusLocked(id) }})
}

func (t *Terminal) statusLocked(id string) protocol.StatusResp {
	if rec, ok := t.journal[id]; ok {
		res := rec.result
		return protocol.StatusResp{TxnID: id, State: protocol.StateDone, Result: &res}
	}
	if tx := t.cur; tx != nil && tx.req.TxnID == id {
		if tx.phase == phaseCardSent {
			return protocol.StatusResp{TxnID: id, State: protocol.StateCardSent}
		}
		return protocol.StatusResp{TxnID: id, State: protocol.StateWaitingCard}
	}
	return protocol.StatusResp{TxnID: id, State: protocol.StateUnknown}
}
