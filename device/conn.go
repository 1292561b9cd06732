package device

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// conn is one connection: a transport, its link, and the calls waiting for
// frames on it. It lives from open to link failure.
type conn struct {
	s    *Session
	link *protocol.Link

	start  time.Time
	active atomic.Int64 // last traffic (frame received or acknowledged), ns since start

	helloCh chan helloMsg // HELLO_RESP, to hello()
	pongCh  chan struct{} // PONG, to ping()

	// Guarded by s.mu: a PING is out (pinging, until its PONG), and it
	// has gone unanswered for T2 (suspect: shown offline).
	pinging, suspect bool

	mu      sync.Mutex
	waiters []*waiter
}

type helloMsg struct {
	resp protocol.HelloResp
	err  error
}

func newConn(s *Session) *conn {
	return &conn{
		s:       s,
		start:   time.Now(),
		helloCh: make(chan helloMsg, 1),
		pongCh:  make(chan struct{}, 1),
	}
}

func (c *conn) touch() { c.active.Store(int64(time.Since(c.start))) }

func (c *conn) idle() time.Duration { return time.Since(c.start) - time.Duration(c.active.Load()) }

// send marshals v and sends it as a data frame; v nil sends no payload.
func (c *conn) send(ctx context.Context, t protocol.FrameType, v any) error {
	var payload []byte
	if v != nil {
		var err error
		if payload, err = protocol.MarshalPayload(v); err != nil {
			return err
		}
	}
	if err := c.link.Send(ctx, t, payload); err != nil {
		return err
	}
	c.touch()
	c.s.log.Debug("frame sent", "type", t.String())
	return nil
}

// hello sends HELLO and waits for HELLO_RESP.
func (c *conn) hello(ctx context.Context) (protocol.HelloResp, error) {
	s := c.s
	msg := protocol.Hello{Proto: protocol.SFLProto, GatewayID: s.cfg.GatewayID, BootID: s.cfg.BootID}
	if err := c.send(ctx, protocol.TypeHello, msg); err != nil {
		return protocol.HelloResp{}, fmt.Errorf("hello to %s: %w", s.where(), err)
	}
	t := time.NewTimer(s.cfg.HelloTimeout)
	defer t.Stop()
	select {
	case m := <-c.helloCh:
		return m.resp, m.err
	case <-t.C:
		return protocol.HelloResp{}, fmt.Errorf("hello to %s: no HELLO_RESP within %s", s.where(), s.cfg.HelloTimeout)
	case <-c.link.Done():
		return protocol.HelloResp{}, fmt.Errorf("hello to %s: %w", s.where(), c.link.Err())
	case <-ctx.Done():
		return protocol.HelloResp{}, ctx.Err()
	}
}

// serve keeps the link alive until it fails or ctx ends: PING after
// PingInterval without traffic, and expect PONG.
func (c *conn) serve(ctx context.Context) error {
	every := c.s.cfg.PingInterval
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.link.Done():
			return c.link.Err()
		case <-t.C:
			if idle := c.idle(); idle < every {
				t.Reset(every - idle)
				continue
			}
			if err := c.ping(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// Record why before the link closes: Info turns offline
				// the moment it does.
				c.s.setLastError(err)
				c.link.Close()
				return err
			}
			t.Reset(every)
		}
	}
}

// ping sends PING and waits for the PONG. A PING unanswered (no ACK, or
// no PONG after it) for T2 shows the terminal offline at once; the link's
// retransmissions take 3 × T2, and the PONG may take T3, before the link
// fails.
func (c *conn) ping(ctx context.Context) error {
	select {
	case <-c.pongCh: // a stale PONG
	default:
	}
	c.s.pinging(c, true)
	watch := time.AfterFunc(c.s.t2, func() { c.s.suspectPing(c) })
	err := c.pingPong(ctx)
	watch.Stop()
	c.s.pinging(c, false)
	if err == nil {
		// Answered, perhaps just as T2 passed: ready.
		c.s.alive(c)
	}
	return err
}

func (c *conn) pingPong(ctx context.Context) error {
	if err := c.send(ctx, protocol.TypePing, nil); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	c.s.alive(c) // a late ACK: the terminal is there, its PONG comes next
	t := time.NewTimer(c.s.cfg.T3)
	defer t.Stop()
	select {
	case <-c.pongCh:
		return nil
	case <-t.C:
		return fmt.Errorf("ping: no PONG within %s: %w", c.s.cfg.T3, protocol.ErrLinkFailed)
	case <-c.link.Done():
		return fmt.Errorf("ping: %w", c.link.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A waiter is a call waiting for frames of some types about one txn_id.
type waiter struct {
	txnID string
	types []protocol.FrameType
	// persistCard, for ReadCard, journals the card before the CARD is
	// acknowledged.
	persistCard func(*sterad.Card) error
	// persistResult, for ShowOutcome, journals the RESULT before it is
	// acknowledged.
	persistResult func(sterad.TerminalResult) error
	gotCard       bool // touched only by the link's reader goroutine

	mu    sync.Mutex
	queue []event
	sig   chan struct{}
}

// event is one inbound message for a waiter.
type event struct {
	typ        protocol.FrameType
	progress   protocol.Progress
	card       *sterad.Card
	cardErr    error // the CARD was unusable
	persistErr error // the CARD or RESULT could not be persisted: not acknowledged
	result     protocol.Result
	cancel     protocol.CancelResp
	status     protocol.StatusResp
	errMsg     protocol.ErrorMsg
}

func newWaiter(txnID string, types ...protocol.FrameType) *waiter {
	return &waiter{txnID: txnID, types: types, sig: make(chan struct{}, 1)}
}

func (w *waiter) push(ev event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.sig <- struct{}{}:
	default:
	}
}

func (w *waiter) take() []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

func (c *conn) add(w *waiter) {
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
}

func (c *conn) remove(w *waiter) {
	c.mu.Lock()
	c.waiters = slices.DeleteFunc(c.waiters, func(x *waiter) bool { return x == w })
	c.mu.Unlock()
}

// register adds a waiter for a non-transaction call (Cancel, Query).
func (c *conn) register(txnID string, types ...protocol.FrameType) *waiter {
	w := newWaiter(txnID, types...)
	c.add(w)
	return w
}

// targets returns the waiters for a frame of type t about txnID. A
// payload without txn_id (an ERROR, or a CARD that is not even JSON) goes
// to every waiter of that type.
func (c *conn) targets(t protocol.FrameType, txnID string, known bool) []*waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws []*waiter
	for _, w := range c.waiters {
		if !slices.Contains(w.types, t) {
			continue
		}
		if w.txnID == txnID || (!known || txnID == "") && (t == protocol.TypeError || t == protocol.TypeCard) {
			ws = append(ws, w)
		}
	}
	return ws
}

// handle is the link handler: it runs on the link's reader goroutine for
// each new data frame, before the ACK. It persists CARD and RESULT for the
// call waiting for them (an error withholds the ACK) and enqueues;
// nothing else blocks here.
func (c *conn) handle(f protocol.Frame) error {
	s := c.s
	c.touch()
	s.seen(c, time.Now())
	s.log.Debug("frame received", "frame", f.String())
	switch f.Type {
	case protocol.TypeHelloResp:
		var m helloMsg
		if err := protocol.UnmarshalPayload(f, &m.resp); err != nil {
			m.err = fmt.Errorf("terminal on %s sent a malformed HELLO_RESP", s.where())
		}
		select {
		case c.helloCh <- m:
		default: // an answer to a retransmitted HELLO: the first one counts
		}
		return nil
	case protocol.TypePong:
		select {
		case c.pongCh <- struct{}{}:
		default:
		}
		return nil
	case protocol.TypeCard:
		return c.handleCard(f)
	case protocol.TypeProgress, protocol.TypeResult, protocol.TypeCancelResp, protocol.TypeStatusResp, protocol.TypeError:
		return c.route(f)
	default:
		s.log.Warn("unexpected frame from the terminal", "frame", f.String())
		return nil
	}
}

func (c *conn) handleCard(f protocol.Frame) error {
	s := c.s
	var cd protocol.CardData
	ev := event{typ: protocol.TypeCard}
	known := true
	if err := protocol.UnmarshalPayload(f, &cd); err != nil {
		known = false
		ev.cardErr = badCard("the CARD message is not the expected JSON object")
	} else {
		ev.card, ev.cardErr = parseCard(cd, s.cfg.RequireP2PE)
		if ev.cardErr != nil && errors.Is(ev.cardErr, errCardInClear) {
			s.log.Warn("card data in clear from the terminal: dropped", "txn_id", cd.TxnID, "pan", cd.Masked(), "p2pe", cd.P2PE != nil)
		}
		cd = protocol.CardData{TxnID: cd.TxnID} // drop our copy of the card data
	}
	clear(f.Payload) // the only copy of the raw card data we hold
	var reader *waiter
	for _, w := range c.targets(protocol.TypeCard, cd.TxnID, known) {
		if w.persistCard != nil && !w.gotCard {
			reader = w
			break
		}
	}
	if reader == nil {
		// The call it belonged to has ended (T3, link failure): the
		// gateway reconciles with STATUS_QUERY. The frame itself is valid,
		// so it is acknowledged.
		ev.card.Wipe()
		s.log.Warn("CARD for no waiting call: ignored", "frame", f.String())
		return nil
	}
	s.started(reader.txnID)
	if ev.cardErr == nil {
		if err := reader.persistCard(ev.card); err != nil {
			ev.card.Wipe()
			reader.push(event{typ: protocol.TypeCard, persistErr: err})
			return fmt.Errorf("persist card: %w", err)
		}
	}
	reader.gotCard = true
	reader.push(ev)
	return nil
}

func (c *conn) route(f protocol.Frame) error {
	s := c.s
	ev := event{typ: f.Type}
	var txnID string
	var err error
	switch f.Type {
	case protocol.TypeProgress:
		err = protocol.UnmarshalPayload(f, &ev.progress)
		txnID = ev.progress.TxnID
	case protocol.TypeResult:
		err = protocol.UnmarshalPayload(f, &ev.result)
		txnID = ev.result.TxnID
	case protocol.TypeCancelResp:
		err = protocol.UnmarshalPayload(f, &ev.cancel)
		txnID = ev.cancel.TxnID
	case protocol.TypeStatusResp:
		err = protocol.UnmarshalPayload(f, &ev.status)
		txnID = ev.status.TxnID
	case protocol.TypeError:
		err = protocol.UnmarshalPayload(f, &ev.errMsg)
		txnID = ev.errMsg.TxnID
	}
	if err != nil {
		s.log.Warn("malformed message from the terminal: ignored", "frame", f.String())
		return nil
	}
	ws := c.targets(f.Type, txnID, true)
	if len(ws) == 0 {
		s.log.Info("message for no waiting call: ignored", "frame", f.String())
	}
	if f.Type == protocol.TypeProgress && len(ws) > 0 {
		s.started(txnID)
	}
	if f.Type == protocol.TypeResult {
		for _, w := range ws {
			if w.persistResult == nil {
				continue
			}
			if err := w.persistResult(terminalResult(ev.result)); err != nil {
				w.push(event{typ: protocol.TypeResult, persistErr: err})
				return fmt.Errorf("persist result: %w", err)
			}
		}
		s.settled(txnID)
	}
	if f.Type == protocol.TypeStatusResp && (ev.status.State == protocol.StateDone || ev.status.State == protocol.StateUnknown) {
		s.settled(txnID)
	}
	for _, w := range ws {
		w.push(ev)
	}
	return nil
}

func terminalResult(r protocol.Result) sterad.TerminalResult {
	return sterad.TerminalResult{TxnID: r.TxnID, Status: r.Status, Printed: r.Printed, Reason: safeText(r.Reason)}
}

// linkFailed is ErrLinkFailed for op, with why.
func linkFailed(op, why string) error {
	return fmt.Errorf("%s: %s: %w", op, why, sterad.ErrLinkFailed)
}

// sendError maps a failed Send: the context ended before the frame went
// out (nothing was sent), or the link failed (the terminal may have
// received it).
func sendError(op string, err error, offline bool) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, protocol.ErrLinkFailed):
		if offline {
			return fmt.Errorf("%s: %w", op, sterad.ErrTerminalOffline)
		}
		return linkFailed(op, "send")
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}
