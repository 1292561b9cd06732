package offline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

func nextSTAN(t testing.TB, db interface {
	NextSTAN(context.Context, string, time.Time) (sterad.STAN, error)
}, terminal string, now time.Time) sterad.STAN {
	t.Helper()
	s, err := db.NextSTAN(context.Background(), terminal, now)
	if err != nil {
		t.Fatalf("NextSTAN(%s, %v): %v", terminal, now, err)
	}
	return s
}

// TestNextSTANUnique draws 10,000 STANs from 100 goroutines for one
// terminal, with a block size that forces many reservations under
// contention.
func TestNextSTANUnique(t *testing.T) {
	for _, block := range []int{7, 100} {
		t.Run(map[int]string{7: "block7", 100: "block100"}[block], func(t *testing.T) {
			o := testOptions()
			o.STANBlock = block
			db, _ := open(t, o)
			const goroutines, each = 100, 100
			got := make([][]sterad.STAN, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for range each {
						s, err := db.NextSTAN(context.Background(), "TRM00001", t0)
						if err != nil {
							t.Error(err)
							return
						}
						got[g] = append(got[g], s)
					}
				})
			}
			wg.Wait()
			seen := make(map[sterad.STAN]bool)
			for _, ss := range got {
				for _, s := range ss {
					if s < 1 || s > sterad.MaxSTAN {
						t.Fatalf("STAN %d out of range", s)
					}
					if seen[s] {
						t.Fatalf("STAN %d handed out twice", s)
					}
					seen[s] = true
				}
			}
			if len(seen) != goroutines*each {
				t.Errorf("%d distinct STANs, want %d", len(seen), goroutines*each)
			}
			// No restart: nothing is skipped.
			if s := nextSTAN(t, db, "TRM00001", t0); s != goroutines*each+1 {
				t.Errorf("next STAN = %d, want %d", s, goroutines*each+1)
			}
		})
	}
}

func TestNextSTANSurvivesReopen(t *testing.T) {
	o := testOptions()
	db, dir := open(t, o)
	var last sterad.STAN
	for range 150 {
		last = max(last, nextSTAN(t, db, "TRM00001", t0))
	}
	other := nextSTAN(t, db, "TRM00002", t0)
	db.Close()

	db = reopen(t, dir, o)
	if s := nextSTAN(t, db, "TRM00001", t0); s <= last {
		t.Errorf("first STAN after reopen = %d, want > %d", s, last)
	}
	if s := nextSTAN(t, db, "TRM00002", t0); s <= other {
		t.Errorf("other terminal after reopen = %d, want > %d", s, other)
	}
	db.Close()
	if _, err := db.NextSTAN(context.Background(), "TRM00001", t0); !errors.Is(err, offline.ErrClosed) {
		t.Errorf("NextSTAN after Close = %v, want ErrClosed", err)
	}
	db = reopen(t, dir, o)
	// Reopen twice without drawing in between: still never reused.
	db.Close()
	db = reopen(t, dir, o)
	s1 := nextSTAN(t, db, "TRM00001", t0)
	db.Close()
	db = reopen(t, dir, o)
	if s2 := nextSTAN(t, db, "TRM00001", t0); s2 <= s1 {
		t.Errorf("STAN after second reopen = %d, want > %d", s2, s1)
	}
}

// TestNextSTANDayRollover takes now from a FakeClock around midnight UTC
// (09:00 in Japan).
func TestNextSTANDayRollover(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	clock := sterad.NewFakeClock(time.Date(2025, 3, 15, 8, 59, 58, 0, jst)) // 23:59:58 UTC on the 14th
	o := testOptions()
	o.Clock = clock
	db, dir := open(t, o)

	day1 := clock.Now()
	for want := sterad.STAN(1); want <= 3; want++ {
		if s := nextSTAN(t, db, "TRM00001", clock.Now()); s != want {
			t.Fatalf("day 1: STAN %d, want %d", s, want)
		}
	}
	clock.Advance(2 * time.Second) // 00:00:00 UTC on the 15th
	if s := nextSTAN(t, db, "TRM00001", clock.Now()); s != 1 {
		t.Errorf("new UTC day: STAN %d, want 1", s)
	}
	if s := nextSTAN(t, db, "TRM00002", clock.Now()); s != 1 {
		t.Errorf("other terminal: STAN %d, want 1", s)
	}
	// A caller whose now was taken just before midnight still gets a STAN
	// unique on its own day.
	if s := nextSTAN(t, db, "TRM00001", day1); s != 4 {
		t.Errorf("late caller from day 1: STAN %d, want 4", s)
	}
	if s := nextSTAN(t, db, "TRM00001", clock.Now()); s != 2 {
		t.Errorf("day 2 again: STAN %d, want 2", s)
	}
	// Several days later, then back to day 1 after a restart: day 1
	// resumes after its reservation.
	for range 5 {
		clock.Advance(24 * time.Hour)
		if s := nextSTAN(t, db, "TRM00001", clock.Now()); s != 1 {
			t.Errorf("day %v: STAN %d, want 1", clock.Now().UTC().Format(time.DateOnly), s)
		}
	}
	if s := nextSTAN(t, db, "TRM00001", day1); s <= 4 {
		t.Errorf("day 1 after it left memory: STAN %d, want > 4", s)
	}
	db.Close()
	db = reopen(t, dir, o)
	if s := nextSTAN(t, db, "TRM00001", day1); s <= 4 {
		t.Errorf("day 1 after reopen: STAN %d, want > 4", s)
	}
}

func TestNextSTANExhausted(t *testing.T) {
	o := testOptions()
	o.STANBlock = 400_000
	db, dir := open(t, o)
	ctx := context.Background()
	for want := sterad.STAN(1); want <= sterad.MaxSTAN; want++ {
		s, err := db.NextSTAN(ctx, "TRM00001", t0)
		if err != nil || s != want {
			t.Fatalf("NextSTAN = %d, %v; want %d", s, err, want)
		}
	}
	for range 2 {
		_, err := db.NextSTAN(ctx, "TRM00001", t0)
		if !isKind(err, sterad.EInternal, "stan_exhausted") {
			t.Fatalf("NextSTAN after 999999 = %v, want EInternal stan_exhausted", err)
		}
	}
	if s := nextSTAN(t, db, "TRM00002", t0); s != 1 {
		t.Errorf("other terminal: %d, want 1", s)
	}
	if s := nextSTAN(t, db, "TRM00001", t0.Add(24*time.Hour)); s != 1 {
		t.Errorf("next day: %d, want 1", s)
	}
	db.Close()
	db = reopen(t, dir, o)
	if _, err := db.NextSTAN(ctx, "TRM00001", t0); !isKind(err, sterad.EInternal, "stan_exhausted") {
		t.Errorf("after reopen: %v, want stan_exhausted", err)
	}
}

func TestNextSTANInvalidTerminal(t *testing.T) {
	db, _ := open(t, testOptions())
	for _, id := range []string{"", "a\x00b"} {
		if _, err := db.NextSTAN(context.Background(), id, t0); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("NextSTAN(%q) = %v, want EInvalid", id, err)
		}
	}
}
