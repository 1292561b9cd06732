package modeltest

import (
	"testing"
)

// The shrunk counterexamples rapid found for issue 9's defects 1–3, kept
// as scripts: the same harness, the same operations and the same
// invariants after every step, in a fixed order. Each fails while its
// defect is in the flows and passes once it is fixed.

// script runs steps against a fresh sterad, checking the invariants of
// every step after each, then settles and compares with the host.
func script(t *testing.T, steps ...func(m *machine)) {
	t.Helper()
	h, err := newHarness(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	m := newMachine(h, t.Logf)
	// A broken invariant fails the test but the script goes on, so the
	// log shows what the defect leads to (a second refund approved).
	c := carryOn{t}
	for _, s := range steps {
		s(m)
		m.check(c)
	}
	m.settle()
	m.check(c)
}

// carryOn turns check's Fatalf into Errorf.
type carryOn struct{ t *testing.T }

func (c carryOn) Fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Errorf(format, args...)
}

func TestCounterexample(t *testing.T) {
	// Defect 1: a refunded sale can still be voided; the host voids the
	// sale and the refund stays counted.
	t.Run("void_after_refund", func(t *testing.T) {
		var sale *mtxn
		script(t,
			func(m *machine) { sale = m.sale("visa", 8000, false) },
			func(m *machine) { m.refund(sale, 3000) },
			func(m *machine) { m.void(sale) },
		)
	})
	// Defect 1, racing: a void and a refund of one sale at once.
	t.Run("void_refund_race", func(t *testing.T) {
		var sale *mtxn
		script(t,
			func(m *machine) { sale = m.sale("visa", 3000, false) },
			func(m *machine) { m.raceVoidRefund(sale, 3000) },
		)
	})
	// Defect 2: a refund queued while offline is sent after its
	// stood-in sale's advice was declined by the issuer.
	t.Run("refund_after_declined_advice", func(t *testing.T) {
		var sale *mtxn
		script(t,
			func(m *machine) { m.outage(true) },
			func(m *machine) { sale = m.sale("declined", 8000, true) },
			func(m *machine) { m.refund(sale, 3000) },
			func(m *machine) { m.settle() },
		)
	})
	// Defect 3: a refund approved while a batch close waits for its 0500
	// is lost (the close writes back its stale copy of the sale), and a
	// second full refund is then approved.
	t.Run("refund_during_close", func(t *testing.T) {
		var sale *mtxn
		script(t,
			func(m *machine) { sale = m.sale("visa", 8000, false) },
			func(m *machine) { m.closeRacing("a full refund", func() { m.refund(sale, 8000) }) },
			func(m *machine) { m.refund(sale, 8000) },
		)
	})
}
