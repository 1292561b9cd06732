package device_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sterad/sterad/device"
)

// On a machine without the device (this one has no USB at all), the USB
// opener fails with an error naming the device, and never panics, so the
// session keeps polling for it.
func TestUSBOpenerWithoutTheDevice(t *testing.T) {
	sel := device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "H1"}
	_, err := device.USBOpener(sel)(context.Background())
	if err == nil {
		t.Skip("a USB device 1234:5678 with serial H1 is attached to this machine")
	}
	t.Logf("open: %v", err)
	if device.USBSupported {
		if !strings.Contains(err.Error(), "1234:5678") {
			t.Fatalf("error does not name the device: %v", err)
		}
	} else if !errors.Is(err, device.ErrNoUSBSupport) ||
		!strings.Contains(err.Error(), "this sterad was built without USB support (tag nousb): a USB terminal cannot be used; rebuild with cgo and libusb, or use its CDC-ACM serial port") {
		t.Fatalf("nousb build: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := device.USBOpener(sel)(ctx); device.USBSupported && !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled context = %v", err)
	}
}

func TestListUSBDevices(t *testing.T) {
	devs, err := device.ListUSBDevices()
	if !device.USBSupported {
		if !errors.Is(err, device.ErrNoUSBSupport) {
			t.Fatalf("nousb build: %v", err)
		}
		return
	}
	// This machine may have no USB subsystem: then a clear error.
	if err != nil {
		t.Logf("no USB here: %v", err)
		return
	}
	for _, d := range devs {
		t.Logf("%04x:%04x bus %d addr %d candidate %v", uint16(d.VID), uint16(d.PID), d.Bus, d.Address, d.IsTerminalCandidate())
	}
}
