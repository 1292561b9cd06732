package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// client returns a client of the API serving f on loopback.
func client(t *testing.T, f *fake) *api.Client {
	t.Helper()
	s := server(f)
	s.Simulators = sims{}
	ts := httptest.NewServer(validating(t, s.Handler()))
	t.Cleanup(ts.Close)
	return api.NewClient(strings.TrimPrefix(ts.URL, "http://"), token)
}

func TestClientCreateTransaction(t *testing.T) {
	ctx := context.Background()
	seen := map[string]*sterad.Transaction{}
	f := &fake{t: t, SubmitFn: func(_ context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
		switch {
		case r.Amount == "0":
			busy := approved("T0")
			busy.Status = sterad.StatusCancelled
			return busy, false, sterad.Errorf(sterad.EConflict, "terminal_busy", "terminal FRONT001 is busy")
		case r.PAN != "" && r.PAN != "4111111111111111":
			return nil, false, sterad.Errorf(sterad.EInvalid, "invalid_card", "the card number fails its check digit")
		case !r.Wait:
			tx := approved("T2")
			tx.Status = sterad.StatusPending
			return tx, false, nil
		}
		if tx := seen[r.IdempotencyKey]; tx != nil && r.IdempotencyKey != "" {
			return tx, true, nil
		}
		tx := approved("T1")
		seen[r.IdempotencyKey] = tx
		return tx, false, nil
	}}
	c := client(t, f)
	sale := api.TransactionRequest{Op: "sale", Amount: "12800", Card: &api.CardInput{PAN: "4111111111111111", Expiry: "2812"}}
	for _, tt := range []struct {
		name   string
		o      api.CreateOptions
		id     string
		status string
		code   int
	}{
		{"first with a key", api.CreateOptions{IdempotencyKey: "k1"}, "T1", "approved", 201},
		{"again with the key", api.CreateOptions{IdempotencyKey: "k1"}, "T1", "approved", 200},
		{"not waited", api.CreateOptions{NoWait: true}, "T2", "pending", 202},
	} {
		tx, code, err := c.CreateTransaction(ctx, sale, tt.o)
		if err != nil || code != tt.code || tx.ID != tt.id || tx.Status != tt.status {
			t.Errorf("%s: %v %d %+v", tt.name, err, code, tx)
		}
	}

	bad := sale
	bad.Card = &api.CardInput{PAN: "4111111111111112", Expiry: "2812"}
	_, code, err := c.CreateTransaction(ctx, bad, api.CreateOptions{})
	var ae *api.Error
	if !errors.As(err, &ae) || code != 400 || ae.Status != 400 || ae.Code != "invalid_card" || ae.Transaction != nil {
		t.Fatalf("bad card: %d %v", code, err)
	}
	if want := "the card number fails its check digit (400 invalid_card)"; ae.Error() != want {
		t.Errorf("error text %q, want %q", ae.Error(), want)
	}
	busy := sale
	busy.Amount = "0"
	_, _, err = c.CreateTransaction(ctx, busy, api.CreateOptions{})
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Transaction == nil || ae.Transaction.ID != "T0" {
		t.Fatalf("busy: %v", err)
	}
}

func TestClientReads(t *testing.T) {
	ctx := context.Background()
	var filter sterad.TransactionFilter
	f := &fake{t: t,
		TransactionFn: func(_ context.Context, id string) (*sterad.Transaction, error) { return approved(id), nil },
		TransactionsFn: func(_ context.Context, fl sterad.TransactionFilter) ([]*sterad.Transaction, error) {
			filter = fl
			return []*sterad.Transaction{approved("T1")}, nil
		},
		TerminalsFn: func() []sterad.TerminalInfo {
			return []sterad.TerminalInfo{{ID: "FRONT001", Kind: "fixed", Transport: "serial", State: "ready"}, {ID: "HAND0001", Kind: "handheld", Transport: "usb", State: "offline"}}
		},
		QueueFn: func(context.Context) ([]sterad.QueueItem, error) {
			return []sterad.QueueItem{{Seq: 1, TxnID: "T1", Kind: sterad.QueueAdvice, CreatedAt: when, Parked: true}}, nil
		},
		FlushFn: func(context.Context) (int, error) { return 1, nil },
		AcquirerFn: func() sterad.LinkStatus {
			return sterad.LinkStatus{Online: true, State: "online", Since: when, Address: "127.0.0.1:8583"}
		},
		OpenBatchFn: func(context.Context) (*sterad.Batch, error) {
			return &sterad.Batch{Number: 2, State: sterad.BatchOpen, OpenedAt: when}, nil
		},
		ClosingFn: func(context.Context) (*sterad.Batch, error) { return nil, nil },
		AlertsFn:  func(context.Context) ([]*sterad.Transaction, error) { return nil, nil },
		VaultFn: func(context.Context) ([]*sterad.VaultEntry, error) {
			return []*sterad.VaultEntry{{Reference: "RSV-1", MaskedPAN: "411111******1111", Brand: "visa", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}, CreatedAt: when, RetainUntil: when}}, nil
		},
		PurgeFn: func(context.Context) (*sterad.PurgeResult, error) {
			return &sterad.PurgeResult{Cards: []string{"T1"}}, nil
		},
		ReleaseVaultFn: func(_ context.Context, ref string) (*sterad.VaultEntry, error) {
			return &sterad.VaultEntry{Reference: ref, MaskedPAN: "411111******1111", Brand: "visa", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}, CreatedAt: when, RetainUntil: when}, nil
		},
		ReservationFn: func(_ context.Context, ref string) (*sterad.Reservation, error) {
			return &sterad.Reservation{Reference: ref, State: "guaranteed", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}, CreatedAt: when, UpdatedAt: when, Version: 1}, nil
		},
		BatchesFn: func(context.Context) ([]*sterad.Batch, error) {
			return []*sterad.Batch{{Number: 1, State: sterad.BatchClosed, OpenedAt: when}, {Number: 2, State: sterad.BatchOpen, OpenedAt: when}}, nil
		},
		BatchFn: func(_ context.Context, n int) (*sterad.Batch, error) {
			return &sterad.Batch{Number: n, State: sterad.BatchOpen, OpenedAt: when}, nil
		},
		StartCloseFn: func(context.Context) (*sterad.CloseRun, error) {
			return sterad.NewCloseRun(2), nil
		},
	}
	c := client(t, f)

	if tx, err := c.Transaction(ctx, "T/1"); err != nil || tx.ID != "T/1" || len(tx.Events) != 2 {
		t.Errorf("Transaction: %v %+v", err, tx)
	}
	if txns, err := c.Transactions(ctx, url.Values{"reference": {"RSV 1"}}); err != nil || len(txns) != 1 || filter.Reference != "RSV 1" {
		t.Errorf("Transactions: %v %v %+v", err, txns, filter)
	}
	if txns, err := c.Transactions(ctx, nil); err != nil || len(txns) != 1 || filter.Reference != "" {
		t.Errorf("Transactions: %v %v %+v", err, txns, filter)
	}
	if ts, err := c.Terminals(ctx); err != nil || len(ts) != 2 || ts[1].ID != "HAND0001" {
		t.Errorf("Terminals: %v %v", err, ts)
	}
	if q, sum, err := c.Queue(ctx); err != nil || len(q) != 1 || sum != (api.QueueSummary{Depth: 1, Parked: 1}) {
		t.Errorf("Queue: %v %v %v", err, q, sum)
	}
	if r, err := c.Flush(ctx); err != nil || r != (api.FlushResult{Sent: 1, Depth: 1}) {
		t.Errorf("Flush: %v %v", err, r)
	}
	if st, err := c.Status(ctx); err != nil || !st.Acquirer.Online || st.Batch.Number != 2 || st.Queue.Depth != 1 {
		t.Errorf("Status: %v %+v", err, st)
	}
	if v, err := c.Vault(ctx); err != nil || len(v) != 1 || v[0].Reference != "RSV-1" {
		t.Errorf("Vault: %v %v", err, v)
	}
	if p, err := c.Purge(ctx); err != nil || len(p.Cards) != 1 {
		t.Errorf("Purge: %v %+v", err, p)
	}
	if e, err := c.ReleaseVault(ctx, "RSV 2"); err != nil || e.Reference != "RSV 2" {
		t.Errorf("ReleaseVault: %v %+v", err, e)
	}
	if r, err := c.Reservation(ctx, "RSV-3"); err != nil || r.Reference != "RSV-3" || r.State != "guaranteed" {
		t.Errorf("Reservation: %v %+v", err, r)
	}
	if bs, err := c.Batches(ctx); err != nil || len(bs) != 2 || bs[1].Number != 2 {
		t.Errorf("Batches: %v %v", err, bs)
	}
	if b, err := c.Batch(ctx, 7); err != nil || b.Number != 7 {
		t.Errorf("Batch: %v %+v", err, b)
	}
	if n, err := c.StartClose(ctx); err != nil || n != 2 {
		t.Errorf("StartClose: %d %v", n, err)
	}
}

// Every reader answers the API's error as an *api.Error.
func TestClientReadErrors(t *testing.T) {
	ctx := context.Background()
	down := sterad.Errorf(sterad.EUnavailable, "store_unavailable", "the store is not available")
	f := &fake{t: t,
		TransactionFn:      func(context.Context, string) (*sterad.Transaction, error) { return nil, down },
		TransactionsFn:     func(context.Context, sterad.TransactionFilter) ([]*sterad.Transaction, error) { return nil, down },
		QueueFn:            func(context.Context) ([]sterad.QueueItem, error) { return nil, down },
		FlushFn:            func(context.Context) (int, error) { return 0, down },
		VaultFn:            func(context.Context) ([]*sterad.VaultEntry, error) { return nil, down },
		PurgeFn:            func(context.Context) (*sterad.PurgeResult, error) { return nil, down },
		ReleaseVaultFn:     func(context.Context, string) (*sterad.VaultEntry, error) { return nil, down },
		ReservationFn:      func(context.Context, string) (*sterad.Reservation, error) { return nil, down },
		BatchesFn:          func(context.Context) ([]*sterad.Batch, error) { return nil, down },
		BatchFn:            func(context.Context, int) (*sterad.Batch, error) { return nil, down },
		StartCloseFn:       func(context.Context) (*sterad.CloseRun, error) { return nil, down },
		SettlementReportFn: func(context.Context, string, string) (sterad.SettlementReport, error) { return nil, down },
		AcquirerFn:         func() sterad.LinkStatus { return sterad.LinkStatus{State: "offline", Address: "127.0.0.1:8583"} },
		TerminalsFn:        func() []sterad.TerminalInfo { return nil },
	}
	c := client(t, f)
	for name, call := range map[string]func() error{
		"Transaction":  func() error { _, err := c.Transaction(ctx, "T1"); return err },
		"Transactions": func() error { _, err := c.Transactions(ctx, nil); return err },
		"Queue":        func() error { _, _, err := c.Queue(ctx); return err },
		"Flush":        func() error { _, err := c.Flush(ctx); return err },
		"Status":       func() error { _, err := c.Status(ctx); return err },
		"WaitFinal":    func() error { _, err := c.WaitFinal(ctx, "T1", time.Millisecond); return err },
		"Vault":        func() error { _, err := c.Vault(ctx); return err },
		"Purge":        func() error { _, err := c.Purge(ctx); return err },
		"ReleaseVault": func() error { _, err := c.ReleaseVault(ctx, "R"); return err },
		"Reservation":  func() error { _, err := c.Reservation(ctx, "R"); return err },
		"Batches":      func() error { _, err := c.Batches(ctx); return err },
		"Batch":        func() error { _, err := c.Batch(ctx, 1); return err },
		"StartClose":   func() error { _, err := c.StartClose(ctx); return err },
		"Settlement":   func() error { return c.SettlementReport(ctx, "2026-11-01", "2026-11-30", false, nil) },
	} {
		var ae *api.Error
		if err := call(); !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "store_unavailable" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestClientWaitFinal(t *testing.T) {
	polls := 0
	f := &fake{t: t, TransactionFn: func(_ context.Context, id string) (*sterad.Transaction, error) {
		polls++
		tx := approved(id)
		if polls < 3 {
			tx.Status = sterad.StatusPending
		}
		return tx, nil
	}}
	tx, err := client(t, f).WaitFinal(context.Background(), "T1", time.Millisecond)
	if err != nil || tx.Status != "approved" || polls != 3 {
		t.Fatalf("%v %+v after %d polls", err, tx, polls)
	}
}

func TestClientSettlementReport(t *testing.T) {
	rep := &report{From: sterad.Date{Year: 2026, Month: 11, Day: 1}, To: sterad.Date{Year: 2026, Month: 11, Day: 30}, Lines: []reportLine{{Day: sterad.Date{Year: 2026, Month: 11, Day: 5}, Brand: "visa", PayoutDate: sterad.Date{Year: 2026, Month: 11, Day: 30}}},
		Currency: "JPY", Brands: []reportTotals{}, Payouts: []struct{}{}, Batches: []int{}}
	f := &fake{t: t, SettlementReportFn: func(context.Context, string, string) (sterad.SettlementReport, error) { return rep, nil }}
	c := client(t, f)
	var got report
	if err := c.SettlementReport(context.Background(), "2026-11-01", "2026-11-30", false, &got); err != nil || got.To != rep.To {
		t.Fatalf("JSON: %v %+v", err, got)
	}
	var csv bytes.Buffer
	if err := c.SettlementReport(context.Background(), "2026-11-01", "2026-11-30", true, &csv); err != nil || csv.String() != "business_day,brand\n2026-11-05,visa\n" {
		t.Fatalf("CSV: %v %q", err, csv.String())
	}
	// An answer that is not the JSON asked for.
	var n int
	if err := c.SettlementReport(context.Background(), "2026-11-01", "2026-11-30", true, &n); err == nil || !strings.Contains(err.Error(), "decode answer") {
		t.Fatalf("CSV into an int: %v", err)
	}
}

func TestClientDo(t *testing.T) {
	ctx := context.Background()
	c := client(t, &fake{t: t})
	// The simulators' controls answer plain text errors too.
	var out bytes.Buffer
	code, err := c.Do(ctx, http.MethodPost, "/v1/sim/acquirer/outage", nil, map[string]bool{"on": true}, &out)
	if err != nil || code != 200 || out.String() != "acquirer POST /outage" {
		t.Fatalf("%d %v %q", code, err, out.String())
	}
	// An error without the API's error body.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer plain.Close()
	code, err = api.NewClient(plain.URL+"/", "").Do(ctx, http.MethodGet, "/v1/status", nil, nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || code != 502 || ae.Code != "http_error" || ae.Message != "bad gateway" {
		t.Fatalf("%d %v", code, err)
	}
	// Nobody listening.
	plain.Close()
	if _, err := api.NewClient(plain.URL, token).Status(ctx); err == nil || !strings.Contains(err.Error(), "call sterad at "+plain.URL) {
		t.Fatalf("closed server: %v", err)
	}
	// A body that cannot be encoded, a method that is not one.
	if _, err := c.Do(ctx, http.MethodPost, "/v1/transactions", nil, make(chan int), nil); err == nil {
		t.Fatal("a channel was encoded")
	}
	if _, err := c.Do(ctx, "BAD METHOD", "/v1/status", nil, nil, nil); err == nil {
		t.Fatal("a bad method was sent")
	}
	// A wrong token is an API error.
	c.Token = "wrong"
	if _, err := c.Terminals(ctx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
}
