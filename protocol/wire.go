package protocol

import (
	"time"

	"github.com/moov-io/iso8583"
)

// wireMessage is a message as the table of data elements sees it: the MTI
// and the value of each data element present, in ascending order, without
// length prefix. Values read from the wire keep their fill; values to be
// written have none yet.
type wireMessage struct {
	mti    string
	fields []wireField
	// received is when the message was received: DE 7 and DE 90 are read
	// in the year closest to it.
	received time.Time
}

type wireField struct {
	*dataElement
	v string
}

func (w *wireMessage) value(de int) (string, bool) {
	for _, f := range w.fields {
		if f.de == de {
			return f.v, true
		}
	}
	return "", false
}

// filled returns the value of de as it is on the wire (with its fill), ""
// when w has none.
func (w *wireMessage) filled(de int) string {
	for _, f := range w.fields {
		if f.de == de {
			return f.padded(f.v)
		}
	}
	return ""
}

// pack writes w on the wire: MTI, bitmaps, fields.
func (w *wireMessage) pack() ([]byte, error) {
	var bitmap [16]byte
	bitmaps := 1
	size := 4
	for _, f := range w.fields {
		bitmap[(f.de-1)/8] |= 0x80 >> ((f.de - 1) % 8)
		size += f.size(f.v)
		if f.de > 64 {
			bitmap[0] |= 0x80 // a secondary bitmap follows
			bitmaps = 2
		}
	}
	size += 8 * bitmaps
	if size > MaxMessageLength {
		return nil, formatErr(-1, "message of %d bytes exceeds %d", size, MaxMessageLength)
	}
	b := make([]byte, 0, size)
	b = append(b, w.mti...)
	b = append(b, bitmap[:8*bitmaps]...)
	for _, f := range w.fields {
		b = f.appendTo(b, f.v)
	}
	return b, nil
}

// parse reads the structure of a message: MTI, bitmaps and fields, checking
// the size limit and that every byte belongs to a field.
func parse(b []byte) (*wireMessage, error) {
	if len(b) > MaxMessageLength {
		return nil, formatErr(-1, "message of %d bytes exceeds %d", len(b), MaxMessageLength)
	}
	if len(b) < 12 {
		return nil, formatErr(-1, "message of %d bytes is too short", len(b))
	}
	s := string(b) // the fields' values are slices of this one copy
	if !isASCII(s[:4]) {
		return nil, formatErr(0, "non-ASCII byte")
	}
	w := &wireMessage{mti: s[:4], fields: make([]wireField, 0, len(dataElements))}
	// Bitmaps of 8 bytes, each announcing the next with its first bit.
	off := 4
	for {
		if len(s) < off+8 {
			return nil, formatErr(1, "bitmap truncated")
		}
		off += 8
		if s[off-8]&0x80 == 0 {
			break
		}
	}
	bitmap := s[4:off]
	last := 0
	for de := 2; de <= 8*len(bitmap); de++ {
		if de%64 == 1 || bitmap[(de-1)/8]&(0x80>>((de-1)%8)) == 0 {
			continue
		}
		e := dataElementNumbered(de)
		if e == nil {
			return nil, formatErr(de, "not a field of the interface")
		}
		v, size, err := e.read(s[off:])
		if err != nil {
			return nil, &FormatError{Field: de, Reason: err.Error()}
		}
		w.fields = append(w.fields, wireField{e, v})
		off += size
		last = de
	}
	if off < len(s) {
		return nil, formatErr(-1, "%d bytes do not belong to any field of the bitmap", len(s)-off)
	}
	if need := 8 * max(1, (last+63)/64); len(bitmap) != need {
		return nil, formatErr(-1, "%d bytes of bitmap for fields up to DE %d", len(bitmap), last)
	}
	return w, nil
}

// toISO sets the fields of w, filled, in a moov message.
func (w *wireMessage) toISO() (*iso8583.Message, error) {
	msg := iso8583.NewMessage(Spec)
	msg.MTI(w.mti)
	for _, f := range w.fields {
		v := f.padded(f.v)
		var err error
		if f.chars == rawBytes {
			err = msg.BinaryField(f.de, []byte(v))
		} else {
			err = msg.Field(f.de, v)
		}
		if err != nil {
			return nil, formatErr(f.de, "cannot be set")
		}
	}
	return msg, nil
}

// fromISO reads the fields of a moov message.
func fromISO(msg *iso8583.Message) *wireMessage {
	mti, _ := msg.GetMTI()
	w := &wireMessage{mti: mti}
	for i := range dataElements {
		e := &dataElements[i]
		if msg.GetField(e.de) == nil {
			continue
		}
		var v string
		if e.chars == rawBytes {
			b, _ := msg.GetBytes(e.de)
			v = string(b)
		} else {
			v, _ = msg.GetString(e.de)
		}
		w.fields = append(w.fields, wireField{e, v})
	}
	return w
}

// dataElementNumbered returns the table's entry for de, nil if the
// interface has no such field.
func dataElementNumbered(de int) *dataElement {
	for i := range dataElements {
		if dataElements[i].de == de {
			return &dataElements[i]
		}
	}
	return nil
}
