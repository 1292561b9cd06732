package main

import (
	"fmt"

	"github.com/sterad/sterad/device"
)

// terminalLink is how a configured terminal is reached: the session's
// opener, and how its Info describes the transport.
type terminalLink struct {
	Open      device.Opener
	Transport string // "serial" or "usb"
	Path      string // the serial port, when configured by path
	USB       string // "vid:pid[/serial]", when configured by USB ids
}

// terminalTransport picks the transport of a configured terminal:
//   - port: the serial port (RS-232, a CDC-ACM handheld by path, a pty);
//   - usb with acm false: the handheld's vendor-specific bulk interface,
//     through gousb (an error wrapping device.ErrNoUSBSupport in a build
//     with the nousb tag);
//   - usb with acm true: a CDC-ACM handheld's serial port, found by its USB
//     ids through the serial enumerator on every connection attempt.
func terminalTransport(t TerminalConfig, acm bool) (terminalLink, error) {
	if t.USB == nil {
		return terminalLink{Open: device.SerialOpener(t.Port, t.Baud), Transport: "serial", Path: t.Port}, nil
	}
	sel, err := device.ParseUSBSelector(t.USB.VID, t.USB.PID, t.USB.Serial)
	if err != nil {
		return terminalLink{}, err
	}
	if acm {
		return terminalLink{Open: device.SerialByUSB(sel, t.Baud), Transport: "serial", USB: sel.String()}, nil
	}
	if !device.USBSupported {
		return terminalLink{}, fmt.Errorf("usb %s: %w", sel, device.ErrNoUSBSupport)
	}
	return terminalLink{Open: device.USBOpener(sel), Transport: "usb", USB: sel.String()}, nil
}

// usbDeviceKey is the key under which Config.Validate can detect two
// terminals on the same USB device: the ids parsed, so that "0x1234" and
// "1234" are the same vendor.
func usbDeviceKey(u *USBConfig) (string, error) {
	sel, err := device.ParseUSBSelector(u.VID, u.PID, u.Serial)
	if err != nil {
		return "", err
	}
	return "usb:" + sel.String(), nil
}
