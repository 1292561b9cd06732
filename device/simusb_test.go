package device_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

// simPort plugs a simulated terminal (simulator/terminal) into the
// session: every open while plugged makes a new transport (a fake USB
// device, or an in-memory pipe) and serves the terminal on its far end.
type simPort struct {
	t       *testing.T
	term    *terminal.Terminal
	usb     bool
	ctx     context.Context
	mu      sync.Mutex
	plugged bool
	devs    []*fakeUSB
	wg      sync.WaitGroup
}

func newSimPort(t *testing.T, cfg terminal.Config, usb bool) *simPort {
	cfg.Link = protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 250 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	p := &simPort{t: t, term: terminal.New(cfg), usb: usb, ctx: ctx, plugged: true}
	t.Cleanup(func() {
		cancel()
		p.wg.Wait()
	})
	return p
}

func (p *simPort) setPlugged(v bool) {
	p.mu.Lock()
	p.plugged = v
	p.mu.Unlock()
}

func (p *simPort) lastUSB() *fakeUSB {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.devs[len(p.devs)-1]
}

func (p *simPort) open(context.Context) (io.ReadWriteCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.plugged {
		if p.usb {
			return nil, errors.New("no USB device 1234:5678 is attached")
		}
		return nil, errors.New("open serial port /dev/ttyFAKE: no such file or directory")
	}
	var gw, term io.ReadWriteCloser
	if p.usb {
		f := newFakeUSB()
		f.inChunk, f.outChunk = 7, 5
		p.devs = append(p.devs, f)
		gw = f.stream(device.BulkStreamOptions{Name: "usb 1234:5678", ReadTimeout: 5 * time.Millisecond, ReadSize: 64})
		term = f.dev()
	} else {
		gw, term = newPipe()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.term.Serve(p.ctx, term)
	}()
	return gw, nil
}

func simSessionConfig(p *simPort, id, kind string) device.SessionConfig {
	cfg := device.SessionConfig{
		ID: id, Kind: kind, Transport: "serial", Path: "/dev/ttyFAKE", Open: p.open,
		GatewayID: "gw-test", BootID: "gw-boot-1",
		Link:         protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 250 * time.Millisecond},
		T3:           2 * time.Second,
		T4:           5 * time.Second,
		PingInterval: 200 * time.Millisecond,
		Backoff:      []time.Duration{5 * time.Millisecond, 10 * time.Millisecond},
		HelloTimeout: 2 * time.Second,
	}
	if p.usb {
		cfg.Transport, cfg.Path, cfg.USB = "usb", "", "1234:5678"
	}
	return cfg
}

// sale runs a sale at s: the card, persisted before ReadCard returns it
// (the order against the ACK is checked with the scripted terminal, in
// TestUSBSessionSale), then the outcome.
func sale(ctx context.Context, s *device.Session, txnID string) (*sterad.Card, error) {
	var persisted *sterad.Card
	card, err := s.ReadCard(ctx, saleRequest(txnID), func(c *sterad.Card) error {
		persisted = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if persisted != card {
		return nil, fmt.Errorf("ReadCard returned a card that was not persisted")
	}
	r, err := s.ShowOutcome(ctx, sterad.TerminalOutcome{TxnID: txnID, Status: "approved", Code: "00",
		Amount: sterad.NewAmount(12800, sterad.JPY), MaskedPAN: card.MaskedPAN(), Lines: []string{"SALE"}}, nil)
	if err != nil {
		return nil, err
	}
	if r.Status != "done" {
		return nil, fmt.Errorf("result %+v", r)
	}
	return card, nil
}

func TestUSBSessionSimulatedHandheld(t *testing.T) {
	p := newSimPort(t, terminal.Config{Kind: sterad.KindHandheld}, true)
	reconnects := make(chan bool, 4)
	cfg := simSessionConfig(p, "HAND0001", sterad.KindHandheld)
	cfg.RequireP2PE = true // the simulated handheld encrypts by default
	cfg.OnReconnect = func(_ sterad.TerminalInfo, bootChanged bool) { reconnects <- bootChanged }
	s := startSession(t, cfg)
	waitReady(t, s)
	info := s.Info()
	if info.Kind != sterad.KindHandheld || info.Model != terminal.DefaultHandheldModel ||
		!slices.Equal(info.Caps, terminal.DefaultHandheldCaps) || info.USB != "1234:5678" {
		t.Fatalf("Info = %+v, want the handheld's profile", info)
	}

	p.term.PushCard(terminal.Card{PAN: "5555555555554444", Entry: "ctls"})
	card, err := sale(context.Background(), s, "txn-h1")
	if err != nil {
		t.Fatal(err)
	}
	if card.PAN != "" || card.Masked != "555555******4444" || card.Brand != sterad.BrandMastercard || card.Encrypted == nil {
		t.Fatalf("card %v masked %s brand %v: want an encrypted card", card.PAN, card.Masked, card.Brand)
	}
	if c := decryptCard(t, card); c.PAN != "5555555555554444" {
		t.Fatalf("the block holds another card: %v", c)
	}
	if slips := p.term.Slips(); len(slips) != 1 || slips[0].TxnID != "txn-h1" {
		t.Fatalf("slips %+v", slips)
	}

	// Unplugged while the customer looks for the card (the simulator's
	// reboot fault: a bus-powered handheld restarts when unplugged), and
	// kept unplugged until the test plugs it back.
	p.term.PushCard(terminal.Card{DelayMS: 60_000})
	res := async(func() (*sterad.Card, error) {
		return s.ReadCard(context.Background(), saleRequest("txn-h2"), noPersist)
	})
	eventually(t, "the terminal waiting for the card", func() bool { return p.term.State().State == terminal.StateWaitingCard })
	p.setPlugged(false)
	if err := p.term.Fault(terminal.FaultReboot, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ReadCard across the unplug = %v, want ErrLinkFailed", err)
	}
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-h3"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while unplugged = %v", err)
	}
	first := p.lastUSB()
	eventually(t, "the old device released", func() bool { return first.released.Load() == 1 })

	// Plugged back: ready without a restart; the rebooted terminal lost
	// the transaction, as STATUS_QUERY says.
	p.setPlugged(true)
	waitReady(t, s)
	select {
	case changed := <-reconnects:
		if !changed {
			t.Fatal("the reboot was not reported")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	st, err := s.Query(context.Background(), "txn-h2")
	if err != nil || st.State != protocol.StateUnknown {
		t.Fatalf("Query = %+v, %v", st, err)
	}
	if _, err := sale(context.Background(), s, "txn-h4"); err != nil {
		t.Fatalf("sale after the re-plug: %v", err)
	}
}
