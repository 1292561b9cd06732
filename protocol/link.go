package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLinkFailed is returned when a data frame was not acknowledged after
// MaxRetransmits retransmissions, or when the transport failed.
var ErrLinkFailed = errors.New("sfl: link failed")

// LinkOptions tune the link layer. Zero values take the SFL/1 defaults;
// tests shorten the timers.
type LinkOptions struct {
	T1             time.Duration // partial frame timeout (default 200 ms)
	T2             time.Duration // ACK timeout (default 2 s)
	MaxRetransmits int           // retransmissions before failure (default 2)
	Logger         *slog.Logger  // default: discard
	Name           string        // for logs, e.g. the terminal ID
	// NoiseLogEvery bounds how often discarded noise is logged (default 1 s).
	NoiseLogEvery time.Duration
	// WriteHook, when set, sees every frame about to be written (data
	// frames on each transmission, ACKs and NAKs) and returns the bytes to
	// write instead: nil drops the write. Simulators use it to inject line
	// faults (a lost ACK, a bad CRC, a truncated frame).
	WriteHook func(f Frame, b []byte, retransmission bool) []byte
}

func (o *LinkOptions) defaults() {
	if o.T1 <= 0 {
		o.T1 = T1
	}
	if o.T2 <= 0 {
		o.T2 = T2
	}
	if o.MaxRetransmits <= 0 {
		o.MaxRetransmits = MaxRetransmits
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NoiseLogEvery <= 0 {
		o.NoiseLogEvery = time.Second
	}
}

// LinkStats counts what the link layer did.
type LinkStats struct {
	FramesSent     uint64 // data frames, first transmissions
	FramesReceived uint64 // data frames delivered
	Retransmits    uint64
	NAKsSent       uint64
	NAKsReceived   uint64
	Duplicates     uint64 // data frames received again (our ACK was lost)
	NoiseBytes     uint64 // bytes outside frames and impossible headers
	Rejected       uint64 // frames the handler refused (not acknowledged)
}

// Handler receives each new data frame (not ACK/NAK, not duplicates)
// before it is acknowledged. Returning an error withholds the ACK, so the
// peer retransmits. Handlers run on the link's reader goroutine: they must
// be quick and must not call Send.
type Handler func(Frame) error

// Link is one side of an SFL/1 link over a byte stream (docs/terminal-protocol.md
// §3): at most one unacknowledged data frame per direction, ACK/NAK,
// retransmission after T2 or NAK, duplicate detection, partial frames
// dropped after T1. It knows nothing of the messages it carries.
type Link struct {
	rw      io.ReadWriteCloser
	handler Handler
	opts    LinkOptions

	sendSem chan struct{} // held by Send from write until ACK: one outstanding frame
	outSeq  byte          // last SEQ sent on a data frame
	writeMu sync.Mutex    // serializes writes to rw

	ackMu   sync.Mutex
	waitSeq int            // SEQ awaiting ACK, -1 when none
	ackCh   chan ackSignal // reader → Send

	lastIn int // last SEQ accepted from the peer, -1 before any

	done     chan struct{}
	doneOnce sync.Once
	err      error

	stats struct {
		sent, recv, retx, nakOut, nakIn, dup, noise, rejected atomic.Uint64
	}
}

type ackSignal struct {
	seq byte
	nak bool
}

// NewLink returns a link over rw that delivers data frames to h. Call Run
// to start reading.
func NewLink(rw io.ReadWriteCloser, h Handler, opts LinkOptions) *Link {
	opts.defaults()
	if h == nil {
		h = func(Frame) error { return nil }
	}
	return &Link{
		rw:      rw,
		handler: h,
		opts:    opts,
		sendSem: make(chan struct{}, 1),
		waitSeq: -1,
		ackCh:   make(chan ackSignal, 8),
		lastIn:  -1,
		done:    make(chan struct{}),
	}
}

// Done is closed when the link has failed or was closed.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link ended (nil while it runs).
func (l *Link) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Close closes the transport and ends the link.
func (l *Link) Close() error {
	l.fail(fmt.Errorf("%w: closed", ErrLinkFailed))
	return nil
}

func (l *Link) fail(err error) {
	l.doneOnce.Do(func() {
		l.err = err
		close(l.done)
		l.rw.Close()
	})
}

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{
		FramesSent: l.stats.sent.Load(), FramesReceived: l.stats.recv.Load(),
		Retransmits: l.stats.retx.Load(), NAKsSent: l.stats.nakOut.Load(), NAKsReceived: l.stats.nakIn.Load(),
		Duplicates: l.stats.dup.Load(), NoiseBytes: l.stats.noise.Load(), Rejected: l.stats.rejected.Load(),
	}
}

type chunk struct {
	b   []byte
	at  time.Time
	err error
}

// Run reads the transport until the link fails or is closed, and returns
// the reason. It must be called exactly once.
func (l *Link) Run() error {
	chunks := make(chan chunk, 16)
	go func() {
		for {
			buf := make([]byte, 1024)
			n, err := l.rw.Read(buf)
			if n > 0 {
				select {
				case chunks <- chunk{b: buf[:n], at: time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				select {
				case chunks <- chunk{err: err}:
				case <-l.done:
				}
				return
			}
		}
	}()

	dec := Decoder{T1: l.opts.T1}
	t1 := time.NewTimer(time.Hour)
	t1.Stop()
	var lastNoiseLog time.Time
	var noiseSinceLog int
	noise := func(n int) {
		if n == 0 {
			return
		}
		l.stats.noise.Add(uint64(n))
		noiseSinceLog += n
		if time.Since(lastNoiseLog) >= l.opts.NoiseLogEvery {
			l.opts.Logger.Warn("discarded noise on the terminal link", "link", l.opts.Name, "bytes", noiseSinceLog)
			lastNoiseLog, noiseSinceLog = time.Now(), 0
		}
	}
	drain := func() {
		for {
			ev, ok := dec.Next()
			if !ok {
				break
			}
			noise(ev.Discarded)
			l.handle(ev)
		}
		noise(dec.TakeDiscarded())
		if dec.Pending() {
			t1.Reset(time.Until(dec.Deadline()))
		} else {
			t1.Stop()
		}
	}
	for {
		select {
		case <-l.done:
			return l.err
		case c := <-chunks:
			if c.err != nil {
				err := fmt.Errorf("%w: %v", ErrLinkFailed, c.err)
				if errors.Is(c.err, io.EOF) {
					err = fmt.Errorf("%w: transport closed", ErrLinkFailed)
				}
				l.fail(err)
				return l.err
			}
			dec.Feed(c.b, c.at)
			drain()
		case now := <-t1.C:
			if ev, ok := dec.Expire(now); ok {
				noise(ev.Discarded)
				l.handle(ev)
			}
			// Frames buffered behind the dropped one, and a re-arm if
			// the timer fired a hair early.
			drain()
		}
	}
}

func (l *Link) handle(ev DecodeEvent) {
	switch ev.Kind {
	case BadFrame, DroppedFrame:
		l.opts.Logger.Debug("bad frame on the terminal link", "link", l.opts.Name, "seq", ev.Frame.Seq, "dropped", ev.Kind == DroppedFrame)
		if ev.Frame.Type.IsControl() {
			// ACK and NAK are never acknowledged, not even negatively:
			// the peer's T2 recovers a lost ACK.
			return
		}
		l.stats.nakOut.Add(1)
		l.writeControl(TypeNAK, ev.Frame.Seq)
	case DecodedFrame:
		f := ev.Frame
		switch f.Type {
		case TypeACK, TypeNAK:
			if f.Type == TypeNAK {
				l.stats.nakIn.Add(1)
			}
			l.ackMu.Lock()
			waiting := l.waitSeq == int(f.Seq)
			l.ackMu.Unlock()
			if waiting {
				select {
				case l.ackCh <- ackSignal{seq: f.Seq, nak: f.Type == TypeNAK}:
				default:
				}
			}
			return
		}
		if f.Type.IsSession() {
			// HELLO and HELLO_RESP start a session: always delivered,
			// and the peer numbers from 1 afterwards.
			if err := l.handler(f); err != nil {
				l.stats.rejected.Add(1)
				return
			}
			l.lastIn = 0
			l.stats.recv.Add(1)
			l.writeControl(TypeACK, f.Seq)
			return
		}
		if int(f.Seq) == l.lastIn {
			l.stats.dup.Add(1)
			l.writeControl(TypeACK, f.Seq)
			return
		}
		if err := l.handler(f); err != nil {
			l.stats.rejected.Add(1)
			l.opts.Logger.Warn("frame not acknowledged", "link", l.opts.Name, "frame", f.String(), "err", err)
			return
		}
		l.lastIn = int(f.Seq)
		l.stats.recv.Add(1)
		l.writeControl(TypeACK, f.Seq)
	}
}

func (l *Link) writeControl(t FrameType, seq byte) {
	f := Frame{Seq: seq, Type: t}
	if err := l.writeFrame(f, AppendFrame(nil, f), false); err != nil {
		l.fail(fmt.Errorf("%w: write: %v", ErrLinkFailed, err))
	}
}

func (l *Link) writeFrame(f Frame, b []byte, retx bool) error {
	if l.opts.WriteHook != nil {
		b = l.opts.WriteHook(f, b, retx)
		if b == nil {
			return nil
		}
	}
	return l.write(b)
}

func (l *Link) write(b []byte) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	select {
	case <-l.done:
		return l.err
	default:
	}
	_, err := l.rw.Write(b)
	return err
}

// Send sends a data frame and waits for its ACK, retransmitting the
// identical bytes on NAK or after T2, at most MaxRetransmits times; then
// the link has failed. HELLO and HELLO_RESP go out with SEQ 0 and restart
// the numbering. Concurrent Sends take turns. ctx is honoured only until
// the frame is written (including while waiting for another Send's turn):
// once it is on the wire, Send waits for the ACK or the link's failure so
// that at most one frame is ever unacknowledged.
func (l *Link) Send(ctx context.Context, t FrameType, payload []byte) error {
	if t.IsControl() {
		return fmt.Errorf("sfl: %s is not a data frame", t)
	}
	select {
	case l.sendSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return l.err
	}
	defer func() { <-l.sendSem }()
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-l.done:
		return l.err
	default:
	}
	var seq byte
	if t.IsSession() {
		l.outSeq = 0
	} else {
		l.outSeq = NextSeq(l.outSeq)
		seq = l.outSeq
	}
	f := Frame{Seq: seq, Type: t, Payload: payload}
	if err := f.check(); err != nil {
		return err
	}
	b := AppendFrame(nil, f)

	l.ackMu.Lock()
	l.waitSeq = int(seq)
	l.ackMu.Unlock()
	defer func() {
		l.ackMu.Lock()
		l.waitSeq = -1
		l.ackMu.Unlock()
		// Drain a late signal for this frame so it cannot satisfy the next.
		for {
			select {
			case <-l.ackCh:
			default:
				return
			}
		}
	}()

	timer := time.NewTimer(l.opts.T2)
	defer timer.Stop()
	for attempt := 0; ; attempt++ {
		if attempt > l.opts.MaxRetransmits {
			err := fmt.Errorf("%w: %s not acknowledged after %d retransmissions", ErrLinkFailed, f, l.opts.MaxRetransmits)
			l.fail(err)
			return err
		}
		if attempt > 0 {
			l.stats.retx.Add(1)
		} else {
			l.stats.sent.Add(1)
		}
		if err := l.writeFrame(f, b, attempt > 0); err != nil {
			err = fmt.Errorf("%w: write: %v", ErrLinkFailed, err)
			l.fail(err)
			return err
		}
		timer.Reset(l.opts.T2)
		acked, err := l.awaitAck(seq, timer.C)
		if err != nil {
			return err
		}
		if acked {
			return nil
		}
		// NAK or T2: retransmit the identical bytes.
	}
}

// awaitAck waits for the ACK or NAK of seq, T2, or the link's end.
func (l *Link) awaitAck(seq byte, t2 <-chan time.Time) (acked bool, err error) {
	for {
		select {
		case sig := <-l.ackCh:
			if sig.seq != seq {
				continue
			}
			return !sig.nak, nil
		case <-t2:
			return false, nil
		case <-l.done:
			return false, l.err
		}
	}
}

// WriteRaw writes bytes to the transport as they are, bypassing framing.
// Simulators use it to inject noise and damaged frames.
func (l *Link) WriteRaw(b []byte) error { return l.write(b) }
