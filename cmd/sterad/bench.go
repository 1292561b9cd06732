package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/gateway"
)

// benchOptions are the flags of sterad bench.
type benchOptions struct {
	clients     int
	duration    time.Duration
	rate        int
	rateFor     time.Duration
	rawDuration time.Duration
	cpuProfile  string
}

func newBenchCommand(g *globalOptions) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure keyed sales through the API, the daemon and the test acquirer",
		Long: `Start sterad in-process with the test acquirer on loopback and a durable
store in a temporary directory, then measure:

  1. the raw round-trip rate of the ISO 8583 connection alone (--clients senders);
  2. keyed sales through the HTTP API with --clients concurrent clients;
  3. at --rate transactions/s, the latency the gateway adds: the API's answer
     time minus the acquirer exchange's own time, per transaction.

Every transaction is journaled durably (fsync) before it is sent and before
it is answered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "sterad-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			defer os.Remove(simulateKEKPath(dir))
			return runBench(cmd.Context(), cmd.OutOrStdout(), dir, *o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.clients, "clients", 32, "concurrent clients")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "length of the throughput run")
	f.IntVar(&o.rate, "rate", 20, "transactions per second of the latency run")
	f.DurationVar(&o.rateFor, "rate-duration", 10*time.Second, "length of the latency run")
	f.DurationVar(&o.rawDuration, "raw-duration", 5*time.Second, "length of the raw ISO 8583 run")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the throughput run to this file")
	return cmd
}

// timedAcquirer records how long each exchange took, by terminal and STAN.
type timedAcquirer struct {
	sterad.Acquirer
	took sync.Map // "TID/STAN" → time.Duration
}

func (a *timedAcquirer) Exchange(ctx context.Context, m *sterad.HostMessage) (*sterad.HostMessage, error) {
	start := time.Now()
	resp, err := a.Acquirer.Exchange(ctx, m)
	a.took.Store(m.TerminalID+"/"+m.STAN.String(), time.Since(start))
	return resp, err
}

func runBench(ctx context.Context, out io.Writer, dir string, o benchOptions) error {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	// The benchmark measures keyed sales through the API: the gateway in
	// card_data: clear (blind mode refuses keyed cards).
	cfg.CardData = sterad.CardDataClear
	timed := &timedAcquirer{}
	m := &Main{Config: cfg, Simulate: true, SimHostMemory: true, WrapAcquirer: func(a sterad.Acquirer) sterad.Acquirer {
		timed.Acquirer = a
		return timed
	}}
	if err := m.Run(ctx); err != nil {
		return err
	}
	defer m.Close()
	if err := m.Client.WaitOnline(ctx); err != nil {
		return err
	}
	c := api.NewClient(m.APIAddr, m.Token)
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients * 2, MaxConnsPerHost: o.clients * 2}}
	expiry := time.Now().AddDate(2, 0, 0).Format("0601")
	sale := api.TransactionRequest{Op: "sale", Amount: "12800", Card: &api.CardInput{PAN: "4111111111111111", Expiry: expiry}}

	fmt.Fprintf(out, "sterad bench: %d clients, durable store in %s, test acquirer on %s (loopback)\n\n", o.clients, dir, m.Config.Acquirer.Address)

	// 1. The ISO 8583 connection alone.
	raw, err := benchRaw(ctx, m, o.clients, o.rawDuration, expiry)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1. ISO 8583 round trips alone (%d senders, %s): %d exchanges, %.0f/s, p50 %s, p99 %s\n",
		o.clients, o.rawDuration, raw.n, raw.rate(), raw.p(50), raw.p(99))

	// 2. Throughput through the whole gateway.
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	a0 := m.DB.Stats().Applies
	thr := benchThroughput(ctx, c, sale, o.clients, o.duration)
	stopProfile()
	fmt.Fprintf(out, "2. keyed sales through the API (%d clients, %s): %d approved, %d failed, %.0f transactions/s, p50 %s, p99 %s\n",
		o.clients, o.duration, thr.n, thr.failed, thr.rate(), thr.p(50), thr.p(99))
	fmt.Fprintf(out, "   gateway/raw ratio: %.2f of the raw ISO 8583 rate; store: %.2f commits, %.2f writes per transaction\n",
		thr.rate()/raw.rate(), commitsPer(m, thr.n), float64(m.DB.Stats().Applies-a0)/float64(max(thr.n, 1)))

	// 3. Latency added by the gateway at a steady rate.
	lat := benchLatency(ctx, c, timed, sale, o.rate, o.rateFor)
	fmt.Fprintf(out, "3. at %d transactions/s for %s (%d sales): API answer p50 %s p99 %s; acquirer exchange p50 %s p99 %s\n",
		o.rate, o.rateFor, lat.api.n, lat.api.p(50), lat.api.p(99), lat.host.p(50), lat.host.p(99))
	fmt.Fprintf(out, "   added by the gateway (answer − exchange): p50 %s, p99 %s, max %s\n", lat.added.p(50), lat.added.p(99), lat.added.p(100))

	fmt.Fprintln(out)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(out, "goal ≥ 1,000 transactions/s with %d clients: %s (%.0f/s)\n", o.clients, verdict(thr.rate() >= 1000), thr.rate())
	fmt.Fprintf(out, "goal p99 added latency ≤ 10ms at %d/s: %s (%s)\n", o.rate, verdict(lat.added.p(99) <= 10*time.Millisecond), lat.added.p(99))
	return nil
}

// startCPUProfile starts a CPU profile to path ("" for none) and returns
// what stops it.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func commitsPer(m *Main, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(m.DB.Stats().Commits) / float64(n)
}

// samples are durations measured over a run.
type samples struct {
	mu     sync.Mutex
	d      []time.Duration
	n      int
	failed int
	span   time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.n++
	s.mu.Unlock()
}

func (s *samples) rate() float64 {
	if s.span <= 0 {
		return 0
	}
	return float64(s.n) / s.span.Seconds()
}

// p returns the q-th percentile (100: the maximum).
func (s *samples) p(q int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return 0
	}
	slices.Sort(s.d)
	i := (len(s.d)*q+99)/100 - 1
	i = max(0, min(i, len(s.d)-1))
	return s.d[i].Round(10 * time.Microsecond)
}

// closedLoop runs op from clients goroutines, back to back, for d, and
// times each call that succeeds.
func closedLoop(ctx context.Context, clients int, d time.Duration, op func() error) *samples {
	s := &samples{}
	var failed atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(); err != nil {
					failed.Add(1)
					continue
				}
				s.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	s.span = time.Since(start)
	s.failed = int(failed.Load())
	return s
}

// benchRaw sends keyed sales straight through the ISO 8583 client.
func benchRaw(ctx context.Context, m *Main, senders int, d time.Duration, expiry string) (*samples, error) {
	e, err := sterad.ParseExpiry(expiry)
	if err != nil {
		return nil, err
	}
	return closedLoop(ctx, senders, d, func() error {
		now := time.Now()
		stan, err := m.DB.NextSTAN(ctx, "BENCHRAW", now)
		if err != nil {
			return err
		}
		msg := &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: "4111111111111111", Processing: sterad.ProcPurchase, HasAmount: true,
			Amount: sterad.NewAmount(12800, sterad.JPY), Currency: sterad.JPY, Transmitted: now.UTC(), STAN: stan,
			LocalTime: now, Expiry: e, MCC: gateway.DefaultMCC, Entry: sterad.EntryKeyed, Condition: sterad.CondMailPhone,
			TerminalID: "BENCHRAW", MerchantID: m.Config.MerchantID, Batch: 1,
		}
		resp, err := m.Client.Exchange(ctx, msg)
		if err == nil && resp.ResponseCode != "00" {
			err = fmt.Errorf("response %s", resp.ResponseCode)
		}
		return err
	}), nil
}

// benchThroughput posts keyed sales through the HTTP API.
func benchThroughput(ctx context.Context, c *api.Client, sale api.TransactionRequest, clients int, d time.Duration) *samples {
	return closedLoop(ctx, clients, d, func() error {
		tx, _, err := c.CreateTransaction(ctx, sale, api.CreateOptions{})
		if err == nil && tx.Status != "approved" {
			err = fmt.Errorf("sale %s", tx.Status)
		}
		return err
	})
}

type latencyRun struct{ api, host, added *samples }

func benchLatency(ctx context.Context, c *api.Client, timed *timedAcquirer, sale api.TransactionRequest, rate int, d time.Duration) latencyRun {
	r := latencyRun{api: &samples{}, host: &samples{}, added: &samples{}}
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for time.Now().Before(deadline) && ctx.Err() == nil {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			tx, _, err := c.CreateTransaction(ctx, sale, api.CreateOptions{})
			took := time.Since(t0)
			if err != nil || tx.Status != "approved" {
				r.api.mu.Lock()
				r.api.failed++
				r.api.mu.Unlock()
				return
			}
			v, ok := timed.took.Load(tx.TerminalID + "/" + tx.STAN)
			if !ok {
				return
			}
			host := v.(time.Duration)
			r.api.add(took)
			r.host.add(host)
			r.added.add(took - host)
		}()
	}
	wg.Wait()
	return r
}
