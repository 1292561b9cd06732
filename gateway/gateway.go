package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sterad/sterad"
)

// Gateway is the daemon's one entry to the flows: what the API and the
// command line ask for. It holds no state of its own: each part below owns
// its records, maps and locks, and the Gateway only builds them (New),
// starts and stops them, and forwards each call to its owner.
//
// The parts, and whom each may call (never the other way round):
//
//	requests   validates a request, journals it, runs its flow   → terminals, forwarder, vault, sender, journal, flights
//	terminals  the card-present flow, busy terminals, reconciling → forwarder, outcomes, sender, journal
//	recovery   after a restart: finish or reverse what a crash cut → terminals, outcomes, journal, flights
//	closer     the batch close runner: settle, reconcile, upload   → forwarder, sender, journal, flights
//	forwarder  store and forward: the queue, its drain and claims  → outcomes, sender, journal
//	outcomes   what an answer (or its absence) does to the records → vault, journal
//	vault      reservations, guarantee cards, tokens, purge        → journal
//	sender     builds and sends host messages, checks the answers  → journal
//	journal    the store, the keyed locks, modify: the one writer
//	flights    the flows in flight, the daemon's context, stopping
//	watch      what the status and the holds list, kept from every commit
type Gateway struct {
	cfg Config
	j   *journal
	sd  *sender
	oc  *outcomes
	vt  *vault
	fw  *forwarder
	tm  *terminals
	rq  *requests
	cl  *closer
	rc  *recovery
	fl  *flights
	wt  *watch
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
	switch cfg.CardData {
	case "":
		cfg.CardData = sterad.CardDataBlind
	case sterad.CardDataBlind, sterad.CardDataClear:
	default:
		return nil, fmt.Errorf("gateway: card data mode %q: use %s or %s", cfg.CardData, sterad.CardDataBlind, sterad.CardDataClear)
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
	if cfg.HoldAlert <= 0 {
		cfg.HoldAlert = sterad.DefaultHoldAlert
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
	g := &Gateway{cfg: cfg}
	e := env{cfg: &g.cfg, clock: d.Clock, log: d.Logger}
	// Built from the bottom up: each part gets the parts it may call.
	g.fl = newFlights(e)
	g.wt = newWatch()
	g.j = newJournal(e, watchedStore{Store: d.Store, w: g.wt})
	g.sd = &sender{env: e, acquirer: d.Acquirer, j: g.j}
	g.vt = &vault{env: e, j: g.j}
	g.oc = &outcomes{env: e, j: g.j, vt: g.vt}
	g.fw = newForwarder(e, g.j, g.sd, g.oc, &g.fl.exch)
	tm, err := newTerminals(e, d.Terminals, g.j, g.sd, g.oc, g.fw)
	if err != nil {
		return nil, err
	}
	g.tm = tm
	g.rq = &requests{env: e, newID: d.NewID, j: g.j, sd: g.sd, vt: g.vt, fw: g.fw, tm: g.tm, fl: g.fl}
	g.cl = newCloser(e, g.j, g.sd, g.fw, g.fl)
	g.rc = &recovery{env: e, j: g.j, oc: g.oc, tm: g.tm, fl: g.fl, wt: g.wt}
	return g, nil
}

// Start walks the store once, one record at a time (noting what the
// status, the holds and the metrics list, and what a crash interrupted),
// recovers the transactions a crash interrupted and starts the
// store-and-forward, purge and batch loops. Flows run until ctx ends or
// Stop; Stop waits for them.
func (g *Gateway) Start(ctx context.Context) error {
	fctx := g.fl.start(ctx)
	if _, err := g.j.store.CurrentBatch(ctx); err != nil {
		return fmt.Errorf("open batch: %w", err)
	}
	entries, err := g.j.store.Vault(ctx)
	if err != nil {
		return fmt.Errorf("read vault: %w", err)
	}
	rs, err := g.j.store.Reservations(ctx)
	if err != nil {
		return fmt.Errorf("read reservations: %w", err)
	}
	g.wt.noteVault(entries, rs)
	oldest, err := g.rc.recover(fctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	g.fw.primePark(g.rc.clock.Now(), oldest)
	// The batch loop also runs without a nightly close: it runs and
	// retries the closes asked for by the API.
	for _, loop := range []func(context.Context){g.fw.loop, g.vt.loop, g.cl.loop} {
		g.fl.goRun(func() { loop(fctx) })
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
	g.fl.stop(g.cfg.StopGrace)
}

// Config returns the effective configuration.
func (g *Gateway) Config() Config { return g.cfg }

// Transaction returns a transaction by ID.
func (g *Gateway) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	return g.j.transaction(ctx, id)
}

// Transactions searches transactions.
func (g *Gateway) Transactions(ctx context.Context, f sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	if f.Location == nil {
		f.Location = g.cfg.Location
	}
	return g.j.store.Transactions(ctx, f)
}

// OpenBatch returns the batch new financial transactions go to.
func (g *Gateway) OpenBatch(ctx context.Context) (*sterad.Batch, error) {
	return g.j.store.CurrentBatch(ctx)
}

// Acquirer returns the acquirer link's status.
func (g *Gateway) Acquirer() sterad.LinkStatus { return g.sd.status() }

// Alerts returns the transactions the hotel must act on: offline approvals
// the issuer later declined, completions withdrawn because their offline
// pre-authorization was declined (collect another way), and messages owed
// to the acquirer whose kept card cannot be read (a lost key).
//
// It reads only those transactions: the watch knows which they are.
func (g *Gateway) Alerts(ctx context.Context) ([]*sterad.Transaction, error) {
	out, err := g.wt.load(ctx, g.j.store, g.wt.ids(declinedSet), declinedAlert)
	if err != nil {
		return nil, err
	}
	// Transactions still owed to the acquirer that cannot go on alone
	// (a kept card that cannot be read).
	open, err := g.wt.load(ctx, g.j.store, g.wt.ids(flaggedSet), flaggedAlert)
	if err != nil {
		return nil, err
	}
	out = append(out, open...)
	// Pre-authorizations held longer than reservations.hold_alert.
	old, err := g.holdAlerts(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, old...), nil
}

// Wait blocks until the flow of transaction id has ended (or ctx ends) and
// returns the transaction as it is then.
func (g *Gateway) Wait(ctx context.Context, id string) (*sterad.Transaction, error) {
	return g.rq.wait(ctx, id)
}

// Submit validates a request, journals the new transaction and starts its
// flow. With r.Wait it returns once the transaction is final; otherwise at
// once. replay is true when an Idempotency-Key returned an existing
// transaction: nothing new was started.
func (g *Gateway) Submit(ctx context.Context, r sterad.Request) (t *sterad.Transaction, replay bool, err error) {
	return g.rq.submit(ctx, r)
}

// Terminals describes every configured terminal, in ID order.
func (g *Gateway) Terminals() []sterad.TerminalInfo { return g.tm.list() }

// TerminalReconnected is called when a terminal's link is back (HELLO
// answered). Transactions on it left for an operator or interrupted are
// reconciled now.
func (g *Gateway) TerminalReconnected(id string, bootChanged bool) { g.rc.reconnected(id, bootChanged) }

// LinkChanged tells the gateway that the acquirer link changed state; when
// it comes back, the queue drains at once.
func (g *Gateway) LinkChanged(s sterad.LinkStatus) { g.fw.linkChanged(s) }

// Queue lists the store-and-forward queue.
func (g *Gateway) Queue(ctx context.Context) ([]sterad.QueueItem, error) { return g.j.store.Queue(ctx) }

// QueueCounts counts the store-and-forward queue and its parked items
// without reading it.
func (g *Gateway) QueueCounts(ctx context.Context) (sterad.QueueCounts, error) {
	return g.wt.queueCounts(), nil
}

// Flush forwards every queued item now, parked ones included, and returns
// how many were sent.
func (g *Gateway) Flush(ctx context.Context) (int, error) { return g.fw.flush(ctx) }

// Batches lists every batch; the open one's totals are computed now.
func (g *Gateway) Batches(ctx context.Context) ([]*sterad.Batch, error) { return g.cl.batches(ctx) }

// Batch returns one batch by number.
func (g *Gateway) Batch(ctx context.Context, n int) (*sterad.Batch, error) { return g.cl.batch(ctx, n) }

// Progress returns the progress of a close under way, if any.
func (g *Gateway) Progress(n int) (sterad.BatchProgress, bool) { return g.cl.progressOf(n) }

// ClosingNumber returns the batch a close started now would work on: the
// batch left closing, or the open one.
func (g *Gateway) ClosingNumber(ctx context.Context) (int, error) { return g.cl.closingNumber(ctx) }

// Closing returns the batch left closing (a close under way, or failing
// and waiting for its retry), or nil.
func (g *Gateway) Closing(ctx context.Context) (*sterad.Batch, error) { return g.cl.closing(ctx) }

// CloseBatch closes the open batch now (or finishes the batch a failed
// close left closing) and waits for that attempt. It returns the batch as
// it stands: closed, or closing with the reason in LastError along with
// the error; a failed close is retried by the batch loop. When ctx ends
// first the close goes on.
func (g *Gateway) CloseBatch(ctx context.Context) (*sterad.Batch, error) { return g.cl.closeBatch(ctx) }

// StartClose asks the batch loop to close the open batch (or to finish
// the batch left closing) now, and returns that attempt at once. A close
// already pending or under way is joined, not started again.
func (g *Gateway) StartClose(ctx context.Context) (*sterad.CloseRun, error) {
	return g.cl.startClose(ctx)
}

// Vault lists the guarantees kept and until when: cards (masked) and
// reservations guaranteed by their host token only (card-data-blind keeps
// no card, only tokens).
func (g *Gateway) Vault(ctx context.Context) ([]*sterad.VaultEntry, error) {
	entries, err := g.j.store.Vault(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := g.j.store.Reservations(ctx)
	if err != nil {
		return nil, err
	}
	kept := map[string]bool{}
	for _, e := range entries {
		kept[e.Reference] = true
	}
	for _, r := range rs {
		if guaranteedByToken(r) && !kept[r.Reference] {
			entries = append(entries, r.VaultEntry())
		}
	}
	return entries, nil
}

// VaultCount counts what Vault lists, without reading it.
func (g *Gateway) VaultCount(ctx context.Context) (int, error) { return g.wt.vaultCount(), nil }

// Reservations lists the reservations stored.
func (g *Gateway) Reservations(ctx context.Context) ([]*sterad.Reservation, error) {
	return g.j.store.Reservations(ctx)
}

// Reservation returns a reservation as stored.
func (g *Gateway) Reservation(ctx context.Context, ref string) (*sterad.Reservation, error) {
	return g.vt.reservation(ctx, ref)
}

// ReleaseVault releases the guarantee of a reservation that was
// cancelled: its card is destroyed and its token dies, nothing can be
// charged to it any more. It returns the vault entry that was kept.
func (g *Gateway) ReleaseVault(ctx context.Context, ref string) (*sterad.VaultEntry, error) {
	return g.vt.releaseVault(ctx, ref)
}

// Purge destroys every card no longer needed: guarantee cards and tokens
// past their retention (their reservations are released), and cards of
// pre-authorizations that were never completed once their stay's
// retention has passed. It runs every PurgeInterval and on demand.
func (g *Gateway) Purge(ctx context.Context) (*sterad.PurgeResult, error) { return g.vt.purge(ctx) }
