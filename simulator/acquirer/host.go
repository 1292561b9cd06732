package acquirer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
)

// DefaultLocation is the merchant's time zone, which decides "today" for
// duplicate detection and card expiry.
const DefaultLocation = "Asia/Tokyo"

// DefaultWriteTimeout bounds a response write to a client that stopped
// reading.
const DefaultWriteTimeout = 10 * time.Second

// ErrClosed is returned by Serve and ListenAndServe after Close.
var ErrClosed = errors.New("acquirer: host closed")

// Options configure a Host. The zero value is a working in-memory host.
type Options struct {
	// Clock decides DE 14 expiry, "today" for duplicate detection and the
	// dates in RRNs and TIs. Default sterad.SystemClock.
	Clock sterad.Clock
	// Logger receives the host's log; default silent. Card numbers are
	// never logged.
	Logger *slog.Logger
	// DataDir, when set, keeps the ledger and host state in a journal
	// there (JournalFile), replayed by New, so a restarted host continues.
	DataDir string
	// SyncInterval is how often the journal is fsynced; default
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// Location decides "today"; default Asia/Tokyo.
	Location *time.Location
}

// Host is the test acquirer host of docs/acquirer-protocol.md §7: ISO 8583 over
// TCP with 2-byte length framing, a ledger, and controls for tests.
type Host struct {
	clock sterad.Clock
	log   *slog.Logger
	st    *state
	jr    *journal
	err   error // from opening the DataDir; returned by Serve

	mu     sync.Mutex // guards the fields below
	cond   *sync.Cond // signalled when ln or closed change
	ln     net.Listener
	addr   string
	outage bool
	closed bool
	conns  map[*conn]struct{}
	nextID uint64

	delay  atomic.Int64 // nanoseconds
	silent atomic.Bool  // read everything, answer nothing
	drop   atomic.Int64 // responses still to drop
	stats  stats

	wg   sync.WaitGroup // connections and pending responses
	done chan struct{}  // closed by Close
}

// New returns a host. With opts.DataDir it replays the journal there
// first; if that fails, the host logs the error and Serve returns it.
func New(opts Options) *Host {
	if opts.Clock == nil {
		opts.Clock = sterad.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Location == nil {
		loc, err := time.LoadLocation(DefaultLocation)
		if err != nil {
			loc = time.FixedZone("JST", 9*3600)
		}
		opts.Location = loc
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	h := &Host{
		clock: opts.Clock,
		log:   opts.Logger,
		st:    newState(opts.Logger, opts.Location),
		conns: map[*conn]struct{}{},
		done:  make(chan struct{}),
	}
	h.cond = sync.NewCond(&h.mu)
	h.stats.requests = map[string]int64{}
	if opts.DataDir != "" {
		h.jr, h.err = openJournal(opts.DataDir, opts.SyncInterval, opts.Logger, h.st.apply)
		if h.err != nil {
			h.log.Error("cannot open the acquirer data dir", "dir", opts.DataDir, "err", h.err)
			return h
		}
		h.st.jr = h.jr
	}
	if h.st.instance == "" {
		h.st.mu.Lock()
		h.st.emit(event{Instance: newInstance()})
		h.st.mu.Unlock()
		h.flushJournal()
	}
	return h
}

// ListenAndServe listens on the TCP address addr and serves until Close.
func (h *Host) ListenAndServe(addr string) error {
	if h.err != nil {
		return h.err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return h.Serve(ln)
}

// Serve accepts connections on ln until Close, then returns ErrClosed.
// During an outage (SetOutage) ln is closed and Serve waits; when the
// outage ends it listens again on the same address and carries on.
func (h *Host) Serve(ln net.Listener) error {
	if h.err != nil {
		ln.Close()
		return h.err
	}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		ln.Close()
		return ErrClosed
	case h.ln != nil:
		h.mu.Unlock()
		ln.Close()
		return errors.New("acquirer: already serving")
	}
	h.addr = ln.Addr().String()
	h.ln = ln
	if h.outage {
		ln.Close()
		h.ln = nil
	}
	h.mu.Unlock()
	h.log.Info("acquirer host listening", "addr", h.addr)

	for {
		h.mu.Lock()
		for h.ln == nil && !h.closed {
			h.cond.Wait()
		}
		if h.closed {
			h.mu.Unlock()
			return ErrClosed
		}
		cur := h.ln
		h.mu.Unlock()

		err := h.accept(cur)

		h.mu.Lock()
		switch {
		case h.closed:
			h.mu.Unlock()
			return ErrClosed
		case h.ln == cur: // not closed by an outage: a real failure
			h.ln = nil
			h.mu.Unlock()
			return fmt.Errorf("accept: %w", err)
		}
		h.mu.Unlock()
	}
}

func (h *Host) accept(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		h.mu.Lock()
		if h.closed || h.ln != ln {
			h.mu.Unlock()
			nc.Close()
			continue
		}
		h.nextID++
		c := &conn{h: h, nc: nc, id: h.nextID}
		h.conns[c] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		h.stats.connections.Add(1)
		go c.serve()
	}
}

// Addr returns the address the host listens on ("127.0.0.1:8583"), or ""
// before Serve.
func (h *Host) Addr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

// Close stops listening, closes every connection, waits for pending
// responses to finish or be abandoned, and closes the journal.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.done)
	if h.ln != nil {
		h.ln.Close()
		h.ln = nil
	}
	for c := range h.conns {
		c.nc.Close()
	}
	h.cond.Broadcast()
	h.mu.Unlock()
	h.wg.Wait()
	if h.jr != nil {
		return h.jr.close()
	}
	return nil
}

// SetOutage starts (on) or ends an outage. Starting one closes every
// connection and the listener, so new connections are refused; ending it
// listens again on the same address.
func (h *Host) SetOutage(on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if on == h.outage {
		return nil
	}
	if on {
		h.outage = true
		if h.ln != nil {
			h.ln.Close()
			h.ln = nil
		}
		for c := range h.conns {
			c.nc.Close()
		}
		h.log.Info("outage started: connections closed and refused")
		return nil
	}
	if h.addr != "" {
		ln, err := net.Listen("tcp", h.addr)
		if err != nil {
			return fmt.Errorf("listen again on %s: %w", h.addr, err)
		}
		h.ln = ln
		h.cond.Broadcast()
	}
	h.outage = false
	h.log.Info("outage ended: listening again", "addr", h.addr)
	return nil
}

// SetDelay delays every response by d (0: answer at once).
func (h *Host) SetDelay(d time.Duration) { h.delay.Store(int64(max(d, 0))) }

// Drop makes the host process the next n requests (not counting network
// management 0800s) normally but send no response: "approved, answer
// lost". n replaces any count still pending; 0 cancels.
func (h *Host) Drop(n int) { h.drop.Store(int64(max(n, 0))) }

// SetSilent makes the host keep its connections open and read every
// message, but process and answer none, not even echoes and sign-ons: the
// gateway must notice by itself that the link is dead.
func (h *Host) SetSilent(on bool) { h.silent.Store(on) }

// SetDisagree makes the host answer 95 to every 0500 without BU=1, so the
// gateway has to upload the batch.
func (h *Host) SetDisagree(on bool) { h.st.disagree.Store(on) }

// Controls is the state of the test controls.
type Controls struct {
	Outage   bool  `json:"outage"`
	DelayMS  int64 `json:"delay_ms"`
	Drop     int64 `json:"drop"` // responses still to drop
	Disagree bool  `json:"disagree"`
}

// Controls returns the state of the test controls.
func (h *Host) Controls() Controls {
	h.mu.Lock()
	outage := h.outage
	h.mu.Unlock()
	return Controls{
		Outage:   outage,
		DelayMS:  time.Duration(h.delay.Load()).Milliseconds(),
		Drop:     h.drop.Load(),
		Disagree: h.st.disagree.Load(),
	}
}

// takeDrop reports whether this response is one to drop.
func (h *Host) takeDrop() bool {
	for {
		n := h.drop.Load()
		if n <= 0 {
			return false
		}
		if h.drop.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (h *Host) flushJournal() {
	if h.jr == nil {
		return
	}
	if err := h.jr.flush(); err != nil {
		h.log.Error("journal write failed", "err", err)
	}
}

func (h *Host) removeConn(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// Stats counts what the host received and did.
type Stats struct {
	Requests     map[string]int64 `json:"requests"`      // by request MTI
	Responses    int64            `json:"responses"`     // sent
	Dropped      int64            `json:"dropped"`       // processed, no response (Drop and the no-response card)
	Duplicates   int64            `json:"duplicates"`    // answered from an earlier response
	FormatErrors int64            `json:"format_errors"` // answered 30
	Malformed    int64            `json:"malformed"`     // skipped: not ISO 8583 of this interface
	Oversized    int64            `json:"oversized"`     // length over 4096: discarded
	Connections  int64            `json:"connections"`   // accepted so far
}

type stats struct {
	mu           sync.Mutex
	requests     map[string]int64
	responses    atomic.Int64
	dropped      atomic.Int64
	duplicates   atomic.Int64
	formatErrors atomic.Int64
	malformed    atomic.Int64
	oversized    atomic.Int64
	connections  atomic.Int64
}

func (s *stats) request(mti sterad.MTI) {
	s.mu.Lock()
	s.requests[string(mti)]++
	s.mu.Unlock()
}

// Stats returns the counters.
func (h *Host) Stats() Stats {
	s := &h.stats
	s.mu.Lock()
	req := make(map[string]int64, len(s.requests))
	for k, v := range s.requests {
		req[k] = v
	}
	s.mu.Unlock()
	return Stats{
		Requests:     req,
		Responses:    s.responses.Load(),
		Dropped:      s.dropped.Load(),
		Duplicates:   s.duplicates.Load(),
		FormatErrors: s.formatErrors.Load(),
		Malformed:    s.malformed.Load(),
		Oversized:    s.oversized.Load(),
		Connections:  s.connections.Load(),
	}
}
