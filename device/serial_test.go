package device_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

// ptyPair is a pseudo-terminal whose slave is reachable at a symlink: the
// gateway opens the symlink as its serial port, the fake terminal plays on
// the master.
type ptyPair struct {
	master *os.File // pollable: Close wakes a pending Read
	slave  *os.File // held open until the pair is unplugged
}

// plugPTY opens a new pty and points linkPath at its slave.
func plugPTY(t *testing.T, linkPath string) *ptyPair {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	// pty.Open leaves the master in blocking mode, where Close does not
	// wake a Read: use a non-blocking duplicate, which os.NewFile polls.
	fd, err := syscall.Dup(int(m.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	p := &ptyPair{master: os.NewFile(uintptr(fd), "ptmx"), slave: s}
	tmp := linkPath + ".new"
	os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, linkPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.unplug)
	return p
}

// unplug closes both sides: the gateway's reads fail with EIO.
func (p *ptyPair) unplug() {
	p.master.Close()
	p.slave.Close()
}

func TestSerialOpenerPTY(t *testing.T) {
	port := filepath.Join(t.TempDir(), "ttyTERM0")
	resp := protocol.HelloResp{Proto: 1, TerminalID: testID, Kind: sterad.KindFixed, Model: "ST-100", FW: "2.0", BootID: "pty-boot-1", Caps: []string{"chip"}}
	termOpts := protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond}

	p1 := plugPTY(t, port)
	ft := startFakeTerminal(t, p1.master, resp, termOpts)
	defer ft.close()

	reconnects := make(chan bool, 4)
	cfg := device.SessionConfig{
		ID:           testID,
		Kind:         sterad.KindFixed,
		Transport:    "serial",
		Path:         port,
		Open:         device.SerialOpener(port, 115200),
		GatewayID:    "gw-test",
		BootID:       "gw-boot-1",
		Link:         protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond},
		T3:           2 * time.Second,
		Backoff:      []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		PingInterval: 50 * time.Millisecond,
		OnReconnect:  func(_ sterad.TerminalInfo, bootChanged bool) { reconnects <- bootChanged },
	}
	s := startSession(t, cfg)
	waitReady(t, s)
	if info := s.Info(); info.State != sterad.TerminalReady || info.Path != port || info.Firmware != "2.0" {
		t.Fatalf("Info = %+v", info)
	}

	// A sale over the pty.
	res := async(func() (*sterad.Card, error) {
		return s.ReadCard(context.Background(), saleRequest("txn-pty"), noPersist)
	})
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-pty", Code: protocol.ProgressPresentCard})
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-pty", Entry: "chip", PAN: testPAN, Expiry: "3012", ICC: "9f2701"})
	card, err := await(t, res)
	if err != nil || card.PAN.Reveal() != testPAN {
		t.Fatalf("ReadCard = %v, %v", card, err)
	}
	out := async(func() (sterad.TerminalResult, error) {
		return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-pty", Status: "approved", Code: "00",
			Amount: sterad.NewAmount(12800, sterad.JPY), MaskedPAN: card.PAN.Masked()}, nil)
	})
	ft.expect(protocol.TypeOutcome)
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-pty", Status: "done", Printed: true})
	if r, err := await(t, out); err != nil || r.Status != "done" {
		t.Fatalf("ShowOutcome = %+v, %v", r, err)
	}
	eventually(t, "PINGs over the pty", func() bool { return ft.pings.Load() >= 2 })

	// Unplug: the gateway goes offline.
	ft.close()
	p1.unplug()
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while unplugged = %v", err)
	}

	// A new pty at the same path: ready again.
	p2 := plugPTY(t, port)
	resp.BootID = "pty-boot-2"
	ft2 := startFakeTerminal(t, p2.master, resp, termOpts)
	defer ft2.close()
	waitReady(t, s)
	select {
	case changed := <-reconnects:
		if !changed {
			t.Fatal("OnReconnect: boot change not reported")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	if info := s.Info(); info.BootID != "pty-boot-2" {
		t.Fatalf("Info after replug = %+v", info)
	}
	res2 := async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-pty") })
	ft2.expect(protocol.TypeStatusQuery)
	ft2.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-pty", State: protocol.StateDone})
	if st, err := await(t, res2); err != nil || st.State != "done" {
		t.Fatalf("Query after replug = %+v, %v", st, err)
	}
}

func TestSerialOpenerErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ttyNONE")
	_, err := device.SerialOpener(missing, 0)(context.Background())
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("open of a missing port = %v, want an error naming it", err)
	}
	_, err = device.SerialOpener(missing, 57600)(context.Background())
	if sterad.ErrorCode(err) != "invalid_baud" || !strings.Contains(err.Error(), missing) {
		t.Fatalf("baud 57600 = %v, want invalid_baud naming the port", err)
	}
	for _, b := range []int{0, 9600, 19200, 38400, 115200} {
		if err := device.CheckBaud(b); err != nil {
			t.Errorf("CheckBaud(%d) = %v", b, err)
		}
	}
	for _, b := range []int{-1, 300, 57600, 230400} {
		if err := device.CheckBaud(b); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("CheckBaud(%d) = %v, want EInvalid", b, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := device.SerialOpener(missing, 0)(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled context = %v", err)
	}
}

func TestSerialOpenerPTYBauds(t *testing.T) {
	port := filepath.Join(t.TempDir(), "ttyTERM1")
	plugPTY(t, port)
	for _, b := range device.Bauds {
		rw, err := device.SerialOpener(port, b)(context.Background())
		if err != nil {
			t.Fatalf("open at %d baud: %v", b, err)
		}
		rw.Close()
	}
}

// A fixed terminal's cable pulled while the customer looks for the card,
// then plugged back.
func TestSerialUnplugReplugDuringTransaction(t *testing.T) {
	port := filepath.Join(t.TempDir(), "ttyTERM2")
	resp := protocol.HelloResp{Proto: 1, TerminalID: testID, Kind: sterad.KindFixed, BootID: "pty-boot-1"}
	termOpts := protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond}
	p1 := plugPTY(t, port)
	ft := startFakeTerminal(t, p1.master, resp, termOpts)
	defer ft.close()
	reconnects := make(chan bool, 4)
	s := startSession(t, device.SessionConfig{
		ID: testID, Kind: sterad.KindFixed, Path: port, Open: device.SerialOpener(port, 0),
		Link:        protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond},
		Backoff:     []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		OnReconnect: func(_ sterad.TerminalInfo, bootChanged bool) { reconnects <- bootChanged },
	})
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) {
		return s.ReadCard(context.Background(), saleRequest("txn-u"), noPersist)
	})
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-u", Code: protocol.ProgressPresentCard})
	ft.close()
	p1.unplug()
	start := time.Now()
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ReadCard across the unplug = %v, want ErrLinkFailed", err)
	}
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	if d := time.Since(start); d > time.Second {
		t.Errorf("offline %v after the unplug", d)
	}
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-v"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while unplugged = %v", err)
	}

	p2 := plugPTY(t, port)
	ft2 := startFakeTerminal(t, p2.master, resp, termOpts)
	defer ft2.close()
	waitReady(t, s)
	select {
	case changed := <-reconnects:
		if changed {
			t.Fatal("same boot reported as a restart")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	q := async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-u") })
	ft2.expect(protocol.TypeStatusQuery)
	ft2.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-u", State: protocol.StateWaitingCard})
	if st, err := await(t, q); err != nil || st.State != "waiting_card" {
		t.Fatalf("Query after the re-plug = %+v, %v", st, err)
	}
}
