package offline_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// A copy read before another writer's update can never overwrite it: the
// store compares versions (issue 9, defect 3: a batch close wrote back a
// stale sale and a refund was lost).
func TestStaleTransactionIsRefused(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	sale := txn("T1", t0)
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{sale}})
	if sale.Version != 1 {
		t.Fatalf("version after create = %d, want 1", sale.Version)
	}

	a, _ := db.Transaction(ctx, "T1") // the batch close's copy
	b, _ := db.Transaction(ctx, "T1") // the refund's copy
	b.Refunded = sterad.Amount{Value: decimal.NewFromInt(3000), Currency: sterad.JPY}
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{b}})

	a.Printed = true
	err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{a}, Enqueue: []sterad.QueueItem{{TxnID: "T1", Kind: sterad.QueueAdvice}}})
	if !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("Apply of a stale copy = %v, want ErrStale", err)
	}
	got, _ := db.Transaction(ctx, "T1")
	if got.Refunded.Minor() != 3000 || got.Printed || got.Version != 2 {
		t.Errorf("stored = refunded %v printed %v version %d; want the refund's write kept", got.Refunded, got.Printed, got.Version)
	}
	if q, _ := db.Queue(ctx); len(q) != 0 {
		t.Errorf("a refused change wrote part of itself: queue %v", q)
	}
	// Creating a record that exists is refused the same way.
	if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn("T1", t0)}}); !errors.Is(err, sterad.ErrStale) {
		t.Errorf("create over an existing record = %v, want ErrStale", err)
	}
}

// Writers racing with copies of the same version: exactly one wins, in
// one group commit or across several.
func TestOneOfRacingWritersWins(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn("T1", t0)}})
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	copies := make([]*sterad.Transaction, n)
	for i := range copies { // every copy read before anyone writes
		copies[i], _ = db.Transaction(ctx, "T1")
	}
	for i := range n {
		c := copies[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.AuthCode = "A" + string(rune('a'+i))
			errs[i] = db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{c}})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, sterad.ErrStale):
			t.Errorf("Apply = %v, want nil or ErrStale", err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers won, want exactly 1", won)
	}
}

// The same for batches.
func TestStaleBatchIsRefused(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	a, err := db.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := db.Batch(ctx, a.Number)
	b.Attempts = 1
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{b}})
	a.LastError = "stale"
	if err := db.Apply(ctx, sterad.Change{PutBatches: []*sterad.Batch{a}}); !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("Apply of a stale batch = %v, want ErrStale", err)
	}
}
