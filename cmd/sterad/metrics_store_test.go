package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// A transaction left unfinished by the last run is counted once when it
// ends (the metrics keep nothing of it until then), and a later write of
// it, or of any done transaction, is not counted again.
func TestMeteredStoreCountsWhatWasUnfinishedAtTheStart(t *testing.T) {
	ctx := context.Background()
	kek, err := offline.NewKEK(bytes.Repeat([]byte{7}, offline.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	opts := offline.DefaultOptions()
	opts.KEKs = []*offline.KEK{kek}
	db, err := offline.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	queued := &sterad.Transaction{ID: "T1", Op: sterad.OpSale, Status: sterad.StatusStoodIn, Step: sterad.StepQueued, CreatedAt: at}
	done := &sterad.Transaction{ID: "T2", Op: sterad.OpSale, Status: sterad.StatusApproved, Step: sterad.StepDone, CreatedAt: at}
	if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{queued, done}}); err != nil {
		t.Fatal(err)
	}

	// The next run.
	d := newDaemonMetrics()
	s := meteredStore{Store: db, d: d}
	count := func(status sterad.Status) float64 {
		t.Helper()
		var m dto.Metric
		if err := d.txns.WithLabelValues(string(sterad.OpSale), string(status)).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	queued.Status, queued.Step = sterad.StatusApproved, sterad.StepDone
	if err := s.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{queued}}); err != nil {
		t.Fatal(err)
	}
	if n := count(sterad.StatusApproved); n != 1 {
		t.Fatalf("the advice answered: %v counted, want 1", n)
	}
	queued.Reason, done.Reason = "refunded", "refunded"
	if err := s.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{queued, done}}); err != nil {
		t.Fatal(err)
	}
	if n := count(sterad.StatusApproved); n != 1 {
		t.Fatalf("after later writes of done transactions: %v counted, want 1", n)
	}
	if len(d.inFlight) != 0 {
		t.Fatalf("the metrics keep %v", d.inFlight)
	}
}
