//go:build linux

package crashtest

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/sterad/sterad"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

var (
	flagCycles    = flag.Int("crash.cycles", 0, "kill cycles (default 4; 2 with -crash.short)")
	flagDuration  = flag.Duration("crash.duration", 0, "length of a cycle before its kill (default 3s; 2s with -crash.short)")
	flagClients   = flag.Int("crash.clients", 6, "concurrent API clients")
	flagSeed      = flag.Uint64("crash.seed", 0, "seed of every random choice (0: from the clock)")
	flagNegCycles = flag.Int("crash.negcycles", 10, "cap on the negative control's kill cycles")
	flagKeep      = flag.Bool("crash.keep", false, "keep the work directory even on success")
	flagNoClose   = flag.Bool("crash.noclose", false, "no batch closes during the chaos")
	flagCardData  = flag.String("crash.carddata", "", "the daemon's card_data: blind (card-present sales at the encrypting terminal, refunds and voids by TI) or clear (keyed sales, pre-authorizations and no-shows too); empty runs both")
	flagBin       = flag.String("crash.bin", "", "test this sterad binary instead of building ./cmd/sterad (TestCrash only)")
	flagFlush     = flag.String("crash.flush", "poll", "final settling: poll (POST /v1/queue/flush at every poll), once (one flush, then the forwarder alone) or none (the forwarder alone)")
	flagShort     optBool
)

func init() {
	flag.Var(&flagShort, "crash.short", "fewer, shorter cycles (default: the value of -short)")
}

// optBool is a boolean flag that knows whether it was set.
type optBool struct{ set, v bool }

func (b *optBool) String() string   { return strconv.FormatBool(b.v) }
func (b *optBool) IsBoolFlag() bool { return true }
func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	b.set, b.v = true, v
	return err
}

// settings are the effective flags.
type settings struct {
	cycles, clients int
	duration        time.Duration
	seed            uint64
	short           bool
}

func current() settings {
	s := settings{clients: *flagClients, seed: *flagSeed, short: testing.Short()}
	if flagShort.set {
		s.short = flagShort.v
	}
	s.cycles, s.duration = 4, 3*time.Second
	if s.short {
		s.cycles, s.duration = 2, 2*time.Second
	}
	if *flagCycles > 0 {
		s.cycles = *flagCycles
	}
	if *flagDuration > 0 {
		s.duration = *flagDuration
	}
	if s.clients < 1 {
		s.clients = 1
	}
	return s
}

// The binaries under test, built once per test process.
var (
	buildDir string
	builds   sync.Map // tags → *build
)

type build struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	flag.Parse()
	if *flagSeed == 0 {
		*flagSeed = uint64(time.Now().UnixNano()) // one seed for every test of the run
	}
	dir, err := os.MkdirTemp("", "sterad-crashtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds ./cmd/sterad of the current tree with tags (once per test
// process) and returns its path.
// brokenJournal names the negative control's build: the daemon with
// crashtest/brokenstore, which journals keyed requests after sending them.
const brokenJournal = "broken-journal"

func binary(t testing.TB, variant string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(variant, &build{})
	b := v.(*build)
	b.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			b.err = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		name := "sterad"
		if variant != "" {
			name += "-" + variant
		}
		b.path = filepath.Join(buildDir, name)
		args := []string{"build", "-o", b.path}
		if variant == brokenJournal {
			// The negative control: the daemon's one store seam
			// (cmd/sterad/store.go) is replaced by the broken store.
			overlay, err := json.Marshal(map[string]map[string]string{"Replace": {
				filepath.Join(root, "cmd", "sterad", "store.go"): filepath.Join(root, "crashtest", "testdata", "broken_store.go"),
			}})
			if err != nil {
				b.err = err
				return
			}
			file := filepath.Join(buildDir, "overlay-"+variant+".json")
			if err := os.WriteFile(file, overlay, 0o600); err != nil {
				b.err = err
				return
			}
			args = append(args, "-overlay", file)
		}
		cmd := exec.Command("go", append(args, "./cmd/sterad")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build sterad: %v", b.err)
	}
	return b.path
}

// TestCrash runs the workload under chaos for the configured kill cycles,
// settles, and checks that nothing was lost or charged twice.
func TestCrash(t *testing.T) {
	modes := []string{sterad.CardDataBlind, sterad.CardDataClear}
	if *flagCardData != "" {
		modes = []string{*flagCardData}
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { crashRun(t, mode) })
	}
}

// crashRun is one crash test run with the daemon in card data mode mode.
func crashRun(t *testing.T, mode string) {
	s := current()
	t.Logf("crash test: seed %d, %d cycles of %s, %d clients (replay: -crash.seed %d)", s.seed, s.cycles, s.duration, s.clients, s.seed)
	begin := time.Now()
	bin := *flagBin
	if bin == "" {
		bin = binary(t, "")
	}
	h := newHarness(t, bin, "real-"+mode, mode)
	h.waitOnline()
	h.waitTerminalReady(startTimeout)

	m := defaultMix()
	if mode == sterad.CardDataBlind {
		m = blindMix()
	}
	w := newWorkload(h, s.seed, m)
	told := w.probeNoShow()
	t.Logf("no-show probe: told %s; no-shows in the mix: %v", told, w.noShow)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, s.clients)
	}()
	ch := newChaos(h, s.seed)
	for range s.cycles {
		ch.cycle(s.duration)
	}
	ch.finish()
	cancel()
	h.note("workload stopping: clients finish their requests")
	select {
	case <-done:
	case <-time.After(opTimeout + time.Minute):
		t.Fatalf("clients did not finish within %s", opTimeout+time.Minute)
	}

	// One last kill and restart, then settle everything.
	ch.stats.Kills++
	h.restartDaemon()
	h.waitOnline()
	settled := settle(t, h)
	closed := finishBatches(t, h)
	in := gather(t, h, w)
	vs := Check(in)
	report(t, h, s, ch.stats, w, in, vs, time.Since(begin))
	if !settled {
		t.Errorf("the queue did not drain, or transactions stayed pending or unknown, within %s", settleTimeout)
	}
	if !closed {
		t.Errorf("a batch stayed closing after %s of retrying the close", settleTimeout)
	}
	if len(vs) > 0 {
		t.Errorf("%d violation(s) with seed %d: nothing may be lost or charged twice", len(vs), s.seed)
	}
}

// TestCrashNegativeControl runs the harness against a build that sends
// keyed requests before journaling them: killing it while sales are in
// flight must lose a charge, and the checker must say so.
func TestCrashNegativeControl(t *testing.T) {
	s := current()
	t.Logf("negative control: seed %d, at most %d kill cycles, %d clients (replay: -crash.seed %d)", s.seed, *flagNegCycles, s.clients, s.seed)
	begin := time.Now()
	h := newHarness(t, binary(t, brokenJournal), "broken", sterad.CardDataClear) // the broken build journals keyed requests late
	h.waitOnline()
	w := newWorkload(h, s.seed, salesOnly())
	ch := newChaos(h, s.seed)
	rng := rand.New(rand.NewPCG(s.seed, 1<<32))
	var vs []Violation
	var in Input
	for cycle := 1; cycle <= *flagNegCycles; cycle++ {
		// A response delay (under the 1 s timeout) holds every sale
		// between its sending and its journaling for a while.
		if err := h.setDelay(600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(ctx, s.clients)
		}()
		timer := time.NewTimer(time.Duration(300+rng.IntN(600)) * time.Millisecond)
		<-timer.C // the kill schedule
		ch.stats.Cycles++
		ch.stats.Kills++
		h.restartDaemon()
		cancel()
		if err := h.setDelay(0); err != nil {
			t.Fatal(err)
		}
		h.waitOnline()
		<-done
		settle(t, h)
		in = gather(t, h, w)
		vs = Check(in)
		t.Logf("negative control cycle %d: %d requests, %d violations (%d LOST)", cycle, len(in.Records), len(vs), count(vs, RuleLost))
		if hasRule(vs, RuleLost) {
			break
		}
	}
	report(t, h, s, ch.stats, w, in, vs, time.Since(begin))
	if !hasRule(vs, RuleLost) {
		t.Fatalf("the checker found no LOST charge against the broken build in %d kill cycles: the crash test would prove nothing", *flagNegCycles)
	}
	t.Logf("negative control passed: the checker caught the broken build after %d kill cycle(s)", ch.stats.Kills)
}

func count(vs []Violation, rule string) int {
	n := 0
	for _, v := range vs {
		if v.Rule == rule {
			n++
		}
	}
	return n
}

const settleTimeout = 2 * time.Minute

// settle flushes the store-and-forward queue until it is empty and no
// transaction is pending, unknown or stood in (or the deadline passes).
func settle(t testing.TB, h *harness) bool {
	t.Helper()
	h.note("settling: flush until the queue is empty and nothing is pending")
	h.waitTerminalReady(30 * time.Second)
	deadline := time.Now().Add(settleTimeout)
	flushed := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if *flagFlush == "poll" || *flagFlush == "once" && !flushed {
			_, err := h.api.Flush(ctx)
			flushed = err == nil
		}
		items, _, qerr := h.api.Queue(ctx)
		open, terr := 0, error(nil)
		for _, st := range unresolved {
			txns, err := h.api.Transactions(ctx, url.Values{"status": {st}})
			open += len(txns)
			terr = cmp.Or(terr, err)
		}
		cancel()
		if qerr == nil && terr == nil && len(items) == 0 && open == 0 {
			h.note("settled")
			return true
		}
		if time.Now().After(deadline) {
			h.note("not settled: %d queued, %d pending, unknown or stood in; errors %v %v", len(items), open, qerr, terr)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// finishBatches finishes every close the chaos left unfinished (a batch
// still closing), retrying until none is closing or the deadline passes.
func finishBatches(t testing.TB, h *harness) bool {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		bs, err := h.api.Batches(ctx)
		closing := slices.ContainsFunc(bs, func(b api.BatchView) bool { return b.Batch != nil && b.State == "closing" })
		if err == nil && !closing {
			cancel()
			return true
		}
		if closing {
			_, cerr := h.api.Do(ctx, "POST", "/v1/batches/close", nil, nil, nil)
			h.note("finish the batch close: %v", cerr)
		}
		cancel()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gather reads the daemon's transactions (each with its events), the
// host's ledger and the clients' records, and saves them in the work
// directory.
func gather(t testing.TB, h *harness, w *workload) Input {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := h.api.Transactions(ctx, nil)
	if err != nil {
		t.Fatalf("list the daemon's transactions: %v", err)
	}
	full := make([]*api.Transaction, len(list))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var firstErr error
	for i, x := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := h.api.Transaction(ctx, x.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				full[i] = x
				return
			}
			full[i] = d
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("read a daemon transaction: %v", firstErr)
	}
	l, err := h.ledger()
	if err != nil {
		t.Fatalf("read the host's ledger: %v", err)
	}
	bs, err := h.api.Batches(ctx)
	if err != nil {
		t.Fatalf("read the daemon's batches: %v", err)
	}
	var slips []terminal.Slip
	for _, st := range h.terms {
		var got struct {
			Slips []terminal.Slip `json:"slips"`
		}
		if err := h.getJSON(st.ctl, "/slips", &got); err != nil {
			t.Fatalf("read terminal %s's slips: %v", st.id, err)
		}
		slips = append(slips, got.Slips...)
	}
	in := Input{Daemon: full, Ledger: l, Records: w.snapshot(), Batches: bs, Slips: slips}
	for name, v := range map[string]any{"daemon-transactions.json": in.Daemon, "ledger.json": in.Ledger, "records.json": in.Records,
		"batches.json": in.Batches, "slips.json": in.Slips} {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			os.WriteFile(filepath.Join(h.dir, name), b, 0o600)
		}
	}
	return in
}

// report prints the run's summary and every violation.
func report(t testing.TB, h *harness, s settings, cs chaosStats, w *workload, in Input, vs []Violation, took time.Duration) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d; %d cycles, %d kills (%d during an outage), %d outages, %d delays, %d drops, %d unplugs, %d batch closes; %d daemon starts; %s\n",
		s.seed, cs.Cycles, cs.Kills, cs.KillsInOutage, cs.Outages, cs.Delays, cs.Drops, cs.Unplugs, cs.BatchCloses, h.starts, took.Round(100*time.Millisecond))
	w.mu.Lock()
	fmt.Fprintf(&b, "operations: %s\n", counts(w.kinds))
	w.mu.Unlock()
	told, retried := map[string]int{}, 0
	for _, r := range in.Records {
		told[r.Op+" "+r.Told()]++
		if r.Attempts > 1 {
			retried++
		}
	}
	fmt.Fprintf(&b, "requests: %d (%d repeated after the daemon died); told: %s\n", len(in.Records), retried, counts(told))
	desk, busy, streak, longest := 0, 0, time.Duration(0), time.Duration(0)
	var since time.Time
	deskRecs := slices.Clone(in.Records)
	slices.SortFunc(deskRecs, func(a, b *Record) int { return a.Sent.Compare(b.Sent) })
	for _, r := range deskRecs {
		if r.Terminal == "" {
			continue
		}
		desk++
		if r.ErrCode == "terminal_busy" && r.TxnID != "" { // the terminal itself answered BUSY
			busy++
			if since.IsZero() {
				since = r.Sent
			}
			streak = r.Done.Sub(since)
			longest = max(longest, streak)
			continue
		}
		since = time.Time{}
	}
	fmt.Fprintf(&b, "card-present requests: %d, %d refused BUSY by the terminal itself (longest run %s)\n", desk, busy, longest.Round(time.Millisecond))
	byStatus := map[string]int{}
	for _, x := range in.Daemon {
		byStatus[x.Op+" "+x.Status]++
	}
	fmt.Fprintf(&b, "daemon transactions: %d: %s\n", len(in.Daemon), counts(byStatus))
	host := map[string]int{}
	for _, e := range in.Ledger.Transactions {
		host[e.Kind+" "+e.Status]++
	}
	for _, a := range in.Ledger.Authorizations {
		host[a.Kind+" "+a.Status]++
	}
	fmt.Fprintf(&b, "host ledger: %d financial entries, %d counted, %d authorizations: %s\n",
		len(in.Ledger.Transactions), len(in.Ledger.Approved), len(in.Ledger.Authorizations), counts(host))
	tt := in.Ledger.Totals
	fmt.Fprintf(&b, "host totals: debits %d ¥%s, credits %d ¥%s, net %s\n", tt.DebitCount, tt.DebitAmount, tt.CreditCount, tt.CreditAmount, tt.Net)
	batches := map[string]int{}
	for _, bv := range in.Batches {
		if bv.Batch != nil {
			batches["daemon "+bv.State]++
		}
	}
	for _, hb := range in.Ledger.Batches {
		batches["host "+hb.State+" "+hb.Result]++
	}
	fmt.Fprintf(&b, "batches: %s\n", counts(batches))
	byRule := map[string]int{}
	for _, v := range vs {
		byRule[v.Rule]++
	}
	fmt.Fprintf(&b, "violations: %d %s", len(vs), counts(byRule))
	var all strings.Builder
	shown := map[string]int{}
	for _, v := range vs {
		fmt.Fprintf(&all, "%s\n", v)
		if shown[v.Rule]++; shown[v.Rule] <= maxShown {
			fmt.Fprintf(&b, "\n  %s", v)
		}
	}
	path := filepath.Join(h.dir, "violations.txt")
	os.WriteFile(path, []byte(all.String()), 0o600)
	for rule, n := range shown {
		if n > maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more %s violations: all of them are in %s", n-maxShown, rule, path)
		}
	}
	t.Log(b.String())
	h.note("%s", b.String())
}

// maxShown bounds the violations of one rule printed in the test log.
const maxShown = 20

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
