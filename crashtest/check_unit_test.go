package crashtest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// A small world built by hand: the daemon's transactions, the host's
// ledger and the clients' records, in agreement until a test breaks them.
type world struct {
	daemon  []*api.Transaction
	ledger  acquirer.Ledger
	records []*Record
	slips   []terminal.Slip
	stan    int

	// The daemon's own view of batch 1, computed from its transactions
	// like a correct daemon would, plus what a test changes.
	batchState  string // default open
	batchResult string // 0500 answer of a closed batch
	viewSkew    int64  // added to the view's credit amount
}

func (w *world) input() Input {
	l := w.ledger
	l.Approved = nil
	for _, e := range l.Transactions {
		if e.Counted {
			l.Approved = append(l.Approved, e)
		}
	}
	by := map[string]*sterad.TerminalTotals{"VIRT0001": {TerminalID: "VIRT0001"}}
	for _, t := range w.daemon {
		if t.Status != "approved" || !sterad.Op(t.Op).Financial() {
			continue
		}
		tt := by[t.TerminalID]
		if tt == nil {
			tt = &sterad.TerminalTotals{TerminalID: t.TerminalID}
			by[t.TerminalID] = tt
		}
		if sterad.Op(t.Op).Credit() {
			tt.Totals.CreditCount++
			tt.Totals.CreditAmount += minor(t.Amount)
		} else {
			tt.Totals.DebitCount++
			tt.Totals.DebitAmount += minor(t.Amount)
		}
	}
	by["VIRT0001"].Totals.CreditAmount += w.viewSkew
	var tts []sterad.TerminalTotals
	for _, tt := range by {
		tt.Result = w.batchResult
		tts = append(tts, *tt)
	}
	state := w.batchState
	if state == "" {
		state = sterad.BatchOpen
	}
	b := api.BatchView{Batch: &sterad.Batch{Number: 1, State: state, Terminals: tts}}
	return Input{Daemon: w.daemon, Ledger: l, Records: w.records, Batches: []api.BatchView{b}, Slips: w.slips}
}

func yen(n int64) sterad.Amount { return sterad.AmountFromMinor(n, sterad.JPY) }

func batch1() *string { b := "000001"; return &b }

// txn adds a daemon transaction and what its client was told; it returns
// both so a test can change them.
func (w *world) txn(op, status string, amount int64, original string) (*api.Transaction, *Record) {
	w.stan++
	id := fmt.Sprintf("T%03d", w.stan)
	t := &api.Transaction{ID: id, Op: op, Status: status, Amount: fmt.Sprint(amount), Currency: "JPY",
		TerminalID: "VIRT0001", STAN: fmt.Sprintf("%06d", w.stan)}
	if sterad.Op(op).Financial() || op == "void" {
		t.Batch = batch1()
	}
	r := &Record{Client: 1, Key: "k-" + id, Op: op, Amount: amount, Answered: true, HTTP: 201, TxnID: id, Status: status, IDs: []string{id}, Attempts: 1}
	if original != "" {
		t.Original, r.Original = &original, original
	}
	if op == "void" {
		r.Amount = 0
	}
	w.daemon = append(w.daemon, t)
	w.records = append(w.records, r)
	return t, r
}

// entry adds the host's ledger entry for daemon transaction t.
func (w *world) entry(t *api.Transaction, status string) *acquirer.Transaction {
	kind := t.Op
	if kind == "completion" {
		kind = acquirer.KindCompletion
	}
	w.ledger.Transactions = append(w.ledger.Transactions, acquirer.Transaction{
		Terminal: t.TerminalID, Batch: 1, STAN: t.STAN, MTI: "0200", Kind: kind, Amount: yen(minor(t.Amount)), Currency: "JPY",
		Response: "00", Status: status, Counted: status == acquirer.StatusApproved, RRN: "RRN" + t.STAN, At: time.Now(),
	})
	return &w.ledger.Transactions[len(w.ledger.Transactions)-1]
}

func (w *world) auth(t *api.Transaction, status string) {
	w.ledger.Authorizations = append(w.ledger.Authorizations, acquirer.Authorization{
		Terminal: t.TerminalID, STAN: t.STAN, Kind: acquirer.KindPreauth, Amount: yen(minor(t.Amount)), Currency: "JPY",
		Response: "00", Status: status, At: time.Now(),
	})
}

// healthy is a world where everything agrees: approved, declined,
// reversed and voided sales, a refund, a completed pre-authorization.
func healthy() *world {
	w := &world{}
	s1, _ := w.txn("sale", "approved", 100001, "")
	w.entry(s1, acquirer.StatusApproved)
	w.txn("sale", "declined", 100002, "") // declined by the host: no entry
	s3, _ := w.txn("sale", "reversed", 100003, "")
	w.entry(s3, acquirer.StatusReversed)
	s4, _ := w.txn("sale", "voided", 100004, "")
	w.entry(s4, acquirer.StatusVoided)
	w.txn("void", "approved", 100004, s4.ID)
	r5, _ := w.txn("refund", "approved", 5, s1.ID)
	w.entry(r5, acquirer.StatusApproved)
	p6, _ := w.txn("preauth", "approved", 200006, "")
	w.auth(p6, acquirer.StatusCompleted)
	c7, _ := w.txn("completion", "approved", 200007, p6.ID)
	w.entry(c7, acquirer.StatusApproved)
	d8, _ := w.txn("sale", "approved", 100017, "")
	term := "FRONT001"
	d8.Terminal, d8.TerminalID, d8.TerminalResult = &term, term, "done"
	w.entry(d8, acquirer.StatusApproved)
	w.slips = append(w.slips, terminal.Slip{TxnID: d8.ID, Status: "approved", Amount: d8.Amount})
	w.records = append(w.records, &Record{Client: 2, Key: "k-refused", Op: "sale", Amount: 100008, Answered: true, HTTP: 400, ErrCode: "invalid_card"})
	return w
}

// closeBatch1 closes batch 1 in the daemon and at the host.
func (w *world) closeBatch1() {
	w.batchState, w.batchResult = sterad.BatchClosed, "00"
	for _, term := range []string{"VIRT0001", "FRONT001"} {
		w.ledger.Batches = append(w.ledger.Batches, acquirer.Batch{Terminal: term, Number: 1, State: "closed", Result: "00"})
	}
}

func rules(vs []Violation) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.String())
	}
	return strings.Join(s, "\n")
}

func TestCheckHealthy(t *testing.T) {
	if vs := Check(healthy().input()); len(vs) != 0 {
		t.Fatalf("violations in a healthy world:\n%s", rules(vs))
	}
	w := healthy()
	w.closeBatch1()
	if vs := Check(w.input()); len(vs) != 0 {
		t.Fatalf("violations in a healthy world after the batch closed:\n%s", rules(vs))
	}
}

func TestCheckFindsViolations(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(w *world)
		want   []string
	}{
		{"lost charge: the host charged a request the daemon never recorded", func(w *world) {
			w.records = append(w.records, &Record{Client: 3, Key: "k-lost", Op: "sale", Amount: 100009, Answered: true, HTTP: 201, TxnID: "T999", Status: "approved", IDs: []string{"T999"}})
			w.ledger.Transactions = append(w.ledger.Transactions, acquirer.Transaction{Terminal: "VIRT0001", Batch: 1, STAN: "000099", Kind: "sale",
				Amount: yen(100009), Response: "00", Status: acquirer.StatusApproved, Counted: true})
		}, []string{RuleLost, RuleTotals, RuleTold}},
		{"lost hold: a live pre-authorization the daemon does not know", func(w *world) {
			w.ledger.Authorizations = append(w.ledger.Authorizations, acquirer.Authorization{Terminal: "VIRT0001", STAN: "000098", Kind: acquirer.KindPreauth,
				Amount: yen(200010), Status: acquirer.StatusApproved})
		}, []string{RuleLost}},
		{"double charge: one request charged twice, once lost by the daemon", func(w *world) {
			e := w.ledger.Transactions[0]
			e.STAN = "000097"
			w.ledger.Transactions = append(w.ledger.Transactions, e)
		}, []string{RuleDuplicate, RuleLost, RuleTotals}},
		{"double charge: one daemon transaction counted twice", func(w *world) {
			w.ledger.Transactions = append(w.ledger.Transactions, w.ledger.Transactions[0])
		}, []string{RuleDuplicate, RuleTotals}},
		{"one key, two daemon transactions", func(w *world) {
			t, _ := w.txn("sale", "declined", 100001, "")
			w.records = w.records[:len(w.records)-1]
			w.records[0].IDs = append(w.records[0].IDs, t.ID)
		}, []string{RuleKey}},
		{"unreversed unknown outcome", func(w *world) {
			t, _ := w.txn("sale", "unknown", 100011, "")
			w.entry(t, acquirer.StatusApproved)
		}, []string{RuleUnresolved, RuleTotals}},
		{"unknown outcome that ended approved", func(w *world) {
			t, _ := w.txn("sale", "approved", 100012, "")
			t.Events = []sterad.Event{{Status: sterad.StatusPending, Step: sterad.StepSent}, {Status: sterad.StatusUnknown, Step: sterad.StepReversal, Note: "no answer"}, {Status: sterad.StatusApproved, Step: sterad.StepDone}}
			w.entry(t, acquirer.StatusApproved)
		}, []string{RuleUnresolved}},
		{"reversed in the daemon, still counted by the host", func(w *world) {
			w.ledger.Transactions[1].Status, w.ledger.Transactions[1].Counted = acquirer.StatusApproved, true
		}, []string{RuleMismatch, RuleTotals, RuleTold}},
		{"approved in the daemon, not charged by the host", func(w *world) {
			w.ledger.Transactions[0].Status, w.ledger.Transactions[0].Counted = acquirer.StatusReversed, false
		}, []string{RuleMismatch, RuleTotals}},
		{"pre-authorization reversed in the daemon, still held", func(w *world) {
			t, _ := w.txn("preauth", "reversed", 200013, "")
			w.auth(t, acquirer.StatusApproved)
		}, []string{RuleMismatch}},
		{"told approved, daemon reversed", func(w *world) {
			w.records[2].Status = "approved"
		}, []string{RuleTold}},
		{"told an error, yet charged", func(w *world) {
			w.ledger.Transactions = append(w.ledger.Transactions, acquirer.Transaction{Terminal: "VIRT0001", Batch: 1, STAN: "000096", Kind: "sale",
				Amount: yen(100008), Response: "00", Status: acquirer.StatusApproved, Counted: true})
		}, []string{RuleLost, RuleTold, RuleTotals}},
		{"the daemon's own batch totals differ from the host's", func(w *world) {
			w.viewSkew = 1
		}, []string{RuleTotals}},
		{"batch closed in the daemon, open at the host", func(w *world) {
			w.closeBatch1()
			w.ledger.Batches[0].State = "open"
		}, []string{RuleBatch}},
		{"batch closed at the host, left closing in the daemon", func(w *world) {
			w.closeBatch1()
			w.batchState = sterad.BatchClosing
		}, []string{RuleBatch}},
		{"card-present sale charged, terminal lost it", func(w *world) {
			t, _ := w.txn("sale", "approved", 100016, "")
			term := "FRONT001"
			t.Terminal, t.TerminalID, t.TerminalResult = &term, term, "lost"
			w.entry(t, acquirer.StatusApproved)
		}, []string{RuleTerminal}},
		{"approved slip, transaction reversed", func(w *world) {
			w.slips = append(w.slips, terminal.Slip{TxnID: "T003", Status: "approved", Amount: "100003"})
		}, []string{RuleTerminal}},
		{"stood in and never advised", func(w *world) {
			t, _ := w.txn("sale", "stood_in", 100014, "")
			t.Offline = true
		}, []string{RuleUnresolved}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := healthy()
			tt.mutate(w)
			vs := Check(w.input())
			got := map[string]bool{}
			for _, v := range vs {
				got[v.Rule] = true
			}
			for _, r := range tt.want {
				if !got[r] {
					t.Errorf("no %s violation:\n%s", r, rules(vs))
				}
			}
			for r := range got {
				if !strings.Contains(strings.Join(tt.want, " "), r) {
					t.Errorf("unexpected %s violation:\n%s", r, rules(vs))
				}
			}
		})
	}
}

// An accepted stand-in advice counts as the daemon's approved sale, even
// when the advice carries its own STAN.
func TestCheckStandIn(t *testing.T) {
	w := healthy()
	s, _ := w.txn("sale", "approved", 100015, "")
	s.Offline = true
	e := w.entry(s, acquirer.StatusApproved)
	e.Kind, e.MTI, e.STAN = acquirer.KindStandIn, "0220", "000555"
	if vs := Check(w.input()); len(vs) != 0 {
		t.Fatalf("violations:\n%s", rules(vs))
	}
}
