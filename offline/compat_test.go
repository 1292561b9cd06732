package offline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// Record formats (offline/record.go): '{' is a record an earlier release
// wrote as JSON; these are this release's.
const (
	fmtTxn   = 0xD4
	fmtIdem  = 0xC9
	fmtQueue = 0xD1
)

// TestJSONRecordsOfEarlierReleases opens a store whose records an earlier
// release wrote as JSON (testdata/store-v1): they read as they were
// written, through every index; a write checks the version read from JSON,
// moves the index entries the JSON record had and stores the record in the
// binary encoding; nothing needs a migration.
func TestJSONRecordsOfEarlierReleases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	copyDir(t, fixtureV1, dir)
	db := reopen(t, dir, testOptions())

	for i, id := range fixtureTxnIDs {
		if f := offline.RecordFormat(db, "txns", []byte(id)); f != '{' {
			t.Fatalf("the fixture's transaction %s is not JSON (%#x)", id, f)
		}
		got, err := db.Transaction(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := txn(id, fixtureT0.Add(time.Duration(i)*time.Minute))
		want.Batch, want.Version = 1, 1
		jsonEqual(t, got, want)
	}
	count := func(f sterad.TransactionFilter) int {
		t.Helper()
		l, err := db.Transactions(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	first := fixtureTxnIDs[0]
	if n := count(sterad.TransactionFilter{Reference: "RSV-" + first}); n != 1 {
		t.Errorf("by reference: %d", n)
	}
	if n := count(sterad.TransactionFilter{Batch: 1}); n != 3 {
		t.Errorf("by batch: %d", n)
	}
	if n := count(sterad.TransactionFilter{Date: sterad.DateOf(fixtureT0)}); n != 3 {
		t.Errorf("by date: %d", n)
	}

	// Compare-and-swap against the version of a JSON record.
	t1, err := db.Transaction(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	stale := t1.Clone()
	stale.Version = 0
	if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{stale}}); !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("a stale copy of a JSON record: %v, want ErrStale", err)
	}
	if f := offline.RecordFormat(db, "txns", []byte(first)); f != '{' {
		t.Errorf("a refused write changed the record (%#x)", f)
	}
	t1.Reference = "RSV-MOVED"
	if err := t1.Transition(sterad.StatusApproved, sterad.StepDone, fixtureT0.Add(time.Hour), "approved"); err != nil {
		t.Fatal(err)
	}
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{t1}})
	if f := offline.RecordFormat(db, "txns", []byte(first)); f != fmtTxn {
		t.Errorf("a rewritten record has format %#x, want %#x", f, fmtTxn)
	}
	got, err := db.Transaction(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, t1)
	if n := count(sterad.TransactionFilter{Reference: "RSV-" + first}); n != 0 {
		t.Errorf("the old reference still lists it")
	}
	if n := count(sterad.TransactionFilter{Reference: "RSV-MOVED"}); n != 1 {
		t.Errorf("the new reference lists %d", n)
	}
	if u, err := db.Unfinished(ctx); err != nil || len(u) != 2 {
		t.Errorf("unfinished: %d, %v", len(u), err)
	}
	// The binary record's version is checked as well.
	stale = t1.Clone()
	stale.Version--
	if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{stale}}); !errors.Is(err, sterad.ErrStale) {
		t.Errorf("a stale copy of a binary record: %v, want ErrStale", err)
	}

	// Idempotency records: the old ones read, new ones are binary.
	if r, err := db.Idempotency(ctx, "idem-"+first); err != nil || r.TxnID != first || r.Key != "idem-"+first ||
		r.Fingerprint != db.MAC([]byte(first)) || !r.CreatedAt.Equal(fixtureT0) {
		t.Errorf("JSON idempotency record: %+v, %v", r, err)
	}
	nt := txn(newID(), fixtureT0.Add(2*time.Hour))
	rec := &sterad.IdempotencyRecord{Key: nt.IdempotencyKey, Fingerprint: db.MAC([]byte(nt.ID)), TxnID: nt.ID, CreatedAt: nt.CreatedAt}
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{nt}, Idempotency: rec})
	if f := offline.RecordFormat(db, "idem", []byte(rec.Key)); f != fmtIdem {
		t.Errorf("a new idempotency record has format %#x", f)
	}
	if r, err := db.Idempotency(ctx, rec.Key); err != nil {
		t.Error(err)
	} else {
		jsonEqual(t, r, rec)
	}

	// Queue items: the old one reads and is updated in the new encoding.
	q, err := db.Queue(ctx)
	if err != nil || len(q) != 1 {
		t.Fatalf("queue: %+v, %v", q, err)
	}
	it := q[0]
	it.Attempts, it.LastAttempt, it.LastError = 1, fixtureT0.Add(time.Minute), "timeout"
	apply(t, db, sterad.Change{UpdateQueue: []sterad.QueueItem{it}})
	if f := offline.RecordFormat(db, "queue", be64(it.Seq)); f != fmtQueue {
		t.Errorf("an updated queue item has format %#x", f)
	}
	if q, err := db.Queue(ctx); err != nil || len(q) != 1 {
		t.Errorf("queue: %+v, %v", q, err)
	} else {
		jsonEqual(t, q[0], it)
	}

	// All of it again after a restart.
	db.Close()
	db = reopen(t, dir, testOptions())
	for _, id := range fixtureTxnIDs {
		if _, err := db.Transaction(ctx, id); err != nil {
			t.Errorf("%s after reopen: %v", id, err)
		}
	}
	if l, err := db.Transactions(ctx, sterad.TransactionFilter{}); err != nil || len(l) != 4 {
		t.Errorf("after reopen: %d transactions, %v", len(l), err)
	}
}

func be64(n uint64) []byte {
	return []byte{byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}
