//go:build usbhw && !nousb

package device_test

// The USB hardware test: run on a machine with a handheld attached (see
// USB.md). It is compiled only with the usbhw tag and skipped unless
// -usb.vid and -usb.pid are given. It runs no card transaction.

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

var (
	hwVID    = flag.String("usb.vid", "", "vendor id of the handheld, e.g. 0x1234")
	hwPID    = flag.String("usb.pid", "", "product id of the handheld")
	hwSerial = flag.String("usb.serial", "", "serial number, when several are attached")
	hwID     = flag.String("usb.id", "", "terminal_id the handheld must announce (default: whatever it says)")
	hwReplug = flag.Bool("usb.replug", false, "also ask the operator to unplug and re-plug the handheld")
	hwPings  = flag.Int("usb.pings", 20, "PING/PONG round trips to time")
)

func TestUSBHardware(t *testing.T) {
	if *hwVID == "" || *hwPID == "" {
		t.Skip("pass -usb.vid and -usb.pid (see device/USB.md)")
	}
	sel, err := device.ParseUSBSelector(*hwVID, *hwPID, *hwSerial)
	if err != nil {
		t.Fatal(err)
	}

	// 1. Discovery sees it, with its vendor bulk interface.
	res, err := device.Discover()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range res.USBDevices {
		if uint16(d.VID) == sel.VID && uint16(d.PID) == sel.PID {
			found = true
			t.Logf("found %s:%s serial %q %q %q, SFL/1 interface: %v %s", d.VID, d.PID, d.Serial, d.Manufacturer, d.Product, d.IsTerminalCandidate(), d.Error)
		}
	}
	if !found {
		t.Fatalf("Discover does not list %s (USB: %s)", sel, res.USBError)
	}

	// 2. The raw stream: HELLO and PINGs over the bulk endpoints.
	rw, err := device.USBOpener(sel)(context.Background())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	hello := make(chan protocol.HelloResp, 1)
	pong := make(chan struct{}, 1)
	link := protocol.NewLink(rw, func(f protocol.Frame) error {
		switch f.Type {
		case protocol.TypeHelloResp:
			var r protocol.HelloResp
			if err := protocol.UnmarshalPayload(f, &r); err != nil {
				t.Errorf("HELLO_RESP: %v", err)
			}
			select {
			case hello <- r:
			default:
			}
		case protocol.TypePong:
			select {
			case pong <- struct{}{}:
			default:
			}
		}
		return nil
	}, protocol.LinkOptions{})
	go link.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, _ := protocol.MarshalPayload(protocol.Hello{Proto: protocol.SFLProto, GatewayID: "usbhw-test", BootID: "usbhw"})
	if err := link.Send(ctx, protocol.TypeHello, b); err != nil {
		t.Fatalf("HELLO: %v", err)
	}
	var resp protocol.HelloResp
	select {
	case resp = <-hello:
	case <-ctx.Done():
		t.Fatal("no HELLO_RESP")
	}
	t.Logf("HELLO_RESP: proto %d, terminal %s, kind %s, model %s, fw %s, caps %v, busy %v",
		resp.Proto, resp.TerminalID, resp.Kind, resp.Model, resp.FW, resp.Caps, resp.Busy)
	if resp.Proto != protocol.SFLProto {
		t.Fatalf("proto %d", resp.Proto)
	}
	if *hwID != "" && resp.TerminalID != *hwID {
		t.Fatalf("terminal_id %q, want %q", resp.TerminalID, *hwID)
	}
	var worst, total time.Duration
	for i := 0; i < *hwPings; i++ {
		start := time.Now()
		if err := link.Send(ctx, protocol.TypePing, nil); err != nil {
			t.Fatalf("PING %d: %v", i, err)
		}
		select {
		case <-pong:
		case <-time.After(protocol.T3):
			t.Fatalf("no PONG to PING %d", i)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	if *hwPings > 0 {
		t.Logf("PING→PONG over USB: mean %v, worst %v (%d round trips)", total/time.Duration(*hwPings), worst, *hwPings)
	}
	if st := link.Stats(); st.Retransmits > 0 || st.NAKsReceived > 0 || st.NoiseBytes > 0 {
		t.Errorf("link stats %+v: a clean USB link has no retransmissions, NAKs or noise", st)
	}
	link.Close()

	// 3. A session: ready, Info, and (with -usb.replug) unplug and re-plug.
	reconnected := make(chan bool, 4)
	s := startSession(t, device.SessionConfig{
		ID: resp.TerminalID, Kind: sterad.KindHandheld, Transport: "usb", USB: sel.String(),
		Open: device.USBOpener(sel), GatewayID: "usbhw-test", BootID: "usbhw-2",
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnReconnect: func(_ sterad.TerminalInfo, boot bool) { reconnected <- boot },
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatalf("session: %v (%+v)", err, s.Info())
	}
	t.Logf("session ready: %+v", s.Info())
	if !*hwReplug {
		return
	}
	t.Log("UNPLUG the handheld now (60 s)")
	unplugged := time.Now()
	for s.Info().State != sterad.TerminalOffline {
		if time.Since(unplugged) > 60*time.Second {
			t.Fatal("not unplugged within 60 s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	t.Logf("offline: %s", s.Info().LastError)
	t.Log("PLUG it back now (60 s)")
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	if err := s.WaitReady(rctx); err != nil {
		t.Fatalf("not ready again: %v (%+v)", err, s.Info())
	}
	select {
	case boot := <-reconnected:
		t.Logf("ready again; terminal restarted: %v", boot)
	case <-time.After(5 * time.Second):
		t.Error("OnReconnect not called")
	}
}
