package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad/device"
)

// newDiscoverCommand is `sterad terminals discover`: the serial ports and
// USB devices of this machine that could be terminals. It runs locally
// (not through the API): the daemon need not be running.
func newDiscoverCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "discover",
		Short: "List the serial ports and USB devices that could be terminals",
		Long: `List this machine's serial ports (with the USB vendor and product id of
the device behind them, when there is one) and its USB devices (ids, serial
number, strings, and whether it has the vendor-specific bulk IN/OUT
interface a USB handheld speaks SFL/1 on). Devices already used by a
terminal of the configuration are marked with its id.

A fixed terminal on RS-232, or a handheld that shows up as /dev/ttyACM*,
is configured with its port; a handheld with a bulk interface with
usb: {vid, pid} (and serial, when several are attached).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			res, err := device.Discover()
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			printDiscovery(cmd.OutOrStdout(), res, cfg.Terminals)
			return nil
		},
	}
}

// printDiscovery writes what Discover found as two tables.
func printDiscovery(w io.Writer, res device.DiscoveryResult, terms []TerminalConfig) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	fmt.Fprintln(w, "SERIAL PORTS")
	switch {
	case res.SerialError != "":
		fmt.Fprintf(w, "  %s\n", res.SerialError)
	case len(res.SerialPorts) == 0:
		fmt.Fprintln(w, "  none found")
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PORT\tUSB ID\tSERIAL\tMANUFACTURER\tPRODUCT\tTERMINAL")
		for _, p := range res.SerialPorts {
			id := "-"
			if p.USB {
				id = p.VID.String() + ":" + p.PID.String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, id, dash(p.Serial), dash(p.Manufacturer), dash(p.Product),
				dash(portUser(terms, p)))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "USB DEVICES")
	switch {
	case res.USBError != "":
		fmt.Fprintf(w, "  USB: %s\n", res.USBError)
	case len(res.USBDevices) == 0:
		fmt.Fprintln(w, "  none found")
	default:
		var notes []string
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  BUS/ADDR\tUSB ID\tSERIAL\tMANUFACTURER\tPRODUCT\tSFL/1 BULK INTERFACE\tTERMINAL")
		for _, d := range res.USBDevices {
			bulk := "no"
			if intf, in, out, ok := d.BulkInterface(0); ok {
				bulk = fmt.Sprintf("yes (config %d, interface %d, IN %d, OUT %d)", intf.Config, intf.Number, in.Number, out.Number)
			}
			fmt.Fprintf(tw, "  %03d/%03d\t%s:%s\t%s\t%s\t%s\t%s\t%s\n", d.Bus, d.Address, d.VID, d.PID, dash(d.Serial),
				dash(d.Manufacturer), dash(d.Product), bulk, dash(usbUser(terms, uint16(d.VID), uint16(d.PID), d.Serial)))
			if d.Error != "" {
				notes = append(notes, fmt.Sprintf("  %03d/%03d: %s", d.Bus, d.Address, d.Error))
			}
		}
		tw.Flush()
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

// portUser returns the configured terminal on serial port p: by path
// (through symlinks), or by the USB ids of the device behind it.
func portUser(terms []TerminalConfig, p device.SerialPortInfo) string {
	for _, t := range terms {
		if t.Port != "" && (t.Port == p.Name || resolve(t.Port) == resolve(p.Name)) {
			return t.ID
		}
	}
	if p.USB {
		return usbUser(terms, uint16(p.VID), uint16(p.PID), p.Serial)
	}
	return ""
}

// usbUser returns the configured terminal whose usb ids select the device.
func usbUser(terms []TerminalConfig, vid, pid uint16, serial string) string {
	for _, t := range terms {
		if t.USB == nil {
			continue
		}
		sel, err := device.ParseUSBSelector(t.USB.VID, t.USB.PID, t.USB.Serial)
		if err != nil || sel.VID != vid || sel.PID != pid || (sel.Serial != "" && sel.Serial != serial) {
			continue
		}
		return t.ID
	}
	return ""
}

func resolve(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}
