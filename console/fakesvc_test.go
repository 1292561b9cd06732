package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// fakeServices implements the batch, vault, reservation, status,
// settlement and queue services.
type fakeServices struct {
	mu       sync.Mutex
	batches  []*sterad.Batch
	progress []sterad.BatchProgress // successive reads of the close's progress
	reads    int
	closes   int
	vault    []*sterad.VaultEntry
	released []string
	alerts   []*sterad.Transaction
	queue    []sterad.QueueItem
	link     sterad.LinkStatus
	payouts  []fakePayout
	resv     map[string]*sterad.Reservation
}

type fakePayout struct {
	Date string `json:"payout_date"`
	Paid int64  `json:"paid"`
}

func newFakeServices() *fakeServices {
	return &fakeServices{
		batches: []*sterad.Batch{
			{Number: 41, State: sterad.BatchClosed, OpenedAt: t0.Add(-48 * 3600e9), ClosedAt: t0.Add(-24 * 3600e9),
				Terminals: []sterad.TerminalTotals{{TerminalID: "FRONT001", Totals: sterad.Totals{DebitCount: 3, DebitAmount: 45000}, Result: "00"}}},
			{Number: 42, State: sterad.BatchOpen, OpenedAt: t0.Add(-24 * 3600e9),
				Terminals: []sterad.TerminalTotals{{TerminalID: "FRONT001", Totals: sterad.Totals{DebitCount: 2, DebitAmount: 16300, CreditCount: 1, CreditAmount: 1000}}}},
		},
		link: sterad.LinkStatus{Online: true, State: "online", Since: t0, Address: "acq.example:5000"},
	}
}

func (f *fakeServices) Batches(context.Context) ([]*sterad.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.batches, nil
}

func (f *fakeServices) Batch(_ context.Context, n int) (*sterad.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		if b.Number == n {
			c := *b
			return &c, nil
		}
	}
	return nil, sterad.ErrNotFound
}

// Progress returns the scripted progress, one step per read; once past
// the script the batch is closed.
func (f *fakeServices) Progress(n int) (sterad.BatchProgress, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads < len(f.progress) {
		p := f.progress[f.reads]
		f.reads++
		return p, true
	}
	for _, b := range f.batches {
		if b.Number == n && f.closes > 0 {
			b.State, b.ClosedAt = sterad.BatchClosed, t0
		}
	}
	return sterad.BatchProgress{}, false
}

func (f *fakeServices) StartClose(context.Context) (*sterad.CloseRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	for _, b := range f.batches {
		if b.State == sterad.BatchOpen {
			b.State = sterad.BatchClosing
			return sterad.NewCloseRun(b.Number), nil
		}
	}
	return nil, sterad.Errorf(sterad.EConflict, "no_open_batch", "no batch is open")
}

func (f *fakeServices) OpenBatch(context.Context) (*sterad.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		if b.State == sterad.BatchOpen {
			c := *b
			return &c, nil
		}
	}
	return nil, sterad.ErrNotFound
}

func (f *fakeServices) Closing(context.Context) (*sterad.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		if b.State == sterad.BatchClosing {
			c := *b
			return &c, nil
		}
	}
	return nil, nil
}

func (f *fakeServices) Vault(context.Context) ([]*sterad.VaultEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vault, nil
}

func (f *fakeServices) Purge(context.Context) (*sterad.PurgeResult, error) {
	return &sterad.PurgeResult{}, nil
}

func (f *fakeServices) ReleaseVault(_ context.Context, ref string) (*sterad.VaultEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, v := range f.vault {
		if v.Reference == ref {
			f.vault = append(f.vault[:i], f.vault[i+1:]...)
			f.released = append(f.released, ref)
			return v, nil
		}
	}
	return nil, sterad.ErrNotFound
}

func (f *fakeServices) Reservation(_ context.Context, ref string) (*sterad.Reservation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.resv[ref]
	if !ok {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_reservation", "no reservation %q", ref)
	}
	c := *r
	return &c, nil
}

// fakePayments is a ReservationPaymentService: it records check-outs and
// answers the scripted result, holds and voucher report.
type fakePayments struct {
	mu        sync.Mutex
	checkouts []sterad.CheckoutRequest
	result    *sterad.CheckoutResult
	holds     []sterad.Hold
	report    sterad.VoucherReport
	months    []string
}

func (f *fakePayments) Checkout(_ context.Context, r sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.checkouts {
		if c.IdempotencyKey == r.IdempotencyKey {
			return f.result, true, nil
		}
	}
	f.checkouts = append(f.checkouts, r)
	return f.result, false, nil
}

func (f *fakePayments) Holds(_ context.Context, olderThan time.Duration) ([]sterad.Hold, error) {
	return f.holds, nil
}

func (f *fakePayments) VoucherReport(_ context.Context, month string) (sterad.VoucherReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.months = append(f.months, month)
	if _, err := sterad.ParseYearMonth(month); err != nil {
		return sterad.VoucherReport{}, sterad.Errorf(sterad.EInvalid, "invalid_month", "month %q is not YYYY-MM", month)
	}
	return f.report, nil
}

func (f *fakePayments) requests() []sterad.CheckoutRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sterad.CheckoutRequest(nil), f.checkouts...)
}

func (f *fakeServices) Acquirer() sterad.LinkStatus { return f.link }

func (f *fakeServices) Alerts(context.Context) ([]*sterad.Transaction, error) { return f.alerts, nil }

func (f *fakeServices) Queue(context.Context) ([]sterad.QueueItem, error) { return f.queue, nil }

func (f *fakeServices) QueueCounts(context.Context) (sterad.QueueCounts, error) {
	qc := sterad.QueueCounts{Depth: len(f.queue)}
	for _, it := range f.queue {
		if it.Parked {
			qc.Parked++
		}
	}
	return qc, nil
}

func (f *fakeServices) Flush(context.Context) (int, error) { return 0, nil }

func (f *fakeServices) SettlementReport(_ context.Context, from, to string) (sterad.SettlementReport, error) {
	a, err := sterad.ParseDate(from)
	if err != nil {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_range", "from %q is not a date", from)
	}
	b, err := sterad.ParseDate(to)
	if err != nil || b.Before(a) {
		return nil, sterad.Errorf(sterad.EInvalid, "invalid_range", "to %q is not a date after from", to)
	}
	return fakeReport{from: a, to: b, payouts: f.payouts}, nil
}

type fakeReport struct {
	from, to sterad.Date
	payouts  []fakePayout
}

func (r fakeReport) Period() (sterad.Date, sterad.Date) { return r.from, r.to }

func (r fakeReport) WriteCSV(w io.Writer) error {
	fmt.Fprintln(w, "payout_date,paid")
	for _, p := range r.payouts {
		fmt.Fprintf(w, "%s,%d\n", p.Date, p.Paid)
	}
	return nil
}

func (r fakeReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"from": r.from.String(), "to": r.to.String(), "currency": "JPY", "payouts": r.payouts})
}
