package protocol

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	iso8583errors "github.com/moov-io/iso8583/errors"
	"github.com/sterad/sterad"
)

// Defaults of ClientOptions (acquirer-host.md §1).
const (
	DefaultTimeout        = 15 * time.Second
	DefaultEchoInterval   = 30 * time.Second
	DefaultEchoTimeout    = 10 * time.Second
	DefaultBackoffMin     = 1 * time.Second
	DefaultBackoffMax     = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
)

// DefaultLocation is the merchant's time zone for DE 12 and 13 when
// ClientOptions.Location is nil. Japan has kept UTC+9 without daylight
// saving time since 1951, so a fixed zone needs no tz database.
var DefaultLocation = time.FixedZone("Asia/Tokyo", 9*60*60)

// ErrDuplicateRequest is returned by Exchange, with nothing sent, when a
// request with the same MTI class, STAN and terminal ID is still waiting for
// its response: the host could not tell their responses apart.
var ErrDuplicateRequest = errors.New("a request with the same MTI class, STAN and terminal ID is outstanding")

// ClientOptions configure a Client. Zero durations, a nil Clock, Location or
// Logger take the defaults.
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
	// 15 s), shortened by the deadline of Exchange's context.
	Timeout time.Duration
	// EchoInterval is how long the link may stay without a message sent
	// before an echo (0800, DE 70 = 301) is sent (DefaultEchoInterval, 30 s).
	EchoInterval time.Duration
	// EchoTimeout is how long an echo waits for its answer before the
	// link is declared dead, closed and reconnected (DefaultEchoTimeout,
	// 10 s).
	EchoTimeout time.Duration
	// BackoffMin is the wait before reconnecting after a failure; it
	// doubles after every failed attempt up to BackoffMax, and is reset
	// by a completed sign-on (DefaultBackoffMin, 1 s).
	BackoffMin time.Duration
	// BackoffMax caps the wait between attempts (DefaultBackoffMax, 30 s).
	BackoffMax time.Duration
	// ConnectTimeout bounds the TCP connection and TLS handshake
	// (DefaultConnectTimeout, 10 s).
	ConnectTimeout time.Duration

	// STAN returns the next STAN of terminalID at now: the store's
	// persistent counter, shared with every other message of that
	// terminal. The client uses it for its 0800s. Required.
	STAN func(ctx context.Context, terminalID string, now time.Time) (sterad.STAN, error)
	// Clock dates the 0800s (DE 7, 12, 13) and the link status
	// (default sterad.SystemClock{}).
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
	Requests      int64 // requests handed to the connection
	Responses     int64 // responses matched to their request
	Timeouts      int64 // requests that got no response in time (ErrNoResponse)
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
	HostOffline    = "offline"    // no connection: waiting to reconnect, or stopped
)

// Client is the acquirer host client (acquirer-host.md §1): one connection,
// signed on before use, kept alive with echoes and reconnected with backoff,
// on which any number of requests may be outstanding. Run maintains the
// link; Exchange sends requests on it. A Client is safe for concurrent use.
type Client struct {
	opts ClientOptions
	tls  *tls.Config
	log  *slog.Logger

	running atomic.Bool

	mu      sync.Mutex
	online  *link // the signed-on link, nil unless online
	status  sterad.LinkStatus
	changed chan struct{} // closed and replaced at every status change
	subs    []chan sterad.LinkStatus

	pendingMu sync.Mutex
	pending   map[string]*outstanding

	stats struct {
		requests, responses, timeouts, late, malformed, oversized, reconnects, signOns atomic.Int64
	}
}

var _ sterad.Acquirer = (*Client)(nil)

// link is one connection to the host.
type link struct {
	conn     *connection.Connection
	tcp      net.Conn // the TCP connection, under TLS if any
	signedOn atomic.Bool

	once sync.Once
	dead chan struct{} // closed by kill
	err  error         // why the link died, set before dead is closed
}

func newLink(tcp net.Conn) *link { return &link{tcp: tcp, dead: make(chan struct{})} }

// kill records the first reason the link failed and closes the TCP
// connection, which ends the connection's read and write loops and fails
// its outstanding requests. Run never waits for the connection library to
// wind down: a failure racing with a request completing can hang it.
func (l *link) kill(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.dead)
		l.tcp.Close()
	})
}

// outstanding is a request waiting for its response. written and abandoned
// are guarded by Client.pendingMu.
type outstanding struct {
	msg       *iso8583.Message
	packed    []byte
	written   bool // the writer started writing it: the host may have it
	abandoned bool // the caller gave up before it was written: never write it
}

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
		pending: make(map[string]*outstanding),
		status:  sterad.LinkStatus{State: HostOffline, Since: opts.Clock.Now(), Address: opts.Address},
	}
	if opts.TLS != nil {
		c.tls = opts.TLS.Clone()
		c.tls.MinVersion = max(c.tls.MinVersion, tls.VersionTLS12)
	}
	return c, nil
}

// Run keeps the link up until ctx is done: connect, sign on (0800, DE 70 =
// 001, answered 0810 DE 39 = 00), then serve Exchange; when the connection
// fails or an echo goes unanswered, reconnect with backoff. When ctx is done
// it signs off (best effort), waits for outstanding requests, closes the
// connection and returns nil. Run must not be called concurrently.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("acquirer client: already running")
	}
	defer c.running.Store(false)
	backoff := c.opts.BackoffMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.stats.reconnects.Add(1)
		}
		c.setStatus(HostConnecting, nil, nil)
		l, err := c.connect(ctx)
		if err == nil {
			backoff = c.opts.BackoffMin
			c.setStatus(HostOnline, l, nil)
			select {
			case <-l.dead:
			case <-l.conn.Done():
				l.kill(connection.ErrConnectionClosed)
			case <-ctx.Done():
				c.shutdown(l)
				return nil
			}
			err = l.err
		}
		if ctx.Err() != nil {
			c.setStatus(HostOffline, nil, nil)
			return nil
		}
		c.log.Warn("acquirer link down", "address", c.opts.Address, "err", err, "retry_in", backoff)
		c.setStatus(HostOffline, nil, err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		backoff = min(2*backoff, c.opts.BackoffMax)
	}
}

// connect dials the host and signs on.
func (c *Client) connect(ctx context.Context) (*link, error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	tcp, err := (&net.Dialer{}).DialContext(dctx, "tcp", c.opts.Address)
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
	l := newLink(tcp)
	// The length reader and writer are nil: the message reader and
	// writer below frame messages themselves.
	l.conn, err = connection.NewFrom(nc, Spec, nil, nil,
		connection.SendTimeout(c.opts.Timeout),
		connection.IdleTime(c.opts.EchoInterval),
		connection.PingHandler(func(*connection.Connection) { c.echo(l) }),
		connection.InboundMessageHandler(c.inbound),
		connection.ErrorHandler(func(err error) { c.log.Debug("acquirer connection", "err", err) }),
		connection.SetRequestIDGenerator(requestIDs{}),
		connection.SetMessageReader(&messageReader{c: c, l: l}),
		connection.SetMessageWriter(&messageWriter{c: c, l: l}),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := c.signOn(ctx, l); err != nil {
		l.kill(err)
		return nil, err
	}
	return l, nil
}

func (c *Client) signOn(ctx context.Context, l *link) error {
	req, err := c.network(ctx, sterad.NetSignOn)
	if err != nil {
		return fmt.Errorf("sign-on: %w", err)
	}
	resp, err := c.roundTrip(ctx, l, req, c.opts.Timeout)
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

// echo runs when nothing was sent for EchoInterval: an unanswered echo means
// the link is dead.
func (c *Client) echo(l *link) {
	if !l.signedOn.Load() {
		return // the sign-on under way proves the link
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.EchoTimeout)
	req, err := c.network(ctx, sterad.NetEcho)
	cancel()
	if err != nil {
		c.log.Error("cannot send echo", "err", err)
		return
	}
	// No deadline on the context: the round trip ends with Send, after the
	// connection has forgotten the echo, before the link is killed.
	resp, err := c.roundTrip(context.Background(), l, req, c.opts.EchoTimeout)
	if err == nil && resp.ResponseCode != "00" {
		err = fmt.Errorf("echo answered with response code %s", resp.ResponseCode)
	}
	if err != nil {
		err = fmt.Errorf("echo: %w", err)
		c.log.Warn("acquirer link dead", "err", err)
		l.kill(err)
	}
}

// shutdown stops serving Exchange, signs off and closes the connection once
// the outstanding requests are answered or timed out.
func (c *Client) shutdown(l *link) {
	c.setStatus(HostOffline, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	req, err := c.network(ctx, sterad.NetSignOff)
	if err == nil {
		_, err = c.roundTrip(ctx, l, req, c.opts.Timeout)
	}
	if err != nil {
		c.log.Info("sign-off not acknowledged", "err", err)
	}
	l.conn.Close()
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

// Exchange sends req and waits for its response (see sterad.Acquirer). It
// returns:
//   - sterad.ErrHostUnavailable when the link is not signed on, or when
//     the link failed, Timeout passed or ctx ended before req was written:
//     nothing was sent, and nothing will be;
//   - ErrDuplicateRequest, or a *FormatError when req cannot be packed:
//     nothing was sent;
//   - sterad.ErrNoResponse when req may have reached the host but no
//     readable response came within Timeout or before ctx was done: the
//     outcome is unknown, reverse; never resend;
//   - otherwise the response, whatever its DE 39.
func (c *Client) Exchange(ctx context.Context, req *sterad.HostMessage) (*sterad.HostMessage, error) {
	c.mu.Lock()
	l := c.online
	c.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("%s STAN %s: %w", req.MTI, req.STAN, sterad.ErrHostUnavailable)
	}
	return c.roundTrip(ctx, l, req, c.opts.Timeout)
}

type result struct {
	msg     *iso8583.Message
	err     error
	written bool
}

// Progress of a round trip between the caller and the sending goroutine.
const (
	tripWaiting   int32 = iota
	tripAbandoned       // the caller stopped waiting: a response is late
	tripDelivered       // the sender handed the outcome to the caller
)

// roundTrip sends req on l and waits for the response at most timeout, or
// until ctx is done.
func (c *Client) roundTrip(ctx context.Context, l *link, req *sterad.HostMessage, timeout time.Duration) (*sterad.HostMessage, error) {
	what := fmt.Sprintf("%s STAN %s terminal %s", req.MTI, req.STAN, req.TerminalID)
	if req.MTI.IsResponse() || req.STAN == 0 || req.TerminalID == "" {
		return nil, fmt.Errorf("%s: a request needs a request MTI, DE 11 and DE 41", what)
	}
	msg, packed, err := packISO(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	key, _ := requestKey(msg)
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 || ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, sterad.ErrHostUnavailable, cmp.Or(ctx.Err(), context.DeadlineExceeded))
	}
	o := &outstanding{msg: msg, packed: packed}
	c.pendingMu.Lock()
	if _, dup := c.pending[key]; dup {
		c.pendingMu.Unlock()
		return nil, fmt.Errorf("%s: %w", what, ErrDuplicateRequest)
	}
	c.pending[key] = o
	c.pendingMu.Unlock()

	// Send takes no context: it runs on its own so that the caller can
	// stop waiting when ctx is done. The key stays reserved until Send
	// returns, as the connection still waits for the response under it.
	c.stats.requests.Add(1)
	var state atomic.Int32
	done := make(chan result, 1)
	go func() {
		resp, err := l.conn.Send(msg, connection.SendTimeout(timeout))
		c.pendingMu.Lock()
		delete(c.pending, key)
		written := o.written
		c.pendingMu.Unlock()
		if state.CompareAndSwap(tripWaiting, tripDelivered) {
			done <- result{resp, err, written}
		} else if resp != nil {
			c.late(resp)
		}
	}()

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		if state.CompareAndSwap(tripWaiting, tripAbandoned) {
			c.pendingMu.Lock()
			o.abandoned = !o.written
			c.pendingMu.Unlock()
			if o.abandoned {
				return nil, fmt.Errorf("%s: %w: %w", what, sterad.ErrHostUnavailable, ctx.Err())
			}
			c.stats.timeouts.Add(1)
			return nil, fmt.Errorf("%s: %w: %w", what, sterad.ErrNoResponse, ctx.Err())
		}
		r = <-done
	}
	switch {
	case r.err == nil:
	case !r.written:
		// The writer never took it, and never will: Send has returned.
		return nil, fmt.Errorf("%s: %w: not sent: %w", what, sterad.ErrHostUnavailable, r.err)
	case errors.Is(r.err, connection.ErrSendTimeout):
		c.stats.timeouts.Add(1)
		return nil, fmt.Errorf("%s: %w within %v", what, sterad.ErrNoResponse, timeout)
	default:
		c.stats.timeouts.Add(1)
		return nil, fmt.Errorf("%s: %w: %w", what, sterad.ErrNoResponse, r.err)
	}
	resp, err := FromISO(r.msg, c.opts.Clock.Now())
	if err == nil && resp.MTI != req.MTI.Response() {
		err = formatErr(0, "%s does not answer %s", resp.MTI, req.MTI)
	}
	if err != nil {
		c.stats.malformed.Add(1)
		c.logFormatError("unreadable response: outcome unknown", err, "request", what)
		return nil, fmt.Errorf("%s: unreadable response: %w: %w", what, sterad.ErrNoResponse, err)
	}
	c.stats.responses.Add(1)
	if resp.ResponseCode == "30" {
		c.log.Error("acquirer answered format error (DE 39 = 30): the gateway sent a malformed message",
			"mti", string(req.MTI), "stan", req.STAN.String(), "terminal", req.TerminalID)
	}
	return resp, nil
}

// late logs and counts a response that came after its request stopped
// waiting, or that matches no request. It is never used.
func (c *Client) late(msg *iso8583.Message) {
	c.stats.late.Add(1)
	m, err := FromISO(msg, c.opts.Clock.Now())
	if m == nil {
		c.stats.malformed.Add(1)
		c.logFormatError("unreadable late response", err)
		return
	}
	c.log.Warn("late response", "mti", string(m.MTI), "stan", m.STAN.String(), "terminal", m.TerminalID,
		"code", m.ResponseCode)
}

// inbound handles what the host sends that no request waits for: late
// responses, and echoes from the host.
func (c *Client) inbound(conn *connection.Connection, msg *iso8583.Message) {
	if mti, _ := msg.GetMTI(); sterad.MTI(mti).IsResponse() {
		c.late(msg)
		return
	}
	m, err := FromISO(msg, c.opts.Clock.Now())
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
	resp, err := ToISO(&sterad.HostMessage{
		MTI: sterad.MTINetworkResponse, Transmitted: m.Transmitted, STAN: m.STAN, ResponseCode: "00",
		TerminalID: m.TerminalID, NetworkCode: m.NetworkCode,
	})
	if err == nil {
		err = conn.Reply(resp)
	}
	if err != nil {
		c.log.Warn("cannot answer the acquirer's echo", "err", err)
	}
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

// setStatus records a change of the link state. l is the link when online.
func (c *Client) setStatus(state string, l *link, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.online = l
	c.status.State = state
	c.status.Online = state == HostOnline
	c.status.Since = c.opts.Clock.Now()
	if err != nil {
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
func requestKey(msg *iso8583.Message) (string, error) {
	if msg == nil {
		return "", errors.New("no message")
	}
	mti, _ := msg.GetMTI()
	stan, _ := msg.GetString(11)
	tid, _ := msg.GetString(41)
	return sterad.MTI(mti).Class() + "|" + stan + "|" + strings.TrimRight(tid, " "), nil
}

// requestIDs is the connection's RequestIDGenerator: requestKey.
type requestIDs struct{}

func (requestIDs) GenerateRequestID(msg *iso8583.Message) (string, error) { return requestKey(msg) }

// messageReader reads the 2-byte big-endian length and the message. It
// skips oversized and malformed messages, logging them without their
// content, so that one bad message does not cost the link.
type messageReader struct {
	c *Client
	l *link
}

func (r *messageReader) ReadMessage(rd io.Reader) (*iso8583.Message, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		r.l.kill(fmt.Errorf("read: %w", err))
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxMessageLength {
		if _, err := io.CopyN(io.Discard, rd, int64(n)); err != nil {
			r.l.kill(fmt.Errorf("read: %w", err))
			return nil, err
		}
		r.c.stats.oversized.Add(1)
		r.c.log.Error("acquirer sent a message longer than the maximum: skipped", "length", n, "max", MaxMessageLength)
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		r.l.kill(fmt.Errorf("read: %w", err))
		return nil, err
	}
	msg, err := UnpackISO(b)
	if err != nil {
		r.c.stats.malformed.Add(1)
		r.c.logFormatError("acquirer sent a malformed message: skipped", err, "length", n)
		return nil, nil
	}
	return msg, nil
}

// messageWriter writes the length header and the message in one write. A
// request is written as Exchange packed it; replies are packed here.
type messageWriter struct {
	c *Client
	l *link
}

func (w *messageWriter) WriteMessage(wr io.Writer, msg *iso8583.Message) error {
	var packed []byte
	key, _ := requestKey(msg)
	w.c.pendingMu.Lock()
	if o := w.c.pending[key]; o != nil && o.msg == msg && !o.abandoned {
		o.written = true
		packed = o.packed
	}
	w.c.pendingMu.Unlock()
	if packed == nil {
		if mti, _ := msg.GetMTI(); !sterad.MTI(mti).IsResponse() {
			// A request whose Exchange has already returned: sending it
			// now would contradict what the caller was told.
			return nil
		}
		b, err := packChecked(msg)
		if err != nil {
			// A pack error leaves the connection up.
			return &iso8583errors.PackError{Err: err}
		}
		packed = b
	}
	buf := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(buf, uint16(len(packed)))
	copy(buf[2:], packed)
	if _, err := wr.Write(buf); err != nil {
		err = fmt.Errorf("write: %w", err)
		w.l.kill(err)
		return err
	}
	return nil
}
