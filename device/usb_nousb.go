//go:build nousb

package device

import (
	"context"
	"fmt"
	"io"
)

// USBSupported reports whether this build drives USB bulk terminals. This
// one was built with the nousb tag: it does not.
const USBSupported = false

// USBOpener returns an Opener that always fails with ErrNoUSBSupport: this
// sterad was built with the nousb tag, without gousb and libusb.
func USBOpener(sel USBSelector) Opener {
	return func(context.Context) (io.ReadWriteCloser, error) {
		return nil, fmt.Errorf("usb %s: %w", sel, ErrNoUSBSupport)
	}
}

// ListUSBDevices returns ErrNoUSBSupport in a build with the nousb tag.
func ListUSBDevices() ([]USBDeviceInfo, error) { return nil, ErrNoUSBSupport }

func usbTimeout(error) bool  { return false }
func usbNoDevice(error) bool { return false }
