package sterad

import (
	"cmp"
	"slices"
	"time"
)

// OpTotals count one kind of transaction in a batch.
type OpTotals struct {
	Op     Op    `json:"op"`
	Count  int64 `json:"count"`
	Amount int64 `json:"amount"` // minor units
}

// BatchProgress describes a close under way.
type BatchProgress struct {
	Batch    int    `json:"batch"`
	Phase    string `json:"phase"` // settling, reconciling, uploading, closed
	Terminal string `json:"terminal,omitempty"`
	Uploaded int    `json:"uploaded"`
	ToUpload int    `json:"to_upload"`
	Running  bool   `json:"running"`
	Error    string `json:"error,omitempty"` // why the last attempt did not finish
	// A close that did not finish: how many attempts failed so far and
	// when the batch loop tries again.
	Attempts  int       `json:"attempts,omitempty"`
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// MaxCloseBackoff bounds the backoff of a failing close: the n-th retry
// waits RetryInterval × 2^(n-1), at most RetryInterval × MaxCloseBackoff.
const MaxCloseBackoff = 16

// CloseRun is one attempt at the batch close, run by the batch loop.
// Everyone who asks for a close while one is pending or under way joins
// it: there is only ever one close at a time.
type CloseRun struct {
	Batch int // the batch it works on

	done  chan struct{}
	batch *Batch
	err   error
}

// NewCloseRun returns a pending attempt at closing batch n.
func NewCloseRun(n int) *CloseRun { return &CloseRun{Batch: n, done: make(chan struct{})} }

// Finish records how the attempt ended and wakes everyone waiting on it.
// Call it once.
func (r *CloseRun) Finish(b *Batch, err error) {
	r.batch, r.err = b, err
	close(r.done)
}

// Done is closed when the attempt has ended.
func (r *CloseRun) Done() <-chan struct{} { return r.done }

// Result waits for the attempt and returns the batch as it stands then
// (closed, or closing with the reason in LastError, along with the error).
func (r *CloseRun) Result() (*Batch, error) {
	<-r.done
	return r.batch, r.err
}

// NextBatchNumber is the number after n: 999999 wraps to 1.
func NextBatchNumber(n int) int {
	if n >= 999999 {
		return 1
	}
	return n + 1
}

// BatchTotals are the reconciliation totals per terminal ID of the counted
// transactions, keeping what the host answered in prev.
func BatchTotals(txns []*Transaction, prev []TerminalTotals) []TerminalTotals {
	by := map[string]*TerminalTotals{}
	for _, p := range prev {
		p := p
		p.Totals = Totals{}
		by[p.TerminalID] = &p
	}
	for _, t := range txns {
		if !t.Counted() {
			continue
		}
		tt := by[t.TerminalID]
		if tt == nil {
			tt = &TerminalTotals{TerminalID: t.TerminalID}
			by[t.TerminalID] = tt
		}
		if t.Op.Credit() {
			tt.Totals.CreditCount++
			tt.Totals.CreditAmount += t.Amount.Minor()
		} else {
			tt.Totals.DebitCount++
			tt.Totals.DebitAmount += t.Amount.Minor()
		}
	}
	out := make([]TerminalTotals, 0, len(by))
	for _, tt := range by {
		if tt.Totals != (Totals{}) || tt.Result != "" {
			out = append(out, *tt)
		}
	}
	slices.SortFunc(out, func(a, b TerminalTotals) int { return cmp.Compare(a.TerminalID, b.TerminalID) })
	return out
}

// OpTotalsOf counts the counted transactions by op.
func OpTotalsOf(txns []*Transaction) []OpTotals {
	by := map[Op]*OpTotals{}
	for _, t := range txns {
		if !t.Counted() {
			continue
		}
		o := by[t.Op]
		if o == nil {
			o = &OpTotals{Op: t.Op}
			by[t.Op] = o
		}
		o.Count++
		o.Amount += t.Amount.Minor()
	}
	var out []OpTotals
	for _, op := range Ops {
		if o := by[op]; o != nil {
			out = append(out, *o)
		}
	}
	return out
}

// Unsettled reports whether t's outcome can still change its batch's
// totals: a batch closes only once none of its transactions is unsettled.
func (t *Transaction) Unsettled() bool {
	if !t.Op.Financial() && t.Op != OpVoid {
		return false
	}
	if t.Step == StepQueued && t.Status == StatusPending && t.Deferrable() {
		return false // sent later, into the batch open then
	}
	switch t.Status {
	case StatusPending, StatusUnknown, StatusStoodIn:
		return true
	}
	return false
}
