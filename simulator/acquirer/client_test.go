package acquirer_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/sterad/sterad/internal/testutil"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
)

// testStart is the fake time of the tests: 10:00 in Tokyo.
var testStart = time.Date(2026, 11, 21, 1, 0, 0, 0, time.UTC)

const (
	visa      = sterad.PAN("4111111111111111")
	validExp  = "2812"
	pastExp   = "2510"
	terminal  = "FRONT001"
	terminal2 = "VIRT0001"
	waitFor   = 5 * time.Second
	quietFor  = 300 * time.Millisecond
)

// startHost runs a host on a loopback port until the test ends.
func startHost(t *testing.T, opts acquirer.Options) (*acquirer.Host, *sterad.FakeClock) {
	t.Helper()
	clock, _ := opts.Clock.(*sterad.FakeClock)
	if clock == nil {
		clock = sterad.NewFakeClock(testStart)
		opts.Clock = clock
	}
	h := acquirer.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(ln) }()
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, acquirer.ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	testutil.Eventually(t, "host listening", func() bool { return h.Addr() != "" })
	return h, clock
}

type respKey struct {
	class    string
	stan     sterad.STAN
	terminal string
}

// client is a gateway-side test connection: length-prefixed ISO 8583 with
// responses matched by MTI class, STAN and terminal.
type client struct {
	t     *testing.T
	nc    net.Conn
	clock sterad.Clock

	in   chan *sterad.HostMessage
	errc chan error
	held map[respKey]*sterad.HostMessage

	mu   sync.Mutex
	stan sterad.STAN
	tick int
}

func dial(t *testing.T, h *acquirer.Host, clock sterad.Clock) *client {
	t.Helper()
	nc, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, nc: nc, clock: clock, in: make(chan *sterad.HostMessage, 1024), errc: make(chan error, 1), held: map[respKey]*sterad.HostMessage{}}
	go c.read()
	t.Cleanup(func() { nc.Close() })
	return c
}

// dialSignedOn connects and signs on.
func dialSignedOn(t *testing.T, h *acquirer.Host, clock sterad.Clock) *client {
	t.Helper()
	c := dial(t, h, clock)
	if r := c.exchange(c.network(sterad.NetSignOn)); r.ResponseCode != "00" {
		t.Fatalf("sign-on answered %s", r.ResponseCode)
	}
	return c
}

func (c *client) read() {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(c.nc, hdr[:]); err != nil {
			c.errc <- err
			close(c.in)
			return
		}
		buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c.nc, buf); err != nil {
			c.errc <- err
			close(c.in)
			return
		}
		m, err := protocol.Unpack(buf, c.clock.Now())
		if err != nil {
			c.errc <- fmt.Errorf("unpack response: %w", err)
			close(c.in)
			return
		}
		c.in <- m
	}
}

func keyOf(m *sterad.HostMessage) respKey {
	return respKey{m.MTI.Class(), m.STAN, m.TerminalID}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	frame := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(frame, uint16(len(b)))
	copy(frame[2:], b)
	if _, err := c.nc.Write(frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(req *sterad.HostMessage) {
	c.t.Helper()
	b, err := protocol.Pack(req)
	if err != nil {
		c.t.Fatalf("pack %s: %v", req.MTI, err)
	}
	c.sendRaw(b)
}

// await returns the response to req, failing the test after waitFor.
func (c *client) await(req *sterad.HostMessage) *sterad.HostMessage {
	c.t.Helper()
	m, ok := c.awaitWithin(req, waitFor)
	if !ok {
		c.t.Fatalf("no response to %s STAN %s within %s", req.MTI, req.STAN, waitFor)
	}
	return m
}

func (c *client) awaitWithin(req *sterad.HostMessage, d time.Duration) (*sterad.HostMessage, bool) {
	c.t.Helper()
	k := keyOf(req)
	if m, ok := c.held[k]; ok {
		delete(c.held, k)
		return m, true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection ended: %v", <-c.errc)
			}
			if keyOf(m) == k {
				return m, true
			}
			c.held[keyOf(m)] = m
		case <-timer.C:
			return nil, false
		}
	}
}

// expectNone checks that req gets no response within quietFor.
func (c *client) expectNone(req *sterad.HostMessage) {
	c.t.Helper()
	if m, ok := c.awaitWithin(req, quietFor); ok {
		c.t.Fatalf("%s STAN %s answered %s, want no response", req.MTI, req.STAN, m.ResponseCode)
	}
}

func (c *client) exchange(req *sterad.HostMessage) *sterad.HostMessage {
	c.t.Helper()
	c.send(req)
	return c.await(req)
}

// base fills the fields every request has: a new STAN and a DE 7 one
// second after the previous message's.
func (c *client) base(mti sterad.MTI, term string) *sterad.HostMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stan++
	c.tick++
	return &sterad.HostMessage{
		MTI:         mti,
		STAN:        c.stan,
		Transmitted: c.clock.Now().UTC().Truncate(time.Second).Add(time.Duration(c.tick) * time.Second),
		TerminalID:  term,
		MerchantID:  "HOTEL0000000001",
	}
}

// later returns a copy of m with a DE 7 one tick later (same STAN).
func (c *client) later(m *sterad.HostMessage) *sterad.HostMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	cp := *m
	cp.Transmitted = c.clock.Now().UTC().Truncate(time.Second).Add(time.Duration(c.tick) * time.Second)
	return &cp
}

func (c *client) network(code string) *sterad.HostMessage {
	m := c.base(sterad.MTINetwork, terminal)
	m.NetworkCode = code
	return m
}

func expiry(s string) sterad.Expiry {
	e, err := sterad.ParseExpiry(s)
	if err != nil {
		panic(err)
	}
	return e
}

func yen(n int64) sterad.Amount { return sterad.NewAmount(n, sterad.JPY) }

func (c *client) withCard(m *sterad.HostMessage, pan sterad.PAN, exp string, amount int64) *sterad.HostMessage {
	m.PAN, m.Expiry = pan, expiry(exp)
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	return m
}

// sale is a key-entered telephone sale (no chip data needed).
func (c *client) sale(pan sterad.PAN, exp string, amount int64) *sterad.HostMessage {
	m := c.withCard(c.base(sterad.MTIFinancial, terminal), pan, exp, amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondMailPhone, 1
	return m
}

func (c *client) refund(pan sterad.PAN, exp string, amount int64, ti string) *sterad.HostMessage {
	m := c.base(sterad.MTIFinancial, terminal)
	if pan != "" {
		c.withCard(m, pan, exp, amount)
	}
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	m.Processing, m.Entry, m.Condition, m.Batch, m.TI = sterad.ProcRefund, sterad.EntryKeyed, sterad.CondNormal, 1, ti
	return m
}

var stay = &sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}

func (c *client) preauth(pan sterad.PAN, exp string, amount int64) *sterad.HostMessage {
	m := c.withCard(c.base(sterad.MTIAuthorization, terminal), pan, exp, amount)
	m.Processing, m.Entry, m.Condition = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondPreauth
	m.Stay, m.Reference = stay, "RSV-0042"
	return m
}

func (c *client) incremental(ti string, amount int64) *sterad.HostMessage {
	m := c.base(sterad.MTIAuthorization, terminal2)
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	m.Processing, m.Entry, m.Condition = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondPreauth
	m.MerchantInitiated, m.TI = sterad.MIIncremental, ti
	return m
}

func (c *client) cardCheck(pan sterad.PAN, exp string, token bool) *sterad.HostMessage {
	m := c.withCard(c.base(sterad.MTIAuthorization, terminal2), pan, exp, 0)
	m.Processing, m.Entry, m.Condition, m.WantToken = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondVerification, token
	return m
}

func (c *client) noShowToken(token string, amount int64) *sterad.HostMessage {
	m := c.base(sterad.MTIFinancial, terminal2)
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntryToken, sterad.CondMailPhone, 1
	m.MerchantInitiated, m.Token, m.Stay, m.Reference = sterad.MINoShow, token, stay, "RSV-0042"
	return m
}

// completion completes the pre-authorization req answered by resp.
func (c *client) completion(req, resp *sterad.HostMessage, amount int64) *sterad.HostMessage {
	m := c.base(sterad.MTIAdvice, terminal)
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, req.Entry, sterad.CondPreauth, 1
	m.AuthCode, m.TI = resp.AuthCode, resp.TI
	m.Original = original(req)
	return m
}

func (c *client) standIn(pan sterad.PAN, exp string, amount int64) *sterad.HostMessage {
	m := c.withCard(c.base(sterad.MTIAdvice, terminal), pan, exp, amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondNormal, 1
	m.AuthCode, m.StandIn = "OFF001", true
	return m
}

func original(req *sterad.HostMessage) *sterad.OriginalData {
	return &sterad.OriginalData{MTI: req.MTI, STAN: req.STAN, Transmitted: req.Transmitted}
}

// void voids req (answered by resp): same DE 2, 4, 11, 37, 41, a later DE 7.
func (c *client) void(req, resp *sterad.HostMessage) *sterad.HostMessage {
	m := c.later(req)
	m.MTI, m.Batch = sterad.MTIVoid, 1
	m.RRN, m.TI, m.ReversalReason = resp.RRN, resp.TI, sterad.RRVoid
	m.Original = original(req)
	m.ICC, m.Track2, m.Stay, m.Reference, m.StandIn, m.MerchantInitiated, m.AuthCode, m.WantToken = nil, nil, nil, "", false, "", "", false
	return m
}

// reversal reverses req: same DE 2, 4, 11, 41, a later DE 7.
func (c *client) reversal(req *sterad.HostMessage) *sterad.HostMessage {
	m := c.later(req)
	m.MTI, m.Batch, m.ReversalReason = sterad.MTIReversal, 1, sterad.RRTimeout
	m.Original = original(req)
	m.ICC, m.Track2, m.Stay, m.Reference, m.StandIn, m.MerchantInitiated, m.AuthCode, m.WantToken, m.TI, m.RRN = nil, nil, nil, "", false, "", "", false, "", ""
	return m
}

func (c *client) reconcile(term string, batch int, t sterad.Totals, upload bool) *sterad.HostMessage {
	m := c.base(sterad.MTIReconciliation, term)
	m.Batch, m.Totals, m.BatchUpload = batch, &t, upload
	return m
}

func (c *client) upload(term string, tx acquirer.Transaction, pan sterad.PAN, exp string) *sterad.HostMessage {
	m := c.base(sterad.MTIBatchUpload, term)
	m.PAN, m.Expiry = pan, expiry(exp)
	m.HasAmount, m.Amount, m.Currency = true, tx.Amount, sterad.JPY
	m.Processing = sterad.ProcPurchase
	if tx.Kind == acquirer.KindRefund {
		m.Processing = sterad.ProcRefund
	}
	m.Batch, m.RRN, m.AuthCode = tx.Batch, tx.RRN, tx.AuthCode
	if m.AuthCode == "" {
		m.AuthCode = "000000"
	}
	return m
}

func wantCode(t *testing.T, what string, m *sterad.HostMessage, code string) {
	t.Helper()
	if m.ResponseCode != code {
		t.Fatalf("%s answered %s, want %s", what, m.ResponseCode, code)
	}
}
