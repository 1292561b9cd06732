package offline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// done returns a finished transaction created at at.
func done(id string, op sterad.Op, status sterad.Status, batch int, at time.Time) *sterad.Transaction {
	t := txn(id, at)
	t.Op, t.Status, t.Step, t.Batch, t.Reference, t.IdempotencyKey = op, status, sterad.StepDone, batch, "", "idem-"+id
	t.HasCard = false
	return t
}

// closeBatch closes the open batch and opens the next one.
func closeBatch(t *testing.T, db *offline.DB) {
	t.Helper()
	b, err := db.CurrentBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.State, b.ClosedAt = sterad.BatchClosed, t0
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{b}})
	if _, err := db.CurrentBatch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, db *offline.DB, txns ...*sterad.Transaction) {
	t.Helper()
	for _, x := range txns {
		apply(t, db, sterad.Change{Put: []*sterad.Transaction{x},
			Idempotency: &sterad.IdempotencyRecord{Key: x.IdempotencyKey, Fingerprint: "f", TxnID: x.ID, CreatedAt: x.CreatedAt}})
	}
}

// TestRetentionRemovesOnlyWhatMayGo runs on a store of binary records,
// and on one whose records of the closed batch an earlier release wrote
// as JSON (the archive holds those as they were).
func TestRetentionRemovesOnlyWhatMayGo(t *testing.T) {
	for _, enc := range []string{"binary", "json"} {
		t.Run(enc, func(t *testing.T) { retentionRemovesOnlyWhatMayGo(t, enc == "json") })
	}
}

func retentionRemovesOnlyWhatMayGo(t *testing.T, jsonFirst bool) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	offline.WriteJSONRecords(db, jsonFirst)
	old := time.Date(2024, 1, 10, 12, 0, 0, 0, time.UTC)
	recent := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cutoff := time.Date(2024, 2, 14, 0, 0, 0, 0, time.UTC)

	// Batch 1 (closed): an old sale, an old completed pre-authorization
	// and its completion, an old sale refunded recently, an old sale
	// still owed to the acquirer (queued), an old card check of a
	// guaranteed reservation.
	if _, err := db.CurrentBatch(ctx); err != nil {
		t.Fatal(err)
	}
	sale := done("01SALE", sterad.OpSale, sterad.StatusApproved, 1, old)
	pre := done("01PRE", sterad.OpPreauth, sterad.StatusApproved, 0, old)
	pre.CompletedBy = "01COMP"
	comp := done("01COMP", sterad.OpCompletion, sterad.StatusApproved, 1, old.Add(time.Hour))
	comp.Original = "01PRE"
	refunded := done("01REFUNDED", sterad.OpSale, sterad.StatusApproved, 1, old)
	refund := done("03REFUND", sterad.OpRefund, sterad.StatusApproved, 2, recent)
	refund.Original = "01REFUNDED"
	queued := done("01QUEUED", sterad.OpSale, sterad.StatusStoodIn, 1, old)
	check := done("01CHECK", sterad.OpCardCheck, sterad.StatusApproved, 0, old)
	hold := done("01HOLD", sterad.OpPreauth, sterad.StatusApproved, 0, old)
	put(t, db, sale, pre, comp, refunded, queued, check, hold)
	apply(t, db, sterad.Change{Enqueue: []sterad.QueueItem{{TxnID: "01QUEUED", Kind: sterad.QueueAdvice, CreatedAt: old}}})
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{{Reference: "RSV-1", State: sterad.ReservationGuaranteed,
		CheckTxn: "01CHECK", CreatedAt: old, UpdatedAt: old}}})
	closeBatch(t, db)
	offline.WriteJSONRecords(db, false) // this release from here on
	// Batch 2 (open): an old sale (a batch left open that long) and the
	// recent refund.
	inOpen := done("01INOPEN", sterad.OpSale, sterad.StatusApproved, 2, old)
	put(t, db, inOpen, refund)

	// The dry run counts and writes nothing.
	dry, err := db.ApplyRetention(ctx, offline.RetentionOptions{Before: cutoff, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantKept := map[string]int{offline.KeptQueued: 1, offline.KeptReservation: 1, offline.KeptOpenHold: 1,
		offline.KeptBatchOpen: 1, offline.KeptRecentLink: 1}
	if dry.Removed != 3 || !equalMaps(dry.Kept, wantKept) || len(dry.Archives) != 1 || dry.Archives[0].Month != "2024-01" {
		t.Errorf("dry run = removed %d, kept %v, archives %+v; want 3 removed, kept %v, 2024-01", dry.Removed, dry.Kept, dry.Archives, wantKept)
	}
	if _, err := os.Stat(filepath.Join(dir, "archive")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run made the archive directory (%v)", err)
	}
	if _, err := db.Transaction(ctx, "01SALE"); err != nil {
		t.Errorf("a dry run removed a transaction: %v", err)
	}

	res, err := db.ApplyRetention(ctx, offline.RetentionOptions{Before: cutoff})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 3 || !equalMaps(res.Kept, wantKept) {
		t.Errorf("retention = removed %d, kept %v", res.Removed, res.Kept)
	}
	for _, id := range []string{"01SALE", "01PRE", "01COMP"} {
		if _, err := db.Transaction(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("%s after retention: %v, want not found", id, err)
		}
		if _, err := db.Idempotency(ctx, "idem-"+id); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("idempotency key of %s after retention: %v, want not found", id, err)
		}
	}
	for _, id := range []string{"01REFUNDED", "03REFUND", "01QUEUED", "01CHECK", "01HOLD", "01INOPEN"} {
		if _, err := db.Transaction(ctx, id); err != nil {
			t.Errorf("%s was removed: %v", id, err)
		}
	}
	// The indexes no longer list them.
	b1, err := db.Transactions(ctx, sterad.TransactionFilter{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(b1); got != "01QUEUED,01REFUNDED" {
		t.Errorf("batch 1 lists %s", got)
	}
	all, err := db.Transactions(ctx, sterad.TransactionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Errorf("%d transactions listed, want 6: %s", len(all), ids(all))
	}
	byOrig, _ := db.Transactions(ctx, sterad.TransactionFilter{Original: "01PRE"})
	if len(byOrig) != 0 {
		t.Errorf("the original index still lists %s", ids(byOrig))
	}

	// The archive holds exactly the removed records, as stored.
	arch, err := offline.ReadArchive(filepath.Join(dir, "archive", "2024-01.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range arch {
		got = append(got, x.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"01COMP", "01PRE", "01SALE"}) {
		t.Errorf("archive holds %v", got)
	}
	for _, x := range arch {
		if x.ID == "01PRE" && (x.CompletedBy != "01COMP" || x.Version != 1 || x.Amount.String() != pre.Amount.String()) {
			t.Errorf("archived pre-authorization = %+v", x)
		}
		if x.ID == "01SALE" {
			jsonEqual(t, x, sale) // as stored (Apply advanced sale to the stored version)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "archive", "2024-01.jsonl.gz")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive file: %v, mode %v", err, fi.Mode())
	}

	// Later: the queue item is delivered, the hold voided in a closed
	// batch, the reservation released long ago. A second run removes
	// them and appends to the same month's file.
	apply(t, db, sterad.Change{Dequeue: []uint64{1}})
	rs, _ := db.Reservation(ctx, "RSV-1")
	rs.State, rs.UpdatedAt = sterad.ReservationReleased, recent
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{rs}})
	res, err = db.ApplyRetention(ctx, offline.RetentionOptions{Before: cutoff})
	if err != nil {
		t.Fatal(err)
	}
	// The reservation changed after the cut-off: its card check stays.
	if res.Removed != 1 || res.Kept[offline.KeptReservation] != 1 {
		t.Errorf("second run = removed %d, kept %v; want the delivered sale removed, the card check kept", res.Removed, res.Kept)
	}
	arch, err = offline.ReadArchive(filepath.Join(dir, "archive", "2024-01.jsonl.gz"))
	if err != nil || len(arch) != 4 || arch[3].ID != "01QUEUED" {
		t.Errorf("archive after a second run: %d records, %v", len(arch), err)
	}
	// Nothing is left behind by a run with nothing to remove.
	if _, err := os.Stat(filepath.Join(dir, "archive", "2024-01.jsonl.gz.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a temporary archive file was left: %v", err)
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
