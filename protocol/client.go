package protocol

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
)

// Defaults of ClientOptions (docs/acquirer-protocol.md §1).
const (
	DefaultTimeout        = 15 * time.Second
	DefaultEchoInterval   = 30 * time.Second
	DefaultEchoTimeout    = 10 * time.Second
	DefaultBackoffMin     = 1 * time.Second
	DefaultBackoffMax     = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxTimeouts    = 3
)

// maxBatch caps the bytes the writer hands the connection in one write.
// Every request in a write is "maybe sent" once the write starts; a small
// batch keeps the requests queued behind a write that blocks (the host
// stopped reading) certainly unsent.
const maxBatch = 8 << 10

// DefaultLocation is the merchant's time zone for DE 12 and 13 when
// ClientOptions.Location is nil. Japan has kept UTC+9 without daylight
// saving time since 1951, so a fixed zone needs no tz database.
var DefaultLocation = time.FixedZone("Asia/Tokyo", 9*60*60)

// ErrDuplicateRequest is returned by Exchange, with nothing sent, when a
// request with the same MTI class, STAN and terminal ID is still waiting for
// its response: the host could not tell their responses apart.
var ErrDuplicateRequest = errors.New("a request with the same MTI class, STAN and terminal ID is outstanding")

// errDrained is why the link of a drained client was closed.
var errDrained = errors.New("acquirer client drained")

// ClientOptions configure a Client. Zero durations and counts, a nil Clock,
// Location or Logger take the defaults.
type ClientOptions struct {
	// Address is the host's "host:port". Required.
	Address string
	// TLS, when set, makes the client connect with TLS 1.2 or newer
	// using this configuration (ServerName defaults to Address's host).
	// nil connects in plain TCP, which only the test host accepts.
	TLS *tls.Config
	// TerminalID is DE 41 of network management messages (sign-on, echo,
	// sign-off): the merchant's virtual terminal. Required.
	TerminalID string
	// MerchantID is DE 42 of network management messages; empty leaves
	// DE 42 out.
	MerchantID string

	// Timeout is how long Exchange waits for a response (DefaultTimeout,
	// 15 s), shortened by the deadline of Exchange's context. It also
	// bounds one write to the connection: a host that takes no bytes for
	// that long is dead.
	Timeout time.Duration
	// EchoInterval is how long the link may stay without a message
	// received from the host before an echo (0800, DE 70 = 301) is sent
	// (DefaultEchoInterval, 30 s). What the client sends does not count:
	// only the host's messages prove it is alive.
	EchoInterval time.Duration
	// EchoTimeout is how long an echo waits for its answer before the
	// link is declared dead, closed and reconnected (DefaultEchoTimeout,
	// 10 s).
	EchoTimeout time.Duration
	// MaxTimeouts is the number of consecutive Exchange calls that may
	// end without a response by their deadline before the link is
	// declared dead, closed and reconnected (DefaultMaxTimeouts, 3). Any
	// matched response resets the count.
	MaxTimeouts int
	// BackoffMin is the wait before reconnecting after a failure; it
	// doubles after every failed attempt up to BackoffMax, and is reset
	// by a completed sign-on (DefaultBackoffMin, 1 s).
	BackoffMin time.Duration
	// BackoffMax caps the wait between attempts (DefaultBackoffMax, 30 s).
	BackoffMax time.Duration
	// ConnectTimeout bounds the TCP connection and TLS handshake
	// (DefaultConnectTimeout, 10 s).
	ConnectTimeout time.Duration
	// Dialer, when set, dials the TCP connection (a local address,
	// socket options); nil uses a zero net.Dialer.
	Dialer *net.Dialer

	// STAN returns the next STAN of terminalID at now: the store's
	// persistent counter, shared with every other message of that
	// terminal. The client uses it for its 0800s. Required.
	STAN func(ctx context.Context, terminalID string, now time.Time) (sterad.STAN, error)
	// Clock dates the 0800s (DE 7, 12, 13) and the link status
	// (default sterad.SystemClock{}). Deadlines of network I/O use the
	// system's monotonic time.
	Clock sterad.Clock
	// Location is the merchant's local time zone for DE 12 and 13
	// (default DefaultLocation, Asia/Tokyo).
	Location *time.Location
	// Logger receives the client's logs (default: discarded). Logs never
	// contain card data or message bytes.
	Logger *slog.Logger
}

// ClientStats are counters since the client was created. Requests,
// responses and timeouts include the client's own 0800s.
type ClientStats struct {
	Requests      int64 // requests accepted for sending
	Responses     int64 // responses matched to their request
	Timeouts      int64 // requests that may have been sent and got no response (ErrNoResponse)
	LateResponses int64 // responses that matched no waiting request: logged, never used
	Malformed     int64 // messages from the host that could not be read
	Oversized     int64 // messages longer than MaxMessageLength, skipped unread
	Reconnects    int64 // connection attempts after the first
	SignOns       int64 // completed sign-ons
}

// States of the acquirer link reported in sterad.LinkStatus.State.
const (
	HostOnline     = "online"     // signed on: Exchange sends
	HostConnecting = "connecting" // connecting or signing on
	HostOffline    = "offline"    // no connection: waiting to reconnect, draining, or stopped
)

// Client is the acquirer host client (docs/acquirer-protocol.md §1, and
// docs/acquirer-link.md for its contract): one connection, signed on before
// use, watched with echoes and reconnected with backoff, on which any
// number of requests may be outstanding. Run maintains the link; Exchange
// sends requests on it; Drain closes it gracefully. A Client is safe for
// concurrent use.
type Client struct {
	opts ClientOptions
	tls  *tls.Config
	log  *slog.Logger

	running atomic.Bool
	life    context.Context // ended when Drain is done: Run returns
	endLife context.CancelFunc

	mu       sync.Mutex
	online   *link // the signed-on link Exchange uses; nil when offline or draining
	current  *link // the connection Run maintains, signed on or not
	draining bool
	inflight int           // Exchange calls that passed the online check
	idle     chan struct{} // closed when inflight drops to 0 during a drain
	status   sterad.LinkStatus
	changed  chan struct{} // closed and replaced at every status change
	subs     []chan sterad.LinkStatus

	stats struct {
		requests, responses, timeouts, late, malformed, oversized, reconnects, signOns atomic.Int64
	}
}

var _ sterad.Acquirer = (*Client)(nil)

// NewClient checks opts and returns a Client. Call Run to connect.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("acquirer client: address is required")
	}
	if opts.TerminalID == "" || len(opts.TerminalID) > 8 || !isPrintableASCII(opts.TerminalID) {
		return nil, errors.New("acquirer client: terminal ID must be 1 to 8 printable ASCII characters")
	}
	if len(opts.MerchantID) > 15 || !isPrintableASCII(opts.MerchantID) {
		return nil, errors.New("acquirer client: merchant ID must be at most 15 printable ASCII characters")
	}
	if opts.STAN == nil {
		return nil, errors.New("acquirer client: a STAN source is required")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&opts.Timeout, DefaultTimeout},
		{&opts.EchoInterval, DefaultEchoInterval},
		{&opts.EchoTimeout, DefaultEchoTimeout},
		{&opts.BackoffMin, DefaultBackoffMin},
		{&opts.BackoffMax, DefaultBackoffMax},
		{&opts.ConnectTimeout, DefaultConnectTimeout},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opts.MaxTimeouts <= 0 {
		opts.MaxTimeouts = DefaultMaxTimeouts
	}
	opts.BackoffMax = max(opts.BackoffMax, opts.BackoffMin)
	if opts.Clock == nil {
		opts.Clock = sterad.SystemClock{}
	}
	if opts.Location == nil {
		opts.Location = DefaultLocation
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts:    opts,
		log:     opts.Logger,
		changed: make(chan struct{}),
		status:  sterad.LinkStatus{State: HostOffline, Since: opts.Clock.Now(), Address: opts.Address},
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	if opts.TLS != nil {
		c.tls = opts.TLS.Clone()
		c.tls.MinVersion = max(c.tls.MinVersion, tls.VersionTLS12)
	}
	return c, nil
}

// Run keeps the link up until ctx is done or Drain has closed the client:
// connect, sign on (0800, DE 70 = 001, answered 0810 DE 39 = 00), then
// serve Exchange; when the connection fails, an echo goes unanswered or
// MaxTimeouts exchanges in a row time out, close it and reconnect with
// backoff. When ctx is done it drains the client for at most Timeout (see
// Drain) and returns nil. Run must not be called concurrently; a drained
// client does not run again.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("acquirer client: already running")
	}
	defer c.running.Store(false)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.life, cancel)()

	backoff := c.opts.BackoffMin
	for attempt := 0; rctx.Err() == nil; attempt++ {
		if c.isDraining() {
			<-rctx.Done() // the drain ends the client
			break
		}
		if attempt > 0 {
			c.stats.reconnects.Add(1)
		}
		c.setStatus(HostConnecting, nil, nil)
		l, err := c.connect(rctx)
		if err != nil && rctx.Err() != nil {
			break // connecting was cut short by the end of Run
		}
		if err == nil {
			backoff = c.opts.BackoffMin
			if !c.setStatus(HostOnline, l, nil) {
				continue // draining: the drain closes l
			}
			select {
			case <-l.dead:
			case <-rctx.Done():
				continue // the loop ends; l stays up for the drain
			}
			err = l.err
		}
		// Offline at once; then wait for the dead link's goroutines.
		c.setStatus(HostOffline, nil, err)
		if l != nil {
			c.forget(l)
		}
		if rctx.Err() != nil {
			break
		}
		c.log.Warn("acquirer link down", "address", c.opts.Address, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-rctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, c.opts.BackoffMax)
	}

	if c.life.Err() == nil {
		// ctx ended Run: the in-flight exchanges get their answers,
		// for at most Timeout.
		dctx, dcancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		c.Drain(dctx)
		dcancel()
	}
	c.mu.Lock()
	l := c.current
	c.mu.Unlock()
	if l != nil {
		l.kill(errDrained)
		c.forget(l)
	}
	c.setStatus(HostOffline, nil, nil)
	return nil
}

// forget waits for the goroutines of the dead link l and clears it as the
// current link.
func (c *Client) forget(l *link) {
	l.wg.Wait()
	c.mu.Lock()
	if c.current == l {
		c.current = nil
	}
	c.mu.Unlock()
}

func (c *Client) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// connect dials the host and signs on.
func (c *Client) connect(ctx context.Context) (*link, error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	d := c.opts.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	tcp, err := d.DialContext(dctx, "tcp", c.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	nc := tcp
	if c.tls != nil {
		conf := c.tls
		if conf.ServerName == "" {
			conf = conf.Clone()
			conf.ServerName, _, _ = net.SplitHostPort(c.opts.Address)
		}
		tc := tls.Client(tcp, conf)
		if err := tc.HandshakeContext(dctx); err != nil {
			tcp.Close()
			return nil, fmt.Errorf("connect: TLS: %w", err)
		}
		nc = tc
	}
	l := &link{
		c: c, tcp: tcp, nc: nc, start: time.Now(),
		pending: make(map[string]*outstanding), wake: make(chan struct{}, 1), dead: make(chan struct{}),
	}
	c.mu.Lock()
	c.current = l
	c.mu.Unlock()
	l.wg.Add(2)
	go l.readLoop()
	go l.writeLoop()
	if err := c.signOn(ctx, l); err != nil {
		l.kill(err)
		c.forget(l)
		return nil, err
	}
	l.wg.Add(1)
	go l.watch()
	return l, nil
}

func (c *Client) signOn(ctx context.Context, l *link) error {
	req, err := c.network(ctx, sterad.NetSignOn)
	if err != nil {
		return fmt.Errorf("sign-on: %w", err)
	}
	resp, err := c.roundTrip(ctx, l, req, c.opts.Timeout, false)
	if err != nil {
		return fmt.Errorf("sign-on: %w", err)
	}
	if resp.ResponseCode != "00" {
		return fmt.Errorf("sign-on answered with response code %s", resp.ResponseCode)
	}
	l.signedOn.Store(true)
	c.stats.signOns.Add(1)
	c.log.Info("signed on to the acquirer", "address", c.opts.Address, "terminal", c.opts.TerminalID)
	return nil
}

// echo sends an echo on l and waits EchoTimeout for its answer. It returns
// an error when the link is dead: the echo went out and no answer came.
func (c *Client) echo(l *link) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.EchoTimeout)
	req, err := c.network(ctx, sterad.NetEcho)
	cancel()
	if err != nil {
		c.log.Error("cannot send echo", "err", err)
		return nil // try again after EchoInterval
	}
	resp, err := c.roundTrip(context.Background(), l, req, c.opts.EchoTimeout, false)
	switch {
	case errors.Is(err, sterad.ErrNoResponse):
		return fmt.Errorf("echo: %w", err)
	case err != nil:
		// Not sent: the link died under it, or a STAN clash.
		c.log.Warn("echo not sent", "err", err)
		return nil
	case resp.ResponseCode != "00":
		return fmt.Errorf("echo answered with response code %s", resp.ResponseCode)
	}
	return nil
}

// signOff sends a sign-off on l, best effort.
func (c *Client) signOff(ctx context.Context, l *link) {
	req, err := c.network(ctx, sterad.NetSignOff)
	if err == nil {
		_, err = c.roundTrip(ctx, l, req, c.opts.Timeout, false)
	}
	if err != nil {
		c.log.Info("sign-off not acknowledged", "err", err)
	}
}

// network builds one of the client's 0800s.
func (c *Client) network(ctx context.Context, code string) (*sterad.HostMessage, error) {
	now := c.opts.Clock.Now()
	stan, err := c.opts.STAN(ctx, c.opts.TerminalID, now)
	if err != nil {
		return nil, fmt.Errorf("next STAN: %w", err)
	}
	return &sterad.HostMessage{
		MTI:         sterad.MTINetwork,
		Transmitted: now.UTC(),
		STAN:        stan,
		LocalTime:   now.In(c.opts.Location),
		TerminalID:  c.opts.TerminalID,
		MerchantID:  c.opts.MerchantID,
		NetworkCode: code,
	}, nil
}

// Drain closes the client gracefully, for SIGTERM: from the moment it is
// called, Exchange refuses new requests with sterad.ErrHostUnavailable
// (nothing sent) and the status is offline; the requests already in flight
// keep the connection until they have their answers, their own deadlines
// pass, or ctx ends. Then the client signs off (best effort, while ctx
// lasts), closes the connection and Run returns. Drain returns nil when
// every in-flight request ended by itself, ctx's error otherwise: those
// still waiting then end with sterad.ErrNoResponse (reverse them). A drained
// client stays closed. Drain may be called without Run, and more than once.
func (c *Client) Drain(ctx context.Context) error {
	c.mu.Lock()
	first := !c.draining
	c.draining = true
	var idle chan struct{}
	if c.inflight > 0 {
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle = c.idle
	}
	l := c.current
	c.mu.Unlock()
	if !first {
		select {
		case <-c.life.Done():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.setStatus(HostOffline, nil, nil)
	c.log.Info("acquirer client draining")
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			c.log.Warn("acquirer client drained with requests still waiting", "err", err)
		}
	}
	if l != nil && err == nil && l.signedOn.Load() {
		c.signOff(ctx, l)
	}
	c.endLife()
	if l != nil {
		l.kill(errDrained)
	}
	return err
}

// Exchange sends req and waits for its response (see sterad.Acquirer and
// docs/acquirer-link.md). It returns by Timeout or ctx's deadline,
// whichever comes first, whatever the connection does, with:
//   - sterad.ErrHostUnavailable when req was certainly not sent: the link
//     is not signed on or is draining, or the link failed, the deadline
//     passed or ctx ended before the writer started writing req; it will
//     never be written;
//   - ErrDuplicateRequest, or a *FormatError when req cannot be packed:
//     nothing was sent;
//   - sterad.ErrNoResponse when req may have reached the host (its write
//     started) but no readable response came before the deadline, ctx
//     ended or the connection failed: the outcome is unknown, reverse;
//     never resend;
//   - otherwise the first response that matches req's MTI class, STAN and
//     terminal ID, whatever its DE 39. Any later one is a late response.
func (c *Client) Exchange(ctx context.Context, req *sterad.HostMessage) (*sterad.HostMessage, error) {
	c.mu.Lock()
	l := c.online
	if l == nil || c.draining {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s STAN %s: %w", req.MTI, req.STAN, sterad.ErrHostUnavailable)
	}
	c.inflight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		if c.inflight == 0 && c.idle != nil {
			close(c.idle)
			c.idle = nil
		}
		c.mu.Unlock()
	}()
	return c.roundTrip(ctx, l, req, c.opts.Timeout, true)
}

// roundTrip sends req on l and waits for the response at most timeout, or
// until ctx is done or l dies. exchange counts a timeout towards
// MaxTimeouts.
func (c *Client) roundTrip(ctx context.Context, l *link, req *sterad.HostMessage, timeout time.Duration, exchange bool) (*sterad.HostMessage, error) {
	if req.MTI.IsResponse() || req.STAN == 0 || req.TerminalID == "" {
		return nil, fmt.Errorf("%s: a request needs a request MTI, DE 11 and DE 41", describe(req))
	}
	msg, err := encode(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(req), err)
	}
	packed, err := msg.pack()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(req), err)
	}
	key := requestKey(msg)
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 || ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %w: %w", describe(req), sterad.ErrHostUnavailable, cmp.Or(ctx.Err(), context.DeadlineExceeded))
	}
	o := &outstanding{frame: frame(packed), resp: make(chan *wireMessage, 1)}
	if err := l.send(key, o); err != nil {
		return nil, fmt.Errorf("%s: %w", describe(req), err)
	}
	c.stats.requests.Add(1)

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var answer *wireMessage
	var why error
	timedOut := false
	select {
	case answer = <-o.resp:
	case <-timer.C:
		why, timedOut = fmt.Errorf("no response within %v", timeout), true
	case <-ctx.Done():
		why, timedOut = ctx.Err(), errors.Is(ctx.Err(), context.DeadlineExceeded)
	case <-l.dead:
		why = l.err
	}
	if why != nil {
		written, answered := l.giveUp(key, o)
		switch {
		case answered:
			// The answer came as the caller stopped waiting: the reader
			// removed the request first, so the answer is its own.
			answer = <-o.resp
		case !written:
			return nil, fmt.Errorf("%s: %w: not sent: %w", describe(req), sterad.ErrHostUnavailable, why)
		default:
			c.stats.timeouts.Add(1)
			if exchange && timedOut {
				l.timedOut()
			}
			return nil, fmt.Errorf("%s: %w: %w", describe(req), sterad.ErrNoResponse, why)
		}
	}
	resp, err := answer.decode(c.opts.Clock.Now())
	if err == nil && resp.MTI != req.MTI.Response() {
		err = formatErr(0, "%s does not answer %s", resp.MTI, req.MTI)
	}
	if err != nil {
		c.stats.malformed.Add(1)
		c.logFormatError("unreadable response: outcome unknown", err, "request", describe(req))
		return nil, fmt.Errorf("%s: unreadable response: %w: %w", describe(req), sterad.ErrNoResponse, err)
	}
	c.stats.responses.Add(1)
	if resp.ResponseCode == "30" {
		c.log.Error("acquirer answered format error (DE 39 = 30): the gateway sent a malformed message",
			"mti", string(req.MTI), "stan", req.STAN.String(), "terminal", req.TerminalID)
	}
	return resp, nil
}

// describe names req in errors and logs. Only they call it: formatting
// it on every exchange cost more than packing the message.
func describe(req *sterad.HostMessage) string {
	return string(req.MTI) + " STAN " + req.STAN.String() + " terminal " + req.TerminalID
}

// late logs and counts a response that came after its request stopped
// waiting, or that matches no request. It is never used.
func (c *Client) late(msg *wireMessage) {
	c.stats.late.Add(1)
	m, err := msg.decode(c.opts.Clock.Now())
	if m == nil {
		c.stats.malformed.Add(1)
		c.logFormatError("unreadable late response", err)
		return
	}
	c.log.Warn("late response", "mti", string(m.MTI), "stan", m.STAN.String(), "terminal", m.TerminalID,
		"code", m.ResponseCode)
}

// inbound handles a request from the host: an echo is answered, anything
// else logged and ignored.
func (c *Client) inbound(l *link, msg *wireMessage) {
	m, err := msg.decode(c.opts.Clock.Now())
	if err != nil {
		c.stats.malformed.Add(1)
		c.logFormatError("unreadable request from the acquirer", err)
		return
	}
	if m.MTI != sterad.MTINetwork || m.NetworkCode != sterad.NetEcho {
		c.log.Warn("unexpected request from the acquirer ignored", "mti", string(m.MTI), "stan", m.STAN.String(),
			"terminal", m.TerminalID, "network_code", m.NetworkCode)
		return
	}
	b, err := Pack(&sterad.HostMessage{
		MTI: sterad.MTINetworkResponse, Transmitted: m.Transmitted, STAN: m.STAN, ResponseCode: "00",
		TerminalID: m.TerminalID, NetworkCode: m.NetworkCode,
	})
	if err != nil {
		c.log.Warn("cannot answer the acquirer's echo", "err", err)
		return
	}
	l.reply(frame(b))
}

func (c *Client) logFormatError(msg string, err error, args ...any) {
	var fe *FormatError
	if errors.As(err, &fe) {
		args = append(args, "field", fe.Field, "reason", fe.Reason)
	} else {
		args = append(args, "err", err)
	}
	c.log.Error(msg, args...)
}

// setStatus records a change of the link state; l is the link when online.
// Once draining it only goes offline; it reports whether it changed the
// state.
func (c *Client) setStatus(state string, l *link, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state != HostOffline && c.draining {
		return false
	}
	c.online = l
	c.status.State = state
	c.status.Online = state == HostOnline
	c.status.Since = c.opts.Clock.Now()
	if err != nil && !errors.Is(err, errDrained) {
		c.status.LastError = err.Error()
	}
	close(c.changed)
	c.changed = make(chan struct{})
	for _, ch := range c.subs {
		select {
		case <-ch: // a slow reader skips to the latest status
		default:
		}
		ch <- c.status
	}
	c.log.Info("acquirer link", "state", state, "address", c.opts.Address)
	return true
}

// Status reports the link state. LastError is the last reason the link
// failed, kept after it came back.
func (c *Client) Status() sterad.LinkStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Subscribe returns a channel that receives the current status at once and
// then every change of the link state. It holds only the latest status: a
// slow reader skips intermediate states, never the last one. The channel is
// never closed; subscribe once per long-lived consumer (store-and-forward
// drains when a status is Online).
func (c *Client) Subscribe() <-chan sterad.LinkStatus {
	ch := make(chan sterad.LinkStatus, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	ch <- c.status
	c.subs = append(c.subs, ch)
	return ch
}

// WaitOnline returns nil once the link is signed on, or ctx's error.
func (c *Client) WaitOnline(ctx context.Context) error {
	for {
		c.mu.Lock()
		online, changed := c.status.Online, c.changed
		c.mu.Unlock()
		if online {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	s := &c.stats
	return ClientStats{
		Requests:      s.requests.Load(),
		Responses:     s.responses.Load(),
		Timeouts:      s.timeouts.Load(),
		LateResponses: s.late.Load(),
		Malformed:     s.malformed.Load(),
		Oversized:     s.oversized.Load(),
		Reconnects:    s.reconnects.Load(),
		SignOns:       s.signOns.Load(),
	}
}

// requestKey is the spec's matching rule: MTI class, DE 11 and DE 41. STAN
// alone would hand a reversal (which carries the STAN of the transaction it
// reverses) the late response of that transaction.
func requestKey(msg *wireMessage) string {
	return sterad.MTI(msg.mti).Class() + "|" + msg.filled(11) + "|" + strings.TrimRight(msg.filled(41), " ")
}

// frame prefixes a packed message with its 2-byte big-endian length.
func frame(packed []byte) []byte {
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(packed)), uint16(len(packed))), packed...)
}
