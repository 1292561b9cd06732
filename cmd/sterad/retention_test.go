package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// The daemon's daily retention archives and removes the sales of a
// closed batch once they are older than retention.transactions, keeps
// the open batch's; store compact refuses while the daemon runs and
// shrinks the file once it is stopped; store retention runs offline.
func TestDailyRetentionThenCompact(t *testing.T) {
	clock := sterad.NewFakeClock(time.Now())
	d := startDaemon(t, clearMode, func(m *Main) {
		m.Clock = clock
		m.Config.Retention.Transactions = Period{Months: 13}
	})
	ctx := context.Background()
	dir := d.m.Config.DataDir
	old1 := d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
	old2 := d.post(api.TransactionRequest{Op: "sale", Amount: "8000", Card: keyed("5555555555554444")})
	if _, err := d.c.Do(ctx, http.MethodPost, "/v1/batches/close", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	open := d.post(api.TransactionRequest{Op: "sale", Amount: "500", Card: keyed("4111111111111111")})

	// Fourteen months on, the first daily run removes the closed batch's
	// sales.
	clock.Advance(14 * 31 * 24 * time.Hour)
	month := old1.CreatedAt.In(d.m.Config.Location()).Format("2006-01")
	archive := filepath.Join(dir, "archive", month+".jsonl.gz")
	d.waitFor("the daily retention run", func() bool {
		_, err := d.c.Transaction(ctx, old2.ID)
		var ae *api.Error
		return errors.As(err, &ae) && ae.Status == http.StatusNotFound
	})
	if _, err := d.c.Transaction(ctx, old1.ID); err == nil {
		t.Errorf("sale %s of the closed batch is still there", old1.ID)
	}
	if _, err := d.c.Transaction(ctx, open.ID); err != nil {
		t.Errorf("the open batch's sale was removed: %v", err)
	}
	got, err := offline.ReadArchive(archive)
	if err != nil || len(got) != 2 || got[0].MaskedPAN == "" || strings.Contains(got[0].MaskedPAN, "4111111111111111") {
		t.Fatalf("archive %s: %d records, %v", archive, len(got), err)
	}
	if v, _ := sample(d.scrape(), "sterad_retention_runs_total", map[string]string{"result": "ok"}); v != 1 {
		t.Errorf("sterad_retention_runs_total{result=ok} = %v, want 1", v)
	}

	// Compaction refuses a running daemon's store.
	out, err := run(t, "store", "compact", "--data", dir)
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != 1 || !strings.Contains(out, "stop the daemon first") {
		t.Errorf("store compact while the daemon runs: %v\n%s", err, out)
	}
	// Through the API, a dry run.
	out, err = d.cli("store", "retention", "--dry-run")
	if err != nil || !strings.Contains(out, "0 transactions created before") || !strings.Contains(out, "would be") {
		t.Errorf("store retention --dry-run through the API: %v\n%s", err, out)
	}
	d.m.Close()
	before, _ := os.Stat(filepath.Join(dir, "sterad.db"))
	out, err = run(t, "store", "compact", "--data", dir)
	after, _ := os.Stat(filepath.Join(dir, "sterad.db"))
	if err != nil || !strings.Contains(out, "compacted") || after.Size() > before.Size() {
		t.Errorf("store compact: %v\n%s", err, out)
	}
	// Offline (no daemon answers), on the compacted store.
	out, err = run(t, "store", "retention", "--now", "--data", dir, "--kek-file", dir+".kek", "--api", "127.0.0.1:1")
	if err != nil || !strings.Contains(out, "0 transactions created before") {
		t.Errorf("store retention --now offline: %v\n%s", err, out)
	}
	out, err = run(t, "store", "check", "--data", dir, "--kek-file", dir+".kek")
	if err != nil || !strings.Contains(out, "ok:") {
		t.Errorf("store check after compaction: %v\n%s", err, out)
	}
}
