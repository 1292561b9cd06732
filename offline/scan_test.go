package offline_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// The walks see every record once, in key order, across the read
// transactions they take (more records than one takes), and stop at the
// func's error.
func TestScans(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	defer offline.SetScanRelease(1)() // and release the pages after each chunk
	const n = 600
	var wantIDs, wantUnfinished []string
	for start := 0; start < n; start += 200 {
		var c sterad.Change
		for i := start; i < start+200; i++ {
			tx := txn(newID(), t0.Add(time.Duration(i)*time.Second))
			if i%3 == 0 {
				tx.Step = sterad.StepDone
			} else {
				wantUnfinished = append(wantUnfinished, tx.ID)
			}
			wantIDs = append(wantIDs, tx.ID)
			c.Put = append(c.Put, tx)
			c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: tx.ID, Kind: sterad.QueueAdvice, CreatedAt: t0, Parked: i%7 == 0})
		}
		apply(t, db, c)
	}
	slices.Sort(wantIDs)
	slices.Sort(wantUnfinished)

	var got []string
	err := db.ScanTransactions(ctx, func(tx *sterad.Transaction) error {
		if tx.Amount.Minor() != 38500 || tx.Version != 1 {
			t.Fatalf("walked %+v", tx)
		}
		got = append(got, tx.ID)
		return nil
	})
	if err != nil || !slices.Equal(got, wantIDs) {
		t.Fatalf("ScanTransactions: %d of %d IDs, in order: %v; %v", len(got), len(wantIDs), slices.Equal(got, wantIDs), err)
	}
	var un []string
	for _, id := range wantIDs {
		open, err := db.IsUnfinished(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if open {
			un = append(un, id)
		}
	}
	if !slices.Equal(un, wantUnfinished) {
		t.Fatalf("IsUnfinished: %d of %d", len(un), len(wantUnfinished))
	}
	if open, err := db.IsUnfinished(ctx, "NOPE"); open || err != nil {
		t.Fatalf("IsUnfinished of an unknown ID: %v %v", open, err)
	}

	var seqs []uint64
	parked := 0
	err = db.ScanQueue(ctx, func(it sterad.QueueItem) error {
		seqs = append(seqs, it.Seq)
		if it.Parked {
			parked++
		}
		return nil
	})
	if err != nil || len(seqs) != n || !slices.IsSorted(seqs) || seqs[0] == 0 || parked != (n+6)/7 {
		t.Fatalf("ScanQueue: %d items, sorted %v, %d parked: %v", len(seqs), slices.IsSorted(seqs), parked, err)
	}

	stop := errors.New("enough")
	walked := 0
	err = db.ScanTransactions(ctx, func(*sterad.Transaction) error {
		if walked++; walked == 300 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || walked != 300 {
		t.Fatalf("stopped after %d: %v", walked, err)
	}
	walked = 0
	err = db.ScanQueue(ctx, func(sterad.QueueItem) error { walked++; return stop })
	if !errors.Is(err, stop) || walked != 1 {
		t.Fatalf("queue walk stopped after %d: %v", walked, err)
	}
}

// A walk's func may write to the store: no read transaction is open
// while it runs.
func TestScanWhileWriting(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	defer offline.SetScanRelease(1)()
	var c sterad.Change
	for i := range 300 {
		c.Put = append(c.Put, txn(newID(), t0.Add(time.Duration(i)*time.Second)))
	}
	apply(t, db, c)
	n := 0
	err := db.ScanTransactions(ctx, func(tx *sterad.Transaction) error {
		n++
		tx.Step = sterad.StepDone
		return db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{tx}})
	})
	if err != nil || n != 300 {
		t.Fatalf("walked %d: %v", n, err)
	}
	if un, err := db.Unfinished(ctx); err != nil || len(un) != 0 {
		t.Fatalf("unfinished after the walk: %v %v", ids(un), err)
	}
}
