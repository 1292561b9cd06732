package terminal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// Defaults beside the types they fill in.
const (
	DefaultFixedID       = "FRONT001"
	DefaultHandheldID    = "HAND0001"
	DefaultFixedModel    = "stera-terminal"
	DefaultHandheldModel = "stera-mobile"
	DefaultFW            = "sim-1.0.0"

	// DefaultPAN is the card presented when no card was queued: Visa,
	// chip, expiring two years from the clock's now.
	DefaultPAN = "4111111111111111"

	// PresentTimeoutS is the timeout_s of PROGRESS(PRESENT_CARD|KEY_ENTRY).
	PresentTimeoutS = 60

	// JournalSize is how many finished transactions the terminal keeps by
	// txn_id (terminal-link.md §5).
	JournalSize = 100
	// MaxSlips is how many printed slips GET /slips keeps.
	MaxSlips = 1000

	DefaultUnplugDown = time.Second            // unplug fault, ms = 0
	DefaultRebootDown = 500 * time.Millisecond // reboot fault, ms = 0
	DefaultSilence    = 7 * time.Second        // silence fault, ms = 0
)

// Capabilities a terminal may announce in HELLO_RESP.
const (
	CapChip    = "chip"
	CapCtls    = "ctls"
	CapSwipe   = "swipe"
	CapKeyed   = "keyed"
	CapPrinter = "printer"
)

// DefaultFixedCaps and DefaultHandheldCaps are the capabilities of the two
// kinds when Config.Caps is empty: both encrypt card data (p2pe), as
// sterad runs card-data-blind by default; Config.Clear takes p2pe away.
var (
	DefaultFixedCaps    = []string{CapChip, CapCtls, CapSwipe, CapKeyed, CapPrinter, CapP2PE}
	DefaultHandheldCaps = []string{CapChip, CapCtls, CapKeyed, CapPrinter, CapP2PE}
)

// Reasons carried by RESULT{status: cancelled}.
const (
	ReasonCustomerCancel = "CUSTOMER_CANCEL" // the customer pressed cancel at the terminal
	ReasonCancelRequest  = "CANCEL_REQUEST"  // the gateway sent CANCEL
	// ReasonEncryptionFault ends a transaction (RESULT error) when an
	// encrypting terminal cannot encrypt the card: its transaction counter
	// is exhausted, or its counter file cannot be read or written.
	ReasonEncryptionFault = "ENCRYPTION_FAULT"
)

// Sentinel errors.
var (
	// ErrUnplugged is returned by Serve when the unplug or reboot fault
	// pulled the cable: the stream was closed. errors.As the error into an
	// *UnplugError to learn how long the terminal stays away.
	ErrUnplugged = errors.New("terminal: unplugged")

	// ErrAlreadyServing is returned by Serve (and ListenPTY) when the
	// terminal is already serving a stream: a terminal has one line.
	ErrAlreadyServing = errors.New("terminal: already serving a line")
)

// UnplugError is returned by Serve after an unplug or reboot fault.
type UnplugError struct {
	Down   time.Duration // how long the terminal stays unplugged
	Reboot bool          // the terminal rebooted (new boot_id)
}

func (e *UnplugError) Error() string {
	if e.Reboot {
		return "terminal: rebooting"
	}
	return "terminal: unplugged"
}

// Is makes errors.Is(err, ErrUnplugged) true.
func (e *UnplugError) Is(target error) bool { return target == ErrUnplugged }

// Config describes one simulated terminal. Zero values take the defaults
// documented on each field.
type Config struct {
	ID    string   // default FRONT001 (fixed) or HAND0001 (handheld)
	Kind  string   // sterad.KindFixed (default) or sterad.KindHandheld
	Model string   // default stera-terminal (fixed) or stera-mobile (handheld)
	FW    string   // default DefaultFW
	Caps  []string // default DefaultFixedCaps or DefaultHandheldCaps

	// Clear makes a terminal that does not encrypt card data: "p2pe" is
	// taken out of its capabilities, and its CARD carries pan, expiry and
	// track 2 in clear (terminal-link.md §4), for a gateway with
	// card_data: clear. A terminal encrypts (§7) when its capabilities
	// include p2pe, which the default ones do.
	Clear bool

	// StateDir, when set, is where an encrypting terminal keeps its DUKPT
	// transaction counter (file dukpt-<ID>.counter), so that no KSN is
	// ever used twice, across reboot faults and restarts of the process:
	// the host answers a KSN it has seen with 81. Without it the counter
	// starts from the wall clock (see the package documentation).
	StateDir string

	// Link tunes the link layer (T1, T2, retransmissions). A WriteHook set
	// here runs before the simulator's own fault injection.
	Link protocol.LinkOptions

	// PresentDelay is the simulated time between PROGRESS(PRESENT_CARD)
	// and CARD when the queued card has no delay_ms. Default 0.
	PresentDelay time.Duration

	// Clock dates the default card's expiry, the chip data and the slips.
	// Default sterad.SystemClock.
	Clock sterad.Clock

	// Logger receives frame headers and transaction events, never
	// payloads. Default: discard.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Kind != sterad.KindHandheld {
		c.Kind = sterad.KindFixed
	}
	handheld := c.Kind == sterad.KindHandheld
	if c.ID == "" {
		c.ID = DefaultFixedID
		if handheld {
			c.ID = DefaultHandheldID
		}
	}
	if c.Model == "" {
		c.Model = DefaultFixedModel
		if handheld {
			c.Model = DefaultHandheldModel
		}
	}
	if c.FW == "" {
		c.FW = DefaultFW
	}
	if len(c.Caps) == 0 {
		c.Caps = DefaultFixedCaps
		if handheld {
			c.Caps = DefaultHandheldCaps
		}
	}
	c.Caps = slices.Clone(c.Caps)
	if c.Clear {
		c.Caps = slices.DeleteFunc(c.Caps, func(s string) bool { return s == CapP2PE })
	}
	if c.Clock == nil {
		c.Clock = sterad.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Link.Logger == nil {
		c.Link.Logger = c.Logger
	}
	if c.Link.Name == "" {
		c.Link.Name = c.ID
	}
}

// Terminal is a simulated card terminal: the terminal side of SFL/1
// (terminal-link.md) on any byte stream or on a pseudo-terminal, with a
// control API for tests and demos. Its state (boot_id, the transaction in
// flight, the journal of the last 100 results, queued cards, armed faults,
// slips) survives the lines it serves, like a real terminal's.
type Terminal struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	bootID    string
	cards     []Card // FIFO of cards for the next READ_CARDs
	cur       *txn   // the transaction in flight, nil when idle
	finishing *txn   // finished, its RESULT not yet acknowledged (State only)
	journal   map[string]*record
	order     []string // journal txn_ids, oldest first
	slips     []Slip
	conn      *conn    // the line being served, nil when none
	sess      *session // the link session on conn, nil between links
	port      string   // pty slave path under ListenPTY
	statsBase protocol.LinkStats
	ksn       *ksnState // DUKPT key and counter; nil for a terminal in clear

	fmu    sync.Mutex // faults: read by the link's write hook
	faults faultState
}

type faultState struct {
	dropACK, badCRC, garbage, truncate int
	noResult                           int // OUTCOMEs to ignore
	silentUntil                        time.Time
	p2pe                               map[string]int // p2pe faults by kind
}

// record is a finished transaction in the journal. It holds no card data.
type record struct {
	req    protocol.ReadCard
	result protocol.Result
}

// New returns a terminal with a fresh boot_id.
func New(cfg Config) *Terminal {
	cfg.defaults()
	t := &Terminal{
		cfg:     cfg,
		log:     cfg.Logger.With("terminal", cfg.ID),
		bootID:  newBootID(),
		journal: make(map[string]*record),
	}
	if t.hasCap(CapP2PE) {
		// The wall clock, not cfg.Clock: the start must move on between
		// real restarts even when the simulation's clock does not.
		t.ksn = newKSNState(cfg.ID, cfg.StateDir, time.Now())
		if t.ksn.err != nil {
			t.log.Error("the terminal cannot encrypt cards", "err", t.ksn.err)
		}
	}
	return t
}

func newBootID() string {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("terminal: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// ID returns the terminal ID.
func (t *Terminal) ID() string { return t.cfg.ID }

// BootID returns the current boot_id (new after each reboot fault).
func (t *Terminal) BootID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bootID
}

func (t *Terminal) hasCap(c string) bool { return slices.Contains(t.cfg.Caps, c) }

// Terminal states in State.State.
const (
	StateIdle        = "idle"
	StateWaitingCard = "waiting_card"
	StateCardSent    = "card_sent"
	StateOutcome     = "outcome"
)

// State is what GET /state shows.
type State struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Model       string    `json:"model"`
	FW          string    `json:"fw"`
	Caps        []string  `json:"caps"`
	BootID      string    `json:"boot_id"`
	State       string    `json:"state"` // idle, waiting_card, card_sent, outcome
	CurrentTxn  *string   `json:"current_txn"`
	Link        LinkStats `json:"link"`      // summed over every link since New
	Connected   bool      `json:"connected"` // a line is being served
	Port        string    `json:"port,omitempty"`
	QueuedCards int       `json:"queued_cards"`
	Faults      Faults    `json:"faults"`
}

// Faults are the faults still armed.
type Faults struct {
	DropACK  int  `json:"drop_ack"`
	BadCRC   int  `json:"bad_crc"`
	Garbage  int  `json:"garbage"`
	Truncate int  `json:"truncate"`
	NoResult int  `json:"no_result"`
	Silent   bool `json:"silent"`
	// p2pe faults (an encrypting terminal's CARD)
	ClearPAN      int `json:"clear_pan,omitempty"`
	BadKSN        int `json:"bad_ksn,omitempty"`
	BadData       int `json:"bad_data,omitempty"`
	Undecryptable int `json:"undecryptable,omitempty"`
	ReplayKSN     int `json:"replay_ksn,omitempty"`
}

// LinkStats are protocol.LinkStats with JSON names.
type LinkStats struct {
	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	Retransmits    uint64 `json:"retransmits"`
	NAKsSent       uint64 `json:"naks_sent"`
	NAKsReceived   uint64 `json:"naks_received"`
	Duplicates     uint64 `json:"duplicates"`
	NoiseBytes     uint64 `json:"noise_bytes"`
	Rejected       uint64 `json:"rejected"`
}

func linkStats(s protocol.LinkStats) LinkStats {
	return LinkStats{
		FramesSent: s.FramesSent, FramesReceived: s.FramesReceived, Retransmits: s.Retransmits,
		NAKsSent: s.NAKsSent, NAKsReceived: s.NAKsReceived, Duplicates: s.Duplicates,
		NoiseBytes: s.NoiseBytes, Rejected: s.Rejected,
	}
}

func addStats(a, b protocol.LinkStats) protocol.LinkStats {
	return protocol.LinkStats{
		FramesSent: a.FramesSent + b.FramesSent, FramesReceived: a.FramesReceived + b.FramesReceived,
		Retransmits: a.Retransmits + b.Retransmits, NAKsSent: a.NAKsSent + b.NAKsSent,
		NAKsReceived: a.NAKsReceived + b.NAKsReceived, Duplicates: a.Duplicates + b.Duplicates,
		NoiseBytes: a.NoiseBytes + b.NoiseBytes, Rejected: a.Rejected + b.Rejected,
	}
}

// LinkStats returns the link counters summed over every link since New.
func (t *Terminal) LinkStats() protocol.LinkStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.linkStatsLocked()
}

func (t *Terminal) linkStatsLocked() protocol.LinkStats {
	s := t.statsBase
	if t.sess != nil {
		s = addStats(s, t.sess.link.Stats())
	}
	return s
}

// State returns a snapshot of the terminal.
func (t *Terminal) State() State {
	t.mu.Lock()
	st := State{
		ID: t.cfg.ID, Kind: t.cfg.Kind, Model: t.cfg.Model, FW: t.cfg.FW, Caps: slices.Clone(t.cfg.Caps),
		BootID: t.bootID, State: StateIdle, Link: linkStats(t.linkStatsLocked()),
		Connected: t.conn != nil, Port: t.port, QueuedCards: len(t.cards),
	}
	tx := t.cur
	if tx == nil {
		tx = t.finishing
	}
	if tx != nil {
		id := tx.req.TxnID
		st.CurrentTxn = &id
		st.State = tx.phase.display()
	}
	t.mu.Unlock()
	t.fmu.Lock()
	f := t.faults
	f.p2pe = maps.Clone(f.p2pe)
	t.fmu.Unlock()
	st.Faults = Faults{DropACK: f.dropACK, BadCRC: f.badCRC, Garbage: f.garbage, Truncate: f.truncate,
		NoResult: f.noResult, Silent: time.Now().Before(f.silentUntil),
		ClearPAN: f.p2pe[FaultClearPAN], BadKSN: f.p2pe[FaultBadKSN], BadData: f.p2pe[FaultBadData],
		Undecryptable: f.p2pe[FaultUndecryptable], ReplayKSN: f.p2pe[FaultReplayKSN]}
	return st
}

// Slip is a printed receipt: the OUTCOME's lines with its status, the
// masked card number and the authorization code. Never a full PAN.
type Slip struct {
	TxnID     string    `json:"txn_id"`
	Op        string    `json:"op"`
	Status    string    `json:"status"` // approved, declined, error
	Code      string    `json:"code,omitempty"`
	AuthCode  string    `json:"auth_code,omitempty"`
	RRN       string    `json:"rrn,omitempty"`
	Amount    string    `json:"amount,omitempty"`
	Currency  string    `json:"currency,omitempty"`
	MaskedPAN string    `json:"masked_pan"`
	Brand     string    `json:"brand,omitempty"`
	Entry     string    `json:"entry,omitempty"`
	Lines     []string  `json:"lines"`
	PrintedAt time.Time `json:"printed_at"`
}

// Slips returns the printed slips, oldest first.
func (t *Terminal) Slips() []Slip {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Slip, len(t.slips))
	for i, s := range t.slips {
		s.Lines = slices.Clone(s.Lines)
		out[i] = s
	}
	return out
}

// Fault kinds for Fault and POST /fault.
const (
	FaultDropACK  = "drop_ack"
	FaultBadCRC   = "bad_crc"
	FaultGarbage  = "garbage"
	FaultTruncate = "truncate"
	FaultSilence  = "silence"
	FaultUnplug   = "unplug"
	FaultReboot   = "reboot"
	// FaultNoResult: the next count OUTCOMEs are acknowledged and ignored
	// (no PROGRESS, no slip, no RESULT); the transaction stays card_sent,
	// as in a terminal whose display or printer task hung.
	FaultNoResult = "no_result"
)

// Fault arms a line fault (see the package documentation). count (default
// 1) applies to drop_ack, bad_crc, garbage, truncate, no_result and the
// p2pe faults (clear_pan, bad_ksn, bad_data, undecryptable, replay_ksn: an
// encrypting terminal's next CARDs); ms to silence
// (default 7000), unplug (default 1000) and reboot (default 500). Faults
// armed while no line is served wait for the next line; unplug without a
// line does nothing.
func (t *Terminal) Fault(kind string, count, ms int) error {
	if count < 0 || ms < 0 {
		return sterad.Errorf(sterad.EInvalid, "invalid_fault", "count and ms must not be negative")
	}
	if count == 0 {
		count = 1
	}
	dur := func(def time.Duration) time.Duration {
		if ms == 0 {
			return def
		}
		return time.Duration(ms) * time.Millisecond
	}
	t.log.Info("fault armed", "kind", kind, "count", count, "ms", ms)
	switch kind {
	case FaultDropACK, FaultBadCRC, FaultGarbage, FaultTruncate, FaultNoResult:
		t.fmu.Lock()
		switch kind {
		case FaultNoResult:
			t.faults.noResult += count
		case FaultDropACK:
			t.faults.dropACK += count
		case FaultBadCRC:
			t.faults.badCRC += count
		case FaultGarbage:
			t.faults.garbage += count
		case FaultTruncate:
			t.faults.truncate += count
		}
		t.fmu.Unlock()
	case FaultClearPAN, FaultBadKSN, FaultBadData, FaultUndecryptable, FaultReplayKSN:
		return t.armP2PEFault(kind, count)
	case FaultSilence:
		t.fmu.Lock()
		t.faults.silentUntil = time.Now().Add(dur(DefaultSilence))
		t.fmu.Unlock()
	case FaultUnplug:
		t.unplug(&UnplugError{Down: dur(DefaultUnplugDown)})
	case FaultReboot:
		t.mu.Lock()
		t.bootID = newBootID()
		if tx := t.cur; tx != nil {
			tx.stop()
			t.cur = nil // lost: not journaled, STATUS_QUERY answers unknown
		}
		t.finishing = nil
		t.mu.Unlock()
		t.unplug(&UnplugError{Down: dur(DefaultRebootDown), Reboot: true})
	default:
		return sterad.Errorf(sterad.EInvalid, "invalid_fault",
			"unknown fault kind %q (drop_ack, bad_crc, garbage, truncate, silence, unplug, reboot, no_result, "+
				"clear_pan, bad_ksn, bad_data, undecryptable, replay_ksn)", kind)
	}
	return nil
}

func (t *Terminal) unplug(u *UnplugError) {
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.unplug <- u:
	default: // already being unplugged
	}
}

func (t *Terminal) silent(now time.Time) bool {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	return now.Before(t.faults.silentUntil)
}

// takeNoResult consumes one armed no_result fault.
func (t *Terminal) takeNoResult() bool {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	if t.faults.noResult == 0 {
		return false
	}
	t.faults.noResult--
	return true
}
