package terminal_test

import (
	"context"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

func TestFaultDropACK(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	before := term.LinkStats()

	mustFault(t, term, terminal.FaultDropACK, 1, 0)
	g.send(protocol.TypePing, nil) // returns once the retransmission is acknowledged
	g.expect(protocol.TypePong, nil)
	gs, ts := g.link.Stats(), term.LinkStats()
	if gs.Retransmits != 1 {
		t.Errorf("gateway retransmits = %d, want 1", gs.Retransmits)
	}
	if d := ts.Duplicates - before.Duplicates; d != 1 {
		t.Errorf("terminal duplicates = %d, want 1", d)
	}
	if n := ts.FramesReceived - before.FramesReceived; n != 1 {
		t.Errorf("terminal delivered PING %d times, want once", n)
	}

	// Lost ACKs in the middle of a sale: each request is handled once.
	mustFault(t, term, terminal.FaultDropACK, 2, 0)
	if r := g.sale("T1"); r.Status != "done" {
		t.Errorf("sale: %+v", r)
	}
	if n := g.link.Stats().Retransmits; n != 3 {
		t.Errorf("gateway retransmits = %d, want 3", n)
	}
	if n := term.LinkStats().Duplicates - before.Duplicates; n != 3 {
		t.Errorf("terminal duplicates = %d, want 3", n)
	}
	if n := len(term.Slips()); n != 1 {
		t.Errorf("%d slips, want 1", n)
	}
	if f := term.State().Faults; f.DropACK != 0 {
		t.Errorf("drop_ack still armed: %+v", f)
	}
}

func TestFaultBadCRC(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustFault(t, term, terminal.FaultBadCRC, 1, 0)
	g.send(protocol.TypePing, nil)
	g.expect(protocol.TypePong, nil)
	if n := g.link.Stats().NAKsSent; n != 1 {
		t.Errorf("gateway NAKs = %d, want 1", n)
	}
	if ts := term.LinkStats(); ts.NAKsReceived != 1 || ts.Retransmits != 1 {
		t.Errorf("terminal NAKs received %d, retransmits %d, want 1 and 1", ts.NAKsReceived, ts.Retransmits)
	}

	mustFault(t, term, terminal.FaultBadCRC, 3, 0)
	if r := g.sale("T1"); r.Status != "done" {
		t.Errorf("sale: %+v", r)
	}
	if n := g.link.Stats().NAKsSent; n != 4 {
		t.Errorf("gateway NAKs = %d, want 4", n)
	}
}

func TestFaultTruncate(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustFault(t, term, terminal.FaultTruncate, 1, 0)
	g.send(protocol.TypePing, nil)
	g.expect(protocol.TypePong, nil)
	if n := g.link.Stats().NAKsSent; n != 1 {
		t.Errorf("gateway NAKs = %d, want 1", n)
	}
	if ts := term.LinkStats(); ts.NAKsReceived != 1 || ts.Retransmits != 1 {
		t.Errorf("terminal NAKs received %d, retransmits %d, want 1 and 1", ts.NAKsReceived, ts.Retransmits)
	}

	// PROGRESS and CARD cut in half.
	mustFault(t, term, terminal.FaultTruncate, 2, 0)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if c := g.card("T1"); c.PAN != terminal.DefaultPAN {
		t.Error("CARD damaged")
	}
	if n := g.link.Stats().NAKsSent; n != 3 {
		t.Errorf("gateway NAKs = %d, want 3", n)
	}
}

func TestFaultGarbage(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustFault(t, term, terminal.FaultGarbage, 4, 0)
	if r := g.sale("T1"); r.Status != "done" {
		t.Errorf("sale: %+v", r)
	}
	gs := g.link.Stats()
	if gs.NoiseBytes < 4*24 {
		t.Errorf("gateway counted %d noise bytes, want at least %d", gs.NoiseBytes, 4*24)
	}
	if gs.NAKsSent != 0 || term.LinkStats().Retransmits != 0 {
		t.Errorf("noise caused NAKs (%d) or retransmissions (%d)", gs.NAKsSent, term.LinkStats().Retransmits)
	}
	if f := term.State().Faults; f.Garbage != 0 {
		t.Errorf("garbage still armed: %+v", f)
	}
}

func TestFaultSilence(t *testing.T) {
	term := newTerminal(t)
	fast := gwLink
	fast.T2 = 50 * time.Millisecond // fails after 150 ms, well inside the silence
	g, errc := serve(t, term, fast)
	boot := g.hello().BootID
	received := term.LinkStats().FramesReceived

	mustFault(t, term, terminal.FaultSilence, 0, 600)
	if !term.State().Faults.Silent {
		t.Fatal("not silent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := g.link.Send(ctx, protocol.TypePing, nil); !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("PING during silence: %v, want link failure", err)
	}
	if err := serveErr(t, errc); err == nil || errors.Is(err, terminal.ErrUnplugged) {
		t.Errorf("Serve = %v, want the line's failure (the gateway closed it)", err)
	}
	if n := term.LinkStats().FramesReceived; n != received {
		t.Errorf("the terminal received %d frames while silent", n-received)
	}

	testutil.Eventually(t, "the end of the silence", func() bool { return !term.State().Faults.Silent })
	g2, r := connect(t, term)
	if r.BootID != boot {
		t.Errorf("boot_id changed")
	}
	if res := g2.sale("T1"); res.Status != "done" {
		t.Errorf("sale after silence: %+v", res)
	}
}

func TestFaultUnplugServe(t *testing.T) {
	term := newTerminal(t)
	g, errc := serve(t, term, gwLink)
	boot := g.hello().BootID
	mustFault(t, term, terminal.FaultUnplug, 0, 250)

	err := serveErr(t, errc)
	var u *terminal.UnplugError
	if !errors.Is(err, terminal.ErrUnplugged) || !errors.As(err, &u) || u.Down != 250*time.Millisecond || u.Reboot {
		t.Fatalf("Serve = %v (%+v), want unplugged for 250ms", err, u)
	}
	if err := linkDone(t, g); err == nil {
		t.Error("gateway link ended without error")
	}
	if term.State().Connected {
		t.Error("still connected")
	}
	// Unplugging nothing does nothing.
	mustFault(t, term, terminal.FaultUnplug, 0, 0)

	g2, r := connect(t, term)
	if r.BootID != boot {
		t.Error("boot_id changed on unplug")
	}
	g2.sale("T1")
}

func TestFaultReboot(t *testing.T) {
	term := newTerminal(t)
	g, errc := serve(t, term, gwLink)
	boot := g.hello().BootID
	done := g.sale("A")

	mustPush(t, term, terminal.Card{Action: terminal.ActionWalkaway})
	mustPush(t, term, terminal.Card{PAN: "5555555555554444"})
	g.send(protocol.TypeReadCard, readCard("B"))
	g.progress("B", protocol.ProgressPresentCard)

	mustFault(t, term, terminal.FaultReboot, 0, 0)
	err := serveErr(t, errc)
	var u *terminal.UnplugError
	if !errors.As(err, &u) || !u.Reboot || u.Down != terminal.DefaultRebootDown {
		t.Fatalf("Serve = %v, want a reboot", err)
	}
	linkDone(t, g)

	g2, r := connect(t, term)
	if r.BootID == boot || r.BootID != term.BootID() {
		t.Errorf("boot_id %s after reboot, was %s", r.BootID, boot)
	}
	if r.Busy || r.CurrentTxn != nil {
		t.Errorf("busy after reboot: %+v", r)
	}
	if st := g2.status("B"); st.State != "unknown" {
		t.Errorf("lost txn: %+v", st)
	}
	if st := g2.status("A"); st.State != "done" || st.Result == nil || *st.Result != done {
		t.Errorf("journaled txn: %+v", st)
	}
	if n := len(term.Slips()); n != 1 {
		t.Errorf("%d slips after reboot, want 1", n)
	}
	// Queued cards survive; the next READ_CARD gets the next one.
	g2.send(protocol.TypeReadCard, readCard("C"))
	g2.progress("C", protocol.ProgressPresentCard)
	if c := g2.card("C"); c.PAN != "5555555555554444" {
		t.Error("queued card lost on reboot")
	}
}

func TestFaultInvalid(t *testing.T) {
	term := newTerminal(t)
	for _, f := range []struct {
		kind      string
		count, ms int
	}{{"meteor", 1, 0}, {"", 0, 0}, {"drop_ack", -1, 0}, {"silence", 0, -5}} {
		if err := term.Fault(f.kind, f.count, f.ms); err == nil {
			t.Errorf("Fault(%q, %d, %d) accepted", f.kind, f.count, f.ms)
		}
	}
}

func TestServeOneLineAtATime(t *testing.T) {
	term := newTerminal(t)
	serve(t, term, gwLink)
	testutil.Eventually(t, "connected", func() bool { return term.State().Connected })
	a, b := net.Pipe()
	defer b.Close()
	if err := term.Serve(context.Background(), a); !errors.Is(err, terminal.ErrAlreadyServing) {
		t.Errorf("second Serve = %v", err)
	}
}

// Frames left unacknowledged make the terminal's link fail; the terminal
// starts a new link on the same line and answers the next HELLO. The CARD
// that was never acknowledged leaves the transaction in waiting_card, and
// a replayed READ_CARD gets it.
func TestLinkRestartOnSameLine(t *testing.T) {
	term := newTerminal(t, func(c *terminal.Config) { c.Link.T2 = 50 * time.Millisecond })
	var drop atomic.Bool
	lossy := gwLink
	lossy.WriteHook = func(f protocol.Frame, b []byte, retx bool) []byte {
		if drop.Load() && f.Type == protocol.TypeACK && f.Seq != 0 {
			return nil // the gateway's ACKs are lost
		}
		return b
	}
	g, errc := serve(t, term, lossy)
	g.hello()
	drop.Store(true)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	// PROGRESS fails after its retransmissions; the CARD queued behind it
	// is dropped with the link.
	testutil.Eventually(t, "the CARD to be given up", func() bool { return term.State().State == terminal.StateWaitingCard })
	drop.Store(false)

	r := g.hello()
	if !r.Busy || r.CurrentTxn == nil || *r.CurrentTxn != "T1" {
		t.Errorf("HELLO_RESP after the restart: %+v", r)
	}
	if st := g.status("T1"); st.State != "waiting_card" {
		t.Errorf("STATUS_RESP = %+v, want waiting_card", st)
	}
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.card("T1")
	if st := g.status("T1"); st.State != "card_sent" {
		t.Errorf("STATUS_RESP = %+v, want card_sent", st)
	}
	g.send(protocol.TypeOutcome, outcome("T1"))
	g.progress("T1", protocol.ProgressPrinting)
	g.result("T1")
	select {
	case err := <-errc:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
}

// A HELLO starts a new session: frames queued for the old one are dropped.
// The frame on the wire (PROGRESS, its ACKs lost) completes first; the
// CARD queued behind it is dropped, so the transaction is waiting_card.
func TestHelloDropsQueuedFrames(t *testing.T) {
	term := newTerminal(t, func(c *terminal.Config) { c.Link.T2 = 300 * time.Millisecond })
	var drop atomic.Bool
	lossy := gwLink
	lossy.WriteHook = func(f protocol.Frame, b []byte, retx bool) []byte {
		if drop.Load() && f.Type == protocol.TypeACK && f.Seq != 0 {
			return nil
		}
		return b
	}
	g, _ := serve(t, term, lossy)
	g.hello()
	drop.Store(true)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard) // PROGRESS and CARD were queued together
	g.send(protocol.TypeHello, protocol.Hello{Proto: 1, GatewayID: "GW"})
	drop.Store(false)

	var r protocol.HelloResp
	g.expect(protocol.TypeHelloResp, &r)
	if !r.Busy || r.CurrentTxn == nil || *r.CurrentTxn != "T1" {
		t.Errorf("HELLO_RESP = %+v", r)
	}
	if st := g.status("T1"); st.State != "waiting_card" {
		t.Errorf("STATUS_RESP = %+v, want waiting_card", st)
	}
	if c := term.LinkStats(); c.Retransmits == 0 {
		t.Error("PROGRESS was never retransmitted: the test did not test anything")
	}
	g.cancel("T1")
	g.result("T1")
}
