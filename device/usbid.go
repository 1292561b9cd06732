package device

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sterad/sterad"
)

// USBSelector finds a USB terminal: by vendor and product id, and by
// serial number when several with the same ids are attached.
type USBSelector struct {
	VID, PID uint16
	Serial   string // "" matches any serial number, if only one device matches
}

// ParseUSBSelector parses the configuration's strings: vid and pid are
// 16-bit hexadecimal numbers, with or without 0x ("0x1234", "1234");
// serial is the USB serial number (iSerialNumber), "" for any. Errors are
// EInvalid and name the bad field.
func ParseUSBSelector(vid, pid, serial string) (USBSelector, error) {
	v, err := ParseUSBID(vid)
	if err != nil {
		return USBSelector{}, sterad.Errorf(sterad.EInvalid, "invalid_usb_id", "usb vid: %s", sterad.ErrorMessage(err))
	}
	p, err := ParseUSBID(pid)
	if err != nil {
		return USBSelector{}, sterad.Errorf(sterad.EInvalid, "invalid_usb_id", "usb pid: %s", sterad.ErrorMessage(err))
	}
	return USBSelector{VID: v, PID: p, Serial: strings.TrimSpace(serial)}, nil
}

// ParseUSBID parses a USB vendor or product id: four hexadecimal digits
// at most, with or without a 0x prefix.
func ParseUSBID(s string) (uint16, error) {
	t := strings.TrimSpace(s)
	h := strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if h == "" || len(h) > 4 {
		return 0, sterad.Errorf(sterad.EInvalid, "invalid_usb_id", "%q is not a USB id like \"0x1234\"", s)
	}
	n, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return 0, sterad.Errorf(sterad.EInvalid, "invalid_usb_id", "%q is not a USB id like \"0x1234\"", s)
	}
	return uint16(n), nil
}

// String returns "vid:pid" or "vid:pid/serial" in lowercase hexadecimal,
// the form of sterad.TerminalInfo.USB. Two selectors name the same device
// exactly when their strings are equal.
func (s USBSelector) String() string {
	id := fmt.Sprintf("%04x:%04x", s.VID, s.PID)
	if s.Serial != "" {
		id += "/" + s.Serial
	}
	return id
}

// matchesIDs reports whether vid and pid are the selector's.
func (s USBSelector) matchesIDs(vid, pid uint16) bool { return vid == s.VID && pid == s.PID }

// pick chooses among n devices, device i having ids vid:pid and serial
// number serial ("" when unreadable): the one matching the selector. It
// returns the index,
// or an error saying what is attached: nothing with these ids, not this
// serial number, or several devices and no serial number configured.
func (s USBSelector) pick(what string, n int, dev func(i int) (vid, pid uint16, serial string)) (int, error) {
	var idx []int
	var serials []string
	for i := 0; i < n; i++ {
		vid, pid, serial := dev(i)
		if !s.matchesIDs(vid, pid) {
			continue
		}
		serials = append(serials, quoteSerial(serial))
		if s.Serial == "" || serial == s.Serial {
			idx = append(idx, i)
		}
	}
	ids := fmt.Sprintf("%04x:%04x", s.VID, s.PID)
	switch {
	case len(idx) == 1:
		return idx[0], nil
	case len(serials) == 0:
		return -1, fmt.Errorf("no %s %s is attached", what, ids)
	case len(idx) == 0:
		return -1, fmt.Errorf("no %s %s with serial number %q is attached (attached: serial %s)",
			what, ids, s.Serial, strings.Join(serials, ", "))
	case s.Serial == "":
		slices.Sort(serials)
		return -1, fmt.Errorf("%d %ss %s are attached (serial numbers %s): configure the serial number of the one to use",
			len(idx), what, ids, strings.Join(serials, ", "))
	default:
		return -1, fmt.Errorf("%d %ss %s with serial number %q are attached: they cannot be told apart",
			len(idx), what, ids, s.Serial)
	}
}

func quoteSerial(s string) string {
	if s == "" {
		return "(none)"
	}
	return strconv.Quote(s)
}

// ErrNoUSBSupport is returned by the USB opener and ListUSBDevices of a
// sterad built with the nousb tag (without cgo and libusb). USBSupported
// is false in such a build: the daemon can refuse a USB terminal in its
// configuration at start-up.
var ErrNoUSBSupport = errors.New("this sterad was built without USB support (tag nousb): a USB terminal cannot be used; rebuild with cgo and libusb, or use its CDC-ACM serial port")
