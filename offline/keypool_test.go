package offline_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
	"github.com/sterad/sterad/offline"
)

const testPool = 8

func poolOptions() offline.Options {
	o := testOptions()
	o.KeyPool = testPool
	return o
}

// fillPool seals one card (which, the pool being empty, takes a key
// written at its commit and asks for a fill) and waits for the fill.
func fillPool(t *testing.T, db *offline.DB, owner string) {
	t.Helper()
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: owner, Card: testCard(testPAN())}}})
	testutil.Eventually(t, "the key pool to be filled", func() bool { return offline.PoolReady(db) == testPool })
}

// TestKeyPoolSealNeedsNoSync: a card sealed under a key written ahead
// commits without a sync of the key file, and its key is durable: the
// card opens after the store is closed and opened again.
func TestKeyPoolSealNeedsNoSync(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, poolOptions())
	fillPool(t, db, "first")
	before := db.Stats().SlotSyncs
	pan := testPAN()
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "guest", Card: testCard(pan)}}})
	if st := db.Stats(); st.SlotSyncs != before {
		t.Errorf("%d syncs of the key file for a card sealed under a pooled key, want 0", st.SlotSyncs-before)
	}
	if card, err := db.OpenCard(ctx, "guest"); err != nil || card.PAN.Reveal() != pan {
		t.Fatalf("OpenCard = %v, %v", card.LogValue(), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Close wipes the keys never used: only the two cards' keys remain.
	if n := liveSlots(t, dir); n != 2 {
		t.Errorf("%d key slots hold keys after Close, want 2 (the cards')", n)
	}
	db = reopen(t, dir, poolOptions())
	if card, err := db.OpenCard(ctx, "guest"); err != nil || card.PAN.Reveal() != pan {
		t.Errorf("OpenCard after reopen = %v, %v", card.LogValue(), err)
	}
}

// TestKeyPoolCrashLeavesNoKeyBehind: after a crash (a copy of the data
// directory taken while the store runs with keys written ahead), Open
// wipes the keys no card uses; the cards open.
func TestKeyPoolCrashLeavesNoKeyBehind(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, poolOptions())
	fillPool(t, db, "first")
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "guest", Card: testCard(testPAN())}}})
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, dir, crashed)
	if n := liveSlots(t, crashed); n != 2+testPool-1 {
		t.Fatalf("setup: %d key slots hold keys in the copy, want %d (2 cards and the pool)", n, 2+testPool-1)
	}
	o := poolOptions()
	o.KeyPool = 0
	db2 := reopen(t, crashed, o)
	if n := liveSlots(t, crashed); n != 2 {
		t.Errorf("%d key slots hold keys after Open, want 2 (the cards')", n)
	}
	for _, owner := range []string{"first", "guest"} {
		if _, err := db2.OpenCard(ctx, owner); err != nil {
			t.Errorf("OpenCard(%s): %v", owner, err)
		}
	}
}

// TestKeyPoolKeyOfAFailedChangeIsWiped: a Change cancelled before the
// committer takes it gives its key back to the pool, and one that fails
// validation in the committer leaves no key behind.
func TestKeyPoolKeyOfAFailedChangeIsWiped(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, poolOptions())
	entered, release := holdCommitter(db)
	defer release()
	blocked := make(chan error, 1)
	go func() {
		blocked <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}, SealCards: []sterad.SealCard{{Owner: "first", Card: testCard(testPAN())}}})
	}()
	<-entered
	testutil.Eventually(t, "the key pool to be filled", func() bool { return offline.PoolReady(db) == testPool })

	// A Change cancelled while it waits for the committer gives its key
	// back.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- db.Apply(cctx, sterad.Change{SealCards: []sterad.SealCard{{Owner: "cancelled", Card: testCard(testPAN())}}})
	}()
	testutil.Eventually(t, "the change to be queued", func() bool { return offline.Pending(db) == 1 })
	if got := offline.PoolReady(db); got != testPool-1 {
		t.Fatalf("%d keys ready while a Change holds one, want %d", got, testPool-1)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply(cancelled) = %v", err)
	}
	if got := offline.PoolReady(db); got != testPool {
		t.Errorf("%d keys ready after a cancelled Change, want %d", got, testPool)
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}

	// A Change binding an idempotency key already bound fails in the
	// committer: the pooled key it took is wiped, not kept.
	id := newID()
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}, Idempotency: &sterad.IdempotencyRecord{Key: "k", TxnID: id}})
	dup := newID()
	err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(dup, t0)}, Idempotency: &sterad.IdempotencyRecord{Key: "k", TxnID: dup},
		SealCards: []sterad.SealCard{{Owner: dup, Card: testCard(testPAN())}}})
	if !isKind(err, sterad.EConflict, "idempotency_conflict") {
		t.Fatalf("Apply = %v, want idempotency_conflict", err)
	}
	if _, err := db.OpenCard(ctx, dup); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(failed change) = %v, want ErrNotFound", err)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := liveSlots(t, dir); n != 1 {
		t.Errorf("%d key slots hold keys after Close, want 1 (the first card's)", n)
	}
}

// TestKeyPoolFillsWhenTheCommitterRests: a pool down to half is refilled
// once the committer has nothing to commit, not while it commits (the
// refill's fsync would land beside the commit's); one down to a quarter
// is refilled at once.
func TestKeyPoolFillsWhenTheCommitterRests(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, poolOptions())
	fillPool(t, db, "first")
	syncs := db.Stats().SlotSyncs
	entered, release := holdCommitter(db)
	defer release()
	done := make(chan error, testPool)
	seal := func(owner string) {
		go func() {
			done <- db.Apply(ctx, sterad.Change{SealCards: []sterad.SealCard{{Owner: owner, Card: testCard(testPAN())}}})
		}()
	}
	seal("blocker")
	<-entered
	// Below half while the committer is held: no fill yet.
	for i := range testPool / 2 {
		seal(fmt.Sprintf("queued-%d", i))
		testutil.Eventually(t, "the change to be queued", func() bool { return offline.Pending(db) == i+1 })
	}
	if got := offline.PoolReady(db); got != testPool/2-1 {
		t.Fatalf("%d keys ready, want %d", got, testPool/2-1)
	}
	if st := db.Stats(); st.SlotSyncs != syncs {
		t.Errorf("the key file was synced %d times while the committer was busy and the pool above a quarter", st.SlotSyncs-syncs)
	}
	release()
	for range testPool/2 + 1 { // the blocker and the queued ones
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "the pool to be filled once the committer rests", func() bool { return offline.PoolReady(db) == testPool })
}
