package acquirer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// conn is one gateway connection. Its reader decides every request in
// arrival order (so a sign-on, or a sale and its reversal, sent back to
// back are seen in that order); responses are written by their own
// goroutines, after the journal write and any delay, so they may leave out
// of order.
type conn struct {
	h  *Host
	nc net.Conn
	id uint64

	wmu sync.Mutex // one frame at a time

	signedOn bool // reader goroutine only
}

func (c *conn) serve() {
	h := c.h
	defer h.wg.Done()
	defer h.removeConn(c)
	defer c.nc.Close()
	h.log.Info("gateway connected", "conn", c.id, "remote", c.nc.RemoteAddr().String())
	br := bufio.NewReaderSize(c.nc, 8<<10)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			c.closed(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > protocol.MaxMessageLength {
			h.stats.oversized.Add(1)
			h.log.Warn("message longer than 4096 bytes discarded", "conn", c.id, "length", n)
			if _, err := br.Discard(n); err != nil {
				c.closed(err)
				return
			}
			continue
		}
		if n == 0 {
			continue
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			c.closed(err)
			return
		}
		c.handle(buf)
	}
}

func (c *conn) closed(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		c.h.log.Info("gateway disconnected", "conn", c.id)
		return
	}
	c.h.log.Info("gateway connection failed", "conn", c.id, "err", err)
}

// handle decides one message and schedules its response.
func (c *conn) handle(raw []byte) {
	h := c.h
	msg, err := protocol.UnpackISO(raw)
	if err != nil {
		h.stats.malformed.Add(1)
		h.log.Warn("malformed message skipped", "conn", c.id, "err", err)
		return
	}
	now := h.clock.Now()
	req, ferr := protocol.FromISO(msg, now)
	if req == nil {
		h.stats.malformed.Add(1)
		h.log.Warn("message without a valid MTI skipped", "conn", c.id, "err", ferr)
		return
	}
	if req.MTI.IsResponse() {
		h.stats.malformed.Add(1)
		h.log.Warn("response received by the host skipped", "conn", c.id, "mti", req.MTI)
		return
	}
	h.stats.request(req.MTI)
	if h.silent.Load() {
		// A host that takes messages and never answers: nothing is
		// processed, nothing is sent back, not even to an echo.
		h.stats.dropped.Add(1)
		return
	}

	var out outcome
	switch {
	case req.MTI == sterad.MTINetwork:
		out = h.st.pack(c.network(req, ferr))
	case !c.signedOn:
		h.log.Warn("request before sign-on", "conn", c.id, "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN))
		out = h.st.pack(reply(req, codeNotSignedOn))
	default:
		out = h.st.process(req, ferr, now)
	}
	if out.dup {
		h.stats.duplicates.Add(1)
	}
	if out.silent {
		h.stats.dropped.Add(1)
		h.flushJournal()
		return
	}
	if out.code == codeFormat {
		h.stats.formatErrors.Add(1)
	}
	drop := req.MTI != sterad.MTINetwork && h.takeDrop()
	h.wg.Add(1)
	go c.respond(out.resp, drop)
}

// network answers an 0800: sign-on, sign-off and echo. Only a sign-on is
// accepted before sign-on.
func (c *conn) network(req *sterad.HostMessage, ferr error) *sterad.HostMessage {
	resp := reply(req, codeApproved)
	resp.NetworkCode = req.NetworkCode
	bad := func(why string) *sterad.HostMessage {
		c.h.log.Error("bad network management request: gateway bug", "conn", c.id, "terminal", req.TerminalID, "stan", int(req.STAN), "reason", why)
		resp.ResponseCode = codeFormat
		return resp
	}
	switch {
	case ferr != nil:
		return bad(ferr.Error())
	case req.Transmitted.IsZero() || req.STAN == 0 || req.TerminalID == "":
		return bad("DE 7, 11 or 41 missing")
	}
	switch req.NetworkCode {
	case sterad.NetSignOn:
		c.signedOn = true
		c.h.log.Info("gateway signed on", "conn", c.id, "terminal", req.TerminalID)
	case sterad.NetSignOff, sterad.NetEcho:
		if !c.signedOn {
			resp.ResponseCode = codeNotSignedOn
			return resp
		}
		if req.NetworkCode == sterad.NetSignOff {
			c.signedOn = false
			c.h.log.Info("gateway signed off", "conn", c.id, "terminal", req.TerminalID)
		}
	default:
		return bad("DE 70 must be 001, 002 or 301")
	}
	return resp
}

// respond writes the journal, waits out the delay and sends b (or drops
// it).
func (c *conn) respond(b []byte, drop bool) {
	h := c.h
	defer h.wg.Done()
	h.flushJournal()
	if d := time.Duration(h.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.done:
			t.Stop()
			return
		}
	}
	if drop {
		h.stats.dropped.Add(1)
		h.log.Info("response dropped (test control)", "conn", c.id)
		return
	}
	frame := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(frame, uint16(len(b)))
	copy(frame[2:], b)
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout))
	_, err := c.nc.Write(frame)
	c.wmu.Unlock()
	if err != nil {
		h.log.Info("response not delivered", "conn", c.id, "err", err)
		c.nc.Close()
		return
	}
	h.stats.responses.Add(1)
}
