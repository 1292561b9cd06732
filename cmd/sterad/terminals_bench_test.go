package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// benchPresentTime is the simulated card-presentation time of every sale.
const benchPresentTime = 200 * time.Millisecond

// BenchmarkTerminalsParallel measures card-present sales through the
// HTTP API with 1 and with 8 simulated fixed terminals on ptys, each
// terminal selling in a loop with a fixed card-presentation time
// (benchPresentTime). One op is one sale at every terminal, the terminals
// working in parallel. It reports sales/s, sales/s per terminal and, for
// 8 terminals, the ratio to 1 terminal's rate (goal: ≥ 6).
//
//	go test -run '^$' -bench TerminalsParallel -benchtime 20x ./cmd/sterad/
func BenchmarkTerminalsParallel(b *testing.B) {
	rates := map[int]float64{}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("terminals=%d", n), func(b *testing.B) {
			rate := benchTerminalSales(b, n)
			rates[n] = rate
			b.ReportMetric(rate, "sales/s")
			b.ReportMetric(rate/float64(n), "sales/s/terminal")
			if one := rates[1]; n > 1 && one > 0 {
				b.ReportMetric(rate/one, "x_1_terminal")
			}
		})
	}
}

// benchTerminalSales starts sterad with n simulated terminals, runs b.N
// sales at each of them at once, and returns the sales per second.
func benchTerminalSales(b *testing.B, n int) float64 {
	b.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("TERM%04d", i+1)
		cfg.Terminals = append(cfg.Terminals, TerminalConfig{ID: ids[i], Kind: sterad.KindFixed})
	}
	m := &Main{Config: cfg, Simulate: true, SimHostMemory: true, SimPresentDelay: benchPresentTime}
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		b.Fatalf("start sterad: %v", err)
	}
	defer m.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.Client.WaitOnline(wctx); err != nil {
		b.Fatalf("acquirer: %v", err)
	}
	for id, s := range m.Sessions {
		if err := s.WaitReady(wctx); err != nil {
			b.Fatalf("terminal %s: %v", id, err)
		}
	}
	c := api.NewClient(m.APIAddr, m.Token)
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * n}}

	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	start := time.Now()
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < b.N; j++ {
				tx, _, err := c.CreateTransaction(ctx, api.TransactionRequest{
					Op: "sale", Terminal: id, Amount: "12800", Currency: "JPY", Reference: fmt.Sprintf("BENCH-%s-%d", id, j),
				}, api.CreateOptions{})
				if err != nil {
					errs <- fmt.Errorf("%s sale %d: %w", id, j, err)
					return
				}
				if tx.Status != "approved" {
					errs <- fmt.Errorf("%s sale %d: %s: %s", id, j, tx.Status, tx.Reason)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Error(err)
	}
	return float64(n*b.N) / elapsed.Seconds()
}
