package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// requests owns the way in of a transaction: a request is validated
// (syntax against the configuration and the terminals), checked against
// the stored records (its original's links, its reservation, its
// terminal's being free), journaled, and its flow started: at a terminal
// (terminals), or sent at once (forwarder.exchange). It owns the ID source
// and no lock of its own: it takes the journal's, in the journal's order.
// It may call terminals, forwarder, vault, sender, journal and flights.
type requests struct {
	env
	newID func() string // unique, sortable transaction IDs
	j     *journal
	sd    *sender
	vt    *vault
	fw    *forwarder
	tm    *terminals
	fl    *flights
}

// wait blocks until the flow of transaction id has ended (or ctx ends) and
// returns the transaction as it is then.
func (rq *requests) wait(ctx context.Context, id string) (*sterad.Transaction, error) {
	rq.fl.wait(ctx, id)
	return rq.j.committed(context.WithoutCancel(ctx), id)
}

// finish ends a flow: the terminal is free and waiters wake up.
func (rq *requests) finish(t *sterad.Transaction) {
	if t.Terminal != "" {
		rq.tm.free(t.Terminal, t.ID)
	}
	rq.fl.done(t.ID)
}

// cardForNew returns the card a request without a terminal sends: the
// keyed card, or the card of its original while the store still holds it.
func (rq *requests) cardForNew(ctx context.Context, p *plan) (*sterad.Card, error) {
	if p.card != nil {
		return p.card, nil
	}
	if p.original == nil {
		return nil, nil
	}
	c, err := rq.j.store.OpenCard(ctx, p.original.ID)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, nil // linked by TI only
	}
	if err != nil {
		return nil, fmt.Errorf("open card of %s: %w", p.original.ID, err)
	}
	c.Entry = sterad.EntryKeyed
	return c, nil
}

// run is the flow of one transaction, on the daemon's context.
func (rq *requests) run(s *started) {
	t := s.txn
	defer rq.finish(t)
	defer s.card.Wipe()
	ctx := rq.fl.context()
	if s.plan.term != nil {
		rq.tm.runAtTerminal(ctx, s)
		return
	}
	if s.msg == nil {
		return // nothing to send (a guarantee by token)
	}
	rq.fw.exchange(ctx, t.ID, s.msg)
}

// submit validates a request, journals the new transaction and starts its
// flow. With r.Wait it returns once the transaction is final; otherwise at
// once. replay is true when an Idempotency-Key returned an existing
// transaction: nothing new was started.
func (rq *requests) submit(ctx context.Context, r sterad.Request) (t *sterad.Transaction, replay bool, err error) {
	admitted, err := rq.fl.admit()
	if err != nil {
		return nil, false, err
	}
	// Admitted until the flow has started (or nothing was started): a
	// stop waits for that, not for the flow's end.
	leave := sync.OnceFunc(admitted)
	defer leave()
	now := rq.clock.Now()
	p, err := rq.validate(r, now)
	if err != nil {
		return nil, false, err
	}

	replayed, idem, unlock, err := rq.idempotencyKey(ctx, r.IdempotencyKey, p.fingerprint(), now)
	defer unlock()
	if err != nil {
		return nil, false, err
	}
	if replayed != nil {
		unlock()
		leave()
		if r.Wait {
			t, err = rq.wait(ctx, replayed.TxnID)
		} else {
			t, err = rq.j.transaction(ctx, replayed.TxnID)
		}
		return t, true, err
	}

	var start *started
	switch p.op {
	case sterad.OpCancellation:
		start, err = rq.beginCancellation(ctx, p, now, idem)
	case sterad.OpAdjust:
		start, err = rq.beginAdjust(ctx, p, now, idem)
	default:
		start, err = rq.begin(ctx, p, now, idem)
	}
	if err != nil {
		return nil, false, err
	}
	t = start.txn
	rq.startFlows(start)
	leave()
	if !r.Wait {
		return t, false, nil
	}
	t, err = rq.wait(ctx, t.ID)
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

	// extra are the transactions journaled in the same commit whose
	// flows start with this one's (the refunds of deposits of a
	// cancellation, the further refunds of an amount change).
	extra []*started

	mu      sync.Mutex
	failure error // an error the API returns along with the transaction (terminal busy)
}

// startFlows starts the flows of s and of the transactions journaled with
// it.
func (rq *requests) startFlows(s *started) {
	for _, x := range s.extra {
		rq.fl.goRun(func() { rq.run(x) })
	}
	rq.fl.goRun(func() { rq.run(s) })
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
func (rq *requests) begin(ctx context.Context, p *plan, now time.Time, idem *sterad.IdempotencyRecord) (*started, error) {
	t := &sterad.Transaction{
		ID: rq.newID(), Op: p.op, Status: sterad.StatusPending, Step: sterad.StepCreated,
		Amount: p.amount, Currency: p.amount.Currency.Code,
		Terminal: p.termID, TerminalID: p.termID, Reference: p.reference, Stay: p.stay,
		Token: p.token, CreatedAt: now, UpdatedAt: now,
	}
	if t.TerminalID == "" {
		t.TerminalID = rq.cfg.VirtualTerminalID
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
	tokenGuarantee := p.op == sterad.OpCardCheck && p.token != ""
	if p.op == sterad.OpNoShow || tokenGuarantee || p.op == sterad.OpDeposit {
		defer rq.j.lock("ref:" + p.reference)()
	}
	if p.op.NeedsOriginal() {
		defer rq.j.lock("txn:" + p.originalID)()
	}
	defer rq.j.shareBatch()()

	if p.op == sterad.OpCardCheck && !tokenGuarantee && !rq.sd.online() {
		return nil, sterad.Errorf(sterad.EUnavailable, "acquirer_offline", "a card check needs the acquirer, which is unreachable now: try again when sterad status shows it online")
	}
	if p.op == sterad.OpNoShow {
		if err := rq.vt.checkNoShow(ctx, p, t, &change, now); err != nil {
			return nil, err
		}
	}
	if p.op == sterad.OpDeposit {
		if err := rq.vt.checkDeposit(ctx, p, t, &change, now); err != nil {
			return nil, err
		}
		s.card = p.card
	}
	if p.firstNight != nil {
		// The policy in force, shown to the guest with this card check.
		snap, err := sterad.NewPolicySnapshot(*rq.cfg.CancellationPolicy, *p.firstNight, now)
		if err != nil {
			return nil, err
		}
		t.Policy = snap
	}
	if tokenGuarantee {
		// A guarantee given as a host token (card-data-blind): the token
		// is bound to the reservation like one a card check obtained.
		// Nothing is sent: the host takes a token only in a charge
		// (docs/acquirer-protocol.md#messages), and judges it then.
		if err := rq.vt.checkGuaranteeToken(ctx, p.reference, p.token); err != nil {
			return nil, err
		}
		t.Entry = sterad.EntryToken
	}

	// The terminal: known, online, and free.
	if p.term != nil {
		if p.term.Info().State == sterad.TerminalOffline {
			return nil, sterad.ErrTerminalOffline
		}
		if !rq.tm.reserve(p.termID, t.ID) {
			return nil, sterad.ErrTerminalBusy
		}
	}
	release := func() {
		if p.term != nil {
			rq.tm.free(p.termID, t.ID)
		}
	}

	// Ops on an original: lock it, check its state, and update it in the
	// same commit that creates this transaction.
	if p.op.NeedsOriginal() {
		orig, err := rq.j.store.Transaction(ctx, p.originalID)
		if errors.Is(err, sterad.ErrNotFound) {
			release()
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_original", "unknown original transaction %q", p.originalID)
		}
		if err != nil {
			release()
			return nil, err
		}
		p.original = orig
		if err := rq.admitLink(ctx, p, t); err != nil {
			release()
			return nil, err
		}
		change.Put = append(change.Put, orig)
	}
	change.Put = append([]*sterad.Transaction{t}, change.Put...)

	// Requests that need no card read are journaled now, with their
	// STAN and DE 7, in the same commit that creates them.
	queued := false
	switch {
	case tokenGuarantee:
		tc := &txChange{Change: change}
		if err := rq.vt.vaultCard(ctx, t, tc, now); err != nil {
			return nil, err
		}
		change = tc.Change
		t.Step = sterad.StepDone
	case p.term == nil && p.original != nil && sterad.AwaitsHost(p.original):
		// The original waits for the acquirer (approved offline): this
		// message waits in the queue behind it, and is checked against
		// it again when it goes (LinkStillValid): a refund of a sale the
		// issuer then declines is never sent.
		card, err := rq.cardForNew(ctx, p)
		if err != nil {
			release()
			return nil, err
		}
		if card != nil && !card.Blind() && !rq.blind() && keepsOwnCard(t.Op) {
			change.SealCards = append(change.SealCards, sterad.SealCard{Owner: t.ID, Card: card})
			t.HasCard = true
		}
		card.Wipe()
		t.Step, t.Offline = sterad.StepQueued, !rq.sd.online()
		t.Reason = "waits for the acquirer to confirm the original's offline approval: it is sent after it, check its result later"
		change.Enqueue = append(change.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: sterad.QueueRequest, CreatedAt: now})
		queued = true
	case p.term == nil:
		card, err := rq.cardForNew(ctx, p)
		if err != nil {
			release()
			return nil, err
		}
		s.card = card
		msg, err := rq.sd.prepare(ctx, t, card, p.original, now)
		if err != nil {
			release()
			return nil, err
		}
		s.msg = msg
		if card != nil && !card.Blind() && !rq.blind() && keepsOwnCard(t.Op) {
			change.SealCards = append(change.SealCards, sterad.SealCard{Owner: t.ID, Card: card})
			t.HasCard = true
		}
	default:
		t.Step = sterad.StepReading
	}
	t.Record(t.Step, now, "created")
	if tokenGuarantee {
		t.Reason = "guaranteed by the token given: no card check was sent (the acquirer judges the token when it is charged)"
		if err := t.Transition(sterad.StatusApproved, sterad.StepDone, now, "guaranteed by its token"); err != nil {
			return nil, err
		}
	}
	if err := rq.j.apply(ctx, change); err != nil {
		release()
		return nil, err
	}
	rq.fl.add(t.ID)
	if queued {
		rq.fw.wake()
	}
	return s, nil
}

// keepsOwnCard reports whether a transaction keeps its own encrypted copy
// of the card: everything whose own later messages (reversal, batch
// upload) carry DE 2. A void uses its original's card.
func keepsOwnCard(op sterad.Op) bool { return op != sterad.OpVoid }

// idempotencyKey checks a request's Idempotency-Key against the keyed MAC
// of its fingerprint: a key already bound to the same request gives its
// record (replayed: nothing new may start); a new key gives the record to
// bind in the commit that creates the request (fresh); a key bound to
// another request is a conflict. The key stays locked until unlock
// (idempotent), so that two requests with one key never both start.
func (rq *requests) idempotencyKey(ctx context.Context, key string, fingerprint []byte, now time.Time) (replayed, fresh *sterad.IdempotencyRecord, unlock func(), err error) {
	unlock = func() {}
	if key == "" {
		return nil, nil, unlock, nil
	}
	if len(key) > 255 {
		return nil, nil, unlock, sterad.Errorf(sterad.EInvalid, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters")
	}
	unlock = rq.j.lock("idem:" + key)
	fp := rq.j.store.MAC(fingerprint)
	rec, err := rq.j.store.Idempotency(ctx, key)
	switch {
	case err == nil:
		if rec.Fingerprint != fp {
			return nil, nil, unlock, sterad.Errorf(sterad.EConflict, "idempotency_key_reused", "Idempotency-Key %q was used for a different request", key)
		}
		return rec, nil, unlock, nil
	case !errors.Is(err, sterad.ErrNotFound):
		return nil, nil, unlock, err
	}
	return nil, &sterad.IdempotencyRecord{Key: key, Fingerprint: fp, CreatedAt: now}, unlock, nil
}
