package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
)

// The bench times each exchange on the acquirer's side of the link: when
// a request's last byte was read from the connection and when its answer
// was written to it, matched by terminal ID and STAN (DE 41, DE 11). The
// daemon's time for a transaction minus that is what the gateway adds,
// loopback network time included.

// hostTimer records the acquirer's own time per exchange while on.
type hostTimer struct {
	on      atomic.Bool
	mu      sync.Mutex
	arrived map[string]time.Time     // "TID/STAN" → request read
	took    map[string]time.Duration // "TID/STAN" → answer written − request read
}

func newHostTimer() *hostTimer {
	return &hostTimer{arrived: map[string]time.Time{}, took: map[string]time.Duration{}}
}

// exchange returns the acquirer's time of an exchange timed while on.
func (h *hostTimer) exchange(tid, stan string) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.took[tid+"/"+stan]
	return d, ok
}

// frameKey reads DE 41 and DE 11 of a framed ISO 8583 message ("" if it has
// neither). Nothing of the message is kept or logged.
func frameKey(frame []byte, now time.Time) string {
	msg, err := protocol.UnpackISO(frame)
	if err != nil {
		return ""
	}
	m, _ := protocol.FromISO(msg, now)
	if m == nil || m.TerminalID == "" || m.STAN == 0 {
		return ""
	}
	return m.TerminalID + "/" + m.STAN.String()
}

func (h *hostTimer) request(frame []byte, at time.Time) {
	if k := frameKey(frame, at); k != "" {
		h.mu.Lock()
		if _, dup := h.arrived[k]; !dup {
			h.arrived[k] = at
		}
		h.mu.Unlock()
	}
}

func (h *hostTimer) answer(frame []byte, at time.Time) {
	if k := frameKey(frame, at); k != "" {
		h.mu.Lock()
		if t0, ok := h.arrived[k]; ok {
			h.took[k] = at.Sub(t0)
			delete(h.arrived, k)
		}
		h.mu.Unlock()
	}
}

// frames splits a byte stream into 2-byte length framed messages. It
// copies a frame's bytes only while keep says so.
type frames struct {
	hdr  [2]byte
	nh   int    // header bytes read
	need int    // body bytes still to come; 0 while reading a header
	body []byte // the frame being kept
	keep bool
}

func (f *frames) feed(p []byte, keep bool, emit func([]byte)) {
	for len(p) > 0 {
		if f.need == 0 {
			c := copy(f.hdr[f.nh:], p)
			f.nh += c
			p = p[c:]
			if f.nh == 2 {
				f.nh = 0
				f.need = int(binary.BigEndian.Uint16(f.hdr[:]))
				f.keep, f.body = keep, f.body[:0]
			}
			continue
		}
		k := min(f.need, len(p))
		if f.keep {
			f.body = append(f.body, p[:k]...)
		}
		f.need -= k
		p = p[k:]
		if f.need == 0 && f.keep {
			emit(f.body)
		}
	}
}

// timedConn is the acquirer's end of a connection: what it reads are
// requests, what it writes answers.
type timedConn struct {
	net.Conn
	t       *hostTimer
	in, out frames
}

func (c *timedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		now := time.Now()
		c.in.feed(p[:n], c.t.on.Load(), func(b []byte) { c.t.request(b, now) })
	}
	return n, err
}

// Write times the answers in p before writing them: once they are
// written, the daemon may commit one and answer its caller, who asks for
// its time, before this goroutine runs again. (The write itself counts as
// the gateway's, like the rest of the loopback.)
func (c *timedConn) Write(p []byte) (int, error) {
	now := time.Now()
	c.out.feed(p, c.t.on.Load(), func(b []byte) { c.t.answer(b, now) })
	return c.Conn.Write(p)
}

// timedListener hands out timed connections.
type timedListener struct {
	net.Listener
	t *hostTimer
}

func (l timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &timedConn{Conn: c, t: l.t}, nil
}

// benchHost is the acquirer the bench measures against: the test acquirer
// run by the bench itself, or an external one behind a timing proxy.
type benchHost struct {
	addr  string // what the daemon and the raw run connect to
	timer *hostTimer
	what  string // for the output
	close func()
}

// startTestAcquirer runs the test acquirer in this process on loopback,
// its ledger in memory (a real acquirer is on another machine: its own
// fsyncs would only add the disk's time to the gateway's).
func startTestAcquirer() (*benchHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := acquirer.New(acquirer.Options{})
	t := newHostTimer()
	go h.Serve(timedListener{Listener: ln, t: t})
	return &benchHost{addr: ln.Addr().String(), timer: t, what: "the test acquirer in the bench process", close: func() { h.Close() }}, nil
}

// startTimingProxy relays loopback connections to an external acquirer
// at upstream, timing each exchange at the relay: the acquirer's time
// then includes the network to it.
func startTimingProxy(upstream string) (*benchHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := newHostTimer()
	tl := timedListener{Listener: ln, t: t}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				up, err := (&net.Dialer{}).DialContext(ctx, "tcp", upstream)
				cancel()
				if err != nil {
					return
				}
				defer up.Close()
				track(c, true)
				track(up, true)
				defer track(c, false)
				defer track(up, false)
				done := make(chan struct{}, 2)
				relay := func(dst, src net.Conn) {
					io.Copy(dst, src)
					done <- struct{}{}
				}
				go relay(up, c) // requests: read (timed) from the daemon
				go relay(c, up) // answers: written (timed) to the daemon
				<-done
			}()
		}
	}()
	closeAll := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return &benchHost{addr: ln.Addr().String(), timer: t, what: "the acquirer at " + upstream + " through the bench's timing relay", close: closeAll}, nil
}
