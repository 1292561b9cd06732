package protocol

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
)

// link is one connection to the host. Three goroutines serve it: readLoop
// reads the host's messages and hands each response to the request it
// answers; writeLoop writes the queued frames; watch sends the echoes. The
// first failure kills the link: the connection is closed and every waiting
// request returns at once.
type link struct {
	c     *Client
	tcp   net.Conn // the TCP connection: closing it unblocks every read and write
	nc    net.Conn // tcp, or the TLS connection over it
	start time.Time

	lastRecv atomic.Int64 // monotonic time since start at which the host's last message ended
	signedOn atomic.Bool
	timeouts atomic.Int32 // consecutive Exchange timeouts

	mu      sync.Mutex
	pending map[string]*outstanding // by requestKey, until answered or given up
	queue   []queued                // frames waiting for the writer
	wake    chan struct{}           // tells the writer the queue is not empty

	once sync.Once
	dead chan struct{} // closed by kill
	err  error         // why the link died, set before dead is closed
	wg   sync.WaitGroup
}

// outstanding is a request waiting for its response. written and
// abandoned are guarded by link.mu: the writer sets written before the
// first byte of the frame is written, and skips the frame when the caller
// abandoned it first.
type outstanding struct {
	frame     []byte
	resp      chan *wireMessage // receives the first matching answer, once
	written   bool              // the host may have it
	abandoned bool              // the caller gave up before the writer took it: never write it
}

// queued is a frame waiting for the writer: a request (o set) or a reply.
type queued struct {
	o     *outstanding
	frame []byte
}

// kill records the first reason the link failed and closes the TCP
// connection, which ends the reader and the writer (even in a blocked
// write) and makes every waiting request return.
func (l *link) kill(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.dead)
		l.tcp.Close()
		if err != errDrained {
			l.c.log.Warn("acquirer link dead", "address", l.c.opts.Address, "err", err)
		}
	})
}

// send registers o under key and queues it for the writer. It fails, with
// nothing sent, when the link is dead or a request with the same key waits.
func (l *link) send(key string, o *outstanding) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.dead:
		return fmt.Errorf("%w: link down: %w", sterad.ErrHostUnavailable, l.err)
	default:
	}
	if _, dup := l.pending[key]; dup {
		return ErrDuplicateRequest
	}
	l.pending[key] = o
	l.enqueue(queued{o: o, frame: o.frame})
	return nil
}

// reply queues a frame that answers the host.
func (l *link) reply(frame []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enqueue(queued{frame: frame})
}

// enqueue appends q to the queue and wakes the writer. l.mu is held.
func (l *link) enqueue(q queued) {
	l.queue = append(l.queue, q)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// giveUp withdraws o, whose caller stops waiting. It reports whether o's
// write had started, and whether an answer was delivered first (then o's
// channel holds it).
func (l *link) giveUp(key string, o *outstanding) (written, answered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[key] != o {
		return true, true
	}
	delete(l.pending, key)
	if !o.written {
		o.abandoned = true
	}
	return o.written, false
}

// timedOut counts an Exchange that got no answer by its deadline, and
// kills the link at MaxTimeouts in a row.
func (l *link) timedOut() {
	if n := int(l.timeouts.Add(1)); n >= l.c.opts.MaxTimeouts {
		l.kill(fmt.Errorf("%d requests in a row unanswered", n))
	}
}

// writeLoop writes the queued frames, a batch at a time, each write bounded
// by Timeout: a host that takes no bytes for that long is dead.
func (l *link) writeLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.wake:
		case <-l.dead:
			return
		}
		for {
			buf, more := l.take()
			if len(buf) > 0 {
				l.nc.SetWriteDeadline(time.Now().Add(l.c.opts.Timeout))
				if _, err := l.nc.Write(buf); err != nil {
					l.kill(fmt.Errorf("write: %w", err))
					return
				}
			}
			if !more {
				break
			}
		}
	}
}

// take removes up to maxBatch bytes of frames from the queue, marking each
// request written, and skipping the requests whose callers gave up. more
// reports whether frames remain.
func (l *link) take() (buf []byte, more bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for ; n < len(l.queue); n++ {
		q := l.queue[n]
		if len(buf) > 0 && len(buf)+len(q.frame) > maxBatch {
			break
		}
		if q.o != nil {
			if q.o.abandoned {
				continue
			}
			q.o.written = true
		}
		buf = append(buf, q.frame...)
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	if len(l.queue) == 0 {
		l.queue = nil
	}
	return buf, len(l.queue) > 0
}

// readLoop reads the 2-byte big-endian length and the message, over and
// over. It skips oversized and malformed messages, logging them without
// their content, so that one bad message does not cost the link.
func (l *link) readLoop() {
	defer l.wg.Done()
	c := l.c
	r := bufio.NewReader(l.nc)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			l.kill(fmt.Errorf("read: %w", err))
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > MaxMessageLength {
			if _, err := r.Discard(n); err != nil {
				l.kill(fmt.Errorf("read: %w", err))
				return
			}
			l.received()
			c.stats.oversized.Add(1)
			c.log.Error("acquirer sent a message longer than the maximum: skipped", "length", n, "max", MaxMessageLength)
			continue
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			l.kill(fmt.Errorf("read: %w", err))
			return
		}
		l.received()
		msg, err := parse(b)
		if err != nil {
			c.stats.malformed.Add(1)
			c.logFormatError("acquirer sent a malformed message: skipped", err, "length", n)
			continue
		}
		if !sterad.MTI(msg.mti).IsResponse() {
			c.inbound(l, msg)
			continue
		}
		if !l.deliver(msg) {
			c.late(msg)
		}
	}
}

// received notes that a whole message came from the host: it is alive.
func (l *link) received() { l.lastRecv.Store(int64(time.Since(l.start))) }

// deliver hands msg to the written request it answers, removing the
// request in the same step: a second answer finds nothing and is late.
func (l *link) deliver(msg *wireMessage) bool {
	key := requestKey(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.pending[key]
	if o == nil || !o.written {
		return false
	}
	delete(l.pending, key)
	o.resp <- msg // buffered, and o can be delivered only once
	l.timeouts.Store(0)
	return true
}

// watch sends an echo whenever the host has sent nothing for
// EchoInterval, and kills the link when one goes unanswered.
func (l *link) watch() {
	defer l.wg.Done()
	c := l.c
	l.received() // the sign-on's answer
	t := time.NewTimer(c.opts.EchoInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.dead:
			return
		}
		if idle := time.Since(l.start) - time.Duration(l.lastRecv.Load()); idle < c.opts.EchoInterval {
			t.Reset(c.opts.EchoInterval - idle)
			continue
		}
		if err := c.echo(l); err != nil {
			l.kill(err)
			return
		}
		t.Reset(c.opts.EchoInterval)
	}
}
