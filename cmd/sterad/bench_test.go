package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// Benchmarks of issues 3–5, each over the whole daemon (durable store,
// loopback test acquirer kept in memory like a remote host). Run with
//
//	go test -run '^$' -bench . -benchtime 1x ./cmd/sterad/

// benchDaemon starts sterad for a benchmark.
func benchDaemon(b *testing.B, tune ...func(*Main)) *Main {
	b.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	cfg.CardData = sterad.CardDataClear // the benchmarks key their cards
	m := &Main{Config: cfg, Simulate: true, SimHostMemory: true, NoNightlyClose: true}
	for _, f := range tune {
		f(m)
	}
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	if err := m.Client.WaitOnline(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}

// parallelDo runs f n times from c goroutines and returns the elapsed time.
func parallelDo(b *testing.B, n, c int, f func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					if failed.Add(1) == 1 {
						b.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func keyedRequest(op, amount string) sterad.Request {
	exp := time.Now().AddDate(2, 0, 0).Format("0601")
	return sterad.Request{Op: op, Amount: amount, PAN: "4111111111111111", Expiry: exp, Wait: true}
}

// BenchmarkCardChecks: card checks through the HTTP API, 32 clients.
func BenchmarkCardChecks(b *testing.B) {
	m := benchDaemon(b)
	c := api.NewClient(m.APIAddr, m.Token)
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	req := api.TransactionRequest{Op: "cardcheck", Card: &api.CardInput{PAN: "5555555555554444", Expiry: time.Now().AddDate(2, 0, 0).Format("0601")}}
	const n = 5000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		took := parallelDo(b, n, 32, func(int) error {
			tx, _, err := c.CreateTransaction(context.Background(), req, api.CreateOptions{})
			if err == nil && tx.Status != "approved" {
				b.Errorf("card check %s", tx.Status)
			}
			return err
		})
		b.ReportMetric(n/took.Seconds(), "checks/s")
	}
}

// BenchmarkDrainAdvices: 10,000 completions made while the acquirer was
// unreachable wait as 0220 advices; when the link is back they drain.
func BenchmarkDrainAdvices(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		m := benchDaemon(b)
		ctx := context.Background()
		ids := make([]string, n)
		parallelDo(b, n, 32, func(i int) error {
			r := keyedRequest("preauth", "20000")
			r.Reference, r.CheckIn, r.CheckOut = "RSV", time.Now().Format(time.DateOnly), time.Now().AddDate(0, 0, 1).Format(time.DateOnly)
			t, _, err := m.Gateway.Submit(ctx, r)
			if err == nil {
				ids[i] = t.ID
			}
			return err
		})
		if err := m.SimHost.SetOutage(true); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for m.Client.Status().Online && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		var lastMu sync.Mutex
		var last string
		parallelDo(b, n, 32, func(i int) error {
			t, _, err := m.Gateway.Submit(ctx, sterad.Request{Op: "completion", Original: ids[i], Amount: "21000", Wait: true})
			if err == nil {
				lastMu.Lock()
				last = max(last, t.ID)
				lastMu.Unlock()
			}
			return err
		})
		if q, _ := m.Gateway.Queue(ctx); len(q) != n {
			b.Fatalf("%d advices queued, want %d", len(q), n)
		}
		start := time.Now()
		if err := m.SimHost.SetOutage(false); err != nil {
			b.Fatal(err)
		}
		// Poll the newest advice (the queue drains FIFO), then the queue.
		for {
			t, err := m.Gateway.Transaction(ctx, last)
			if err != nil {
				b.Fatal(err)
			}
			if t.Status == sterad.StatusApproved {
				if q, _ := m.Gateway.Queue(ctx); len(q) == 0 {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		b.ReportMetric(n/took.Seconds(), "advices/s")
		b.ReportMetric(took.Seconds(), "drain-s")
	}
}

// BenchmarkBatchCloseUpload: a batch of 10,000 transactions closed while
// the host disagrees, so every one is uploaded (0320) before the 0500 with
// BU=1.
func BenchmarkBatchCloseUpload(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		m := benchDaemon(b)
		ctx := context.Background()
		parallelDo(b, n, 32, func(int) error {
			_, _, err := m.Gateway.Submit(ctx, keyedRequest("sale", "12800"))
			return err
		})
		m.SimHost.SetDisagree(true)
		start := time.Now()
		batch, err := m.Gateway.CloseBatch(ctx)
		took := time.Since(start)
		if err != nil || batch.State != sterad.BatchClosed || batch.Terminals[0].Uploaded != n {
			b.Fatalf("close: %v %+v", err, batch)
		}
		b.ReportMetric(took.Seconds(), "close-s")
		b.ReportMetric(n/took.Seconds(), "uploads/s")
	}
}

// BenchmarkDurability: keyed sales through the API with 32 clients, with
// the store's grouped commits on and off: what durability costs.
func BenchmarkDurability(b *testing.B) {
	for _, grouped := range []bool{true, false} {
		name := "grouped"
		if !grouped {
			name = "one-commit-per-write"
		}
		b.Run(name, func(b *testing.B) {
			const n = 6000
			for i := 0; i < b.N; i++ {
				m := benchDaemon(b, func(m *Main) {
					m.StoreTuning = func(o *offline.Options) { o.GroupCommit = grouped }
				})
				c := api.NewClient(m.APIAddr, m.Token)
				c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				req := api.TransactionRequest{Op: "sale", Amount: "12800", Card: &api.CardInput{PAN: "4111111111111111", Expiry: time.Now().AddDate(2, 0, 0).Format("0601")}}
				commits0 := m.DB.Stats().Commits
				took := parallelDo(b, n, 32, func(int) error {
					_, _, err := c.CreateTransaction(context.Background(), req, api.CreateOptions{})
					return err
				})
				st := m.DB.Stats()
				b.ReportMetric(n/took.Seconds(), "txn/s")
				b.ReportMetric(float64(st.Commits-commits0)/n, "commits/txn")
				b.ReportMetric(float64(st.Applies)/float64(n), "journal-writes/txn")
			}
		})
	}
}
