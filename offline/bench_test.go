package offline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// Benchmarks run with fsync on: they measure the real commit path.

// runWorkers runs fn(i) for i in 0..b.N-1 on n goroutines and returns the
// wall time.
func runWorkers(b *testing.B, n int, fn func(i int)) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				fn(int(i))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	return el
}

// BenchmarkApplyParallel: 32 goroutines each applying a Put and an
// Idempotency binding of a realistic transaction.
func BenchmarkApplyParallel(b *testing.B) {
	for _, group := range []bool{true, false} {
		b.Run(map[bool]string{true: "group=on", false: "group=off"}[group], func(b *testing.B) {
			ctx := context.Background()
			o := offline.DefaultOptions()
			o.GroupCommit = group
			db, _ := open(b, o)
			fp := db.MAC([]byte(`{"op":"preauth","amount":"38500"}`))
			el := runWorkers(b, 32, func(int) {
				id := newID()
				err := db.Apply(ctx, sterad.Change{
					Put:         []*sterad.Transaction{txn(id, time.Now())},
					Idempotency: &sterad.IdempotencyRecord{Key: "idem-" + id, Fingerprint: fp, TxnID: id, CreatedAt: time.Now()},
				})
				if err != nil {
					b.Error(err)
				}
			})
			st := db.Stats()
			b.ReportMetric(float64(b.N)/el.Seconds(), "applies/s")
			b.ReportMetric(float64(st.Commits)/float64(st.Applies), "commits/apply")
		})
	}
}

// BenchmarkNextSTAN draws STANs back to back. With the default block
// (100) that is bounded by the reservation commits, one per 100 STANs;
// with a large block it measures the in-memory path.
func BenchmarkNextSTAN(b *testing.B) {
	ctx := context.Background()
	// now moves to a new day every 500,000 calls so that no day runs out.
	now := func(i int64) time.Time { return t0.Add(time.Duration(i/500_000) * 24 * time.Hour) }
	for _, block := range []int{offline.DefaultSTANBlock, 100_000} {
		opts := offline.DefaultOptions()
		opts.STANBlock = block
		b.Run(fmt.Sprintf("block=%d/serial", block), func(b *testing.B) {
			db, _ := open(b, opts)
			var i int64
			for b.Loop() {
				if _, err := db.NextSTAN(ctx, "TRM00001", now(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(db.Stats().Commits)/float64(b.N), "commits/op")
		})
		for _, terminals := range []int{1, 8} {
			b.Run(fmt.Sprintf("block=%d/parallel/terminals=%d", block, terminals), func(b *testing.B) {
				db, _ := open(b, opts)
				var n, g atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					term := fmt.Sprintf("TRM%05d", g.Add(1)%int64(terminals))
					for pb.Next() {
						if _, err := db.NextSTAN(ctx, term, now(n.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkSealOpenDestroy: seal a card (one commit), open it, destroy it
// (another commit). parallel32 shows the slot fsyncs shared by a group.
func BenchmarkSealOpenDestroy(b *testing.B) {
	ctx := context.Background()
	pan := testPAN()
	cycle := func(b *testing.B, db *offline.DB, i int) {
		owner := fmt.Sprintf("owner-%d", i)
		if err := db.Apply(ctx, sterad.Change{SealCards: []sterad.SealCard{{Owner: owner, Card: testCard(pan)}}}); err != nil {
			b.Error(err)
			return
		}
		if _, err := db.OpenCard(ctx, owner); err != nil {
			b.Error(err)
			return
		}
		if err := db.Apply(ctx, sterad.Change{DestroyCards: []string{owner}}); err != nil {
			b.Error(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		db, _ := open(b, offline.DefaultOptions())
		i := 0
		for b.Loop() {
			cycle(b, db, i)
			i++
		}
	})
	b.Run("parallel32", func(b *testing.B) {
		db, _ := open(b, offline.DefaultOptions())
		el := runWorkers(b, 32, func(i int) { cycle(b, db, i) })
		st := db.Stats()
		b.ReportMetric(float64(b.N)/el.Seconds(), "cycles/s")
		b.ReportMetric(float64(st.SlotSyncs)/float64(b.N), "slotsyncs/cycle")
	})
}

// BenchmarkSealCommit is a keyed sale's first commit, alone: a new
// transaction and its sealed card. With the card keys written ahead
// (DefaultOptions) the commit syncs bbolt only; with KeyPool 0 it first
// syncs the key file. ns/op is the commit's latency.
func BenchmarkSealCommit(b *testing.B) {
	ctx := context.Background()
	pan := testPAN()
	for _, pool := range []int{0, offline.DefaultKeyPool} {
		name := "keys-written-ahead"
		if pool == 0 {
			name = "key-written-at-commit"
		}
		b.Run(name, func(b *testing.B) {
			o := offline.DefaultOptions()
			o.KeyPool = pool
			db, _ := open(b, o)
			for b.Loop() {
				id := newID()
				if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}, SealCards: []sterad.SealCard{{Owner: id, Card: testCard(pan)}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(db.Stats().SlotSyncs)/float64(b.N), "keysyncs/op")
		})
	}
}

// BenchmarkVault10k puts 10,000 guarantee cards in the vault (32 callers,
// as reservations arrive concurrently), opens each, then purges them all,
// and reports each phase's time and the size of the data directory before
// and after: the purge destroys keys, so the files do not shrink, but
// nothing in them can be decrypted any more.
func BenchmarkVault10k(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		o := offline.DefaultOptions()
		o.KEKs = []*offline.KEK{testKEK}
		db, err := offline.Open(dir, o)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		refs := make([]string, n)
		for j := range refs {
			refs[j] = fmt.Sprintf("RSV-%06d", j)
		}
		size0 := dirSize(b, dir)
		parallel := func(f func(ref string) error) time.Duration {
			start := time.Now()
			var wg sync.WaitGroup
			work := make(chan string, n)
			for _, r := range refs {
				work <- r
			}
			close(work)
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ref := range work {
						if err := f(ref); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			return time.Since(start)
		}
		put := parallel(func(ref string) error {
			card := testCard(testPAN())
			return db.Apply(ctx, sterad.Change{
				SealCards: []sterad.SealCard{{Owner: sterad.VaultOwner(ref), Card: card}},
				PutVault: []*sterad.VaultEntry{{Reference: ref, MaskedPAN: card.PAN.Masked(), Brand: card.Brand,
					Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 22}}}},
			})
		})
		size1 := dirSize(b, dir)
		get := parallel(func(ref string) error {
			_, err := db.OpenCard(ctx, sterad.VaultOwner(ref))
			return err
		})
		purge := parallel(func(ref string) error {
			return db.Apply(ctx, sterad.Change{DestroyCards: []string{sterad.VaultOwner(ref)}, DeleteVault: []string{ref}})
		})
		size2 := dirSize(b, dir)
		st := db.Stats()
		db.Close()
		b.ReportMetric(put.Seconds(), "put-s")
		b.ReportMetric(get.Seconds(), "get-s")
		b.ReportMetric(purge.Seconds(), "purge-s")
		b.ReportMetric(float64(size0)/1e6, "MB-empty")
		b.ReportMetric(float64(size1)/1e6, "MB-after-put")
		b.ReportMetric(float64(size2)/1e6, "MB-after-purge")
		b.ReportMetric(float64(st.Commits), "commits")
	}
}

func dirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}
