package offline_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sterad/sterad"
)

func voucherEntry(number, ref string) *sterad.VoucherLogEntry {
	return &sterad.VoucherLogEntry{Number: number, Program: "OITA2016", Reference: ref, Applied: sterad.NewAmount(5000, sterad.JPY),
		Guests: 1, Nights: 1, StayDate: sterad.Date{Year: 2016, Month: 8, Day: 1}, UsedOn: sterad.Date{Year: 2016, Month: 8, Day: 2}}
}

// A voucher number is logged once: a second new entry for it fails the
// compare-and-swap, even when many are written at once; an entry read at
// its version may be taken over.
func TestVoucherLogCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	if _, err := db.Voucher(ctx, "OITA2016", "0000000001"); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("Voucher(missing) = %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Apply(ctx, sterad.Change{PutVouchers: []*sterad.VoucherLogEntry{voucherEntry("0000000001", "RSV-1")}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, sterad.ErrStale):
			t.Fatalf("Apply: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("the voucher was logged %d times", ok)
	}
	e, err := db.Voucher(ctx, "OITA2016", "0000000001")
	if err != nil || e.Version != 1 || e.Reference != "RSV-1" {
		t.Fatalf("stored: %+v %v", e, err)
	}
	e.Reference = "RSV-2"
	if err := db.Apply(ctx, sterad.Change{PutVouchers: []*sterad.VoucherLogEntry{e}}); err != nil || e.Version != 2 {
		t.Fatalf("take over at its version: %v (version %d)", err, e.Version)
	}
	dup := []*sterad.VoucherLogEntry{voucherEntry("0000000002", "R"), voucherEntry("0000000002", "R")}
	if err := db.Apply(ctx, sterad.Change{PutVouchers: dup}); sterad.ErrorCode(err) != "voucher_used" {
		t.Fatalf("one number twice in a change: %v", err)
	}
	log, err := db.VoucherLog(ctx)
	if err != nil || len(log) != 1 || log[0].Reference != "RSV-2" {
		t.Fatalf("log: %+v %v", log, err)
	}
}
