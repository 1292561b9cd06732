package device

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// USBID is a USB vendor or product id. It prints, and marshals, as four
// lowercase hexadecimal digits, as lsusb shows it.
type USBID uint16

func (id USBID) String() string { return fmt.Sprintf("%04x", uint16(id)) }

// MarshalText writes the id as four hexadecimal digits.
func (id USBID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText accepts what ParseUSBID accepts.
func (id *USBID) UnmarshalText(b []byte) error {
	v, err := ParseUSBID(string(b))
	if err != nil {
		return err
	}
	*id = USBID(v)
	return nil
}

// SerialPortInfo is a serial port found by Discover: a UART, a USB serial
// adapter or a CDC-ACM handheld.
type SerialPortInfo struct {
	Name         string `json:"name"`                   // /dev/ttyS0, /dev/ttyACM0
	USB          bool   `json:"usb"`                    // a USB device behind the port
	VID          USBID  `json:"vid,omitzero"`           // USB vendor id, when USB
	PID          USBID  `json:"pid,omitzero"`           // USB product id, when USB
	Serial       string `json:"serial,omitempty"`       // USB serial number, when known
	Manufacturer string `json:"manufacturer,omitempty"` // USB iManufacturer, when known
	Product      string `json:"product,omitempty"`      // USB iProduct, when known
}

// USBDeviceInfo is a USB device found by Discover, or considered by the
// USB opener.
type USBDeviceInfo struct {
	Bus          int    `json:"bus"`
	Address      int    `json:"address"`
	VID          USBID  `json:"vid"`
	PID          USBID  `json:"pid"`
	Serial       string `json:"serial,omitempty"`       // iSerialNumber, when readable
	Manufacturer string `json:"manufacturer,omitempty"` // iManufacturer, when readable
	Product      string `json:"product,omitempty"`      // iProduct, when readable
	// Error says why the strings could not be read: usually permissions
	// (a udev rule is needed to open the device as a non-root user).
	Error      string             `json:"error,omitempty"`
	Interfaces []USBInterfaceInfo `json:"interfaces,omitempty"`
}

// USBInterfaceInfo is one alternate setting of one interface of a USB
// configuration.
type USBInterfaceInfo struct {
	Config    int               `json:"config"`
	Number    int               `json:"interface"`
	Alt       int               `json:"alt"`
	Class     uint8             `json:"class"` // 0xff: vendor-specific
	Endpoints []USBEndpointInfo `json:"endpoints,omitempty"`
}

// USBEndpointInfo is one endpoint of an interface.
type USBEndpointInfo struct {
	Number    int    `json:"number"`
	In        bool   `json:"in"`
	Type      string `json:"type"` // "bulk", "interrupt", "isochronous", "control"
	MaxPacket int    `json:"max_packet"`
}

// USBClassVendorSpecific is the interface class of the handheld's SFL/1
// interface.
const USBClassVendorSpecific = 0xff

// BulkInterface returns the interface a terminal speaks SFL/1 on: the
// first vendor-specific one (class 0xff) with exactly one bulk IN and one
// bulk OUT endpoint (other endpoint types are ignored), looking at
// configuration preferConfig first. ok is false when there is none (a
// CDC-ACM handheld has none: use its serial port).
func (d USBDeviceInfo) BulkInterface(preferConfig int) (intf USBInterfaceInfo, in, out USBEndpointInfo, ok bool) {
	ifs := slices.Clone(d.Interfaces)
	slices.SortStableFunc(ifs, func(a, b USBInterfaceInfo) int {
		return cmp.Or(
			cmp.Compare(b2i(a.Config != preferConfig), b2i(b.Config != preferConfig)),
			cmp.Compare(a.Config, b.Config), cmp.Compare(a.Number, b.Number), cmp.Compare(a.Alt, b.Alt))
	})
	for _, i := range ifs {
		if i.Class != USBClassVendorSpecific {
			continue
		}
		var ins, outs []USBEndpointInfo
		for _, e := range i.Endpoints {
			if e.Type != "bulk" {
				continue
			}
			if e.In {
				ins = append(ins, e)
			} else {
				outs = append(outs, e)
			}
		}
		if len(ins) == 1 && len(outs) == 1 {
			return i, ins[0], outs[0], true
		}
	}
	return USBInterfaceInfo{}, USBEndpointInfo{}, USBEndpointInfo{}, false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// IsTerminalCandidate reports whether the device has an interface a
// handheld would speak SFL/1 on.
func (d USBDeviceInfo) IsTerminalCandidate() bool {
	_, _, _, ok := d.BulkInterface(0)
	return ok
}

// DiscoveryResult is what Discover found. A listing that failed has no
// entries and its reason in SerialError or USBError.
type DiscoveryResult struct {
	SerialPorts []SerialPortInfo `json:"serial_ports"`
	SerialError string           `json:"serial_error,omitempty"`
	USBDevices  []USBDeviceInfo  `json:"usb_devices"`
	// USBError is "not available: …" when USB devices cannot be listed:
	// no USB subsystem, no permission, or a sterad built without USB
	// support (tag nousb).
	USBError string `json:"usb_error,omitempty"`
}

// Discover lists the serial ports (with their USB ids when a USB device is
// behind them) and the USB devices that could be terminals. A missing USB
// subsystem or serial port list is reported in the result, not as an
// error: the error is non-nil only when neither could be listed.
func Discover() (DiscoveryResult, error) {
	return discover(ListSerialPorts, ListUSBDevices)
}

func discover(ports func() ([]SerialPortInfo, error), usb func() ([]USBDeviceInfo, error)) (DiscoveryResult, error) {
	res := DiscoveryResult{SerialPorts: []SerialPortInfo{}, USBDevices: []USBDeviceInfo{}}
	sp, serr := ports()
	if serr != nil {
		res.SerialError = "not available: " + serr.Error()
	} else if sp != nil {
		res.SerialPorts = sp
	}
	ud, uerr := usb()
	if uerr != nil {
		res.USBError = "not available: " + uerr.Error()
	} else if ud != nil {
		res.USBDevices = ud
	}
	if serr != nil && uerr != nil {
		return res, fmt.Errorf("discover terminals: serial ports: %v; USB: %w", serr, uerr)
	}
	return res, nil
}

// ListSerialPorts lists the serial ports through go.bug.st/serial's
// enumerator, sorted by name, with USB ids and strings when a USB device
// is behind the port.
func ListSerialPorts() ([]SerialPortInfo, error) {
	details, derr := enumerator.GetDetailedPortsList()
	names, nerr := serial.GetPortsList()
	if derr != nil && nerr != nil {
		return nil, fmt.Errorf("list serial ports: %w", errors.Join(derr, nerr))
	}
	byName := map[string]SerialPortInfo{}
	for _, n := range names {
		byName[n] = SerialPortInfo{Name: n}
	}
	for _, d := range details {
		if d == nil || d.Name == "" {
			continue // no sysfs details: listed by name above
		}
		p := SerialPortInfo{Name: d.Name, USB: d.IsUSB}
		if d.IsUSB {
			// An id that does not parse stays zero: the port is still
			// listed, it just cannot be found by USB ids.
			vid, _ := ParseUSBID(d.VID)
			pid, _ := ParseUSBID(d.PID)
			p.VID, p.PID = USBID(vid), USBID(pid)
			p.Serial = strings.TrimSpace(d.SerialNumber)
			p.Manufacturer, p.Product = strings.TrimSpace(d.Manufacturer), strings.TrimSpace(d.Product)
		}
		byName[d.Name] = p
	}
	out := make([]SerialPortInfo, 0, len(byName))
	for _, p := range byName {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b SerialPortInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// FindSerialPort returns the name of the USB serial port (a CDC-ACM
// handheld, /dev/ttyACM*) that sel selects among ports, or an error
// saying what is attached: nothing with these ids, another serial number,
// or several devices when sel has no serial number.
func FindSerialPort(sel USBSelector, ports []SerialPortInfo) (string, error) {
	usb := slices.DeleteFunc(slices.Clone(ports), func(p SerialPortInfo) bool { return !p.USB })
	i, err := sel.pick("USB serial port", len(usb), func(i int) (uint16, uint16, string) {
		return uint16(usb[i].VID), uint16(usb[i].PID), usb[i].Serial
	})
	if err != nil {
		return "", err
	}
	return usb[i].Name, nil
}

// PickUSBDevice returns the index of the device sel selects among devs,
// or an error listing what is attached (see FindSerialPort).
func PickUSBDevice(sel USBSelector, devs []USBDeviceInfo) (int, error) {
	return sel.pick("USB device", len(devs), func(i int) (uint16, uint16, string) {
		return uint16(devs[i].VID), uint16(devs[i].PID), devs[i].Serial
	})
}
