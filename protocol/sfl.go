package protocol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// SFL/1 framing constants (docs/terminal-protocol.md §2).
const (
	STX        = 0x02
	ETX        = 0x03
	SFLVersion = 0x01
	// MaxPayload is the largest payload a frame may carry.
	MaxPayload = 4096
	headerLen  = 6 // STX VER SEQ TYPE LEN(2)
	trailerLen = 5 // ETX CRC(4)
)

// SFL/1 link timers (docs/terminal-protocol.md#link-layer).
const (
	T1 = 200 * time.Millisecond // inter-byte timeout inside a frame
	T2 = 2 * time.Second        // wait for ACK before retransmitting
	T3 = 5 * time.Second        // terminal answers a request within T3
	T4 = 180 * time.Second      // inactivity while waiting for the card
	// PingInterval is how often the gateway pings an idle terminal.
	PingInterval = 5 * time.Second
	// MaxRetransmits is how many times a data frame is resent before the
	// link is declared failed.
	MaxRetransmits = 2
)

// FrameType is the TYPE byte of a frame.
type FrameType byte

// Frame types (docs/terminal-protocol.md §4).
const (
	TypeHello       FrameType = 0x01
	TypeHelloResp   FrameType = 0x81
	TypeACK         FrameType = 0x06
	TypeNAK         FrameType = 0x15
	TypeReadCard    FrameType = 0x10
	TypeProgress    FrameType = 0x20
	TypeCard        FrameType = 0x21
	TypeOutcome     FrameType = 0x22
	TypeResult      FrameType = 0x30
	TypeCancel      FrameType = 0x40
	TypeCancelResp  FrameType = 0x41
	TypeStatusQuery FrameType = 0x50
	TypeStatusResp  FrameType = 0x51
	TypePing        FrameType = 0x60
	TypePong        FrameType = 0x61
	TypeError       FrameType = 0x7F
)

var frameTypeNames = map[FrameType]string{
	TypeHello: "HELLO", TypeHelloResp: "HELLO_RESP", TypeACK: "ACK", TypeNAK: "NAK",
	TypeReadCard: "READ_CARD", TypeProgress: "PROGRESS", TypeCard: "CARD", TypeOutcome: "OUTCOME",
	TypeResult: "RESULT", TypeCancel: "CANCEL", TypeCancelResp: "CANCEL_RESP",
	TypeStatusQuery: "STATUS_QUERY", TypeStatusResp: "STATUS_RESP", TypePing: "PING", TypePong: "PONG",
	TypeError: "ERROR",
}

func (t FrameType) String() string {
	if n, ok := frameTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("TYPE(0x%02X)", byte(t))
}

// Known reports whether t is a frame type of SFL/1.
func (t FrameType) Known() bool { _, ok := frameTypeNames[t]; return ok }

// IsControl reports whether t is ACK or NAK: never acknowledged, never
// numbered on their own.
func (t FrameType) IsControl() bool { return t == TypeACK || t == TypeNAK }

// IsSession reports whether t is HELLO or HELLO_RESP, which carry SEQ 0.
func (t FrameType) IsSession() bool { return t == TypeHello || t == TypeHelloResp }

// emptyPayload reports whether frames of type t never carry a payload.
func (t FrameType) emptyPayload() bool {
	switch t {
	case TypeACK, TypeNAK, TypePing, TypePong:
		return true
	}
	return false
}

// Frame is one SFL/1 frame. Payload is a UTF-8 JSON object, empty for ACK,
// NAK, PING and PONG. A Frame's payload may carry card data: never log it
// (String shows only the header).
type Frame struct {
	Seq     byte
	Type    FrameType
	Payload []byte
}

// String describes the frame without its payload.
func (f Frame) String() string {
	return fmt.Sprintf("%s seq=%d len=%d", f.Type, f.Seq, len(f.Payload))
}

// AppendFrame appends the encoded frame to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	start := len(dst)
	dst = append(dst, STX, SFLVersion, f.Seq, byte(f.Type), 0, 0)
	binary.BigEndian.PutUint16(dst[start+4:], uint16(len(f.Payload)))
	dst = append(dst, f.Payload...)
	dst = append(dst, ETX)
	crc := crc32.ChecksumIEEE(dst[start+1:])
	return binary.BigEndian.AppendUint32(dst, crc)
}

// EncodeFrame returns the encoded frame. It returns an error when the
// payload is too long or the header is not one SFL/1 allows.
func EncodeFrame(f Frame) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return AppendFrame(make([]byte, 0, headerLen+len(f.Payload)+trailerLen), f), nil
}

func (f Frame) check() error {
	if len(f.Payload) > MaxPayload {
		return fmt.Errorf("sfl: payload of %d bytes exceeds %d", len(f.Payload), MaxPayload)
	}
	if !validHeader(f.Seq, f.Type, len(f.Payload)) {
		return fmt.Errorf("sfl: %s with seq %d and %d payload bytes is not a valid frame", f.Type, f.Seq, len(f.Payload))
	}
	return nil
}

// validHeader applies the structural rules of a header: a known type, SEQ
// 0 only for HELLO/HELLO_RESP (and for the ACK/NAK of those), data frames
// numbered 1–255, no payload on ACK, NAK, PING, PONG.
func validHeader(seq byte, t FrameType, n int) bool {
	if !t.Known() || n > MaxPayload {
		return false
	}
	if t.emptyPayload() && n != 0 {
		return false
	}
	switch {
	case t.IsSession():
		return seq == 0
	case t.IsControl():
		return true
	default:
		return seq != 0
	}
}

// NextSeq returns the SEQ after s: 1..255, wrapping 255 to 1.
func NextSeq(s byte) byte {
	if s == 255 {
		return 1
	}
	return s + 1
}

// DecodeEvent is what the decoder found in the byte stream.
type DecodeEvent struct {
	Kind  DecodeKind
	Frame Frame // for DecodedFrame; for BadFrame, the header's Seq and Type
	// Discarded counts the noise bytes skipped before this event (bytes
	// outside a frame, impossible headers).
	Discarded int
}

// DecodeKind classifies a DecodeEvent.
type DecodeKind int

// Decode event kinds.
const (
	DecodedFrame DecodeKind = iota + 1 // a valid frame
	BadFrame                           // a complete frame with bad ETX or CRC: answer NAK
	DroppedFrame                       // a partial frame timed out (T1): answer one NAK
)

// Decoder turns an SFL/1 byte stream into frames. It never blocks and
// buffers at most one frame's bytes beyond what it was fed. The caller
// feeds it bytes as they arrive, drains Next, and calls Expire when T1 may
// have passed (see Deadline).
type Decoder struct {
	// T1 is the partial-frame timeout; zero means the SFL/1 default.
	T1 time.Duration

	buf       []byte
	off       int       // start of unconsumed bytes in buf
	last      time.Time // when the last byte arrived
	discarded int       // noise bytes not yet reported
}

// Feed appends bytes received at time now.
func (d *Decoder) Feed(p []byte, now time.Time) {
	if len(p) == 0 {
		return
	}
	if d.off > 0 && d.off >= len(d.buf)/2 {
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
	d.last = now
}

func (d *Decoder) data() []byte { return d.buf[d.off:] }

func (d *Decoder) consume(n int) {
	d.off += n
	if d.off == len(d.buf) {
		d.buf, d.off = d.buf[:0], 0
	}
}

// Pending reports whether a partial frame is buffered.
func (d *Decoder) Pending() bool { return len(d.data()) > 0 }

// Deadline returns when a buffered partial frame expires (zero if none).
func (d *Decoder) Deadline() time.Time {
	if !d.Pending() {
		return time.Time{}
	}
	return d.last.Add(d.t1())
}

func (d *Decoder) t1() time.Duration {
	if d.T1 > 0 {
		return d.T1
	}
	return T1
}

// Next returns the next complete event, or false when more bytes are
// needed.
func (d *Decoder) Next() (DecodeEvent, bool) {
	for {
		b := d.data()
		i := 0
		for i < len(b) && b[i] != STX {
			i++
		}
		if i > 0 {
			d.discarded += i
			d.consume(i)
			b = d.data()
		}
		if len(b) >= 2 && b[1] != SFLVersion {
			d.discard(1)
			continue
		}
		if len(b) < headerLen {
			return DecodeEvent{}, false
		}
		seq, typ := b[2], FrameType(b[3])
		n := int(binary.BigEndian.Uint16(b[4:6]))
		if !validHeader(seq, typ, n) {
			d.discard(1) // an impossible header: the STX was noise
			continue
		}
		total := headerLen + n + trailerLen
		if len(b) < total {
			return DecodeEvent{}, false
		}
		frame := b[:total]
		want := binary.BigEndian.Uint32(frame[total-4:])
		if frame[headerLen+n] != ETX || crc32.ChecksumIEEE(frame[1:total-4]) != want {
			// Resynchronize just after the STX: if the length was
			// corrupted, the frames behind this one are still found.
			ev := d.event(BadFrame, Frame{Seq: seq, Type: typ})
			d.consume(1)
			return ev, true
		}
		payload := make([]byte, n)
		copy(payload, frame[headerLen:headerLen+n])
		ev := d.event(DecodedFrame, Frame{Seq: seq, Type: typ, Payload: payload})
		d.consume(total)
		return ev, true
	}
}

// Expire drops a partial frame that has had no byte for T1 at now, and
// returns a DroppedFrame event (answer one NAK) carrying the SEQ and TYPE
// of the partial header when those bytes had arrived.
//
// The partial frame is dropped up to the first complete, valid frame
// buffered behind it (its length may have been corrupted upwards, making
// it swallow the frames that followed): call Next again after Expire to
// collect those.
func (d *Decoder) Expire(now time.Time) (DecodeEvent, bool) {
	b := d.data()
	if len(b) == 0 || now.Sub(d.last) < d.t1() {
		return DecodeEvent{}, false
	}
	var f Frame
	if len(b) >= 3 {
		f.Seq = b[2]
	}
	if len(b) >= 4 {
		f.Type = FrameType(b[3])
	}
	n := len(b)
	for i := 1; i < len(b); i++ {
		if b[i] == STX && completeFrame(b[i:]) {
			n = i
			break
		}
	}
	d.consume(n)
	return d.event(DroppedFrame, f), true
}

// completeFrame reports whether b starts with a whole, valid frame.
func completeFrame(b []byte) bool {
	if len(b) < headerLen || b[0] != STX || b[1] != SFLVersion {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if !validHeader(b[2], FrameType(b[3]), n) {
		return false
	}
	total := headerLen + n + trailerLen
	if len(b) < total || b[headerLen+n] != ETX {
		return false
	}
	return crc32.ChecksumIEEE(b[1:total-4]) == binary.BigEndian.Uint32(b[total-4:total])
}

// TakeDiscarded returns and resets the count of noise bytes skipped since
// the last event.
func (d *Decoder) TakeDiscarded() int {
	n := d.discarded
	d.discarded = 0
	return n
}

func (d *Decoder) discard(n int) {
	d.discarded += n
	d.consume(n)
}

func (d *Decoder) event(k DecodeKind, f Frame) DecodeEvent {
	ev := DecodeEvent{Kind: k, Frame: f, Discarded: d.discarded}
	d.discarded = 0
	return ev
}
