package offline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

func TestCompactShrinksAfterRetention(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	o.NoSync = true
	db, dir := open(t, o)
	b, err := db.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	for range 1500 {
		if err := saleWrites(ctx, db, at, b.Number); err != nil {
			t.Fatal(err)
		}
		at = at.Add(10 * time.Minute)
	}
	closeBatch(t, db)
	apply(t, db, sterad.Change{Enqueue: []sterad.QueueItem{{TxnID: "X", Kind: sterad.QueueAdvice, CreatedAt: at}}})
	keep := done("09KEEP", sterad.OpSale, sterad.StatusApproved, 2, at)
	put(t, db, keep)

	// Compaction refuses a store in use.
	if _, err := offline.Compact(dir, true); !errors.Is(err, offline.ErrInUse) || !strings.Contains(err.Error(), "daemon") {
		t.Errorf("Compact of an open store = %v, want ErrInUse naming the daemon", err)
	}
	res, err := db.ApplyRetention(ctx, offline.RetentionOptions{Before: at})
	if err != nil || res.Removed != 1500 {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	full := fileSize(t, filepath.Join(dir, "sterad.db"))
	db.Close()

	c, err := offline.Compact(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, filepath.Join(dir, "sterad.db"))
	if c.Before != full || c.After != after || after*4 > full {
		t.Errorf("compaction: %+v (file %d before, %d after), want it four times smaller at least", c, full, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "sterad.db.compact")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the compaction's temporary file is left: %v", err)
	}
	// The store opens, keeps what it had, and its sequences go on.
	db = reopen(t, dir, o)
	got, err := db.Transaction(ctx, "09KEEP")
	if err != nil || got.Version != 1 {
		t.Fatalf("kept transaction after compaction: %+v, %v", got, err)
	}
	all, _ := db.Transactions(ctx, sterad.TransactionFilter{})
	if len(all) != 1 {
		t.Errorf("%d transactions after compaction, want 1", len(all))
	}
	it := []sterad.QueueItem{{TxnID: "Y", Kind: sterad.QueueAdvice, CreatedAt: at}}
	apply(t, db, sterad.Change{Enqueue: it})
	if it[0].Seq != 2 {
		t.Errorf("queue sequence after compaction = %d, want 2", it[0].Seq)
	}
	if cur, err := db.CurrentBatch(ctx); err != nil || cur.Number != 2 {
		t.Errorf("open batch after compaction = %+v, %v", cur, err)
	}
	db.Close()
	if r, err := offline.Check(dir, testKEK); err != nil || len(r.Problems) != 0 {
		t.Errorf("check after compaction: %+v, %v", r, err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
