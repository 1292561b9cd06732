package device_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

// usbConfig is testConfig for a handheld on the fake USB bus.
func usbConfig(b *bench, logs *logBuffer) device.SessionConfig {
	cfg := testConfig(b, logs)
	cfg.ID, cfg.Kind, cfg.Transport, cfg.Path, cfg.USB = "HAND0001", sterad.KindHandheld, "usb", "", "1234:5678"
	b.setResp(func(r *protocol.HelloResp) {
		r.TerminalID, r.Kind, r.Model, r.Caps = "HAND0001", sterad.KindHandheld, "ST-M1", []string{"chip", "ctls", "keyed", "printer"}
	})
	return cfg
}

func TestUSBSessionSale(t *testing.T) {
	b := newBench(t)
	devices := usbBench(b)
	logs := &logBuffer{}
	s := startSession(t, usbConfig(b, logs))
	ft := b.next()
	waitReady(t, s)
	info := s.Info()
	if info.ID != "HAND0001" || info.Kind != sterad.KindHandheld || info.Transport != "usb" || info.USB != "1234:5678" ||
		info.Path != "" || info.State != sterad.TerminalReady || info.Model != "ST-M1" {
		t.Fatalf("Info = %+v", info)
	}

	order := &orderLog{}
	persist := func(c *sterad.Card) error {
		order.add("gateway persisted the card")
		return nil
	}
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-usb"), persist) })
	var rc protocol.ReadCard
	ft.expectMsg(protocol.TypeReadCard, &rc)
	if rc.TxnID != "txn-usb" || rc.Amount != "12800" {
		t.Fatalf("READ_CARD = %+v", rc)
	}
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-usb", Code: protocol.ProgressPresentCard, TimeoutS: 60})
	// The customer takes a moment: IN transfers time out meanwhile,
	// which must not disturb the link.
	f := devices()[0]
	eventually(t, "IN transfers timing out", func() bool { return f.inTimeouts.Load() >= 3 })
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-usb", Entry: "ctls", PAN: testPAN, Expiry: "3012", ICC: "9f2608aabbccddeeff0011"})
	order.add("terminal saw the ACK")
	card, err := await(t, res)
	if err != nil || card.PAN.Reveal() != testPAN || card.Entry != sterad.EntryContactless {
		t.Fatalf("ReadCard = %v, %v", card, err)
	}
	if got := order.list(); !slices.Equal(got, []string{"gateway persisted the card", "terminal saw the ACK"}) {
		t.Fatalf("order = %v: the card must be persisted before the ACK", got)
	}
	out := async(func() (sterad.TerminalResult, error) {
		return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-usb", Status: "approved", Code: "00",
			Amount: sterad.NewAmount(12800, sterad.JPY), MaskedPAN: card.PAN.Masked(), Lines: []string{"SALE"}},
			func(r sterad.TerminalResult) error { order.add("gateway persisted the result"); return nil })
	})
	ft.expect(protocol.TypeOutcome)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-usb", Code: protocol.ProgressPrinting})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-usb", Status: "done", Printed: true})
	order.add("terminal saw the RESULT's ACK")
	if r, err := await(t, out); err != nil || r.Status != "done" {
		t.Fatalf("ShowOutcome = %+v, %v", r, err)
	}
	if got := order.list()[2:]; !slices.Equal(got, []string{"gateway persisted the result", "terminal saw the RESULT's ACK"}) {
		t.Fatalf("order = %v", got)
	}
	// The frames really were fragmented (7 bytes per IN transfer).
	if n := f.inCalls.Load(); n < 20 {
		t.Fatalf("%d IN transfers: the fake did not fragment the stream", n)
	}
	if strings.Contains(logs.String(), testPAN) || strings.Contains(logs.String(), "aabbccdd") {
		t.Fatalf("logs show card data:\n%s", logs)
	}
}

func TestUSBSessionUnplugReplugDuringTransaction(t *testing.T) {
	b := newBench(t)
	devices := usbBench(b)
	logs := &logBuffer{}
	cfg := usbConfig(b, logs)
	reconnects := make(chan bool, 4)
	cfg.OnReconnect = func(_ sterad.TerminalInfo, bootChanged bool) { reconnects <- bootChanged }
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)

	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})

	// Unplugged while the customer looks for the card: the transfers fail
	// with no-device, the call fails, the terminal is offline at once.
	b.setMissing(true)
	devices()[0].unplug()
	start := time.Now()
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ReadCard = %v, want ErrLinkFailed", err)
	}
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	if d := time.Since(start); d > time.Second {
		t.Errorf("offline %v after the unplug", d)
	}
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while unplugged = %v", err)
	}
	eventually(t, "the unplug logged", func() bool { return logs.count("terminal link down") > 0 })
	if device.USBSupported && !strings.Contains(logs.String(), "unplugged") {
		t.Errorf("the log does not say the device was unplugged:\n%s", logs)
	}
	eventually(t, "the old stream released", func() bool { return devices()[0].released.Load() == 1 })
	if n := devices()[0].releasedIn.Load(); n != 0 {
		t.Fatalf("released with %d transfers in flight", n)
	}
	eventually(t, "the opener polled", func() bool { return b.opens.Load() >= 3 })
	if le := s.Info().LastError; !strings.Contains(le, "no USB device 1234:5678") {
		t.Fatalf("LastError while unplugged = %q", le)
	}

	// Plugged back (the terminal rebooted, as a bus-powered handheld
	// does): found by the reconnect loop, ready, and reconciled.
	b.setResp(func(r *protocol.HelloResp) { r.BootID = "term-boot-2" })
	b.setMissing(false)
	ft2 := b.next()
	waitReady(t, s)
	select {
	case changed := <-reconnects:
		if !changed {
			t.Fatal("OnReconnect: boot change not reported")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	q := async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-1") })
	ft2.expect(protocol.TypeStatusQuery)
	ft2.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-1", State: protocol.StateUnknown})
	if st, err := await(t, q); err != nil || st.State != "unknown" {
		t.Fatalf("Query = %+v, %v", st, err)
	}
	if info := s.Info(); info.State != sterad.TerminalReady || info.BootID != "term-boot-2" || info.LastError != "" {
		t.Fatalf("Info after re-plug = %+v", info)
	}
	_ = ft
}
