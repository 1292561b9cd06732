package main

import (
	"errors"
	"testing"

	"github.com/sterad/sterad/device"
)

func TestTerminalTransport(t *testing.T) {
	l, err := terminalTransport(TerminalConfig{ID: "FRONT001", Port: "/dev/ttyS0"}, false)
	if err != nil || l.Transport != "serial" || l.Path != "/dev/ttyS0" || l.USB != "" || l.Open == nil {
		t.Fatalf("serial: %+v, %v", l, err)
	}
	usb := &USBConfig{VID: "0x1234", PID: "5678", Serial: "H1"}
	l, err = terminalTransport(TerminalConfig{ID: "HAND0001", USB: usb}, true)
	if err != nil || l.Transport != "serial" || l.USB != "1234:5678/H1" || l.Path != "" {
		t.Fatalf("cdc-acm: %+v, %v", l, err)
	}
	l, err = terminalTransport(TerminalConfig{ID: "HAND0001", USB: usb}, false)
	if device.USBSupported {
		if err != nil || l.Transport != "usb" || l.USB != "1234:5678/H1" {
			t.Fatalf("usb: %+v, %v", l, err)
		}
	} else if !errors.Is(err, device.ErrNoUSBSupport) {
		t.Fatalf("usb in a nousb build: %v", err)
	}
	if _, err := terminalTransport(TerminalConfig{ID: "HAND0001", USB: &USBConfig{VID: "0xZZ", PID: "1"}}, false); err == nil {
		t.Fatal("bad vid accepted")
	}
	a, _ := usbDeviceKey(&USBConfig{VID: "0x1234", PID: "0x5678"})
	b, _ := usbDeviceKey(&USBConfig{VID: "1234", PID: "5678"})
	if a != b || a != "usb:1234:5678" {
		t.Fatalf("keys %q %q", a, b)
	}
}
