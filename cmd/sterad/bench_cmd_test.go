package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `sterad bench` in miniature: every figure it promises is printed, with
// numbers, and nothing failed. The daemon it starts is this test binary
// run as sterad (TestMain). Timings are not judged here: they are what
// the bench reports.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons as child processes (~10 s)")
	}
	t.Setenv(asDaemon, "1") // inherited by the daemon the bench starts
	dir := t.TempDir()
	cpu, heap := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "heap.pprof")
	code, out, errw := run15(t, "bench", "--clients", "4", "--duration", "300ms", "--rate-duration", "300ms", "--raw-duration", "200ms",
		"--queued", "200", "--queued-rest", "500ms", "--cpuprofile", cpu, "--memprofile", heap)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errw)
	}
	const (
		n   = `[1-9][0-9]*`      // a count that is not zero
		d   = `[0-9.]+(µs|ms|s)` // a duration
		mb  = `[0-9.]+ MB`
		num = `[0-9.]+`
	)
	for _, want := range []string{
		`1\. raw ISO 8583 round trips.*: ` + n + ` exchanges, 0 failed, ` + n + `/s, p50 ` + d + `, p99 ` + d,
		`2\. keyed sales through the API \(4 clients, 300ms .*\): ` + n + ` approved, 0 failed, ` + n + `/s, p50 ` + d + `, p99 ` + d,
		`ratio to the raw rate: ` + num,
		`daemon CPU: ` + num + ` s for ` + n + ` approved sales = [0-9]+ µs per transaction \(utime\+stime, /proc/[0-9]+/stat\): [0-9]+ µs its own code, [0-9]+ µs the kernel's`,
		`daemon memory: RSS ` + mb + ` \(` + mb + ` anonymous, ` + mb + ` file-backed\), peak ` + mb,
		`store growth: -?[0-9]+ B per transaction`,
		`daemon allocations: ` + num + ` KB and ` + n + ` objects per transaction`,
		`store commits: ` + num + ` per transaction, ` + num + ` changes each`,
		`CPU profile of the daemon: ` + regexp.QuoteMeta(cpu),
		`3\. at 20 transactions/s for 300ms: ` + n + ` approved, 0 failed; API answer p50 ` + d + ` p99 ` + d + `; the acquirer's own time p50 ` + d + ` p99 ` + d,
		`added by the gateway \(API answer − acquirer's time\): p50 -?` + d + `, p99 -?` + d + `, max -?` + d,
		`the daemon's CPU at this rate: [0-9]+ µs per sale \([0-9]+ µs its own code, [0-9]+ µs the kernel's; .*\); at rest before the run: ` + d + ` per second`,
		`CPU profile of the daemon during this run: ` + regexp.QuoteMeta(latencyProfile(cpu)),
		`of which the store's commits \(sterad_store_commit_duration_seconds\): 2\.0 per sale, ` + d + ` each on average, ` + d + ` per sale`,
		`the store's disk alone \(a 4 KiB page written and fdatasynced in the data directory, 20 times 5ms apart, the daemon at rest\): p50 ` + d + `, p99 ` + d + `;`,
		`a sale waits for 4 of these \(2 commits, each syncing its pages, then its meta page\): ` + d + ` at their p50`,
		`4\. 200 stood-in sales .*: the daemon was up in ` + d + ` and lists 200 queued`,
		`daemon memory at rest with the queue: RSS ` + mb + ` \(` + mb + ` anonymous, ` + mb + ` file-backed.*peak ` + mb,
		`drain when the acquirer was back: 200 advices in ` + d + `, ` + n + `/s`,
		`keyed sales at 4 clients ≥ 35% of the raw rate: +(met|NOT met) +\(` + n + `%`,
		`keyed sales at 4 clients p99 ≤ 20ms: +(met|NOT met) +\(` + d + `\)`,
		`latency the gateway adds at 20/s p99 ≤ 2ms: +(met|NOT met) +\(-?` + d + `; the disk alone: one sync p50 ` + d + `, p99 ` + d + `, and a sale waits for 4\)`,
		`daemon CPU per transaction ≤ 150 µs: +(met|NOT met) +\([0-9]+ µs\)`,
		`store growth ≤ 1 KB per transaction: +(met|NOT met) +\(-?[0-9]+ B\)`,
		`RSS ≤ 80 MB with 200 queued advices: +(met|NOT met) +\(` + mb + ` at rest; peak ` + mb,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no line matches %s", want)
		}
	}
	if strings.Contains(out, "4111111111111111") {
		t.Error("the output shows a card number")
	}
	for _, p := range []string{cpu, latencyProfile(cpu), heap, filepath.Join(dir, "heap-queued.pprof")} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", p, err)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, errw)
	}
}

// `sterad bench --compare` in miniature: both binaries (here this test
// binary twice) run every round, and the medians table names every figure
// for both.
func TestBenchCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four daemons as child processes")
	}
	t.Setenv(asDaemon, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errw := run15(t, "bench", "--compare", self, "--rounds", "2", "--clients", "4", "--duration", "300ms", "--rate-duration", "300ms", "--raw-duration", "200ms")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errw)
	}
	const (
		n = `[1-9][0-9]*`
		d = `[0-9.]+(µs|ms|s)`
	)
	run := n + ` sales/s \(ratio [0-9.]+\), p50 ` + d + `, p99 ` + d + `, [0-9]+ µs CPU per sale; added at the steady rate p50 -?` + d + `, p99 -?` + d
	for _, want := range []string{
		`round 1: raw ` + n + `/s\n  A: ` + run + `\n  B: ` + run,
		`round 2: raw ` + n + `/s\n  B: ` + run + `\n  A: ` + run, // B first in even rounds
		`medians of 2 rounds:`,
		`keyed sales/s at 4 clients +` + n + ` +` + n,
		`daemon CPU per sale +[0-9]+ µs +[0-9]+ µs`,
		`  of which the kernel's +[0-9]+ µs +[0-9]+ µs`,
		`daemon allocations per sale +[0-9.]+ KB +[0-9.]+ KB`,
		`added at 20/s, p50 +-?` + d + ` +-?` + d,
		`store growth per sale +-?[0-9]+ B +-?[0-9]+ B`,
		`the disk: one sync, p50 +` + d + ` +` + d,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no match for %s in\n%s", want, out)
		}
	}
	if code, _, errw := run15(t, "bench", "--compare", self, "--rounds", "0"); code == 0 || !strings.Contains(errw, "--rounds") {
		t.Errorf("--rounds 0: exit %d, %s", code, errw)
	}
}
