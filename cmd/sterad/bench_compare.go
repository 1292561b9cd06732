package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runCompare runs phases 1 to 3 for two daemon binaries alternately,
// o.rounds times, and prints each run's figures and, per binary, their
// medians. A machine whose speed drifts from one minute to the next (a
// virtual machine's neighbours) makes two runs taken apart incomparable;
// interleaving them, and swapping which goes first every round, spreads
// the drift over both. Phase 4 is not run: memory does not drift.
func runCompare(ctx context.Context, out io.Writer, work string, o benchOptions) error {
	kek, host, err := benchSetup(work, o)
	if err != nil {
		return err
	}
	defer host.close()
	type side struct {
		name, exe string
		runs      []benchResults
	}
	self := "this binary"
	if o.daemon != "" {
		self = o.daemon
	}
	sides := []*side{{name: "A", exe: o.daemon}, {name: "B", exe: o.compare}}
	fmt.Fprintf(out, "sterad bench --compare: A = %s, B = %s; %d rounds, each: the raw ISO 8583 rate, then A and B in turn (B first in even rounds); %d clients, %s per throughput run, %d/s for %s\n\n",
		self, o.compare, o.rounds, o.clients, o.duration, o.rate, o.rateFor)
	for round := 1; round <= o.rounds; round++ {
		raw, err := benchRaw(ctx, host.addr, "BR"+newRunID(), o.clients, o.rawDuration)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "round %d: raw %.0f/s\n", round, raw.rate())
		order := sides
		if round%2 == 0 {
			order = []*side{sides[1], sides[0]}
		}
		for _, s := range order {
			dir := filepath.Join(work, fmt.Sprintf("round%d-%s", round, s.name))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			r := benchResults{raw: raw}
			if err := benchDaemonPhases(ctx, io.Discard, host, dir, kek, s.exe, "BV"+newRunID(), o, &r); err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round, err)
			}
			s.runs = append(s.runs, r)
			fmt.Fprintf(out, "  %s: %s\n", s.name, compareLine(r))
		}
	}
	fmt.Fprintf(out, "\nmedians of %d rounds:\n", o.rounds)
	fmt.Fprintf(out, "  %-42s %14s %14s\n", "", "A", "B")
	row := func(label string, f func(benchResults) float64, format func(float64) string) {
		fmt.Fprintf(out, "  %-42s %14s %14s\n", label, format(median(sides[0].runs, f)), format(median(sides[1].runs, f)))
	}
	ms := func(v float64) string { return time.Duration(v).Round(10 * time.Microsecond).String() }
	row(fmt.Sprintf("keyed sales/s at %d clients", o.clients), func(r benchResults) float64 { return r.thr.rate() }, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	row("  ratio to the raw rate", func(r benchResults) float64 { return r.thr.rate() / max(r.raw.rate(), 1e-9) }, func(v float64) string { return fmt.Sprintf("%.3f", v) })
	row("  p50", func(r benchResults) float64 { return float64(r.thr.p(50)) }, ms)
	row("  p99", func(r benchResults) float64 { return float64(r.thr.p(99)) }, ms)
	row("daemon CPU per sale", func(r benchResults) float64 { return float64(r.cpuPerTxn) }, func(v float64) string { return fmt.Sprintf("%.0f µs", v/1e3) })
	row("  of which the kernel's", func(r benchResults) float64 { return float64(r.sysPerTxn) }, func(v float64) string { return fmt.Sprintf("%.0f µs", v/1e3) })
	row("daemon allocations per sale", func(r benchResults) float64 { return r.allocPerTx }, func(v float64) string { return fmt.Sprintf("%.1f KB", v/1e3) })
	row(fmt.Sprintf("added at %d/s, p50", o.rate), func(r benchResults) float64 { return float64(r.lat.added.p(50)) }, ms)
	row("  p99", func(r benchResults) float64 { return float64(r.lat.added.p(99)) }, ms)
	row("store growth per sale", func(r benchResults) float64 { return r.storePerTx }, func(v float64) string { return fmt.Sprintf("%.0f B", v) })
	row("the disk: one sync, p50", func(r benchResults) float64 { return float64(r.disk.p(50)) }, ms)
	row("  p99", func(r benchResults) float64 { return float64(r.disk.p(99)) }, ms)
	return nil
}

// compareLine is one run's figures on one line.
func compareLine(r benchResults) string {
	return fmt.Sprintf("%.0f sales/s (ratio %.3f), p50 %s, p99 %s, %d µs CPU per sale; added at the steady rate p50 %s, p99 %s",
		r.thr.rate(), r.thr.rate()/max(r.raw.rate(), 1e-9), r.thr.p(50), r.thr.p(99), r.cpuPerTxn.Microseconds(), r.lat.added.p(50), r.lat.added.p(99))
}

// median of f over runs (the mean of the middle two for an even count).
func median(runs []benchResults, f func(benchResults) float64) float64 {
	v := make([]float64, 0, len(runs))
	for _, r := range runs {
		v = append(v, f(r))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// newRunID is 6 random hex digits for the terminal IDs of one run: an
// external acquirer keeps its ledger, and a STAN used again the same day
// is a duplicate there.
func newRunID() string {
	raw := make([]byte, 3)
	rand.Read(raw)
	return strings.ToUpper(hex.EncodeToString(raw))
}
