// Package pipetest provides an in-memory, buffered, full-duplex byte pipe
// for tests of the terminal link: unlike net.Pipe, writes never block, so
// two links writing at once cannot deadlock.
package pipetest

import (
	"bytes"
	"io"
	"sync"
)

// End is one end of a pipe. Close on either end ends both directions: the
// peer reads the bytes already written, then io.EOF.
type End struct {
	p    *pipe
	in   *bytes.Buffer
	out  *bytes.Buffer
	self int
}

type pipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed [2]bool
	ab, ba bytes.Buffer
}

// New returns the two ends of a new pipe.
func New() (a, b *End) {
	p := &pipe{}
	p.cond = sync.NewCond(&p.mu)
	return &End{p: p, in: &p.ba, out: &p.ab, self: 0}, &End{p: p, in: &p.ab, out: &p.ba, self: 1}
}

// Read blocks until bytes arrive or either end is closed.
func (e *End) Read(b []byte) (int, error) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	for {
		if e.p.closed[e.self] {
			return 0, io.ErrClosedPipe
		}
		if e.in.Len() > 0 {
			return e.in.Read(b)
		}
		if e.p.closed[1-e.self] {
			return 0, io.EOF
		}
		e.p.cond.Wait()
	}
}

// Write buffers b for the peer; it never blocks.
func (e *End) Write(b []byte) (int, error) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	if e.p.closed[0] || e.p.closed[1] {
		return 0, io.ErrClosedPipe
	}
	e.out.Write(b)
	e.p.cond.Broadcast()
	return len(b), nil
}

// Close closes this end.
func (e *End) Close() error {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	e.p.closed[e.self] = true
	e.p.cond.Broadcast()
	return nil
}
