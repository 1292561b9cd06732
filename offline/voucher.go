package offline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// bktVouchers: program 0x00 number → JSON sterad.VoucherLogEntry: the
// voucher log (様式第5号). A voucher number is a key, so it is logged at
// most once: a check-out that would log a number already there fails its
// compare-and-swap inside the commit that creates its transaction.
var bktVouchers = []byte("vouchers")

func init() { allBuckets = append(allBuckets, bktVouchers) }

func voucherKey(program, number string) []byte { return []byte(program + "\x00" + number) }

// prepareVouchers checks and encodes c.PutVouchers, each as the version it
// will have once written (Version+1).
func prepareVouchers(c *sterad.Change) ([][]byte, error) {
	if len(c.PutVouchers) == 0 {
		return nil, nil
	}
	out := make([][]byte, 0, len(c.PutVouchers))
	seen := make(map[string]bool, len(c.PutVouchers))
	for _, e := range c.PutVouchers {
		if e == nil {
			return nil, invalid("put voucher: nil entry")
		}
		if err := checkKey("voucher program", e.Program, true); err != nil {
			return nil, err
		}
		if err := checkKey("voucher number", e.Number, true); err != nil {
			return nil, err
		}
		k := string(voucherKey(e.Program, e.Number))
		if seen[k] {
			return nil, sterad.Errorf(sterad.EConflict, "voucher_used", "voucher %s of %s is put twice in one change", e.Number, e.Program)
		}
		seen[k] = true
		next := *e
		next.Version++
		enc, err := json.Marshal(&next)
		if err != nil {
			return nil, invalid("voucher %s cannot be encoded", e.Number)
		}
		out = append(out, enc)
	}
	return out, nil
}

// validateVouchers refuses an entry that is not the stored version: a new
// entry (Version 0) for a number already logged is ErrStale.
func (w *writer) validateVouchers(c *sterad.Change) error {
	if len(c.PutVouchers) == 0 {
		return nil
	}
	b := w.b.meta.Tx().Bucket(bktVouchers)
	for _, e := range c.PutVouchers {
		var stored uint64
		if v := b.Get(voucherKey(e.Program, e.Number)); v != nil {
			var sv storedVersion
			if err := json.Unmarshal(v, &sv); err != nil {
				return fmt.Errorf("decode voucher %s: %w", e.Number, err)
			}
			stored = sv.Version
		}
		if stored != e.Version {
			return sterad.ErrStale
		}
	}
	return nil
}

func (w *writer) writeVouchers(c *sterad.Change, enc [][]byte) error {
	b := w.b.meta.Tx().Bucket(bktVouchers)
	for i, e := range c.PutVouchers {
		if err := b.Put(voucherKey(e.Program, e.Number), enc[i]); err != nil {
			return fmt.Errorf("put voucher: %w", err)
		}
	}
	return nil
}

// Voucher returns the log entry of a program's voucher number;
// ErrNotFound when it was never logged.
func (db *DB) Voucher(ctx context.Context, program, number string) (*sterad.VoucherLogEntry, error) {
	e := new(sterad.VoucherLogEntry)
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktVouchers, voucherKey(program, number), e) })
	if err != nil {
		return nil, wrapRead("read voucher", err)
	}
	return e, nil
}

// VoucherLog returns every logged voucher, by program and number.
func (db *DB) VoucherLog(ctx context.Context) ([]*sterad.VoucherLogEntry, error) {
	var out []*sterad.VoucherLogEntry
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktVouchers).ForEach(func(_, v []byte) error {
			e := new(sterad.VoucherLogEntry)
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decode voucher: %w", err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read voucher log: %w", err)
	}
	return out, nil
}
