package offline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// txnKeys are the fields of a transaction that its index entries derive
// from.
type txnKeys struct {
	ID        string      `json:"id"`
	Reference string      `json:"reference"`
	Original  string      `json:"original"`
	Batch     int         `json:"batch"`
	CreatedAt time.Time   `json:"created_at"`
	Step      sterad.Step `json:"step"`
	Version   uint64      `json:"version"`
}

func keysOf(t *sterad.Transaction) txnKeys {
	return txnKeys{ID: t.ID, Reference: t.Reference, Original: t.Original, Batch: t.Batch, CreatedAt: t.CreatedAt, Step: t.Step}
}

// strKey is s 0x00 id: entries for one s are contiguous, in ID order.
func strKey(s, id string) []byte {
	k := make([]byte, 0, len(s)+1+len(id))
	return append(append(append(k, s...), 0), id...)
}

func batchKey(batch int, id string) []byte {
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(id)), uint32(batch)), id...)
}

// timeKey orders instants: Unix seconds with the sign bit flipped (so that
// times before 1970 sort first), then nanoseconds.
func timeKey(t time.Time) []byte {
	k := make([]byte, 12, 12+26)
	binary.BigEndian.PutUint64(k, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(k[8:], uint32(t.Nanosecond()))
	return k
}

func createdKey(t time.Time, id string) []byte { return append(timeKey(t), id...) }

// index is one secondary index: the key a transaction has in it, if any.
type index struct {
	bucket func(*buckets) *bolt.Bucket
	key    func(txnKeys) []byte // nil: not indexed
}

var txnIndexes = []index{
	{func(b *buckets) *bolt.Bucket { return b.byRef }, func(k txnKeys) []byte {
		if k.Reference == "" {
			return nil
		}
		return strKey(k.Reference, k.ID)
	}},
	{func(b *buckets) *bolt.Bucket { return b.byOrig }, func(k txnKeys) []byte {
		if k.Original == "" {
			return nil
		}
		return strKey(k.Original, k.ID)
	}},
	{func(b *buckets) *bolt.Bucket { return b.byBatch }, func(k txnKeys) []byte {
		if k.Batch == 0 {
			return nil
		}
		return batchKey(k.Batch, k.ID)
	}},
	{func(b *buckets) *bolt.Bucket { return b.byCreated }, func(k txnKeys) []byte { return createdKey(k.CreatedAt, k.ID) }},
	{func(b *buckets) *bolt.Bucket { return b.unfinished }, func(k txnKeys) []byte {
		if k.Step == sterad.StepDone {
			return nil
		}
		return []byte(k.ID)
	}},
}

// putTxn stores t (encoded as enc) and moves its index entries: entries of
// the record it replaces that no longer apply are deleted.
func (w *writer) putTxn(t *sterad.Transaction, enc []byte) error {
	id := []byte(t.ID)
	var old *txnKeys
	if v := w.b.txns.Get(id); v != nil {
		k, err := storedKeys(id, v)
		if err != nil {
			return fmt.Errorf("decode replaced record: %w", err)
		}
		old = &k
	}
	if err := w.b.txns.Put(id, enc); err != nil {
		return err
	}
	nk := keysOf(t)
	for _, ix := range txnIndexes {
		b := ix.bucket(&w.b)
		k := ix.key(nk)
		if old != nil {
			if ok := ix.key(*old); ok != nil && !bytes.Equal(ok, k) {
				if err := b.Delete(ok); err != nil {
					return err
				}
			} else if ok != nil && hasKey(b, k) {
				continue // unchanged: leave its page alone
			}
		}
		if k != nil {
			if err := putOrdered(b, k, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasKey reports whether b holds k. A read: it dirties no page, where a
// Put of the same entry would copy its page (and the branches above it)
// into the commit.
func hasKey(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}

func getTxn(b *bolt.Bucket, id []byte) (*sterad.Transaction, error) {
	v := b.Get(id)
	if v == nil {
		return nil, sterad.ErrNotFound
	}
	t := new(sterad.Transaction)
	if err := decodeTxn(id, v, t); err != nil {
		return nil, fmt.Errorf("decode transaction: %w", err)
	}
	return t, nil
}

// Transaction returns the transaction with the given ID; ErrNotFound when
// there is none.
func (db *DB) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	var t *sterad.Transaction
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		t, err = getTxn(tx.Bucket(bktTxns), []byte(id))
		return err
	})
	if err != nil {
		return nil, wrapRead("read transaction", err)
	}
	return t, nil
}

// Transactions returns the transactions that match every set field of f,
// in creation order (CreatedAt, then ID; newest first when f.Newest), at
// most f.Limit of them when it is positive. Reference, Original and Batch are looked up in their
// indexes; Date (the creation date in f.Location, UTC when nil) is a range
// of the creation-time index; Status and Op are checked record by record.
func (db *DB) Transactions(ctx context.Context, f sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	var out []*sterad.Transaction
	err := db.view(ctx, func(tx *bolt.Tx) error {
		txns := tx.Bucket(bktTxns)
		var prefix []byte
		var ix *bolt.Bucket
		switch {
		case f.Reference != "":
			ix, prefix = tx.Bucket(bktByRef), strKey(f.Reference, "")
		case f.Original != "":
			ix, prefix = tx.Bucket(bktByOrig), strKey(f.Original, "")
		case f.Batch != 0:
			ix, prefix = tx.Bucket(bktByBatch), batchKey(f.Batch, "")
		}
		if ix != nil {
			// Few candidates: collect, then order by creation.
			c := ix.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				t, err := getTxn(txns, k[len(prefix):])
				if err != nil {
					return fmt.Errorf("index entry: %w", err)
				}
				if matches(t, &f, loc) {
					out = append(out, t)
				}
			}
			slices.SortFunc(out, byCreation)
			if f.Newest {
				slices.Reverse(out)
			}
			if f.Limit > 0 && len(out) > f.Limit {
				out = out[:f.Limit]
			}
			return nil
		}
		// Walk the creation-time index, over the day when Date is set.
		var from, to []byte
		if !f.Date.IsZero() {
			from, to = timeKey(f.Date.Time(loc)), timeKey(f.Date.AddDays(1).Time(loc))
		}
		c := tx.Bucket(bktByCreated).Cursor()
		k, _ := c.First()
		if from != nil {
			k, _ = c.Seek(from)
		}
		next, in := c.Next, func(k []byte) bool { return to == nil || bytes.Compare(k, to) < 0 }
		if f.Newest { // from the last key before to, backwards down to from
			if to != nil {
				if k, _ = c.Seek(to); k == nil {
					k, _ = c.Last()
				} else {
					k, _ = c.Prev()
				}
			} else {
				k, _ = c.Last()
			}
			next, in = c.Prev, func(k []byte) bool { return from == nil || bytes.Compare(k, from) >= 0 }
		}
		n := 0
		for ; k != nil && in(k); k, _ = next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			t, err := getTxn(txns, k[12:])
			if err != nil {
				return fmt.Errorf("index entry: %w", err)
			}
			if matches(t, &f, loc) {
				out = append(out, t)
				if f.Limit > 0 && len(out) == f.Limit {
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	return out, nil
}

func matches(t *sterad.Transaction, f *sterad.TransactionFilter, loc *time.Location) bool {
	return (f.Reference == "" || t.Reference == f.Reference) &&
		(f.Status == "" || t.Status == f.Status) &&
		(f.Op == "" || t.Op == f.Op) &&
		(f.Original == "" || t.Original == f.Original) &&
		(f.Batch == 0 || t.Batch == f.Batch) &&
		(f.Date.IsZero() || sterad.DateOf(t.CreatedAt.In(loc)) == f.Date)
}

func byCreation(a, b *sterad.Transaction) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// Unfinished returns the transactions whose step is not done, in creation
// order.
func (db *DB) Unfinished(ctx context.Context) ([]*sterad.Transaction, error) {
	var out []*sterad.Transaction
	err := db.view(ctx, func(tx *bolt.Tx) error {
		txns := tx.Bucket(bktTxns)
		return tx.Bucket(bktUnfinished).ForEach(func(id, _ []byte) error {
			t, err := getTxn(txns, id)
			if err != nil {
				return fmt.Errorf("unfinished entry: %w", err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list unfinished transactions: %w", err)
	}
	slices.SortFunc(out, byCreation)
	return out, nil
}
