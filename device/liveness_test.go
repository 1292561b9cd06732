package device_test

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

var realTimers = flag.Bool("device.realtime", false, "also measure the time to offline of a silent terminal with the spec's timers (about 7 s)")

// silentTerminal connects a session with the given timers to a fake
// terminal, lets one PING be answered, then switches the terminal off
// (not even an ACK comes back) and returns how long the session took to
// show it offline.
func silentTerminal(t *testing.T, b *bench, cfg device.SessionConfig) (*device.Session, *fakeTerminal, time.Duration) {
	t.Helper()
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	eventually(t, "a PING answered", func() bool { return ft.pings.Load() >= 1 })
	ft.mute.Store(true)
	off := time.Now()
	deadline := off.Add(30 * time.Second)
	for s.Info().State != sterad.TerminalOffline {
		if time.Now().After(deadline) {
			t.Fatalf("still %s 30 s after the terminal went silent", s.Info().State)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return s, ft, time.Since(off)
}

func TestSessionSilentTerminalOfflineAfterPingT2(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	cfg := testConfig(b, logs)
	cfg.PingInterval = 60 * time.Millisecond
	cfg.Link.T2 = 80 * time.Millisecond
	// The link itself holds on much longer: the recovery below happens
	// before it would fail.
	cfg.Link.MaxRetransmits = 25
	s, ft, took := silentTerminal(t, b, cfg)
	bound := s.OfflineWithin()
	if bound != cfg.PingInterval+cfg.Link.T2 {
		t.Fatalf("OfflineWithin = %v", bound)
	}
	// Far from the link's own failure (25 retransmissions × T2 = 2 s):
	// a loose bound, so that a loaded machine does not fail it.
	if slack := time.Second; took > bound+slack {
		t.Errorf("offline %v after the terminal went silent, bound %v", took, bound)
	}
	t.Logf("offline %v after the terminal went silent (bound %v)", took, bound)
	info := s.Info()
	if !strings.Contains(info.LastError, "no answer to PING") {
		t.Fatalf("Info = %+v", info)
	}
	if n := b.opens.Load(); n != 1 {
		t.Fatalf("%d opens: the link must still be up, only shown offline", n)
	}

	// New transactions fail at once.
	start := time.Now()
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard = %v, want ErrTerminalOffline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ReadCard took %v to fail", d)
	}
	ready := async(func() (struct{}, error) { return struct{}{}, s.WaitReady(context.Background()) })

	// The terminal answers again (a retransmitted PING is acknowledged):
	// ready, on the same link.
	ft.mute.Store(false)
	if _, err := await(t, ready); err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.State != sterad.TerminalReady || info.LastError != "" {
		t.Fatalf("Info after the ACK = %+v", info)
	}
	if n := b.opens.Load(); n != 1 {
		t.Fatalf("%d opens: recovered by reconnecting, not by the ACK", n)
	}
	// The line is written as the state changes, not before WaitReady
	// returns: wait for it.
	eventually(t, "the log to say the terminal answers again", func() bool { return logs.count("terminal answering again") >= 1 })
	if logs.count("PING unanswered") != 1 || logs.count("terminal answering again") != 1 {
		t.Errorf("logs:\n%s", logs)
	}
	// And it works.
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-2", Entry: "chip", PAN: testPAN, Expiry: "3012"})
	if _, err := await(t, res); err != nil {
		t.Fatal(err)
	}
}

func TestSessionSilentTerminalLinkStillFails(t *testing.T) {
	// Shown offline after T2, and the link fails after the spec's
	// retransmissions as before: reconnect, HELLO.
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.PingInterval = 40 * time.Millisecond
	cfg.Link.T2 = 40 * time.Millisecond
	b.keepLine = true
	_, _, took := silentTerminal(t, b, cfg)
	if took > 40*time.Millisecond+40*time.Millisecond+100*time.Millisecond {
		t.Errorf("offline after %v", took)
	}
	b.next() // the session reopened the port after the link failed
}

func TestSessionOfflineBoundWithDefaults(t *testing.T) {
	// With the spec's timers: PING after 5 s of silence, unacknowledged
	// for T2 = 2 s: offline 7 s after the last traffic, within the 10 s
	// goal (the link itself fails at 5 + 3 × 2 = 11 s).
	s := device.NewSession(device.SessionConfig{ID: "FRONT001"})
	if got := s.OfflineWithin(); got != 7*time.Second {
		t.Fatalf("OfflineWithin = %v, want 7s", got)
	}
	if s.OfflineWithin() > 10*time.Second {
		t.Fatal("the 10 s goal is not met with the defaults")
	}
	if !*realTimers {
		t.Skip("measured with real timers only with -device.realtime (about 7 s)")
	}
	b := newBench(t)
	b.termOpts = protocol.LinkOptions{}
	b.keepLine = true
	cfg := testConfig(b, &logBuffer{})
	cfg.PingInterval, cfg.Link, cfg.T3 = 0, protocol.LinkOptions{}, 0
	s, _, took := silentTerminal(t, b, cfg)
	t.Logf("offline %v after the terminal went silent, with the default timers (bound %v)", took, s.OfflineWithin())
	if took > s.OfflineWithin()+200*time.Millisecond || took > 10*time.Second {
		t.Fatalf("offline after %v", took)
	}
}

func TestSessionUnknownKindLogged(t *testing.T) {
	b := newBench(t)
	b.setResp(func(r *protocol.HelloResp) { r.Kind = "kiosk" })
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	b.next()
	waitReady(t, s)
	if info := s.Info(); info.Kind != sterad.KindFixed || info.State != sterad.TerminalReady {
		t.Fatalf("Info = %+v, want the configured kind", info)
	}
	eventually(t, "the unknown kind logged", func() bool {
		return logs.count("unknown kind") == 1 && strings.Contains(logs.String(), "announced=kiosk")
	})
}
