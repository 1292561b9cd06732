//go:build !usbhw

package device_test

import "testing"

// TestUSBHardware runs against a real handheld only when built with the
// usbhw tag (usbhw_test.go); see USB.md.
func TestUSBHardware(t *testing.T) {
	t.Skip("hardware test: go test -tags usbhw -run USBHardware ./device/ -usb.vid=0x… -usb.pid=0x… (see device/USB.md)")
}
