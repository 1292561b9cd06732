package device

import (
	"context"
	"fmt"
	"io"
)

// SerialByUSB returns an Opener for a handheld that presents itself as a
// USB CDC-ACM serial port (/dev/ttyACM*), found by USB vendor and product
// id (and serial number) through go.bug.st/serial's enumerator on every
// open: plugged back, it is found again even under another ttyACM number.
// baud is as for SerialOpener. The stream reports the port it opened to
// the session, so the terminal's Info shows it as Path.
func SerialByUSB(sel USBSelector, baud int) Opener {
	return serialByUSB(sel, baud, ListSerialPorts)
}

func serialByUSB(sel USBSelector, baud int, list func() ([]SerialPortInfo, error)) Opener {
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		if err := CheckBaud(baud); err != nil {
			return nil, fmt.Errorf("usb %s: %w", sel, err)
		}
		ports, err := list()
		if err != nil {
			return nil, fmt.Errorf("usb %s: %w", sel, err)
		}
		name, err := FindSerialPort(sel, ports)
		if err != nil {
			return nil, err
		}
		rw, err := SerialOpener(name, baud)(ctx)
		if err != nil {
			return nil, fmt.Errorf("usb %s: %w", sel, err)
		}
		return namedStream{rw, name}, nil
	}
}

// namedStream is a stream that knows which port it is on.
type namedStream struct {
	io.ReadWriteCloser
	name string
}

// PortName is the port the stream was opened on.
func (n namedStream) PortName() string { return n.name }
