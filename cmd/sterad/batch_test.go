package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/settlement"
	"github.com/sterad/sterad/simulator/terminal"
)

// cli runs a client command against the test daemon and returns its output.
func (d *testDaemon) cli(args ...string) (string, error) {
	d.t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--api", d.m.APIAddr, "--token", d.m.Token}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestBatchCloseAndReport(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	day := func() {
		d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
		s := d.post(api.TransactionRequest{Op: "sale", Amount: "8000", Card: keyed("3530111333300000")})
		d.post(api.TransactionRequest{Op: "refund", Original: s.ID, Amount: "2000"})
		d.card("FRONT001", terminal.Card{PAN: "5555555555554444"})
		d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4500"})
	}
	day()
	// In balance: one 0500 per terminal ID, answered 00.
	var closed api.BatchView
	if _, err := d.c.Do(ctx, http.MethodPost, "/v1/batches/close", nil, nil, &closed); err != nil {
		t.Fatal(err)
	}
	if closed.State != sterad.BatchClosed || closed.Number != 1 || len(closed.Terminals) != 2 || len(closed.Days) == 0 {
		t.Fatalf("close: %+v", closed.Batch)
	}
	for _, hb := range d.m.SimHost.Ledger().Batches {
		if hb.State != "closed" || hb.Result != "00" || hb.Number != 1 {
			t.Fatalf("host batch %+v", hb)
		}
	}

	// Out of balance (the host is told to disagree): the CLI closes with
	// an upload of every financial transaction and a 0500 with BU=1.
	day()
	if _, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4000000000000002")}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d.m.SimHost.SetDisagree(true)
	out, err := d.cli("batch", "close")
	if err != nil || !strings.Contains(out, "batch 000002  closed") {
		t.Fatalf("batch close: %v\n%s", err, out)
	}
	var uploads int
	for _, hb := range d.m.SimHost.Ledger().Batches {
		if hb.Number == 2 {
			uploads += len(hb.Uploads)
			if hb.State != "closed" {
				t.Fatalf("host batch 2: %+v", hb)
			}
		}
	}
	if uploads != 4 {
		t.Fatalf("%d uploads, want the 4 financial transactions of batch 2", uploads)
	}
	out, err = d.cli("batch", "list")
	if err != nil || !strings.Contains(out, "batch 000003  open") || !strings.Contains(out, "uploaded") {
		t.Fatalf("batch list: %v\n%s", err, out)
	}

	// The settlement report adds up to the closed batches, in JSON and CSV.
	today := time.Now().In(d.m.Config.Location())
	from, to := today.AddDate(0, 0, -1).Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly)
	csv, err := d.cli("report", "settlement", "--from", from, "--to", to, "--csv")
	if err != nil {
		t.Fatalf("report: %v\n%s", err, csv)
	}
	lines, err := settlement.ParseCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatalf("parse the CSV back: %v\n%s", err, csv)
	}
	var net, fee int64
	for _, l := range lines {
		net += l.Net
		fee += l.Fee
		if l.PayoutDate.IsZero() {
			t.Fatalf("line without a payout date: %+v", l)
		}
	}
	// Two closed batches of (12000 + 8000 + 4500 − 2000).
	if net != 2*22500 || fee <= 0 {
		t.Fatalf("report net %d fee %d", net, fee)
	}
	text, err := d.cli("report", "settlement", "--from", from, "--to", to)
	if err != nil || !strings.Contains(text, "payouts:") {
		t.Fatalf("report text: %v\n%s", err, text)
	}
	// Bad ranges are clear errors.
	for _, q := range []string{"from=2026-11-30&to=2026-11-01", "from=yesterday&to=2026-11-01", "to=2026-11-01"} {
		_, err := d.c.Do(ctx, http.MethodGet, "/v1/reports/settlement?"+q, nil, nil, nil)
		if ae, ok := err.(*api.Error); !ok || ae.Status != 400 {
			t.Errorf("%s: %v", q, err)
		}
	}
}
