package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad/internal/pipetest"
	"github.com/sterad/sterad/protocol"
)

// newPipe returns the two ends of an in-memory, buffered, full-duplex
// byte pipe (see internal/pipetest).
func newPipe() (a, b *pipeEnd) { return pipetest.New() }

type pipeEnd = pipetest.End

// startLink runs a link over rw until the test ends.
func startLink(t *testing.T, rw io.ReadWriteCloser, h protocol.Handler, opts protocol.LinkOptions) *protocol.Link {
	t.Helper()
	l := protocol.NewLink(rw, h, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run()
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l
}

// inbox records the frames a link delivers.
type inbox struct {
	mu     sync.Mutex
	frames []protocol.Frame
	ch     chan protocol.Frame
	reject func(protocol.Frame) error // optional: refuse a frame
}

func newInbox() *inbox { return &inbox{ch: make(chan protocol.Frame, 512)} }

func (in *inbox) handle(f protocol.Frame) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.reject != nil {
		if err := in.reject(f); err != nil {
			return err
		}
	}
	in.frames = append(in.frames, f)
	in.ch <- f
	return nil
}

func (in *inbox) next(t *testing.T) protocol.Frame {
	t.Helper()
	select {
	case f := <-in.ch:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame delivered")
		return protocol.Frame{}
	}
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.frames)
}

// rawPeer plays the other end of a link byte by byte: it decodes what
// arrives and writes whatever the test scripts.
type rawPeer struct {
	t      *testing.T
	rw     io.ReadWriteCloser
	frames chan protocol.DecodeEvent
	raw    chan []byte // the raw bytes of each complete frame received
}

func newRawPeer(t *testing.T, rw io.ReadWriteCloser) *rawPeer {
	p := &rawPeer{t: t, rw: rw, frames: make(chan protocol.DecodeEvent, 64), raw: make(chan []byte, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d protocol.Decoder
		buf := make([]byte, 256)
		for {
			n, err := rw.Read(buf)
			d.Feed(buf[:n], time.Now())
			for ev, ok := d.Next(); ok; ev, ok = d.Next() {
				p.frames <- ev
				if ev.Kind == protocol.DecodedFrame {
					b, _ := protocol.EncodeFrame(ev.Frame)
					p.raw <- b
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		rw.Close()
		<-done
	})
	return p
}

// expect waits for the next decoded frame and checks its type and SEQ.
func (p *rawPeer) expect(typ protocol.FrameType, seq byte) protocol.Frame {
	p.t.Helper()
	select {
	case ev := <-p.frames:
		if ev.Kind != protocol.DecodedFrame || ev.Frame.Type != typ || ev.Frame.Seq != seq {
			p.t.Fatalf("peer got %v %s, want %s seq %d", ev.Kind, ev.Frame, typ, seq)
		}
		<-p.raw
		return ev.Frame
	case <-time.After(5 * time.Second):
		p.t.Fatalf("peer got nothing, want %s seq %d", typ, seq)
		return protocol.Frame{}
	}
}

// quiet checks that nothing arrives for d (a bounded wait for an absence,
// not a synchronization).
func (p *rawPeer) quiet(d time.Duration) {
	p.t.Helper()
	select {
	case ev := <-p.frames:
		p.t.Fatalf("peer got %v %s, want nothing", ev.Kind, ev.Frame)
	case <-time.After(d):
	}
}

func (p *rawPeer) write(f protocol.Frame) {
	p.t.Helper()
	if _, err := p.rw.Write(mustEncode(p.t, f)); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// sendAsync runs l.Send in a goroutine and returns its result channel.
func sendAsync(l *protocol.Link, typ protocol.FrameType, payload string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Send(context.Background(), typ, []byte(payload)) }()
	return ch
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return")
		return nil
	}
}

// slow timers: tests that must not see a retransmission.
var slow = protocol.LinkOptions{T1: time.Second, T2: 10 * time.Second}

func TestLinkSendACK(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	ga := startLink(t, a, nil, slow)
	gb := startLink(t, b, in.handle, slow)

	payload := `{"txn_id":"t1","op":"sale","amount":"12800","currency":"JPY"}`
	if err := wait(t, sendAsync(ga, protocol.TypeReadCard, payload)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f := in.next(t)
	if f.Type != protocol.TypeReadCard || f.Seq != 1 || string(f.Payload) != payload {
		t.Fatalf("delivered %s %q", f, f.Payload)
	}
	if err := wait(t, sendAsync(ga, protocol.TypePing, "")); err != nil {
		t.Fatalf("Send PING: %v", err)
	}
	if f := in.next(t); f.Type != protocol.TypePing || f.Seq != 2 {
		t.Fatalf("delivered %s, want PING seq 2", f)
	}
	// Both directions at once.
	back := sendAsync(gb, protocol.TypePong, "")
	forth := sendAsync(ga, protocol.TypeCancel, `{"txn_id":"t1"}`)
	if err := wait(t, back); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, forth); err != nil {
		t.Fatal(err)
	}
	sa, sb := ga.Stats(), gb.Stats()
	// a has no handler: it still accepts and ACKs the PONG.
	if sa.FramesSent != 3 || sa.FramesReceived != 1 || sa.Retransmits != 0 || sb.FramesSent != 1 || sb.FramesReceived != 3 {
		t.Fatalf("stats a=%+v b=%+v", sa, sb)
	}
	if err := ga.Send(context.Background(), protocol.TypeACK, nil); err == nil {
		t.Fatal("Send accepted an ACK as a data frame")
	}
}

func TestLinkNAKRetransmitsIdenticalBytes(t *testing.T) {
	a, b := newPipe()
	var mu sync.Mutex
	var sent [][]byte
	opts := slow
	opts.WriteHook = func(f protocol.Frame, bs []byte, retx bool) []byte {
		if f.Type == protocol.TypeResult {
			mu.Lock()
			sent = append(sent, append([]byte(nil), bs...))
			mu.Unlock()
		}
		return bs
	}
	ga := startLink(t, a, nil, opts)
	peer := newRawPeer(t, b)

	res := sendAsync(ga, protocol.TypeResult, `{"txn_id":"t1","status":"done","printed":true}`)
	first := peer.expect(protocol.TypeResult, 1)
	peer.write(protocol.Frame{Seq: 1, Type: protocol.TypeNAK})
	second := peer.expect(protocol.TypeResult, 1)
	peer.write(protocol.Frame{Seq: 1, Type: protocol.TypeACK})
	if err := wait(t, res); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !bytes.Equal(first.Payload, second.Payload) {
		t.Fatal("retransmission differs from the original")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || !bytes.Equal(sent[0], sent[1]) {
		t.Fatalf("wrote %d transmissions, identical=%v", len(sent), len(sent) == 2 && bytes.Equal(sent[0], sent[1]))
	}
	if s := ga.Stats(); s.Retransmits != 1 || s.NAKsReceived != 1 || s.FramesSent != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLinkLostACKRetransmitsAndPeerDropsDuplicate(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	var dropped sync.Once
	bopts := slow
	bopts.WriteHook = func(f protocol.Frame, bs []byte, _ bool) []byte {
		if f.Type == protocol.TypeACK && f.Seq == 1 {
			drop := false
			dropped.Do(func() { drop = true })
			if drop {
				return nil // the first ACK is lost on the line
			}
		}
		return bs
	}
	ga := startLink(t, a, nil, protocol.LinkOptions{T1: time.Second, T2: 100 * time.Millisecond})
	gb := startLink(t, b, in.handle, bopts)

	if err := wait(t, sendAsync(ga, protocol.TypeCard, `{"txn_id":"t1"}`)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if s := ga.Stats(); s.Retransmits < 1 {
		t.Fatalf("sender stats %+v: want a retransmission after T2", s)
	}
	if s := gb.Stats(); s.Duplicates < 1 || s.FramesReceived != 1 {
		t.Fatalf("receiver stats %+v: want the duplicate counted and one delivery", s)
	}
	if n := in.count(); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
}

func TestLinkFailsAfterRetransmissions(t *testing.T) {
	a, b := newPipe()
	opts := protocol.LinkOptions{T1: time.Second, T2: 30 * time.Millisecond}
	ga := startLink(t, a, nil, opts)
	peer := newRawPeer(t, b)

	res := sendAsync(ga, protocol.TypeOutcome, `{"txn_id":"t1"}`)
	for range 1 + protocol.MaxRetransmits {
		peer.expect(protocol.TypeOutcome, 1)
	}
	err := wait(t, res)
	if !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("Send = %v, want ErrLinkFailed", err)
	}
	select {
	case <-ga.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("link not done after failing")
	}
	if !errors.Is(ga.Err(), protocol.ErrLinkFailed) {
		t.Fatalf("Err = %v", ga.Err())
	}
	if s := ga.Stats(); s.Retransmits != protocol.MaxRetransmits {
		t.Fatalf("retransmits = %d, want %d", s.Retransmits, protocol.MaxRetransmits)
	}
	// No fourth transmission, and Send now fails at once.
	peer.quiet(3 * opts.T2)
	if err := ga.Send(context.Background(), protocol.TypePing, nil); !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("Send after failure = %v", err)
	}
}

func TestLinkIgnoresACKForAnotherSEQ(t *testing.T) {
	a, b := newPipe()
	ga := startLink(t, a, nil, protocol.LinkOptions{T1: time.Second, T2: 200 * time.Millisecond})
	peer := newRawPeer(t, b)

	res := sendAsync(ga, protocol.TypeStatusQuery, `{"txn_id":"t1"}`)
	peer.expect(protocol.TypeStatusQuery, 1)
	peer.write(protocol.Frame{Seq: 9, Type: protocol.TypeACK}) // another SEQ: ignored
	peer.write(protocol.Frame{Seq: 0, Type: protocol.TypeNAK}) // a NAK for another SEQ: ignored
	peer.expect(protocol.TypeStatusQuery, 1)                   // T2 retransmission
	peer.write(protocol.Frame{Seq: 1, Type: protocol.TypeACK})
	if err := wait(t, res); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if s := ga.Stats(); s.Retransmits < 1 || s.NAKsReceived != 1 {
		t.Fatalf("stats %+v: the foreign ACK/NAK must not end or speed up the wait", s)
	}
}

func TestLinkHandlerErrorWithholdsACK(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	refused := 0
	in.reject = func(f protocol.Frame) error {
		if refused == 0 {
			refused++
			return errors.New("journal unavailable")
		}
		return nil
	}
	ga := startLink(t, a, nil, protocol.LinkOptions{T1: time.Second, T2: 100 * time.Millisecond})
	gb := startLink(t, b, in.handle, slow)

	if err := wait(t, sendAsync(ga, protocol.TypeCard, `{"txn_id":"t1"}`)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if s := ga.Stats(); s.Retransmits < 1 {
		t.Fatalf("sender retransmits = %d, want a retransmission", s.Retransmits)
	}
	if s := gb.Stats(); s.Rejected != 1 || s.FramesReceived != 1 {
		t.Fatalf("receiver stats %+v: want one rejection, then one delivery (not a duplicate)", s)
	}
	if n := in.count(); n != 1 {
		t.Fatalf("accepted %d frames", n)
	}
}

func TestLinkHelloResetsNumbering(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	ga := startLink(t, a, nil, slow)
	startLink(t, b, in.handle, slow)

	send := func(typ protocol.FrameType, payload string) {
		t.Helper()
		if err := wait(t, sendAsync(ga, typ, payload)); err != nil {
			t.Fatalf("Send %s: %v", typ, err)
		}
	}
	send(protocol.TypeHello, `{"proto":1}`)
	send(protocol.TypePing, "")
	send(protocol.TypePing, "")
	send(protocol.TypeHello, `{"proto":1}`) // a new session
	send(protocol.TypePing, "")             // SEQ 1 again: must not be taken for a duplicate
	send(protocol.TypeHello, `{"proto":1}`) // HELLO is delivered every time
	var got []string
	for range 6 {
		f := in.next(t)
		got = append(got, fmt.Sprintf("%s/%d", f.Type, f.Seq))
	}
	want := []string{"HELLO/0", "PING/1", "PING/2", "HELLO/0", "PING/1", "HELLO/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestLinkTransportErrorEndsLink(t *testing.T) {
	a, b := newPipe()
	l := protocol.NewLink(a, nil, protocol.LinkOptions{T2: time.Hour})
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run() }()
	peer := newRawPeer(t, b)

	// A Send waiting for its ACK fails at once when the transport closes,
	// not after T2.
	res := sendAsync(l, protocol.TypeReadCard, `{"txn_id":"t1"}`)
	peer.expect(protocol.TypeReadCard, 1)
	b.Close()
	if err := wait(t, res); !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("Send = %v, want ErrLinkFailed", err)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, protocol.ErrLinkFailed) {
			t.Fatalf("Run = %v, want ErrLinkFailed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the transport closed")
	}
	if !errors.Is(l.Err(), protocol.ErrLinkFailed) {
		t.Fatalf("Err = %v", l.Err())
	}
	if err := l.Send(context.Background(), protocol.TypePing, nil); !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("Send after the end = %v", err)
	}
}

func TestLinkCloseEndsRun(t *testing.T) {
	a, _ := newPipe()
	l := protocol.NewLink(a, nil, protocol.LinkOptions{})
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run() }()
	if l.Err() != nil {
		t.Fatalf("Err while running = %v", l.Err())
	}
	l.Close()
	select {
	case err := <-runErr:
		if !errors.Is(err, protocol.ErrLinkFailed) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestLinkSendHonoursContextWhileQueued(t *testing.T) {
	a, b := newPipe()
	ga := startLink(t, a, nil, protocol.LinkOptions{T2: time.Hour})
	peer := newRawPeer(t, b)

	first := sendAsync(ga, protocol.TypeReadCard, `{"txn_id":"t1"}`)
	peer.expect(protocol.TypeReadCard, 1) // outstanding, never ACKed yet
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { queued <- ga.Send(ctx, protocol.TypePing, nil) }()
	cancel()
	if err := wait(t, queued); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Send = %v, want context.Canceled", err)
	}
	peer.write(protocol.Frame{Seq: 1, Type: protocol.TypeACK})
	if err := wait(t, first); err != nil {
		t.Fatal(err)
	}
	// The cancelled frame never took a SEQ.
	res := sendAsync(ga, protocol.TypePing, "")
	peer.expect(protocol.TypePing, 2)
	peer.write(protocol.Frame{Seq: 2, Type: protocol.TypeACK})
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
}

func TestLinkSEQWraps(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	ga := startLink(t, a, nil, slow)
	startLink(t, b, in.handle, slow)

	for i := 1; i <= 257; i++ {
		if err := ga.Send(context.Background(), protocol.TypePing, nil); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	var seqs []byte
	for range 257 {
		seqs = append(seqs, in.next(t).Seq)
	}
	if seqs[0] != 1 || seqs[254] != 255 || seqs[255] != 1 || seqs[256] != 2 {
		t.Fatalf("SEQs around the wrap: first %d, 255th %d, then %d %d", seqs[0], seqs[254], seqs[255], seqs[256])
	}
	for _, s := range seqs {
		if s == 0 {
			t.Fatal("a data frame went out with SEQ 0")
		}
	}
}

func TestLinkNAKsBadAndPartialFrames(t *testing.T) {
	a, b := newPipe()
	in := newInbox()
	gl := startLink(t, a, in.handle, protocol.LinkOptions{T1: 30 * time.Millisecond, T2: time.Hour, NoiseLogEvery: time.Hour})
	peer := newRawPeer(t, b)

	// Noise and impossible headers: no answer at all.
	if _, err := b.Write([]byte("\x00\xffnoise\x02\x09\x01\x02\x01\x01\x33\x00\x00")); err != nil {
		t.Fatal(err)
	}
	// A frame with a bad CRC: NAK with its SEQ.
	bad := mustEncode(t, protocol.Frame{Seq: 4, Type: protocol.TypeProgress, Payload: []byte(`{"txn_id":"t1"}`)})
	bad[len(bad)-1] ^= 0xFF
	b.Write(bad)
	peer.expect(protocol.TypeNAK, 4)
	// A truncated frame: one NAK after T1.
	part := mustEncode(t, protocol.Frame{Seq: 5, Type: protocol.TypeCard, Payload: []byte(`{"txn_id":"t1"}`)})
	b.Write(part[:12])
	peer.expect(protocol.TypeNAK, 5)
	peer.quiet(100 * time.Millisecond) // exactly one NAK
	// Then the whole frame: delivered and ACKed.
	b.Write(part)
	peer.expect(protocol.TypeACK, 5)
	if f := in.next(t); f.Type != protocol.TypeCard || f.Seq != 5 {
		t.Fatalf("delivered %s", f)
	}
	s := gl.Stats()
	if s.NAKsSent != 2 || s.NoiseBytes == 0 || s.FramesReceived != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A damaged ACK is not answered: ACK and NAK are never acknowledged.
func TestLinkDoesNotNAKDamagedACK(t *testing.T) {
	a, b := net.Pipe()
	l := protocol.NewLink(a, nil, protocol.LinkOptions{T1: 20 * time.Millisecond})
	go l.Run()
	defer l.Close()
	ack := protocol.AppendFrame(nil, protocol.Frame{Seq: 3, Type: protocol.TypeACK})
	ack[len(ack)-1] ^= 0xFF
	go b.Write(ack)
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := b.Read(buf); err == nil {
		t.Fatalf("the link answered a damaged ACK with % x", buf[:n])
	}
	if s := l.Stats(); s.NAKsSent != 0 {
		t.Fatalf("NAKs sent: %d", s.NAKsSent)
	}
}
