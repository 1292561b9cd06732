package offline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// bktReservations: reference → JSON sterad.Reservation. Created on open
// like every bucket: a store written before reservations existed gets it
// at its next open (and the gateway reads its vault entries as
// reservations until they are rewritten).
var bktReservations = []byte("reservations")

func init() { allBuckets = append(allBuckets, bktReservations) }

// storedVersion is the part of a stored reservation that validation reads.
type storedVersion struct {
	Version uint64 `json:"version"`
}

// prepareReservations checks and encodes c.PutReservations, each as the
// version it will have once written (Version+1).
func prepareReservations(c *sterad.Change) ([][]byte, error) {
	if len(c.PutReservations) == 0 {
		return nil, nil
	}
	out := make([][]byte, 0, len(c.PutReservations))
	seen := make(map[string]bool, len(c.PutReservations))
	for _, r := range c.PutReservations {
		if r == nil {
			return nil, invalid("put reservation: nil reservation")
		}
		if err := checkKey("reservation reference", r.Reference, true); err != nil {
			return nil, err
		}
		if seen[r.Reference] {
			return nil, invalid("reservation %s is put twice in one change", r.Reference)
		}
		seen[r.Reference] = true
		next := *r
		next.Version++
		enc, err := json.Marshal(&next)
		if err != nil {
			return nil, invalid("reservation %s cannot be encoded", r.Reference)
		}
		out = append(out, enc)
	}
	return out, nil
}

// validateReservations refuses a reservation copy that is not the stored
// version: never overwrite a newer copy.
func (w *writer) validateReservations(c *sterad.Change) error {
	if len(c.PutReservations) == 0 {
		return nil
	}
	b := w.b.meta.Tx().Bucket(bktReservations)
	for _, r := range c.PutReservations {
		var stored uint64
		if v := b.Get([]byte(r.Reference)); v != nil {
			var sv storedVersion
			if err := json.Unmarshal(v, &sv); err != nil {
				return fmt.Errorf("decode reservation %s: %w", r.Reference, err)
			}
			stored = sv.Version
		}
		if stored != r.Version {
			return sterad.ErrStale
		}
	}
	return nil
}

// writeReservations writes the encoded reservations (the callers' copies
// are advanced to the stored version once the commit succeeds).
func (w *writer) writeReservations(c *sterad.Change, enc [][]byte) error {
	if len(c.PutReservations) == 0 {
		return nil
	}
	b := w.b.meta.Tx().Bucket(bktReservations)
	for i, r := range c.PutReservations {
		if err := b.Put([]byte(r.Reference), enc[i]); err != nil {
			return fmt.Errorf("put reservation: %w", err)
		}
	}
	return nil
}

// Reservation returns the reservation of a reference; ErrNotFound when
// none is stored.
func (db *DB) Reservation(ctx context.Context, reference string) (*sterad.Reservation, error) {
	r := new(sterad.Reservation)
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktReservations, []byte(reference), r) })
	if err != nil {
		return nil, wrapRead("read reservation", err)
	}
	return r, nil
}

// Reservations returns every reservation in reference order.
func (db *DB) Reservations(ctx context.Context) ([]*sterad.Reservation, error) {
	var out []*sterad.Reservation
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktReservations).ForEach(func(_, v []byte) error {
			r := new(sterad.Reservation)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode reservation: %w", err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	return out, nil
}
