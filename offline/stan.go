package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// STANs are handed out from memory. Before a terminal uses a STAN of a
// UTC day, the store has durably reserved it: bucket stan holds, per
// terminal and day, the highest STAN reserved, and reservations are made
// Options.STANBlock at a time. After a restart a terminal starts after its
// last reservation, so a STAN is never reused within a day; the unused
// rest of a block is skipped.
//
// Each day has its own record, so two callers whose now straddle midnight
// both get a STAN unique on their own day, and a clock that steps back
// resumes the earlier day where it stopped. Records are small (one per
// terminal per day) and are kept.

// stanReservation is the value of a stan record.
type stanReservation struct {
	Terminal string `json:"terminal"`
	Day      string `json:"day"` // YYYY-MM-DD, UTC
	Reserved int    `json:"reserved"`
}

// stanDays is the days a terminal keeps in memory; older days are read
// back from disk when asked for.
const stanDays = 3

type stanTerminal struct {
	mu   sync.Mutex
	days map[int]*stanDay // YYYYMMDD → counter
}

type stanDay struct {
	next     int          // the next STAN to hand out; 0 before the first reservation
	reserved int          // the highest STAN reserved on disk
	pending  *reservation // the reservation in flight, if any
}

// reservation is one block being reserved in the background.
type reservation struct {
	done chan struct{}
	err  error
}

// NextSTAN returns a STAN (1–999999) that terminalID has not used on the
// UTC day of now, durably: it is never handed out again after a restart.
// When a day's STANs are used up it returns an *sterad.Error of kind
// EInternal, code "stan_exhausted". Safe for concurrent use. Calls are
// served from memory; the next block is reserved in the background when
// half of the current one is used, so a caller waits for the disk only
// when STANs are drawn faster than a commit.
func (db *DB) NextSTAN(ctx context.Context, terminalID string, now time.Time) (sterad.STAN, error) {
	if terminalID == "" || len(terminalID) > maxKeyLen || strings.IndexByte(terminalID, 0) >= 0 {
		return 0, sterad.Errorf(sterad.EInvalid, "invalid_terminal", "terminal ID must have 1 to %d bytes and no NUL", maxKeyLen)
	}
	if db.isClosed.Load() {
		return 0, ErrClosed
	}
	y, m, d := now.UTC().Date()
	day := y*10000 + int(m)*100 + d

	v, ok := db.stan.Load(terminalID)
	if !ok {
		v, _ = db.stan.LoadOrStore(terminalID, &stanTerminal{days: make(map[int]*stanDay)})
	}
	st := v.(*stanTerminal)
	st.mu.Lock()
	c := st.days[day]
	if c == nil {
		c = &stanDay{}
		st.days[day] = c
		st.prune()
	}
	for c.next == 0 || c.next > c.reserved {
		if c.next != 0 && c.reserved >= int(sterad.MaxSTAN) {
			st.mu.Unlock()
			return 0, stanExhausted(terminalID, day)
		}
		r := c.pending
		if r == nil {
			r = db.reserveAsync(st, c, terminalID, day)
		}
		st.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if r.err != nil {
			return 0, r.err
		}
		st.mu.Lock()
	}
	s := c.next
	c.next++
	if c.pending == nil && c.reserved < int(sterad.MaxSTAN) && c.reserved-s < db.opts.STANBlock/2 {
		db.reserveAsync(st, c, terminalID, day)
	}
	st.mu.Unlock()
	return sterad.STAN(s), nil
}

// reserveAsync starts reserving the next block of c in the background.
// st.mu is held.
func (db *DB) reserveAsync(st *stanTerminal, c *stanDay, terminalID string, day int) *reservation {
	r := &reservation{done: make(chan struct{})}
	c.pending = r
	go func() {
		from, to, err := db.reserveSTANs(terminalID, day)
		st.mu.Lock()
		switch {
		case err != nil:
			r.err = err
		case c.next == 0 || c.next > c.reserved:
			// Nothing left in memory: start at the new block (after a
			// restart, the one after the last reservation).
			c.next, c.reserved = from, to
		default:
			// Blocks are contiguous: one process, one reservation in
			// flight per terminal and day.
			c.reserved = to
		}
		if from > to { // the day is used up
			c.next, c.reserved = int(sterad.MaxSTAN)+1, int(sterad.MaxSTAN)
		}
		c.pending = nil
		st.mu.Unlock()
		close(r.done)
	}()
	return r
}

// prune drops the oldest days from memory; their reservations stay on disk.
func (st *stanTerminal) prune() {
	for len(st.days) > stanDays {
		oldest := 0
		for d := range st.days {
			if oldest == 0 || d < oldest {
				oldest = d
			}
		}
		delete(st.days, oldest)
	}
}

func stanExhausted(terminalID string, day int) error {
	return sterad.Errorf(sterad.EInternal, "stan_exhausted", "terminal %s has used every STAN of %s", terminalID, dayString(day))
}

func dayString(day int) string {
	return fmt.Sprintf("%04d-%02d-%02d", day/10000, day/100%100, day%100)
}

// reserveSTANs durably reserves the next block of terminalID's STANs on
// day and returns it as from..to (from > to when the day is used up).
func (db *DB) reserveSTANs(terminalID string, day int) (from, to int, err error) {
	if err := db.enter(); err != nil {
		return 0, 0, err
	}
	defer db.leave()
	key := append(strKey(terminalID, ""), fmt.Sprintf("%08d", day)...)
	err = db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSTAN)
		r := stanReservation{Terminal: terminalID, Day: dayString(day)}
		if v := b.Get(key); v != nil {
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode reservation: %w", err)
			}
		}
		from = r.Reserved + 1
		if r.Reserved >= int(sterad.MaxSTAN) {
			to = r.Reserved
			return errNothing
		}
		r.Reserved = min(r.Reserved+db.opts.STANBlock, int(sterad.MaxSTAN))
		to = r.Reserved
		enc, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(key, enc)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("reserve STANs: %w", err)
	}
	return from, to, nil
}
