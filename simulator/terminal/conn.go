package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sterad/sterad/protocol"
)

// maxBuffered bounds the bytes read from the line that no link has taken
// yet; beyond it the oldest are dropped (a noisy line, nobody reading).
const maxBuffered = 64 << 10

// Serve runs the terminal side of SFL/1 on rw until ctx ends (it returns
// nil), the stream fails (it returns the error), or an unplug or reboot
// fault pulls the cable (it returns an *UnplugError, errors.Is
// ErrUnplugged; the caller may serve a new stream after Down). Serve
// closes rw when it returns. A terminal serves one stream at a time: while
// it serves one, Serve returns ErrAlreadyServing at once and leaves rw
// alone.
//
// When the link layer fails (a frame unacknowledged after the
// retransmissions) but the stream is fine, the terminal starts a new link
// on the same stream and waits for the gateway's HELLO, as a real terminal
// does on its serial port.
func (t *Terminal) Serve(ctx context.Context, rw io.ReadWriteCloser) error {
	c := &conn{t: t, rw: rw, done: make(chan struct{}), unplug: make(chan *UnplugError, 1)}
	c.cond = sync.NewCond(&c.mu)
	t.mu.Lock()
	if t.conn != nil {
		t.mu.Unlock()
		return ErrAlreadyServing
	}
	t.conn = c
	t.mu.Unlock()
	t.log.Info("line up")
	defer func() {
		rw.Close()
		t.mu.Lock()
		t.conn = nil
		t.mu.Unlock()
		t.log.Info("line down")
	}()
	go c.pump()

	for {
		s := t.startSession(ctx, c)
		select {
		case <-s.link.Done():
			t.endSession(s)
			if err := c.failed(); err != nil {
				return fmt.Errorf("terminal: line: %w", err)
			}
			if ctx.Err() != nil {
				return nil
			}
			t.log.Info("link failed; waiting for HELLO on a new link", "err", s.link.Err())
		case <-c.done:
			t.endSession(s)
			return fmt.Errorf("terminal: line: %w", c.failed())
		case <-ctx.Done():
			t.endSession(s)
			return nil
		case u := <-c.unplug:
			t.log.Info("unplugged", "reboot", u.Reboot, "down", u.Down)
			rw.Close() // the gateway's reads fail now
			t.endSession(s)
			return u
		}
	}
}

// conn is the line: one reader (pump) feeding whichever link is current.
// Links come and go on a conn; the conn ends with the stream.
type conn struct {
	t      *Terminal
	rw     io.ReadWriteCloser
	unplug chan *UnplugError

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte    // read, not yet taken by a link
	err    error     // why the stream ended
	cur    *linkConn // the link reading now
	done   chan struct{}
	closed bool

	wmu sync.Mutex // serializes writes to rw
}

func (c *conn) pump() {
	b := make([]byte, 4096)
	for {
		n, err := c.rw.Read(b)
		if n > 0 && !c.t.silent(time.Now()) {
			c.mu.Lock()
			c.buf = append(c.buf, b[:n]...)
			if over := len(c.buf) - maxBuffered; over > 0 {
				c.buf = c.buf[over:]
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	c.closed, c.err = true, err
	close(c.done)
	c.cond.Broadcast()
}

func (c *conn) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.rw.Write(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

// linkConn is what one protocol.Link sees of the line. Closing it ends
// that link only; the line stays.
type linkConn struct {
	c        *conn
	closed   bool // guarded by c.mu
	closedCh chan struct{}
	once     sync.Once

	wmu       sync.Mutex
	holdUntil time.Time // no write before (truncate fault)
}

func (c *conn) newLinkConn() *linkConn {
	lc := &linkConn{c: c, closedCh: make(chan struct{})}
	c.mu.Lock()
	c.cur = lc
	c.mu.Unlock()
	return lc
}

func (lc *linkConn) Read(p []byte) (int, error) {
	c := lc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) == 0 && !lc.closed && !c.closed {
		c.cond.Wait()
	}
	if lc.closed {
		return 0, io.EOF
	}
	if len(c.buf) == 0 {
		return 0, c.err
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (lc *linkConn) Write(p []byte) (int, error) {
	lc.wmu.Lock()
	defer lc.wmu.Unlock()
	if d := time.Until(lc.holdUntil); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-lc.closedCh:
		case <-lc.c.done:
		}
		timer.Stop()
	}
	select {
	case <-lc.closedCh:
		return 0, io.ErrClosedPipe
	default:
	}
	if lc.c.t.silent(time.Now()) {
		return len(p), nil // the line is dead: nothing goes out
	}
	return lc.c.write(p)
}

// writeHold writes p and then holds every write for d (truncate fault:
// the peer must see nothing for longer than T1).
func (lc *linkConn) writeHold(p []byte, d time.Duration) {
	if _, err := lc.Write(p); err != nil {
		return
	}
	lc.wmu.Lock()
	lc.holdUntil = time.Now().Add(d)
	lc.wmu.Unlock()
}

func (lc *linkConn) Close() error {
	lc.once.Do(func() {
		c := lc.c
		c.mu.Lock()
		lc.closed = true
		if c.cur == lc {
			c.cur = nil
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		close(lc.closedCh)
	})
	return nil
}

// session is one protocol.Link on the line, with its outbound queue.
type session struct {
	link *protocol.Link
	lc   *linkConn
	in   chan protocol.Frame
	wake chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	queue []outItem
	dead  bool

	lastACK int // SEQ of the last ACK the write hook saw (guarded by Terminal.fmu)
}

// outItem is a frame waiting to be sent. build, when set, makes the
// payload when the frame goes on the wire (under Terminal.mu); onSent
// learns whether the gateway acknowledged it.
type outItem struct {
	typ     protocol.FrameType
	payload []byte
	build   func() any
	onSent  func(error)
}

var errNoLink = errors.New("terminal: no link")

// push queues it; on a dead or missing session onSent learns at once (on
// its own goroutine: callers hold Terminal.mu).
func (s *session) push(it outItem) {
	if s != nil {
		s.mu.Lock()
		if !s.dead {
			s.queue = append(s.queue, it)
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
			return
		}
		s.mu.Unlock()
	}
	if it.onSent != nil {
		go it.onSent(errNoLink)
	}
}

func (s *session) pop() (outItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return outItem{}, false
	}
	it := s.queue[0]
	s.queue = slices.Delete(s.queue, 0, 1)
	return it, true
}

func (s *session) dropQueued() []outItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (s *session) kill() []outItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	q := s.queue
	s.queue = nil
	return q
}

// deliver is the link's handler: it only hands the frame over, so the ACK
// goes out at once. A full backlog withholds the ACK; the gateway resends.
func (s *session) deliver(f protocol.Frame) error {
	select {
	case s.in <- f:
		return nil
	default:
		return errors.New("terminal: backlog full")
	}
}

func (t *Terminal) startSession(ctx context.Context, c *conn) *session {
	s := &session{lc: c.newLinkConn(), in: make(chan protocol.Frame, 32), wake: make(chan struct{}, 1), lastACK: -1}
	opts := t.cfg.Link
	opts.WriteHook = t.writeHook(s)
	s.link = protocol.NewLink(s.lc, s.deliver, opts)
	t.mu.Lock()
	t.sess = s
	t.mu.Unlock()
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.link.Run()
	}()
	go func() {
		defer s.wg.Done()
		t.sendLoop(ctx, s)
	}()
	go func() {
		defer s.wg.Done()
		for {
			select {
			case f := <-s.in:
				t.handleFrame(s, f)
			case <-s.link.Done():
				return
			}
		}
	}()
	return s
}

// endSession closes the session's link, waits for its goroutines and adds
// its counters to the terminal's.
func (t *Terminal) endSession(s *session) {
	s.link.Close()
	s.wg.Wait()
	t.mu.Lock()
	if t.sess == s {
		t.sess = nil
	}
	t.statsBase = addStats(t.statsBase, s.link.Stats())
	t.mu.Unlock()
}

// sendLoop sends the queued frames one at a time (one unacknowledged
// frame per direction). When the link fails, what is left is dropped.
func (t *Terminal) sendLoop(ctx context.Context, s *session) {
	fail := func(err error) {
		for _, it := range s.kill() {
			if it.onSent != nil {
				it.onSent(err)
			}
		}
	}
	for {
		it, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.link.Done():
				fail(s.link.Err())
				return
			}
		}
		payload := it.payload
		if it.build != nil {
			t.mu.Lock()
			v := it.build()
			t.mu.Unlock()
			b, err := protocol.MarshalPayload(v)
			if err != nil {
				t.log.Error("encode payload", "type", it.typ.String(), "err", err)
				continue
			}
			payload = b
		}
		err := s.link.Send(ctx, it.typ, payload)
		if err != nil {
			t.log.Info("frame not delivered", "type", it.typ.String(), "len", len(payload), "err", err)
		} else {
			t.log.Debug("frame out", "type", it.typ.String(), "len", len(payload))
		}
		if it.onSent != nil {
			it.onSent(err)
		}
		if err != nil {
			s.link.Close()
			fail(err)
			return
		}
	}
}

// writeHook injects the armed line faults into what the link writes.
func (t *Terminal) writeHook(s *session) func(protocol.Frame, []byte, bool) []byte {
	user := t.cfg.Link.WriteHook
	t1 := t.cfg.Link.T1
	if t1 <= 0 {
		t1 = protocol.T1
	}
	return func(f protocol.Frame, b []byte, retx bool) []byte {
		if user != nil {
			if b = user(f, b, retx); b == nil {
				return nil
			}
		}
		var garbage, drop, corrupt, truncate bool
		t.fmu.Lock()
		if t.faults.garbage > 0 {
			t.faults.garbage--
			garbage = true
		}
		switch {
		case f.Type == protocol.TypeACK:
			// Drop the first ACK of a new frame; the ACK of its
			// retransmission (a duplicate) goes out. HELLO's ACK is
			// never dropped.
			isNew := int(f.Seq) != s.lastACK
			s.lastACK = int(f.Seq)
			if isNew && f.Seq != 0 && t.faults.dropACK > 0 {
				t.faults.dropACK--
				drop = true
			}
		case f.Type == protocol.TypeNAK || retx:
		case t.faults.badCRC > 0:
			t.faults.badCRC--
			corrupt = true
		case t.faults.truncate > 0:
			t.faults.truncate--
			truncate = true
		}
		t.fmu.Unlock()

		if garbage {
			_ = s.link.WriteRaw(noise())
		}
		switch {
		case drop:
			t.log.Info("fault: ACK dropped", "seq", f.Seq)
			return nil
		case corrupt:
			t.log.Info("fault: bad CRC", "frame", f.String())
			b = slices.Clone(b)
			b[len(b)-1] ^= 0xFF
		case truncate:
			t.log.Info("fault: frame truncated", "frame", f.String())
			cut := 6 + len(f.Payload)/2 // the header and half the payload
			s.lc.writeHold(b[:cut], 2*t1)
			return nil
		}
		return b
	}
}

// noise returns a burst of line noise that a correct decoder discards
// silently: random bytes, stray STX bytes and impossible headers (wrong
// VER, unknown TYPE, LEN over 4096, SEQ 0 on a data frame). It never ends
// in something that could start a frame.
func noise() []byte {
	other := func() byte { // anything but STX and VER
		for {
			if b := byte(rand.UintN(256)); b != protocol.STX && b != protocol.SFLVersion {
				return b
			}
		}
	}
	n := 24 + rand.IntN(40)
	b := make([]byte, 0, n+8)
	for len(b) < n {
		switch rand.IntN(6) {
		case 0: // stray STX
			b = append(b, protocol.STX, other())
		case 1: // unknown TYPE
			b = append(b, protocol.STX, protocol.SFLVersion, other(), 0xEE, 0x00, 0x04)
		case 2: // LEN over 4096
			b = append(b, protocol.STX, protocol.SFLVersion, 0x07, byte(protocol.TypeReadCard), 0xFF, 0xF0)
		case 3: // SEQ 0 on a data frame
			b = append(b, protocol.STX, protocol.SFLVersion, 0x00, byte(protocol.TypeCard), 0x00, 0x10)
		default:
			b = append(b, other(), other(), other())
		}
	}
	return append(b, other())
}
