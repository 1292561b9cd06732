package device_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

// threeFrames is a byte stream of three SFL/1 frames.
func threeFrames(t *testing.T) []byte {
	t.Helper()
	var b []byte
	for i, typ := range []protocol.FrameType{protocol.TypeProgress, protocol.TypeCard, protocol.TypeResult} {
		p, err := protocol.MarshalPayload(map[string]any{"txn_id": "txn-1", "n": i, "pad": strings.Repeat("x", 20*i)})
		if err != nil {
			t.Fatal(err)
		}
		b = protocol.AppendFrame(b, protocol.Frame{Seq: byte(i + 1), Type: typ, Payload: p})
	}
	return b
}

// readN reads exactly n bytes from r with reads of at most chunk bytes.
func readN(t *testing.T, r io.Reader, n, chunk int) []byte {
	t.Helper()
	res := async(func() ([]byte, error) {
		var got []byte
		buf := make([]byte, chunk)
		for len(got) < n {
			k, err := r.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				return got, err
			}
		}
		return got, nil
	})
	got, err := await(t, res)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", len(got), err)
	}
	return got
}

func TestBulkStreamFragmentation(t *testing.T) {
	want := threeFrames(t)
	for name, tc := range map[string]struct {
		inChunk, readBuf int
	}{
		"frames split across transfers": {inChunk: 5, readBuf: 1024},
		"several frames per transfer":   {inChunk: 0, readBuf: 1024},
		"transfer larger than the read": {inChunk: 0, readBuf: 3},
		"one byte per transfer":         {inChunk: 1, readBuf: 2},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeUSB()
			f.inChunk = tc.inChunk
			s := f.stream(device.BulkStreamOptions{ReadSize: 64})
			defer s.Close()
			if _, err := f.dev().Write(want); err != nil {
				t.Fatal(err)
			}
			got := readN(t, s, len(want), tc.readBuf)
			if !bytes.Equal(got, want) {
				t.Fatalf("stream bytes differ:\n got %x\nwant %x", got, want)
			}
			// Every IN transfer asks for ReadSize bytes, whatever the
			// caller's buffer: a packet never overflows it.
			f.bufSizes.Range(func(k, _ any) bool {
				if k.(int) != 64 {
					t.Errorf("IN transfer of %d bytes, want 64", k)
				}
				return true
			})
			// The decoder gets the three frames back.
			var dec protocol.Decoder
			dec.Feed(got, time.Now())
			for i := range 3 {
				ev, ok := dec.Next()
				if !ok || ev.Kind != protocol.DecodedFrame || ev.Frame.Seq != byte(i+1) {
					t.Fatalf("frame %d: %+v %v", i, ev, ok)
				}
			}
		})
	}
}

func TestBulkStreamTimeoutsAreNotErrors(t *testing.T) {
	f := newFakeUSB()
	s := f.stream(device.BulkStreamOptions{ReadTimeout: 2 * time.Millisecond})
	defer s.Close()
	res := async(func() ([]byte, error) {
		buf := make([]byte, 16)
		n, err := s.Read(buf)
		return buf[:n], err
	})
	eventually(t, "a few read timeouts", func() bool { return f.inTimeouts.Load() >= 5 })
	f.dev().Write([]byte("late"))
	if got, err := await(t, res); err != nil || string(got) != "late" {
		t.Fatalf("Read = %q, %v", got, err)
	}
}

func TestBulkStreamDataWithCancelledTransfer(t *testing.T) {
	// A transfer that got data before its timeout cancelled it returns
	// the data with TransferCancelled: the data counts, the error not.
	f := newFakeUSB()
	f.cancelWithData, f.inChunk = true, 4
	s := f.stream(device.BulkStreamOptions{ReadTimeout: 5 * time.Millisecond})
	defer s.Close()
	f.dev().Write([]byte("abcdefghij"))
	if got := readN(t, s, 10, 16); string(got) != "abcdefghij" {
		t.Fatalf("got %q", got)
	}
}

func TestBulkStreamDelayedTransfers(t *testing.T) {
	f := newFakeUSB()
	f.inChunk, f.inDelay = 3, 2*time.Millisecond
	s := f.stream(device.BulkStreamOptions{ReadTimeout: 50 * time.Millisecond})
	defer s.Close()
	want := threeFrames(t)
	go f.dev().Write(want)
	if got := readN(t, s, len(want), 100); !bytes.Equal(got, want) {
		t.Fatal("stream bytes differ")
	}
}

func TestBulkStreamUnplug(t *testing.T) {
	for name, goneErr := range map[string]error{
		"transfer no device": fakeNoDevice,
		"other failure":      errors.New("halt condition detected"),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeUSB()
			f.goneErr = goneErr
			s := f.stream(device.BulkStreamOptions{Name: "usb 1234:5678", ReadTimeout: 5 * time.Millisecond})
			defer s.Close()
			// Data sent before the unplug is read first.
			f.dev().Write([]byte("last words"))
			f.unplug()
			got := readN(t, s, 10, 64)
			if string(got) != "last words" {
				t.Fatalf("got %q", got)
			}
			_, err := s.Read(make([]byte, 8))
			if !errors.Is(err, goneErr) || !strings.Contains(err.Error(), "usb 1234:5678") {
				t.Fatalf("Read after unplug = %v", err)
			}
			if device.USBSupported && goneErr == fakeNoDevice && !strings.Contains(err.Error(), "unplugged") {
				t.Fatalf("no-device error does not say unplugged: %v", err)
			}
			// Sticky, and writes fail too.
			if _, err2 := s.Read(make([]byte, 8)); !errors.Is(err2, goneErr) {
				t.Fatalf("second Read = %v", err2)
			}
			if _, err := s.Write([]byte("x")); !errors.Is(err, goneErr) {
				t.Fatalf("Write after unplug = %v", err)
			}
		})
	}
	t.Run("during a pending read", func(t *testing.T) {
		f := newFakeUSB()
		s := f.stream(device.BulkStreamOptions{ReadTimeout: time.Hour})
		defer s.Close()
		res := async(func() (int, error) { return s.Read(make([]byte, 8)) })
		eventually(t, "the read to start", func() bool { return f.inCalls.Load() > 0 })
		f.unplug()
		if _, err := await(t, res); !errors.Is(err, fakeNoDevice) {
			t.Fatalf("Read = %v", err)
		}
	})
}

func TestBulkStreamCloseUnblocksRead(t *testing.T) {
	f := newFakeUSB()
	s := f.stream(device.BulkStreamOptions{ReadTimeout: time.Hour})
	res := async(func() (int, error) { return s.Read(make([]byte, 8)) })
	eventually(t, "the read to start", func() bool { return f.inFlight.Load() == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := await(t, res); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read across Close = %v", err)
	}
	if f.released.Load() != 1 || f.releasedIn.Load() != 0 {
		t.Fatalf("released %d times, with %d transfers in flight", f.released.Load(), f.releasedIn.Load())
	}
	if err := s.Close(); err != nil || f.released.Load() != 1 {
		t.Fatalf("second Close = %v, released %d times", err, f.released.Load())
	}
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

func TestBulkStreamCloseUnblocksWrite(t *testing.T) {
	f := newFakeUSB()
	f.outStall = true
	s := f.stream(device.BulkStreamOptions{WriteTimeout: time.Hour})
	res := async(func() (int, error) { return s.Write([]byte("stuck")) })
	s.Close()
	if _, err := await(t, res); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write across Close = %v", err)
	}
}

func TestBulkStreamWrite(t *testing.T) {
	f := newFakeUSB()
	f.outChunk = 3
	s := f.stream(device.BulkStreamOptions{})
	defer s.Close()
	want := threeFrames(t)
	if n, err := s.Write(want); n != len(want) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readN(t, f.dev(), len(want), 4096); !bytes.Equal(got, want) {
		t.Fatal("the device got other bytes")
	}

	// A device that takes nothing: the write fails after WriteTimeout.
	f.set(func(f *fakeUSB) { f.outStall = true })
	s2 := f.stream(device.BulkStreamOptions{Name: "usb 1234:5678", WriteTimeout: 10 * time.Millisecond})
	defer s2.Close()
	n, err := s2.Write([]byte("hello"))
	if n != 0 || err == nil || !strings.Contains(err.Error(), "took no data") {
		t.Fatalf("stalled Write = %d, %v", n, err)
	}
	f.set(func(f *fakeUSB) { f.outStall = false })
	if _, err2 := s2.Write([]byte("hello")); err2 == nil {
		t.Fatal("a failed stream wrote again")
	}
}
