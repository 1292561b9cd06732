package offline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
	"github.com/sterad/sterad/offline"
)

// holdCommitter makes the committer stop before its first group until
// release is called; entered is closed once it has stopped there.
func holdCommitter(db *offline.DB) (entered <-chan struct{}, release func()) {
	in, hold := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	offline.SetBeforeCommit(db, func() {
		if first.CompareAndSwap(false, true) {
			close(in)
			<-hold
		}
	})
	var once sync.Once
	return in, func() { once.Do(func() { close(hold) }) }
}

// TestGroupConflictFailsAlone builds one group of five Changes, two of
// which bind idempotency keys already bound (one by the committed state,
// one by an earlier Change of the same group): those two fail alone and
// leave nothing; the others commit, all in one bbolt transaction.
func TestGroupConflictFailsAlone(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	entered, release := holdCommitter(db)
	defer release()

	blocker := newID()
	blocked := make(chan error, 1)
	go func() {
		blocked <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(blocker, t0)}, Idempotency: &sterad.IdempotencyRecord{Key: "taken", TxnID: blocker}})
	}()
	<-entered

	type step struct {
		id       string
		key      string
		seal     bool
		conflict bool
	}
	steps := []step{
		{id: newID(), key: "k1"},
		{id: newID(), key: "taken", seal: true, conflict: true}, // bound in the committed state
		{id: newID(), key: "k1", conflict: true},                // bound by the first Change of this group
		{id: newID(), key: "k4", seal: true},
		{id: newID(), key: "k4", seal: true, conflict: true},
	}
	errs := make([]chan error, len(steps))
	for i, s := range steps {
		c := sterad.Change{
			Put:         []*sterad.Transaction{txn(s.id, t0.Add(time.Duration(i)*time.Second))},
			Idempotency: &sterad.IdempotencyRecord{Key: s.key, TxnID: s.id},
			Enqueue:     []sterad.QueueItem{{TxnID: s.id, Kind: sterad.QueueAdvice}},
		}
		if s.seal {
			c.SealCards = []sterad.SealCard{{Owner: s.id, Card: testCard(testPAN())}}
		}
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- db.Apply(ctx, c) }()
		// One at a time, so the group's order is the steps' order.
		testutil.Eventually(t, "the change to be queued", func() bool { return offline.Pending(db) == i+1 })
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatalf("blocker: %v", err)
	}
	for i, s := range steps {
		err := <-errs[i]
		switch {
		case s.conflict && !isKind(err, sterad.EConflict, "idempotency_conflict"):
			t.Errorf("change %d: %v, want idempotency_conflict", i, err)
		case !s.conflict && err != nil:
			t.Errorf("change %d: %v, want success", i, err)
		}
	}
	if st := db.Stats(); st.Commits != 2 || st.Applies != 3 {
		t.Errorf("Stats = %+v, want 2 commits (blocker, group) for 3 applies", st)
	}
	for i, s := range steps {
		if s.conflict {
			assertNothingOf(t, db, s.id)
			continue
		}
		if _, err := db.Transaction(ctx, s.id); err != nil {
			t.Errorf("change %d: transaction: %v", i, err)
		}
		if rec, err := db.Idempotency(ctx, s.key); err != nil || rec.TxnID != s.id {
			t.Errorf("key %s = %+v, %v; want bound to change %d", s.key, rec, err, i)
		}
	}
	if rec, _ := db.Idempotency(ctx, "taken"); rec == nil || rec.TxnID != blocker {
		t.Errorf("key taken = %+v, want bound to the blocker", rec)
	}
	if _, err := db.OpenCard(ctx, steps[3].id); err != nil {
		t.Errorf("card of change 3: %v", err)
	}
	db.Close()
	if n := liveSlots(t, dir); n != 1 {
		t.Errorf("%d key slots hold keys, want 1 (change 3's card)", n)
	}
}

// TestGroupIOErrorFailsAll: when writing fails (here, a card key), every
// Change of the group fails and none of them is written.
func TestGroupIOErrorFailsAll(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	entered, release := holdCommitter(db)
	defer release()
	blocked := make(chan error, 1)
	go func() {
		blocked <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}})
	}()
	<-entered
	ids := []string{newID(), newID(), newID()}
	errs := make([]chan error, len(ids))
	for i, id := range ids {
		c := sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}, Idempotency: &sterad.IdempotencyRecord{Key: id, TxnID: id}}
		if i == 1 {
			c.SealCards = []sterad.SealCard{{Owner: id, Card: testCard(testPAN())}}
		}
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- db.Apply(ctx, c) }()
		testutil.Eventually(t, "the change to be queued", func() bool { return offline.Pending(db) == i+1 })
	}
	offline.BreakSlotFile(db)
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if err := <-errs[i]; sterad.ErrorKind(err) != sterad.EInternal {
			t.Errorf("change %d: %v, want an internal error", i, err)
		}
		if _, err := db.Transaction(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("change %d: transaction %v, want ErrNotFound", i, err)
		}
		if _, err := db.Idempotency(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("change %d: idempotency key %v, want ErrNotFound", i, err)
		}
	}
	if st := db.Stats(); st.Commits != 1 {
		t.Errorf("%d commits, want 1 (the blocker)", st.Commits)
	}
}

// TestGroupCancelWhileWaiting cancels a Change while it waits for the
// committer: Apply returns at once and the Change is never written.
func TestGroupCancelWhileWaiting(t *testing.T) {
	db, _ := open(t, testOptions())
	entered, release := holdCommitter(db)
	defer release()
	blocked := make(chan error, 1)
	go func() {
		blocked <- db.Apply(context.Background(), sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}})
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	id := newID()
	done := make(chan error, 1)
	go func() { done <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}}) }()
	testutil.Eventually(t, "the change to be queued", func() bool { return offline.Pending(db) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	// A later Change commits after the committer has passed the cancelled one.
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}})
	assertNothingOf(t, db, id)
}

// TestSingleCancelWhileWaiting: without group commit, an Apply waiting
// for another to finish writing also gives up when ctx ends.
func TestSingleCancelWhileWaiting(t *testing.T) {
	o := testOptions()
	o.GroupCommit = false
	db, _ := open(t, o)
	release := offline.HoldWriter(db)
	ctx, cancel := context.WithCancel(context.Background())
	id := newID()
	done := make(chan error, 1)
	go func() { done <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}}) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	release()
	assertNothingOf(t, db, id)
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}})
}

// TestGroupOutcomeStandsAfterClaim cancels a Change after its commit has
// started: Apply reports the commit's outcome, not the cancellation.
func TestGroupOutcomeStandsAfterClaim(t *testing.T) {
	db, _ := open(t, testOptions())
	entered, release := holdCommitter(db)
	ctx, cancel := context.WithCancel(context.Background())
	id := newID()
	done := make(chan error, 1)
	go func() { done <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}}) }()
	<-entered
	cancel()
	release()
	if err := <-done; err != nil {
		t.Fatalf("Apply = %v, want nil: the commit had started", err)
	}
	if _, err := db.Transaction(context.Background(), id); err != nil {
		t.Errorf("Transaction: %v", err)
	}
}

// TestConcurrentApply runs 32 goroutines applying Changes, with and
// without group commit. Each binds its own keys and also competes for a
// contested key that exactly one goroutine may win.
func TestConcurrentApply(t *testing.T) {
	const workers, perWorker = 32, 20
	for _, group := range []bool{true, false} {
		t.Run(map[bool]string{true: "group", false: "single"}[group], func(t *testing.T) {
			ctx := context.Background()
			o := testOptions()
			o.GroupCommit = group
			db, dir := open(t, o)
			var won, lost atomic.Int32
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						id := fmt.Sprintf("%02d-%02d", w, i)
						c := sterad.Change{
							Put:         []*sterad.Transaction{txn(id, t0.Add(time.Duration(i)*time.Second))},
							Idempotency: &sterad.IdempotencyRecord{Key: "own-" + id, TxnID: id},
							Enqueue:     []sterad.QueueItem{{TxnID: id, Kind: sterad.QueueAdvice}},
						}
						if i%5 == 0 {
							c.SealCards = []sterad.SealCard{{Owner: id, Card: testCard(testPAN())}}
						}
						if i%10 == 9 {
							c.DestroyCards = []string{fmt.Sprintf("%02d-%02d", w, i-9)}
						}
						if err := db.Apply(ctx, c); err != nil {
							t.Errorf("Apply %s: %v", id, err)
						}
						cid := "contested-" + id
						err := db.Apply(ctx, sterad.Change{
							Put:         []*sterad.Transaction{txn(cid, t0)},
							Idempotency: &sterad.IdempotencyRecord{Key: fmt.Sprintf("contested-%d", i), TxnID: cid},
						})
						switch {
						case err == nil:
							won.Add(1)
						case isKind(err, sterad.EConflict, "idempotency_conflict"):
							lost.Add(1)
						default:
							t.Errorf("contested Apply: %v", err)
						}
					}
				})
			}
			wg.Wait()
			if won.Load() != perWorker || lost.Load() != (workers-1)*perWorker {
				t.Errorf("contested keys: %d won, %d lost; want %d, %d", won.Load(), lost.Load(), perWorker, (workers-1)*perWorker)
			}
			all, err := db.Transactions(ctx, sterad.TransactionFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != workers*perWorker+perWorker {
				t.Errorf("%d transactions, want %d", len(all), workers*perWorker+perWorker)
			}
			q, err := db.Queue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[uint64]bool{}
			for i, it := range q {
				if seen[it.Seq] || (i > 0 && it.Seq <= q[i-1].Seq) {
					t.Fatalf("queue seq %d repeated or out of order", it.Seq)
				}
				seen[it.Seq] = true
			}
			if len(q) != workers*perWorker {
				t.Errorf("%d queue items, want %d", len(q), workers*perWorker)
			}
			for w := range workers {
				for i := 0; i < perWorker; i += 5 {
					_, err := db.OpenCard(ctx, fmt.Sprintf("%02d-%02d", w, i))
					destroyed := i%10 == 0 && i+9 < perWorker
					if destroyed != errors.Is(err, sterad.ErrNotFound) || (!destroyed && err != nil) {
						t.Errorf("OpenCard %02d-%02d: %v (destroyed: %v)", w, i, err, destroyed)
					}
				}
			}
			st := db.Stats()
			t.Logf("%d applies in %d commits, %d slot syncs", st.Applies, st.Commits, st.SlotSyncs)
			db.Close()
			if want := workers * perWorker / 5 / 2; liveSlots(t, dir) != want {
				t.Errorf("%d key slots hold keys, want %d", liveSlots(t, dir), want)
			}
		})
	}
}

// TestCloseWhileApplying closes the store under concurrent Applies: each
// returns nil (and its Change survives a reopen) or ErrClosed.
func TestCloseWhileApplying(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	db, dir := open(t, o)
	var mu sync.Mutex
	var committed []string
	var started atomic.Int32
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%02d-%04d", w, i)
				started.Add(1)
				err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}})
				if errors.Is(err, offline.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				mu.Lock()
				committed = append(committed, id)
				mu.Unlock()
			}
		})
	}
	testutil.Eventually(t, "applies to run", func() bool { return started.Load() > 200 })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	db = reopen(t, dir, o)
	for _, id := range committed {
		if _, err := db.Transaction(ctx, id); err != nil {
			t.Fatalf("transaction %s reported committed: %v", id, err)
		}
	}
	t.Logf("%d changes committed before Close", len(committed))
}
