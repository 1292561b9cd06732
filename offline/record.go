package offline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sterad/sterad"
)

// The binary record encoding (docs/storage.md, "Records").
//
// A record starts with a format byte that says what it is: '{' is the
// JSON an earlier release wrote (still read, never written), one of the
// fmt* bytes below is this encoding. What follows the format byte is the
// protobuf wire format, written and read by hand with protowire: one field
// number per struct field, a field left out when it holds its zero value,
// unknown field numbers skipped (a newer release may add fields). A
// transaction record has a header between its format byte and its fields
// (see txnrec.go).
//
// Three kinds of field have two forms, told apart by their wire type, so
// that the common case is one varint and every value is still exact:
//
//   - enumerations (op, status, step, brand, entry, MTI, currency, queue
//     kind): a varint code from the tables below, or the value's name as
//     a string when it has no code;
//   - times: a varint, the signed (zigzag) nanoseconds after a base time
//     (a transaction's CreatedAt) when the time has the base's zone
//     offset and lies within ±292 years of it; otherwise a Timestamp
//     message {1 seconds, 2 nanoseconds, 3 zone offset in seconds east of
//     UTC};
//   - decimal coefficients: a zigzag varint, or the coefficient's decimal
//     digits as a string when it does not fit in 64 bits.
//
// Times keep what JSON (RFC 3339 with nanoseconds) kept: the instant to
// the nanosecond and the zone offset, not the location. A time is read
// back as encoding/json reads one: UTC when the offset is zero, the local
// zone when that has the offset at that instant, else a fixed zone with
// the offset. The zero time is left out and read back as time.Time{}.

// Format bytes. Values are never reused: a reader refuses a format byte it
// does not know (a record of a newer release) instead of misreading it.
const (
	fmtJSON  byte = '{'  // encoding/json, written by releases before the binary encoding
	fmtTxn   byte = 0xD4 // 'T'|0x80: a transaction, header and fields (txnrec.go)
	fmtIdem  byte = 0xC9 // 'I'|0x80: an idempotency record
	fmtQueue byte = 0xD1 // 'Q'|0x80: a queue item
)

// errMalformed is wrapped by every decoding error of a binary record. The
// messages name fields by number and never quote a record's bytes.
var errMalformed = errors.New("malformed record")

func malformed(what, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errMalformed, what, fmt.Sprintf(format, args...))
}

// Enumeration codes. A code, once given, keeps its meaning for ever: new
// values are appended, none is removed or reordered (TestRecordCodes pins
// them). Index 0 is the empty value and is never written.
var (
	opCodes = []string{"", string(sterad.OpPreauth), string(sterad.OpIncremental), string(sterad.OpCompletion),
		string(sterad.OpSale), string(sterad.OpRefund), string(sterad.OpVoid), string(sterad.OpCardCheck),
		string(sterad.OpNoShow), string(sterad.OpCancellation), string(sterad.OpDeposit), string(sterad.OpAdjust)}
	statusCodes = []string{"", string(sterad.StatusPending), string(sterad.StatusApproved), string(sterad.StatusDeclined),
		string(sterad.StatusStoodIn), string(sterad.StatusReversed), string(sterad.StatusVoided),
		string(sterad.StatusCancelled), string(sterad.StatusUnknown)}
	stepCodes = []string{"", string(sterad.StepCreated), string(sterad.StepReading), string(sterad.StepCardRead),
		string(sterad.StepSent), string(sterad.StepAnswered), string(sterad.StepQueued), string(sterad.StepReversal),
		string(sterad.StepOutcome), string(sterad.StepDone)}
	brandCodes = []string{"", string(sterad.BrandVisa), string(sterad.BrandMastercard), string(sterad.BrandJCB),
		string(sterad.BrandAmex), string(sterad.BrandDiners), string(sterad.BrandUnionPay), string(sterad.BrandUnknown)}
	entryCodes = []string{"", string(sterad.EntryChip), string(sterad.EntryContactless), string(sterad.EntrySwipe),
		string(sterad.EntryKeyed), string(sterad.EntryToken)}
	mtiCodes = []string{"", string(sterad.MTIAuthorization), string(sterad.MTIFinancial), string(sterad.MTIAdvice),
		string(sterad.MTIAdviceRepeat), string(sterad.MTIVoid), string(sterad.MTIReversal), string(sterad.MTIReversalRepeat),
		string(sterad.MTIBatchUpload)}
	currencyCodes = []string{"", sterad.JPY.Code}
	queueCodes    = []string{"", string(sterad.QueueReversal), string(sterad.QueueVoid), string(sterad.QueueAdvice),
		string(sterad.QueueRequest)}
)

// codeOf returns s's code in codes, 0 when it has none.
func codeOf(codes []string, s string) uint64 {
	for i := 1; i < len(codes); i++ {
		if codes[i] == s {
			return uint64(i)
		}
	}
	return 0
}

// writer helpers: each appends one field, nothing when the value is zero.

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	return appendUint(b, num, protowire.EncodeZigZag(v))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), 1)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// appendSym appends an enumeration: its code, or its name when it has none.
func appendSym(b []byte, num protowire.Number, codes []string, s string) []byte {
	if s == "" {
		return b
	}
	if c := codeOf(codes, s); c != 0 {
		return appendUint(b, num, c)
	}
	return appendString(b, num, s)
}

// appendMessage appends a length-delimited field whose content fill
// appends; nothing when the content is empty and !always.
func appendMessage(b []byte, num protowire.Number, always bool, fill func([]byte) []byte) []byte {
	start := len(b)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	// Reserve one byte for the length: nearly every message is shorter
	// than 128 bytes. A longer one is moved up to make room.
	lenAt := len(b)
	b = append(b, 0)
	b = fill(b)
	n := len(b) - lenAt - 1
	if n == 0 && !always {
		return b[:start]
	}
	if n < 0x80 {
		b[lenAt] = byte(n)
		return b
	}
	w := protowire.SizeVarint(uint64(n))
	for range w - 1 {
		b = append(b, 0)
	}
	copy(b[lenAt+w:], b[lenAt+1:lenAt+1+n])
	protowire.AppendVarint(b[lenAt:lenAt], uint64(n))
	return b
}

// timeBase is what times are written relative to: a transaction's
// CreatedAt and its zone offset.
type timeBase struct {
	t   time.Time
	off int
	ok  bool // false: no base, every time is absolute
}

func baseOf(t time.Time) timeBase {
	return timeBase{t: t, off: zoneOffset(t), ok: true}
}

// appendTime appends t relative to base (see the top of this file).
func appendTime(b []byte, num protowire.Number, t time.Time, base timeBase) []byte {
	if t.IsZero() {
		return b
	}
	_, off := t.Zone()
	if base.ok && off == base.off {
		if d, ok := nanosBetween(base.t, t); ok {
			return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), protowire.EncodeZigZag(d))
		}
	}
	return appendMessage(b, num, true, func(b []byte) []byte { return appendTimestamp(b, t) })
}

// nanosBetween returns the nanoseconds from a to b on the wall clock
// (never the monotonic one, which the store does not keep); false when
// that does not fit an int64 (about ±292 years).
func nanosBetween(a, b time.Time) (int64, bool) {
	au, bu := a.Unix(), b.Unix()
	ds := bu - au
	const limit = math.MaxInt64/int64(time.Second) - 1
	if (ds < 0) != (bu < au) || ds > limit || ds < -limit {
		return 0, false
	}
	return ds*int64(time.Second) + int64(b.Nanosecond()-a.Nanosecond()), true
}

// appendTimestamp appends the fields of a Timestamp message.
func appendTimestamp(b []byte, t time.Time) []byte {
	_, off := t.Zone()
	b = appendInt(b, 1, t.Unix())
	b = appendUint(b, 2, uint64(t.Nanosecond()))
	return appendInt(b, 3, int64(off))
}

// zoned returns the instant t (in any location) as encoding/json would
// read it back with the zone offset off.
func zoned(t time.Time, off int) time.Time {
	if off == 0 {
		return t.UTC()
	}
	if l := t.Local(); zoneOffset(l) == off {
		return l
	}
	return t.In(time.FixedZone("", off))
}

func zoneOffset(t time.Time) int {
	_, off := t.Zone()
	return off
}

// unixTime returns the instant sec.nsec, refusing what time.Time cannot
// hold.
func unixTime(sec int64, nsec uint64) (time.Time, error) {
	const unixToInternal = (1969*365 + 1969/4 - 1969/100 + 1969/400) * 86400
	switch {
	case nsec >= 1e9:
		return time.Time{}, errors.New("nanoseconds out of range")
	case sec > math.MaxInt64-unixToInternal:
		return time.Time{}, errors.New("time out of range")
	}
	return time.Unix(sec, int64(nsec)), nil
}

// appendDecimal appends the fields of a Decimal message: 1 coefficient, 2
// exponent.
func appendDecimal(b []byte, d decimal.Decimal) []byte {
	if d.NumDigits() <= 18 {
		b = appendInt(b, 1, d.CoefficientInt64())
	} else {
		b = appendString(b, 1, d.Coefficient().String())
	}
	return appendInt(b, 2, int64(d.Exponent()))
}

// appendAmount appends the fields of an Amount message: the Decimal
// fields, then 3 currency (a code when it is the known currency of that
// code, else a Currency message {1 code, 2 number, 3 exponent}).
func appendAmount(b []byte, a sterad.Amount) []byte {
	b = appendDecimal(b, a.Value)
	switch c := a.Currency; {
	case c == sterad.Currency{}:
	case knownCurrency(c) != 0:
		b = appendUint(b, 3, knownCurrency(c))
	default:
		b = appendMessage(b, 3, true, func(b []byte) []byte {
			b = appendString(b, 1, c.Code)
			b = appendString(b, 2, c.Number)
			return appendInt(b, 3, int64(c.Exponent))
		})
	}
	return b
}

func knownCurrency(c sterad.Currency) uint64 {
	if k, ok := sterad.LookupCurrency(c.Code); ok && k == c {
		return codeOf(currencyCodes, c.Code)
	}
	return 0
}

// reader reads the fields of one message: rec[pos:end]. After an error
// every method returns zero values and next returns false; err holds the
// first error.
type reader struct {
	rec      []byte
	pos, end int
	num      protowire.Number
	typ      protowire.Type
	err      error
	// str, when set, is a copy of rec as a string: string fields are
	// sliced from it rather than copied one by one (one allocation per
	// record; rec may be memory that bbolt owns only for a transaction).
	str string
}

func newReader(rec []byte) *reader { return &reader{rec: rec, end: len(rec)} }

// rest is what is left of the message.
func (r *reader) rest() []byte { return r.rec[r.pos:r.end] }

// sub returns a reader of the message in the length-delimited field just
// read, sharing r's string copy.
func (r *reader) sub() reader {
	start, n := r.span()
	if r.err != nil {
		return reader{err: r.err}
	}
	return reader{rec: r.rec, pos: start, end: start + n, str: r.str}
}

// next reads the next tag; false at the end or after an error.
func (r *reader) next() bool {
	if r.err != nil || r.pos >= r.end {
		return false
	}
	num, typ, n := protowire.ConsumeTag(r.rest())
	if n < 0 {
		r.err = fmt.Errorf("after field %d: %w", r.num, wireError(n))
		return false
	}
	r.num, r.typ, r.pos = num, typ, r.pos+n
	return true
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("field %d: %w", r.num, err)
	}
	r.pos = r.end
}

func (r *reader) failf(format string, args ...any) { r.fail(fmt.Errorf(format, args...)) }

func (r *reader) wrongType() { r.failf("wire type %d not expected", r.typ) }

func (r *reader) uint() uint64 {
	if r.typ != protowire.VarintType {
		r.wrongType()
		return 0
	}
	v, n := protowire.ConsumeVarint(r.rest())
	if n < 0 {
		r.fail(wireError(n))
		return 0
	}
	r.pos += n
	return v
}

func (r *reader) int64() int64 { return protowire.DecodeZigZag(r.uint()) }

// int reads a zigzag varint that must fit an int.
func (r *reader) int() int {
	v := r.int64()
	if int64(int(v)) != v {
		r.failf("value out of range")
		return 0
	}
	return int(v)
}

func (r *reader) int32() int32 {
	v := r.int64()
	if int64(int32(v)) != v {
		r.failf("value out of range")
		return 0
	}
	return int32(v)
}

func (r *reader) bool() bool { return r.uint() != 0 }

// span reads a length-delimited field: where its content starts in rec,
// and its length.
func (r *reader) span() (start, n int) {
	if r.typ != protowire.BytesType {
		r.wrongType()
		return 0, 0
	}
	v, m := protowire.ConsumeBytes(r.rest())
	if m < 0 {
		r.fail(wireError(m))
		return 0, 0
	}
	start = r.pos + m - len(v)
	r.pos += m
	return start, len(v)
}

// bytes returns a length-delimited field's content: memory of rec, to be
// copied before the transaction ends.
func (r *reader) bytes() []byte {
	start, n := r.span()
	if r.err != nil {
		return nil
	}
	return r.rec[start : start+n]
}

// string returns a string field: a slice of the record's string copy when
// there is one, else a copy (never memory bbolt owns).
func (r *reader) string() string {
	start, n := r.span()
	switch {
	case r.err != nil || n == 0:
		return ""
	case r.str != "":
		return r.str[start : start+n]
	}
	return string(r.rec[start : start+n])
}

// sym reads an enumeration: a code of codes, or a name.
func (r *reader) sym(codes []string) string {
	if r.typ == protowire.BytesType {
		return r.string()
	}
	c := r.uint()
	switch {
	case r.err != nil:
		return ""
	case c == 0 || c >= uint64(len(codes)):
		r.failf("unknown code %d", c)
		return ""
	}
	return codes[c]
}

// time reads a time written by appendTime against base.
func (r *reader) time(base timeBase) time.Time {
	switch r.typ {
	case protowire.VarintType:
		d := r.int64()
		if r.err != nil {
			return time.Time{}
		}
		if !base.ok {
			r.failf("relative time in a record without a base time")
			return time.Time{}
		}
		return zoned(base.t.Add(time.Duration(d)), base.off)
	case protowire.BytesType:
		m := r.sub()
		var sec int64
		var nsec uint64
		var off int
		for m.next() {
			switch m.num {
			case 1:
				sec = m.int64()
			case 2:
				nsec = m.uint()
			case 3:
				off = m.int()
			default:
				m.skip()
			}
		}
		if m.err != nil {
			r.fail(m.err)
			return time.Time{}
		}
		t, err := unixTime(sec, nsec)
		if err != nil {
			r.fail(err)
			return time.Time{}
		}
		return zoned(t, off)
	}
	r.wrongType()
	return time.Time{}
}

// decimalFields collects the fields of a Decimal message.
type decimalFields struct {
	coef    int64
	bigCoef *big.Int
	exp     int32
}

// field reads field m.num if it is one of a Decimal's; false otherwise.
func (d *decimalFields) field(m *reader) bool {
	switch m.num {
	case 1:
		if m.typ == protowire.BytesType {
			d.bigCoef = parseBigCoefficient(m)
		} else {
			d.coef, d.bigCoef = m.int64(), nil
		}
	case 2:
		d.exp = m.int32()
	default:
		return false
	}
	return true
}

func (d *decimalFields) value() decimal.Decimal {
	switch {
	case d.bigCoef != nil:
		return decimal.NewFromBigInt(d.bigCoef, d.exp)
	case d.coef == 0 && d.exp == 0:
		return decimal.Decimal{}
	}
	return decimal.New(d.coef, d.exp)
}

// decimal reads a Decimal message.
func (r *reader) decimal() decimal.Decimal {
	m := r.sub()
	var d decimalFields
	for m.next() {
		if !d.field(&m) {
			m.skip()
		}
	}
	if m.err != nil {
		r.fail(m.err)
		return decimal.Decimal{}
	}
	return d.value()
}

// parseBigCoefficient reads a coefficient written as decimal digits.
func parseBigCoefficient(m *reader) *big.Int {
	s := m.bytes()
	if m.err != nil {
		return nil
	}
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	ok := len(digits) > 0
	for _, c := range digits {
		ok = ok && '0' <= c && c <= '9'
	}
	v, _ := new(big.Int).SetString(string(s), 10)
	if !ok || v == nil {
		m.failf("coefficient is not a decimal integer")
		return nil
	}
	return v
}

// amount reads an Amount message.
func (r *reader) amount() sterad.Amount {
	m := r.sub()
	var d decimalFields
	var a sterad.Amount
	for m.next() {
		switch {
		case d.field(&m):
		case m.num == 3 && m.typ != protowire.BytesType:
			code := m.sym(currencyCodes)
			if m.err == nil {
				a.Currency, _ = sterad.LookupCurrency(code)
			}
		case m.num == 3:
			c := m.sub()
			a.Currency = sterad.Currency{}
			for c.next() {
				switch c.num {
				case 1:
					a.Currency.Code = c.string()
				case 2:
					a.Currency.Number = c.string()
				case 3:
					a.Currency.Exponent = c.int32()
				default:
					c.skip()
				}
			}
			if c.err != nil {
				m.fail(c.err)
			}
		default:
			m.skip()
		}
	}
	if m.err != nil {
		r.fail(m.err)
		return sterad.Amount{}
	}
	a.Value = d.value()
	return a
}

// skip skips the value of an unknown field. Groups (wire types 3 and 4)
// are not part of this encoding and are refused.
func (r *reader) skip() {
	switch r.typ {
	case protowire.VarintType, protowire.Fixed32Type, protowire.Fixed64Type, protowire.BytesType:
	default:
		r.wrongType()
		return
	}
	n := protowire.ConsumeFieldValue(r.num, r.typ, r.rest())
	if n < 0 {
		r.fail(wireError(n))
		return
	}
	r.pos += n
}

// jsonTime reports whether encoding/json can write t (RFC 3339: years 0 to
// 9999, a zone offset of less than a day).
func jsonTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	y := t.Year()
	off := zoneOffset(t)
	return y >= 0 && y <= 9999 && off > -86400 && off < 86400
}

// The encoders of releases before the binary encoding, for tests of the
// stores they wrote (DB.legacyJSON). encoding/json cannot fail on these
// types once jsonTime holds.

func encodeTxnAs(t *sterad.Transaction, legacy bool) []byte {
	if legacy {
		return mustJSON(t)
	}
	return encodeTxn(t)
}

func encodeIdemAs(r *sterad.IdempotencyRecord, legacy bool) []byte {
	if legacy {
		return mustJSON(r)
	}
	return encodeIdem(r)
}

func encodeQueueItemAs(it *sterad.QueueItem, legacy bool) []byte {
	if legacy {
		return mustJSON(it)
	}
	return encodeQueueItem(it)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// wireError is protowire's error of code n, in words of this package
// (protowire's own messages carry a "proto:" prefix with a random
// no-break space).
func wireError(n int) error {
	err := protowire.ParseError(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated")
	}
	return errors.New(strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0"))
}
