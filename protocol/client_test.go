package protocol_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"io"
	"log/slog"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// fakeHost is a small acquirer host on loopback. It reads length-prefixed
// messages with protocol.Unpack, publishes each on its connection's recv
// channel, and answers requests with what answer returns (nothing when it
// returns nil).
type fakeHost struct {
	t      *testing.T
	ln     net.Listener
	answer atomic.Pointer[func(*sterad.HostMessage) *sterad.HostMessage]
	conns  chan *hostConn
	wg     sync.WaitGroup
	// stall, when set, stops every connection from reading (before its
	// next message) until the channel is closed: the host's TCP window
	// fills and the client's writes block.
	stall atomic.Pointer[chan struct{}]
	done  chan struct{} // closed when the test ends

	mu   sync.Mutex
	open []*hostConn
}

// hostConn is one client connection accepted by the fake host.
type hostConn struct {
	h    *fakeHost
	nc   net.Conn
	recv chan *sterad.HostMessage
	wmu  sync.Mutex

	rmu sync.Mutex
	rec []segment // every message in both directions, in order
}

// segment is one length-prefixed message as it crossed the wire.
type segment struct {
	fromClient bool
	data       []byte
}

// startHost listens on addr ("127.0.0.1:0" for any port) and serves until
// the test ends. By default it answers everything with approve.
func startHost(t *testing.T, addr string) *fakeHost {
	t.Helper()
	return startHostTLS(t, addr, nil)
}

// startHostTLS is startHost with TLS when conf is not nil.
func startHostTLS(t *testing.T, addr string, conf *tls.Config) *fakeHost {
	t.Helper()
	return startHostWith(t, &net.ListenConfig{}, addr, conf)
}

// startHostWith is startHostTLS listening with lc.
func startHostWith(t *testing.T, lc *net.ListenConfig, addr string, conf *tls.Config) *fakeHost {
	t.Helper()
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	h := &fakeHost{t: t, ln: ln, conns: make(chan *hostConn, 16), done: make(chan struct{})}
	h.setAnswer(approve)
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *fakeHost) addr() string { return h.ln.Addr().String() }

func (h *fakeHost) setAnswer(f func(*sterad.HostMessage) *sterad.HostMessage) { h.answer.Store(&f) }

func (h *fakeHost) accept() {
	defer h.wg.Done()
	for {
		nc, err := h.ln.Accept()
		if err != nil {
			return
		}
		hc := &hostConn{h: h, nc: nc, recv: make(chan *sterad.HostMessage, 64)}
		h.mu.Lock()
		h.open = append(h.open, hc)
		h.mu.Unlock()
		h.conns <- hc
		h.wg.Add(1)
		go hc.serve()
	}
}

func (h *fakeHost) close() {
	close(h.done)
	h.ln.Close()
	h.mu.Lock()
	for _, hc := range h.open {
		hc.nc.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// nextConn waits for the next connection the host accepts.
func (h *fakeHost) nextConn(t *testing.T) *hostConn {
	t.Helper()
	select {
	case hc := <-h.conns:
		return hc
	case <-time.After(5 * time.Second):
		t.Fatal("no connection to the fake host")
		return nil
	}
}

func (hc *hostConn) serve() {
	defer hc.h.wg.Done()
	defer close(hc.recv)
	for {
		if ch := hc.h.stall.Load(); ch != nil {
			select {
			case <-*ch:
			case <-hc.h.done:
				return
			}
		}
		var hdr [2]byte
		if _, err := io.ReadFull(hc.nc, hdr[:]); err != nil {
			return
		}
		b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(hc.nc, b); err != nil {
			return
		}
		hc.record(true, append(hdr[:], b...))
		m, err := protocol.Unpack(b, time.Now())
		if err != nil {
			hc.h.t.Errorf("fake host: client sent a malformed message: %v", err)
			return
		}
		var resp *sterad.HostMessage
		if !m.MTI.IsResponse() {
			resp = (*hc.h.answer.Load())(m)
		}
		hc.recv <- m // the test owns m from here
		if resp != nil {
			hc.send(resp)
		}
	}
}

func (hc *hostConn) record(fromClient bool, b []byte) {
	hc.rmu.Lock()
	defer hc.rmu.Unlock()
	hc.rec = append(hc.rec, segment{fromClient, b})
}

func (hc *hostConn) recorded() []segment {
	hc.rmu.Lock()
	defer hc.rmu.Unlock()
	return slicesClone(hc.rec)
}

func slicesClone(s []segment) []segment { return append([]segment(nil), s...) }

// send packs m and writes it with its length header.
func (hc *hostConn) send(m *sterad.HostMessage) {
	b, err := protocol.Pack(m)
	if err != nil {
		hc.h.t.Errorf("fake host: pack %s: %v", m.MTI, err)
		return
	}
	hc.sendRaw(len(b), b)
}

// sendRaw writes a length header announcing n bytes, then b.
func (hc *hostConn) sendRaw(n int, b []byte) {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	out := binary.BigEndian.AppendUint16(nil, uint16(n))
	out = append(out, b...)
	hc.record(false, out)
	hc.nc.Write(out) // errors show up as the client's link failing
}

// sendAll packs ms and writes them with their length headers in one write:
// they reach the client together.
func (hc *hostConn) sendAll(ms ...*sterad.HostMessage) {
	var out []byte
	for _, m := range ms {
		b, err := protocol.Pack(m)
		if err != nil {
			hc.h.t.Errorf("fake host: pack %s: %v", m.MTI, err)
			return
		}
		out = append(binary.BigEndian.AppendUint16(out, uint16(len(b))), b...)
	}
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	hc.record(false, out)
	hc.nc.Write(out)
}

// next waits for the next message the client sends on this connection.
func (hc *hostConn) next(t *testing.T) *sterad.HostMessage {
	t.Helper()
	select {
	case m, ok := <-hc.recv:
		if !ok {
			t.Fatal("fake host: connection closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("fake host: no message from the client")
		return nil
	}
}

// approve answers like the test host: echoes DE 3, 4, 7, 11, 41, 49, 70
// and approves; financial responses get DE 37 and 38.
func approve(req *sterad.HostMessage) *sterad.HostMessage {
	resp := &sterad.HostMessage{
		MTI: req.MTI.Response(), Processing: req.Processing, HasAmount: req.HasAmount, Amount: req.Amount,
		Currency: req.Currency, Transmitted: req.Transmitted, STAN: req.STAN, TerminalID: req.TerminalID,
		NetworkCode: req.NetworkCode, ResponseCode: "00",
	}
	if c := req.MTI.Class(); c == "01" || c == "02" {
		resp.RRN, resp.AuthCode = "607306"+req.STAN.String(), "AB"+req.STAN.String()[2:]
	}
	return resp
}

// except answers like approve, except that it stays silent for requests
// for which drop returns true.
func except(drop func(*sterad.HostMessage) bool) func(*sterad.HostMessage) *sterad.HostMessage {
	return func(req *sterad.HostMessage) *sterad.HostMessage {
		if drop(req) {
			return nil
		}
		return approve(req)
	}
}

func isNetwork(m *sterad.HostMessage, code string) bool {
	return m.MTI == sterad.MTINetwork && m.NetworkCode == code
}

type testClient struct {
	*protocol.Client
	logs *testutil.SyncBuffer
	stop func() // stops Run and waits for it
}

// startClient runs a client against addr with short timers. edit may
// change the options before the client is created.
func startClient(t *testing.T, addr string, edit func(*protocol.ClientOptions)) *testClient {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	var stan atomic.Int64
	opts := protocol.ClientOptions{
		Address:        addr,
		TerminalID:     virtualID,
		MerchantID:     merchant,
		Timeout:        2 * time.Second,
		EchoInterval:   time.Hour,
		EchoTimeout:    time.Second,
		BackoffMin:     5 * time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
		ConnectTimeout: time.Second,
		STAN: func(context.Context, string, time.Time) (sterad.STAN, error) {
			return sterad.STAN(900000 + stan.Add(1)), nil
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := protocol.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if strings.Contains(logs.String(), testPAN.Reveal()) {
			t.Error("the logs contain the card number")
		}
		if t.Failed() {
			t.Logf("client logs:\n%s", logs.String())
		}
	})
	return &testClient{Client: c, logs: logs, stop: stop}
}

// waitStatus reads statuses until one satisfies cond, and returns it.
func waitStatus(t *testing.T, statuses <-chan sterad.LinkStatus, what string, cond func(sterad.LinkStatus) bool) sterad.LinkStatus {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case st := <-statuses:
			if cond(st) {
				return st
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the link to be %s", what)
		}
	}
}

func waitOnline(t *testing.T, c *testClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitOnline(ctx); err != nil {
		t.Fatalf("WaitOnline: %v (status %+v)", err, c.Status())
	}
}

// noLeaks fails the test if goroutines of the client, its links or the
// fake host outlive it. Call it first, so that its cleanup
// runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		var stacks string
		leaked := func() bool {
			buf := make([]byte, 1<<20)
			stacks = string(buf[:runtime.Stack(buf, true)])
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "protocol.(*link)") || strings.Contains(g, "protocol.(*Client)") ||
					strings.Contains(g, "protocol_test.(*fakeHost)") || strings.Contains(g, "protocol_test.(*hostConn)") {
					return true
				}
			}
			return false
		}
		deadline := time.Now().Add(5 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for leaked() {
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked:\n%s", stacks)
				return
			}
			<-tick.C
		}
	})
}

// request returns a 0100 card check from the virtual terminal with the
// given MTI and STAN.
func request(mti sterad.MTI, stan sterad.STAN) *sterad.HostMessage {
	m := goldenMessage("0100-cardcheck")
	m.MTI, m.STAN, m.Transmitted = mti, stan, time.Now().UTC()
	return m
}

func exchange(t *testing.T, c *testClient, req *sterad.HostMessage) *sterad.HostMessage {
	t.Helper()
	resp, err := c.Exchange(context.Background(), req)
	if err != nil {
		t.Fatalf("Exchange %s STAN %s: %v", req.MTI, req.STAN, err)
	}
	return resp
}

func TestClientSignsOnThenExchanges(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	c := startClient(t, h.addr(), nil)
	statuses := c.Subscribe()
	hc := h.nextConn(t)
	signOn := hc.next(t)
	if !isNetwork(signOn, sterad.NetSignOn) || signOn.STAN == 0 || signOn.Transmitted.IsZero() ||
		signOn.TerminalID != virtualID || signOn.MerchantID != merchant {
		t.Fatalf("first message = %s DE 70 %q STAN %v DE 7 %v DE 41 %q DE 42 %q, want a sign-on from %s",
			signOn.MTI, signOn.NetworkCode, signOn.STAN, signOn.Transmitted, signOn.TerminalID, signOn.MerchantID, virtualID)
	}
	waitOnline(t, c)
	st := c.Status()
	if st.State != protocol.HostOnline || !st.Online || st.Address != h.addr() || st.Since.IsZero() {
		t.Errorf("Status = %+v, want online at %s", st, h.addr())
	}
	waitStatus(t, statuses, "online", func(st sterad.LinkStatus) bool { return st.Online })

	resp := exchange(t, c, request(sterad.MTIAuthorization, 42))
	if resp.MTI != sterad.MTIAuthorizationResponse || resp.STAN != 42 || resp.ResponseCode != "00" || resp.TerminalID != virtualID {
		t.Errorf("response %s STAN %v code %s terminal %s, want 0110 STAN 42 00 %s",
			resp.MTI, resp.STAN, resp.ResponseCode, resp.TerminalID, virtualID)
	}
	if m := hc.next(t); m.MTI != sterad.MTIAuthorization || m.STAN != 42 || m.PAN != testPAN {
		t.Errorf("host received %s STAN %v, want 0100 STAN 42 with the PAN", m.MTI, m.STAN)
	}
	if s := c.Stats(); s.SignOns != 1 || s.Requests != 2 || s.Responses != 2 || s.Timeouts != 0 || s.Reconnects != 0 {
		t.Errorf("Stats = %+v", s)
	}

	c.stop()
	if m := hc.next(t); !isNetwork(m, sterad.NetSignOff) {
		t.Errorf("last message = %s DE 70 %q, want a sign-off", m.MTI, m.NetworkCode)
	}
	if st := c.Status(); st.State != protocol.HostOffline || st.Online {
		t.Errorf("Status after Run returned = %+v, want offline", st)
	}
	if _, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 43)); !errors.Is(err, sterad.ErrHostUnavailable) {
		t.Errorf("Exchange after Run returned: %v, want ErrHostUnavailable", err)
	}
}

func TestClientUnavailableBeforeSignOn(t *testing.T) {
	noLeaks(t)
	t.Run("never started", func(t *testing.T) {
		c, err := protocol.NewClient(protocol.ClientOptions{
			Address: "127.0.0.1:1", TerminalID: virtualID,
			STAN: func(context.Context, string, time.Time) (sterad.STAN, error) { return 1, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 1)); !errors.Is(err, sterad.ErrHostUnavailable) {
			t.Errorf("Exchange: %v, want ErrHostUnavailable", err)
		}
		if st := c.Status(); st.State != protocol.HostOffline || st.Online {
			t.Errorf("Status = %+v, want offline", st)
		}
	})
	t.Run("sign-on unanswered", func(t *testing.T) {
		h := startHost(t, "127.0.0.1:0")
		h.setAnswer(except(func(m *sterad.HostMessage) bool { return isNetwork(m, sterad.NetSignOn) }))
		c := startClient(t, h.addr(), nil)
		hc := h.nextConn(t)
		signOn := hc.next(t)
		if st := c.Status(); st.State != protocol.HostConnecting || st.Online {
			t.Errorf("Status while signing on = %+v, want connecting", st)
		}
		_, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 7))
		if !errors.Is(err, sterad.ErrHostUnavailable) || errors.Is(err, sterad.ErrNoResponse) {
			t.Fatalf("Exchange before sign-on: %v, want ErrHostUnavailable", err)
		}
		hc.send(approve(signOn))
		waitOnline(t, c)
		exchange(t, c, request(sterad.MTIAuthorization, 8))
		// The stream is ordered: had the refused request been sent, the
		// host would read it before this one.
		if m := hc.next(t); m.STAN != 8 {
			t.Errorf("host received STAN %v after the sign-on, want 8", m.STAN)
		}
	})
}

// TestClientMatchesClassSTANTerminal checks the matching rule: MTI class,
// STAN and terminal ID, never STAN alone.
func TestClientMatchesClassSTANTerminal(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	h.setAnswer(except(func(m *sterad.HostMessage) bool { return m.STAN == 5 }))
	c := startClient(t, h.addr(), nil)
	hc := h.nextConn(t)
	hc.next(t) // sign-on
	waitOnline(t, c)

	// A 0100 STAN 5 times out: its outcome is unknown, the gateway
	// reverses it with a 0420 that carries the same STAN.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := c.Exchange(ctx, request(sterad.MTIAuthorization, 5))
	cancel()
	if !errors.Is(err, sterad.ErrNoResponse) {
		t.Fatalf("0100 without response: %v, want ErrNoResponse", err)
	}
	auth := hc.next(t)

	reversal := request(sterad.MTIReversal, 5)
	reversal.ReversalReason = sterad.RRTimeout
	reversal.Original = &sterad.OriginalData{MTI: sterad.MTIAuthorization, STAN: 5, Transmitted: auth.Transmitted}
	type outcome struct {
		resp *sterad.HostMessage
		err  error
	}
	got := make(chan outcome, 1)
	go func() {
		resp, err := c.Exchange(context.Background(), reversal)
		got <- outcome{resp, err}
	}()
	rev := hc.next(t)
	if rev.MTI != sterad.MTIReversal || rev.STAN != 5 {
		t.Fatalf("host received %s STAN %v, want the 0420 STAN 5", rev.MTI, rev.STAN)
	}

	// While the 0420 waits, a second request of class 04 with STAN 5 from
	// the same terminal is refused locally; another terminal's is not.
	_, err = c.Exchange(context.Background(), request(sterad.MTIReversalRepeat, 5))
	if !errors.Is(err, protocol.ErrDuplicateRequest) || errors.Is(err, sterad.ErrNoResponse) {
		t.Errorf("second 04xx STAN 5: %v, want ErrDuplicateRequest", err)
	}
	other := request(sterad.MTIReversal, 6)
	other.TerminalID = termID
	exchange(t, c, other)
	if m := hc.next(t); m.STAN != 6 {
		t.Errorf("host received STAN %v, want 6 (the refused request must not be sent)", m.STAN)
	}

	// The late 0110 STAN 5 must not answer the 0420 STAN 5.
	hc.send(approve(auth))
	testutil.Eventually(t, "the late 0110 to be counted", func() bool { return c.Stats().LateResponses == 1 })
	select {
	case o := <-got:
		t.Fatalf("the 0420 got %v (err %v) from the late 0110", o.resp.MTI, o.err)
	default:
	}
	hc.send(approve(rev))
	o := <-got
	if o.err != nil || o.resp.MTI != sterad.MTIReversalResponse || o.resp.STAN != 5 {
		t.Fatalf("0420: %v %v, want the 0430 STAN 5", o.resp, o.err)
	}
	if !strings.Contains(c.logs.String(), "late response") || !strings.Contains(c.logs.String(), "mti=0110 stan=000005") {
		t.Errorf("late 0110 not logged:\n%s", c.logs.String())
	}

	// Requests of different classes with the same STAN and terminal are
	// outstanding together; answered in the reverse order, each gets its
	// own response.
	exchangeAsync := func(req *sterad.HostMessage) (<-chan outcome, *sterad.HostMessage) {
		ch := make(chan outcome, 1)
		go func() {
			resp, err := c.Exchange(context.Background(), req)
			ch <- outcome{resp, err}
		}()
		return ch, hc.next(t)
	}
	authDone, authReq := exchangeAsync(request(sterad.MTIAuthorization, 5))
	saleDone, saleReq := exchangeAsync(request(sterad.MTIFinancial, 5))
	if authReq.MTI != sterad.MTIAuthorization || saleReq.MTI != sterad.MTIFinancial {
		t.Fatalf("host received %s and %s, want 0100 and 0200", authReq.MTI, saleReq.MTI)
	}
	// A 0220 STAN 5 shares class 02 with the sale: refused, not sent.
	if _, err := c.Exchange(context.Background(), request(sterad.MTIAdvice, 5)); !errors.Is(err, protocol.ErrDuplicateRequest) {
		t.Errorf("0220 STAN 5 while the 0200 STAN 5 waits: %v, want ErrDuplicateRequest", err)
	}
	hc.send(approve(saleReq))
	hc.send(approve(authReq))
	if o := <-saleDone; o.err != nil || o.resp.MTI != sterad.MTIFinancialResponse {
		t.Errorf("0200: %v %v, want its 0210", o.resp, o.err)
	}
	if o := <-authDone; o.err != nil || o.resp.MTI != sterad.MTIAuthorizationResponse {
		t.Errorf("0100: %v %v, want its 0110", o.resp, o.err)
	}
	if s := c.Stats(); s.LateResponses != 1 || s.Timeouts != 1 {
		t.Errorf("Stats = %+v, want 1 late response and 1 timeout", s)
	}
}

func TestClientTimeoutThenLateResponse(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	h.setAnswer(except(func(m *sterad.HostMessage) bool { return m.STAN == 7 }))
	c := startClient(t, h.addr(), func(o *protocol.ClientOptions) { o.Timeout = 40 * time.Millisecond })
	hc := h.nextConn(t)
	hc.next(t) // sign-on
	waitOnline(t, c)

	sale := goldenMessage("0200-sale-chip")
	sale.STAN = 7
	resp, err := c.Exchange(context.Background(), sale)
	if !errors.Is(err, sterad.ErrNoResponse) || resp != nil {
		t.Fatalf("Exchange without response = %v, %v; want ErrNoResponse", resp, err)
	}
	if strings.Contains(err.Error(), testPAN.Reveal()) {
		t.Error("the error contains the card number")
	}
	req := hc.next(t)
	hc.send(approve(req))
	testutil.Eventually(t, "the late 0210 to be counted", func() bool { return c.Stats().LateResponses == 1 })
	if !strings.Contains(c.logs.String(), `level=WARN msg="late response" mti=0210 stan=000007 terminal=FD01 code=00`) {
		t.Errorf("late response not logged:\n%s", c.logs.String())
	}
	if s := c.Stats(); s.Timeouts != 1 || s.Responses != 1 {
		t.Errorf("Stats = %+v, want 1 timeout and only the sign-on's response", s)
	}
	// The key is free again: the next request with STAN 7 is answered
	// by its own response, not by anything left over.
	sale.STAN, sale.Amount = 8, jpy(1)
	if resp := exchange(t, c, sale); resp.STAN != 8 || !resp.Amount.Value.Equal(jpy(1).Value) {
		t.Errorf("response STAN %v amount %v, want STAN 8 amount 1", resp.STAN, resp.Amount)
	}
}

func TestClientEchoesAndDeclaresDeadLink(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	var dropEchoes atomic.Bool
	h.setAnswer(except(func(m *sterad.HostMessage) bool { return dropEchoes.Load() && isNetwork(m, sterad.NetEcho) }))
	c := startClient(t, h.addr(), func(o *protocol.ClientOptions) {
		o.EchoInterval = 20 * time.Millisecond
		o.EchoTimeout = 50 * time.Millisecond
	})
	hc := h.nextConn(t)
	if m := hc.next(t); !isNetwork(m, sterad.NetSignOn) {
		t.Fatalf("first message %s DE 70 %q, want a sign-on", m.MTI, m.NetworkCode)
	}
	// Idle: echoes are sent and answered; the link stays up.
	for range 2 {
		if m := hc.next(t); !isNetwork(m, sterad.NetEcho) || m.TerminalID != virtualID || m.STAN == 0 {
			t.Fatalf("idle link sent %s DE 70 %q, want an echo", m.MTI, m.NetworkCode)
		}
	}
	if st := c.Status(); !st.Online {
		t.Fatalf("Status = %+v, want online", st)
	}

	// Echoes unanswered: the link is dead, closed and signed on again.
	dropEchoes.Store(true)
	hc2 := h.nextConn(t)
	for m := range hc.recv {
		if !isNetwork(m, sterad.NetEcho) {
			t.Errorf("dead link sent %s DE 70 %q, want only echoes", m.MTI, m.NetworkCode)
		}
	}
	dropEchoes.Store(false)
	if m := hc2.next(t); !isNetwork(m, sterad.NetSignOn) {
		t.Fatalf("first message on the new connection %s DE 70 %q, want a sign-on", m.MTI, m.NetworkCode)
	}
	testutil.Eventually(t, "the second sign-on", func() bool { return c.Stats().SignOns == 2 })
	waitOnline(t, c)
	if st := c.Status(); !strings.Contains(st.LastError, "echo") {
		t.Errorf("Status.LastError = %q, want the echo failure", st.LastError)
	}
	if s := c.Stats(); s.Reconnects != 1 || s.Timeouts < 1 {
		t.Errorf("Stats = %+v, want 1 reconnect and the echo timeout", s)
	}
	exchange(t, c, request(sterad.MTIAuthorization, 9))
}

func TestClientReconnectsWhenHostComesUp(t *testing.T) {
	noLeaks(t)
	// Find a free port, then leave it closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	c := startClient(t, addr, nil)
	statuses := c.Subscribe()
	refused := waitStatus(t, statuses, "offline after a failure", func(st sterad.LinkStatus) bool {
		return st.State == protocol.HostOffline && st.LastError != ""
	})
	if refused.Online || !strings.Contains(refused.LastError, "refused") || refused.Address != addr {
		t.Errorf("status while refused = %+v, want offline, connection refused", refused)
	}
	if _, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 1)); !errors.Is(err, sterad.ErrHostUnavailable) {
		t.Errorf("Exchange while refused: %v, want ErrHostUnavailable", err)
	}
	testutil.Eventually(t, "a few attempts with backoff", func() bool { return c.Stats().Reconnects >= 3 })

	h := startHost(t, addr)
	waitStatus(t, statuses, "online", func(st sterad.LinkStatus) bool { return st.Online })
	exchange(t, c, request(sterad.MTIAuthorization, 2))
	if s := c.Stats(); s.SignOns != 1 {
		t.Errorf("Stats = %+v, want 1 sign-on", s)
	}
	h.nextConn(t)
}

func TestClientSkipsOversizedAndMalformedMessages(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	c := startClient(t, h.addr(), nil)
	hc := h.nextConn(t)
	hc.next(t) // sign-on
	waitOnline(t, c)

	hc.sendRaw(5000, bytes.Repeat([]byte(testPAN.Reveal()), 313)[:5000]) // oversized, card data inside
	hc.sendRaw(4, []byte("0110"))                                        // too short to be a message
	garbled := readGolden(t, "0110-approval")
	hc.sendRaw(len(garbled)+2, append(garbled, "00"...))                  // trailing bytes
	hc.sendRaw(len(garbled)-3, garbled[:len(garbled)-3])                  // field missing
	hc.send(&sterad.HostMessage{MTI: "0110", STAN: 77, TerminalID: "??"}) // well-formed, answers nothing
	testutil.Eventually(t, "the bad messages to be skipped", func() bool {
		s := c.Stats()
		return s.Oversized == 1 && s.Malformed == 3 && s.LateResponses == 1
	})

	resp := exchange(t, c, request(sterad.MTIAuthorization, 10))
	if resp.STAN != 10 || resp.ResponseCode != "00" {
		t.Errorf("response STAN %v code %s, want STAN 10 approved", resp.STAN, resp.ResponseCode)
	}
	if st, s := c.Status(), c.Stats(); !st.Online || s.SignOns != 1 || s.Reconnects != 0 {
		t.Errorf("Status %+v, Stats %+v: the link must have stayed up", st, s)
	}
	for _, want := range []string{"length=5000", "field=-1", "field=49"} {
		if !strings.Contains(c.logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, c.logs.String())
		}
	}
}

func TestClientAnswersHostEcho(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	c := startClient(t, h.addr(), nil)
	hc := h.nextConn(t)
	hc.next(t) // sign-on
	waitOnline(t, c)

	echo := &sterad.HostMessage{MTI: sterad.MTINetwork, Transmitted: tx, STAN: 77, TerminalID: "HOST0001", NetworkCode: sterad.NetEcho}
	hc.send(echo)
	got := hc.next(t)
	want := &sterad.HostMessage{MTI: sterad.MTINetworkResponse, Transmitted: tx, STAN: 77, TerminalID: "HOST0001",
		NetworkCode: sterad.NetEcho, ResponseCode: "00"}
	// The fake host reads with the current time, the year of tx may differ.
	got.Transmitted = tx
	if d := diffMessages(want, got); len(d) > 0 {
		t.Errorf("answer to the host's echo:\n%s", strings.Join(d, "\n"))
	}
	if s := c.Stats(); s.LateResponses != 0 || s.Malformed != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestClientExchangeErrors(t *testing.T) {
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	c := startClient(t, h.addr(), nil)
	hc := h.nextConn(t)
	hc.next(t) // sign-on
	waitOnline(t, c)

	t.Run("cannot be packed", func(t *testing.T) {
		req := request(sterad.MTIAuthorization, 11)
		req.PAN = "4111111111111111111111"
		_, err := c.Exchange(context.Background(), req)
		var fe *protocol.FormatError
		if !errors.As(err, &fe) || fe.Field != 2 || errors.Is(err, sterad.ErrNoResponse) || errors.Is(err, sterad.ErrHostUnavailable) {
			t.Errorf("Exchange: %v, want a FormatError for DE 2 only", err)
		}
	})
	t.Run("context already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Exchange(ctx, request(sterad.MTIAuthorization, 12))
		if !errors.Is(err, sterad.ErrHostUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Exchange: %v, want ErrHostUnavailable and context.Canceled", err)
		}
	})
	t.Run("unreadable response", func(t *testing.T) {
		h.setAnswer(func(req *sterad.HostMessage) *sterad.HostMessage {
			msg, err := protocol.ToISO(approve(req))
			if err != nil {
				t.Error(err)
				return nil
			}
			if err := msg.Field(4, "00000000012X"); err != nil {
				t.Error(err)
			}
			b, err := msg.Pack()
			if err != nil {
				t.Error(err)
			}
			hc.sendRaw(len(b), b)
			return nil
		})
		defer h.setAnswer(approve)
		_, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 13))
		var fe *protocol.FormatError
		if !errors.Is(err, sterad.ErrNoResponse) || !errors.As(err, &fe) || fe.Field != 4 {
			t.Errorf("Exchange: %v, want ErrNoResponse with a FormatError for DE 4", err)
		}
	})
	t.Run("response of another MTI", func(t *testing.T) {
		h.setAnswer(func(req *sterad.HostMessage) *sterad.HostMessage {
			resp := approve(req)
			resp.MTI = "0130"
			return resp
		})
		defer h.setAnswer(approve)
		_, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 14))
		if !errors.Is(err, sterad.ErrNoResponse) {
			t.Errorf("Exchange: %v, want ErrNoResponse", err)
		}
	})
	t.Run("format error from the host", func(t *testing.T) {
		h.setAnswer(func(req *sterad.HostMessage) *sterad.HostMessage {
			resp := approve(req)
			resp.ResponseCode = "30"
			return resp
		})
		defer h.setAnswer(approve)
		resp, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 15))
		if err != nil || resp.ResponseCode != "30" {
			t.Fatalf("Exchange: %v, %v; want the response with code 30", resp, err)
		}
		if !strings.Contains(c.logs.String(), "level=ERROR") || !strings.Contains(c.logs.String(), "stan=000015") {
			t.Errorf("DE 39 = 30 not logged as an error:\n%s", c.logs.String())
		}
	})
	t.Run("connection lost after sending", func(t *testing.T) {
		h.setAnswer(func(req *sterad.HostMessage) *sterad.HostMessage {
			if req.STAN == 16 {
				hc.nc.Close()
				return nil
			}
			return approve(req)
		})
		defer h.setAnswer(approve)
		_, err := c.Exchange(context.Background(), request(sterad.MTIAuthorization, 16))
		if !errors.Is(err, sterad.ErrNoResponse) {
			t.Errorf("Exchange: %v, want ErrNoResponse", err)
		}
		h.nextConn(t)
		waitOnline(t, c)
		if s := c.Stats(); s.SignOns != 2 {
			t.Errorf("Stats = %+v, want a second sign-on", s)
		}
	})
}

// selfSigned returns a host certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test acquirer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestClientTLS(t *testing.T) {
	noLeaks(t)
	cert, pool := selfSigned(t)
	t.Run("verified host", func(t *testing.T) {
		h := startHostTLS(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		c := startClient(t, h.addr(), func(o *protocol.ClientOptions) { o.TLS = &tls.Config{RootCAs: pool} })
		waitOnline(t, c)
		exchange(t, c, request(sterad.MTIAuthorization, 1))
	})
	tests := []struct {
		name   string
		host   *tls.Config
		client *tls.Config
	}{
		{"host below TLS 1.2", &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS11},
			&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10}},
		{"unknown certificate", &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHostTLS(t, "127.0.0.1:0", tt.host)
			c := startClient(t, h.addr(), func(o *protocol.ClientOptions) { o.TLS = tt.client })
			st := waitStatus(t, c.Subscribe(), "offline after a TLS failure", func(st sterad.LinkStatus) bool {
				return st.State == protocol.HostOffline && st.LastError != ""
			})
			if !strings.Contains(st.LastError, "TLS") || c.Stats().SignOns != 0 {
				t.Errorf("status %+v, stats %+v: want a TLS failure and no sign-on", st, c.Stats())
			}
		})
	}
}
