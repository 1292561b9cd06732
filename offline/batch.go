package offline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// Batches are keyed by an internal sequence (bucket batches, be64), not by
// their number: numbers wrap from 999999 to 1, and the sequence keeps
// creation order across the wrap. Bucket batchno maps a number to the
// sequence of the newest batch with that number, and meta/open_batch holds
// the sequence of the open batch, if any.
//
// PutBatches replaces the batch that has the number, except that putting
// an open batch under the number of a closed one starts a new record: the
// number has wrapped around (the old batch is kept, and Batch(number)
// returns the new one).

// maxBatch is the largest batch number (DE 60); the next one is 1.
const maxBatch = 999999

// batchPut is one batch of a PutBatches: its target record is an existing
// sequence (> 0) or the n-th new record of the Change (-n).
type batchPut struct {
	number int
	enc    []byte
	target int64
}

type batchPlan struct {
	puts  []batchPut
	open  int64 // target of the open batch after the Change; 0: none
	fresh int   // new records
}

func (w *writer) openBatchSeq() uint64 {
	if v := w.b.meta.Get(metaOpenBatch); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// encodeBatch checks what needs no state (number in 1..999999, a known
// state) and encodes b.
func encodeBatch(b *sterad.Batch) ([]byte, error) {
	if b == nil {
		return nil, invalid("put batches: nil batch")
	}
	if b.Number < 1 || b.Number > maxBatch {
		return nil, invalid("batch number %d is not 1–%d", b.Number, maxBatch)
	}
	switch b.State {
	case sterad.BatchOpen, sterad.BatchClosing, sterad.BatchClosed:
	default:
		return nil, invalid("batch %d has unknown state %q", b.Number, b.State)
	}
	x := *b
	x.Version++ // stored as the next version: see sterad.Transaction.Version
	enc, err := json.Marshal(&x)
	if err != nil {
		return nil, invalid("batch %d cannot be encoded", b.Number)
	}
	return enc, nil
}

// planBatches decides where each batch of a PutBatches (encoded as enc)
// goes and checks that at most one batch is open afterwards.
func (w *writer) planBatches(bs []*sterad.Batch, enc [][]byte) (*batchPlan, error) {
	type state struct {
		target  int64
		state   string
		version uint64
	}
	plan := &batchPlan{open: int64(w.openBatchSeq())}
	seen := make(map[int]state)
	for i, b := range bs {
		cur, found := seen[b.Number]
		if !found {
			if v := w.b.batchNo.Get(be32(uint32(b.Number))); v != nil {
				seq := binary.BigEndian.Uint64(v)
				var old sterad.Batch
				if err := json.Unmarshal(w.b.batches.Get(v), &old); err != nil {
					return nil, fmt.Errorf("decode batch %d: %w", seq, err)
				}
				cur, found = state{int64(seq), old.State, old.Version}, true
			}
		}
		target := cur.target
		if !found || (cur.state == sterad.BatchClosed && b.State == sterad.BatchOpen) {
			plan.fresh++
			target = -int64(plan.fresh)
			cur.version = 0
		}
		if b.Version != cur.version {
			return nil, sterad.ErrStale
		}
		if b.State == sterad.BatchOpen {
			if plan.open != 0 && plan.open != target {
				return nil, sterad.Errorf(sterad.EConflict, "batch_open", "batch %d cannot open while another batch is open", b.Number)
			}
			plan.open = target
		} else if plan.open == target {
			plan.open = 0
		}
		seen[b.Number] = state{target, b.State, b.Version + 1}
		plan.puts = append(plan.puts, batchPut{number: b.Number, enc: enc[i], target: target})
	}
	return plan, nil
}

func (w *writer) writeBatches(plan *batchPlan) error {
	seqs := make([]uint64, plan.fresh+1)
	resolve := func(target int64) (uint64, error) {
		if target >= 0 {
			return uint64(target), nil
		}
		if seqs[-target] == 0 {
			seq, err := w.b.batches.NextSequence()
			if err != nil {
				return 0, err
			}
			seqs[-target] = seq
		}
		return seqs[-target], nil
	}
	for _, p := range plan.puts {
		seq, err := resolve(p.target)
		if err != nil {
			return err
		}
		if err := w.b.batches.Put(be64(seq), p.enc); err != nil {
			return err
		}
		if err := w.b.batchNo.Put(be32(uint32(p.number)), be64(seq)); err != nil {
			return err
		}
	}
	if plan.open == 0 {
		return w.b.meta.Delete(metaOpenBatch)
	}
	seq, err := resolve(plan.open)
	if err != nil {
		return err
	}
	return w.b.meta.Put(metaOpenBatch, be64(seq))
}

func getBatch(b *bolt.Bucket, seq []byte) (*sterad.Batch, error) {
	v := b.Get(seq)
	if v == nil {
		return nil, sterad.ErrNotFound
	}
	bt := new(sterad.Batch)
	if err := json.Unmarshal(v, bt); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	return bt, nil
}

func openBatch(tx *bolt.Tx) (*sterad.Batch, error) {
	seq := tx.Bucket(bktMeta).Get(metaOpenBatch)
	if seq == nil {
		return nil, nil
	}
	return getBatch(tx.Bucket(bktBatches), seq)
}

// CurrentBatch returns the open batch. When none is open it creates one,
// durably, with OpenedAt = the clock's now: batch 1 in a new store, else
// the number after the newest batch's (999999 wraps to 1).
func (db *DB) CurrentBatch(ctx context.Context) (*sterad.Batch, error) {
	b, gen := db.openBatch.get()
	if b != nil { // what db.view would check first
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("current batch: %w", err)
		}
		if err := db.enter(); err != nil {
			return nil, fmt.Errorf("current batch: %w", err)
		}
		db.leave()
		return b, nil
	}
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		b, err = openBatch(tx)
		return err
	})
	if err != nil || b != nil {
		if err != nil {
			return nil, fmt.Errorf("current batch: %w", err)
		}
		db.openBatch.put(b, gen)
		return b, nil
	}
	if err := db.enter(); err != nil {
		return nil, err
	}
	defer db.leave()
	created := false
	err = db.update(func(tx *bolt.Tx) (err error) {
		if b, err = openBatch(tx); err != nil {
			return err
		}
		if b != nil { // created by a concurrent caller
			return errNothing
		}
		batches := tx.Bucket(bktBatches)
		number := 1
		if _, v := batches.Cursor().Last(); v != nil {
			var last sterad.Batch
			if err := json.Unmarshal(v, &last); err != nil {
				return fmt.Errorf("decode batch: %w", err)
			}
			number = last.Number%maxBatch + 1
		}
		b = &sterad.Batch{Number: number, State: sterad.BatchOpen, OpenedAt: db.clock.Now().Round(0)}
		enc, err := encodeBatch(b)
		if err != nil {
			return err
		}
		w := newWriter(db, tx, nil)
		plan, err := w.planBatches([]*sterad.Batch{b}, [][]byte{enc})
		if err != nil {
			return err
		}
		if err := w.writeBatches(plan); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("current batch: %w", err)
	}
	if created {
		b.Version++ // as stored
	}
	return b, nil
}

// Batch returns the batch with the given number (the newest one, should
// the number have wrapped); ErrNotFound when there is none.
func (db *DB) Batch(ctx context.Context, number int) (*sterad.Batch, error) {
	var b *sterad.Batch
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if number < 1 || number > maxBatch {
			return sterad.ErrNotFound
		}
		seq := tx.Bucket(bktBatchNo).Get(be32(uint32(number)))
		if seq == nil {
			return sterad.ErrNotFound
		}
		var err error
		b, err = getBatch(tx.Bucket(bktBatches), seq)
		return err
	})
	if err != nil {
		return nil, wrapRead("read batch", err)
	}
	return b, nil
}

// Batches returns every batch in creation order (across the number wrap).
func (db *DB) Batches(ctx context.Context) ([]*sterad.Batch, error) {
	var out []*sterad.Batch
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktBatches).ForEach(func(_, v []byte) error {
			b := new(sterad.Batch)
			if err := json.Unmarshal(v, b); err != nil {
				return fmt.Errorf("decode batch: %w", err)
			}
			out = append(out, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return out, nil
}
