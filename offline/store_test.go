package offline_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

func TestLayout(t *testing.T) {
	db, dir := open(t, testOptions())
	mac := db.MAC([]byte("fingerprint me"))
	if len(mac) != 64 {
		t.Errorf("MAC = %q, want 64 hex digits", mac)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{
		{"", 0o700 | fs.ModeDir},
		{"keys", 0o700 | fs.ModeDir},
		{"sterad.db", 0o600},
		{"keys/mac.key", 0o600},
		{"keys/dek.slots", 0o600},
	} {
		fi, err := os.Stat(filepath.Join(dir, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	key := offline.UnwrapMAC(dir, testKEK)
	if len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		t.Errorf("mac.key unwraps to %d bytes (or all zeros), want 32 random bytes", len(key))
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "keys/mac.key")); bytes.Contains(raw, key) {
		t.Error("mac.key holds the MAC key unwrapped")
	}
	dbBytes, err := os.ReadFile(filepath.Join(dir, "sterad.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(dbBytes, key) {
		t.Error("the MAC key is in sterad.db")
	}

	db = reopen(t, dir, testOptions())
	if got := db.MAC([]byte("fingerprint me")); got != mac {
		t.Errorf("MAC after reopen = %s, want %s", got, mac)
	}
	if db.MAC([]byte("something else")) == mac {
		t.Error("MAC does not depend on the data")
	}
}

func TestOpenRefusesStoreWithoutMACKey(t *testing.T) {
	db, dir := open(t, testOptions())
	db.Close()
	if err := os.Remove(filepath.Join(dir, "keys/mac.key")); err != nil {
		t.Fatal(err)
	}
	if db, err := offline.Open(dir, testOptions()); err == nil {
		db.Close()
		t.Fatal("Open created a new MAC key for an existing store")
	}
}

// TestApplyRoundTrip writes every field of Change and reads it back, before
// and after a reopen.
func TestApplyRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())

	id := newID()
	tx := txn(id, t0)
	idem := &sterad.IdempotencyRecord{Key: "k-1", Fingerprint: db.MAC([]byte("body")), TxnID: id, CreatedAt: t0}
	pan := testPAN()
	q1 := sterad.QueueItem{TxnID: id, Kind: sterad.QueueReversal, CreatedAt: t0}
	q2 := sterad.QueueItem{TxnID: id, Kind: sterad.QueueAdvice, CreatedAt: t0.Add(time.Second)}
	q3 := sterad.QueueItem{TxnID: "other", Kind: sterad.QueueVoid, CreatedAt: t0.Add(2 * time.Second)}
	b1 := &sterad.Batch{Number: 1, State: sterad.BatchOpen, OpenedAt: t0}
	v1 := &sterad.VaultEntry{Reference: "RSV-1", MaskedPAN: sterad.MaskPAN(pan), Brand: sterad.BrandVisa, CheckTxn: id, CreatedAt: t0, RetainUntil: t0.AddDate(0, 0, 30),
		Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2025, Month: 4, Day: 1}, CheckOut: sterad.Date{Year: 2025, Month: 4, Day: 3}}}
	v2 := &sterad.VaultEntry{Reference: "RSV-2", CreatedAt: t0}

	apply(t, db, sterad.Change{
		Put:         []*sterad.Transaction{tx},
		Idempotency: idem,
		SealCards:   []sterad.SealCard{{Owner: id, Card: testCard(pan)}, {Owner: sterad.VaultOwner("RSV-1"), Card: testCard(pan)}, {Owner: "gone", Card: testCard(pan)}},
		Enqueue:     []sterad.QueueItem{q1, q2, q3},
		PutBatches:  []*sterad.Batch{b1},
		PutVault:    []*sterad.VaultEntry{v1, v2},
	})
	q1.Seq, q2.Seq, q3.Seq = 1, 2, 3
	q2.Attempts, q2.LastAttempt, q2.LastError, q2.Parked = 3, t0.Add(time.Minute), "no_response", true
	b1.State, b1.ClosingAt = sterad.BatchClosing, t0.Add(time.Hour)
	b1.Terminals = []sterad.TerminalTotals{{TerminalID: "TRM00001", Totals: sterad.Totals{DebitCount: 2, DebitAmount: 77000}, Result: "00"}}
	apply(t, db, sterad.Change{
		DestroyCards: []string{"gone"},
		UpdateQueue:  []sterad.QueueItem{q2},
		Dequeue:      []uint64{q1.Seq},
		PutBatches:   []*sterad.Batch{b1},
		DeleteVault:  []string{"RSV-2"},
	})

	check := func(t *testing.T, db *offline.DB) {
		t.Helper()
		got, err := db.Transaction(ctx, id)
		if err != nil {
			t.Fatalf("Transaction: %v", err)
		}
		jsonEqual(t, got, tx)
		if _, err := db.Transaction(ctx, "missing"); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("Transaction(missing) = %v, want ErrNotFound", err)
		}

		gotIdem, err := db.Idempotency(ctx, "k-1")
		if err != nil {
			t.Fatalf("Idempotency: %v", err)
		}
		jsonEqual(t, gotIdem, idem)
		if _, err := db.Idempotency(ctx, "k-2"); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("Idempotency(unbound) = %v, want ErrNotFound", err)
		}

		for _, owner := range []string{id, sterad.VaultOwner("RSV-1")} {
			card, err := db.OpenCard(ctx, owner)
			if err != nil {
				t.Fatalf("OpenCard(%s): %v", owner, err)
			}
			want := testCard(pan)
			if card.PAN.Reveal() != pan || card.Expiry != want.Expiry || card.Entry != want.Entry || card.Brand != want.Brand {
				t.Errorf("OpenCard(%s) = %v, want %v", owner, card.LogValue(), want.LogValue())
			}
			if card.Track2 != nil || card.ICC != nil {
				t.Errorf("OpenCard(%s) returned sensitive authentication data", owner)
			}
		}
		if _, err := db.OpenCard(ctx, "gone"); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("OpenCard(destroyed) = %v, want ErrNotFound", err)
		}

		queue, err := db.Queue(ctx)
		if err != nil {
			t.Fatalf("Queue: %v", err)
		}
		jsonEqual(t, queue, []sterad.QueueItem{q2, q3})

		batch, err := db.Batch(ctx, 1)
		if err != nil {
			t.Fatalf("Batch: %v", err)
		}
		jsonEqual(t, batch, b1)
		batches, err := db.Batches(ctx)
		if err != nil {
			t.Fatalf("Batches: %v", err)
		}
		jsonEqual(t, batches, []*sterad.Batch{b1})
		if _, err := db.Batch(ctx, 2); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("Batch(2) = %v, want ErrNotFound", err)
		}

		entry, err := db.VaultEntry(ctx, "RSV-1")
		if err != nil {
			t.Fatalf("VaultEntry: %v", err)
		}
		jsonEqual(t, entry, v1)
		if _, err := db.VaultEntry(ctx, "RSV-2"); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("VaultEntry(deleted) = %v, want ErrNotFound", err)
		}
		vault, err := db.Vault(ctx)
		if err != nil {
			t.Fatalf("Vault: %v", err)
		}
		jsonEqual(t, vault, []*sterad.VaultEntry{v1})
	}
	t.Run("open", func(t *testing.T) { check(t, db) })
	db.Close()
	t.Run("reopened", func(t *testing.T) { check(t, reopen(t, dir, testOptions())) })
}

func TestApplyIdempotencyConflictWritesNothing(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	first := newID()
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(first, t0)}, Idempotency: &sterad.IdempotencyRecord{Key: "k", TxnID: first}})

	second := newID()
	err := db.Apply(ctx, sterad.Change{
		Put:         []*sterad.Transaction{txn(second, t0)},
		Idempotency: &sterad.IdempotencyRecord{Key: "k", TxnID: second},
		SealCards:   []sterad.SealCard{{Owner: second, Card: testCard(testPAN())}},
		Enqueue:     []sterad.QueueItem{{TxnID: second, Kind: sterad.QueueAdvice}},
		PutBatches:  []*sterad.Batch{{Number: 1, State: sterad.BatchOpen}},
		PutVault:    []*sterad.VaultEntry{{Reference: "R"}},
	})
	var serr *sterad.Error
	if !errors.As(err, &serr) || serr.Kind != sterad.EConflict || serr.Code != "idempotency_conflict" {
		t.Fatalf("Apply = %v, want *sterad.Error conflict idempotency_conflict", err)
	}
	assertNothingOf(t, db, second)
	if got, _ := db.Idempotency(ctx, "k"); got == nil || got.TxnID != first {
		t.Errorf("key k is bound to %+v, want %s", got, first)
	}
	db.Close()
	slots, err := os.ReadFile(filepath.Join(dir, "keys/dek.slots"))
	if err != nil {
		t.Fatal(err)
	}
	if slots = slots[offline.SlotsHeader:]; !bytes.Equal(slots, make([]byte, len(slots))) {
		t.Error("a failed Apply left a key in dek.slots")
	}
}

// assertNothingOf checks that nothing a failed Change for transaction id
// would have written is in the store.
func assertNothingOf(t *testing.T, db *offline.DB, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Transaction(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("transaction %s of a failed Change: %v, want ErrNotFound", id, err)
	}
	if _, err := db.OpenCard(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("card of a failed Change: %v, want ErrNotFound", err)
	}
	queue, err := db.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range queue {
		if it.TxnID == id {
			t.Errorf("queue item of a failed Change: %+v", it)
		}
	}
	all, err := db.Transactions(ctx, sterad.TransactionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range all {
		if tx.ID == id {
			t.Errorf("transaction %s of a failed Change is listed", id)
		}
	}
}

func TestApplyRejectsInvalidChanges(t *testing.T) {
	db, _ := open(t, testOptions())
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 7, State: sterad.BatchOpen}}})
	for _, c := range []struct {
		name   string
		change sterad.Change
		kind   string
		code   string
	}{
		{"nil transaction", sterad.Change{Put: []*sterad.Transaction{nil}}, sterad.EInvalid, "invalid_change"},
		{"transaction without ID", sterad.Change{Put: []*sterad.Transaction{{}}}, sterad.EInvalid, "invalid_change"},
		{"reference with NUL", sterad.Change{Put: []*sterad.Transaction{{ID: "x", Reference: "a\x00b"}}}, sterad.EInvalid, "invalid_change"},
		{"empty idempotency key", sterad.Change{Idempotency: &sterad.IdempotencyRecord{}}, sterad.EInvalid, "invalid_change"},
		{"seal nil card", sterad.Change{SealCards: []sterad.SealCard{{Owner: "x"}}}, sterad.EInvalid, "invalid_change"},
		{"seal without owner", sterad.Change{SealCards: []sterad.SealCard{{Card: testCard(testPAN())}}}, sterad.EInvalid, "invalid_change"},
		{"update missing queue item", sterad.Change{UpdateQueue: []sterad.QueueItem{{Seq: 42}}}, sterad.ENotFound, "queue_item_not_found"},
		{"batch number 0", sterad.Change{PutBatches: []*sterad.Batch{{Number: 0, State: sterad.BatchOpen}}}, sterad.EInvalid, "invalid_change"},
		{"batch unknown state", sterad.Change{PutBatches: []*sterad.Batch{{Number: 8, State: "ajar"}}}, sterad.EInvalid, "invalid_change"},
		{"second open batch", sterad.Change{PutBatches: []*sterad.Batch{{Number: 8, State: sterad.BatchOpen}}}, sterad.EConflict, "batch_open"},
		{"vault without reference", sterad.Change{PutVault: []*sterad.VaultEntry{{}}}, sterad.EInvalid, "invalid_change"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := newID()
			c.change.Put = append(c.change.Put, txn(id, t0))
			err := db.Apply(context.Background(), c.change)
			if !isKind(err, c.kind, c.code) {
				t.Fatalf("Apply = %v (%s/%s), want %s/%s", err, sterad.ErrorKind(err), sterad.ErrorCode(err), c.kind, c.code)
			}
			assertNothingOf(t, db, id)
		})
	}
}

func TestApplyContextAndClose(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(map[bool]string{true: "group", false: "single"}[group], func(t *testing.T) {
			o := testOptions()
			o.GroupCommit = group
			db, _ := open(t, o)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			id := newID()
			if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}}); !errors.Is(err, context.Canceled) {
				t.Errorf("Apply(cancelled ctx) = %v, want context.Canceled", err)
			}
			assertNothingOf(t, db, id)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := db.Apply(context.Background(), sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}}); !errors.Is(err, offline.ErrClosed) {
				t.Errorf("Apply after Close = %v, want ErrClosed", err)
			}
			if _, err := db.Transaction(context.Background(), id); !errors.Is(err, offline.ErrClosed) {
				t.Errorf("Transaction after Close = %v, want ErrClosed", err)
			}
			if err := db.Close(); err != nil {
				t.Errorf("second Close = %v", err)
			}
		})
	}
}

func TestTransactionsFilter(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	jst := time.FixedZone("JST", 9*3600)
	// Creation order is a, b, c, d, e; IDs are deliberately not in that
	// order, so the results' order comes from CreatedAt.
	mk := func(id string, created time.Time, mod func(*sterad.Transaction)) *sterad.Transaction {
		tx := txn(id, created)
		tx.Reference, tx.Original, tx.Batch = "", "", 0
		mod(tx)
		return tx
	}
	a := mk("E-a", time.Date(2025, 3, 13, 14, 59, 0, 0, time.UTC), func(t *sterad.Transaction) { // 23:59 JST on the 13th
		t.Reference, t.Batch, t.Op, t.Status = "R1", 1, sterad.OpPreauth, sterad.StatusApproved
	})
	b := mk("D-b", time.Date(2025, 3, 13, 15, 0, 0, 0, time.UTC), func(t *sterad.Transaction) { // 00:00 JST on the 14th
		t.Reference, t.Original, t.Batch, t.Op, t.Status = "R1", "E-a", 1, sterad.OpIncremental, sterad.StatusApproved
	})
	c := mk("C-c", time.Date(2025, 3, 14, 2, 0, 0, 0, time.UTC), func(t *sterad.Transaction) {
		t.Reference, t.Original, t.Batch, t.Op, t.Status = "R1", "E-a", 2, sterad.OpCompletion, sterad.StatusPending
	})
	d := mk("B-d", time.Date(2025, 3, 14, 23, 59, 59, 999999999, time.UTC), func(t *sterad.Transaction) {
		t.Reference, t.Batch, t.Op, t.Status = "R2", 2, sterad.OpSale, sterad.StatusDeclined
	})
	e := mk("A-e", time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC), func(t *sterad.Transaction) {
		t.Reference, t.Original, t.Batch, t.Op, t.Status = "R2", "B-d", 2, sterad.OpRefund, sterad.StatusApproved
	})
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{e, c, a}})
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{d, b}})

	day := func(y int, m time.Month, d int) sterad.Date { return sterad.Date{Year: y, Month: m, Day: d} }
	for _, tc := range []struct {
		name   string
		filter sterad.TransactionFilter
		want   string
	}{
		{"all", sterad.TransactionFilter{}, "E-a,D-b,C-c,B-d,A-e"},
		{"limit", sterad.TransactionFilter{Limit: 2}, "E-a,D-b"},
		{"reference", sterad.TransactionFilter{Reference: "R1"}, "E-a,D-b,C-c"},
		{"reference limit", sterad.TransactionFilter{Reference: "R1", Limit: 2}, "E-a,D-b"},
		{"reference and status", sterad.TransactionFilter{Reference: "R1", Status: sterad.StatusApproved}, "E-a,D-b"},
		{"reference prefix is not a match", sterad.TransactionFilter{Reference: "R"}, ""},
		{"status", sterad.TransactionFilter{Status: sterad.StatusApproved}, "E-a,D-b,A-e"},
		{"op", sterad.TransactionFilter{Op: sterad.OpRefund}, "A-e"},
		{"original", sterad.TransactionFilter{Original: "E-a"}, "D-b,C-c"},
		{"original and op", sterad.TransactionFilter{Original: "E-a", Op: sterad.OpCompletion}, "C-c"},
		{"batch", sterad.TransactionFilter{Batch: 2}, "C-c,B-d,A-e"},
		{"batch and reference", sterad.TransactionFilter{Batch: 2, Reference: "R1"}, "C-c"},
		{"date UTC", sterad.TransactionFilter{Date: day(2025, 3, 14)}, "C-c,B-d"},
		{"date UTC limit", sterad.TransactionFilter{Date: day(2025, 3, 14), Limit: 1}, "C-c"},
		{"date JST 13th", sterad.TransactionFilter{Date: day(2025, 3, 13), Location: jst}, "E-a"},
		{"date JST 14th", sterad.TransactionFilter{Date: day(2025, 3, 14), Location: jst}, "D-b,C-c"},
		{"date JST 15th", sterad.TransactionFilter{Date: day(2025, 3, 15), Location: jst}, "B-d,A-e"},
		{"date and batch", sterad.TransactionFilter{Date: day(2025, 3, 15), Location: jst, Batch: 2, Op: sterad.OpSale}, "B-d"},
		{"no match", sterad.TransactionFilter{Status: sterad.StatusVoided}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Transactions(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != tc.want {
				t.Errorf("got %q, want %q", ids(got), tc.want)
			}
		})
	}
}

// TestIndexesAfterReplace replaces a transaction with one whose indexed
// fields all changed: no filter may still find it by the old values.
func TestIndexesAfterReplace(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	id := newID()
	old := txn(id, t0)
	old.Reference, old.Original, old.Batch, old.Step = "OLD-REF", "OLD-ORIG", 1, sterad.StepSent
	other := txn(newID(), t0.Add(time.Hour))
	other.Reference, other.Original, other.Batch = "OLD-REF", "OLD-ORIG", 1
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{old, other}})

	upd := old.Clone()
	upd.Reference, upd.Original, upd.Batch, upd.Step = "NEW-REF", "NEW-ORIG", 2, sterad.StepDone
	upd.CreatedAt = t0.AddDate(0, 0, 1)
	upd.Status = sterad.StatusApproved
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{upd}})

	for _, tc := range []struct {
		name   string
		filter sterad.TransactionFilter
		want   string
	}{
		{"old reference", sterad.TransactionFilter{Reference: "OLD-REF"}, other.ID},
		{"new reference", sterad.TransactionFilter{Reference: "NEW-REF"}, id},
		{"old original", sterad.TransactionFilter{Original: "OLD-ORIG"}, other.ID},
		{"new original", sterad.TransactionFilter{Original: "NEW-ORIG"}, id},
		{"old batch", sterad.TransactionFilter{Batch: 1}, other.ID},
		{"new batch", sterad.TransactionFilter{Batch: 2}, id},
		{"old date", sterad.TransactionFilter{Date: sterad.DateOf(t0)}, other.ID},
		{"new date", sterad.TransactionFilter{Date: sterad.DateOf(upd.CreatedAt)}, id},
		{"all, in creation order", sterad.TransactionFilter{}, other.ID + "," + id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Transactions(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != tc.want {
				t.Errorf("got %q, want %q", ids(got), tc.want)
			}
		})
	}
	unfinished, err := db.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids(unfinished) != other.ID {
		t.Errorf("Unfinished = %q, want %q", ids(unfinished), other.ID)
	}

	// And back: unfinished again, indexes follow.
	back := upd.Clone()
	back.Step, back.Reference = sterad.StepReversal, ""
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{back}})
	if got, _ := db.Transactions(ctx, sterad.TransactionFilter{Reference: "NEW-REF"}); len(got) != 0 {
		t.Errorf("cleared reference still finds %q", ids(got))
	}
	if got, _ := db.Unfinished(ctx); ids(got) != other.ID+","+id {
		t.Errorf("Unfinished = %q, want both", ids(got))
	}
}

func TestUnfinished(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	var puts []*sterad.Transaction
	want := ""
	for i, step := range []sterad.Step{sterad.StepCreated, sterad.StepDone, sterad.StepSent, sterad.StepDone, sterad.StepQueued, sterad.StepReversal} {
		tx := txn(newID(), t0.Add(time.Duration(i)*time.Minute))
		tx.Step = step
		puts = append(puts, tx)
		if step != sterad.StepDone {
			want += "," + tx.ID
		}
	}
	apply(t, db, sterad.Change{Put: puts})
	got, err := db.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids(got) != want[1:] {
		t.Errorf("Unfinished = %q, want %q", ids(got), want[1:])
	}
}

func TestQueueFIFO(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	for i := range 5 {
		apply(t, db, sterad.Change{Enqueue: []sterad.QueueItem{{TxnID: string(rune('a' + i)), Kind: sterad.QueueAdvice}}})
	}
	apply(t, db, sterad.Change{Dequeue: []uint64{1, 3}})
	db.Close()
	db = reopen(t, dir, testOptions())
	apply(t, db, sterad.Change{Enqueue: []sterad.QueueItem{{TxnID: "f"}, {TxnID: "g"}}})
	q, err := db.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var seqs []uint64
	for _, it := range q {
		got = append(got, it.TxnID)
		seqs = append(seqs, it.Seq)
	}
	if want := []string{"b", "d", "e", "f", "g"}; !equal(got, want) {
		t.Errorf("queue = %v, want %v", got, want)
	}
	// Sequence numbers are never reused, even after dequeue and reopen.
	if want := []uint64{2, 4, 5, 6, 7}; !equal(seqs, want) {
		t.Errorf("seqs = %v, want %v", seqs, want)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCurrentBatch(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	clock := o.Clock.(*sterad.FakeClock)
	db, dir := open(t, o)

	// Many first callers: batch 1 is created once.
	var wg sync.WaitGroup
	got := make([]*sterad.Batch, 16)
	errs := make([]error, 16)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = db.CurrentBatch(ctx) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("CurrentBatch: %v", errs[i])
		}
		if got[i].Number != 1 || got[i].State != sterad.BatchOpen || !got[i].OpenedAt.Equal(t0) {
			t.Errorf("CurrentBatch = %+v, want batch 1 open at %v", got[i], t0)
		}
	}
	commits := db.Stats().Commits
	clock.Advance(time.Hour)
	if b, err := db.CurrentBatch(ctx); err != nil || b.Number != 1 || !b.OpenedAt.Equal(t0) {
		t.Errorf("CurrentBatch again = %+v, %v", b, err)
	}
	if db.Stats().Commits != commits {
		t.Error("CurrentBatch wrote with a batch open")
	}
	db.Close()
	db = reopen(t, dir, o)
	all, err := db.Batches(ctx)
	if err != nil || len(all) != 1 || all[0].Number != 1 || !all[0].OpenedAt.Equal(t0) {
		t.Fatalf("Batches after reopen = %+v, %v; want batch 1 only", all, err)
	}

	// Closing batch 1 without opening another: the next call opens 2.
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 1, State: sterad.BatchClosed, OpenedAt: t0, Version: 1}}})
	if b, err := db.CurrentBatch(ctx); err != nil || b.Number != 2 || !b.OpenedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("CurrentBatch after close = %+v, %v; want batch 2", b, err)
	}
}

// TestCurrentBatchNeverStale: CurrentBatch keeps the open batch in memory
// (it is read once per sale), yet never answers with a batch older than
// the last change committed before it was called, whether the change went
// through the committer (PutBatches) or through the store's own writes
// (the next batch opened on demand). What it
// returns is the caller's to change.
func TestCurrentBatchNeverStale(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	b, err := db.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.State, b.Attempts = sterad.BatchClosed, 99 // the caller's copy
	if again, _ := db.CurrentBatch(ctx); again.State != sterad.BatchOpen || again.Attempts != 0 {
		t.Fatalf("CurrentBatch after the caller changed its copy = %+v", again)
	}

	// A writer records each attempt count once it is committed; readers
	// must see at least the one committed before they asked.
	const writes = 300
	var committed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				before := committed.Load()
				got, err := db.CurrentBatch(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if int64(got.Attempts) < before {
					t.Errorf("CurrentBatch = attempt %d after attempt %d was committed", got.Attempts, before)
					return
				}
			}
		})
	}
	for i := 1; i <= writes; i++ {
		apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 1, State: sterad.BatchOpen, OpenedAt: t0, Attempts: i, Version: uint64(i)}}})
		committed.Store(int64(i))
	}
	close(done)
	wg.Wait()

	// Closed by the committer: the next call opens batch 2 (a write of the
	// store's own), and then sees it closed too.
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 1, State: sterad.BatchClosed, OpenedAt: t0, Version: writes + 1}}})
	if b, err := db.CurrentBatch(ctx); err != nil || b.Number != 2 || b.State != sterad.BatchOpen {
		t.Fatalf("CurrentBatch after closing 1 = %+v, %v; want 2 open", b, err)
	}
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 2, State: sterad.BatchClosing, OpenedAt: t0, Version: 1}}})
	if b, err := db.CurrentBatch(ctx); err != nil || b.Number != 3 || b.State != sterad.BatchOpen {
		t.Fatalf("CurrentBatch after 2 began closing = %+v, %v; want 3 open", b, err)
	}
}

// TestBatchNumberWrap closes batch 999999; the next batch is 1 again and
// the batches keep their creation order.
func TestBatchNumberWrap(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 1, State: sterad.BatchClosed, OpenedAt: t0}}})
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 999999, State: sterad.BatchOpen, OpenedAt: t0.Add(time.Hour)}}})
	// One Change closes 999999 and opens the wrapped 1.
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{
		{Number: 999999, State: sterad.BatchClosed, OpenedAt: t0.Add(time.Hour), Version: 1},
		{Number: 1, State: sterad.BatchOpen, OpenedAt: t0.Add(2 * time.Hour)}, // a new record: version 0
	}})
	all, err := db.Batches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range all {
		got = append(got, b.State+"@"+b.OpenedAt.Sub(t0).String())
	}
	if want := []string{"closed@0s", "closed@1h0m0s", "open@2h0m0s"}; !equal(got, want) {
		t.Errorf("Batches = %v, want %v", got, want)
	}
	cur, err := db.CurrentBatch(ctx)
	if err != nil || cur.Number != 1 || !cur.OpenedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("CurrentBatch = %+v, %v; want the new batch 1", cur, err)
	}
	if b, err := db.Batch(ctx, 1); err != nil || !b.OpenedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("Batch(1) = %+v, %v; want the new batch 1", b, err)
	}
	// Updating the open batch 1 replaces it, not a third record.
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{{Number: 1, State: sterad.BatchClosing, OpenedAt: t0.Add(2 * time.Hour), Version: 1}}})
	if all, _ := db.Batches(ctx); len(all) != 3 || all[2].State != sterad.BatchClosing {
		t.Errorf("Batches after update = %d records, last %+v", len(all), all[len(all)-1])
	}
}

// The caller learns the Seq of what it queued from its own Change.
func TestEnqueueAssignsSeqInPlace(t *testing.T) {
	db, _ := open(t, testOptions())
	c := sterad.Change{Enqueue: []sterad.QueueItem{{TxnID: "a", Kind: sterad.QueueReversal}, {TxnID: "b", Kind: sterad.QueueAdvice}}}
	if err := db.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	q, err := db.Queue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 || c.Enqueue[0].Seq != q[0].Seq || c.Enqueue[1].Seq != q[1].Seq || q[0].Seq == 0 {
		t.Fatalf("change items %+v, queue %+v", c.Enqueue, q)
	}
}
