package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// BulkIn is a USB bulk IN endpoint: gousb's *InEndpoint. ReadContext
// returns what one transfer brought, which may be any part of the byte
// stream, and may return data together with an error (a transfer cut
// short by ctx).
type BulkIn interface {
	ReadContext(ctx context.Context, buf []byte) (int, error)
}

// BulkOut is a USB bulk OUT endpoint: gousb's *OutEndpoint.
type BulkOut interface {
	WriteContext(ctx context.Context, buf []byte) (int, error)
}

// Defaults of BulkStreamOptions.
const (
	// DefaultUSBReadTimeout bounds each IN transfer. A transfer that times
	// out is not an error: the read starts another.
	DefaultUSBReadTimeout = 500 * time.Millisecond
	// DefaultUSBWriteTimeout is how long the device may take no data at
	// all before the stream fails: an OUT endpoint that does not drain
	// is a hung device (SFL/1 has no flow control to wait for).
	DefaultUSBWriteTimeout = 2 * time.Second
	// DefaultUSBReadSize is the size of each IN transfer; the USB opener
	// rounds it up to a multiple of the endpoint's max packet size, so a
	// packet never overflows the buffer.
	DefaultUSBReadSize = 4096
)

// BulkStreamOptions tune a bulk stream. Zero values take the defaults.
type BulkStreamOptions struct {
	Name         string        // for errors, e.g. "usb 1234:5678/SN01" (default "usb")
	ReadTimeout  time.Duration // each IN transfer (default DefaultUSBReadTimeout)
	WriteTimeout time.Duration // OUT transfer without progress (default DefaultUSBWriteTimeout)
	ReadSize     int           // bytes per IN transfer (default DefaultUSBReadSize)
	// Release is called once by Close, after every transfer in flight
	// has returned: it releases the interface, the device and the USB
	// context.
	Release func() error
}

// NewBulkStream returns the SFL/1 byte stream carried by a pair of bulk
// endpoints. It assumes nothing about how frames fall into USB packets or
// transfers: a Read returns whatever the device sent, part of a frame or
// several frames, and the SFL/1 decoder reassembles them.
//
// Read loops over IN transfers bounded by ReadTimeout until data comes,
// Close is called, or a transfer fails: a timeout is not an error. Any
// other failure (the device unplugged: libusb's no-device errors; a stall;
// an I/O error) is returned by this Read and every later one, so the
// session's link fails and it reconnects. Data that came with an error is
// returned first. Write sends all of p, in as many transfers as the device
// takes; it fails when the device takes nothing for WriteTimeout. Close
// cancels the transfers in flight (unblocking a pending Read), waits for
// them, then calls Release. Errors name the device, never data.
func NewBulkStream(in BulkIn, out BulkOut, opts BulkStreamOptions) io.ReadWriteCloser {
	if opts.Name == "" {
		opts.Name = "usb"
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultUSBReadTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultUSBWriteTimeout
	}
	if opts.ReadSize <= 0 {
		opts.ReadSize = DefaultUSBReadSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &bulkStream{in: in, out: out, opts: opts, ctx: ctx, cancel: cancel, buf: make([]byte, opts.ReadSize)}
}

type bulkStream struct {
	in     BulkIn
	out    BulkOut
	opts   BulkStreamOptions
	ctx    context.Context // ends at Close: cancels the transfers in flight
	cancel context.CancelFunc

	readMu  sync.Mutex // held for the whole Read, transfers included
	buf     []byte     // the IN transfer buffer
	pending []byte     // received, not yet read (a slice of buf)
	rerr    error      // the read side failed: sticky

	writeMu sync.Mutex // held for the whole Write
	werr    error

	closeOnce sync.Once
	closeErr  error
}

func (s *bulkStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		if len(s.pending) > 0 {
			n := copy(p, s.pending)
			s.pending = s.pending[n:]
			return n, nil
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		if s.ctx.Err() != nil {
			return 0, s.closed("read")
		}
		tctx, cancel := context.WithTimeout(s.ctx, s.opts.ReadTimeout)
		n, err := s.in.ReadContext(tctx, s.buf)
		timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded)
		cancel()
		n = max(0, min(n, len(s.buf)))
		s.pending = s.buf[:n]
		switch {
		case err == nil:
			// Data, or a zero-length packet: loop.
		case s.ctx.Err() != nil:
			s.pending = nil
			return 0, s.closed("read")
		case timedOut || usbTimeout(err):
			// Nothing (or part of the stream) this time: not an error.
		default:
			s.rerr = s.transportErr("read", err)
		}
	}
}

func (s *bulkStream) Write(p []byte) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	written, idle := 0, 0
	for written < len(p) {
		if s.ctx.Err() != nil {
			return written, s.closed("write")
		}
		tctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
		n, err := s.out.WriteContext(tctx, p[written:])
		timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded)
		cancel()
		n = max(0, min(n, len(p)-written))
		written += n
		switch {
		case err == nil && n > 0:
			idle = 0
		case err == nil:
			// The device took nothing and said nothing: a few of those
			// in a row mean it is not listening.
			if idle++; idle >= 3 {
				s.werr = fmt.Errorf("%s: write: %w", s.opts.Name, io.ErrShortWrite)
				return written, s.werr
			}
		case s.ctx.Err() != nil:
			return written, s.closed("write")
		case (timedOut || usbTimeout(err)) && n > 0:
			// Progress, then a timeout: send the rest in a new transfer.
			idle = 0
		case timedOut || usbTimeout(err):
			s.werr = fmt.Errorf("%s: write: the device took no data for %s", s.opts.Name, s.opts.WriteTimeout)
			return written, s.werr
		default:
			s.werr = s.transportErr("write", err)
			return written, s.werr
		}
	}
	return written, nil
}

// Close cancels the transfers in flight, waits for them to return, and
// releases the device. It is safe to call more than once.
func (s *bulkStream) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		// Taking both locks waits for the Read and Write in progress:
		// their transfers end at once, now that the context is done.
		s.readMu.Lock()
		s.writeMu.Lock()
		s.pending = nil
		s.writeMu.Unlock()
		s.readMu.Unlock()
		if s.opts.Release != nil {
			if err := s.opts.Release(); err != nil {
				s.closeErr = fmt.Errorf("%s: release: %w", s.opts.Name, err)
			}
		}
	})
	return s.closeErr
}

func (s *bulkStream) closed(op string) error {
	return fmt.Errorf("%s: %s: %w", s.opts.Name, op, os.ErrClosed)
}

// transportErr describes a failed transfer; a no-device error says the
// terminal is gone.
func (s *bulkStream) transportErr(op string, err error) error {
	if usbNoDevice(err) {
		return fmt.Errorf("%s: %s: the device is gone (unplugged or switched off): %w", s.opts.Name, op, err)
	}
	return fmt.Errorf("%s: %s: %w", s.opts.Name, op, err)
}
