package acquirer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/simulator/dukpt"
)

// Kinds of ledger entries. Financial entries (transactions) are sale,
// refund, completion, noshow, cancelfee, deposit and standin;
// authorizations are preauth, incremental and cardcheck.
const (
	KindSale        = "sale"
	KindRefund      = "refund"
	KindCompletion  = "completion"
	KindNoShow      = "noshow"
	KindCancelFee   = "cancelfee" // late-cancellation fee, DE 48 MI=CX
	KindDeposit     = "deposit"   // advance deposit, DE 48 MI=DP
	KindStandIn     = "standin"
	KindPreauth     = "preauth"
	KindIncremental = "incremental"
	KindCardCheck   = "cardcheck"
)

// Statuses of ledger entries. Only StatusApproved transactions count in
// the reconciliation totals; a pre-authorization is live while approved
// and StatusCompleted once a completion charged it.
const (
	StatusApproved       = "approved"
	StatusReversed       = "reversed"
	StatusVoided         = "voided"
	StatusDeclinedAdvice = "declined_advice"
	StatusCompleted      = "completed"
)

// Batch states.
const (
	BatchOpen   = "open"
	BatchClosed = "closed"
)

// Actions a request had on the ledger, remembered so that a reversal can
// undo them.
const (
	actionCreate = "create" // created the entry Txn or Auth (or nothing: declined, dropped)
	actionVoid   = "void"   // voided the entry Txn or Auth, which was Prev before
)

// txn is a financial entry as the host keeps and journals it: never the
// full PAN, only its mask and a SHA-256 to recognise the card later.
type txn struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	Terminal    string    `json:"terminal"`
	Batch       int       `json:"batch"`
	STAN        int       `json:"stan"`
	MTI         string    `json:"mti"`
	Minor       int64     `json:"minor"`
	Currency    string    `json:"currency"`
	Masked      string    `json:"masked_pan"`
	PANHash     string    `json:"pan_sha256,omitempty"`
	Expiry      string    `json:"expiry,omitempty"` // YYMM, when the request carried the card
	RRN         string    `json:"rrn,omitempty"`
	AuthCode    string    `json:"auth_code,omitempty"`
	TI          string    `json:"ti,omitempty"`
	Token       string    `json:"token,omitempty"` // issued on TR=1
	Merchant    string    `json:"merchant,omitempty"`
	Code        string    `json:"code"`
	Status      string    `json:"status"`
	Preauth     int64     `json:"preauth,omitempty"` // completion: the authorization it charges
	Reference   string    `json:"reference,omitempty"`
	Transmitted time.Time `json:"transmitted"`
	At          time.Time `json:"at"`
}

// credit reports whether the entry credits the card (a refund).
func (t *txn) credit() bool { return t.Kind == KindRefund }

// auth is a pre-authorization, incremental authorization or card check.
type auth struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	Terminal    string    `json:"terminal"`
	STAN        int       `json:"stan"`
	MTI         string    `json:"mti"`
	Minor       int64     `json:"minor"`
	Currency    string    `json:"currency"`
	Masked      string    `json:"masked_pan"`
	PANHash     string    `json:"pan_sha256,omitempty"`
	Expiry      string    `json:"expiry,omitempty"` // YYMM, kept for tokens
	RRN         string    `json:"rrn,omitempty"`
	AuthCode    string    `json:"auth_code,omitempty"`
	TI          string    `json:"ti,omitempty"`
	Token       string    `json:"token,omitempty"`
	Merchant    string    `json:"merchant,omitempty"`
	Code        string    `json:"code"`
	Status      string    `json:"status"`
	Parent      int64     `json:"parent,omitempty"` // incremental: its pre-authorization
	Reference   string    `json:"reference,omitempty"`
	Transmitted time.Time `json:"transmitted"`
	At          time.Time `json:"at"`

	total      int64 // pre-authorization: amount plus approved incrementals (derived)
	completion int64 // pre-authorization: the completion that charged it (derived)
}

// reqEntry is one answered request: the duplicate-detection record (same
// DE 41, 11 and 7 today → same response) and the index voids and reversals
// use to find their original through DE 90.
type reqEntry struct {
	Terminal    string      `json:"terminal"`
	STAN        int         `json:"stan"`
	Transmitted time.Time   `json:"transmitted"`
	MTI         string      `json:"mti"` // normalised: 0221 → 0220, 0421 → 0420
	Orig        string      `json:"orig,omitempty"`
	KSN         string      `json:"ksn,omitempty"` // DE 48 KS: used once per terminal ID
	Day         sterad.Date `json:"day"`
	Resp        []byte      `json:"resp,omitempty"` // packed response, no card data
	Silent      bool        `json:"silent,omitempty"`
	Action      string      `json:"action,omitempty"`
	Txn         int64       `json:"txn,omitempty"`
	Auth        int64       `json:"auth,omitempty"`
	Prev        string      `json:"prev,omitempty"`
}

// ksnKey is a KSN a terminal ID used (docs/acquirer-protocol.md §8).
type ksnKey struct {
	terminal string
	ksn      string
}

// cardOnFile is the card a token stands for, as the host keeps it: masked,
// hashed and its expiry, never the number.
type cardOnFile struct {
	masked, hash, expiry, merchant string
}

type reqKey struct {
	terminal string
	stan     int
	de7      int64
}

// repeatKey finds the original of a repeat (0221, 0421) whose DE 7 differs
// from it: terminal, STAN, normalised MTI and, for reversals, DE 90.
type repeatKey struct {
	terminal string
	stan     int
	mti      string
	orig     string
}

func (e *reqEntry) key() reqKey {
	return reqKey{e.Terminal, e.STAN, e.Transmitted.Unix()}
}

func (e *reqEntry) repeatKey() repeatKey {
	return repeatKey{e.Terminal, e.STAN, e.MTI, e.Orig}
}

// batch is one terminal's batch.
type batch struct {
	Terminal string         `json:"terminal"`
	Number   int            `json:"number"`
	State    string         `json:"state"`
	Host     *sterad.Totals `json:"host,omitempty"`    // at close
	Gateway  *sterad.Totals `json:"gateway,omitempty"` // of the last 0500
	Result   string         `json:"result,omitempty"`  // DE 39 of the last 0500
	ClosedAt time.Time      `json:"closed_at"`

	uploads []*upload
	txns    []*txn
}

type batchKey struct {
	terminal string
	number   int
}

// upload is a 0320 as recorded.
type upload struct {
	Terminal   string    `json:"terminal"`
	Batch      int       `json:"batch"`
	STAN       int       `json:"stan"`
	Processing string    `json:"processing"`
	Masked     string    `json:"masked_pan,omitempty"`
	TI         string    `json:"ti,omitempty"`
	Token      string    `json:"token,omitempty"`
	Minor      int64     `json:"minor"`
	Currency   string    `json:"currency"`
	RRN        string    `json:"rrn"`
	AuthCode   string    `json:"auth_code"`
	Matched    bool      `json:"matched"`
	At         time.Time `json:"at"`
}

// statusChange moves a transaction or authorization to a new status.
type statusChange struct {
	Txn    int64  `json:"txn,omitempty"`
	Auth   int64  `json:"auth,omitempty"`
	Status string `json:"status"`
}

// event is one state change. The host applies events as it decides and,
// with a DataDir, journals them; replaying the journal rebuilds the state.
type event struct {
	Seq      uint64        `json:"seq,omitempty"`
	Instance string        `json:"instance,omitempty"`
	Txn      *txn          `json:"txn,omitempty"`
	Auth     *auth         `json:"auth,omitempty"`
	Status   *statusChange `json:"status,omitempty"`
	Req      *reqEntry     `json:"req,omitempty"`
	Batch    *batch        `json:"batch,omitempty"`
	Upload   *upload       `json:"upload,omitempty"`
}

type ref struct{ txn, auth int64 }

// state is the host's ledger and indexes, guarded by mu. Nothing under mu
// does I/O: the journal only buffers (see journal.append).
type state struct {
	mu       sync.Mutex
	log      *slog.Logger
	loc      *time.Location
	jr       *journal // nil without a DataDir
	disagree atomic.Bool

	bdk      dukpt.BDK // decrypts the card blocks of DE 48 EC
	instance string    // 3 characters that make TIs and tokens unique across runs
	seq      uint64

	txns    []*txn  // by ID-1
	auths   []*auth // by ID-1
	byTI    map[string]ref
	byRRN   map[string]ref
	tokens  map[string]cardOnFile
	ksns    map[ksnKey]bool
	reqs    map[reqKey]*reqEntry
	repeats map[repeatKey]*reqEntry
	batches map[batchKey]*batch
	order   []*batch // in order of creation
}

func newState(log *slog.Logger, loc *time.Location) *state {
	return &state{
		log:     log,
		loc:     loc,
		bdk:     dukpt.TestBDK(),
		byTI:    map[string]ref{},
		byRRN:   map[string]ref{},
		tokens:  map[string]cardOnFile{},
		ksns:    map[ksnKey]bool{},
		reqs:    map[reqKey]*reqEntry{},
		repeats: map[repeatKey]*reqEntry{},
		batches: map[batchKey]*batch{},
	}
}

// emit applies ev and journals it. Called with s.mu held.
func (s *state) emit(ev event) {
	s.apply(ev)
	if s.jr != nil {
		s.jr.append(&ev)
	}
}

// apply changes the state by one event, live or from the journal. Derived
// state (pre-authorization totals and completion, batch membership, the
// indexes) is maintained here and only here.
func (s *state) apply(ev event) {
	if ev.Seq > s.seq {
		s.seq = ev.Seq
	}
	if ev.Instance != "" {
		s.instance = ev.Instance
	}
	if t := ev.Txn; t != nil {
		s.txns = append(s.txns, t)
		b := s.batch(t.Terminal, t.Batch)
		b.txns = append(b.txns, t)
		if t.RRN != "" {
			s.byRRN[t.RRN] = ref{txn: t.ID}
		}
		if t.TI != "" && t.Kind != KindCompletion {
			s.byTI[t.TI] = ref{txn: t.ID}
		}
		if t.Token != "" {
			s.tokens[t.Token] = cardOnFile{t.Masked, t.PANHash, t.Expiry, t.Merchant}
		}
		s.completionChanged(t)
	}
	if a := ev.Auth; a != nil {
		s.auths = append(s.auths, a)
		if a.Kind == KindPreauth {
			a.total = a.Minor
			s.byTI[a.TI] = ref{auth: a.ID}
		}
		if a.RRN != "" {
			s.byRRN[a.RRN] = ref{auth: a.ID}
		}
		if a.Token != "" {
			s.tokens[a.Token] = cardOnFile{a.Masked, a.PANHash, a.Expiry, a.Merchant}
		}
		if a.Kind == KindIncremental && a.Status == StatusApproved {
			s.authByID(a.Parent).total += a.Minor
		}
	}
	if c := ev.Status; c != nil {
		switch {
		case c.Txn != 0:
			t := s.txnByID(c.Txn)
			t.Status = c.Status
			s.completionChanged(t)
		case c.Auth != 0:
			a := s.authByID(c.Auth)
			was := a.Status
			a.Status = c.Status
			if a.Kind == KindIncremental {
				p := s.authByID(a.Parent)
				if was == StatusApproved && c.Status != StatusApproved {
					p.total -= a.Minor
				} else if was != StatusApproved && c.Status == StatusApproved {
					p.total += a.Minor
				}
			}
		}
	}
	if e := ev.Req; e != nil {
		s.reqs[e.key()] = e
		if e.KSN != "" {
			s.ksns[ksnKey{e.Terminal, e.KSN}] = true
		}
		if e.MTI == string(sterad.MTIAdvice) || e.MTI == string(sterad.MTIReversal) {
			s.repeats[e.repeatKey()] = e
		}
	}
	if b := ev.Batch; b != nil {
		cur := s.batch(b.Terminal, b.Number)
		cur.State, cur.Host, cur.Gateway, cur.Result, cur.ClosedAt = b.State, b.Host, b.Gateway, b.Result, b.ClosedAt
	}
	if u := ev.Upload; u != nil {
		b := s.batch(u.Terminal, u.Batch)
		b.uploads = append(b.uploads, u)
	}
}

// completionChanged keeps a pre-authorization's state in step with its
// completion: charged while the completion counts, live again when the
// completion is reversed or voided (so the hotel can complete it anew).
func (s *state) completionChanged(t *txn) {
	if t.Kind != KindCompletion || t.Preauth == 0 {
		return
	}
	p := s.authByID(t.Preauth)
	switch {
	case t.Status == StatusApproved:
		p.Status, p.completion = StatusCompleted, t.ID
	case p.completion == t.ID:
		p.Status, p.completion = StatusApproved, 0
	}
}

func (s *state) txnByID(id int64) *txn   { return s.txns[id-1] }
func (s *state) authByID(id int64) *auth { return s.auths[id-1] }

// batch returns the terminal's batch, creating it open.
func (s *state) batch(terminal string, number int) *batch {
	k := batchKey{terminal, number}
	b := s.batches[k]
	if b == nil {
		b = &batch{Terminal: terminal, Number: number, State: BatchOpen}
		s.batches[k] = b
		s.order = append(s.order, b)
	}
	return b
}

// batchClosed reports whether the terminal's batch is closed, without
// creating it.
func (s *state) batchClosed(terminal string, number int) bool {
	b := s.batches[batchKey{terminal, number}]
	return b != nil && b.State == BatchClosed
}

// hostTotals counts the batch's approved, non-reversed, non-voided
// financial entries (docs/acquirer-protocol.md §5).
func hostTotals(b *batch) sterad.Totals {
	var t sterad.Totals
	for _, x := range b.txns {
		if x.Status != StatusApproved {
			continue
		}
		if x.credit() {
			t.CreditCount++
			t.CreditAmount += x.Minor
		} else {
			t.DebitCount++
			t.DebitAmount += x.Minor
		}
	}
	return t
}

// IDs the host assigns. seq grows forever (and survives restarts with a
// DataDir); the instance prefix keeps TIs and tokens of an earlier run
// without a DataDir from being reissued for other cards.

func (s *state) next() uint64 {
	s.seq++
	return s.seq
}

// rrn is DE 37: the last digit of the year, the day of the year and an
// 8-digit sequence: 12 digits, unique per host.
func (s *state) rrn(now time.Time, seq uint64) string {
	t := now.In(s.loc)
	return fmt.Sprintf("%d%03d%08d", t.Year()%10, t.YearDay(), seq%100_000_000)
}

// ti is DE 48 TI: instance, year digit and day of year, and an 8-digit
// sequence: 15 characters, unique per host.
func (s *state) ti(now time.Time, seq uint64) string {
	t := now.In(s.loc)
	return fmt.Sprintf("%s%d%03d%08d", s.instance, t.Year()%10, t.YearDay(), seq%100_000_000)
}

// token is DE 48 TK: "TK", the instance and an 11-digit sequence: 16
// characters that cannot be mistaken for a card number.
func (s *state) token(seq uint64) string {
	return fmt.Sprintf("TK%s%011d", s.instance, seq%100_000_000_000)
}

// authCode is DE 38: 6 base-36 characters scrambled from the sequence.
func authCode(seq uint64) string {
	const space = 36 * 36 * 36 * 36 * 36 * 36
	v := strconv.FormatUint((seq*2654435761)%space, 36)
	return strings.ToUpper(strings.Repeat("0", 6-len(v)) + v)
}

func newInstance() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// panHash recognises a card without keeping its number.
func panHash(p sterad.PAN) string {
	sum := sha256.Sum256([]byte(p.Reveal()))
	return hex.EncodeToString(sum[:])
}
