package device_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
)

func TestParseUSBSelector(t *testing.T) {
	for _, tc := range []struct {
		vid, pid, serial string
		want             device.USBSelector
		str              string
	}{
		{"0x1234", "0x5678", "", device.USBSelector{VID: 0x1234, PID: 0x5678}, "1234:5678"},
		{"1234", "ABCD", " SN01 ", device.USBSelector{VID: 0x1234, PID: 0xabcd, Serial: "SN01"}, "1234:abcd/SN01"},
		{"0X04b8", "0x2", "", device.USBSelector{VID: 0x04b8, PID: 2}, "04b8:0002"},
	} {
		got, err := device.ParseUSBSelector(tc.vid, tc.pid, tc.serial)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseUSBSelector(%q, %q, %q) = %+v %q, %v", tc.vid, tc.pid, tc.serial, got, got.String(), err)
		}
	}
	for _, bad := range [][2]string{{"", "0x1"}, {"0x", "0x1"}, {"0x12345", "0x1"}, {"zz", "0x1"}, {"0x1", "-1"}, {"0x1", "0x 1"}} {
		_, err := device.ParseUSBSelector(bad[0], bad[1], "")
		if sterad.ErrorKind(err) != sterad.EInvalid || sterad.ErrorCode(err) != "invalid_usb_id" {
			t.Errorf("ParseUSBSelector(%q, %q) = %v, want invalid_usb_id", bad[0], bad[1], err)
		}
	}
}

func TestUSBIDJSON(t *testing.T) {
	b, err := json.Marshal(device.USBDeviceInfo{VID: 0x1234, PID: 0xab})
	if err != nil || !strings.Contains(string(b), `"vid":"1234","pid":"00ab"`) {
		t.Fatalf("%s, %v", b, err)
	}
	var id device.USBID
	if err := json.Unmarshal([]byte(`"0x5678"`), &id); err != nil || id != 0x5678 {
		t.Fatalf("%v, %v", id, err)
	}
}

func TestPickUSBDevice(t *testing.T) {
	devs := []device.USBDeviceInfo{
		{VID: 0x1d6b, PID: 0x0002},
		{VID: 0x1234, PID: 0x5678, Serial: "B2"},
		{VID: 0x1234, PID: 0x5678, Serial: "A1"},
		{VID: 0x1234, PID: 0x9999, Serial: "C3"},
	}
	for _, tc := range []struct {
		sel     device.USBSelector
		want    int
		wantErr []string
	}{
		{sel: device.USBSelector{VID: 0x1234, PID: 0x9999}, want: 3},
		{sel: device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "A1"}, want: 2},
		{sel: device.USBSelector{VID: 0x1234, PID: 0x5678},
			wantErr: []string{`2 USB devices 1234:5678 are attached (serial numbers "A1", "B2")`, "configure the serial number"}},
		{sel: device.USBSelector{VID: 0x1234, PID: 0x5678, Serial: "Z9"},
			wantErr: []string{`no USB device 1234:5678 with serial number "Z9" is attached (attached: serial "B2", "A1")`}},
		{sel: device.USBSelector{VID: 0xdead, PID: 0xbeef}, wantErr: []string{"no USB device dead:beef is attached"}},
	} {
		got, err := device.PickUSBDevice(tc.sel, devs)
		if tc.wantErr == nil {
			if err != nil || got != tc.want {
				t.Errorf("%v: %d, %v; want %d", tc.sel, got, err, tc.want)
			}
			continue
		}
		for _, w := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %v; want %q", tc.sel, err, w)
			}
		}
	}
	// Two devices with no readable serial number.
	_, err := device.PickUSBDevice(device.USBSelector{VID: 1, PID: 2}, []device.USBDeviceInfo{{VID: 1, PID: 2}, {VID: 1, PID: 2}})
	if err == nil || !strings.Contains(err.Error(), "(none), (none)") {
		t.Fatalf("%v", err)
	}
}

func TestBulkInterface(t *testing.T) {
	bulk := func(n int, in bool) device.USBEndpointInfo {
		return device.USBEndpointInfo{Number: n, In: in, Type: "bulk", MaxPacket: 512}
	}
	intr := device.USBEndpointInfo{Number: 3, In: true, Type: "interrupt", MaxPacket: 16}
	cdcACM := []device.USBInterfaceInfo{
		{Config: 1, Number: 0, Class: 0x02, Endpoints: []device.USBEndpointInfo{intr}},
		{Config: 1, Number: 1, Class: 0x0a, Endpoints: []device.USBEndpointInfo{bulk(1, true), bulk(2, false)}},
	}
	for name, tc := range map[string]struct {
		ifs    []device.USBInterfaceInfo
		prefer int
		ok     bool
		want   [3]int // config, interface, alt
	}{
		"CDC-ACM only":             {ifs: cdcACM},
		"vendor, two bulk IN":      {ifs: []device.USBInterfaceInfo{{Config: 1, Class: 0xff, Endpoints: []device.USBEndpointInfo{bulk(1, true), bulk(2, true), bulk(3, false)}}}},
		"vendor, IN only":          {ifs: []device.USBInterfaceInfo{{Config: 1, Class: 0xff, Endpoints: []device.USBEndpointInfo{bulk(1, true)}}}},
		"vendor with an interrupt": {ifs: []device.USBInterfaceInfo{{Config: 1, Number: 2, Class: 0xff, Endpoints: []device.USBEndpointInfo{intr, bulk(1, true), bulk(1, false)}}}, ok: true, want: [3]int{1, 2, 0}},
		"after CDC in the same config": {ifs: append(cdcACM, device.USBInterfaceInfo{Config: 1, Number: 2, Alt: 1, Class: 0xff,
			Endpoints: []device.USBEndpointInfo{bulk(4, false), bulk(4, true)}}), ok: true, want: [3]int{1, 2, 1}},
		"active config first": {ifs: []device.USBInterfaceInfo{
			{Config: 1, Number: 0, Class: 0xff, Endpoints: []device.USBEndpointInfo{bulk(1, true), bulk(1, false)}},
			{Config: 2, Number: 0, Class: 0xff, Endpoints: []device.USBEndpointInfo{bulk(2, true), bulk(2, false)}},
		}, prefer: 2, ok: true, want: [3]int{2, 0, 0}},
	} {
		d := device.USBDeviceInfo{VID: 0x1234, PID: 0x5678, Interfaces: tc.ifs}
		intf, in, out, ok := d.BulkInterface(tc.prefer)
		if ok != tc.ok || d.IsTerminalCandidate() != tc.ok {
			t.Errorf("%s: ok = %v", name, ok)
			continue
		}
		if !ok {
			continue
		}
		if got := [3]int{intf.Config, intf.Number, intf.Alt}; got != tc.want || !in.In || out.In || in.Type != "bulk" || out.Type != "bulk" {
			t.Errorf("%s: %v in %+v out %+v, want %v", name, got, in, out, tc.want)
		}
	}
}
