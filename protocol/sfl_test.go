package protocol_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/sterad/sterad/protocol"
)

var t0 = time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)

// mustEncode encodes f or fails the test.
func mustEncode(t testing.TB, f protocol.Frame) []byte {
	t.Helper()
	b, err := protocol.EncodeFrame(f)
	if err != nil {
		t.Fatalf("encode %s: %v", f, err)
	}
	return b
}

// decodeAll feeds b in one piece and returns every event.
func decodeAll(d *protocol.Decoder, b []byte, now time.Time) []protocol.DecodeEvent {
	d.Feed(b, now)
	return drainEvents(d)
}

func drainEvents(d *protocol.Decoder) []protocol.DecodeEvent {
	var evs []protocol.DecodeEvent
	for {
		ev, ok := d.Next()
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

// sampleFrames has one valid frame of each type.
func sampleFrames() []protocol.Frame {
	p := func(s string) []byte { return []byte(s) }
	return []protocol.Frame{
		{Seq: 0, Type: protocol.TypeHello, Payload: p(`{"proto":1,"gateway_id":"gw","boot_id":"b1"}`)},
		{Seq: 0, Type: protocol.TypeHelloResp, Payload: p(`{"proto":1,"terminal_id":"FRONT001"}`)},
		{Seq: 0, Type: protocol.TypeACK},
		{Seq: 200, Type: protocol.TypeACK},
		{Seq: 3, Type: protocol.TypeNAK},
		{Seq: 1, Type: protocol.TypeReadCard, Payload: p(`{"txn_id":"t1","op":"sale","amount":"12800","currency":"JPY"}`)},
		{Seq: 2, Type: protocol.TypeProgress, Payload: p(`{"txn_id":"t1","code":"PRESENT_CARD"}`)},
		{Seq: 3, Type: protocol.TypeCard, Payload: p(`{"txn_id":"t1","pan":"4111111111111111","expiry":"3012"}`)},
		{Seq: 4, Type: protocol.TypeOutcome, Payload: p(`{"txn_id":"t1","status":"approved"}`)},
		{Seq: 5, Type: protocol.TypeResult, Payload: p(`{"txn_id":"t1","status":"done"}`)},
		{Seq: 6, Type: protocol.TypeCancel, Payload: p(`{"txn_id":"t1"}`)},
		{Seq: 7, Type: protocol.TypeCancelResp, Payload: p(`{"txn_id":"t1","accepted":true}`)},
		{Seq: 8, Type: protocol.TypeStatusQuery, Payload: p(`{"txn_id":"t1"}`)},
		{Seq: 9, Type: protocol.TypeStatusResp, Payload: p(`{"txn_id":"t1","state":"done"}`)},
		{Seq: 10, Type: protocol.TypePing},
		{Seq: 255, Type: protocol.TypePong},
		{Seq: 11, Type: protocol.TypeError, Payload: p(`{"txn_id":"t1","code":"BUSY"}`)},
		{Seq: 12, Type: protocol.TypeResult, Payload: bytes.Repeat([]byte("x"), protocol.MaxPayload)},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		t.Run(f.String(), func(t *testing.T) {
			b := mustEncode(t, f)
			if len(b) != 6+len(f.Payload)+5 {
				t.Fatalf("encoded %d bytes, want %d", len(b), 6+len(f.Payload)+5)
			}
			var d protocol.Decoder
			evs := decodeAll(&d, b, t0)
			if len(evs) != 1 || evs[0].Kind != protocol.DecodedFrame {
				t.Fatalf("events = %+v, want one frame", evs)
			}
			got := evs[0].Frame
			if got.Seq != f.Seq || got.Type != f.Type || !bytes.Equal(got.Payload, f.Payload) {
				t.Fatalf("decoded %s, want %s", got, f)
			}
			if evs[0].Discarded != 0 || d.Pending() {
				t.Fatalf("discarded %d, pending %v", evs[0].Discarded, d.Pending())
			}
		})
	}
}

// crc32IEEE is CRC-32/IEEE computed bit by bit (reflected polynomial
// 0xEDB88320), independent of hash/crc32.
func crc32IEEE(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestFrameGoldenBytes(t *testing.T) {
	// CANCEL, SEQ 7, payload {"txn_id":"T1"} (15 bytes). The CRC was
	// computed outside Go (zlib.crc32 over VER..ETX) and is checked again
	// below with a bitwise implementation.
	const golden = "02" + "01" + "07" + "40" + "000f" +
		"7b2274786e5f6964223a225431227d" + // {"txn_id":"T1"}
		"03" + "44f3dbcb"
	want, _ := hex.DecodeString(golden)
	f := protocol.Frame{Seq: 7, Type: protocol.TypeCancel, Payload: []byte(`{"txn_id":"T1"}`)}
	got := mustEncode(t, f)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n %x\nwant\n %x", got, want)
	}
	if crc := crc32IEEE(want[1 : len(want)-4]); crc != binary.BigEndian.Uint32(want[len(want)-4:]) {
		t.Fatalf("golden CRC %08x, bitwise CRC %08x", binary.BigEndian.Uint32(want[len(want)-4:]), crc)
	}
	// An ACK: no payload.
	ack, _ := hex.DecodeString("02010306000003815c06b0")
	if got := mustEncode(t, protocol.Frame{Seq: 3, Type: protocol.TypeACK}); !bytes.Equal(got, ack) {
		t.Fatalf("ACK encoded %x, want %x", got, ack)
	}
}

func TestFrameEncodeRejects(t *testing.T) {
	for name, f := range map[string]protocol.Frame{
		"payload too long": {Seq: 1, Type: protocol.TypeResult, Payload: make([]byte, protocol.MaxPayload+1)},
		"seq 0 data frame": {Seq: 0, Type: protocol.TypeReadCard, Payload: []byte(`{}`)},
		"hello with seq":   {Seq: 1, Type: protocol.TypeHello, Payload: []byte(`{}`)},
		"payload on ACK":   {Seq: 1, Type: protocol.TypeACK, Payload: []byte(`{}`)},
		"payload on PING":  {Seq: 1, Type: protocol.TypePing, Payload: []byte(`{}`)},
		"unknown type":     {Seq: 1, Type: 0x33},
	} {
		if _, err := protocol.EncodeFrame(f); err == nil {
			t.Errorf("%s: EncodeFrame accepted %s", name, f)
		}
	}
}

func TestFrameStringHidesPayload(t *testing.T) {
	f := protocol.Frame{Seq: 3, Type: protocol.TypeCard, Payload: []byte(`{"pan":"4111111111111111"}`)}
	if s := f.String(); bytes.Contains([]byte(s), []byte("4111")) {
		t.Fatalf("Frame.String() = %q shows the payload", s)
	}
}

func TestSFLNextSeqWraps(t *testing.T) {
	if got := protocol.NextSeq(255); got != 1 {
		t.Fatalf("NextSeq(255) = %d, want 1", got)
	}
	if got := protocol.NextSeq(0); got != 1 {
		t.Fatalf("NextSeq(0) = %d, want 1", got)
	}
	if got := protocol.NextSeq(41); got != 42 {
		t.Fatalf("NextSeq(41) = %d, want 42", got)
	}
}

func TestDecoderNoise(t *testing.T) {
	a := mustEncode(t, protocol.Frame{Seq: 1, Type: protocol.TypePing})
	b := mustEncode(t, protocol.Frame{Seq: 2, Type: protocol.TypeResult, Payload: []byte(`{"txn_id":"x"}`)})
	var stream []byte
	stream = append(stream, "hello\r\n\xff\x00"...) // 9 bytes of noise
	stream = append(stream, a...)
	stream = append(stream, 0x03, 0x03, 0x7f) // 3 bytes between frames
	stream = append(stream, b...)
	stream = append(stream, "zz"...) // trailing noise: no event

	var d protocol.Decoder
	evs := decodeAll(&d, stream, t0)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(evs), evs)
	}
	for i, want := range []struct {
		seq       byte
		discarded int
	}{{1, 9}, {2, 3}} {
		if evs[i].Kind != protocol.DecodedFrame || evs[i].Frame.Seq != want.seq || evs[i].Discarded != want.discarded {
			t.Errorf("event %d = %v %s discarded %d, want frame seq %d discarded %d",
				i, evs[i].Kind, evs[i].Frame, evs[i].Discarded, want.seq, want.discarded)
		}
	}
	if n := d.TakeDiscarded(); n != 2 {
		t.Errorf("trailing noise: TakeDiscarded = %d, want 2", n)
	}
	if d.Pending() {
		t.Error("noise left a pending frame")
	}

	// Noise alone produces no event at all.
	var d2 protocol.Decoder
	if evs := decodeAll(&d2, []byte("\x00\x01\x03garbage\xfe"), t0); len(evs) != 0 {
		t.Fatalf("noise produced events: %+v", evs)
	}
	if d2.Pending() {
		t.Fatal("noise without STX left a pending frame")
	}
	if ev, ok := d2.Expire(t0.Add(time.Hour)); ok {
		t.Fatalf("noise expired as %+v", ev)
	}
}

func TestDecoderImpossibleHeaders(t *testing.T) {
	// A raw frame with a valid CRC over whatever header it carries: only
	// the header rules can reject it.
	raw := func(ver, seq, typ byte, n int, payload []byte) []byte {
		b := []byte{protocol.STX, ver, seq, typ, byte(n >> 8), byte(n)}
		b = append(b, payload...)
		b = append(b, protocol.ETX)
		return binary.BigEndian.AppendUint32(b, crc32IEEE(b[1:]))
	}
	obj := []byte(`{"txn_id":"t"}`)
	cases := map[string][]byte{
		"VER 2":              raw(0x02, 1, byte(protocol.TypeResult), len(obj), obj),
		"VER 0":              raw(0x00, 1, byte(protocol.TypeResult), len(obj), obj),
		"unknown type":       raw(0x01, 1, 0x33, len(obj), obj),
		"LEN over 4096":      raw(0x01, 1, byte(protocol.TypeResult), 4097, nil),
		"LEN 0xFFFF":         raw(0x01, 1, byte(protocol.TypeResult), 0xFFFF, nil),
		"SEQ 0 data frame":   raw(0x01, 0, byte(protocol.TypeResult), len(obj), obj),
		"HELLO with SEQ 1":   raw(0x01, 1, byte(protocol.TypeHello), len(obj), obj),
		"payload on ACK":     raw(0x01, 1, byte(protocol.TypeACK), len(obj), obj),
		"payload on PONG":    raw(0x01, 1, byte(protocol.TypePong), len(obj), obj),
		"lone STX and VER 9": {protocol.STX, 0x09, 0x01},
	}
	next := mustEncode(t, protocol.Frame{Seq: 9, Type: protocol.TypePing})
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			var d protocol.Decoder
			evs := decodeAll(&d, append(append([]byte(nil), bad...), next...), t0)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want only the frame behind: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.Kind != protocol.DecodedFrame || ev.Frame.Type != protocol.TypePing || ev.Frame.Seq != 9 {
				t.Fatalf("event = %v %s, want PING seq 9", ev.Kind, ev.Frame)
			}
			if ev.Discarded != len(bad) {
				t.Errorf("discarded %d, want %d", ev.Discarded, len(bad))
			}
		})
	}
}

func TestDecoderBadETXAndCRC(t *testing.T) {
	good := protocol.Frame{Seq: 42, Type: protocol.TypeCard, Payload: []byte(`{"txn_id":"t1","pan":"4111111111111111"}`)}
	next := mustEncode(t, protocol.Frame{Seq: 43, Type: protocol.TypePong})
	for name, corrupt := range map[string]func([]byte){
		"bad ETX":      func(b []byte) { b[len(b)-5] = 0x04 },
		"bad CRC":      func(b []byte) { b[len(b)-1] ^= 0x01 },
		"payload flip": func(b []byte) { b[10] ^= 0x20 },
	} {
		t.Run(name, func(t *testing.T) {
			b := mustEncode(t, good)
			corrupt(b)
			var d protocol.Decoder
			evs := decodeAll(&d, append(b, next...), t0)
			if len(evs) != 2 {
				t.Fatalf("got %d events, want BadFrame then PONG: %+v", len(evs), evs)
			}
			if evs[0].Kind != protocol.BadFrame || evs[0].Frame.Seq != 42 || evs[0].Frame.Type != protocol.TypeCard {
				t.Errorf("first event = %v %s, want BadFrame CARD seq 42", evs[0].Kind, evs[0].Frame)
			}
			if evs[0].Frame.Payload != nil {
				t.Errorf("BadFrame carries a payload")
			}
			if evs[1].Kind != protocol.DecodedFrame || evs[1].Frame.Seq != 43 {
				t.Errorf("second event = %v %s, want PONG seq 43", evs[1].Kind, evs[1].Frame)
			}
		})
	}
}

func TestDecoderSplitFeeds(t *testing.T) {
	frames := sampleFrames()
	var stream []byte
	for _, f := range frames {
		stream = append(stream, mustEncode(t, f)...)
	}
	check := func(t *testing.T, evs []protocol.DecodeEvent) {
		t.Helper()
		if len(evs) != len(frames) {
			t.Fatalf("got %d events, want %d", len(evs), len(frames))
		}
		for i, ev := range evs {
			f := frames[i]
			if ev.Kind != protocol.DecodedFrame || ev.Frame.Seq != f.Seq || ev.Frame.Type != f.Type || !bytes.Equal(ev.Frame.Payload, f.Payload) {
				t.Fatalf("event %d = %v %s, want %s", i, ev.Kind, ev.Frame, f)
			}
		}
	}
	t.Run("byte by byte", func(t *testing.T) {
		var d protocol.Decoder
		var evs []protocol.DecodeEvent
		now := t0
		for i := range stream {
			now = now.Add(time.Millisecond)
			d.Feed(stream[i:i+1], now)
			evs = append(evs, drainEvents(&d)...)
			// T1 never passes between bytes: nothing expires.
			if ev, ok := d.Expire(now.Add(time.Millisecond)); ok {
				t.Fatalf("expired mid-stream: %+v", ev)
			}
		}
		check(t, evs)
	})
	t.Run("random chunks", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 50 {
			var d protocol.Decoder
			var evs []protocol.DecodeEvent
			for rest := stream; len(rest) > 0; {
				n := min(1+rng.IntN(40), len(rest))
				d.Feed(rest[:n], t0)
				rest = rest[n:]
				evs = append(evs, drainEvents(&d)...)
			}
			check(t, evs)
			if d.Pending() {
				t.Fatal("bytes left pending after the last frame")
			}
		}
	})
}

func TestDecoderExpire(t *testing.T) {
	b := mustEncode(t, protocol.Frame{Seq: 17, Type: protocol.TypeResult, Payload: []byte(`{"txn_id":"t1","status":"done"}`)})
	d := protocol.Decoder{T1: 200 * time.Millisecond}
	d.Feed(b[:len(b)-3], t0)
	if evs := drainEvents(&d); len(evs) != 0 {
		t.Fatalf("partial frame produced events: %+v", evs)
	}
	if !d.Pending() {
		t.Fatal("partial frame not pending")
	}
	if got, want := d.Deadline(), t0.Add(200*time.Millisecond); !got.Equal(want) {
		t.Fatalf("Deadline = %v, want %v", got, want)
	}
	if ev, ok := d.Expire(t0.Add(199 * time.Millisecond)); ok {
		t.Fatalf("expired before T1: %+v", ev)
	}
	ev, ok := d.Expire(t0.Add(200 * time.Millisecond))
	if !ok || ev.Kind != protocol.DroppedFrame || ev.Frame.Seq != 17 || ev.Frame.Type != protocol.TypeResult {
		t.Fatalf("Expire = %+v %v, want one DroppedFrame RESULT seq 17", ev, ok)
	}
	if ev, ok := d.Expire(t0.Add(time.Hour)); ok {
		t.Fatalf("second Expire = %+v, want nothing", ev)
	}
	if d.Pending() || !d.Deadline().IsZero() {
		t.Fatal("dropped frame still pending")
	}
	// The rest of the frame arriving late is noise, not a frame.
	if evs := decodeAll(&d, b[len(b)-3:], t0.Add(time.Hour)); len(evs) != 0 {
		t.Fatalf("late tail produced events: %+v", evs)
	}

	// A header cut short still expires, as one DroppedFrame with SEQ 0
	// when the SEQ never arrived.
	var d2 protocol.Decoder // default T1
	d2.Feed([]byte{protocol.STX, protocol.SFLVersion}, t0)
	drainEvents(&d2)
	ev, ok = d2.Expire(t0.Add(protocol.T1))
	if !ok || ev.Kind != protocol.DroppedFrame || ev.Frame.Seq != 0 {
		t.Fatalf("Expire of a cut header = %+v %v", ev, ok)
	}
}

func TestDecoderCorruptedLength(t *testing.T) {
	first := mustEncode(t, protocol.Frame{Seq: 5, Type: protocol.TypeProgress, Payload: []byte(`{"txn_id":"t1","code":"PRESENT_CARD"}`)})
	next := mustEncode(t, protocol.Frame{Seq: 6, Type: protocol.TypeCard, Payload: []byte(`{"txn_id":"t1"}`)})
	ack := mustEncode(t, protocol.Frame{Seq: 9, Type: protocol.TypeACK})

	t.Run("shorter", func(t *testing.T) {
		b := append([]byte(nil), first...)
		b[5] -= 10 // LEN shrinks: ETX/CRC land inside the payload
		var d protocol.Decoder
		evs := decodeAll(&d, append(append(b, next...), ack...), t0)
		kinds := eventSummary(evs)
		if !reflect.DeepEqual(kinds, []string{"bad PROGRESS 5", "frame CARD 6", "frame ACK 9"}) {
			t.Fatalf("events = %v", kinds)
		}
	})
	t.Run("longer", func(t *testing.T) {
		b := append([]byte(nil), first...)
		b[4] = 0x01 // LEN grows by 256: the frames behind look like payload
		var d protocol.Decoder
		evs := decodeAll(&d, append(append(b, next...), ack...), t0)
		if len(evs) != 0 {
			t.Fatalf("events before T1 = %v", eventSummary(evs))
		}
		ev, ok := d.Expire(t0.Add(protocol.T1))
		if !ok || ev.Kind != protocol.DroppedFrame || ev.Frame.Seq != 5 {
			t.Fatalf("Expire = %+v %v, want DroppedFrame seq 5", ev, ok)
		}
		evs = drainEvents(&d)
		if got := eventSummary(evs); !reflect.DeepEqual(got, []string{"frame CARD 6", "frame ACK 9"}) {
			t.Fatalf("frames behind the dropped one = %v", got)
		}
		if d.Pending() {
			t.Fatal("still pending")
		}
	})
}

func eventSummary(evs []protocol.DecodeEvent) []string {
	var s []string
	for _, ev := range evs {
		k := map[protocol.DecodeKind]string{protocol.DecodedFrame: "frame", protocol.BadFrame: "bad", protocol.DroppedFrame: "dropped"}[ev.Kind]
		s = append(s, k+" "+ev.Frame.Type.String()+" "+strconv.Itoa(int(ev.Frame.Seq)))
	}
	return s
}

// FuzzDecoder feeds arbitrary bytes in arbitrary chunks: the decoder never
// panics, every frame it returns re-encodes to a valid frame that decodes
// to itself, and bad or dropped frames carry no payload.
func FuzzDecoder(f *testing.F) {
	var all []byte
	for _, fr := range sampleFrames()[:8] {
		b, _ := protocol.EncodeFrame(fr)
		f.Add(b, uint64(0))
		all = append(all, b...)
	}
	f.Add(all, uint64(7))
	f.Add(append([]byte("noise\x02\x01\x00"), all...), uint64(3))
	corrupt := append([]byte(nil), all...)
	corrupt[20] ^= 0xFF
	f.Add(corrupt, uint64(11))
	f.Add([]byte{0x02, 0x01, 0x01, 0x30, 0x10, 0x00, 0x02, 0x01}, uint64(1))

	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		d := protocol.Decoder{T1: 10 * time.Millisecond}
		now := t0
		check := func(ev protocol.DecodeEvent) {
			switch ev.Kind {
			case protocol.DecodedFrame:
				b, err := protocol.EncodeFrame(ev.Frame)
				if err != nil {
					t.Fatalf("decoded %s does not re-encode: %v", ev.Frame, err)
				}
				var d2 protocol.Decoder
				evs := decodeAll(&d2, b, now)
				if len(evs) != 1 || evs[0].Kind != protocol.DecodedFrame || evs[0].Frame.Seq != ev.Frame.Seq ||
					evs[0].Frame.Type != ev.Frame.Type || !bytes.Equal(evs[0].Frame.Payload, ev.Frame.Payload) {
					t.Fatalf("re-encoded %s decodes to %+v", ev.Frame, evs)
				}
			case protocol.BadFrame:
				if !ev.Frame.Type.Known() || ev.Frame.Payload != nil {
					t.Fatalf("BadFrame %s with unknown type or a payload", ev.Frame)
				}
			case protocol.DroppedFrame:
				if ev.Frame.Payload != nil {
					t.Fatal("DroppedFrame with a payload")
				}
			default:
				t.Fatalf("unknown event kind %d", ev.Kind)
			}
			if ev.Discarded < 0 {
				t.Fatalf("negative discard count %d", ev.Discarded)
			}
		}
		for rest := data; len(rest) > 0; {
			n := min(1+rng.IntN(64), len(rest))
			d.Feed(rest[:n], now)
			rest = rest[n:]
			for ev, ok := d.Next(); ok; ev, ok = d.Next() {
				check(ev)
			}
			if rng.IntN(4) == 0 { // sometimes the line goes quiet for T1
				now = now.Add(20 * time.Millisecond)
				if ev, ok := d.Expire(now); ok {
					check(ev)
				}
				for ev, ok := d.Next(); ok; ev, ok = d.Next() {
					check(ev)
				}
			}
		}
		// Finally the line goes quiet: everything drains.
		for range len(data) + 1 {
			now = now.Add(20 * time.Millisecond)
			ev, ok := d.Expire(now)
			if !ok {
				break
			}
			check(ev)
			for ev, ok := d.Next(); ok; ev, ok = d.Next() {
				check(ev)
			}
		}
		if d.Pending() {
			t.Fatal("bytes still pending after the line went quiet")
		}
	})
}
