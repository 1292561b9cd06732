package terminal_test

import (
	"testing"

	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

// no_result: the OUTCOME is acknowledged and ignored; the transaction
// stays card_sent until an OUTCOME is handled again.
func TestFaultNoResult(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustFault(t, term, terminal.FaultNoResult, 1, 0)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	g.card("T1")
	g.send(protocol.TypeOutcome, outcome("T1")) // acknowledged, nothing follows
	if st := g.status("T1"); st.State != protocol.StateCardSent {
		t.Fatalf("STATUS_RESP %+v, want card_sent", st)
	}
	if n := len(term.Slips()); n != 0 || term.State().Faults.NoResult != 0 {
		t.Fatalf("%d slips, faults %+v", n, term.State().Faults)
	}
	g.send(protocol.TypeOutcome, outcome("T1"))
	g.progress("T1", protocol.ProgressPrinting)
	if r := g.result("T1"); r.Status != "done" {
		t.Fatalf("RESULT %+v", r)
	}
}

// A queued card's track2 and brand replace the card's own.
func TestCardTrack2AndBrand(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	const t2 = "5555555555554444=2812101000"
	mustPush(t, term, terminal.Card{PAN: "4111111111111111", Entry: "swipe", Track2: t2, Brand: "amex"})
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if c := g.card("T1"); c.PAN != "4111111111111111" || c.Track2 != t2 || c.Brand != "amex" {
		t.Fatalf("CARD entry %s brand %s, track 2 replaced %v", c.Entry, c.Brand, c.Track2 == t2)
	}
	for _, bad := range []terminal.Card{{Brand: "discover"}, {Track2: "4111\n"}} {
		if err := term.PushCard(bad); err == nil {
			t.Errorf("PushCard(%v) accepted", bad)
		}
	}
}
