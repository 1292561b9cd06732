package gateway_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/internal/testutil"
)

// ids lists the IDs of transactions, in their order.
func txnIDs(ts []*sterad.Transaction) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func holdIDs(hs []sterad.Hold) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

// restart stops h's gateway and store and starts new ones on its store,
// with host and a fresh terminal.
func (h *harness) restart(host *fakeHost) *harness {
	h.t.Helper()
	h.gw.Stop()
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	return startHarness(h.t, h.dir, host, newFakeTerminal("FRONT001"))
}

// The alerts and the open holds follow every commit: a stand-in the
// issuer later declines becomes an alert, a completed pre-authorization
// leaves the holds; after a restart both lists are what they were, built
// from the store, and go on following the commits; a hold grown old
// becomes an alert.
func TestAlertsAndHoldsFollowCommits(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	alerts := func(h *harness) []string {
		t.Helper()
		a, err := h.gw.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return txnIDs(a)
	}
	holds := func(h *harness) []string {
		t.Helper()
		hs, err := h.gw.Holds(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return holdIDs(hs)
	}
	preauth := func(ref string) *sterad.Transaction {
		t.Helper()
		p := h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "30000", Reference: ref, CheckIn: "2026-11-21", CheckOut: "2026-11-23"})
		if p.Status != sterad.StatusApproved {
			t.Fatalf("preauth: %s %q", p.Status, p.Reason)
		}
		return p
	}
	// standIn stands in for a sale the issuer will decline.
	standIn := func() *sterad.Transaction {
		t.Helper()
		c := chipVisa
		c.PAN = "4000000000009995"
		h.term.present(c)
		s := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
		if s.Status != sterad.StatusStoodIn {
			t.Fatalf("stand-in: %s %q", s.Status, s.Reason)
		}
		return s
	}
	p1 := preauth("RSV-1")
	p2 := preauth("RSV-2")
	if got := holds(h); !slices.Equal(got, []string{p1.ID, p2.ID}) {
		t.Fatalf("holds: %v, want %s %s", got, p1.ID, p2.ID)
	}

	// No alert while the stand-in waits, one once the issuer declines it.
	h.host.online.Store(false)
	s1 := standIn()
	if got := alerts(h); len(got) != 0 {
		t.Fatalf("alerts while the stand-in waits: %v", got)
	}
	h.host.online.Store(true)
	if _, err := h.gw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alerts(h); !slices.Equal(got, []string{s1.ID}) {
		t.Fatalf("alerts after the decline: %v, want %s", got, s1.ID)
	}

	// A completed pre-authorization is no longer held.
	if done := h.mustSubmit(sterad.Request{Op: "completion", Original: p1.ID, Amount: "30000"}); done.Status != sterad.StatusApproved {
		t.Fatalf("completion: %s %q", done.Status, done.Reason)
	}
	if got := holds(h); !slices.Equal(got, []string{p2.ID}) {
		t.Fatalf("holds after the completion: %v, want %s", got, p2.ID)
	}

	// A second stand-in still waits at the restart.
	h.host.online.Store(false)
	s2 := standIn()

	// After a restart, the lists are built from the store.
	host := newFakeHost()
	host.online.Store(false)
	h = h.restart(host)
	if got := alerts(h); !slices.Equal(got, []string{s1.ID}) {
		t.Fatalf("alerts after a restart: %v, want %s", got, s1.ID)
	}
	if got := holds(h); !slices.Equal(got, []string{p2.ID}) {
		t.Fatalf("holds after a restart: %v, want %s", got, p2.ID)
	}
	// and follow the commits: the second stand-in declined, the hold
	// grown old.
	host.online.Store(true)
	if n, err := h.gw.Flush(ctx); err != nil || n != 1 {
		t.Fatalf("flush after the restart: %d %v", n, err)
	}
	if got := alerts(h); !slices.Equal(got, []string{s1.ID, s2.ID}) {
		t.Fatalf("alerts after the second decline: %v, want %s %s", got, s1.ID, s2.ID)
	}
	h.clock.Advance(8 * 24 * time.Hour)
	a, err := h.gw.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := txnIDs(a); !slices.Equal(got, []string{s1.ID, s2.ID, p2.ID}) || !strings.HasPrefix(a[2].Reason, "ALERT: pre-authorization") {
		t.Fatalf("alerts with an old hold: %v", got)
	}
}

// The queue's counts follow the commits and survive a restart: a
// stand-in queued, parked once older than offline.max_age, sent by a
// flush.
func TestQueueCountsFollowCommits(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	counts := func(h *harness) sterad.QueueCounts {
		t.Helper()
		qc, err := h.gw.QueueCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return qc
	}
	h.host.online.Store(false)
	for range 2 {
		if s := presentSale(h, "9000"); s.Status != sterad.StatusStoodIn {
			t.Fatalf("stand-in: %s %q", s.Status, s.Reason)
		}
	}
	if qc := counts(h); qc != (sterad.QueueCounts{Depth: 2}) {
		t.Fatalf("two stand-ins: %+v", qc)
	}
	host := newFakeHost()
	host.online.Store(false)
	h = h.restart(host)
	if qc := counts(h); qc != (sterad.QueueCounts{Depth: 2}) {
		t.Fatalf("after a restart: %+v", qc)
	}
	// Past max_age (48 hours) the forwarder parks them when it looks at
	// the queue.
	h.clock.Advance(49 * time.Hour)
	h.gw.LinkChanged(sterad.LinkStatus{Online: true}) // wakes the forwarder; the host is still down
	testutil.Eventually(t, "both items parked", func() bool { return counts(h) == sterad.QueueCounts{Depth: 2, Parked: 2} })
	if q, _ := h.gw.Queue(ctx); len(q) != 2 || !q[0].Parked || !q[1].Parked {
		t.Fatalf("queue: %+v", q)
	}
	h = h.restart(host)
	if qc := counts(h); qc != (sterad.QueueCounts{Depth: 2, Parked: 2}) {
		t.Fatalf("parked, after a restart: %+v", qc)
	}
	host.online.Store(true)
	if n, err := h.gw.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("flush: %d %v", n, err)
	}
	if qc := counts(h); qc != (sterad.QueueCounts{}) {
		t.Fatalf("after the flush: %+v", qc)
	}
}

// readCounter counts what the gateway reads from its store: each record
// by ID, and the calls that read many.
type readCounter struct {
	sterad.Store
	mu    sync.Mutex
	reads map[string]int
	bulk  []string
}

func (s *readCounter) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	s.mu.Lock()
	s.reads[id]++
	s.mu.Unlock()
	return s.Store.Transaction(ctx, id)
}

func (s *readCounter) noteBulk(what string) {
	s.mu.Lock()
	s.bulk = append(s.bulk, what)
	s.mu.Unlock()
}

func (s *readCounter) Transactions(ctx context.Context, f sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	s.noteBulk("Transactions")
	return s.Store.Transactions(ctx, f)
}

func (s *readCounter) Unfinished(ctx context.Context) ([]*sterad.Transaction, error) {
	s.noteBulk("Unfinished")
	return s.Store.Unfinished(ctx)
}

func (s *readCounter) Queue(ctx context.Context) ([]sterad.QueueItem, error) {
	s.noteBulk("Queue")
	return s.Store.Queue(ctx)
}

func (s *readCounter) ScanTransactions(ctx context.Context, fn func(*sterad.Transaction) error) error {
	s.noteBulk("ScanTransactions")
	return s.Store.ScanTransactions(ctx, fn)
}

func (s *readCounter) ScanQueue(ctx context.Context, fn func(sterad.QueueItem) error) error {
	s.noteBulk("ScanQueue")
	return s.Store.ScanQueue(ctx, fn)
}

// reset forgets what was read so far.
func (s *readCounter) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads, s.bulk = map[string]int{}, nil
}

// read returns the IDs read and the bulk reads since the last reset.
func (s *readCounter) read() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.reads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, slices.Clone(s.bulk)
}

// What the status and the metrics ask of the gateway (the alerts, the
// queue's counts, the holds) reads the records they show and nothing
// else: never the whole store or the whole queue.
func TestStatusReadsOnlyWhatItShows(t *testing.T) {
	rc := &readCounter{reads: map[string]int{}}
	h := startWrapped(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), func(s sterad.Store) sterad.Store {
		rc.Store = s
		return rc
	})
	ctx := context.Background()
	for range 5 {
		h.mustSubmit(keyedSale("4111111111111111", "12800"))
	}
	hold := h.mustSubmit(sterad.Request{Op: "preauth", PAN: "4111111111111111", Expiry: "2812", Amount: "30000", Reference: "RSV-1", CheckIn: "2026-11-21", CheckOut: "2026-11-23"})
	h.host.online.Store(false)
	c := chipVisa
	c.PAN = "4000000000009995"
	h.term.present(c)
	declined := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "9000"})
	presentSale(h, "5000") // its advice stays queued
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		if m.PAN == chipVisa.PAN {
			return nil, sterad.ErrHostUnavailable
		}
		return h.host.approve(m) // the issuer declines the other
	}
	h.host.online.Store(true)
	h.gw.Flush(ctx)

	rc.reset()
	alerts, err := h.gw.Alerts(ctx)
	if err != nil || !slices.Equal(txnIDs(alerts), []string{declined.ID}) {
		t.Fatalf("alerts: %v %v", txnIDs(alerts), err)
	}
	if qc, err := h.gw.QueueCounts(ctx); err != nil || qc.Depth != 1 {
		t.Fatalf("queue counts: %+v %v", qc, err)
	}
	if ids, bulk := rc.read(); !slices.Equal(ids, []string{declined.ID}) || len(bulk) != 0 {
		t.Fatalf("the status read %v and %v, want only %s", ids, bulk, declined.ID)
	}
	rc.reset()
	hs, err := h.gw.Holds(ctx, 0)
	if err != nil || !slices.Equal(holdIDs(hs), []string{hold.ID}) {
		t.Fatalf("holds: %v %v", holdIDs(hs), err)
	}
	if ids, bulk := rc.read(); !slices.Equal(ids, []string{hold.ID}) || len(bulk) != 0 {
		t.Fatalf("the holds read %v and %v, want only %s", ids, bulk, hold.ID)
	}
	// Holds younger than asked for are not read either.
	rc.reset()
	if hs, err := h.gw.Holds(ctx, 24*time.Hour); err != nil || len(hs) != 0 {
		t.Fatalf("holds older than a day: %v %v", holdIDs(hs), err)
	}
	if ids, bulk := rc.read(); len(ids) != 0 || len(bulk) != 0 {
		t.Fatalf("the holds older than a day read %v and %v", ids, bulk)
	}
}

// The vault's count (for the metrics) is what Vault lists: cards kept and
// reservations guaranteed by a token alone, across guarantees, releases
// and a restart.
func TestVaultCountFollowsCommits(t *testing.T) {
	ctx := context.Background()
	check := func(h *harness, want int) {
		t.Helper()
		v, err := h.gw.Vault(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.gw.VaultCount(ctx)
		if err != nil || n != len(v) || n != want {
			t.Fatalf("vault count %d (%v); the vault lists %d, want %d", n, err, len(v), want)
		}
	}
	t.Run("cards", func(t *testing.T) {
		h := newHarness(t)
		check(h, 0)
		if cc := h.mustSubmit(guarantee("RSV-1", "4111111111111111")); cc.Status != sterad.StatusApproved {
			t.Fatalf("guarantee: %s %q", cc.Status, cc.Reason)
		}
		if cc := h.mustSubmit(guarantee("RSV-2", "5555555555554444")); cc.Status != sterad.StatusApproved {
			t.Fatalf("guarantee: %s %q", cc.Status, cc.Reason)
		}
		check(h, 2)
		if _, err := h.gw.ReleaseVault(ctx, "RSV-1"); err != nil {
			t.Fatal(err)
		}
		check(h, 1)
		h = h.restart(newFakeHost())
		check(h, 1)
		if _, err := h.gw.ReleaseVault(ctx, "RSV-2"); err != nil {
			t.Fatal(err)
		}
		check(h, 0)
	})
	t.Run("tokens", func(t *testing.T) {
		h := newBlindHarness(t).harness
		h.term.present(p2peCard("353011******0000", sterad.BrandJCB, sterad.EntryKeyed, 9))
		if cc := h.mustSubmit(sterad.Request{Op: "cardcheck", Terminal: "FRONT001", Reference: "RSV-1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}); cc.Token == "" {
			t.Fatalf("card check: %s %q, no token", cc.Status, cc.Reason)
		}
		if cc := h.mustSubmit(sterad.Request{Op: "cardcheck", Token: "TK99999999999999", Reference: "RSV-2", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}); cc.Status != sterad.StatusApproved {
			t.Fatalf("guarantee by token: %s %q", cc.Status, cc.Reason)
		}
		check(h, 2)
		if _, err := h.gw.ReleaseVault(ctx, "RSV-1"); err != nil {
			t.Fatal(err)
		}
		check(h, 1)
		// The next start, on a copy of the store (the blind harness checks
		// its own at the end).
		again := t.TempDir()
		copyDir(t, h.dir, again)
		h = startHarness(t, again, newFakeHost(), newFakeTerminal("FRONT001"), func(c *gateway.Config) { c.CardData = sterad.CardDataBlind })
		check(h, 1)
		if _, err := h.gw.ReleaseVault(ctx, "RSV-2"); err != nil {
			t.Fatal(err)
		}
		check(h, 0)
	})
}

// A stand-in decided while many wait in the queue reads no more of it
// than the count limit needs.
func TestStandInCountStopsAtTheLimit(t *testing.T) {
	rc := &readCounter{reads: map[string]int{}}
	h := startWrapped(t, t.TempDir(), newFakeHost(), newFakeTerminal("FRONT001"), func(s sterad.Store) sterad.Store {
		rc.Store = s
		return rc
	}, func(c *gateway.Config) {
		c.Offline = sterad.DefaultOfflineLimits()
		c.Offline.MaxCount = 2
	})
	h.host.online.Store(false)
	for range 2 {
		if s := presentSale(h, "1000"); s.Status != sterad.StatusStoodIn {
			t.Fatalf("stand-in: %s %q", s.Status, s.Reason)
		}
	}
	over := presentSale(h, "1000")
	if over.Status != sterad.StatusDeclined || !strings.Contains(over.Reason, "2 offline approvals already wait for the acquirer (the limit is 2)") {
		t.Fatalf("the third: %s %q", over.Status, over.Reason)
	}
	// More than the limit waiting (left by a run with a higher limit):
	// the count stops at the limit.
	ctx := context.Background()
	var c sterad.Change
	for _, id := range []string{"X1", "X2", "X3", "X4"} {
		at := h.clock.Now()
		c.Put = append(c.Put, &sterad.Transaction{ID: id, Op: sterad.OpSale, Status: sterad.StatusStoodIn, Step: sterad.StepQueued,
			LocalCode: "SABCDE", Offline: true, Amount: sterad.NewAmount(1000, sterad.JPY), CreatedAt: at})
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: id, Kind: sterad.QueueAdvice, CreatedAt: at})
	}
	if err := h.db.Apply(ctx, c); err != nil {
		t.Fatal(err)
	}
	rc.reset()
	over = presentSale(h, "1000")
	if over.Status != sterad.StatusDeclined || !strings.Contains(over.Reason, "more than 2 offline approvals already wait for the acquirer (the limit is 2)") {
		t.Fatalf("over the limit: %s %q", over.Status, over.Reason)
	}
	// The two it counts and the one past the limit; not the others.
	ids, bulk := rc.read()
	if slices.ContainsFunc(ids, func(id string) bool { return id == "X2" || id == "X3" || id == "X4" }) || !slices.Contains(ids, "X1") || !slices.Equal(bulk, []string{"ScanQueue"}) {
		t.Fatalf("the stand-in decision read %v and %v", ids, bulk)
	}
}
