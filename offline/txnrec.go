package offline

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sterad/sterad"
)

// A transaction record (bucket txns, keyed by the transaction's ID, which
// the record does not repeat):
//
//	fmtTxn                          1 byte
//	header length                   uvarint: the header's bytes that follow
//	header:
//	  Version                       uvarint
//	  Batch                         zigzag varint
//	  Step                          uvarint code (stepCodes); 0: uvarint length and the name follow
//	  CreatedAt                     zigzag varint seconds since 1970, uvarint nanoseconds,
//	                                zigzag varint zone offset (seconds east of UTC)
//	  Reference                     uvarint length, bytes
//	  Original                      uvarint length, bytes
//	  (a later format may append header fields: a reader skips what it does not know)
//	fields                          protobuf wire format to the end (txn* numbers below)
//
// The header holds what the store itself needs without decoding the
// record: the version that compare-and-swap checks (validate) and what
// the index entries derive from (putTxn). Times in the fields are relative
// to CreatedAt (record.go).

// Field numbers of a transaction record. Never reuse or renumber one.
const (
	txnEvents              protowire.Number = 1 // repeated Event {1 at, 2 status, 3 step, 4 note}
	txnOp                  protowire.Number = 2
	txnStatus              protowire.Number = 3
	txnAmount              protowire.Number = 4
	txnCurrency            protowire.Number = 5
	txnUpdatedAt           protowire.Number = 6
	txnMaskedPAN           protowire.Number = 7
	txnBrand               protowire.Number = 8
	txnEntry               protowire.Number = 9
	txnTerminal            protowire.Number = 10
	txnTerminalID          protowire.Number = 11
	txnIdempotencyKey      protowire.Number = 12
	txnResponseCode        protowire.Number = 13
	txnAuthCode            protowire.Number = 14
	txnRRN                 protowire.Number = 15
	txnMTI                 protowire.Number = 16
	txnSTAN                protowire.Number = 17
	txnTransmitted         protowire.Number = 18
	txnCondition           protowire.Number = 19
	txnKSN                 protowire.Number = 20
	txnTerminalResult      protowire.Number = 21
	txnPrinted             protowire.Number = 22
	txnHasCard             protowire.Number = 23
	txnToken               protowire.Number = 24
	txnHostTI              protowire.Number = 25
	txnReason              protowire.Number = 26
	txnOffline             protowire.Number = 27
	txnStay                protowire.Number = 28 // Stay {1 check-in, 2 check-out}
	txnLocalCode           protowire.Number = 29
	txnReversalReason      protowire.Number = 30
	txnReversalTransmitted protowire.Number = 31
	txnAuthorizedTotal     protowire.Number = 32
	txnRefunded            protowire.Number = 33
	txnCompletedBy         protowire.Number = 34
	txnVoidedBy            protowire.Number = 35
	txnFee                 protowire.Number = 36
	txnPolicyVersion       protowire.Number = 37
	txnPolicyRow           protowire.Number = 38
	txnLinked              protowire.Number = 39 // repeated
	txnMerchantInitiated   protowire.Number = 40
	txnPolicy              protowire.Number = 41 // PolicySnapshot {1 policy {1 version, 2 rows, 3 no-show, 4 rows empty}, 2 first night, 3 recorded at}
)

// encodeTxn encodes t as a transaction record.
func encodeTxn(t *sterad.Transaction) []byte {
	b := make([]byte, 0, 512)
	b = append(b, fmtTxn, 0) // the header's length, set below
	hdr := len(b)
	b = protowire.AppendVarint(b, t.Version)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(t.Batch)))
	if c := codeOf(stepCodes, string(t.Step)); c != 0 {
		b = protowire.AppendVarint(b, c)
	} else {
		b = protowire.AppendString(append(b, 0), string(t.Step))
	}
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(t.CreatedAt.Unix()))
	b = protowire.AppendVarint(b, uint64(t.CreatedAt.Nanosecond()))
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(zoneOffset(t.CreatedAt))))
	b = protowire.AppendString(b, t.Reference)
	b = protowire.AppendString(b, t.Original)
	if n := len(b) - hdr; n < 0x80 {
		b[hdr-1] = byte(n)
	} else { // long references: move the header up
		w := protowire.SizeVarint(uint64(n))
		for range w - 1 {
			b = append(b, 0)
		}
		copy(b[hdr-1+w:], b[hdr:hdr+n])
		protowire.AppendVarint(b[hdr-1:hdr-1], uint64(n))
	}

	base := baseOf(t.CreatedAt)
	for i := range t.Events {
		e := &t.Events[i]
		b = appendMessage(b, txnEvents, true, func(b []byte) []byte {
			b = appendTime(b, 1, e.At, base)
			b = appendSym(b, 2, statusCodes, string(e.Status))
			b = appendSym(b, 3, stepCodes, string(e.Step))
			return appendString(b, 4, e.Note)
		})
	}
	b = appendSym(b, txnOp, opCodes, string(t.Op))
	b = appendSym(b, txnStatus, statusCodes, string(t.Status))
	b = appendMessage(b, txnAmount, false, func(b []byte) []byte { return appendAmount(b, t.Amount) })
	b = appendSym(b, txnCurrency, currencyCodes, t.Currency)
	b = appendTime(b, txnUpdatedAt, t.UpdatedAt, base)
	b = appendString(b, txnMaskedPAN, t.MaskedPAN)
	b = appendSym(b, txnBrand, brandCodes, string(t.Brand))
	b = appendSym(b, txnEntry, entryCodes, string(t.Entry))
	b = appendString(b, txnTerminal, t.Terminal)
	b = appendString(b, txnTerminalID, t.TerminalID)
	b = appendString(b, txnIdempotencyKey, t.IdempotencyKey)
	b = appendString(b, txnResponseCode, t.ResponseCode)
	b = appendString(b, txnAuthCode, t.AuthCode)
	b = appendString(b, txnRRN, t.RRN)
	b = appendSym(b, txnMTI, mtiCodes, string(t.MTI))
	b = appendInt(b, txnSTAN, int64(t.STAN))
	b = appendTime(b, txnTransmitted, t.Transmitted, base)
	b = appendString(b, txnCondition, t.Condition)
	b = appendString(b, txnKSN, t.KSN)
	b = appendString(b, txnTerminalResult, t.TerminalResult)
	b = appendBool(b, txnPrinted, t.Printed)
	b = appendBool(b, txnHasCard, t.HasCard)
	b = appendString(b, txnToken, t.Token)
	b = appendString(b, txnHostTI, t.HostTI)
	b = appendString(b, txnReason, t.Reason)
	b = appendBool(b, txnOffline, t.Offline)
	if s := t.Stay; s != nil {
		b = appendMessage(b, txnStay, true, func(b []byte) []byte {
			b = appendDate(b, 1, s.CheckIn)
			return appendDate(b, 2, s.CheckOut)
		})
	}
	b = appendString(b, txnLocalCode, t.LocalCode)
	b = appendString(b, txnReversalReason, t.ReversalReason)
	b = appendTime(b, txnReversalTransmitted, t.ReversalTransmitted, base)
	b = appendMessage(b, txnAuthorizedTotal, false, func(b []byte) []byte { return appendAmount(b, t.AuthorizedTotal) })
	b = appendMessage(b, txnRefunded, false, func(b []byte) []byte { return appendAmount(b, t.Refunded) })
	b = appendString(b, txnCompletedBy, t.CompletedBy)
	b = appendString(b, txnVoidedBy, t.VoidedBy)
	b = appendMessage(b, txnFee, false, func(b []byte) []byte { return appendAmount(b, t.Fee) })
	b = appendString(b, txnPolicyVersion, t.PolicyVersion)
	b = appendString(b, txnPolicyRow, t.PolicyRow)
	for _, l := range t.Linked {
		b = protowire.AppendString(protowire.AppendTag(b, txnLinked, protowire.BytesType), l)
	}
	b = appendString(b, txnMerchantInitiated, t.MerchantInitiated)
	if p := t.Policy; p != nil {
		b = appendMessage(b, txnPolicy, true, func(b []byte) []byte { return appendPolicySnapshot(b, p, base) })
	}
	return b
}

// appendDate appends a date: one varint (year<<9 | month<<5 | day) when
// it fits, else a Date message {1 year, 2 month, 3 day}.
func appendDate(b []byte, num protowire.Number, d sterad.Date) []byte {
	switch {
	case d == sterad.Date{}:
		return b
	case d.Year >= 0 && d.Year < 1<<40 && d.Month >= 0 && d.Month < 16 && d.Day >= 0 && d.Day < 32:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(d.Year)<<9|uint64(d.Month)<<5|uint64(d.Day))
	}
	return appendMessage(b, num, true, func(b []byte) []byte {
		b = appendInt(b, 1, int64(d.Year))
		b = appendInt(b, 2, int64(d.Month))
		return appendInt(b, 3, int64(d.Day))
	})
}

func appendPolicySnapshot(b []byte, p *sterad.PolicySnapshot, base timeBase) []byte {
	b = appendMessage(b, 1, false, func(b []byte) []byte {
		b = appendString(b, 1, p.Policy.Version)
		// encoding/json tells no rows (null) from an empty list ([]).
		b = appendBool(b, 4, p.Policy.Rows != nil && len(p.Policy.Rows) == 0)
		for i := range p.Policy.Rows {
			r := &p.Policy.Rows[i]
			b = appendMessage(b, 2, true, func(b []byte) []byte {
				b = appendInt(b, 1, int64(r.DaysBefore))
				b = appendMessage(b, 2, false, func(b []byte) []byte { return appendDecimal(b, r.Percent) })
				return appendString(b, 3, string(r.Of))
			})
		}
		if n := p.Policy.NoShow; n != nil {
			b = appendMessage(b, 3, true, func(b []byte) []byte {
				b = appendMessage(b, 1, false, func(b []byte) []byte { return appendDecimal(b, n.Percent) })
				return appendString(b, 2, string(n.Of))
			})
		}
		return b
	})
	b = appendMessage(b, 2, false, func(b []byte) []byte { return appendAmount(b, p.FirstNight) })
	return appendTime(b, 3, p.RecordedAt, base)
}

// txnHeader is a transaction record's header.
type txnHeader struct {
	version   uint64
	batch     int
	step      span // the step's name, when it has no code
	stepCode  uint64
	created   time.Time
	reference span
	original  span
	body      int // where the fields start
}

// span is where a string lies in a record.
type span struct{ start, n int }

func (s span) in(v []byte) []byte { return v[s.start : s.start+s.n] }

// step returns the header's step; str is a string copy of the record.
func (h *txnHeader) stepOf(str string) string {
	if h.stepCode != 0 {
		return stepCodes[h.stepCode]
	}
	return str[h.step.start : h.step.start+h.step.n]
}

// readTxnHeader reads the header of a binary transaction record.
func readTxnHeader(v []byte) (h txnHeader, err error) {
	if len(v) == 0 || v[0] != fmtTxn {
		return h, badFormat("transaction", v)
	}
	pos := 1
	var hend int
	bad := func(what string, m int) error {
		return malformed("transaction", "header %s: %v", what, wireError(m))
	}
	uvarint := func(what string) (uint64, error) {
		u, m := protowire.ConsumeVarint(v[pos:hend])
		if m < 0 {
			return 0, bad(what, m)
		}
		pos += m
		return u, nil
	}
	str := func(what string) (span, error) {
		b, m := protowire.ConsumeBytes(v[pos:hend])
		if m < 0 {
			return span{}, bad(what, m)
		}
		s := span{pos + m - len(b), len(b)}
		pos += m
		return s, nil
	}
	hend = len(v)
	n, err := uvarint("length")
	if err != nil {
		return h, err
	}
	if n > uint64(len(v)-pos) {
		return h, malformed("transaction", "header longer than the record")
	}
	hend = pos + int(n)
	h.body = hend
	if h.version, err = uvarint("version"); err != nil {
		return h, err
	}
	u, err := uvarint("batch")
	if err != nil {
		return h, err
	}
	if batch := protowire.DecodeZigZag(u); int64(int(batch)) == batch {
		h.batch = int(batch)
	} else {
		return h, malformed("transaction", "header batch out of range")
	}
	if h.stepCode, err = uvarint("step"); err != nil {
		return h, err
	}
	switch {
	case h.stepCode == 0:
		if h.step, err = str("step"); err != nil {
			return h, err
		}
	case h.stepCode >= uint64(len(stepCodes)):
		return h, malformed("transaction", "header step: unknown code %d", h.stepCode)
	}
	var sec, nsec, off uint64
	for _, p := range []*uint64{&sec, &nsec, &off} {
		if *p, err = uvarint("created at"); err != nil {
			return h, err
		}
	}
	t, err := unixTime(protowire.DecodeZigZag(sec), nsec)
	if err != nil {
		return h, malformed("transaction", "header created at: %v", err)
	}
	zo := protowire.DecodeZigZag(off)
	if int64(int(zo)) != zo {
		return h, malformed("transaction", "header zone offset out of range")
	}
	h.created = zoned(t, int(zo))
	if h.reference, err = str("reference"); err != nil {
		return h, err
	}
	if h.original, err = str("original"); err != nil {
		return h, err
	}
	return h, nil
}

// badFormat is the error of a record whose format byte is not the
// expected one.
func badFormat(what string, v []byte) error {
	if len(v) == 0 {
		return malformed(what, "empty record")
	}
	return malformed(what, "unknown format byte 0x%02x (written by a newer sterad?)", v[0])
}

// storedTxnVersion returns the Version of a stored transaction record (either
// encoding), reading only what it must.
func storedTxnVersion(v []byte) (uint64, error) {
	if len(v) > 0 && v[0] == fmtJSON {
		var k struct {
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal(v, &k); err != nil {
			return 0, err
		}
		return k.Version, nil
	}
	if len(v) == 0 || v[0] != fmtTxn {
		return 0, badFormat("transaction", v)
	}
	hl, m := protowire.ConsumeVarint(v[1:])
	if m < 0 {
		return 0, malformed("transaction", "header length: %v", wireError(m))
	}
	if hl > uint64(len(v)-1-m) {
		return 0, malformed("transaction", "header longer than the record")
	}
	ver, n := protowire.ConsumeVarint(v[1+m : 1+m+int(hl)])
	if n < 0 {
		return 0, malformed("transaction", "header version: %v", wireError(n))
	}
	return ver, nil
}

// storedKeys returns what the index entries of a stored transaction record
// (either encoding) derive from, without decoding the rest of it.
func storedKeys(id, v []byte) (txnKeys, error) {
	if len(v) > 0 && v[0] == fmtJSON {
		var k txnKeys
		err := json.Unmarshal(v, &k)
		return k, err
	}
	h, err := readTxnHeader(v)
	if err != nil {
		return txnKeys{}, err
	}
	step := ""
	if h.stepCode != 0 {
		step = stepCodes[h.stepCode]
	} else {
		step = string(h.step.in(v))
	}
	return txnKeys{ID: string(id), Reference: string(h.reference.in(v)), Original: string(h.original.in(v)), Batch: h.batch,
		CreatedAt: h.created, Step: sterad.Step(step), Version: h.version}, nil
}

// decodeTxn decodes a stored transaction record (either encoding) into t,
// which it overwrites. id is the record's key. On error t is left
// undefined: callers decode into a new Transaction.
func decodeTxn(id, v []byte, t *sterad.Transaction) error {
	if len(v) > 0 && v[0] == fmtJSON {
		*t = sterad.Transaction{}
		return json.Unmarshal(v, t)
	}
	h, err := readTxnHeader(v)
	if err != nil {
		return err
	}
	// One copy of the record (and the ID) as a string: every string field
	// is a slice of it.
	all := string(id) + string(v)
	str := all[len(id):]
	sub := func(s span) string { return str[s.start : s.start+s.n] }
	*t = sterad.Transaction{
		ID: all[:len(id)], Version: h.version, Batch: h.batch, CreatedAt: h.created, Step: sterad.Step(h.stepOf(str)),
		Reference: sub(h.reference), Original: sub(h.original),
	}
	r := &reader{rec: v, pos: h.body, end: len(v), str: str}
	base := baseOf(t.CreatedAt)
	if n := countField(v[h.body:], txnEvents); n > 0 {
		t.Events = make([]sterad.Event, 0, n)
	}
	for r.next() {
		switch r.num {
		case txnEvents:
			m := r.sub()
			var e sterad.Event
			for m.next() {
				switch m.num {
				case 1:
					e.At = m.time(base)
				case 2:
					e.Status = sterad.Status(m.sym(statusCodes))
				case 3:
					e.Step = sterad.Step(m.sym(stepCodes))
				case 4:
					e.Note = m.string()
				default:
					m.skip()
				}
			}
			if m.err != nil {
				r.fail(m.err)
			}
			t.Events = append(t.Events, e)
		case txnOp:
			t.Op = sterad.Op(r.sym(opCodes))
		case txnStatus:
			t.Status = sterad.Status(r.sym(statusCodes))
		case txnAmount:
			t.Amount = r.amount()
		case txnCurrency:
			t.Currency = r.sym(currencyCodes)
		case txnUpdatedAt:
			t.UpdatedAt = r.time(base)
		case txnMaskedPAN:
			t.MaskedPAN = r.string()
		case txnBrand:
			t.Brand = sterad.Brand(r.sym(brandCodes))
		case txnEntry:
			t.Entry = sterad.EntryMode(r.sym(entryCodes))
		case txnTerminal:
			t.Terminal = r.string()
		case txnTerminalID:
			t.TerminalID = r.string()
		case txnIdempotencyKey:
			t.IdempotencyKey = r.string()
		case txnResponseCode:
			t.ResponseCode = r.string()
		case txnAuthCode:
			t.AuthCode = r.string()
		case txnRRN:
			t.RRN = r.string()
		case txnMTI:
			t.MTI = sterad.MTI(r.sym(mtiCodes))
		case txnSTAN:
			t.STAN = sterad.STAN(r.int())
		case txnTransmitted:
			t.Transmitted = r.time(base)
		case txnCondition:
			t.Condition = r.string()
		case txnKSN:
			t.KSN = r.string()
		case txnTerminalResult:
			t.TerminalResult = r.string()
		case txnPrinted:
			t.Printed = r.bool()
		case txnHasCard:
			t.HasCard = r.bool()
		case txnToken:
			t.Token = r.string()
		case txnHostTI:
			t.HostTI = r.string()
		case txnReason:
			t.Reason = r.string()
		case txnOffline:
			t.Offline = r.bool()
		case txnStay:
			m := r.sub()
			s := new(sterad.Stay)
			for m.next() {
				switch m.num {
				case 1:
					s.CheckIn = m.date()
				case 2:
					s.CheckOut = m.date()
				default:
					m.skip()
				}
			}
			if m.err != nil {
				r.fail(m.err)
			}
			t.Stay = s
		case txnLocalCode:
			t.LocalCode = r.string()
		case txnReversalReason:
			t.ReversalReason = r.string()
		case txnReversalTransmitted:
			t.ReversalTransmitted = r.time(base)
		case txnAuthorizedTotal:
			t.AuthorizedTotal = r.amount()
		case txnRefunded:
			t.Refunded = r.amount()
		case txnCompletedBy:
			t.CompletedBy = r.string()
		case txnVoidedBy:
			t.VoidedBy = r.string()
		case txnFee:
			t.Fee = r.amount()
		case txnPolicyVersion:
			t.PolicyVersion = r.string()
		case txnPolicyRow:
			t.PolicyRow = r.string()
		case txnLinked:
			t.Linked = append(t.Linked, r.string())
		case txnMerchantInitiated:
			t.MerchantInitiated = r.string()
		case txnPolicy:
			t.Policy = r.policySnapshot(base)
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return malformed("transaction", "%v", r.err)
	}
	return nil
}

// countField counts the occurrences of field num among the fields in b
// (0 when b is malformed: the decoder then reports it).
func countField(b []byte, num protowire.Number) int {
	n := 0
	for len(b) > 0 {
		f, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return 0
		}
		b = b[m:]
		m = protowire.ConsumeFieldValue(f, typ, b)
		if m < 0 {
			return 0
		}
		b = b[m:]
		if f == num {
			n++
		}
	}
	return n
}

// date reads a date written by appendDate.
func (r *reader) date() sterad.Date {
	if r.typ == protowire.VarintType {
		v := r.uint()
		return sterad.Date{Year: int(v >> 9), Month: time.Month(v >> 5 & 15), Day: int(v & 31)}
	}
	m := r.sub()
	var d sterad.Date
	for m.next() {
		switch m.num {
		case 1:
			d.Year = m.int()
		case 2:
			d.Month = time.Month(m.int())
		case 3:
			d.Day = m.int()
		default:
			m.skip()
		}
	}
	if m.err != nil {
		r.fail(m.err)
	}
	return d
}

func (r *reader) policySnapshot(base timeBase) *sterad.PolicySnapshot {
	m := r.sub()
	p := new(sterad.PolicySnapshot)
	for m.next() {
		switch m.num {
		case 1:
			c := m.sub()
			for c.next() {
				switch c.num {
				case 1:
					p.Policy.Version = c.string()
				case 2:
					w := c.sub()
					var row sterad.FeeRow
					for w.next() {
						switch w.num {
						case 1:
							row.DaysBefore = w.int()
						case 2:
							row.Percent = w.decimal()
						case 3:
							row.Of = sterad.FeeBasis(w.string())
						default:
							w.skip()
						}
					}
					if w.err != nil {
						c.fail(w.err)
					}
					p.Policy.Rows = append(p.Policy.Rows, row)
				case 3:
					w := c.sub()
					ns := new(sterad.NoShowFee)
					for w.next() {
						switch w.num {
						case 1:
							ns.Percent = w.decimal()
						case 2:
							ns.Of = sterad.FeeBasis(w.string())
						default:
							w.skip()
						}
					}
					if w.err != nil {
						c.fail(w.err)
					}
					p.Policy.NoShow = ns
				case 4:
					if c.bool() && p.Policy.Rows == nil {
						p.Policy.Rows = []sterad.FeeRow{}
					}
				default:
					c.skip()
				}
			}
			if c.err != nil {
				m.fail(c.err)
			}
		case 2:
			p.FirstNight = m.amount()
		case 3:
			p.RecordedAt = m.time(base)
		default:
			m.skip()
		}
	}
	if m.err != nil {
		r.fail(m.err)
	}
	return p
}

// txnTimesOK reports whether every time of t can be written as JSON (the
// retention archive and the API): the binary encoding holds any time, but
// the store keeps refusing what an earlier release could not encode.
func txnTimesOK(t *sterad.Transaction) bool {
	ok := jsonTime(t.CreatedAt) && jsonTime(t.UpdatedAt) && jsonTime(t.Transmitted) && jsonTime(t.ReversalTransmitted)
	for i := range t.Events {
		ok = ok && jsonTime(t.Events[i].At)
	}
	if t.Policy != nil {
		ok = ok && jsonTime(t.Policy.RecordedAt)
	}
	return ok
}
