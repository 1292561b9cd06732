package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// Defaults of Config.
const (
	DefaultMCC = "7011" // lodging
	// DefaultTerminalWait is how long a flow waits for a terminal whose
	// link failed mid-transaction to come back before leaving the
	// transaction to an operator.
	DefaultTerminalWait = 30 * time.Second
	// DefaultRetryInterval is how often queued reversals and advices are
	// retried while the acquirer does not answer them.
	DefaultRetryInterval = 5 * time.Second
	// DefaultNoShowCutoff: a no-show may be charged from 18:00 local time
	// on the arrival day.
	DefaultNoShowCutoff = 18 * time.Hour
	// DefaultVaultRetention: a guarantee card is kept at most 7 days after
	// the check-out day.
	DefaultVaultRetention = 7 * 24 * time.Hour
	// DefaultPurgeInterval: the vault is purged hourly.
	DefaultPurgeInterval = time.Hour
	// DefaultStopGrace is how long Stop lets flows in flight finish: the
	// acquirer client's default timeout (15 s) and 5 s to journal the
	// answer and show it at the terminal.
	DefaultStopGrace = 20 * time.Second
)

// DefaultCompletionTolerance: a completion may exceed the authorized
// total by at most 15 %.
var DefaultCompletionTolerance = decimal.RequireFromString("1.15")

// Config is the merchant's configuration of the flows.
type Config struct {
	MerchantID          string          // DE 42
	VirtualTerminalID   string          // DE 41 of transactions not made at a terminal
	Currency            sterad.Currency // default JPY
	Location            *time.Location  // merchant local time (DE 12/13, dates); default Asia/Tokyo
	MCC                 string          // DE 18; default 7011
	CompletionTolerance decimal.Decimal // final amount ≤ authorized total × this; default 1.15
	TerminalWait        time.Duration   // default DefaultTerminalWait
	RetryInterval       time.Duration   // default DefaultRetryInterval
	// NoShowCutoff is the local time of day on the arrival day from which
	// a no-show may be charged (the card brands' rule: 18:00).
	NoShowCutoff time.Duration
	// VaultRetention is how long after the check-out day a guarantee card
	// is kept at most (default 7 days).
	VaultRetention time.Duration
	// PurgeInterval is how often the vault and the card store are purged
	// (default hourly).
	PurgeInterval time.Duration
	// Offline are the stand-in limits (default DefaultOfflineLimits).
	Offline sterad.OfflineLimits
	// Cutoff is the local time of day of the nightly batch close
	// (default 02:00); negative disables the nightly close.
	Cutoff time.Duration
	// SettleTimeout bounds how long a batch close waits for the batch's
	// transactions in flight (default DefaultSettleTimeout).
	SettleTimeout time.Duration
	// Summarize computes a closing batch's totals by business day and
	// brand for the settlement report (the settlement package's).
	Summarize func([]*sterad.Transaction) []sterad.DayTotals
	// StopGrace bounds how long Stop lets flows in flight finish their
	// acquirer exchange and journal its answer before it cancels them
	// (default DefaultStopGrace; the daemon uses the acquirer timeout + 5 s).
	StopGrace time.Duration
}

// Deps are the adapters the gateway drives.
type Deps struct {
	Store     sterad.Store
	Acquirer  sterad.Acquirer
	Terminals []sterad.Terminal
	Clock     sterad.Clock
	Logger    *slog.Logger
	NewID     func() string // unique, sortable transaction IDs
}

// Gateway runs the flows: it validates requests, journals transactions,
// drives terminals and the acquirer, and recovers after a crash.
type Gateway struct {
	cfg      Config
	store    sterad.Store
	acquirer sterad.Acquirer
	terms    map[string]sterad.Terminal
	termIDs  []string
	clock    sterad.Clock
	log      *slog.Logger
	newID    func() string

	ctx    context.Context // lifetime of flows: the daemon's, not a request's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	busy     map[string]string        // terminal ID → transaction in progress
	inflight map[string]chan struct{} // transaction ID → closed when its flow ends
	locks    keyedMutex               // per transaction, per idempotency key

	// batchMu orders batch assignment against batch close: requests hold
	// it shared from reading the open batch until their journal commit;
	// the close holds it to switch batches. It is taken after any
	// transaction lock (lock order: idempotency key, reservation,
	// transaction, original, batch).
	batchMu sync.RWMutex

	standInMu  sync.Mutex                   // orders stand-in decisions against the offline limits
	closeMu    sync.Mutex                   // one batch close at a time
	progress   map[int]sterad.BatchProgress // batch closes under way (under mu)
	kick       chan struct{}                // wakes the forwarder
	forwarding map[string]bool              // transactions whose queued message is in flight (under mu)
	drainMu    sync.Mutex                   // one queue drain at a time

	// The batch loop is the one runner of batch closes.
	closeAsk   chan struct{}    // wakes the batch loop: a close was asked for
	closeNext  *sterad.CloseRun // asked for, not started yet (under mu)
	closeCur   *sterad.CloseRun // under way (under mu)
	closeEnded bool             // the batch loop has ended (under mu)

	stopping bool           // Stop has begun: new requests are refused (under mu)
	submits  sync.WaitGroup // Submit calls admitted before Stop
	stopOnce sync.Once
}

// New checks the configuration and returns a gateway. Call Start
// before submitting requests.
func New(cfg Config, d Deps) (*Gateway, error) {
	if d.Store == nil || d.Acquirer == nil || d.NewID == nil {
		return nil, errors.New("gateway: store, acquirer and NewID are required")
	}
	if cfg.MerchantID == "" || cfg.VirtualTerminalID == "" {
		return nil, errors.New("gateway: merchant ID and virtual terminal ID are required")
	}
	if cfg.Currency.Code == "" {
		cfg.Currency = sterad.JPY
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			return nil, fmt.Errorf("gateway: load Asia/Tokyo: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.MCC == "" {
		cfg.MCC = DefaultMCC
	}
	if cfg.CompletionTolerance.IsZero() {
		cfg.CompletionTolerance = DefaultCompletionTolerance
	}
	if cfg.TerminalWait <= 0 {
		cfg.TerminalWait = DefaultTerminalWait
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.NoShowCutoff <= 0 {
		cfg.NoShowCutoff = DefaultNoShowCutoff
	}
	if cfg.VaultRetention <= 0 {
		cfg.VaultRetention = DefaultVaultRetention
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
	}
	if cfg.Offline == (sterad.OfflineLimits{}) {
		cfg.Offline = sterad.DefaultOfflineLimits()
	}
	if cfg.Cutoff == 0 {
		cfg.Cutoff = DefaultCutoff
	}
	if cfg.SettleTimeout <= 0 {
		cfg.SettleTimeout = DefaultSettleTimeout
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if d.Clock == nil {
		d.Clock = sterad.SystemClock{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg: cfg, store: d.Store, acquirer: d.Acquirer, clock: d.Clock, log: d.Logger, newID: d.NewID,
		terms: map[string]sterad.Terminal{}, busy: map[string]string{}, inflight: map[string]chan struct{}{},
		kick: make(chan struct{}, 1), closeAsk: make(chan struct{}, 1),
	}
	for _, t := range d.Terminals {
		id := t.Info().ID
		if _, dup := g.terms[id]; dup {
			return nil, fmt.Errorf("gateway: terminal %s configured twice", id)
		}
		g.terms[id] = t
		g.termIDs = append(g.termIDs, id)
	}
	slices.Sort(g.termIDs)
	return g, nil
}

// Start recovers the transactions a crash interrupted and starts the
// store-and-forward, purge and batch loops. Flows run until ctx ends or
// Stop; Stop waits for them.
func (g *Gateway) Start(ctx context.Context) error {
	g.ctx, g.cancel = context.WithCancel(ctx)
	if _, err := g.store.CurrentBatch(ctx); err != nil {
		return fmt.Errorf("open batch: %w", err)
	}
	if err := g.recover(g.ctx); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	// The batch loop also runs without a nightly close: it runs and
	// retries the closes asked for by the API.
	for _, loop := range []func(context.Context){g.forwardLoop, g.purgeLoop, g.batchLoop} {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			loop(g.ctx)
		}()
	}
	return nil
}

// Stop stops the gateway. New requests are refused with ErrStopping at
// once; flows in flight may finish (a request with the acquirer gets its
// answer journaled) for up to StopGrace; then what remains is cancelled,
// left to the recovery at the next start, and Stop waits for every
// goroutine of the gateway, the batch close included. Close the acquirer
// and the store only after Stop. Stop may be called more than once.
func (g *Gateway) Stop() {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		g.stopping = true
		g.mu.Unlock()
		if g.ctx != nil && g.ctx.Err() == nil {
			g.drainFlows(g.cfg.StopGrace)
		}
		if g.cancel != nil {
			g.cancel()
		}
		g.wg.Wait()
	})
}

// drainFlows waits until the requests admitted before Stop and every flow
// in flight have ended, or grace has passed.
func (g *Gateway) drainFlows(grace time.Duration) {
	idle := make(chan struct{})
	go func() { // ends at the latest once Stop cancels the flows
		defer close(idle)
		g.submits.Wait()
		for {
			g.mu.Lock()
			var flows []chan struct{}
			for _, ch := range g.inflight {
				flows = append(flows, ch)
			}
			g.mu.Unlock()
			if len(flows) == 0 {
				return
			}
			for _, ch := range flows {
				<-ch
			}
		}
	}()
	// The grace is a bound on the shutdown in real time, like the
	// acquirer's timeout: not business time from the injected clock.
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		g.mu.Lock()
		n := len(g.inflight)
		g.mu.Unlock()
		g.log.Warn("stop: grace period over, cancelling the flows still running (recovered at the next start)", "grace", grace, "flows", n)
	}
}

// admit lets a request in unless the gateway is stopping; call the
// returned func when the request is done.
func (g *Gateway) admit() (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return nil, sterad.ErrStopping
	}
	g.submits.Add(1)
	return g.submits.Done, nil
}

// Config returns the effective configuration.
func (g *Gateway) Config() Config { return g.cfg }

// Transaction returns a transaction by ID.
func (g *Gateway) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	t, err := g.store.Transaction(ctx, id)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_transaction", "unknown transaction %q", id)
	}
	return t, err
}

// Transactions searches transactions.
func (g *Gateway) Transactions(ctx context.Context, f sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	if f.Location == nil {
		f.Location = g.cfg.Location
	}
	return g.store.Transactions(ctx, f)
}

// Terminals describes every configured terminal, in ID order.
func (g *Gateway) Terminals() []sterad.TerminalInfo {
	out := make([]sterad.TerminalInfo, 0, len(g.termIDs))
	for _, id := range g.termIDs {
		info := g.terms[id].Info()
		g.mu.Lock()
		if txn := g.busy[id]; txn != "" && info.State != sterad.TerminalOffline {
			info.State, info.CurrentTxn = sterad.TerminalBusy, txn
		}
		g.mu.Unlock()
		out = append(out, info)
	}
	return out
}

// OpenBatch returns the batch new financial transactions go to.
func (g *Gateway) OpenBatch(ctx context.Context) (*sterad.Batch, error) {
	return g.store.CurrentBatch(ctx)
}

// Acquirer returns the acquirer link's status.
func (g *Gateway) Acquirer() sterad.LinkStatus { return g.acquirer.Status() }

// Wait blocks until the flow of transaction id has ended (or ctx ends) and
// returns the transaction as it is then.
func (g *Gateway) Wait(ctx context.Context, id string) (*sterad.Transaction, error) {
	g.mu.Lock()
	done := g.inflight[id]
	g.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return g.Transaction(context.WithoutCancel(ctx), id)
}

// Submit validates a request, journals the new transaction and starts its
// flow. With r.Wait it returns once the transaction is final; otherwise at
// once. replay is true when an Idempotency-Key returned an existing
// transaction: nothing new was started.
func (g *Gateway) Submit(ctx context.Context, r sterad.Request) (t *sterad.Transaction, replay bool, err error) {
	leave, err := g.admit()
	if err != nil {
		return nil, false, err
	}
	defer leave()
	now := g.clock.Now()
	p, err := g.validate(r, now)
	if err != nil {
		return nil, false, err
	}

	var idem *sterad.IdempotencyRecord
	if r.IdempotencyKey != "" {
		if len(r.IdempotencyKey) > 255 {
			return nil, false, sterad.Errorf(sterad.EInvalid, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters")
		}
		unlock := g.locks.lock("idem:" + r.IdempotencyKey)
		defer unlock()
		fp := g.store.MAC(p.fingerprint())
		rec, err := g.store.Idempotency(ctx, r.IdempotencyKey)
		switch {
		case err == nil:
			if rec.Fingerprint != fp {
				return nil, false, sterad.Errorf(sterad.EConflict, "idempotency_key_reused", "Idempotency-Key %q was used for a different request", r.IdempotencyKey)
			}
			unlock()
			if r.Wait {
				t, err = g.Wait(ctx, rec.TxnID)
			} else {
				t, err = g.Transaction(ctx, rec.TxnID)
			}
			return t, true, err
		case !errors.Is(err, sterad.ErrNotFound):
			return nil, false, err
		}
		idem = &sterad.IdempotencyRecord{Key: r.IdempotencyKey, Fingerprint: fp, CreatedAt: now}
	}

	start, err := g.begin(ctx, p, now, idem)
	if err != nil {
		return nil, false, err
	}
	t = start.txn
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.run(start)
	}()
	if !r.Wait {
		return t, false, nil
	}
	t, err = g.Wait(ctx, t.ID)
	if err == nil && start.err() != nil {
		return t, false, start.err()
	}
	return t, false, err
}

// started is a journaled transaction and what its flow needs.
type started struct {
	txn  *sterad.Transaction
	plan *plan
	msg  *sterad.HostMessage // the journaled request, for ops that need no card read
	card *sterad.Card        // in memory only: keyed card or the original's card

	mu      sync.Mutex
	failure error // an error the API returns along with the transaction (terminal busy)
}

func (s *started) setErr(err error) {
	s.mu.Lock()
	s.failure = err
	s.mu.Unlock()
}

func (s *started) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// begin checks the request against stored state and journals the new
// transaction, with the request itself when no card has to be read first.
// Nothing is stored when it fails.
func (g *Gateway) begin(ctx context.Context, p *plan, now time.Time, idem *sterad.IdempotencyRecord) (*started, error) {
	t := &sterad.Transaction{
		ID: g.newID(), Op: p.op, Status: sterad.StatusPending, Step: sterad.StepCreated,
		Amount: p.amount, Currency: p.amount.Currency.Code,
		Terminal: p.termID, TerminalID: p.termID, Reference: p.reference, Stay: p.stay,
		Token: p.token, CreatedAt: now, UpdatedAt: now,
	}
	if t.TerminalID == "" {
		t.TerminalID = g.cfg.VirtualTerminalID
	}
	if idem != nil {
		idem.TxnID = t.ID
		t.IdempotencyKey = idem.Key
	}
	s := &started{txn: t, plan: p, card: p.card}
	change := sterad.Change{Idempotency: idem}

	// Locks, in the one order used everywhere (idempotency key,
	// reservation, transaction, its original, batch): the reservation of a
	// no-show, the original of a linked op, and the batch — the batch a
	// request joins, and a void's check that its original's batch is still
	// open, hold until this transaction is committed.
	if p.op == sterad.OpNoShow {
		defer g.locks.lock("ref:" + p.reference)()
	}
	if p.op.NeedsOriginal() {
		defer g.locks.lock("txn:" + p.originalID)()
	}
	g.batchMu.RLock()
	defer g.batchMu.RUnlock()

	if p.op == sterad.OpCardCheck && !g.acquirer.Status().Online {
		return nil, sterad.Errorf(sterad.EUnavailable, "acquirer_offline", "a card check needs the acquirer, which is unreachable now: try again when sterad status shows it online")
	}
	if p.op == sterad.OpNoShow {
		if err := g.checkNoShow(ctx, p, t, &change, now); err != nil {
			return nil, err
		}
	}

	// The terminal: known, online, and free.
	if p.term != nil {
		if p.term.Info().State == sterad.TerminalOffline {
			return nil, sterad.ErrTerminalOffline
		}
		g.mu.Lock()
		if g.busy[p.termID] != "" {
			g.mu.Unlock()
			return nil, sterad.ErrTerminalBusy
		}
		g.busy[p.termID] = t.ID
		g.mu.Unlock()
	}
	release := func() {
		if p.term != nil {
			g.mu.Lock()
			delete(g.busy, p.termID)
			g.mu.Unlock()
		}
	}

	// Ops on an original: lock it, check its state, and update it in the
	// same commit that creates this transaction.
	if p.op.NeedsOriginal() {
		orig, err := g.store.Transaction(ctx, p.originalID)
		if errors.Is(err, sterad.ErrNotFound) {
			release()
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_original", "unknown original transaction %q", p.originalID)
		}
		if err != nil {
			release()
			return nil, err
		}
		p.original = orig
		if err := g.admitLink(ctx, p, t); err != nil {
			release()
			return nil, err
		}
		change.Put = append(change.Put, orig)
	}
	change.Put = append([]*sterad.Transaction{t}, change.Put...)

	// Requests that need no card read are journaled now, with their
	// STAN and DE 7, in the same commit that creates them.
	if p.term == nil {
		card, err := g.cardForNew(ctx, p)
		if err != nil {
			release()
			return nil, err
		}
		s.card = card
		msg, err := g.prepare(ctx, t, card, p.original, now)
		if err != nil {
			release()
			return nil, err
		}
		s.msg = msg
		if card != nil && keepsOwnCard(t.Op) {
			change.SealCards = append(change.SealCards, sterad.SealCard{Owner: t.ID, Card: card})
			t.HasCard = true
		}
	} else {
		t.Step = sterad.StepReading
	}
	t.Record(t.Step, now, "created")
	if err := g.store.Apply(ctx, change); err != nil {
		release()
		return nil, err
	}
	g.mu.Lock()
	g.inflight[t.ID] = make(chan struct{})
	g.mu.Unlock()
	return s, nil
}

// keepsOwnCard reports whether a transaction keeps its own encrypted copy
// of the card: everything whose own later messages (reversal, batch
// upload) carry DE 2. A void uses its original's card.
func keepsOwnCard(op sterad.Op) bool { return op != sterad.OpVoid }

// finish ends a flow: the terminal is free and waiters wake up.
func (g *Gateway) finish(t *sterad.Transaction) {
	g.mu.Lock()
	if t.Terminal != "" && g.busy[t.Terminal] == t.ID {
		delete(g.busy, t.Terminal)
	}
	if ch := g.inflight[t.ID]; ch != nil {
		close(ch)
		delete(g.inflight, t.ID)
	}
	g.mu.Unlock()
}

// keyedMutex is a set of mutexes created on demand, one per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns an idempotent unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Unlock()
			k.mu.Lock()
			e.refs--
			if e.refs == 0 {
				delete(k.m, key)
			}
			k.mu.Unlock()
		})
	}
}
