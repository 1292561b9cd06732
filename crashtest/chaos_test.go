//go:build linux

package crashtest

import (
	"math/rand/v2"
	"time"
)

// chaosStats counts what the chaos did.
type chaosStats struct {
	Cycles, Kills, Outages, Delays, Drops, Unplugs, BatchCloses, KillsInOutage int
}

// chaos kills the daemon once per cycle at a random moment and, between
// kills, breaks the acquirer link and the terminal. All its choices come
// from one seeded source; it runs on the test goroutine.
type chaos struct {
	h     *harness
	rng   *rand.Rand
	stats chaosStats

	outage    bool
	outageEnd time.Time
	delay     bool
	delayEnd  time.Time
}

func newChaos(h *harness, seed uint64) *chaos {
	return &chaos{h: h, rng: rand.New(rand.NewPCG(seed, 0))}
}

func (c *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)+1))
}

func (c *chaos) check(err error) {
	if err != nil {
		c.h.t.Fatalf("chaos: %v", err)
	}
}

// cycle runs faults for a random part of d, then kills the daemon and
// restarts it.
func (c *chaos) cycle(d time.Duration) {
	h := c.h
	c.stats.Cycles++
	killAt := time.Now().Add(c.between(d/2, d))
	nextEvent := time.Now().Add(c.between(100*time.Millisecond, 600*time.Millisecond))
	for {
		wake := killAt
		for _, at := range []time.Time{nextEvent, c.outageEnd, c.delayEnd} {
			if !at.IsZero() && at.Before(wake) {
				wake = at
			}
		}
		timer := time.NewTimer(time.Until(wake))
		<-timer.C // the chaos schedule itself: nothing is being waited for
		now := time.Now()
		if c.outage && !now.Before(c.outageEnd) {
			h.note("outage off")
			c.check(h.setOutage(false))
			c.outage, c.outageEnd = false, time.Time{}
		}
		if c.delay && !now.Before(c.delayEnd) {
			h.note("delay 0")
			c.check(h.setDelay(0))
			c.delay, c.delayEnd = false, time.Time{}
		}
		if !now.Before(killAt) {
			c.stats.Kills++
			if c.outage {
				c.stats.KillsInOutage++
			}
			h.restartDaemon()
			if c.delay {
				// A delay beyond the timeout would keep the sign-on
				// failing while this loop waits for the link.
				h.note("delay 0 (restart)")
				c.check(h.setDelay(0))
				c.delay, c.delayEnd = false, time.Time{}
			}
			if !c.outage {
				h.waitOnline()
			}
			return
		}
		if !now.Before(nextEvent) {
			c.event()
			nextEvent = time.Now().Add(c.between(100*time.Millisecond, 600*time.Millisecond))
		}
	}
}

// Faults the chaos injects between kills, with weights (out of chaosTotal;
// the rest of the time nothing happens).
var chaosWeights = []struct {
	name   string
	weight int
}{{"outage", 4}, {"delay", 6}, {"drop", 6}, {"unplug", 4}, {"close", 1}}

const chaosTotal = 24

// event injects one random fault (or none).
func (c *chaos) event() {
	h := c.h
	x, kind := c.rng.IntN(chaosTotal), ""
	for _, w := range chaosWeights {
		if x < w.weight {
			kind = w.name
			break
		}
		x -= w.weight
	}
	switch kind {
	case "outage": // acquirer outage: connections closed and refused
		if c.outage {
			return
		}
		d := c.between(300*time.Millisecond, 1500*time.Millisecond)
		h.note("outage on for %s", d)
		c.check(h.setOutage(true))
		c.outage, c.outageEnd = true, time.Now().Add(d)
		c.stats.Outages++
	case "delay": // responses delayed around the 1 s timeout
		ms := []int{int(c.between(200, 800)), int(c.between(800, 1200)), int(c.between(1000, 1500))}[c.rng.IntN(3)]
		d := c.between(500*time.Millisecond, 2*time.Second)
		h.note("delay %d ms for %s", ms, d)
		c.check(h.setDelay(ms))
		c.delay, c.delayEnd = true, time.Now().Add(d)
		c.stats.Delays++
	case "drop": // responses processed by the host, then lost
		n := 1 + c.rng.IntN(3)
		h.note("drop %d", n)
		c.check(h.drop(n))
		c.stats.Drops++
	case "unplug": // a terminal's cable pulled
		ms := int(c.between(200, 1500))
		i := c.rng.IntN(len(deskTIDs))
		h.note("unplug terminal %s for %d ms", deskTIDs[i], ms)
		c.check(h.unplug(i, ms))
		c.stats.Unplugs++
	case "close": // the batch closes while all this goes on
		if *flagNoClose {
			return
		}
		err := h.startClose()
		h.note("batch close started: %v", err)
		c.stats.BatchCloses++
	}
}

// finish ends every fault.
func (c *chaos) finish() {
	c.h.note("chaos over: faults cleared")
	c.h.clearFaults()
	c.outage, c.delay = false, false
	c.outageEnd, c.delayEnd = time.Time{}, time.Time{}
}
