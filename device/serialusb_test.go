package device_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

func TestFindSerialPort(t *testing.T) {
	ports := []device.SerialPortInfo{
		{Name: "/dev/ttyS0"},
		{Name: "/dev/ttyACM0", USB: true, VID: 0x1234, PID: 0x5678, Serial: "A1"},
		{Name: "/dev/ttyACM1", USB: true, VID: 0x1234, PID: 0x5678, Serial: "B2"},
		{Name: "/dev/ttyUSB0", USB: true, VID: 0x0403, PID: 0x6001},
	}
	for _, tc := range []struct {
		sel  device.USBSelector
		want string // port, or part of the error
	}{
		{device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "B2"}, "/dev/ttyACM1"},
		{device.USBSelector{VID: 0x0403, PID: 0x6001}, "/dev/ttyUSB0"},
		{device.USBSelector{VID: 0x1234, PID: 0x5678}, `2 USB serial ports 1234:5678 are attached (serial numbers "A1", "B2")`},
		{device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "C3"}, `no USB serial port 1234:5678 with serial number "C3"`},
		{device.USBSelector{VID: 0, PID: 0}, "no USB serial port 0000:0000 is attached"}, // ttyS0 has no ids
	} {
		got, err := device.FindSerialPort(tc.sel, ports)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) || (err == nil) != strings.HasPrefix(tc.want, "/dev/") {
			t.Errorf("FindSerialPort(%v) = %q, %v; want %q", tc.sel, got, err, tc.want)
		}
	}
}

// A CDC-ACM handheld found by its USB ids: plugged back, it comes up on
// another ttyACM number, and the session finds it there.
func TestSerialByUSBReplugOnAnotherPort(t *testing.T) {
	dir := t.TempDir()
	acm0, acm1 := filepath.Join(dir, "ttyACM0"), filepath.Join(dir, "ttyACM1")
	sel := device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "H1"}
	var mu sync.Mutex
	var ports []device.SerialPortInfo
	setPorts := func(p ...device.SerialPortInfo) {
		mu.Lock()
		ports = p
		mu.Unlock()
	}
	list := func() ([]device.SerialPortInfo, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]device.SerialPortInfo(nil), ports...), nil
	}
	handheld := func(name string) device.SerialPortInfo {
		return device.SerialPortInfo{Name: name, USB: true, VID: 0x1234, PID: 0x5678, Serial: "H1", Product: "ST-M1"}
	}
	other := device.SerialPortInfo{Name: "/dev/ttyACM9", USB: true, VID: 0x1234, PID: 0x5678, Serial: "OTHER"}

	resp := protocol.HelloResp{Proto: 1, TerminalID: "HAND0001", Kind: sterad.KindHandheld, BootID: "h-boot-1"}
	termOpts := protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond}
	p1 := plugPTY(t, acm0)
	ft := startFakeTerminal(t, p1.master, resp, termOpts)
	defer ft.close()
	setPorts(device.SerialPortInfo{Name: "/dev/ttyS0"}, handheld(acm0), other)

	cfg := device.SessionConfig{
		ID: "HAND0001", Kind: sterad.KindHandheld, Transport: "serial", USB: sel.String(),
		Open:      device.SerialByUSBWith(sel, 0, list),
		GatewayID: "gw-test", BootID: "gw-boot-1",
		Link:    protocol.LinkOptions{T1: 100 * time.Millisecond, T2: 500 * time.Millisecond},
		T3:      2 * time.Second,
		Backoff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
	}
	s := startSession(t, cfg)
	waitReady(t, s)
	if info := s.Info(); info.Path != acm0 || info.USB != "1234:5678/H1" || info.Transport != "serial" {
		t.Fatalf("Info = %+v", info)
	}

	// Unplugged: the port disappears from the list.
	setPorts(device.SerialPortInfo{Name: "/dev/ttyS0"}, other)
	ft.close()
	p1.unplug()
	eventually(t, "offline, the handheld not found", func() bool {
		info := s.Info()
		return info.State == sterad.TerminalOffline && strings.Contains(info.LastError, `no USB serial port 1234:5678 with serial number "H1"`)
	})
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard = %v", err)
	}

	// Plugged back as ttyACM1.
	p2 := plugPTY(t, acm1)
	ft2 := startFakeTerminal(t, p2.master, resp, termOpts)
	defer ft2.close()
	setPorts(device.SerialPortInfo{Name: "/dev/ttyS0"}, other, handheld(acm1))
	waitReady(t, s)
	if info := s.Info(); info.Path != acm1 || info.State != sterad.TerminalReady {
		t.Fatalf("Info after the re-plug = %+v", info)
	}
}

func TestSerialByUSBErrors(t *testing.T) {
	sel := device.USBSelector{VID: 0x1234, PID: 0x5678}
	failing := func() ([]device.SerialPortInfo, error) { return nil, errors.New("sysfs unreadable") }
	if _, err := device.SerialByUSBWith(sel, 0, failing)(context.Background()); err == nil || !strings.Contains(err.Error(), "usb 1234:5678: sysfs unreadable") {
		t.Fatalf("open with a failing list = %v", err)
	}
	ports := func() ([]device.SerialPortInfo, error) {
		return []device.SerialPortInfo{{Name: filepath.Join(t.TempDir(), "gone"), USB: true, VID: 0x1234, PID: 0x5678}}, nil
	}
	if _, err := device.SerialByUSBWith(sel, 0, ports)(context.Background()); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("open of a port that vanished = %v", err)
	}
	if _, err := device.SerialByUSBWith(sel, 57600, ports)(context.Background()); sterad.ErrorCode(err) != "invalid_baud" {
		t.Fatalf("baud 57600 = %v", err)
	}
}
