package modeltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/internal/pipetest"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// The harness is the real gateway, built in-process the way cmd/sterad
// wires it: the real offline store (bbolt in a temporary directory,
// reopened on a restart), the real protocol client against the real test
// acquirer on loopback, real terminal sessions (device) talking SFL/1 over
// an in-memory pipe to the real simulated terminal, and one FakeClock for
// the gateway, the store and the host. Only the wall-clock timers of the
// links (acquirer timeout, reconnect backoff, terminal T1–T4) are real,
// shortened so that a dropped answer resolves in a fraction of a second.

const (
	merchantID = "HOTEL0000000001"
	virtualTID = "VIRT0001"
	frontTID   = "FRONT001"
	cardExpiry = "3012" // YYMM, years after the fake clock's now
	// acquirerTimeout is how long the gateway waits for an answer: short,
	// so a dropped answer turns into a reversal fast.
	acquirerTimeout = time.Second
	// opTimeout bounds every wait of the harness: a flow that takes longer
	// is itself a finding.
	opTimeout = 20 * time.Second
)

// testCard is one of acquirer-host.md §7's test cards.
type testCard struct {
	Name string
	PAN  string
	// What the test acquirer does with it: "" approves, "declined" (05),
	// "silent" (never answers).
	Host string
}

// cards are the test acquirer's test cards (acquirer-host.md §7): four that
// approve, one the issuer declines (05) and one the host never answers.
// Their masked forms differ, so money can be compared per card.
var cards = []testCard{
	{Name: "visa", PAN: "4111111111111111"},
	{Name: "mastercard", PAN: "5555555555554444"},
	{Name: "jcb", PAN: "3530111333300000"},
	{Name: "amex", PAN: "378282246310005"},
	{Name: "declined", PAN: "4000000000000002", Host: "declined"},
	{Name: "silent", PAN: "4000000000000119", Host: "silent"},
}

func cardByName(name string) testCard {
	for _, c := range cards {
		if c.Name == name {
			return c
		}
	}
	panic("unknown test card " + name)
}

// harness owns the host, the simulated terminal and the data directory,
// which outlive restarts, and one incarnation of sterad.
type harness struct {
	dir      string
	clock    *sterad.FakeClock
	loc      *time.Location
	host     *acquirer.Host
	hostAddr string
	hostDone chan struct{}
	term     *terminal.Terminal
	ids      atomic.Int64

	mu         sync.Mutex
	violations []string
	// refundsEarly are originals a refund was sent for before the host
	// had any entry of them (an advice still owed); checked at settle.
	refundsEarly map[string]string

	inc *incarnation

	// cardData is the gateway's card data mode: blind (the default; set
	// STERAD_MODEL_CARD_DATA=clear for the clear mode). Blind, the
	// terminal encrypts and the model reads or keys every card at it.
	cardData string
}

// blind reports whether the model runs card-data-blind.
func (h *harness) blind() bool { return h.cardData == sterad.CardDataBlind }

// incarnation is one run of sterad, from start to restart.
type incarnation struct {
	db      *offline.DB
	client  *protocol.Client
	acq     *recorder
	session *device.Session
	gw      *gateway.Gateway
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newHarness(dir string) (*harness, error) {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return nil, err
	}
	// 19:00 local: no-shows of today's arrivals may be charged.
	start := time.Date(2026, 6, 15, 19, 0, 0, 0, loc)
	h := &harness{dir: dir, clock: sterad.NewFakeClock(start), loc: loc, hostDone: make(chan struct{}), refundsEarly: map[string]string{},
		cardData: sterad.CardDataBlind}
	if os.Getenv("STERAD_MODEL_CARD_DATA") == sterad.CardDataClear {
		h.cardData = sterad.CardDataClear
	}
	h.host = acquirer.New(acquirer.Options{Clock: h.clock, Location: loc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h.hostAddr = ln.Addr().String()
	go func() {
		defer close(h.hostDone)
		h.host.Serve(ln)
	}()
	h.term = terminal.New(terminal.Config{ID: frontTID, Kind: sterad.KindFixed, Clock: h.clock, Clear: !h.blind(),
		Link: protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 250 * time.Millisecond}})
	if err := h.start(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) gw() *gateway.Gateway { return h.inc.gw }

// modelKEK wraps the model stores' keys (the same one at every restart).
var modelKEK, _ = offline.NewKEK(make([]byte, offline.KEKSize))

// start starts an incarnation of sterad on the data directory.
func (h *harness) start() error {
	inc := &incarnation{}
	ctx, cancel := context.WithCancel(context.Background())
	inc.cancel = cancel
	h.inc = inc
	opts := offline.DefaultOptions()
	opts.Clock = h.clock
	opts.KEKs = []*offline.KEK{modelKEK}
	db, err := offline.Open(h.dir, opts)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	inc.db = db
	client, err := protocol.NewClient(protocol.ClientOptions{
		Address: h.hostAddr, TerminalID: virtualTID, MerchantID: merchantID, Timeout: acquirerTimeout,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, ConnectTimeout: time.Second,
		STAN: db.NextSTAN, Clock: h.clock, Location: h.loc,
	})
	if err != nil {
		return err
	}
	inc.client = client
	inc.wg.Add(1)
	go func() {
		defer inc.wg.Done()
		client.Run(ctx)
	}()
	inc.acq = &recorder{h: h, inner: client}

	termCtx, termCancel := context.WithCancel(ctx)
	var termWG sync.WaitGroup
	open := func(context.Context) (io.ReadWriteCloser, error) {
		gwEnd, termEnd := pipetest.New()
		termWG.Add(1)
		go func() {
			defer termWG.Done()
			h.term.Serve(termCtx, termEnd)
		}()
		return gwEnd, nil
	}
	inc.session = device.NewSession(device.SessionConfig{
		ID: frontTID, Kind: sterad.KindFixed, Transport: "serial", Path: "/dev/ttyMODEL", Open: open,
		GatewayID: merchantID, BootID: fmt.Sprintf("boot-%d", h.ids.Load()),
		Link:         protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 250 * time.Millisecond},
		T3:           2 * time.Second,
		T4:           5 * time.Second,
		PingInterval: 500 * time.Millisecond,
		Backoff:      []time.Duration{5 * time.Millisecond, 20 * time.Millisecond},
		HelloTimeout: 2 * time.Second,
		RequireP2PE:  h.blind(),
		OnReconnect: func(info sterad.TerminalInfo, bootChanged bool) {
			if g := inc.gw; g != nil {
				g.TerminalReconnected(frontTID, bootChanged)
			}
		},
	})
	inc.wg.Add(1)
	go func() {
		defer inc.wg.Done()
		inc.session.Run(ctx)
		inc.session.Close()
		termCancel()
		termWG.Wait()
	}()

	gw, err := gateway.New(gateway.Config{
		MerchantID: merchantID, VirtualTerminalID: virtualTID, Location: h.loc,
		TerminalWait:  3 * time.Second,
		RetryInterval: 100 * time.Millisecond,
		Cutoff:        -1, // batches close only when the model says so
		SettleTimeout: 5 * time.Second,
		CardData:      h.cardData,
	}, gateway.Deps{
		Store: db, Acquirer: inc.acq, Terminals: []sterad.Terminal{inc.session}, Clock: h.clock,
		Logger: slog.New(slog.DiscardHandler),
		NewID:  func() string { return fmt.Sprintf("T%06d", h.ids.Add(1)) },
	})
	if err != nil {
		return err
	}
	// The terminal and the link first, as the daemon's start would find
	// them once running.
	wctx, wcancel := context.WithTimeout(ctx, opTimeout)
	defer wcancel()
	if err := inc.session.WaitReady(wctx); err != nil {
		return fmt.Errorf("terminal not ready: %w", err)
	}
	// A host in an outage, or slower than the acquirer timeout, cannot
	// be signed on: sterad starts offline then, as it would.
	if c := h.host.Controls(); !c.Outage && time.Duration(c.DelayMS)*time.Millisecond < acquirerTimeout {
		if err := client.WaitOnline(wctx); err != nil {
			return fmt.Errorf("acquirer link not online: %w", err)
		}
	}
	if err := gw.Start(ctx); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	inc.gw = gw
	statuses := client.Subscribe()
	inc.wg.Add(1)
	go func() {
		defer inc.wg.Done()
		for {
			select {
			case st := <-statuses:
				gw.LinkChanged(st)
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// stop ends the incarnation: the flows, the links, the store.
func (h *harness) stop() {
	inc := h.inc
	if inc == nil {
		return
	}
	inc.acq.releaseHold()
	if inc.gw != nil {
		inc.gw.Stop()
	}
	inc.cancel()
	inc.wg.Wait()
	if inc.db != nil {
		inc.db.Close()
	}
	h.inc = nil
}

// restart is a stop and a start on the same data directory: sterad
// recovers from its journal alone.
func (h *harness) restart() error {
	h.stop()
	return h.start()
}

func (h *harness) close() {
	h.stop()
	h.host.Close()
	<-h.hostDone
}

func (h *harness) violate(format string, args ...any) {
	h.mu.Lock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *harness) takeViolations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.violations
	h.violations = nil
	return v
}

// ctx is the context of one harness wait.
func (h *harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// snapshot returns every transaction sterad has, in one read.
func (h *harness) snapshot() (map[string]*sterad.Transaction, []*sterad.Transaction, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	txns, err := h.inc.db.Transactions(ctx, sterad.TransactionFilter{})
	if err != nil {
		return nil, nil, err
	}
	by := make(map[string]*sterad.Transaction, len(txns))
	for _, t := range txns {
		by[t.ID] = t
	}
	slices.SortFunc(txns, func(a, b *sterad.Transaction) int { return strings.Compare(a.ID, b.ID) })
	return by, txns, nil
}

// waitOnline waits until the acquirer link is signed on.
func (h *harness) waitOnline() error {
	ctx, cancel := h.ctx()
	defer cancel()
	return h.inc.client.WaitOnline(ctx)
}

// waitOffline waits until the client has noticed an outage, so that the
// next request is certainly not sent.
func (h *harness) waitOffline() error {
	return poll(func() bool { return !h.inc.client.Status().Online })
}

// poll waits for cond with a deadline (no sleeps to wait: a short tick
// between looks at real state).
func poll(cond func() bool) error {
	deadline := time.Now().Add(opTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not reached within " + opTimeout.String())
		}
		select {
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// settle brings the link back (no outage, no delay, no drops), flushes the
// store-and-forward queue until it is empty and waits until no transaction
// is in flight: the quiescent point where sterad and the host must agree.
func (h *harness) settle() error {
	h.host.SetOutage(false)
	h.host.SetDelay(0)
	h.host.Drop(0)
	if err := h.waitOnline(); err != nil {
		return err
	}
	ctx, cancel := h.ctx()
	defer cancel()
	return poll(func() bool {
		if _, err := h.gw().Flush(ctx); err != nil {
			return false
		}
		q, err := h.gw().Queue(ctx)
		if err != nil || len(q) > 0 {
			return false
		}
		un, err := h.inc.db.Unfinished(ctx)
		if err != nil {
			return false
		}
		return len(un) == 0
	})
}

// recorder is the acquirer as the gateway sees it: the real client, with
// two test seams of this package's own: it checks every refund the moment
// it is sent against the host's ledger, and it can hold a batch close's
// 0500 so that the model can act while the close waits for its answer.
type recorder struct {
	h     *harness
	inner sterad.Acquirer

	mu      sync.Mutex
	arrived chan struct{} // closed when a held 0500 arrives
	release chan struct{} // closed to let it go
}

func (r *recorder) Status() sterad.LinkStatus { return r.inner.Status() }

func (r *recorder) Exchange(ctx context.Context, m *sterad.HostMessage) (*sterad.HostMessage, error) {
	if m.MTI == sterad.MTIReconciliation {
		r.mu.Lock()
		arrived, release := r.arrived, r.release
		r.mu.Unlock()
		if release != nil {
			select {
			case <-arrived:
			default:
				close(arrived)
			}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if m.MTI == sterad.MTIFinancial && m.Processing == sterad.ProcRefund {
		// Judged on the ledger as it is before the host sees the refund;
		// counted only if the refund may have left (not "unreachable").
		verdict := r.h.checkRefundSend(m)
		resp, err := r.inner.Exchange(ctx, m)
		if !errors.Is(err, sterad.ErrHostUnavailable) {
			verdict()
		}
		return resp, err
	}
	return r.inner.Exchange(ctx, m)
}

// hold makes the next 0500 wait until releaseHold; the returned channel is
// closed when it arrives.
func (r *recorder) hold() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrived, r.release = make(chan struct{}), make(chan struct{})
	return r.arrived
}

func (r *recorder) releaseHold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.release != nil {
		close(r.release)
	}
	r.arrived, r.release = nil, nil
}

// checkRefundSend is invariant "no refund exceeds what was charged", at
// the moment a refund reaches the host: its original must be a charge the
// host holds (counted: not declined, voided or reversed), and the refunds
// the host already counts against it plus this one must not exceed it.
func (h *harness) checkRefundSend(m *sterad.HostMessage) (verdict func()) {
	var found []string
	early, earlyRefund := "", ""
	verdict = func() {
		for _, v := range found {
			h.violate("%s", v)
		}
		if early != "" {
			h.mu.Lock()
			h.refundsEarly[early] = earlyRefund
			h.mu.Unlock()
		}
	}
	violate := func(format string, args ...any) { found = append(found, fmt.Sprintf(format, args...)) }
	ctx, cancel := h.ctx()
	defer cancel()
	db := h.inc.db
	refunds, err := db.Transactions(ctx, sterad.TransactionFilter{Op: sterad.OpRefund})
	if err != nil {
		violate("HARNESS: read refunds: %v", err)
		return verdict
	}
	var r *sterad.Transaction
	for _, x := range refunds {
		if x.TerminalID == m.TerminalID && x.STAN == m.STAN && x.Transmitted.Equal(m.Transmitted) {
			r = x
		}
	}
	if r == nil {
		violate("UNJOURNALED: a refund was sent (%s STAN %s ¥%s) that sterad has not journaled", m.TerminalID, m.STAN, m.Amount)
		return verdict
	}
	orig, err := db.Transaction(ctx, r.Original)
	if err != nil {
		violate("HARNESS: refund %s: original %s: %v", r.ID, r.Original, err)
		return verdict
	}
	ledger := h.host.Ledger()
	e, ok := hostEntry(ledger, orig)
	if !ok {
		// The host has not heard of the charge yet (its advice is still
		// owed): judged at the next settle, once it has.
		early, earlyRefund = orig.ID, r.ID
		return verdict
	}
	if !e.Counted {
		violate("REFUND-SENT: refund %s of ¥%s was sent to the host for %s %s, which the host does not hold as a charge (host status %s, code %s)",
			r.ID, r.Amount, orig.Op, orig.ID, e.Status, e.Response)
		return verdict
	}
	var refunded int64
	for _, x := range refunds {
		if x.Original != orig.ID || x.ID == r.ID {
			continue
		}
		if xe, ok := hostEntry(ledger, x); ok && xe.Counted {
			refunded += xe.Amount.Minor()
		}
	}
	if refunded+m.Amount.Minor() > e.Amount.Minor() {
		violate("REFUND-SENT: refund %s of ¥%s was sent to the host for %s %s of ¥%s, of which the host already refunded ¥%d",
			r.ID, r.Amount, orig.Op, orig.ID, e.Amount, refunded)
	}
	return verdict
}

// hostEntry returns the host's financial entry for a sterad transaction:
// same terminal ID, STAN and amount.
func hostEntry(l acquirer.Ledger, t *sterad.Transaction) (acquirer.Transaction, bool) {
	if t.STAN == 0 {
		return acquirer.Transaction{}, false
	}
	for i := len(l.Transactions) - 1; i >= 0; i-- {
		e := l.Transactions[i]
		if e.Terminal == t.TerminalID && e.STAN == t.STAN.String() && e.Amount.Minor() == t.Amount.Minor() {
			return e, true
		}
	}
	return acquirer.Transaction{}, false
}

func removeAll(dir string) { os.RemoveAll(dir) }
