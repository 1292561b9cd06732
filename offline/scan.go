package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// Walks over every record that hold none of them all at once: the
// gateway's pass at its start, over a store that may keep 100,000 queued
// advices. Each reads scanChunk records in one read transaction, then
// hands them to the caller's func outside of it, so that fn may use the
// store (even write to it) and no read transaction stays open for the
// whole walk (pages freed meanwhile could not be reused).

// scanChunk is how many records one read transaction of a walk takes.
const scanChunk = 256

// scanRelease is how many chunks a walk reads between two releases of
// the store's mapped pages (ReleaseMapped): the pages a walk has read
// stay resident otherwise, up to the whole store's. (A variable for the
// tests.)
var scanRelease = 64

// ScanTransactions calls fn with every stored transaction, in ID order,
// decoded one at a time and never all held at once. A transaction written
// while the walk goes on is seen as it was before or after that write, or
// not at all when it is created behind the walk's position. It stops at
// the first error of fn (and returns it) or when ctx ends. The store's
// pages it maps are released as it goes (ReleaseMapped).
func (db *DB) ScanTransactions(ctx context.Context, fn func(*sterad.Transaction) error) error {
	return walk(db, ctx, "transactions", bktTxns, func(b *bolt.Bucket, k, _ []byte) (*sterad.Transaction, error) {
		t, err := getTxn(b, k)
		if err != nil {
			return nil, fmt.Errorf("transaction %q: %w", k, err)
		}
		return t, nil
	}, fn)
}

// ScanQueue calls fn with every item of the store-and-forward queue, in
// Seq (FIFO) order, without holding them all. Items written meanwhile are
// seen as ScanTransactions sees transactions, and its pages are released
// as ScanTransactions releases them.
func (db *DB) ScanQueue(ctx context.Context, fn func(sterad.QueueItem) error) error {
	return walk(db, ctx, "queue", bktQueue, func(_ *bolt.Bucket, k, v []byte) (sterad.QueueItem, error) {
		it, err := decodeQueueItem(v)
		if err != nil {
			return it, fmt.Errorf("decode queue item %d: %w", binary.BigEndian.Uint64(k), err)
		}
		return it, nil
	}, fn)
}

// walk reads bucket's records scanChunk at a time, each chunk in its own
// read transaction, decodes them and hands them to fn outside it. It
// returns fn's first error as it is, and the store's as "walk what: …".
func walk[T any](db *DB, ctx context.Context, what string, bucket []byte, decode func(b *bolt.Bucket, k, v []byte) (T, error), fn func(T) error) error {
	var after []byte
	defer db.releaseWalked()
	for n := 1; ; n++ {
		if n%scanRelease == 0 {
			db.releaseWalked()
		}
		var chunk []T
		err := db.view(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			c := b.Cursor()
			k, v := seekAfter(c, after)
			for ; k != nil && len(chunk) < scanChunk; k, v = c.Next() {
				x, err := decode(b, k, v)
				if err != nil {
					return err
				}
				chunk = append(chunk, x)
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk %s: %w", what, err)
		}
		for i, x := range chunk {
			var zero T
			chunk[i] = zero // fn's to keep or to drop
			if err := fn(x); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
	}
}

// IsUnfinished reports whether transaction id is stored with a step other
// than done, from the unfinished index alone: the record is not read. An
// unknown ID is not unfinished.
func (db *DB) IsUnfinished(ctx context.Context, id string) (bool, error) {
	var open bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		open = tx.Bucket(bktUnfinished).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read unfinished index: %w", err)
	}
	return open, nil
}

// releaseWalked releases the pages a walk mapped; a failure only leaves
// them resident, and is logged.
func (db *DB) releaseWalked() {
	if err := db.ReleaseMapped(); err != nil && !errors.Is(err, ErrClosed) {
		db.log.Warn("the store's pages read by a walk stay in memory", "err", err)
	}
}

// seekAfter positions c on the first key after after (on the first key
// when after is nil).
func seekAfter(c *bolt.Cursor, after []byte) ([]byte, []byte) {
	if after == nil {
		return c.First()
	}
	k, v := c.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	return k, v
}
