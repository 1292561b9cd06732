//go:build !nousb

package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"

	"github.com/google/gousb"
)

// USBSupported reports whether this build drives USB bulk terminals
// through gousb and libusb. It is false in a build with the nousb tag.
const USBSupported = true

// USBOpener returns an Opener for a handheld that speaks SFL/1 over a
// vendor-specific USB interface (class 0xff) with one bulk IN and one bulk
// OUT endpoint, found by sel. Each open enumerates the bus (gousb has no
// hotplug: the session's reconnect loop is the polling), opens the device
// with kernel-driver auto-detach, claims that interface, and returns a
// bulk stream (NewBulkStream) whose Close releases the interface, the
// device and the libusb context. Errors say what is attached when the
// selector does not pick exactly one device: several devices with the
// same ids and no serial number configured is an error listing their
// serial numbers.
func USBOpener(sel USBSelector) Opener {
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return openUSB(sel)
	}
}

// newUSBContext starts libusb; gousb panics when libusb cannot start (no
// USB subsystem on some systems): that is an error here.
func newUSBContext() (c *gousb.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("libusb cannot start: %v", r)
		}
	}()
	return gousb.NewContext(), nil
}

func openUSB(sel USBSelector) (_ io.ReadWriteCloser, err error) {
	name := "usb " + sel.String()
	uctx, err := newUSBContext()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Undo what was opened, in reverse order, unless the stream takes it.
	var undo []func() error
	undo = append(undo, uctx.Close)
	release := func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			release()
		}
	}()

	devs, oerr := uctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		return sel.matchesIDs(uint16(d.Vendor), uint16(d.Product))
	})
	for _, d := range devs {
		undo = append(undo, d.Close)
	}
	if len(devs) == 0 {
		if oerr != nil {
			return nil, fmt.Errorf("%s: open: %w%s", name, oerr, accessHint(oerr))
		}
		_, perr := PickUSBDevice(sel, nil)
		return nil, perr
	}
	infos := make([]USBDeviceInfo, len(devs))
	for i, d := range devs {
		infos[i] = deviceInfo(d.Desc)
		if len(devs) > 1 || sel.Serial != "" {
			infos[i].Serial, _ = d.SerialNumber()
		}
	}
	i, err := PickUSBDevice(sel, infos)
	if err != nil {
		if oerr != nil {
			err = fmt.Errorf("%w (another device could not be opened: %v%s)", err, oerr, accessHint(oerr))
		}
		return nil, err
	}
	dev := devs[i]
	for _, d := range devs {
		if d != dev {
			d.Close()
		}
	}
	if err := dev.SetAutoDetach(true); err != nil {
		return nil, fmt.Errorf("%s: kernel driver auto-detach: %w", name, err)
	}
	active, err := dev.ActiveConfigNum()
	if err != nil {
		return nil, fmt.Errorf("%s: active configuration: %w", name, err)
	}
	intfInfo, inEp, outEp, ok := infos[i].BulkInterface(active)
	if !ok {
		return nil, fmt.Errorf("%s: the device has no vendor-specific interface with one bulk IN and one bulk OUT endpoint: "+
			"if it is a CDC-ACM handheld, use its serial port (/dev/ttyACM*)", name)
	}
	cfg, err := dev.Config(intfInfo.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: configuration %d: %w%s", name, intfInfo.Config, err, accessHint(err))
	}
	undo = append(undo, cfg.Close)
	intf, err := cfg.Interface(intfInfo.Number, intfInfo.Alt)
	if err != nil {
		return nil, fmt.Errorf("%s: claim interface %d: %w%s", name, intfInfo.Number, err, accessHint(err))
	}
	undo = append(undo, func() error { intf.Close(); return nil })
	in, err := intf.InEndpoint(inEp.Number)
	if err != nil {
		return nil, fmt.Errorf("%s: IN endpoint %d: %w", name, inEp.Number, err)
	}
	out, err := intf.OutEndpoint(outEp.Number)
	if err != nil {
		return nil, fmt.Errorf("%s: OUT endpoint %d: %w", name, outEp.Number, err)
	}
	return NewBulkStream(in, out, BulkStreamOptions{
		Name:     name,
		ReadSize: roundUp(DefaultUSBReadSize, inEp.MaxPacket),
		Release:  release,
	}), nil
}

// roundUp rounds n up to a multiple of packet, so that an IN transfer
// never ends inside a packet (libusb would report an overflow).
func roundUp(n, packet int) int {
	if packet <= 0 {
		return n
	}
	return (n + packet - 1) / packet * packet
}

func accessHint(err error) string {
	if errors.Is(err, gousb.ErrorAccess) {
		return " (permission denied: give sterad's user access to the device with a udev rule, see device/USB.md)"
	}
	return ""
}

// ListUSBDevices lists the USB devices on the system with their ids,
// their strings when the device can be opened, and their interfaces.
func ListUSBDevices() ([]USBDeviceInfo, error) {
	uctx, err := newUSBContext()
	if err != nil {
		return nil, err
	}
	defer uctx.Close()
	var descs []*gousb.DeviceDesc
	devs, oerr := uctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		descs = append(descs, d)
		return true
	})
	opened := map[*gousb.DeviceDesc]*gousb.Device{}
	for _, d := range devs {
		opened[d.Desc] = d
		defer d.Close()
	}
	if len(descs) == 0 {
		if oerr != nil {
			return nil, oerr
		}
		if runtime.GOOS == "linux" {
			if _, err := os.Stat("/sys/bus/usb"); err != nil {
				return nil, errors.New("no USB subsystem on this machine (/sys/bus/usb is missing)")
			}
		}
	}
	out := make([]USBDeviceInfo, 0, len(descs))
	for _, desc := range descs {
		info := deviceInfo(desc)
		if d := opened[desc]; d != nil {
			info.Manufacturer, _ = d.Manufacturer()
			info.Product, _ = d.Product()
			info.Serial, _ = d.SerialNumber()
		} else {
			info.Error = "cannot open the device to read its strings"
			if oerr != nil {
				info.Error += ": " + oerr.Error() + accessHint(oerr)
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b USBDeviceInfo) int {
		if a.Bus != b.Bus {
			return a.Bus - b.Bus
		}
		return a.Address - b.Address
	})
	return out, nil
}

// deviceInfo converts gousb's descriptor.
func deviceInfo(d *gousb.DeviceDesc) USBDeviceInfo {
	info := USBDeviceInfo{Bus: d.Bus, Address: d.Address, VID: USBID(d.Vendor), PID: USBID(d.Product)}
	for _, c := range d.Configs {
		for _, i := range c.Interfaces {
			for _, alt := range i.AltSettings {
				ii := USBInterfaceInfo{Config: c.Number, Number: alt.Number, Alt: alt.Alternate, Class: uint8(alt.Class)}
				for _, e := range alt.Endpoints {
					ii.Endpoints = append(ii.Endpoints, USBEndpointInfo{
						Number:    e.Number,
						In:        e.Direction == gousb.EndpointDirectionIn,
						Type:      e.TransferType.String(),
						MaxPacket: e.MaxPacketSize,
					})
				}
				slices.SortFunc(ii.Endpoints, func(a, b USBEndpointInfo) int {
					if a.Number != b.Number {
						return a.Number - b.Number
					}
					return b2i(a.In) - b2i(b.In)
				})
				info.Interfaces = append(info.Interfaces, ii)
			}
		}
	}
	slices.SortFunc(info.Interfaces, func(a, b USBInterfaceInfo) int {
		switch {
		case a.Config != b.Config:
			return a.Config - b.Config
		case a.Number != b.Number:
			return a.Number - b.Number
		}
		return a.Alt - b.Alt
	})
	return info
}

// usbTimeout reports whether err is libusb's timeout.
func usbTimeout(err error) bool {
	return errors.Is(err, gousb.TransferTimedOut) || errors.Is(err, gousb.ErrorTimeout)
}

// usbNoDevice reports whether err says the device is gone.
func usbNoDevice(err error) bool {
	return errors.Is(err, gousb.TransferNoDevice) || errors.Is(err, gousb.ErrorNoDevice)
}
