package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sterad/sterad"
)

// journal owns the store and the locks every write takes: the keyed
// locks (per idempotency key, reservation and transaction) and the batch
// lock. It is the one way the flows write: modify (a transaction and what
// its change touches, under its locks, retried from fresh records when the
// store finds a copy stale) and apply (other records). Reads may go to the
// store directly. It calls nothing but the store.
//
// Lock order, everywhere: idempotency key, reservation, transaction, its
// original, batch.
type journal struct {
	env
	store sterad.Store
	locks keyedMutex // per transaction, reservation, idempotency key
	held  heldRecords

	// batchMu orders batch assignment against batch close: requests hold
	// it shared from reading the open batch until their journal commit;
	// the close holds it to switch batches. It is taken after any
	// transaction lock.
	batchMu sync.RWMutex
}

func newJournal(e env, store sterad.Store) *journal { return &journal{env: e, store: store} }

// lock takes the keyed lock key ("txn:", "ref:" or "idem:" and the ID) and
// returns an idempotent unlock.
func (j *journal) lock(key string) func() { return j.locks.lock(key) }

// shareBatch holds the open batch until the returned func: no batch
// switch happens in between.
func (j *journal) shareBatch() func() {
	j.batchMu.RLock()
	return j.batchMu.RUnlock
}

// holdBatch holds the batch lock exclusively, to switch batches.
func (j *journal) holdBatch() func() {
	j.batchMu.Lock()
	return j.batchMu.Unlock
}

// apply commits a change that is not a transaction's (batches, queue
// items, reservations, a new transaction): the caller holds its locks.
func (j *journal) apply(ctx context.Context, c sterad.Change) error {
	if err := j.store.Apply(ctx, c); err != nil {
		j.held.forget(c.Put)
		return err
	}
	j.held.keep(c.Put)
	return nil
}

// load returns transaction id to be changed under its lock: the copy the
// journal committed last when it holds one (no read, no decoding), the
// stored record otherwise. A copy that someone else has written since is
// refused by the store's version check (ErrStale), and modify then reads
// the store.
func (j *journal) load(ctx context.Context, id string) (*sterad.Transaction, error) {
	if t := j.held.get(id); t != nil {
		return t, nil
	}
	return j.store.Transaction(ctx, id)
}

// committed returns transaction id as its flow left it: the journal's last
// committed copy, or the stored record. For the answer to the request that
// started the flow, right after it ends.
func (j *journal) committed(ctx context.Context, id string) (*sterad.Transaction, error) {
	if t := j.held.get(id); t != nil {
		return t, nil
	}
	return j.transaction(ctx, id)
}

// transaction returns a transaction by ID, as the API shows it.
func (j *journal) transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	t, err := j.store.Transaction(ctx, id)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_transaction", "unknown transaction %q", id)
	}
	return t, err
}

// lockedOriginal loads t's original into the change. The caller holds t's
// lock; the original's lock is taken for the rest of the modify call.
func (j *journal) lockedOriginal(ctx context.Context, t *sterad.Transaction, c *txChange) (*sterad.Transaction, error) {
	for _, x := range c.Put {
		if x.ID == t.Original {
			return x, nil
		}
	}
	unlock := j.locks.lock("txn:" + t.Original)
	c.unlocks = append(c.unlocks, unlock)
	o, err := j.load(ctx, t.Original)
	if err != nil {
		return nil, fmt.Errorf("load original %s: %w", t.Original, err)
	}
	c.Put = append(c.Put, o)
	return o, nil
}

// txChange is a Change being built under transaction locks.
type txChange struct {
	sterad.Change
	unlocks []func()
}

// modify loads transaction id under its lock, lets fn change it (and add
// to the change), and commits. It returns the transaction as committed
// and the change (whose Enqueue items carry the Seq the store assigned).
//
// The store refuses a stale copy of any record the change puts (ErrStale:
// someone wrote it since it was read). modify then reads everything again
// and runs fn once more, so fn must decide from the records it is given,
// never from what an earlier call saw.
func (j *journal) modify(ctx context.Context, id string, fn func(t *sterad.Transaction, c *txChange) error) (*sterad.Transaction, *txChange, error) {
	defer j.lockReservationOf(ctx, id)() // before the transaction's: see journal (lock order)
	unlock := j.locks.lock("txn:" + id)
	defer unlock()
	for attempt := 1; ; attempt++ {
		t, c, err := j.modifyOnce(ctx, id, fn)
		if !errors.Is(err, sterad.ErrStale) || attempt == maxStaleRetries {
			return t, c, err
		}
		j.held.forget(c.Put)
		j.log.Warn("record changed while it was being updated: reading it again", "txn", id, "attempt", attempt)
	}
}

// maxStaleRetries bounds modify's re-reads: only a writer that ignores
// the locks can make one fail, so a few are plenty.
const maxStaleRetries = 5

func (j *journal) modifyOnce(ctx context.Context, id string, fn func(t *sterad.Transaction, c *txChange) error) (*sterad.Transaction, *txChange, error) {
	t, err := j.load(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", id, err)
	}
	c := &txChange{Change: sterad.Change{Put: []*sterad.Transaction{t}}}
	defer func() {
		for _, u := range c.unlocks {
			u()
		}
		c.unlocks = nil
	}()
	if err := fn(t, c); err != nil {
		// fn may have changed the copies it was given: they are not the
		// stored records.
		j.held.forget(c.Put)
		return t, c, err
	}
	if err := j.apply(ctx, c.Change); err != nil {
		return t, c, err
	}
	return t, c, nil
}

// cardOf opens the card a later message of t carries: t's own copy, or its
// original's (a void uses the voided transaction's card). nil when the
// store no longer holds one.
func (j *journal) cardOf(ctx context.Context, t, orig *sterad.Transaction) (*sterad.Card, error) {
	owner := t.ID
	if t.Op == sterad.OpVoid && orig != nil {
		owner = orig.ID
	}
	c, err := j.store.OpenCard(ctx, owner)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open card of %s: %w", owner, err)
	}
	return c, nil
}

// originalOf loads t's original transaction, nil when it has none.
func (j *journal) originalOf(ctx context.Context, t *sterad.Transaction) (*sterad.Transaction, error) {
	if t.Original == "" {
		return nil, nil
	}
	o, err := j.store.Transaction(ctx, t.Original)
	if err != nil {
		return nil, fmt.Errorf("load original %s: %w", t.Original, err)
	}
	return o, nil
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

// lockReservationOf locks the reservation that transaction id's outcome
// may change (a card check that guarantees it, a no-show charge, a
// check-in at a terminal) and returns the unlock; it does nothing for
// other transactions. A transaction's op, reference and terminal never
// change once it is created, so they are read before its own lock, which
// comes after the reservation's.
func (j *journal) lockReservationOf(ctx context.Context, id string) func() {
	op, ref, term, ok := j.held.identity(id)
	if !ok {
		t, err := j.store.Transaction(ctx, id)
		if err != nil {
			return func() {}
		}
		op, ref, term = t.Op, t.Reference, t.Terminal
	}
	if ref == "" {
		return func() {}
	}
	switch {
	case op == sterad.OpCardCheck, op == sterad.OpNoShow, (op == sterad.OpPreauth || op == sterad.OpSale) && term != "":
		return j.locks.lock("ref:" + ref)
	}
	return func() {}
}
