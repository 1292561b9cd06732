package protocol

import (
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// MaxMessageLength is the largest ISO 8583 message either side may send,
// not counting the 2-byte length header (docs/acquirer-protocol.md §1).
const MaxMessageLength = 4096

// Spec is the acquirer host interface version 1 (docs/acquirer-protocol.md#encoding) as
// moov-io/iso8583 declares it: ASCII MTI, an 8-byte binary primary bitmap
// (and secondary when a field 65–128 is present), ASCII numeric and text
// fields, ASCII length prefixes. It is derived from the table of data
// elements in fields.go, which Pack and Unpack read directly.
//
// Fields are declared without padding: this package formats every fixed
// field to its exact width (zero-filled numbers, space-filled text), so what
// is set is exactly what goes on the wire and "000000" stays "000000" when
// read back.
var Spec = func() *iso8583.MessageSpec {
	s := &iso8583.MessageSpec{
		Name: "sterad acquirer host interface v1",
		Fields: map[int]field.Field{
			0: n(4).moovField("Message Type Indicator"),
			1: field.NewBitmap(&field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.Binary, Pref: prefix.Binary.Fixed}),
		},
	}
	for i := range dataElements {
		e := &dataElements[i]
		s.Fields[e.de] = e.moovField(e.name)
	}
	return s
}()

// charset is what a field's characters may be (docs/acquirer-protocol.md §2).
type charset uint8

const (
	digitChars  charset = iota // n: ASCII digits
	printChars                 // an, ans: printable ASCII
	track2Chars                // z: digits and the '=' or 'D' separator
	asciiChars                 // any 7-bit byte: DE 48, whose tags check their values
	rawBytes                   // b: raw bytes
)

func (c charset) valid(v string) bool {
	switch c {
	case digitChars:
		return isDigits(v, len(v))
	case printChars:
		return isPrintableASCII(v)
	case track2Chars:
		return isTrack2(v) || v == ""
	case asciiChars:
		return isASCII(v)
	}
	return true
}

func (c charset) String() string {
	return [...]string{"digits", "printable ASCII characters", "track 2 characters", "ASCII characters", "bytes"}[c]
}

// layout is how a field is written on the wire: its characters, its width
// (the most bytes of a variable field) and the digits of its length prefix.
type layout struct {
	chars  charset
	length int
	prefix int // 0 for a fixed field, 2 for LLVAR, 3 for LLLVAR
	// fill: a fixed field whose value may be shorter than its width: a
	// number right-justified and zero-filled, text left-justified and
	// space-filled, trailing spaces dropped when read.
	fill bool
}

// n is a fixed numeric code of exactly width digits (DE 3, 18, 25, 90…).
func n(width int) layout { return layout{chars: digitChars, length: width} }

// num is a fixed n field holding a number, zero-filled to width digits.
func num(width int) layout { return layout{chars: digitChars, length: width, fill: true} }

// ans is a fixed text field, space-filled to width characters.
func ans(width int) layout { return layout{chars: printChars, length: width, fill: true} }

// an is a fixed text field of exactly width characters (DE 39, DE 97).
func an(width int) layout { return layout{chars: printChars, length: width} }

func llvar(c charset, max int) layout  { return layout{chars: c, length: max, prefix: 2} }
func lllvar(c charset, max int) layout { return layout{chars: c, length: max, prefix: 3} }

// minLen is the fewest characters a value may have: a fixed width, one
// digit of a number or track 2, nothing of text or bytes.
func (f layout) minLen() int {
	switch {
	case f.prefix == 0 && !f.fill:
		return f.length
	case f.chars == digitChars || f.chars == track2Chars:
		return 1
	}
	return 0
}

// check says whether v, without length prefix or fill, fits f.
func (f layout) check(v string) error {
	if len(v) < f.minLen() || len(v) > f.length || !f.chars.valid(v) {
		if f.minLen() == f.length {
			return fmt.Errorf("must be %d %s", f.length, f.chars)
		}
		return fmt.Errorf("must be %d to %d %s", f.minLen(), f.length, f.chars)
	}
	return nil
}

// size is the number of bytes v takes on the wire.
func (f layout) size(v string) int {
	if f.prefix == 0 {
		return f.length
	}
	return f.prefix + len(v)
}

// appendTo appends v, checked by check, as it goes on the wire: length
// prefix, fill.
func (f layout) appendTo(b []byte, v string) []byte {
	if f.prefix > 0 {
		b = appendZeroFilled(b, int64(len(v)), f.prefix)
	}
	pad := 0
	if f.prefix == 0 && f.fill {
		pad = f.length - len(v)
	}
	if f.chars == digitChars { // numbers: right-justified, zero-filled
		b = appendRepeated(b, '0', pad)
		return append(b, v...)
	}
	b = append(b, v...) // text: left-justified, space-filled
	return appendRepeated(b, ' ', pad)
}

func appendRepeated(b []byte, c byte, n int) []byte {
	for range n {
		b = append(b, c)
	}
	return b
}

// read reads a field of layout f at the start of s and returns its value
// and the number of bytes it took.
func (f layout) read(s string) (v string, size int, err error) {
	length := f.length
	if f.prefix > 0 {
		if len(s) < f.prefix {
			return "", 0, fmt.Errorf("length prefix truncated")
		}
		if !isDigits(s[:f.prefix], f.prefix) {
			return "", 0, fmt.Errorf("length prefix is not a number")
		}
		length = int(atoi(s[:f.prefix]))
		if length > f.length {
			return "", 0, fmt.Errorf("length %d exceeds %d", length, f.length)
		}
		s = s[f.prefix:]
	}
	if len(s) < length {
		return "", 0, fmt.Errorf("truncated: %d bytes, want %d", len(s), length)
	}
	v = s[:length]
	if f.chars != rawBytes && !isASCII(v) {
		return "", 0, fmt.Errorf("non-ASCII byte")
	}
	return v, f.prefix + length, nil
}

// moovField declares f for moov-io/iso8583.
func (f layout) moovField(desc string) field.Field {
	spec := &field.Spec{Length: f.length, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed}
	switch f.prefix {
	case 2:
		spec.Pref = prefix.ASCII.LL
	case 3:
		spec.Pref = prefix.ASCII.LLL
	}
	if f.chars == rawBytes {
		spec.Enc = encoding.Binary
		return field.NewBinary(spec)
	}
	return field.NewString(spec)
}

// padded returns v as a fixed field carries it: zero- or space-filled.
func (f layout) padded(v string) string {
	if f.prefix > 0 || !f.fill || len(v) >= f.length {
		return v
	}
	return string(f.appendTo(make([]byte, 0, f.length), v))
}
