package gateway_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sterad/sterad"
)

// countingStore counts the transaction records read back from the store.
type countingStore struct {
	sterad.Store
	mu    sync.Mutex
	reads map[string]int
}

func (s *countingStore) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	s.mu.Lock()
	s.reads[id]++
	s.mu.Unlock()
	return s.Store.Transaction(ctx, id)
}

func (s *countingStore) readsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[id]
}

// A keyed sale is journaled, sent, answered and returned without reading
// its own record back: the flow changes the copy it committed.
func TestSaleReadsNoRecordBack(t *testing.T) {
	cs := &countingStore{reads: map[string]int{}}
	h := startWrapped(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), func(s sterad.Store) sterad.Store {
		cs.Store = s
		return cs
	})
	tx := h.mustSubmit(keyedSale("4111111111111111", "12800"))
	if tx.Status != sterad.StatusApproved || tx.Step != sterad.StepDone {
		t.Fatalf("sale: %s %s", tx.Status, tx.Step)
	}
	if n := cs.readsOf(tx.ID); n != 0 {
		t.Fatalf("the sale's record was read back %d times", n)
	}
	// What the API answered is what is stored.
	stored, err := h.db.Transaction(context.Background(), tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Version != tx.Version || stored.Status != tx.Status || stored.AuthCode != tx.AuthCode || len(stored.Events) != len(tx.Events) {
		t.Fatalf("answered %+v\nstored %+v", tx, stored)
	}
}

// A record written behind the journal's back makes its held copy stale:
// the store refuses the copy and the flow decides again on the stored
// record, so nothing written meanwhile is lost.
func TestHeldCopyWrittenElsewhereIsNotUsed(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sale := h.mustSubmit(keyedSale("4111111111111111", "12800"))
	// Another writer (an older release, a tool) notes something on it.
	other, err := h.db.Transaction(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	other.Reason = "noted elsewhere"
	if err := h.db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{other}}); err != nil {
		t.Fatal(err)
	}
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "2800"})
	if refund.Status != sterad.StatusApproved {
		t.Fatalf("refund: %s %s", refund.Status, refund.Reason)
	}
	after, err := h.db.Transaction(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Reason != "noted elsewhere" || after.Refunded.Minor() != 2800 {
		t.Fatalf("sale after the refund: reason %q, refunded %s", after.Reason, after.Refunded)
	}
}
