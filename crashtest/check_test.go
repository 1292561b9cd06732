package crashtest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// Rules the checker enforces; a Violation names one.
const (
	// RuleLost: the host charged (or holds an authorization) and no daemon
	// transaction has it: money the hotel's books will never show.
	RuleLost = "LOST"
	// RuleDuplicate: one daemon transaction, or one client request, was
	// charged more than once.
	RuleDuplicate = "DUPLICATE"
	// RuleKey: one Idempotency-Key gave several transactions, or a replay
	// was refused.
	RuleKey = "KEY"
	// RuleUnresolved: a transaction left pending, unknown or stood in after
	// the final flush, or an unknown outcome that was not reversed.
	RuleUnresolved = "UNRESOLVED"
	// RuleMismatch: the daemon's final status and the host's ledger
	// disagree (charged but reversed/declined/cancelled/voided in the
	// daemon, approved in the daemon but not counted by the host).
	RuleMismatch = "MISMATCH"
	// RuleTotals: a batch's totals from the daemon's approved financial
	// transactions differ from the host's.
	RuleTotals = "TOTALS"
	// RuleTold: what a client was finally told contradicts the daemon's
	// final status or the host's ledger.
	RuleTold = "TOLD"
	// RuleTerminal: a card-present charge the customer was not shown: the
	// host counts it while the terminal lost or cancelled the transaction
	// or never confirmed its outcome, or the terminal printed an approved
	// slip for a transaction that is not charged.
	RuleTerminal = "TERMINAL"
	// RuleBatch: a batch close the daemon and the host disagree about (one
	// closed, the other not; a terminal not answered 00; a batch left
	// closing).
	RuleBatch = "BATCH"
)

// Record is what one client request (one Idempotency-Key) finally got.
type Record struct {
	Client   int    `json:"client"`
	Key      string `json:"key"`
	Op       string `json:"op"`
	Amount   int64  `json:"amount"`             // yen sent; 0 for a void (it carries its original's)
	Original string `json:"original,omitempty"` // linked ops
	Terminal string `json:"terminal,omitempty"` // card read at this terminal
	Card     string `json:"card,omitempty"`     // masked keyed card
	Attempts int    `json:"attempts"`           // HTTP attempts (retries after the daemon died)
	// Sent is when the first attempt left, Done when the final answer came
	// (or the client gave up).
	Sent time.Time `json:"sent"`
	Done time.Time `json:"done"`
	// IDs are the transaction IDs named by any answer to this key.
	IDs []string `json:"ids,omitempty"`
	// The final answer. Answered is false when the client gave up.
	Answered bool   `json:"answered"`
	HTTP     int    `json:"http,omitempty"`
	TxnID    string `json:"txn_id,omitempty"`
	Status   string `json:"status,omitempty"`   // transaction status in the answer
	ErrCode  string `json:"err_code,omitempty"` // error code when the answer was an error
}

// Told is the final answer in one word: a status, "error:code" or "none".
func (r *Record) Told() string {
	switch {
	case !r.Answered:
		return "none"
	case r.ErrCode != "" && r.Status != "":
		return "error:" + r.ErrCode + "/" + r.Status
	case r.ErrCode != "":
		return "error:" + r.ErrCode
	}
	return r.Status
}

func (r *Record) String() string {
	s := fmt.Sprintf("client %d key %s: %s ¥%d", r.Client, r.Key, r.Op, r.Amount)
	if r.Original != "" {
		s += " of " + r.Original
	}
	if r.Terminal != "" {
		s += " at " + r.Terminal
	}
	return s + fmt.Sprintf(", sent %s, %d attempt(s), told %s after %s (txn %s, ids %v)",
		r.Sent.Format("15:04:05.000"), r.Attempts, r.Told(), r.Done.Sub(r.Sent).Round(time.Millisecond), r.TxnID, r.IDs)
}

// Input is what the checker compares.
type Input struct {
	// Daemon is every daemon transaction (GET /v1/transactions/{id}:
	// with events when available).
	Daemon []*api.Transaction
	// Ledger is the test acquirer's GET /ledger.
	Ledger acquirer.Ledger
	// Records is what every client request finally got.
	Records []*Record
	// Batches are the daemon's batches (GET /v1/batches): its own totals,
	// live for a batch not closed yet. Optional.
	Batches []api.BatchView
	// Slips are the terminals' printed slips (each one's GET /slips keeps
	// its last terminal.MaxSlips). Optional.
	Slips []terminal.Slip
}

// Violation is one broken rule and its evidence.
type Violation struct {
	Rule   string
	Detail string
}

func (v Violation) String() string { return v.Rule + ": " + v.Detail }

// financial reports whether a daemon op is a ledger entry of the host
// (a sale, completion, no-show charge or refund).
func financial(op string) bool {
	return sterad.Op(op).Financial()
}

// unresolved are the statuses no transaction may keep once the queue is
// flushed.
var unresolved = []string{string(sterad.StatusPending), string(sterad.StatusUnknown), string(sterad.StatusStoodIn)}

// notCharged are the final statuses that promise the card was not charged.
var notCharged = []string{string(sterad.StatusReversed), string(sterad.StatusDeclined), string(sterad.StatusCancelled), string(sterad.StatusVoided)}

func minor(s string) int64 {
	a, err := sterad.ParseAmount(s, sterad.JPY)
	if err != nil {
		return -1
	}
	return a.Minor()
}

func entryKey(terminal, stan string, amount int64) string {
	return fmt.Sprintf("%s|%s|%d", terminal, stan, amount)
}

func batchOf(t *api.Transaction) int {
	if t.Batch == nil {
		return 0
	}
	var n int
	fmt.Sscanf(*t.Batch, "%d", &n)
	return n
}

func describeTxn(t *api.Transaction) string {
	s := fmt.Sprintf("daemon %s %s %s ¥%s on %s STAN %s", t.ID, t.Op, t.Status, t.Amount, t.TerminalID, t.STAN)
	if t.Batch != nil {
		s += " batch " + *t.Batch
	}
	if t.Original != nil {
		s += " original " + *t.Original
	}
	if t.Offline {
		s += " offline"
	}
	if t.Reason != "" {
		s += fmt.Sprintf(" (%q)", t.Reason)
	}
	return s
}

func describeEntry(e acquirer.Transaction) string {
	return fmt.Sprintf("host %s %s ¥%s on %s STAN %s batch %06d %s/%s RRN %s at %s",
		e.MTI, e.Kind, e.Amount, e.Terminal, e.STAN, e.Batch, e.Status, e.Response, e.RRN, e.At.Format("15:04:05.000"))
}

func describeAuth(a acquirer.Authorization) string {
	return fmt.Sprintf("host %s ¥%s on %s STAN %s %s/%s RRN %s at %s",
		a.Kind, a.Amount, a.Terminal, a.STAN, a.Status, a.Response, a.RRN, a.At.Format("15:04:05.000"))
}

// Check compares the daemon's transactions, the host's ledger and what
// the clients were told, and returns every violation (none: all is well).
// It assumes that every amount a client sent is unique (amountFor), so a
// host entry names its client request even when the daemon lost it.
func Check(in Input) []Violation {
	var out []Violation
	add := func(rule, format string, args ...any) {
		out = append(out, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}

	byID := map[string]*api.Transaction{}
	byKey := map[string]*api.Transaction{}     // financial daemon txns by terminal|STAN|amount
	preauths := map[string]*api.Transaction{}  // pre-authorizations by terminal|STAN|amount
	byAmount := map[int64][]*api.Transaction{} // non-void daemon txns by amount: one client request each
	for _, t := range in.Daemon {
		byID[t.ID] = t
		amt := minor(t.Amount)
		k := entryKey(t.TerminalID, t.STAN, amt)
		switch {
		case financial(t.Op):
			byKey[k] = t
		case t.Op == string(sterad.OpPreauth):
			preauths[k] = t
		}
		if t.Op != string(sterad.OpVoid) && t.Op != string(sterad.OpCardCheck) && amt > 0 {
			byAmount[amt] = append(byAmount[amt], t)
		}
	}
	recordsByAmount := map[int64]*Record{}
	for _, r := range in.Records {
		if r.Op != string(sterad.OpVoid) && r.Amount > 0 {
			recordsByAmount[r.Amount] = r
		}
	}
	who := func(amount int64) string {
		if r := recordsByAmount[amount]; r != nil {
			return "; request: " + r.String()
		}
		return "; no client request has this amount"
	}

	// The host's financial entries against the daemon's transactions.
	entriesOf := map[string][]acquirer.Transaction{} // by daemon txn ID
	countedByAmount := map[int64][]acquirer.Transaction{}
	for _, e := range in.Ledger.Transactions {
		amt := e.Amount.Minor()
		if e.Counted {
			countedByAmount[amt] = append(countedByAmount[amt], e)
		}
		d := byKey[entryKey(e.Terminal, e.STAN, amt)]
		if d == nil && e.Kind == acquirer.KindStandIn {
			// A stand-in advice may carry its own STAN: the amount names
			// the request.
			for _, c := range byAmount[amt] {
				if c.Offline && c.TerminalID == e.Terminal && financial(c.Op) {
					d = c
				}
			}
		}
		if d == nil {
			if e.Counted {
				add(RuleLost, "%s: no daemon transaction has it%s", describeEntry(e), who(amt))
			}
			continue
		}
		entriesOf[d.ID] = append(entriesOf[d.ID], e)
		if e.Counted && slices.Contains(notCharged, d.Status) {
			add(RuleMismatch, "%s is counted by the host, but %s", describeEntry(e), describeTxn(d))
		}
	}
	for amt, es := range countedByAmount {
		if len(es) > 1 {
			var ds []string
			for _, e := range es {
				ds = append(ds, describeEntry(e))
			}
			add(RuleDuplicate, "one request charged %d times: %s%s", len(es), strings.Join(ds, "; "), who(amt))
		}
	}

	// The host's pre-authorizations: a live or completed hold must be an
	// approved pre-authorization of the daemon.
	authsOf := map[string][]acquirer.Authorization{}
	for _, a := range in.Ledger.Authorizations {
		if a.Kind != acquirer.KindPreauth {
			continue
		}
		held := a.Status == acquirer.StatusApproved || a.Status == acquirer.StatusCompleted
		d := preauths[entryKey(a.Terminal, a.STAN, a.Amount.Minor())]
		if d == nil {
			if held {
				add(RuleLost, "%s: a hold on the guest's card that no daemon transaction has%s", describeAuth(a), who(a.Amount.Minor()))
			}
			continue
		}
		authsOf[d.ID] = append(authsOf[d.ID], a)
		if held && d.Status != string(sterad.StatusApproved) {
			add(RuleMismatch, "%s holds the card, but %s", describeAuth(a), describeTxn(d))
		}
	}

	// Every daemon transaction: resolved, and agreeing with the host.
	type totals struct{ debits, debitAmount, credits, creditAmount int64 }
	daemonTotals, hostTotals := map[string]*totals{}, map[string]*totals{}
	tot := func(m map[string]*totals, terminal string, batch int) *totals {
		k := fmt.Sprintf("%s batch %06d", terminal, batch)
		if m[k] == nil {
			m[k] = &totals{}
		}
		return m[k]
	}
	for _, t := range in.Daemon {
		if slices.Contains(unresolved, t.Status) {
			add(RuleUnresolved, "%s after the final flush", describeTxn(t))
		}
		for _, ev := range t.Events {
			if ev.Status == sterad.StatusUnknown && ev.Step == sterad.StepReversal && t.Status != string(sterad.StatusReversed) && !slices.Contains(unresolved, t.Status) {
				add(RuleUnresolved, "%s: its outcome was unknown (%q) but it ended %s, not reversed", describeTxn(t), ev.Note, t.Status)
				break
			}
		}
		switch {
		case financial(t.Op):
			var counted []acquirer.Transaction
			for _, e := range entriesOf[t.ID] {
				if e.Counted {
					counted = append(counted, e)
				}
			}
			if len(counted) > 1 {
				var ds []string
				for _, e := range counted {
					ds = append(ds, describeEntry(e))
				}
				add(RuleDuplicate, "%s is counted %d times by the host: %s", describeTxn(t), len(counted), strings.Join(ds, "; "))
			}
			if t.Status == string(sterad.StatusApproved) {
				if len(counted) == 0 {
					var ds []string
					for _, e := range entriesOf[t.ID] {
						ds = append(ds, describeEntry(e))
					}
					add(RuleMismatch, "%s, but the host has no counted charge for it (entries: %v)", describeTxn(t), ds)
				}
				x := tot(daemonTotals, t.TerminalID, batchOf(t))
				if sterad.Op(t.Op).Credit() {
					x.credits++
					x.creditAmount += minor(t.Amount)
				} else {
					x.debits++
					x.debitAmount += minor(t.Amount)
				}
			}
		case t.Op == string(sterad.OpPreauth) && t.Status == string(sterad.StatusApproved):
			held := false
			for _, a := range authsOf[t.ID] {
				held = held || a.Status == acquirer.StatusApproved || a.Status == acquirer.StatusCompleted
			}
			if !held {
				var ds []string
				for _, a := range authsOf[t.ID] {
					ds = append(ds, describeAuth(a))
				}
				add(RuleMismatch, "%s, but the host holds nothing for it (authorizations: %v)", describeTxn(t), ds)
			}
		}
	}
	for _, e := range in.Ledger.Approved {
		x := tot(hostTotals, e.Terminal, e.Batch)
		if e.Kind == acquirer.KindRefund {
			x.credits++
			x.creditAmount += e.Amount.Minor()
		} else {
			x.debits++
			x.debitAmount += e.Amount.Minor()
		}
	}
	batches := map[string]bool{}
	for k := range daemonTotals {
		batches[k] = true
	}
	for k := range hostTotals {
		batches[k] = true
	}
	for k := range batches {
		d, h := daemonTotals[k], hostTotals[k]
		if d == nil {
			d = &totals{}
		}
		if h == nil {
			h = &totals{}
		}
		if *d != *h {
			add(RuleTotals, "%s: daemon debits %d ¥%d credits %d ¥%d, host debits %d ¥%d credits %d ¥%d",
				k, d.debits, d.debitAmount, d.credits, d.creditAmount, h.debits, h.debitAmount, h.credits, h.creditAmount)
		}
	}

	// Card-present transactions: what the customer saw at the terminal.
	for _, t := range in.Daemon {
		if t.Terminal == nil || t.Status != string(sterad.StatusApproved) || t.Op == string(sterad.OpVoid) {
			continue
		}
		switch t.TerminalResult {
		case "done":
		case "":
			add(RuleTerminal, "%s: approved, but the terminal never confirmed showing the outcome", describeTxn(t))
		default:
			add(RuleTerminal, "%s: approved and charged, but the terminal's result is %q: the customer never saw the approval", describeTxn(t), t.TerminalResult)
		}
	}
	for _, sl := range in.Slips {
		t := byID[sl.TxnID]
		if t == nil {
			add(RuleTerminal, "the terminal printed a %s slip for %s ¥%s, a transaction the daemon does not have", sl.Status, sl.TxnID, sl.Amount)
			continue
		}
		charged := t.Status == string(sterad.StatusApproved) || t.Status == string(sterad.StatusVoided)
		if t.Offline && t.Status == string(sterad.StatusDeclined) {
			// Approved offline, then the issuer declined the advice: the
			// customer saw an approval, the merchant carries the loss
			// (docs/acquirer-protocol.md §6). The daemon raises an alert.
			continue
		}
		if (sl.Status == "approved") != charged {
			add(RuleTerminal, "the terminal printed a %s slip (code %s, auth %s), but %s", sl.Status, sl.Code, sl.AuthCode, describeTxn(t))
		}
	}

	// The daemon's own batch totals (what its 0500 would carry) and batch
	// closes against the host's.
	for _, bv := range in.Batches {
		b := bv.Batch
		if b == nil {
			continue
		}
		if b.State == sterad.BatchClosing {
			add(RuleBatch, "batch %06d is still closing after the final close (attempts %d, last error %q)", b.Number, b.Attempts, b.LastError)
		}
		seen := map[string]bool{}
		for _, tt := range b.Terminals {
			k := fmt.Sprintf("%s batch %06d", tt.TerminalID, b.Number)
			seen[k] = true
			d := totals{tt.Totals.DebitCount, tt.Totals.DebitAmount, tt.Totals.CreditCount, tt.Totals.CreditAmount}
			h := hostTotals[k]
			if h == nil {
				h = &totals{}
			}
			if d != *h {
				add(RuleTotals, "%s (%s): the daemon's own totals are debits %d ¥%d credits %d ¥%d, the host's debits %d ¥%d credits %d ¥%d",
					k, b.State, d.debits, d.debitAmount, d.credits, d.creditAmount, h.debits, h.debitAmount, h.credits, h.creditAmount)
			}
			if b.State != sterad.BatchClosed {
				continue
			}
			if tt.Result != "00" {
				add(RuleBatch, "%s is closed in the daemon, but its 0500 was answered %q", k, tt.Result)
			}
			if hb, ok := in.Ledger.Batch(tt.TerminalID, b.Number); d != (totals{}) && (!ok || hb.State != "closed") {
				add(RuleBatch, "%s is closed in the daemon but not at the host (host: %+v)", k, hb)
			}
		}
		for k, h := range hostTotals {
			if !seen[k] && strings.HasSuffix(k, fmt.Sprintf(" batch %06d", b.Number)) && *h != (totals{}) {
				add(RuleTotals, "%s (%s): the daemon's own totals leave out this terminal; the host has debits %d ¥%d credits %d ¥%d",
					k, b.State, h.debits, h.debitAmount, h.credits, h.creditAmount)
			}
		}
	}
	if len(in.Batches) > 0 {
		state := map[int]string{}
		for _, bv := range in.Batches {
			if bv.Batch != nil {
				state[bv.Number] = bv.State
			}
		}
		for _, hb := range in.Ledger.Batches {
			if hb.State == "closed" && state[hb.Number] != sterad.BatchClosed {
				add(RuleBatch, "%s batch %06d is closed at the host (result %s) but %q in the daemon", hb.Terminal, hb.Number, hb.Result, state[hb.Number])
			}
		}
	}

	// One request, one transaction.
	for amt, ts := range byAmount {
		if len(ts) > 1 {
			var ds []string
			for _, t := range ts {
				ds = append(ds, describeTxn(t))
			}
			add(RuleKey, "one request gave %d daemon transactions: %s%s", len(ts), strings.Join(ds, "; "), who(amt))
		}
	}

	// What the clients were told.
	for _, r := range in.Records {
		ids := map[string]bool{}
		for _, id := range r.IDs {
			ids[id] = true
		}
		if len(ids) > 1 {
			add(RuleKey, "answers named several transactions for one key: %s", r)
		}
		if r.ErrCode == "idempotency_key_reused" {
			add(RuleKey, "the daemon refused a replay of the same request: %s", r)
		}
		if !r.Answered {
			continue
		}
		charged := r.Op != string(sterad.OpVoid) && len(countedByAmount[r.Amount]) > 0
		if r.TxnID == "" {
			if charged {
				add(RuleTold, "told %s, yet the host charged it: %s; %s", r.Told(), r, describeEntry(countedByAmount[r.Amount][0]))
			}
			continue
		}
		d := byID[r.TxnID]
		if d == nil {
			add(RuleTold, "told about a transaction the daemon does not have: %s", r)
			continue
		}
		switch r.Status {
		case string(sterad.StatusApproved):
			if d.Status != string(sterad.StatusApproved) && d.Status != string(sterad.StatusVoided) {
				add(RuleTold, "told approved, but %s: %s", describeTxn(d), r)
			}
		case string(sterad.StatusDeclined), string(sterad.StatusCancelled), string(sterad.StatusReversed), string(sterad.StatusVoided):
			if d.Status != r.Status {
				add(RuleTold, "told %s, but %s: %s", r.Status, describeTxn(d), r)
			}
			if charged {
				add(RuleTold, "told %s, yet the host charged it: %s; %s", r.Status, r, describeEntry(countedByAmount[r.Amount][0]))
			}
		}
	}

	sort.SliceStable(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}

// hasRule reports whether vs holds a violation of rule.
func hasRule(vs []Violation, rule string) bool {
	return slices.ContainsFunc(vs, func(v Violation) bool { return v.Rule == rule })
}
