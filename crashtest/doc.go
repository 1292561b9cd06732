// Package crashtest is the crash test of issue 4: the proof that sterad
// loses nothing and charges nothing twice, whatever happens to it. It
// holds only tests.
//
// # What it does
//
// TestCrash builds ./cmd/sterad and runs, as child processes, the test
// acquirer (`sterad sim acquirer`, with a data directory: it outlives the
// daemon and is the reference), two simulated fixed terminals FRONT001
// and FRONT002 (`sterad sim terminal`) and the daemon (`sterad serve --config`, with
// acquirer.timeout 1s). Several concurrent clients drive the HTTP API:
// keyed sales (approving and declining test cards of docs/acquirer-protocol.md §7,
// the no-answer and 96 cards included), keyed pre-authorizations followed
// by completions, card-present sales at both terminals (one desk client
// each; with card_data: blind every debit is one), refunds and voids of
// earlier approvals, and no-show charges when the daemon accepts them.
// Every request carries its own Idempotency-Key; when the daemon is dead
// the client repeats the same request with the same key until it answers.
// Every amount is unique (see amountFor), so each host ledger entry can be
// traced to the client request that caused it even when the daemon does
// not know about it.
//
// Meanwhile a seeded chaos loop kills the daemon with SIGKILL at a random
// moment of every cycle and restarts it, and between kills turns acquirer
// outages on and off, delays responses around the 1 s timeout, drops
// responses (processed by the host, answer lost), unplugs a terminal and
// now and then starts a batch close.
//
// At the end the chaos stops, the daemon is killed and restarted once more,
// the store-and-forward queue is flushed until it is empty and nothing is
// pending, unknown or stood in, any batch left closing is closed, and Check
// compares the daemon's transactions and batches with the acquirer's
// ledger and with what every client was told. Its rules (see Check):
//
//   - LOST: a counted host charge (or a live hold) no daemon transaction
//     has — matched on terminal ID, STAN and amount;
//   - DUPLICATE: one client request, or one daemon transaction, counted
//     twice by the host;
//   - KEY: one Idempotency-Key gave several daemon transactions, or a
//     replay was refused;
//   - UNRESOLVED: a transaction left pending, unknown or stood in, or an
//     unknown outcome (reversal owed) that did not end reversed;
//   - MISMATCH: the host counts a charge the daemon calls reversed,
//     declined, cancelled or voided, or the daemon calls approved a charge
//     (or pre-authorization) the host does not count (or hold);
//   - TOTALS: per terminal and batch, the daemon's approved sales,
//     completions and no-shows (debits) and refunds (credits) — summed from
//     its transactions and as its own batch view reports them — differ
//     from the host's counted entries;
//   - BATCH: a batch closed on one side and not the other, a 0500 not
//     answered 00, a batch left closing;
//   - TOLD: a client told approved whose transaction is not approved (or
//     voided later), told declined, cancelled or reversed but charged, or
//     told an error but charged.
//
// A stood-in sale counts once its advice is accepted (the checker also
// matches an advice carrying its own STAN by terminal and amount); a
// declined advice is not counted on either side.
//
// TestCrashNegativeControl runs the same harness and checker against a
// daemon whose store is wrapped by crashtest/brokenstore (keyed requests
// are written to the journal only after they were sent; the wrapper is
// put in with `go build -overlay`, production code has no switch for it)
// and fails unless the checker reports a LOST charge: otherwise the crash
// test would prove nothing.
//
// # Running it
//
// `go test ./crashtest/` (part of `make test`) runs a short version: a few
// kill cycles and the negative control, in about a minute. The full run is
//
//	make crashtest
//
// which is
//
//	go test -count=1 -timeout 60m -v -run 'TestCrash' ./crashtest/ -crash.cycles 50 -crash.duration 4s
//
// Flags (after the package):
//
//	-crash.cycles N      kill cycles (default 4; 2 with -crash.short)
//	-crash.duration D    length of a cycle before its kill (default 3s; 2s with -crash.short)
//	-crash.clients N     concurrent API clients (default 6)
//	-crash.seed S        seed of every random choice (default: from the clock; always printed)
//	-crash.short         fewer, shorter cycles (default: go test -short)
//	-crash.negcycles N   cap on the negative control's kill cycles (default 10)
//	-crash.keep          keep the work directory (logs, stores, ledger) even on success
//	-crash.noclose       no batch closes during the chaos
//	-crash.flush MODE    final settling: poll (POST /v1/queue/flush at every poll, the
//	                     default), once, or none (the forwarder alone)
//	-crash.bin PATH      test a prebuilt sterad (e.g. an older commit) instead of
//	                     building ./cmd/sterad
//	-crash.repro         also run the reproductions of bugs the crash test found
//	                     (TestRepro*: skipped otherwise; they fail while the bug is there)
//
// A failing run prints its seed, the work directory with every child's log
// (acquirer.log, terminal-FRONT00n.log, daemon.log, chaos.log), what was compared
// (daemon-transactions.json, ledger.json, records.json, batches.json) and
// the violations with their evidence (all of them in violations.txt). The
// same seed replays the same choices (op mix, amounts, chaos schedule);
// timing still varies between runs, so a replay is likely, not certain, to
// hit the same interleaving.
//
// The tests need Linux (pseudo-terminals, Pdeathsig) and the go command.
package crashtest
