package offline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// Request states: a waiting request is claimed by the committer or
// cancelled by its caller, whichever comes first.
const (
	reqWaiting int32 = iota
	reqClaimed
	reqCancelled
)

type request struct {
	p     *prepared
	done  chan error // buffered: the committer never blocks on it
	state atomic.Int32
}

// errNothing rolls back a group in which every Change failed validation.
var errNothing = errors.New("nothing to commit")

// Apply writes c atomically and durably: when it returns nil all of c is
// on disk (fsynced), and when it returns an error none of it is. The
// fields are applied in the order Change declares them, so a Change that
// seals and destroys the same owner leaves no card.
//
// Validation errors are *sterad.Error: EInvalid for malformed input,
// EConflict "idempotency_conflict" when the key is already bound,
// EConflict "batch_open" when a second batch would be open, ENotFound
// "queue_item_not_found" when UpdateQueue or Dequeue names a missing item. ctx is
// honoured until the Change is taken into a commit; from then on its
// outcome stands and Apply returns it.
func (db *DB) Apply(ctx context.Context, c sterad.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if isEmpty(&c) {
		if err := db.enter(); err != nil {
			return err
		}
		db.leave()
		return nil
	}
	// Everything that does not depend on the stored state (checks,
	// encoding, card encryption) runs here, in the caller's goroutine,
	// so that the one committer does only what must be serial.
	p, err := prepare(&c, db.legacyJSON, db.pool)
	if err != nil {
		return err
	}
	defer p.wipe()
	if err := db.enter(); err != nil {
		p.release(db.pool)
		return err
	}
	if !db.opts.GroupCommit {
		defer db.leave()
		// One writer at a time, like bbolt's own lock, but a caller may
		// give up while it waits.
		select {
		case db.writer <- struct{}{}:
		case <-ctx.Done():
			p.release(db.pool)
			return ctx.Err()
		}
		defer func() {
			<-db.writer
			if db.pool != nil {
				db.pool.idle()
			}
		}()
		return db.commit([]*request{{p: p}})[0]
	}
	r := &request{p: p, done: make(chan error, 1)}
	select {
	case db.reqs <- r:
		db.leave()
	case <-ctx.Done():
		db.leave()
		p.release(db.pool)
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqWaiting, reqCancelled) {
			p.release(db.pool)
			return ctx.Err()
		}
		return <-r.done
	}
}

func isEmpty(c *sterad.Change) bool {
	return len(c.Put) == 0 && c.Idempotency == nil && len(c.SealCards) == 0 && len(c.DestroyCards) == 0 &&
		len(c.Enqueue) == 0 && len(c.UpdateQueue) == 0 && len(c.Dequeue) == 0 &&
		len(c.PutBatches) == 0 && len(c.PutVault) == 0 && len(c.DeleteVault) == 0 &&
		len(c.PutReservations) == 0 && len(c.PutVouchers) == 0
}

// committer takes every request waiting when it is free and commits them
// together. There is no delay: a lone request commits at once, and the
// requests that arrive during a commit make up the next group.
func (db *DB) committer() {
	defer close(db.committerDone)
	group := make([]*request, 0, maxGroup)
	for {
		r, ok := <-db.reqs
		if !ok {
			return
		}
		group = append(group[:0], r)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		n := 0
		for _, r := range group {
			if r.state.CompareAndSwap(reqWaiting, reqClaimed) {
				group[n] = r
				n++
			}
		}
		clear(group[n:])
		group = group[:n]
		if n == 0 {
			continue
		}
		if db.beforeCommit != nil {
			db.beforeCommit()
		}
		for i, err := range db.commit(group) {
			group[i].done <- err
		}
		clear(group)
		if db.pool != nil && len(db.reqs) == 0 {
			db.pool.idle()
		}
	}
}

// commit writes the card keys of group that were not written ahead, then
// commits group.
func (db *DB) commit(group []*request) []error {
	if err := db.writeKeys(group); err != nil {
		errs := make([]error, len(group))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	return db.commitGroup(group)
}

// writeKeys gives every card sealed by group a free key slot, writes its
// key there and syncs the key file once; cards sealed under a key from
// the pool need neither. When it fails, the group's slots are wiped and
// the group fails as a whole, like a failed commit.
func (db *DB) writeKeys(group []*request) error {
	var written []uint32
	err := func() error {
		for _, r := range group {
			for _, sc := range r.p.cards {
				if sc.pooled {
					continue // written and synced ahead
				}
				slot, err := db.keys.alloc()
				if err != nil {
					return err
				}
				written = append(written, slot)
				if err := db.keys.write(slot, sc.id, sc.key); err != nil {
					return err
				}
				sc.slot, sc.hasSlot = slot, true
				binary.BigEndian.PutUint32(sc.rec[1:5], slot)
			}
		}
		if len(written) == 0 {
			return nil
		}
		if err := db.keys.sync(); err != nil {
			return err
		}
		db.slotSyncs.Add(1)
		return nil
	}()
	if err != nil {
		for _, r := range group {
			for _, sc := range r.p.cards {
				if sc.pooled {
					written = append(written, sc.slot)
				}
			}
		}
		db.wipeSlots(written)
		db.log.Error("commit failed: writing card keys", slog.Int("changes", len(group)), slog.Any("err", err))
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

// commitGroup applies the Changes of group in one read-write transaction
// and returns each one's outcome. Each Change is validated against the
// transaction's state (which includes the Changes before it) before any of
// it is written, so a Change that fails validation fails alone. A failure
// to write fails the whole group. The group's card keys are already
// written and durable (writeKeys); the slots of a Change that is not
// committed are wiped.
func (db *DB) commitGroup(group []*request) []error {
	errs := make([]error, len(group))
	var slots slotLog
	applied := 0
	if slices.ContainsFunc(group, func(r *request) bool { return len(r.p.c.PutBatches) > 0 }) {
		db.openBatch.begin()
		defer db.openBatch.end()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		w := newWriter(db, tx, &slots)
		for i, r := range group {
			if err := w.validate(r.p); err != nil {
				errs[i] = err
				continue
			}
			if err := w.write(r.p); err != nil {
				return err
			}
			applied++
		}
		if applied == 0 {
			return errNothing
		}
		return nil
	})
	// Slots written for Changes that were not committed hold keys that no
	// record references.
	var unused []uint32
	for i, r := range group {
		if err == nil && errs[i] == nil {
			continue
		}
		for _, sc := range r.p.cards {
			if sc.hasSlot {
				unused = append(unused, sc.slot)
			}
		}
	}
	switch {
	case err == nil:
		db.commits.Add(1)
		db.applies.Add(uint64(applied))
		// The callers' copies are now the stored versions.
		for i, r := range group {
			if errs[i] == nil {
				for _, t := range r.p.c.Put {
					t.Version++
				}
				for _, b := range r.p.c.PutBatches {
					b.Version++
				}
				for _, x := range r.p.c.PutReservations {
					x.Version++
				}
				for _, x := range r.p.c.PutVouchers {
					x.Version++
				}
			}
		}
		db.wipeSlots(append(slots.released, unused...))
	case errors.Is(err, errNothing):
		db.wipeSlots(unused)
	default:
		db.wipeSlots(unused)
		db.log.Error("commit failed", slog.Int("changes", len(group)), slog.Any("err", err))
		err = fmt.Errorf("apply: %w", err)
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// wipeSlots zeroes slots, fsyncs and frees them. Slots it cannot wipe stay
// out of the free list; Open wipes them, as no record references them.
func (db *DB) wipeSlots(slots []uint32) {
	if len(slots) == 0 {
		return
	}
	err := db.keys.wipe(slots)
	if err == nil {
		err = db.keys.sync()
		db.slotSyncs.Add(1)
	}
	if err != nil {
		db.log.Error("wiping card key slots failed; they are wiped at the next open", slog.Int("slots", len(slots)), slog.Any("err", err))
		return
	}
	db.keys.release(slots)
}

// buckets of one read-write transaction.
type buckets struct {
	txns, byRef, byOrig, byBatch, byCreated, unfinished *bolt.Bucket
	idem, cards, queue, batches, batchNo, vault, meta   *bolt.Bucket
}

func openBuckets(tx *bolt.Tx) buckets {
	b := buckets{
		txns: tx.Bucket(bktTxns), byRef: tx.Bucket(bktByRef), byOrig: tx.Bucket(bktByOrig),
		byBatch: tx.Bucket(bktByBatch), byCreated: tx.Bucket(bktByCreated), unfinished: tx.Bucket(bktUnfinished),
		idem: tx.Bucket(bktIdem), cards: tx.Bucket(bktCards), queue: tx.Bucket(bktQueue),
		batches: tx.Bucket(bktBatches), batchNo: tx.Bucket(bktBatchNo), vault: tx.Bucket(bktVault), meta: tx.Bucket(bktMeta),
	}
	fillAppendOnly(&b)
	return b
}

// writer applies Changes inside one read-write transaction.
type writer struct {
	db    *DB
	b     buckets
	slots *slotLog
}

func newWriter(db *DB, tx *bolt.Tx, slots *slotLog) *writer {
	return &writer{db: db, b: openBuckets(tx), slots: slots}
}

// prepared is a Change checked and encoded outside the committer.
type prepared struct {
	c       *sterad.Change
	txns    [][]byte
	idem    []byte
	cards   []*sealedCard
	queue   [][]byte // UpdateQueue
	batches [][]byte
	plan    *batchPlan // set by validate
	vault   [][]byte
	resv    [][]byte // PutReservations, encoded at Version+1
	vouch   [][]byte // PutVouchers, encoded at Version+1
}

// wipe clears the card keys that p still holds.
func (p *prepared) wipe() {
	for _, c := range p.cards {
		clear(c.key)
	}
}

// release gives the keys p took from pool back to it, unused, and clears
// the others: for a Change the committer never claimed.
func (p *prepared) release(pool *keyPool) {
	var back []pooledKey
	for _, c := range p.cards {
		if c.pooled {
			back = append(back, pooledKey{slot: c.slot, id: c.id, key: c.key})
			c.key, c.pooled, c.hasSlot = nil, false, false
		}
	}
	if len(back) > 0 {
		pool.giveBack(back)
	}
	p.wipe()
}

func invalid(format string, args ...any) error {
	return sterad.Errorf(sterad.EInvalid, "invalid_change", format, args...)
}

// checkKey validates an identifier used in a bbolt key.
func checkKey(what, s string, required bool) error {
	switch {
	case s == "" && required:
		return invalid("%s is missing", what)
	case len(s) > maxKeyLen:
		return invalid("%s is longer than %d bytes", what, maxKeyLen)
	case strings.IndexByte(s, 0) >= 0:
		return invalid("%s contains a NUL byte", what)
	}
	return nil
}

// prepare checks what can be checked without the stored state, encodes
// the records and encrypts the cards. legacy encodes the records as JSON,
// as releases before the binary encoding did (tests of such stores).
func prepare(c *sterad.Change, legacy bool, pool *keyPool) (_ *prepared, err error) {
	p := &prepared{c: c}
	defer func() {
		if err != nil {
			p.release(pool)
		}
	}()
	for _, t := range c.Put {
		if t == nil {
			return nil, invalid("put: nil transaction")
		}
		if err := checkKey("transaction id", t.ID, true); err != nil {
			return nil, err
		}
		if err := checkKey("reference", t.Reference, false); err != nil {
			return nil, err
		}
		if err := checkKey("original", t.Original, false); err != nil {
			return nil, err
		}
		if t.Batch < 0 || t.Batch > maxBatch {
			return nil, invalid("transaction %s: batch %d is not 0–%d", t.ID, t.Batch, maxBatch)
		}
		if !txnTimesOK(t) {
			return nil, invalid("transaction %s cannot be encoded: a time is outside the years 0–9999 or its zone offset is a day or more", t.ID)
		}
		x := *t
		x.Version++ // stored as the next version: see sterad.Transaction.Version
		p.txns = append(p.txns, encodeTxnAs(&x, legacy))
	}
	if r := c.Idempotency; r != nil {
		if err := checkKey("idempotency key", r.Key, true); err != nil {
			return nil, err
		}
		if !jsonTime(r.CreatedAt) {
			return nil, invalid("idempotency record cannot be encoded: its time is outside the years 0–9999 or its zone offset is a day or more")
		}
		p.idem = encodeIdemAs(r, legacy)
	}
	for _, s := range c.SealCards {
		if err := checkKey("card owner", s.Owner, true); err != nil {
			return nil, err
		}
		if s.Card == nil || s.Card.PAN == "" {
			return nil, invalid("card for %s has no card number", s.Owner)
		}
		var pk *pooledKey
		if pool != nil {
			if k, ok := pool.take(); ok {
				pk = &k
			}
		}
		sc, err := sealCard(s.Owner, s.Card, pk)
		if err != nil {
			if pk != nil {
				pool.giveBack([]pooledKey{*pk})
			}
			return nil, err
		}
		p.cards = append(p.cards, sc)
	}
	for _, owner := range c.DestroyCards {
		if err := checkKey("card owner", owner, true); err != nil {
			return nil, err
		}
	}
	for _, it := range c.UpdateQueue {
		if !jsonTime(it.CreatedAt) || !jsonTime(it.LastAttempt) {
			return nil, invalid("queue item %d cannot be encoded: a time is outside the years 0–9999 or its zone offset is a day or more", it.Seq)
		}
		p.queue = append(p.queue, encodeQueueItemAs(&it, legacy))
	}
	for _, it := range c.Enqueue {
		if !jsonTime(it.CreatedAt) || !jsonTime(it.LastAttempt) {
			return nil, invalid("queued item cannot be encoded: a time is outside the years 0–9999 or its zone offset is a day or more")
		}
	}
	for _, b := range c.PutBatches {
		enc, err := encodeBatch(b)
		if err != nil {
			return nil, err
		}
		p.batches = append(p.batches, enc)
	}
	for _, e := range c.PutVault {
		if e == nil {
			return nil, invalid("put vault: nil entry")
		}
		if err := checkKey("vault reference", e.Reference, true); err != nil {
			return nil, err
		}
		enc, err := json.Marshal(e)
		if err != nil {
			return nil, invalid("vault entry %s cannot be encoded", e.Reference)
		}
		p.vault = append(p.vault, enc)
	}
	for _, ref := range c.DeleteVault {
		if err := checkKey("vault reference", ref, true); err != nil {
			return nil, err
		}
	}
	if p.resv, err = prepareReservations(c); err != nil {
		return nil, err
	}
	if p.vouch, err = prepareVouchers(c); err != nil {
		return nil, err
	}
	return p, nil
}

// validate checks p against the transaction's current state, which
// includes the Changes written before it in the same group. It writes
// nothing.
func (w *writer) validate(p *prepared) error {
	c := p.c
	if r := c.Idempotency; r != nil && w.b.idem.Get([]byte(r.Key)) != nil {
		return sterad.Errorf(sterad.EConflict, "idempotency_conflict", "the idempotency key is already used by another request")
	}
	// Compare-and-swap: each transaction put must be the stored version
	// (0 for a new one), so that a stale copy never overwrites a newer
	// record. A Change that puts one record twice is a bug.
	seen := make(map[string]bool, len(c.Put))
	for _, t := range c.Put {
		if seen[t.ID] {
			return invalid("transaction %s is put twice in one change", t.ID)
		}
		seen[t.ID] = true
		var stored uint64
		if v := w.b.txns.Get([]byte(t.ID)); v != nil {
			var err error
			if stored, err = storedTxnVersion(v); err != nil {
				return fmt.Errorf("decode stored transaction %s: %w", t.ID, err)
			}
		}
		if t.Version != stored {
			return sterad.ErrStale
		}
	}
	for _, it := range c.UpdateQueue {
		if w.b.queue.Get(be64(it.Seq)) == nil {
			return sterad.Errorf(sterad.ENotFound, "queue_item_not_found", "queue item %d does not exist", it.Seq)
		}
	}
	// Removing an item that is not there means two parties both think
	// they delivered it: refuse, so that only one of them records it.
	for _, seq := range c.Dequeue {
		if w.b.queue.Get(be64(seq)) == nil {
			return sterad.Errorf(sterad.ENotFound, "queue_item_not_found", "queue item %d does not exist", seq)
		}
	}
	p.plan = nil
	if len(c.PutBatches) > 0 {
		plan, err := w.planBatches(c.PutBatches, p.batches)
		if err != nil {
			return err
		}
		p.plan = plan
	}
	if err := w.validateReservations(c); err != nil {
		return err
	}
	if err := w.validateVouchers(c); err != nil {
		return err
	}
	return nil
}

// write applies a prepared Change. Any error is an I/O error or a bug and
// fails the whole transaction.
func (w *writer) write(p *prepared) error {
	c := p.c
	for i, t := range c.Put {
		if err := w.putTxn(t, p.txns[i]); err != nil {
			return fmt.Errorf("put transaction: %w", err)
		}
	}
	if p.idem != nil {
		if err := putOrdered(w.b.idem, []byte(c.Idempotency.Key), p.idem); err != nil {
			return fmt.Errorf("bind idempotency key: %w", err)
		}
	}
	for _, sc := range p.cards {
		if err := w.putCard(sc); err != nil {
			return err
		}
	}
	for _, owner := range c.DestroyCards {
		if err := w.releaseCard(owner); err != nil {
			return fmt.Errorf("destroy card: %w", err)
		}
	}
	for i := range c.Enqueue {
		seq, err := w.b.queue.NextSequence()
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		// Written in place: the caller's slice shares this array, so the
		// caller sees the Seq of what it queued (sterad.Change.Enqueue).
		c.Enqueue[i].Seq = seq
		if err := w.b.queue.Put(be64(seq), encodeQueueItemAs(&c.Enqueue[i], w.db.legacyJSON)); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	for i, it := range c.UpdateQueue {
		if err := w.b.queue.Put(be64(it.Seq), p.queue[i]); err != nil {
			return fmt.Errorf("update queue: %w", err)
		}
	}
	for _, seq := range c.Dequeue {
		if err := w.b.queue.Delete(be64(seq)); err != nil {
			return fmt.Errorf("dequeue: %w", err)
		}
	}
	if p.plan != nil {
		if err := w.writeBatches(p.plan); err != nil {
			return fmt.Errorf("put batches: %w", err)
		}
	}
	for i, e := range c.PutVault {
		if err := w.b.vault.Put([]byte(e.Reference), p.vault[i]); err != nil {
			return fmt.Errorf("put vault: %w", err)
		}
	}
	for _, ref := range c.DeleteVault {
		if err := w.b.vault.Delete([]byte(ref)); err != nil {
			return fmt.Errorf("delete vault: %w", err)
		}
	}
	if err := w.writeReservations(c, p.resv); err != nil {
		return err
	}
	if err := w.writeVouchers(c, p.vouch); err != nil {
		return err
	}
	return nil
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(make([]byte, 0, 4), v) }
