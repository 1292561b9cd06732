package device_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sterad/sterad/device"
)

func TestDiscoverOnThisMachine(t *testing.T) {
	res, err := device.Discover()
	if err != nil {
		t.Fatalf("Discover = %v", err)
	}
	// Whatever the machine has: no failure, every listing either has
	// entries (possibly none) or says why not.
	if res.SerialPorts == nil || res.USBDevices == nil {
		t.Fatalf("nil lists: %+v", res)
	}
	if res.USBError != "" && !strings.HasPrefix(res.USBError, "not available: ") {
		t.Fatalf("USBError = %q", res.USBError)
	}
	if !device.USBSupported && !strings.Contains(res.USBError, "built without USB support") {
		t.Fatalf("USBError in a nousb build = %q", res.USBError)
	}
	b, _ := json.Marshal(res)
	t.Logf("%s", b)
}

func TestDiscoverReportsWhatIsMissing(t *testing.T) {
	ports := func() ([]device.SerialPortInfo, error) {
		return []device.SerialPortInfo{{Name: "/dev/ttyACM0", USB: true, VID: 0x1234, PID: 0x5678, Serial: "H1"}}, nil
	}
	noUSB := func() ([]device.USBDeviceInfo, error) {
		return nil, errors.New("no USB subsystem on this machine (/sys/bus/usb is missing)")
	}
	res, err := device.DiscoverWith(ports, noUSB)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.SerialPorts) != 1 || res.USBError != "not available: no USB subsystem on this machine (/sys/bus/usb is missing)" || res.USBDevices == nil {
		t.Fatalf("%+v", res)
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"usb_devices":[]`) || !strings.Contains(string(b), `"vid":"1234"`) {
		t.Fatalf("JSON %s", b)
	}
	noPorts := func() ([]device.SerialPortInfo, error) { return nil, errors.New("no /dev") }
	res, err = device.DiscoverWith(noPorts, noUSB)
	if err == nil || res.SerialError != "not available: no /dev" {
		t.Fatalf("both missing: %+v, %v", res, err)
	}
}
