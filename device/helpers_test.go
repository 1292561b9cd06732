package device_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/internal/pipetest"
	"github.com/sterad/sterad/protocol"
)

// newPipe returns the two ends of an in-memory, buffered, full-duplex
// byte pipe (see internal/pipetest).
func newPipe() (a, b *pipeEnd) { return pipetest.New() }

type pipeEnd = pipetest.End

// fakeTerminal is a scripted terminal: a protocol.Link on the far end of
// the transport. It answers HELLO and PING by itself; every other frame
// goes to the test's script through expect.
type fakeTerminal struct {
	t    *testing.T
	rw   io.ReadWriteCloser
	link *protocol.Link

	resp   protocol.HelloResp
	hellos chan protocol.Hello
	frames chan protocol.Frame
	pings  atomic.Int32
	noPong atomic.Bool // ACK PINGs but never answer PONG
	mute   atomic.Bool // write nothing at all, not even ACKs

	in   chan protocol.Frame
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func startFakeTerminal(t *testing.T, rw io.ReadWriteCloser, resp protocol.HelloResp, opts protocol.LinkOptions) *fakeTerminal {
	ft := &fakeTerminal{
		t:      t,
		rw:     rw,
		resp:   resp,
		hellos: make(chan protocol.Hello, 16),
		frames: make(chan protocol.Frame, 64),
		in:     make(chan protocol.Frame, 64),
		done:   make(chan struct{}),
	}
	opts.WriteHook = func(_ protocol.Frame, b []byte, _ bool) []byte {
		if ft.mute.Load() {
			return nil
		}
		return b
	}
	ft.link = protocol.NewLink(rw, func(f protocol.Frame) error {
		select {
		case ft.in <- f:
		case <-ft.done:
		}
		return nil
	}, opts)
	ft.wg.Add(2)
	go func() {
		defer ft.wg.Done()
		ft.link.Run()
	}()
	go func() {
		defer ft.wg.Done()
		ft.dispatch()
	}()
	return ft
}

// dispatch answers HELLO and PING, and hands everything else to the script.
func (ft *fakeTerminal) dispatch() {
	ctx := context.Background()
	for {
		select {
		case <-ft.done:
			return
		case f := <-ft.in:
			switch f.Type {
			case protocol.TypeHello:
				var h protocol.Hello
				if err := protocol.UnmarshalPayload(f, &h); err != nil {
					ft.t.Errorf("fake terminal: bad HELLO: %v", err)
				}
				select {
				case ft.hellos <- h:
				default:
				}
				b, _ := protocol.MarshalPayload(ft.resp)
				ft.link.Send(ctx, protocol.TypeHelloResp, b)
			case protocol.TypePing:
				ft.pings.Add(1)
				if !ft.noPong.Load() {
					ft.link.Send(ctx, protocol.TypePong, nil)
				}
			default:
				select {
				case ft.frames <- f:
				case <-ft.done:
					return
				}
			}
		}
	}
}

// expect returns the next frame from the gateway (HELLO and PING aside)
// and checks its type.
func (ft *fakeTerminal) expect(typ protocol.FrameType) protocol.Frame {
	ft.t.Helper()
	select {
	case f := <-ft.frames:
		if f.Type != typ {
			ft.t.Fatalf("fake terminal got %s, want %s", f, typ)
		}
		return f
	case <-time.After(5 * time.Second):
		ft.t.Fatalf("fake terminal got nothing, want %s", typ)
		return protocol.Frame{}
	}
}

// expectMsg is expect and decodes the payload into v.
func (ft *fakeTerminal) expectMsg(typ protocol.FrameType, v any) {
	ft.t.Helper()
	f := ft.expect(typ)
	if err := protocol.UnmarshalPayload(f, v); err != nil {
		ft.t.Fatal(err)
	}
}

// send sends a message and waits for the gateway's ACK.
func (ft *fakeTerminal) send(typ protocol.FrameType, v any) {
	ft.t.Helper()
	if err := ft.trySend(typ, v); err != nil {
		ft.t.Fatalf("fake terminal: send %s: %v", typ, err)
	}
}

func (ft *fakeTerminal) trySend(typ protocol.FrameType, v any) error {
	b, err := protocol.MarshalPayload(v)
	if err != nil {
		return err
	}
	return ft.link.Send(context.Background(), typ, b)
}

// close unplugs the terminal: the gateway's transport reads EOF.
func (ft *fakeTerminal) close() {
	ft.once.Do(func() {
		close(ft.done)
		ft.link.Close()
		ft.rw.Close()
		ft.wg.Wait()
	})
}

// bench is the terminal's side of the world: every open of the session's
// transport connects to a new fake terminal, unless the device is missing.
type bench struct {
	t        *testing.T
	mu       sync.Mutex
	missing  bool
	resp     protocol.HelloResp
	termOpts protocol.LinkOptions
	terms    chan *fakeTerminal
	all      []*fakeTerminal
	// keepLine, when set, keeps the wire up when the terminal's link
	// gives up (as on a serial line): the gateway sees no EOF.
	keepLine bool
	// wire, when set, makes the transport of each open: the gateway's
	// end and the terminal's (default: an in-memory pipe).
	wire  func() (gw, term io.ReadWriteCloser)
	opens atomic.Int32
}

const (
	testID   = "FRONT001"
	testPort = "/dev/ttyFAKE0"
)

func newBench(t *testing.T) *bench {
	b := &bench{
		t: t,
		resp: protocol.HelloResp{
			Proto: 1, TerminalID: testID, Kind: sterad.KindFixed, Model: "ST-100", FW: "1.2.3",
			BootID: "term-boot-1", Caps: []string{"chip", "ctls", "swipe", "printer"},
		},
		termOpts: protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond},
		terms:    make(chan *fakeTerminal, 64),
	}
	t.Cleanup(func() {
		b.mu.Lock()
		all := b.all
		b.mu.Unlock()
		for _, ft := range all {
			ft.close()
		}
	})
	return b
}

func (b *bench) setMissing(v bool) {
	b.mu.Lock()
	b.missing = v
	b.mu.Unlock()
}

func (b *bench) setResp(f func(*protocol.HelloResp)) {
	b.mu.Lock()
	f(&b.resp)
	b.mu.Unlock()
}

func (b *bench) open(ctx context.Context) (io.ReadWriteCloser, error) {
	b.opens.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.missing {
		if b.wire != nil {
			return nil, errors.New("no USB device 1234:5678 is attached")
		}
		return nil, errors.New("open serial port " + testPort + ": no such file or directory")
	}
	var gw, term io.ReadWriteCloser
	if b.wire != nil {
		gw, term = b.wire()
	} else {
		gw, term = newPipe()
	}
	resp := b.resp
	resp.Caps = append([]string(nil), b.resp.Caps...)
	var rw io.ReadWriteCloser = term
	if b.keepLine {
		rw = keepOpen{term}
	}
	ft := startFakeTerminal(b.t, rw, resp, b.termOpts)
	b.all = append(b.all, ft)
	b.terms <- ft
	return gw, nil
}

// next returns the fake terminal of the next successful open.
func (b *bench) next() *fakeTerminal {
	b.t.Helper()
	select {
	case ft := <-b.terms:
		return ft
	case <-time.After(5 * time.Second):
		b.t.Fatal("the session did not open the transport")
		return nil
	}
}

// keepOpen ignores Close: the far end never notices.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

// logBuffer collects the session's logs so tests can check that no card
// data reaches them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) count(substr string) int { return strings.Count(l.String(), substr) }

// testConfig is a session config with short timers for bench.
func testConfig(b *bench, logs *logBuffer) device.SessionConfig {
	return device.SessionConfig{
		ID:           testID,
		Kind:         sterad.KindFixed,
		Transport:    "serial",
		Path:         testPort,
		Open:         b.open,
		GatewayID:    "gw-test",
		BootID:       "gw-boot-1",
		Link:         protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond},
		T3:           2 * time.Second,
		T4:           10 * time.Second,
		PingInterval: time.Hour,
		Backoff:      []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond},
		HelloTimeout: 2 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// startSession runs a session until the test ends.
func startSession(t *testing.T, cfg device.SessionConfig) *device.Session {
	t.Helper()
	s := device.NewSession(cfg)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return s
}

// waitReady waits for the session's HELLO to complete.
func waitReady(t *testing.T, s *device.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v (info %+v)", err, s.Info())
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}

// async runs f in a goroutine and returns a channel with its result.
func async[T any](f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := f()
		ch <- result[T]{v, err}
	}()
	return ch
}

type result[T any] struct {
	v   T
	err error
}

func await[T any](t *testing.T, ch <-chan result[T]) (T, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return")
		var zero T
		return zero, nil
	}
}

// orderLog records events in order across goroutines.
type orderLog struct {
	mu sync.Mutex
	ev []string
}

func (o *orderLog) add(s string) {
	o.mu.Lock()
	o.ev = append(o.ev, s)
	o.mu.Unlock()
}

func (o *orderLog) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ev...)
}
