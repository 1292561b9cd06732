package device

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// Session defaults (terminal-link.md §3, §5).
const (
	DefaultT3           = protocol.T3           // the terminal answers a request within T3
	DefaultT4           = protocol.T4           // inactivity while waiting for the card
	DefaultPingInterval = protocol.PingInterval // PING when the link has been idle this long
	// DefaultHelloTimeout is how long HELLO_RESP may take once HELLO was
	// acknowledged.
	DefaultHelloTimeout = 5 * time.Second
)

// DefaultBackoff is the reconnect schedule: 0.5, 1, 2, 5 s, then 5 s.
var DefaultBackoff = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

// SessionConfig configures a Session. Zero durations take the defaults.
type SessionConfig struct {
	ID        string // the terminal_id the terminal must announce in HELLO_RESP
	Kind      string // sterad.KindFixed or sterad.KindHandheld, until HELLO_RESP says
	Transport string // "serial" or "usb", for Info
	Path      string // serial port, for Info and messages
	USB       string // "vid:pid[/serial]", for Info and messages

	// Open opens the transport; required.
	Open Opener

	GatewayID string // sent in HELLO
	BootID    string // this gateway process's boot id, sent in HELLO

	// RequireP2PE is card_data: blind (sterad.CardDataBlind): sterad never
	// holds a card number. A terminal whose HELLO_RESP does not announce
	// "p2pe" is refused (offline, the reason in Info().LastError), and a
	// CARD with a card number in clear is refused from any terminal (the
	// card data dropped). False is card_data: clear: a terminal without
	// p2pe sends its card in clear, and an encrypting terminal's card is
	// taken as it comes, its block passed on (terminal-link.md §7).
	RequireP2PE bool

	// Link tunes the link layer (T1, T2, retransmissions, fault hooks).
	// Its Logger defaults to Logger and its Name to ID.
	Link protocol.LinkOptions

	T3           time.Duration   // answer to a request (default 5 s)
	T4           time.Duration   // inactivity while waiting for the card (default 180 s)
	PingInterval time.Duration   // PING after this much idle time (default 5 s)
	Backoff      []time.Duration // reconnect delays; the last one repeats (default DefaultBackoff)
	HelloTimeout time.Duration   // wait for HELLO_RESP after HELLO's ACK (default 5 s)

	// Logger receives the session's logs (frame headers only, never
	// payloads). Default: discard.
	Logger *slog.Logger

	// OnReconnect is called after every successful HELLO but the first,
	// on its own goroutine, with the terminal's info and whether its
	// boot_id changed (the terminal restarted). The gateway reconciles the
	// transactions it had in flight from there (terminal-link.md §6); the
	// session's methods may be called from it. It must return once the
	// session is closed.
	OnReconnect func(info sterad.TerminalInfo, bootChanged bool)
}

// Session is the gateway side of the SFL/1 link to one terminal. It
// implements sterad.Terminal. Create it with NewSession, start Run, and
// call Close when done. Its methods are safe for concurrent use.
type Session struct {
	cfg SessionConfig
	log *slog.Logger

	t2 time.Duration // the link's ACK timeout: a PING unacknowledged this long shows offline
	// liveMu orders the turns to and from "offline for an overdue PING"
	// with their log lines. Taken before mu.
	liveMu sync.Mutex

	mu        sync.Mutex
	conn      *conn         // the link once HELLO succeeded; nil while offline
	changed   chan struct{} // closed (and replaced) when the link's readiness may have changed
	call      *waiter       // the transaction in progress (ReadCard, ShowOutcome)
	port      string        // the port the transport says it opened (SerialByUSB)
	model     string
	firmware  string
	kind      string
	caps      []string
	bootID    string
	helloOK   bool // a HELLO has succeeded before
	lastSeen  time.Time
	lastErr   string
	lastLog   string // the last problem logged above debug level
	remoteTxn string // the transaction HELLO_RESP said the terminal is busy with
	running   bool

	closeOnce sync.Once
	closed    chan struct{}
	runDone   chan struct{}
	callbacks sync.WaitGroup // OnReconnect goroutines
}

var _ sterad.Terminal = (*Session)(nil)

// NewSession returns a session for one terminal. Nothing happens until Run.
func NewSession(cfg SessionConfig) *Session {
	if cfg.T3 <= 0 {
		cfg.T3 = DefaultT3
	}
	if cfg.T4 <= 0 {
		cfg.T4 = DefaultT4
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = DefaultBackoff
	}
	cfg.Backoff = slices.Clone(cfg.Backoff)
	if cfg.Transport == "" {
		cfg.Transport = "serial"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("terminal", cfg.ID)
	if cfg.Link.Logger == nil {
		cfg.Link.Logger = log
	}
	if cfg.Link.Name == "" {
		cfg.Link.Name = cfg.ID
	}
	t2 := cfg.Link.T2
	if t2 <= 0 {
		t2 = protocol.T2
	}
	return &Session{
		cfg:     cfg,
		log:     log,
		t2:      t2,
		changed: make(chan struct{}),
		closed:  make(chan struct{}),
		runDone: make(chan struct{}),
	}
}

// where names the terminal's port for messages.
func (s *Session) where() string {
	switch {
	case s.cfg.Path != "":
		return s.cfg.Path
	case s.cfg.USB != "":
		return "usb " + s.cfg.USB
	}
	return s.cfg.Transport
}

// Run connects to the terminal and keeps the link up until ctx ends or
// Close is called, then returns nil. Every failure (the device missing,
// a wrong terminal, a dead link) is reported in Info().LastError and
// retried with backoff. It returns an error only when it cannot run at
// all: no Opener, or Run already called.
func (s *Session) Run(ctx context.Context) error {
	if s.cfg.Open == nil {
		return errors.New("device: session has no transport opener")
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil
	default:
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("device: session already running")
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.runDone)
	defer s.callbacks.Wait()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	attempt := 0
	for {
		ready := s.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if ready {
			attempt = 0
		}
		delay := s.cfg.Backoff[min(attempt, len(s.cfg.Backoff)-1)]
		attempt++
		s.log.Debug("reconnecting to the terminal", "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Close stops Run, waits for it to return, and fails every call still
// waiting. The session cannot be restarted.
func (s *Session) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running {
		<-s.runDone
	}
	return nil
}

// connect runs one connection: open, HELLO, keepalive until the link
// fails. It reports whether the terminal became ready.
func (s *Session) connect(ctx context.Context) (ready bool) {
	rw, err := s.cfg.Open(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.problem(slog.LevelWarn, "cannot open the terminal's port", err)
		}
		return false
	}
	if p, ok := rw.(interface{ PortName() string }); ok {
		s.mu.Lock()
		s.port = p.PortName()
		s.mu.Unlock()
	}
	c := newConn(s)
	c.link = protocol.NewLink(rw, c.handle, s.cfg.Link)
	linkDone := make(chan struct{})
	go func() {
		defer close(linkDone)
		c.link.Run()
	}()
	stop := context.AfterFunc(ctx, func() { c.link.Close() })
	defer func() {
		stop()
		c.link.Close()
		<-linkDone
	}()

	resp, err := c.hello(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.problem(slog.LevelWarn, "no HELLO answer from the terminal", err)
		}
		return false
	}
	if err := s.checkHello(resp); err != nil {
		// A configuration problem: retrying will not help until someone
		// fixes it, so say it loudly, once.
		s.problem(slog.LevelError, "wrong terminal on the port", err)
		return false
	}
	if err := s.checkP2PE(resp); err != nil {
		// Not a wrong terminal but one that cannot run here: show what it
		// announced, and why it stays offline.
		s.mu.Lock()
		s.model, s.firmware, s.bootID, s.caps = resp.Model, resp.FW, resp.BootID, slices.Clone(resp.Caps)
		s.mu.Unlock()
		s.problem(slog.LevelError, "terminal refused: it does not encrypt card data", err)
		return false
	}
	s.up(c, resp)
	err = c.serve(ctx)
	s.down(c, err, ctx.Err() != nil)
	return true
}

// problem records err as the last error, offline, and logs it at level
// when it differs from the last problem logged (debug otherwise), so a
// missing device retried every few seconds logs once.
func (s *Session) problem(level slog.Level, msg string, err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	repeat := s.lastLog == s.lastErr
	s.lastLog = s.lastErr
	s.mu.Unlock()
	if repeat {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, msg, "port", s.where(), "err", err)
}

func (s *Session) checkHello(r protocol.HelloResp) error {
	if r.Proto != protocol.SFLProto {
		return fmt.Errorf("terminal on %s speaks SFL proto %d, want %d", s.where(), r.Proto, protocol.SFLProto)
	}
	if r.TerminalID != s.cfg.ID {
		return fmt.Errorf("terminal on %s says it is %q, configured as %q", s.where(), r.TerminalID, s.cfg.ID)
	}
	return nil
}

// ErrNoP2PE is the reason a terminal without "p2pe" in its HELLO_RESP is
// refused when sterad runs card-data-blind (SessionConfig.RequireP2PE).
var ErrNoP2PE = errors.New("the terminal does not encrypt card data (no p2pe): sterad runs card-data-blind")

// checkP2PE refuses a terminal that does not encrypt card data when
// sterad runs card-data-blind.
func (s *Session) checkP2PE(r protocol.HelloResp) error {
	if !s.cfg.RequireP2PE || slices.Contains(r.Caps, sterad.CapP2PE) {
		return nil
	}
	return ErrNoP2PE
}

// up makes c the live link after a good HELLO_RESP.
func (s *Session) up(c *conn, r protocol.HelloResp) {
	s.mu.Lock()
	reconnect, prevBoot := s.helloOK, s.bootID
	s.helloOK = true
	s.conn = c
	s.notifyLocked()
	s.model, s.firmware, s.bootID = r.Model, r.FW, r.BootID
	s.caps = slices.Clone(r.Caps)
	unknownKind := false
	switch r.Kind {
	case sterad.KindFixed, sterad.KindHandheld:
		s.kind = r.Kind
	default:
		// Empty or unknown: clients only know fixed and handheld, so the
		// configured kind is shown.
		unknownKind = r.Kind != ""
		s.kind = ""
	}
	s.lastErr, s.lastLog = "", ""
	s.remoteTxn = ""
	if r.Busy && r.CurrentTxn != nil {
		s.remoteTxn = *r.CurrentTxn
	}
	info := s.infoLocked()
	s.mu.Unlock()

	bootChanged := reconnect && prevBoot != r.BootID
	s.log.Info("terminal ready", "port", s.where(), "model", r.Model, "fw", r.FW, "boot_id", r.BootID,
		"busy", r.Busy, "reconnect", reconnect, "boot_changed", bootChanged)
	switch {
	case unknownKind:
		s.log.Warn("terminal announced an unknown kind: shown as configured", "port", s.where(),
			"announced", safeText(r.Kind), "configured", s.cfg.Kind)
	case r.Kind != "" && s.cfg.Kind != "" && r.Kind != s.cfg.Kind:
		s.log.Warn("terminal kind differs from the configuration", "configured", s.cfg.Kind, "announced", r.Kind)
	}
	if reconnect && s.cfg.OnReconnect != nil {
		s.callbacks.Add(1)
		go func() {
			defer s.callbacks.Done()
			s.cfg.OnReconnect(info, bootChanged)
		}()
	}
}

// down takes c offline after its link failed (or the session stopped).
func (s *Session) down(c *conn, err error, stopping bool) {
	c.link.Close()
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
		s.notifyLocked()
	}
	if !stopping && err != nil {
		s.lastErr = err.Error()
		s.lastLog = ""
	}
	s.mu.Unlock()
	if !stopping {
		s.log.Warn("terminal link down", "port", s.where(), "err", err)
	}
}

// setLastError records err as the reason the terminal is offline.
func (s *Session) setLastError(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// notifyLocked wakes WaitReady: the link came up, went down, or a PING
// went unanswered or was answered.
func (s *Session) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// seen records that a frame arrived on c: the terminal is alive, whatever
// an unanswered PING suggested.
func (s *Session) seen(c *conn, t time.Time) {
	s.mu.Lock()
	s.lastSeen = t
	s.mu.Unlock()
	s.alive(c)
}

// alive notes that the terminal answered on c (a frame, or the ACK of our
// PING): if an unanswered PING showed it offline, it is ready again.
func (s *Session) alive(c *conn) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.mu.Lock()
	recovered := c.suspect
	if recovered {
		c.suspect = false
		s.notifyLocked()
	}
	s.mu.Unlock()
	if recovered {
		s.log.Info("terminal answering again", "port", s.where())
	}
}

// pinging notes that a PING is out on c, until its PONG (on) or not.
func (s *Session) pinging(c *conn, on bool) {
	s.mu.Lock()
	c.pinging = on
	s.mu.Unlock()
}

// suspectPing is called T2 after a PING went out on c: if it is still
// unanswered (no ACK, or no PONG after the ACK), the terminal is shown
// offline and new transactions are refused at once, while the link layer
// retransmits and the PONG is awaited until T3 (either failing the link
// when the terminal stays silent).
func (s *Session) suspectPing(c *conn) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.mu.Lock()
	turned := c.pinging && !c.suspect && s.conn == c
	if turned {
		c.suspect = true
		s.notifyLocked()
	}
	s.mu.Unlock()
	if turned {
		s.log.Warn("PING unanswered: the terminal is shown offline", "port", s.where(), "within", s.t2)
	}
}

// OfflineWithin is how long after the last traffic a terminal that went
// silent (switched off, cable cut) is shown offline: a PING after
// PingInterval of silence, unanswered (ACK and PONG) for the link's T2. With the
// defaults, 5 s + 2 s = 7 s. A transport error (an unplugged USB or pty
// device) shows offline at once.
func (s *Session) OfflineWithin() time.Duration { return s.cfg.PingInterval + s.t2 }

// Info describes the terminal and the state of its link. Model, firmware,
// capabilities and boot id are the last HELLO_RESP's, kept while offline.
func (s *Session) Info() sterad.TerminalInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

func (s *Session) infoLocked() sterad.TerminalInfo {
	info := sterad.TerminalInfo{
		ID:        s.cfg.ID,
		Kind:      s.cfg.Kind,
		Transport: s.cfg.Transport,
		Path:      cmp.Or(s.port, s.cfg.Path),
		USB:       s.cfg.USB,
		Model:     s.model,
		Firmware:  s.firmware,
		Caps:      slices.Clone(s.caps),
		BootID:    s.bootID,
		LastSeen:  s.lastSeen,
		LastError: s.lastErr,
	}
	if s.kind != "" {
		info.Kind = s.kind
	}
	switch {
	case s.liveLocked() == nil:
		info.State = sterad.TerminalOffline
		if s.conn != nil && info.LastError == "" {
			// The link just failed; Run has not caught up yet.
			if err := s.conn.link.Err(); err != nil {
				info.LastError = err.Error()
			}
		}
	case s.conn.suspect:
		info.State = sterad.TerminalOffline
		if info.LastError == "" {
			info.LastError = fmt.Sprintf("no answer to PING within %s: the terminal may be switched off or its cable cut", s.t2)
		}
	case s.call != nil || s.remoteTxn != "":
		info.State = sterad.TerminalBusy
	default:
		info.State = sterad.TerminalReady
	}
	switch {
	case s.call != nil:
		info.CurrentTxn = s.call.txnID
	case s.remoteTxn != "":
		info.CurrentTxn = s.remoteTxn
	}
	return info
}

// liveLocked returns the live connection, or nil while offline (including
// the moment between a link failure and Run noticing it).
func (s *Session) liveLocked() *conn {
	if s.conn == nil {
		return nil
	}
	select {
	case <-s.conn.link.Done():
		return nil
	default:
		return s.conn
	}
}

// readyLocked returns the live connection unless an unanswered PING shows
// the terminal offline; nil otherwise.
func (s *Session) readyLocked() *conn {
	c := s.liveLocked()
	if c == nil || c.suspect {
		return nil
	}
	return c
}

// live returns the live connection or ErrTerminalOffline. A connection
// whose PING is overdue is still live: calls that continue or reconcile a
// transaction (ShowOutcome, Cancel, Query) try it rather than turn a late
// ACK into a transaction for the operator.
func (s *Session) live(op string) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.liveLocked()
	if c == nil {
		return nil, fmt.Errorf("%s: %w", op, sterad.ErrTerminalOffline)
	}
	return c, nil
}

// WaitReady blocks until HELLO has been answered (state ready or busy,
// not offline for an unanswered PING), ctx ends, or the session is
// closed.
func (s *Session) WaitReady(ctx context.Context) error {
	for {
		s.mu.Lock()
		ready, ch := s.readyLocked(), s.changed
		s.mu.Unlock()
		if ready != nil {
			return nil
		}
		// A link that failed but is not taken down yet, or a PING
		// overdue: the supervisor (or the ACK) changes that soon and
		// closes ch.
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return fmt.Errorf("wait for the terminal: %w", sterad.ErrTerminalOffline)
		}
	}
}

// begin starts a transaction call: the terminal must be up and free, and
// for a new transaction (fresh) not shown offline by an overdue PING.
func (s *Session) begin(op string, w *waiter, fresh bool) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.liveLocked()
	if fresh {
		c = s.readyLocked()
	}
	if c == nil {
		return nil, fmt.Errorf("%s: %w", op, sterad.ErrTerminalOffline)
	}
	if s.call != nil {
		return nil, fmt.Errorf("%s: %w", op, sterad.ErrTerminalBusy)
	}
	s.call = w
	c.add(w)
	return c, nil
}

// end finishes a transaction call.
func (s *Session) end(c *conn, w *waiter) {
	c.remove(w)
	s.mu.Lock()
	if s.call == w {
		s.call = nil
	}
	s.mu.Unlock()
}

// started notes that the terminal runs txnID for a call of ours: whatever
// HELLO_RESP said it was busy with is over.
func (s *Session) started(txnID string) {
	s.mu.Lock()
	if s.remoteTxn != txnID {
		s.remoteTxn = ""
	}
	s.mu.Unlock()
}

// settled notes that the terminal finished txnID (a RESULT, or a
// STATUS_RESP saying done or unknown).
func (s *Session) settled(txnID string) {
	s.mu.Lock()
	if s.remoteTxn != "" && s.remoteTxn == txnID {
		s.remoteTxn = ""
	}
	s.mu.Unlock()
}
