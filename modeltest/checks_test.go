package modeltest

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/simulator/acquirer"
)

// The invariants. checkLocal runs after every step on sterad's journal
// (one consistent read of every transaction); checkHost runs at the
// quiescent points (after a settle: link back, queue drained, nothing in
// flight) against the test acquirer's ledger. The model's own predictions
// are checked inside each action (model_test.go).

// live reports whether a refund still holds (or may yet hold) money back
// from its original: approved, or not final yet.
func live(s sterad.Status) bool {
	switch s {
	case sterad.StatusApproved, sterad.StatusPending, sterad.StatusUnknown, sterad.StatusStoodIn:
		return true
	}
	return false
}

// checkLocal: after every step.
//   - refunds: per debit, the refunds that are live never exceed what was
//     charged, and sterad's own refunded amount equals their sum (a stale
//     copy of the debit written back would lose them);
//   - a voided transaction has no live refund;
//   - an approved refund's original was charged (approved or stood in).
func checkLocal(txns []*sterad.Transaction) []string {
	var out []string
	refunds := map[string][]*sterad.Transaction{}
	for _, t := range txns {
		if t.Op == sterad.OpRefund && t.Original != "" {
			refunds[t.Original] = append(refunds[t.Original], t)
		}
	}
	for _, d := range txns {
		if !d.IsDebit() {
			continue
		}
		var sum int64
		var liveIDs []string
		for _, r := range refunds[d.ID] {
			if live(r.Status) {
				sum += r.Amount.Minor()
				liveIDs = append(liveIDs, fmt.Sprintf("%s ¥%d %s", r.ID, r.Amount.Minor(), r.Status))
			}
		}
		if sum > d.Amount.Minor() {
			out = append(out, fmt.Sprintf("REFUND: %s %s of ¥%d has ¥%d of live refunds (%v): more than was charged", d.Op, d.ID, d.Amount.Minor(), sum, liveIDs))
		}
		if d.Refunded.Minor() != sum {
			out = append(out, fmt.Sprintf("REFUNDED: %s %s says ¥%d refunded, its live refunds add up to ¥%d (%v)", d.Op, d.ID, d.Refunded.Minor(), sum, liveIDs))
		}
		if d.Status == sterad.StatusVoided && len(liveIDs) > 0 {
			out = append(out, fmt.Sprintf("VOIDED: %s %s is voided but has live refunds %v", d.Op, d.ID, liveIDs))
		}
		if d.Status != sterad.StatusApproved && d.Status != sterad.StatusStoodIn {
			for _, r := range refunds[d.ID] {
				if r.Status == sterad.StatusApproved && d.Status != sterad.StatusVoided {
					out = append(out, fmt.Sprintf("REFUND: refund %s ¥%d is approved but its %s %s is %s (never charged)", r.ID, r.Amount.Minor(), d.Op, d.ID, d.Status))
				}
			}
		}
	}
	return out
}

// checkHost: at quiescent points.
//   - nothing is left pending, unknown or stood in, and every unknown
//     outcome ended reversed;
//   - every entry the host counts is one sterad transaction that sterad
//     counts, and the reverse: nothing charged twice, nothing lost;
//   - per card, the money the host moved equals what sterad reports;
//   - no refund the host counts exceeds what the host still holds of its
//     original (a voided or reversed charge has no live refund);
//   - the open batch's totals equal the host's, per terminal ID.
func (h *harness) checkHost(ctx context.Context, txns []*sterad.Transaction) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	ledger := h.host.Ledger()
	byID := map[string]*sterad.Transaction{}
	for _, t := range txns {
		byID[t.ID] = t
	}

	// Unresolved and unknown outcomes.
	for _, t := range txns {
		switch t.Status {
		case sterad.StatusPending, sterad.StatusUnknown, sterad.StatusStoodIn:
			add("UNRESOLVED: %s %s ¥%d is still %s at step %s after the queue was drained (%q)", t.Op, t.ID, t.Amount.Minor(), t.Status, t.Step, t.Reason)
		}
		wasUnknown := slices.ContainsFunc(t.Events, func(e sterad.Event) bool {
			return e.Status == sterad.StatusUnknown && e.Step == sterad.StepReversal
		})
		if wasUnknown && t.Status != sterad.StatusReversed {
			add("UNKNOWN: %s %s had an unknown outcome and ended %s, not reversed", t.Op, t.ID, t.Status)
		}
	}

	// One host entry per sterad transaction, both ways.
	hostOf := map[string][]acquirer.Transaction{} // sterad ID → counted host entries
	key := func(term, stan string, minor int64) string { return fmt.Sprintf("%s|%s|%d", term, stan, minor) }
	steradBy := map[string][]*sterad.Transaction{}
	for _, t := range txns {
		if t.Op.Financial() && t.STAN != 0 {
			k := key(t.TerminalID, t.STAN.String(), t.Amount.Minor())
			steradBy[k] = append(steradBy[k], t)
		}
	}
	for _, e := range ledger.Transactions {
		if !e.Counted {
			continue
		}
		ts := steradBy[key(e.Terminal, e.STAN, e.Amount.Minor())]
		if len(ts) == 0 {
			add("LOST: the host counts %s ¥%d on %s (%s STAN %s batch %06d) that sterad has no transaction for", e.Kind, e.Amount.Minor(), e.MaskedPAN, e.Terminal, e.STAN, e.Batch)
			continue
		}
		t := ts[len(ts)-1]
		hostOf[t.ID] = append(hostOf[t.ID], e)
	}
	for _, t := range txns {
		n := len(hostOf[t.ID])
		switch {
		case n > 1:
			add("TWICE: %s %s ¥%d is counted %d times by the host", t.Op, t.ID, t.Amount.Minor(), n)
		case t.Counted() && n == 0:
			add("MISMATCH: sterad counts %s %s ¥%d (%s) but the host does not", t.Op, t.ID, t.Amount.Minor(), t.MaskedPAN)
		case !t.Counted() && n > 0:
			add("MISMATCH: the host counts %s %s ¥%d (%s) but sterad says %s (%q)", t.Op, t.ID, t.Amount.Minor(), t.MaskedPAN, t.Status, t.Reason)
		}
	}

	// Per card: debits − credits.
	hostNet, steradNet := map[string]int64{}, map[string]int64{}
	for _, e := range ledger.Approved {
		if e.Kind == "refund" {
			hostNet[e.MaskedPAN] -= e.Amount.Minor()
		} else {
			hostNet[e.MaskedPAN] += e.Amount.Minor()
		}
	}
	for _, t := range txns {
		if !t.Counted() {
			continue
		}
		if t.Op.Credit() {
			steradNet[t.MaskedPAN] -= t.Amount.Minor()
		} else {
			steradNet[t.MaskedPAN] += t.Amount.Minor()
		}
	}
	var pans []string
	for p := range hostNet {
		pans = append(pans, p)
	}
	for p := range steradNet {
		if _, ok := hostNet[p]; !ok {
			pans = append(pans, p)
		}
	}
	sort.Strings(pans)
	for _, p := range pans {
		if hostNet[p] != steradNet[p] {
			add("CARD: on %s the host moved ¥%d net, sterad reports ¥%d", p, hostNet[p], steradNet[p])
		}
	}

	// Refunds the host counts against what it holds of their original.
	refunded := map[string]int64{}
	for _, t := range txns {
		if t.Op != sterad.OpRefund || len(hostOf[t.ID]) == 0 {
			continue
		}
		o := byID[t.Original]
		if o == nil {
			continue
		}
		oe := hostOf[o.ID]
		if len(oe) == 0 {
			add("HOST-REFUND: the host counts refund %s ¥%d of %s %s, which the host does not hold as a charge (sterad: %s)", t.ID, t.Amount.Minor(), o.Op, o.ID, o.Status)
			continue
		}
		refunded[o.ID] += t.Amount.Minor()
		if refunded[o.ID] > o.Amount.Minor() {
			add("HOST-REFUND: the host counts ¥%d of refunds on %s %s of ¥%d", refunded[o.ID], o.Op, o.ID, o.Amount.Minor())
		}
	}
	h.mu.Lock()
	for origID, refundID := range h.refundsEarly {
		if o := byID[origID]; o != nil {
			if e, ok := hostEntry(ledger, o); !ok || !e.Counted {
				add("REFUND-SENT: refund %s was sent before the host held %s %s, which the host then did not charge", refundID, o.Op, o.ID)
			}
		}
		delete(h.refundsEarly, origID)
	}
	h.mu.Unlock()

	// The open batch's totals, per terminal ID.
	open, err := h.gw().OpenBatch(ctx)
	if err != nil {
		add("HARNESS: open batch: %v", err)
		return out
	}
	b, err := h.gw().Batch(ctx, open.Number)
	if err != nil {
		add("HARNESS: batch %d: %v", open.Number, err)
		return out
	}
	mine := map[string]sterad.Totals{}
	for _, tt := range b.Terminals {
		mine[tt.TerminalID] = tt.Totals
	}
	for _, hb := range ledger.Batches {
		if hb.Number != open.Number {
			continue
		}
		if _, ok := mine[hb.Terminal]; !ok {
			mine[hb.Terminal] = sterad.Totals{}
		}
	}
	for term, tot := range mine {
		var host sterad.Totals
		if hb, ok := ledger.Batch(term, open.Number); ok {
			host = hb.HostTotals.Minor()
		}
		if host != tot {
			add("TOTALS: open batch %06d of %s: sterad %+v, host %+v", open.Number, term, tot, host)
		}
	}
	return out
}
