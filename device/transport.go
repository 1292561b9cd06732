package device

import (
	"context"
	"fmt"
	"io"

	"go.bug.st/serial"

	"github.com/sterad/sterad"
)

// Opener opens the byte stream to a terminal. Session.Run calls it on
// every connection attempt; ctx ends when the session stops. The stream's
// Close must wake a pending Read.
type Opener func(ctx context.Context) (io.ReadWriteCloser, error)

// DefaultBaud is the SFL/1 line speed (docs/terminal-protocol.md §1).
const DefaultBaud = 115200

// Bauds are the line speeds SFL/1 allows.
var Bauds = []int{9600, 19200, 38400, 115200}

// CheckBaud returns an EInvalid error unless baud is one of Bauds or 0
// (the default).
func CheckBaud(baud int) error {
	if baud == 0 {
		return nil
	}
	for _, b := range Bauds {
		if b == baud {
			return nil
		}
	}
	return sterad.Errorf(sterad.EInvalid, "invalid_baud", "baud rate %d is not one of 9600, 19200, 38400, 115200", baud)
}

// SerialOpener returns an Opener for the serial port at path: 8N1, no flow
// control, baud (0 means DefaultBaud). A USB CDC-ACM terminal
// (/dev/ttyACM0) and a pseudo-terminal's slave work the same way. A baud
// rate SFL/1 does not allow is a configuration error that every open
// returns; cmd should call CheckBaud when it loads the configuration.
// Errors name the port, never data.
func SerialOpener(path string, baud int) Opener {
	if baud == 0 {
		baud = DefaultBaud
	}
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		if err := CheckBaud(baud); err != nil {
			return nil, fmt.Errorf("serial port %s: %w", path, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := serial.Open(path, &serial.Mode{
			BaudRate: baud,
			DataBits: 8,
			Parity:   serial.NoParity,
			StopBits: serial.OneStopBit,
		})
		if err != nil {
			return nil, fmt.Errorf("open serial port %s: %w", path, err)
		}
		// Bytes left over from a previous session are noise at best.
		_ = p.ResetInputBuffer()
		return p, nil
	}
}
