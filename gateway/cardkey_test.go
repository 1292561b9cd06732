package gateway_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sterad/sterad"
)

// lostKeys is a store whose kept cards cannot be read once lose is set,
// as after a lost or damaged key file.
type lostKeys struct {
	sterad.Store
	mu   sync.Mutex
	lose bool
}

func (s *lostKeys) OpenCard(ctx context.Context, owner string) (*sterad.Card, error) {
	s.mu.Lock()
	lose := s.lose
	s.mu.Unlock()
	c, err := s.Store.OpenCard(ctx, owner)
	if err == nil && lose {
		c.Wipe()
		return nil, sterad.ErrCardKeyLost
	}
	return c, err
}

// Issue 11: an owed stand-in advice whose card key is lost is never sent
// without its card (the host would answer 14 and sterad would blame the
// issuer): it is parked, and the transaction raises an alert that names
// the lost key.
func TestLostCardKeyIsNotBlamedOnTheIssuer(t *testing.T) {
	store := &lostKeys{}
	h := startWrapped(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), func(s sterad.Store) sterad.Store {
		store.Store = s
		return store
	})
	h.host.online.Store(false)
	sale := presentSale(h, "9000")
	if sale.Status != sterad.StatusStoodIn {
		t.Fatalf("stand-in: %s", sale.Status)
	}
	store.mu.Lock()
	store.lose = true
	store.mu.Unlock()
	h.host.online.Store(true)
	if _, err := h.gw.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.host.messages()); n != 0 {
		t.Fatalf("%d message(s) sent without the card", n)
	}
	got, _ := h.gw.Transaction(context.Background(), sale.ID)
	if got.Status != sterad.StatusStoodIn || !strings.Contains(got.Reason, "key is lost") || strings.Contains(got.Reason, "issuer") {
		t.Fatalf("after a lost key: %s %q", got.Status, got.Reason)
	}
	alerts, _ := h.gw.Alerts(context.Background())
	if len(alerts) != 1 || alerts[0].ID != sale.ID {
		t.Fatalf("alerts: %+v", alerts)
	}
	q, _ := h.gw.Queue(context.Background())
	if len(q) != 1 || !q[0].Parked {
		t.Fatalf("queue: %+v", q)
	}
}
