package device_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad/device"
)

// fakeUSB is a handheld's pair of bulk endpoints joined to the terminal's
// end of the byte stream. What the terminal writes, the IN endpoint
// delivers in transfers of at most inChunk bytes (fragmenting frames
// anywhere); what the gateway writes to the OUT endpoint, in transfers of
// at most outChunk bytes, the terminal reads. Transfers behave as gousb's:
// they honour ctx and end with TransferCancelled when it ends (a read
// timeout, or Close), and with a no-device error once unplugged.
type fakeUSB struct {
	mu      sync.Mutex
	toHost  []byte // terminal → gateway (IN)
	toDev   []byte // gateway → terminal (OUT)
	gone    bool   // unplugged: transfers fail with goneErr
	devGone bool   // the terminal's end was closed
	wake    chan struct{}

	inChunk        int           // max bytes per IN transfer (0: as many as fit)
	inDelay        time.Duration // an IN transfer with data waits this long first
	outChunk       int           // max bytes per OUT transfer (0: all)
	outStall       bool          // the OUT endpoint takes nothing
	cancelWithData bool          // IN data comes back with TransferCancelled when ctx ends
	goneErr        error         // default fakeNoDevice

	inCalls    atomic.Int64
	inTimeouts atomic.Int64
	inFlight   atomic.Int32
	released   atomic.Int32
	releasedIn atomic.Int32 // transfers in flight when Release ran: must be 0
	bufSizes   sync.Map     // len(buf) of IN transfers → true
}

func newFakeUSB() *fakeUSB { return &fakeUSB{wake: make(chan struct{}), goneErr: fakeNoDevice} }

func (f *fakeUSB) notifyLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// unplug pulls the cable: transfers fail with a no-device error, the
// terminal's end reads EOF.
func (f *fakeUSB) unplug() {
	f.mu.Lock()
	f.gone = true
	f.notifyLocked()
	f.mu.Unlock()
}

func (f *fakeUSB) set(fn func(*fakeUSB)) {
	f.mu.Lock()
	fn(f)
	f.notifyLocked()
	f.mu.Unlock()
}

// stream is the gateway's end: the package's bulk stream over the fake
// endpoints.
func (f *fakeUSB) stream(opts device.BulkStreamOptions) io.ReadWriteCloser {
	opts.Release = func() error {
		f.releasedIn.Store(f.inFlight.Load())
		f.released.Add(1)
		return nil
	}
	return device.NewBulkStream(fakeIn{f}, fakeOut{f}, opts)
}

type fakeIn struct{ f *fakeUSB }

func (e fakeIn) ReadContext(ctx context.Context, buf []byte) (int, error) {
	f := e.f
	f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	f.inCalls.Add(1)
	f.bufSizes.Store(len(buf), true)
	timeout := func() (int, error) {
		f.inTimeouts.Add(1)
		return 0, fakeCancelled
	}
	for {
		f.mu.Lock()
		if len(f.toHost) > 0 {
			delay, withErr := f.inDelay, f.cancelWithData
			f.mu.Unlock()
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return timeout()
				}
			}
			f.mu.Lock()
			n := len(f.toHost)
			if f.inChunk > 0 {
				n = min(n, f.inChunk)
			}
			n = copy(buf, f.toHost[:n])
			f.toHost = f.toHost[n:]
			f.notifyLocked()
			f.mu.Unlock()
			if withErr {
				// The transfer got some data, then ctx ended it.
				<-ctx.Done()
				return n, fakeCancelled
			}
			return n, nil
		}
		if f.gone {
			err := f.goneErr
			f.mu.Unlock()
			return 0, err
		}
		w := f.wake
		f.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return timeout()
		}
	}
}

type fakeOut struct{ f *fakeUSB }

func (e fakeOut) WriteContext(ctx context.Context, buf []byte) (int, error) {
	f := e.f
	for {
		f.mu.Lock()
		if f.gone {
			err := f.goneErr
			f.mu.Unlock()
			return 0, err
		}
		if !f.outStall {
			n := len(buf)
			if f.outChunk > 0 {
				n = min(n, f.outChunk)
			}
			f.toDev = append(f.toDev, buf[:n]...)
			f.notifyLocked()
			f.mu.Unlock()
			return n, nil
		}
		w := f.wake
		f.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return 0, fakeCancelled
		}
	}
}

// dev is the terminal's end of the stream. Closing it unplugs the device.
func (f *fakeUSB) dev() io.ReadWriteCloser { return fakeDev{f} }

type fakeDev struct{ f *fakeUSB }

func (d fakeDev) Read(p []byte) (int, error) {
	f := d.f
	for {
		f.mu.Lock()
		switch {
		case f.devGone:
			f.mu.Unlock()
			return 0, io.ErrClosedPipe
		case len(f.toDev) > 0:
			n := copy(p, f.toDev)
			f.toDev = f.toDev[n:]
			f.mu.Unlock()
			return n, nil
		case f.gone:
			f.mu.Unlock()
			return 0, io.EOF
		}
		w := f.wake
		f.mu.Unlock()
		<-w
	}
}

func (d fakeDev) Write(p []byte) (int, error) {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone || f.devGone {
		return 0, io.ErrClosedPipe
	}
	f.toHost = append(f.toHost, p...)
	f.notifyLocked()
	return len(p), nil
}

func (d fakeDev) Close() error {
	f := d.f
	f.mu.Lock()
	f.devGone, f.gone = true, true
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

// usbBench makes bench's transport a fake USB device: fragmented,
// delayed IN transfers with short read timeouts, chunked OUT transfers.
// It returns the devices made, one per open.
func usbBench(b *bench) func() []*fakeUSB {
	var mu sync.Mutex
	var all []*fakeUSB
	b.wire = func() (io.ReadWriteCloser, io.ReadWriteCloser) {
		f := newFakeUSB()
		f.inChunk, f.inDelay, f.outChunk = 7, time.Millisecond, 5
		mu.Lock()
		all = append(all, f)
		mu.Unlock()
		gw := f.stream(device.BulkStreamOptions{Name: "usb 1234:5678", ReadTimeout: 5 * time.Millisecond,
			WriteTimeout: time.Second, ReadSize: 64})
		return gw, f.dev()
	}
	return func() []*fakeUSB {
		mu.Lock()
		defer mu.Unlock()
		return append([]*fakeUSB(nil), all...)
	}
}
