package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/protocol"
)

// A close that fails (the acquirer is down) shows in `sterad status`,
// /v1/status and `sterad batch list` with its attempts, last error and
// next retry, and the daemon retries it on its own, on its clock, until it
// finishes: nobody has to ask again.
func TestFailingCloseShownAndRetried(t *testing.T) {
	clock := sterad.NewFakeClock(time.Now())
	d := startDaemon(t, clearMode, func(m *Main) {
		m.Clock = clock
		m.GatewayTuning = func(g *gateway.Config) { g.TerminalWait, g.RetryInterval = 5*time.Second, time.Minute }
	})
	ctx := context.Background()
	d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
	if err := d.m.SimHost.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	d.waitFor("acquirer offline", func() bool { return !d.m.Gateway.Acquirer().Online })
	out, err := d.cli("batch", "close")
	if err == nil || !strings.Contains(err.Error(), "still closing") || !strings.Contains(err.Error(), "next retry") {
		t.Fatalf("batch close with the acquirer down: %v\n%s", err, out)
	}

	// What the operator sees.
	var st api.Status
	d.waitFor("the failing close in /v1/status", func() bool {
		if _, err := d.c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, &st); err != nil {
			t.Fatal(err)
		}
		return st.Closing != nil && st.Closing.Progress != nil && !st.Closing.Progress.NextRetry.IsZero()
	})
	c := st.Closing
	if c.Number != 1 || c.State != sterad.BatchClosing || c.Attempts != 1 || c.LastError == "" || c.Progress.Running ||
		!c.Progress.NextRetry.Equal(clock.Now().Add(time.Minute)) {
		b, _ := json.Marshal(c)
		t.Fatalf("/v1/status closing: %s", b)
	}
	text, err := d.cli("status")
	if err != nil || !strings.Contains(text, "closing    000001") || !strings.Contains(text, "1 failed attempt(s), last error: ") ||
		!strings.Contains(text, "next retry") {
		t.Fatalf("sterad status: %v\n%s", err, text)
	}
	list, err := d.cli("batch", "list")
	if err != nil || !strings.Contains(list, "batch 000001  closing") || !strings.Contains(list, "1 failed attempt(s)") || !strings.Contains(list, "next retry") {
		t.Fatalf("sterad batch list: %v\n%s", err, list)
	}

	// The acquirer is back; at the next retry the daemon finishes the close.
	if err := d.m.SimHost.SetOutage(false); err != nil {
		t.Fatal(err)
	}
	d.waitFor("acquirer online", func() bool { return d.m.Gateway.Acquirer().Online })
	clock.Set(c.Progress.NextRetry)
	d.waitFor("batch 1 closed by the retry", func() bool {
		b, err := d.c.Batch(ctx, 1)
		return err == nil && b.State == sterad.BatchClosed
	})
	hostClosed := false
	for _, hb := range d.m.SimHost.Ledger().Batches {
		hostClosed = hostClosed || hb.Number == 1 && hb.State == "closed" && hb.Result == "00"
	}
	if !hostClosed {
		t.Fatalf("host batches %+v", d.m.SimHost.Ledger().Batches)
	}
	if text, _ := d.cli("status"); strings.Contains(text, "closing") {
		t.Fatalf("status after the close:\n%s", text)
	}
}

// Two closes asked for at once are one close: the second joins the first.
func TestCloseAskedTwiceIsOneClose(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
	d.m.SimHost.SetDelay(300 * time.Millisecond)
	first, err := d.c.StartClose(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.c.StartClose(ctx)
	if err != nil || first != 1 || second != 1 {
		t.Fatalf("closes of batches %d and %d (%v)", first, second, err)
	}
	d.waitFor("batch 1 closed", func() bool {
		b, err := d.c.Batch(ctx, 1)
		return err == nil && b.State == sterad.BatchClosed
	})
	// The next close is batch 2's, with the sale made since: no second
	// close ran behind the first.
	d.m.SimHost.SetDelay(0)
	sale := d.post(api.TransactionRequest{Op: "sale", Amount: "3000", Card: keyed("5555555555554444")})
	var closed api.BatchView
	if _, err := d.c.Do(ctx, http.MethodPost, "/v1/batches/close", nil, nil, &closed); err != nil {
		t.Fatal(err)
	}
	if closed.Number != 2 || closed.State != sterad.BatchClosed || sale.Batch == nil || *sale.Batch != "000002" {
		t.Fatalf("the next close: batch %d %s; the sale: %+v", closed.Number, closed.State, sale)
	}
	if b, err := d.c.Batch(ctx, 3); err != nil || b.State != sterad.BatchOpen {
		t.Fatalf("batch 3: %v %+v", err, b)
	}
	if n := d.m.SimHost.Stats().Requests["0500"]; n != 2 {
		t.Fatalf("the host got %d 0500s, want one per close", n)
	}
}

// SIGTERM while the acquirer has a payment: the payment finishes and is
// journaled approved, the daemon logs "stopped", and after the restart
// nothing is reversed: the guest paid exactly once.
func TestSIGTERMDuringPayment(t *testing.T) {
	dir := t.TempDir()
	tune := func(m *Main) {
		m.Config.DataDir = dir
		m.Config.Acquirer.Timeout = Duration(5 * time.Second)
	}
	logs := &syncBuffer{}
	m := servingMain(dir, logs)
	clearMode(m)
	tune(m)

	// The signal handling of main: SIGTERM ends the context.
	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ready, served := make(chan struct{}), make(chan error, 1)
	go func() { served <- m.Serve(sigctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("sterad did not start within 20s")
	}
	d := &testDaemon{t: t, m: m, c: api.NewClient(m.APIAddr, m.Token), log: logs}
	d.waitFor("acquirer online", func() bool { return m.Gateway.Acquirer().Online })

	m.SimHost.SetDelay(1500 * time.Millisecond)
	type result struct {
		tx   *api.Transaction
		code int
		err  error
	}
	posted := make(chan result, 1)
	go func() {
		tx, code, err := d.c.CreateTransaction(context.Background(), api.TransactionRequest{Op: "sale", Amount: "12800", Card: keyed("4111111111111111")}, api.CreateOptions{})
		posted <- result{tx, code, err}
	}()
	d.waitFor("the sale with the acquirer", func() bool { return m.SimHost.Stats().Requests["0200"] == 1 })
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sterad did not stop within 30s")
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("no \"stopped\" in the log:\n%s", logs.String())
	}
	r := <-posted
	if r.err != nil || r.code != http.StatusCreated || r.tx.Status != "approved" {
		t.Fatalf("the sale during the stop: %d %v %+v", r.code, r.err, r.tx)
	}

	// Restart on the same data: the sale is approved, nothing is owed to
	// the acquirer, and its ledger holds exactly one charge, not reversed.
	d2 := startDaemon(t, clearMode, tune)
	got, err := d2.c.Transaction(context.Background(), r.tx.ID)
	if err != nil || got.Status != "approved" {
		t.Fatalf("after the restart: %v %+v", err, got)
	}
	if q, err := d2.m.Gateway.Queue(context.Background()); err != nil || len(q) != 0 {
		t.Fatalf("owed to the acquirer after the restart: %v %+v", err, q)
	}
	var charges int
	for _, e := range d2.m.SimHost.Ledger().Transactions {
		if e.Amount.Minor() == 12800 {
			charges++
			if e.Status != "approved" || !e.Counted {
				t.Fatalf("the host's entry: %+v", e)
			}
		}
	}
	if charges != 1 {
		t.Fatalf("the host has %d charges of 12800", charges)
	}
	if n := d2.m.SimHost.Stats().Requests["0420"]; n != 0 {
		t.Fatalf("%d reversals after the restart", n)
	}
}

// servingMain is startDaemon's configuration for a Main the test serves
// itself.
func servingMain(dir string, logs *syncBuffer) *Main {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	m := &Main{Config: cfg, Simulate: true, NoNightlyClose: true, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	m.SimLink = protocol.LinkOptions{T1: 50 * time.Millisecond, T2: 250 * time.Millisecond}
	m.SessionTuning = func(sc *device.SessionConfig) {
		sc.Link.T1, sc.Link.T2 = 50*time.Millisecond, 250*time.Millisecond
		sc.T3, sc.PingInterval, sc.HelloTimeout = time.Second, 300*time.Millisecond, time.Second
		sc.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	}
	m.ClientTuning = func(o *protocol.ClientOptions) {
		o.BackoffMin, o.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	}
	m.GatewayTuning = func(g *gateway.Config) { g.TerminalWait, g.RetryInterval = 5*time.Second, 200*time.Millisecond }
	return m
}
