package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/protocol"
)

// benchOptions are the flags of sterad bench.
type benchOptions struct {
	clients     int
	duration    time.Duration
	rate        int
	rateFor     time.Duration
	rawDuration time.Duration
	queued      int
	queuedRest  time.Duration
	drain       bool
	acquirer    string // host:port of an external acquirer; "" runs the test acquirer here
	cpuProfile  string
	memProfile  string
	keep        bool   // keep the temporary directory: stores, configurations, logs
	daemon      string // the sterad binary run as the daemon; "" for this one
	compare     string // a second sterad binary: run both alternately (runCompare)
	rounds      int    // rounds of runCompare
}

// The goals of the performance issue, each printed met or NOT met.
const (
	goalRatio      = 0.35                   // keyed sales through the API / raw ISO 8583 rate
	goalP99        = 20 * time.Millisecond  // keyed sales' p99 at --clients
	goalAddedP99   = 2 * time.Millisecond   // latency the gateway adds, p99, at --rate
	goalCPUPerTxn  = 150 * time.Microsecond // daemon CPU per transaction
	goalStorePerTx = 1000                   // bytes of store growth per transaction
	goalQueuedRSS  = 80_000_000             // bytes of RSS with --queued advices
)

func newBenchCommand(g *globalOptions) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the daemon: keyed sales through the API against the test acquirer, its CPU, memory and store",
		Long: `Run the daemon as its own process (this binary, as sterad serve, with a
durable store in a temporary directory and card_data: clear) against the test
acquirer, which the bench runs itself on loopback (or --acquirer), and measure:

  1. the raw round-trip rate of the ISO 8583 connection alone (the bench's own
     acquirer client, --clients senders);
  2. keyed sales through the HTTP API with --clients concurrent clients: rate,
     p50, p99, the ratio to the raw rate; the daemon's CPU time per
     transaction, its memory, and the store's growth per transaction;
  3. at --rate transactions/s, the latency the gateway adds: the API's answer
     time minus the acquirer's own time for the same transaction (loopback
     network time counts as added);
  4. the daemon's memory with --queued stood-in sales waiting for the
     acquirer, and how fast their advices drain when it is back.

Then each goal of the performance issue, met or NOT met. docs/cli.md says
what each figure means.

With --compare PATH it runs phases 1 to 3 with the daemon and with the
sterad binary at PATH in turn, --rounds times (which one goes first
alternates), and prints each run and both binaries' medians: on a machine
whose speed drifts, the way to compare two builds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.clients < 1 || o.rate < 1 || o.duration <= 0 || o.rateFor <= 0 || o.rawDuration <= 0 || o.queuedRest <= 0 {
				return errors.New("--clients and --rate must be at least 1, the durations more than zero")
			}
			if o.compare != "" && (o.rounds < 1 || o.cpuProfile != "" || o.memProfile != "") {
				return errors.New("--compare needs --rounds of at least 1, and takes no --cpuprofile or --memprofile (run the bench on one binary to profile it)")
			}
			if o.queued < 0 || o.queued > maxBenchQueued {
				return fmt.Errorf("--queued must be between 0 and %d", maxBenchQueued)
			}
			for _, p := range []*string{&o.cpuProfile, &o.memProfile} {
				if *p != "" {
					abs, err := filepath.Abs(*p) // the daemon writes it
					if err != nil {
						return err
					}
					*p = abs
				}
			}
			work, err := os.MkdirTemp("", "sterad-bench-")
			if err != nil {
				return err
			}
			if o.keep {
				defer fmt.Fprintf(cmd.OutOrStdout(), "\nkept: %s (the daemons' stores, configurations and logs)\n", work)
			} else {
				defer os.RemoveAll(work)
			}
			if o.compare != "" {
				return runCompare(cmd.Context(), cmd.OutOrStdout(), work, *o)
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), work, *o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.clients, "clients", 32, "concurrent API clients (and raw senders)")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "length of the throughput run")
	f.IntVar(&o.rate, "rate", 20, "transactions per second of the latency run")
	f.DurationVar(&o.rateFor, "rate-duration", 10*time.Second, "length of the latency run")
	f.DurationVar(&o.rawDuration, "raw-duration", 5*time.Second, "length of the raw ISO 8583 run")
	f.IntVar(&o.queued, "queued", 100_000, "stood-in sales queued for the memory run (0: skip it)")
	f.DurationVar(&o.queuedRest, "queued-rest", 30*time.Second, "how long the daemon rests with its queue before its RSS is read")
	f.BoolVar(&o.drain, "drain", true, "time the drain of the queued advices when the acquirer is back")
	f.StringVar(&o.acquirer, "acquirer", "", "host:port of an external acquirer (plain TCP) instead of the test acquirer run by the bench")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the daemon during the throughput run to this file, and during the latency run to FILE-latency")
	f.StringVar(&o.memProfile, "memprofile", "", "write heap profiles of the daemon after the throughput run to this file, and with the queue loaded to FILE-queued")
	f.StringVar(&o.daemon, "daemon", "", "the sterad binary to run as the daemon, to compare releases (default: this one)")
	f.StringVar(&o.compare, "compare", "", "another sterad binary: run phases 1–3 with the daemon and with it in turn, --rounds times, and print the medians of both")
	f.IntVar(&o.rounds, "rounds", 3, "rounds of --compare")
	f.BoolVar(&o.keep, "keep", false, "keep the temporary directory: the daemons' stores, configurations and logs")
	return cmd
}

// benchResults are the figures the goals are judged on.
type benchResults struct {
	raw, thr   *samples
	lat        latencyRun
	cpuPerTxn  time.Duration
	sysPerTxn  time.Duration // of cpuPerTxn, the kernel's
	storePerTx float64
	allocPerTx float64   // bytes the daemon allocated per sale
	disk       *samples  // the store's disk alone: one page written and synced
	queued     *queueRun // nil when skipped
}

func runBench(ctx context.Context, out io.Writer, work string, o benchOptions) error {
	kek, host, err := benchSetup(work, o)
	if err != nil {
		return err
	}
	defer host.close()
	var r benchResults
	runID := newRunID()

	// 1. The ISO 8583 connection alone.
	if r.raw, err = benchRaw(ctx, host.addr, "BR"+runID, o.clients, o.rawDuration); err != nil {
		return err
	}

	if err := benchDaemonPhases(ctx, out, host, work, kek, o.daemon, "BV"+runID, o, &r); err != nil {
		return err
	}

	// 4. Memory with the queue of an outage.
	if o.queued > 0 {
		memProfile := ""
		if o.memProfile != "" {
			ext := filepath.Ext(o.memProfile)
			memProfile = strings.TrimSuffix(o.memProfile, ext) + "-queued" + ext
		}
		if r.queued, err = benchQueued(ctx, out, work, kek, o.daemon, o.queued, o.queuedRest, o.drain, memProfile); err != nil {
			return err
		}
	}

	printGoals(out, o, r)
	return nil
}

// benchSetup writes the daemons' key-encryption key under work and
// starts the acquirer the bench times: the test acquirer here, or a
// timing proxy in front of o.acquirer.
func benchSetup(work string, o benchOptions) (kek string, host *benchHost, err error) {
	kek = filepath.Join(work, "kek")
	if _, err := offline.CreateKEKFile(kek, ""); err != nil {
		return "", nil, err
	}
	if o.acquirer != "" {
		host, err = startTimingProxy(o.acquirer)
	} else {
		host, err = startTestAcquirer()
	}
	return kek, host, err
}

// benchDaemonPhases runs the daemon (exe; "" for this binary) with a new
// store under work, then phases 2 (throughput) and 3 (latency), into r.
func benchDaemonPhases(ctx context.Context, out io.Writer, host *benchHost, work, kek, exe, virtualTID string, o benchOptions, r *benchResults) error {
	dataDir := filepath.Join(work, "data")
	daemonProfile := "" // where the daemon writes each CPU profile before it is moved to its place
	if o.cpuProfile != "" {
		daemonProfile = o.cpuProfile + ".part"
	}
	d, err := startDaemonProc(ctx, daemonSpec{exe: exe, name: "daemon", work: work, dataDir: dataDir, kekFile: kek, acquirer: host.addr, virtualTID: virtualTID,
		within: time.Minute, cpuProfile: daemonProfile, memProfile: o.memProfile, clients: o.clients})
	if err != nil {
		return err
	}
	defer d.kill()
	if err := d.waitOnline(ctx, time.Minute); err != nil {
		return fmt.Errorf("the daemon's acquirer link: %w\n%s", err, d.lastLines())
	}
	fmt.Fprintf(out, "sterad bench: the daemon is its own process (pid %d: %s serve, card_data: clear, durable store in %s);\n",
		d.pid, filepath.Base(d.cmd.Path), dataDir)
	fmt.Fprintf(out, "acquirer: %s on %s (loopback); %d clients\n\n", host.what, host.addr, o.clients)
	fmt.Fprintf(out, "1. raw ISO 8583 round trips, the bench's own acquirer client (%d senders, %s): %d exchanges, %s, %.0f/s, p50 %s, p99 %s\n",
		o.clients, o.rawDuration, r.raw.n, r.raw.failures(), r.raw.rate(), r.raw.p(50), r.raw.p(99))

	expiry := time.Now().AddDate(2, 0, 0).Format("0601")
	sale := api.TransactionRequest{Op: "sale", Amount: "12800", Card: &api.CardInput{PAN: "4111111111111111", Expiry: expiry}}
	if err := benchDaemonThroughput(ctx, out, d, dataDir, sale, o, r); err != nil {
		return err
	}

	// The disk's own share, measured while the daemon rests: what four
	// syncs cost is the least the gateway can add.
	r.disk = &samples{}
	rest0, err := d.cpu()
	if err != nil {
		return err
	}
	restStart := time.Now()
	took, err := offline.SyncLatency(ctx, dataDir, diskSamples(o.rateFor), diskGap)
	if err != nil {
		return err
	}
	rest1, err := d.cpu()
	if err != nil {
		return err
	}
	restFor := time.Since(restStart)
	for _, t := range took {
		r.disk.add(t)
	}

	// 3. Latency the gateway adds at a steady rate.
	n0, t0, cerr := d.commits(ctx)
	used, err := d.measure(latencyProfile(o.cpuProfile), func() {
		host.timer.on.Store(true)
		r.lat = benchLatency(ctx, d.c, host.timer, sale, o.rate, o.rateFor)
		host.timer.on.Store(false)
	})
	if err != nil {
		return err
	}
	n1, t1, err := d.commits(ctx)
	fmt.Fprintf(out, "3. at %d transactions/s for %s: %d approved, %s; API answer p50 %s p99 %s; the acquirer's own time p50 %s p99 %s\n",
		o.rate, o.rateFor, r.lat.api.n, r.lat.api.failures(), r.lat.api.p(50), r.lat.api.p(99), r.lat.host.p(50), r.lat.host.p(99))
	fmt.Fprintf(out, "   added by the gateway (API answer − acquirer's time): p50 %s, p99 %s, max %s (loopback network time counts as added)\n",
		r.lat.added.p(50), r.lat.added.p(99), r.lat.added.p(100))
	if cerr == nil && err == nil && n1 > n0 && r.lat.api.n > 0 {
		fmt.Fprintf(out, "   of which the store's commits (sterad_store_commit_duration_seconds): %.1f per sale, %s each on average, %s per sale\n",
			(n1-n0)/float64(r.lat.api.n), ((t1 - t0) / time.Duration(n1-n0)).Round(time.Microsecond), ((t1 - t0) / time.Duration(r.lat.api.n)).Round(time.Microsecond))
	}
	if n := r.lat.api.n; n > 0 {
		fmt.Fprintf(out, "   the daemon's CPU at this rate: %d µs per sale (%d µs its own code, %d µs the kernel's; over the run, its idle work included); at rest before the run: %s per second\n",
			(used.total() / time.Duration(n)).Microseconds(), (used.user / time.Duration(n)).Microseconds(), (used.sys / time.Duration(n)).Microseconds(),
			(rest1.sub(rest0).total() * time.Second / max(restFor, 1)).Round(time.Microsecond))
	}
	if o.cpuProfile != "" {
		fmt.Fprintf(out, "   CPU profile of the daemon during this run: %s\n", latencyProfile(o.cpuProfile))
	}
	fmt.Fprintf(out, "   the store's disk alone (a 4 KiB page written and fdatasynced in the data directory, %d times %s apart, the daemon at rest): p50 %s, p99 %s;\n",
		r.disk.n, diskGap, r.disk.p(50), r.disk.p(99))
	fmt.Fprintf(out, "   a sale waits for 4 of these (2 commits, each syncing its pages, then its meta page): %s at their p50\n", 4*r.disk.p(50))
	return d.stop(time.Minute)
}

// latencyProfile is where the latency run's CPU profile goes: FILE with
// "-latency" before its extension.
func latencyProfile(file string) string {
	ext := filepath.Ext(file)
	return strings.TrimSuffix(file, ext) + "-latency" + ext
}

// diskGap paces the disk's samples, as payments arrive rather than back
// to back (a disk answers a burst of syncs faster than a steady trickle).
const diskGap = 5 * time.Millisecond

// diskSamples is how many syncs the disk is timed for: 400 for a latency
// run of 10 s, fewer for a short one.
func diskSamples(rateFor time.Duration) int {
	return max(20, min(400, int(rateFor/(25*time.Millisecond))))
}

// The daemon's metrics that part 2 reads before and after its run.
const (
	mStoreUsed  = "sterad_store_used_bytes"
	mAllocBytes = "go_memstats_alloc_bytes_total"
	mMallocs    = "go_memstats_mallocs_total"
	mCommits    = "sterad_store_commits_total"
	mChanges    = "sterad_store_changes_total"
)

var throughputMetrics = []string{mStoreUsed, mAllocBytes, mMallocs, mCommits, mChanges}

// benchDaemonThroughput is part 2: keyed sales from o.clients clients
// back to back for o.duration, after a short warm-up (connections opened,
// the store's first pages grown), with the daemon's CPU time, memory and
// store growth over the run.
func benchDaemonThroughput(ctx context.Context, out io.Writer, d *daemonProc, dataDir string, sale api.TransactionRequest, o benchOptions, r *benchResults) error {
	warm := min(time.Second, o.duration/10)
	benchThroughput(ctx, d.c, sale, o.clients, warm)
	m0, err := d.metrics(ctx, throughputMetrics...) // before the CPU count: /metrics has its own cost
	if err != nil {
		return err
	}
	dir0 := dirBytes(dataDir)
	used, err := d.measure(o.cpuProfile, func() { r.thr = benchThroughput(ctx, d.c, sale, o.clients, o.duration) })
	if err != nil {
		return err
	}
	m1, err := d.metrics(ctx, throughputMetrics...)
	if err != nil {
		return err
	}
	delta := func(name string) float64 { return m1[name] - m0[name] }
	used0, used1 := int64(m0[mStoreUsed]), int64(m1[mStoreUsed])
	dir1 := dirBytes(dataDir)
	mem, err := d.memory()
	if err != nil {
		return err
	}
	n := max(r.thr.n, 1)
	r.cpuPerTxn, r.sysPerTxn = used.total()/time.Duration(n), used.sys/time.Duration(n)
	r.storePerTx = float64(used1-used0) / float64(n)
	fmt.Fprintf(out, "2. keyed sales through the API (%d clients, %s after a %s warm-up): %d approved, %s, %.0f/s, p50 %s, p99 %s\n",
		o.clients, o.duration, warm, r.thr.n, r.thr.failures(), r.thr.rate(), r.thr.p(50), r.thr.p(99))
	fmt.Fprintf(out, "   ratio to the raw rate: %.2f\n", r.thr.rate()/max(r.raw.rate(), 1e-9))
	fmt.Fprintf(out, "   daemon CPU: %.2f s for %d approved sales = %d µs per transaction (utime+stime, /proc/%d/stat): %d µs its own code, %d µs the kernel's (system calls, page faults)\n",
		used.total().Seconds(), r.thr.n, r.cpuPerTxn.Microseconds(), d.pid, (r.cpuPerTxn - r.sysPerTxn).Microseconds(), r.sysPerTxn.Microseconds())
	fmt.Fprintf(out, "   daemon memory: RSS %s (%s anonymous, %s file-backed), peak %s (VmHWM)\n", mbytes(mem.rss), mbytes(mem.anon), mbytes(mem.file), mbytes(mem.hwm))
	fmt.Fprintf(out, "   store growth: %.0f B per transaction (database data, sterad_store_used_bytes %s → %s); data directory %s → %s (%.0f B per transaction: bbolt grows its file ahead in steps)\n",
		r.storePerTx, mbytes(used0), mbytes(used1), mbytes(dir0), mbytes(dir1), float64(dir1-dir0)/float64(n))
	r.allocPerTx = delta(mAllocBytes) / float64(n)
	fmt.Fprintf(out, "   daemon allocations: %.1f KB and %.0f objects per transaction (go_memstats_alloc_bytes_total, go_memstats_mallocs_total)\n",
		r.allocPerTx/1e3, delta(mMallocs)/float64(n))
	if commits := delta(mCommits); commits > 0 {
		fmt.Fprintf(out, "   store commits: %.2f per transaction, %.1f changes each (sterad_store_commits_total, sterad_store_changes_total)\n",
			commits/float64(n), delta(mChanges)/commits)
	}
	if o.cpuProfile != "" {
		fmt.Fprintf(out, "   CPU profile of the daemon: %s\n", o.cpuProfile)
	}
	if o.memProfile != "" {
		if err := d.signalLogged(syscall.SIGUSR2, "heap profile written"); err != nil {
			return err
		}
		fmt.Fprintf(out, "   heap profile of the daemon: %s\n", o.memProfile)
	}
	return nil
}

func printGoals(out io.Writer, o benchOptions, r benchResults) {
	fmt.Fprintln(out, "\ngoals of the performance issue:")
	goal := func(label string, ok bool, figure string, args ...any) {
		v := "NOT met"
		if ok {
			v = "met"
		}
		fmt.Fprintf(out, "  %-50s %-7s  (%s)\n", label+":", v, fmt.Sprintf(figure, args...))
	}
	ratio := r.thr.rate() / max(r.raw.rate(), 1e-9)
	goal(fmt.Sprintf("keyed sales at %d clients ≥ 35%% of the raw rate", o.clients), ratio >= goalRatio,
		"%.0f%%: %.0f/s of %.0f/s", ratio*100, r.thr.rate(), r.raw.rate())
	goal(fmt.Sprintf("keyed sales at %d clients p99 ≤ 20ms", o.clients), r.thr.n > 0 && r.thr.p(99) <= goalP99, "%s", r.thr.p(99))
	goal(fmt.Sprintf("latency the gateway adds at %d/s p99 ≤ 2ms", o.rate), r.lat.added.n > 0 && r.lat.added.p(99) <= goalAddedP99,
		"%s; the disk alone: one sync p50 %s, p99 %s, and a sale waits for 4", r.lat.added.p(99), r.disk.p(50), r.disk.p(99))
	goal("daemon CPU per transaction ≤ 150 µs", r.thr.n > 0 && r.cpuPerTxn <= goalCPUPerTxn, "%d µs", r.cpuPerTxn.Microseconds())
	goal("store growth ≤ 1 KB per transaction", r.thr.n > 0 && r.storePerTx <= goalStorePerTx, "%.0f B", r.storePerTx)
	if q := r.queued; q != nil {
		goal(fmt.Sprintf("RSS ≤ 80 MB with %d queued advices", q.n), q.rss <= goalQueuedRSS, "%s at rest; peak %s", mbytes(q.rss), mbytes(q.hwm))
	} else {
		fmt.Fprintf(out, "  %-50s %s\n", "RSS ≤ 80 MB with queued advices:", "not measured (--queued 0)")
	}
}

// mbytes prints a size in MB (10⁶ bytes).
func mbytes(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// samples are durations measured over a run.
type samples struct {
	mu       sync.Mutex
	d        []time.Duration
	n        int
	failed   int
	firstErr error
	span     time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.n++
	s.mu.Unlock()
}

func (s *samples) fail(err error) {
	s.mu.Lock()
	s.failed++
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

// failures says how many calls failed, and the first one's error.
func (s *samples) failures() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == 0 {
		return "0 failed"
	}
	return fmt.Sprintf("%d failed (the first: %v)", s.failed, s.firstErr)
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
					s.fail(err)
					continue
				}
				s.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	s.span = time.Since(start)
	return s
}

// benchRaw sends keyed sales straight through an acquirer client of the
// bench's own (terminal ID tid) to addr, from senders goroutines.
func benchRaw(ctx context.Context, addr, tid string, senders int, d time.Duration) (*samples, error) {
	e, err := sterad.ParseExpiry(time.Now().AddDate(2, 0, 0).Format("0601"))
	if err != nil {
		return nil, err
	}
	var stan atomic.Int64
	next := func(context.Context, string, time.Time) (sterad.STAN, error) {
		return sterad.STAN(stan.Add(1)%999_999 + 1), nil
	}
	cfg := DefaultConfig()
	c, err := protocol.NewClient(protocol.ClientOptions{Address: addr, TerminalID: tid, MerchantID: cfg.MerchantID, STAN: next, Location: cfg.Location()})
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(runCtx)
	}()
	defer func() { stop(); <-done }()
	online, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitOnline(online); err != nil {
		return nil, fmt.Errorf("raw run: the acquirer at %s: %w", addr, err)
	}
	return closedLoop(ctx, senders, d, func() error {
		now := time.Now()
		s, _ := next(ctx, tid, now)
		msg := &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: "4111111111111111", Processing: sterad.ProcPurchase, HasAmount: true,
			Amount: sterad.NewAmount(12800, sterad.JPY), Currency: sterad.JPY, Transmitted: now.UTC(), STAN: s,
			LocalTime: now, Expiry: e, MCC: gateway.DefaultMCC, Entry: sterad.EntryKeyed, Condition: sterad.CondMailPhone,
			TerminalID: tid, MerchantID: cfg.MerchantID, Batch: 1,
		}
		resp, err := c.Exchange(ctx, msg)
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

// benchLatency posts a keyed sale every 1/rate s for d, each in its own
// goroutine, and takes from each answer the acquirer's own time.
func benchLatency(ctx context.Context, c *api.Client, timer *hostTimer, sale api.TransactionRequest, rate int, d time.Duration) latencyRun {
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
			if err == nil && tx.Status != "approved" {
				err = fmt.Errorf("sale %s: %s", tx.Status, tx.Reason)
			}
			if err != nil {
				r.api.fail(err)
				return
			}
			host, ok := timer.exchange(tx.TerminalID, tx.STAN)
			if !ok {
				r.api.fail(fmt.Errorf("sale %s/%s not seen at the acquirer: its time cannot be split", tx.TerminalID, tx.STAN))
				return
			}
			r.api.add(took)
			r.host.add(host)
			r.added.add(took - host)
		}()
	}
	wg.Wait()
	return r
}
