package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/sterad/sterad/internal/testutil"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
)

// heldHost is the fake host with one kind of message held: each request of
// that MTI is announced on held and answered only once release is closed,
// or fails when the exchange's context ends (the gateway stopped).
type heldHost struct {
	*fakeHost
	mti      sterad.MTI
	held     chan *sterad.HostMessage
	release  chan struct{}
	inflight atomic.Int32 // held exchanges not returned yet
}

func newHeldHost(mti sterad.MTI) *heldHost {
	return &heldHost{fakeHost: newFakeHost(), mti: mti, held: make(chan *sterad.HostMessage, 16), release: make(chan struct{})}
}

func (h *heldHost) Exchange(ctx context.Context, m *sterad.HostMessage) (*sterad.HostMessage, error) {
	if m.MTI == h.mti && h.fakeHost.online.Load() {
		h.inflight.Add(1)
		defer h.inflight.Add(-1)
		h.held <- m
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", sterad.ErrNoResponse, ctx.Err())
		}
	}
	return h.fakeHost.Exchange(ctx, m)
}

// startWith starts a gateway on acq (whose recording fake is fh), like
// startHarness.
func startWith(t *testing.T, acq sterad.Acquirer, fh *fakeHost, tune ...func(*gateway.Config)) *harness {
	t.Helper()
	return startGateway(t, t.TempDir(), acq, fh, newFakeTerminal("FRONT001"), nil, tune...)
}

func batchState(h *harness, n int) string {
	h.t.Helper()
	b, err := h.gw.Batch(context.Background(), n)
	if err != nil {
		h.t.Fatalf("batch %d: %v", n, err)
	}
	return b.State
}

// failing waits until the close of batch n has failed and its retry is
// scheduled, and returns what the gateway shows of it.
func failing(t *testing.T, h *harness, n int, after time.Time) sterad.BatchProgress {
	t.Helper()
	var p sterad.BatchProgress
	testutil.Eventually(t, "the condition", func() bool {
		var ok bool
		p, ok = h.gw.Progress(n)
		return ok && !p.Running && p.Error != "" && p.NextRetry.After(after)
	})
	return p
}

// retryUntil moves the injected clock to each retry the batch loop
// schedules until cond holds.
func retryUntil(t *testing.T, h *harness, n int, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, "the condition", func() bool {
		if cond() {
			return true
		}
		if p, ok := h.gw.Progress(n); ok && !p.NextRetry.IsZero() {
			h.clock.Set(p.NextRetry)
		}
		return false
	})
}

// A close asked for by the API that fails is retried by the batch loop,
// with backoff on the injected clock, until it finishes: not left until the
// next cut-off. What is failing shows: attempts, last error, next retry.
func TestFailedCloseIsRetriedWithBackoff(t *testing.T) {
	h := newHarness(t) // nightly close off: only the API asks
	sale := h.mustSubmit(keyedSale("4111111111111111", "10000"))
	h.host.online.Store(false)
	start := h.clock.Now()
	b, err := h.gw.CloseBatch(context.Background())
	if err == nil || b == nil || b.State != sterad.BatchClosing || b.Attempts != 1 {
		t.Fatalf("close with the host down: %v %+v", err, b)
	}
	p := failing(t, h, 1, start)
	if p.Batch != 1 || p.Attempts != 1 || p.Error == "" || !p.NextRetry.Equal(start.Add(time.Hour)) {
		t.Fatalf("first failure shows %+v, want attempt 1 and a retry at %s", p, start.Add(time.Hour))
	}
	// The retry fails too: the next one waits twice as long.
	h.clock.Set(p.NextRetry)
	p = failing(t, h, 1, p.NextRetry)
	if p.Attempts != 2 || !p.NextRetry.Equal(start.Add(time.Hour+2*time.Hour)) {
		t.Fatalf("second failure shows %+v, want attempt 2 and a retry 2h later", p)
	}
	if got := batchState(h, 1); got != sterad.BatchClosing {
		t.Fatalf("batch 1 is %s while the host is down", got)
	}
	h.host.online.Store(true)
	h.clock.Set(p.NextRetry)
	testutil.Eventually(t, "the condition", func() bool { return batchState(h, 1) == sterad.BatchClosed })
	if b, _ := h.gw.Batch(context.Background(), 1); b.LastError != "" {
		t.Fatalf("closed batch keeps the error %q", b.LastError)
	}
	if recs := msgsOf(h, sterad.MTIReconciliation); len(recs) != 1 || recs[0].Totals.DebitAmount != 10000 {
		t.Fatalf("0500s: %d", len(recs))
	}
	if _, err := h.db.OpenCard(context.Background(), sale.ID); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the closed batch's card is still kept: %v", err)
	}
	// The batch the failed close opened stays open: nobody asked to close it.
	if open, _ := h.gw.OpenBatch(context.Background()); open.Number != 2 {
		t.Fatalf("open batch %d, want 2", open.Number)
	}
}

// A batch still closing at the next cut-off is finished first, and then
// the batch open at that cut-off is closed too: it must not stay open
// another day.
func TestCutoffClosesItsBatchAfterTheOldOne(t *testing.T) {
	h := newHarnessTuned(t, func(c *gateway.Config) { c.Cutoff = 2 * time.Hour })
	h.mustSubmit(keyedSale("4111111111111111", "10000"))
	h.host.online.Store(false)
	if _, err := h.gw.CloseBatch(context.Background()); err == nil {
		t.Fatal("close with the host down succeeded")
	}
	h.host.online.Store(true)
	second := h.mustSubmit(keyedSale("5555555555554444", "7000"))
	if second.Batch != 2 {
		t.Fatalf("sale during the close went to batch %d", second.Batch)
	}
	h.host.online.Store(false)
	cutoff := time.Date(2026, 11, 22, 2, 0, 0, 0, jst)
	h.clock.Set(cutoff)
	failing(t, h, 1, cutoff)
	if got := batchState(h, 2); got != sterad.BatchOpen {
		t.Fatalf("batch 2 is %s before batch 1 is closed", got)
	}
	h.host.online.Store(true)
	retryUntil(t, h, 1, func() bool { return batchState(h, 2) == sterad.BatchClosed })
	if got := batchState(h, 1); got != sterad.BatchClosed {
		t.Fatalf("batch 1 is %s", got)
	}
	if open, _ := h.gw.OpenBatch(context.Background()); open.Number != 3 {
		t.Fatalf("open batch %d, want 3", open.Number)
	}
	byBatch := map[int]int64{}
	for _, m := range msgsOf(h, sterad.MTIReconciliation) {
		byBatch[m.Batch] += m.Totals.DebitAmount
	}
	if byBatch[1] != 10000 || byBatch[2] != 7000 {
		t.Fatalf("reconciled %v", byBatch)
	}
}

func newHarnessTuned(t *testing.T, tune func(*gateway.Config)) *harness {
	t.Helper()
	fh := newFakeHost()
	return startWith(t, fh, fh, tune)
}

// A close asked for while one runs joins it: one close, one set of 0500s,
// the same answer to both.
func TestCloseAskedTwiceRunsOnce(t *testing.T) {
	host := newHeldHost(sterad.MTIReconciliation)
	h := startWith(t, host, host.fakeHost)
	h.mustSubmit(keyedSale("4111111111111111", "10000"))
	first, err := h.gw.StartClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-host.held
	second, err := h.gw.StartClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second.Batch != 1 {
		t.Fatalf("the second close works on batch %d", second.Batch)
	}
	close(host.release)
	for _, run := range []*sterad.CloseRun{first, second} {
		<-run.Done()
		if b, err := run.Result(); err != nil || b.Number != 1 || b.State != sterad.BatchClosed {
			t.Fatalf("close: %v %+v", err, b)
		}
	}
	if open, _ := h.gw.OpenBatch(context.Background()); open.Number != 2 {
		t.Fatalf("open batch %d: a second close ran", open.Number)
	}
	if n := len(msgsOf(h, sterad.MTIReconciliation)); n != 1 {
		t.Fatalf("%d 0500s", n)
	}
}

// Stop ends a close under way: nothing of it runs once Stop has returned
// (the store is closed after Stop).
func TestStopEndsTheClose(t *testing.T) {
	host := newHeldHost(sterad.MTIReconciliation)
	h := startWith(t, host, host.fakeHost)
	h.mustSubmit(keyedSale("4111111111111111", "10000"))
	run, err := h.gw.StartClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-host.held
	h.gw.Stop()
	if n := host.inflight.Load(); n != 0 {
		t.Fatalf("%d 0500 exchange(s) still running after Stop", n)
	}
	select {
	case <-run.Done():
	default:
		t.Fatal("the close still runs after Stop")
	}
	if _, err := h.gw.StartClose(context.Background()); sterad.ErrorCode(err) != "stopping" {
		t.Fatalf("close after Stop: %v", err)
	}
}

// A refund approved while the close waits for its 0500 is kept: the close
// changes the sale's fresh record, never a copy read before.
func TestRefundDuringCloseIsKept(t *testing.T) {
	host := newHeldHost(sterad.MTIReconciliation)
	h := startWith(t, host, host.fakeHost)
	sale := h.mustSubmit(keyedSale("4111111111111111", "10000"))
	run, err := h.gw.StartClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-host.held
	r := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "10000"})
	if r.Status != sterad.StatusApproved || r.Batch != 2 {
		t.Fatalf("refund during the close: %+v", r)
	}
	close(host.release)
	<-run.Done()
	if b, err := run.Result(); err != nil || b.State != sterad.BatchClosed {
		t.Fatalf("close: %v %+v", err, b)
	}
	got, _ := h.gw.Transaction(context.Background(), sale.ID)
	if got.Refunded.Minor() != 10000 || got.HasCard {
		t.Fatalf("sale after the close: refunded %s, card kept %v", got.Refunded, got.HasCard)
	}
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "10000"}); sterad.ErrorCode(err) != "exceeds_refundable" {
		t.Fatalf("second full refund: %v", err)
	}
	if _, err := h.db.OpenCard(context.Background(), sale.ID); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the closed batch's card is still kept: %v", err)
	}
}

// Stop lets a payment whose request is with the acquirer finish and
// journal the answer; new requests are refused meanwhile.
func TestStopLetsExchangesFinish(t *testing.T) {
	host := newHeldHost(sterad.MTIFinancial)
	h := startWith(t, host, host.fakeHost)
	tx, _, err := h.gw.Submit(context.Background(), keyedSale("4111111111111111", "12800"))
	if err != nil {
		t.Fatal(err)
	}
	<-host.held
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.gw.Stop()
	}()
	// Once stopping, new requests are refused (a card check is not held).
	testutil.Eventually(t, "the condition", func() bool {
		_, err := h.submit(sterad.Request{Op: "cardcheck", PAN: "5555555555554444", Expiry: "2812"})
		return sterad.ErrorCode(err) == "stopping"
	})
	select {
	case <-stopped:
		t.Fatal("Stop returned with an exchange in flight")
	default:
	}
	close(host.release)
	<-stopped
	got, err := h.db.Transaction(context.Background(), tx.ID)
	if err != nil || got.Status != sterad.StatusApproved || got.AuthCode == "" {
		t.Fatalf("after the stop: %v %+v", err, got)
	}
}

// The stop's grace is bounded: an exchange that does not end in time is
// cut off and left to the recovery at the next start.
func TestStopGraceIsBounded(t *testing.T) {
	host := newHeldHost(sterad.MTIFinancial)
	h := startWith(t, host, host.fakeHost, func(c *gateway.Config) { c.StopGrace = 50 * time.Millisecond })
	tx, _, err := h.gw.Submit(context.Background(), keyedSale("4111111111111111", "12800"))
	if err != nil {
		t.Fatal(err)
	}
	<-host.held
	h.gw.Stop() // returns: the grace ran out and the exchange was cut off
	if n := host.inflight.Load(); n != 0 {
		t.Fatalf("%d exchange(s) still running after Stop", n)
	}
	if got, _ := h.db.Transaction(context.Background(), tx.ID); got.Status == sterad.StatusApproved {
		t.Fatalf("approved without an answer: %+v", got)
	}
}

// A stop lets exchanges with the acquirer finish, not flows waiting for
// something else: a terminal waiting for a guest's card is cut off at
// once (the recovery at the next start asks the terminal), whatever the
// grace.
func TestStopDoesNotWaitForACard(t *testing.T) {
	h := newHarness(t)
	h.term.mu.Lock()
	h.term.release = make(chan struct{}) // the guest never presents a card
	h.term.mu.Unlock()
	tx, _, err := h.gw.Submit(context.Background(), sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.gw.Stop() // the harness's grace is the default: 20 s
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for a guest's card")
	}
	if got, _ := h.db.Transaction(context.Background(), tx.ID); got.Status.Final() || got.Step != sterad.StepReading {
		t.Fatalf("the sale waiting for a card: %s %s, want left to the recovery", got.Status, got.Step)
	}
}
