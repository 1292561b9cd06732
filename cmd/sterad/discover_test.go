package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad/device"
)

func runDiscover(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv("STERAD_CONFIG", "")
	g := &globalOptions{}
	root := &cobra.Command{Use: "sterad", SilenceUsage: true}
	g.AddFlags(root)
	terms := &cobra.Command{Use: "terminals"}
	terms.AddCommand(newDiscoverCommand(g))
	root.AddCommand(terms)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(append([]string{"terminals", "discover"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("discover %v: %v", args, err)
	}
	return out.String()
}

func TestDiscoverCommand(t *testing.T) {
	// This machine: whatever it has, the command works and says so.
	out := runDiscover(t)
	if !strings.Contains(out, "SERIAL PORTS") || !strings.Contains(out, "USB DEVICES") {
		t.Fatalf("output:\n%s", out)
	}
	t.Logf("\n%s", out)
	var res device.DiscoveryResult
	if err := json.Unmarshal([]byte(runDiscover(t, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.SerialPorts == nil || res.USBDevices == nil {
		t.Fatalf("%+v", res)
	}
}

func TestPrintDiscovery(t *testing.T) {
	res := device.DiscoveryResult{
		SerialPorts: []device.SerialPortInfo{
			{Name: "/dev/ttyS0"},
			{Name: "/dev/ttyACM0", USB: true, VID: 0x1234, PID: 0x5678, Serial: "H1", Manufacturer: "ACME", Product: "Mobile"},
		},
		USBDevices: []device.USBDeviceInfo{
			{Bus: 1, Address: 4, VID: 0x1234, PID: 0x9999, Serial: "H2", Product: "Mobile bulk", Interfaces: []device.USBInterfaceInfo{
				{Config: 1, Class: 0xff, Endpoints: []device.USBEndpointInfo{{Number: 1, In: true, Type: "bulk"}, {Number: 2, Type: "bulk"}}},
			}},
			{Bus: 1, Address: 5, VID: 0x046d, PID: 0xc52b, Error: "cannot open the device to read its strings"},
		},
	}
	terms := []TerminalConfig{
		{ID: "FRONT001", Kind: "fixed", Port: "/dev/ttyS0"},
		{ID: "HAND0001", Kind: "handheld", USB: &USBConfig{VID: "0x1234", PID: "0x5678"}},
		{ID: "HAND0002", Kind: "handheld", USB: &USBConfig{VID: "1234", PID: "9999", Serial: "H2"}},
	}
	var b bytes.Buffer
	printDiscovery(&b, res, terms)
	out := b.String()
	for _, want := range []string{
		"/dev/ttyS0    -          -       -             -        FRONT001",
		"/dev/ttyACM0  1234:5678  H1      ACME          Mobile   HAND0001",
		"001/004   1234:9999  H2      -             Mobile bulk  yes (config 1, interface 0, IN 1, OUT 2)  HAND0002",
		"001/005   046d:c52b  -       -             -            no",
		"001/005: cannot open the device to read its strings",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	b.Reset()
	printDiscovery(&b, device.DiscoveryResult{USBError: "not available: no USB subsystem on this machine (/sys/bus/usb is missing)"}, nil)
	if !strings.Contains(b.String(), "USB: not available: no USB subsystem") || !strings.Contains(b.String(), "none found") {
		t.Errorf("output:\n%s", b.String())
	}
}
