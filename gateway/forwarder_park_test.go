package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
)

// During an outage each stand-in is parked once it is older than max_age,
// also one queued after the forwarder last looked at the queue.
func TestParkedDuringOutage(t *testing.T) {
	h := newHarness(t)
	h.host.online.Store(false)
	ctx := context.Background()
	first := presentSale(h, "1000")
	h.gw.LinkChanged(sterad.LinkStatus{Online: true}) // a pass: nothing old enough yet
	h.clock.Advance(10 * time.Hour)
	second := presentSale(h, "1000")
	parked := func() map[string]bool {
		q, _ := h.gw.Queue(ctx)
		p := map[string]bool{}
		for _, it := range q {
			p[it.TxnID] = it.Parked
		}
		return p
	}

	h.clock.Advance(39 * time.Hour) // the first is 49 h old (max_age is 48h), the second 39 h
	h.gw.LinkChanged(sterad.LinkStatus{Online: true})
	testutil.Eventually(t, "the first stand-in parked", func() bool { return parked()[first.ID] })
	if p := parked(); len(p) != 2 || p[second.ID] {
		t.Fatalf("queue after 49 h: %v", p)
	}

	h.clock.Advance(10 * time.Hour) // the second is 49 h old
	h.gw.LinkChanged(sterad.LinkStatus{Online: true})
	testutil.Eventually(t, "the second stand-in parked", func() bool { return parked()[second.ID] })
}
