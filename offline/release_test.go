package offline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// Releasing the mapped pages changes nothing a read sees, also while
// other goroutines read and write.
func TestReleaseMappedKeepsTheData(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	var c sterad.Change
	for i := range 500 {
		c.Put = append(c.Put, txn(newID(), t0.Add(time.Duration(i)*time.Second)))
	}
	apply(t, db, c)
	sum := func() (n int, total int64) {
		t.Helper()
		err := db.ScanTransactions(ctx, func(tx *sterad.Transaction) error {
			n++
			total += tx.Amount.Minor()
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		return n, total
	}
	n0, total0 := sum()
	if err := db.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	if n, total := sum(); n != n0 || total != total0 {
		t.Fatalf("after the release: %d transactions, %d in all; before: %d, %d", n, total, n0, total0)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.ReleaseMapped(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 200 { // grows the file: bbolt remaps it meanwhile
		tx := txn(newID(), t0.Add(time.Duration(500+i)*time.Second))
		tx.Reason = strings.Repeat("x", 4096)
		apply(t, db, sterad.Change{Put: []*sterad.Transaction{tx}})
		if i%50 == 0 {
			sum()
		}
	}
	close(stop)
	wg.Wait()
	if n, total := sum(); n != n0+200 || total != total0+200*38500 {
		t.Fatalf("after releases during writes: %d transactions, %d in all", n, total)
	}
}
