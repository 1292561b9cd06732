package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/sterad/sterad"
)

// FormatError says which field of a message is malformed and why. It never
// contains field values: they may be card data.
type FormatError struct {
	Field  int // data element, 0 for the MTI, -1 for the whole message
	Reason string
}

func (e *FormatError) Error() string {
	switch e.Field {
	case -1:
		return "iso8583: " + e.Reason
	case 0:
		return "iso8583: MTI: " + e.Reason
	}
	return fmt.Sprintf("iso8583: DE %d: %s", e.Field, e.Reason)
}

func formatErr(de int, format string, args ...any) error {
	return &FormatError{Field: de, Reason: fmt.Sprintf(format, args...)}
}

// Pack encodes m as it goes on the wire, without the 2-byte length header.
func Pack(m *sterad.HostMessage) ([]byte, error) {
	_, b, err := packISO(m)
	return b, err
}

// packISO converts m and packs it, returning both forms.
func packISO(m *sterad.HostMessage) (*iso8583.Message, []byte, error) {
	msg, err := ToISO(m)
	if err != nil {
		return nil, nil, err
	}
	b, err := packChecked(msg)
	if err != nil {
		return nil, nil, err
	}
	return msg, b, nil
}

// packChecked packs msg and enforces MaxMessageLength.
func packChecked(msg *iso8583.Message) ([]byte, error) {
	b, err := msg.Pack()
	if err != nil {
		return nil, safeErr("pack", err)
	}
	if len(b) > MaxMessageLength {
		return nil, formatErr(-1, "message of %d bytes exceeds %d", len(b), MaxMessageLength)
	}
	return b, nil
}

// Unpack decodes a message (without its length header). ref is the time the
// message was received: DE 7 and DE 90 carry no year, so the year closest to
// ref is used. When the message's structure is sound but a field's content
// is not, Unpack returns what it read together with a *FormatError, so a host
// can still answer 30.
func Unpack(b []byte, ref time.Time) (*sterad.HostMessage, error) {
	msg, err := UnpackISO(b)
	if err != nil {
		return nil, err
	}
	return FromISO(msg, ref)
}

// UnpackISO decodes the structure of a message: MTI, bitmaps and fields,
// checking the size limit and that no bytes trail the last field.
func UnpackISO(b []byte) (*iso8583.Message, error) {
	if len(b) > MaxMessageLength {
		return nil, formatErr(-1, "message of %d bytes exceeds %d", len(b), MaxMessageLength)
	}
	if len(b) < 12 {
		return nil, formatErr(-1, "message of %d bytes is too short", len(b))
	}
	msg := iso8583.NewMessage(Spec)
	if err := msg.Unpack(b); err != nil {
		return nil, safeErr("unpack", err)
	}
	// Bytes after the last field mean the sender and we disagree on the
	// layout: re-packing must give back exactly what was read.
	again, err := msg.Pack()
	if err != nil {
		return nil, safeErr("unpack", err)
	}
	if len(again) != len(b) {
		return nil, formatErr(-1, "%d bytes do not belong to any field of the bitmap", len(b)-len(again))
	}
	return msg, nil
}

// safeErr keeps moov's description of what failed but drops raw bytes:
// unpack errors carry the whole message, which may hold a card number.
func safeErr(op string, err error) error {
	var fieldID string
	var ue interface{ FieldIDs() []string }
	if errors.As(err, &ue) {
		ids := ue.FieldIDs()
		if len(ids) > 0 {
			fieldID = ids[0]
		}
	}
	reason := err.Error()
	// moov's messages name the field and the length problem; cut anything
	// after a colon that quotes data.
	if i := strings.Index(reason, "invalid ASCII char"); i >= 0 {
		reason = reason[:i] + "non-ASCII byte"
	}
	// strconv quotes the bytes it could not parse as a length prefix.
	if i := strings.Index(reason, "strconv."); i >= 0 {
		reason = reason[:i] + "length prefix is not a number"
	}
	de, convErr := strconv.Atoi(fieldID)
	if convErr != nil {
		de = -1
	}
	return &FormatError{Field: de, Reason: op + ": " + reason}
}

// ToISO converts m to a moov message, validating every field's format.
func ToISO(m *sterad.HostMessage) (*iso8583.Message, error) {
	msg := iso8583.NewMessage(Spec)
	if !isDigits(string(m.MTI), 4) {
		return nil, formatErr(0, "must be 4 digits")
	}
	msg.MTI(string(m.MTI))
	set := func(de int, v string) error {
		if err := msg.Field(de, v); err != nil {
			return formatErr(de, "cannot be set")
		}
		return nil
	}
	digits := func(de int, v string, n int) error {
		if !isDigits(v, n) {
			return formatErr(de, "must be %d digits", n)
		}
		return set(de, v)
	}
	text := func(de int, v string, n int) error {
		if len(v) > n || !isPrintableASCII(v) {
			return formatErr(de, "must be at most %d printable ASCII characters", n)
		}
		return set(de, v+strings.Repeat(" ", n-len(v)))
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	if m.PAN != "" {
		pan := m.PAN.Reveal()
		if len(pan) > 19 || !isDigits(pan, len(pan)) {
			add(formatErr(2, "must be up to 19 digits"))
		} else {
			add(set(2, pan))
		}
	}
	if m.Processing != "" {
		add(digits(3, m.Processing, 6))
	}
	if m.HasAmount {
		minor := m.Amount.Minor()
		if minor < 0 || minor > 999_999_999_999 || !m.Amount.Value.Shift(m.Amount.Currency.Exponent).IsInteger() {
			add(formatErr(4, "amount out of range for n12"))
		} else {
			add(set(4, zeroFill(minor, 12)))
		}
	}
	if !m.Transmitted.IsZero() {
		add(set(7, m.Transmitted.UTC().Format("0102150405")))
	}
	if m.STAN != 0 {
		if m.STAN < 1 || m.STAN > sterad.MaxSTAN {
			add(formatErr(11, "STAN out of range"))
		} else {
			add(set(11, m.STAN.String()))
		}
	}
	if !m.LocalTime.IsZero() {
		add(set(12, m.LocalTime.Format("150405")))
		add(set(13, m.LocalTime.Format("0102")))
	}
	if !m.Expiry.IsZero() {
		add(digits(14, m.Expiry.String(), 4))
	}
	if m.MCC != "" {
		add(digits(18, m.MCC, 4))
	}
	if m.Entry != "" {
		add(set(22, m.Entry.POSEntryMode()))
	}
	if m.Condition != "" {
		add(digits(25, m.Condition, 2))
	}
	if len(m.Track2) > 0 {
		if len(m.Track2) > 37 || !isTrack2(string(m.Track2)) {
			add(formatErr(35, "must be up to 37 track 2 characters"))
		} else {
			add(set(35, string(m.Track2)))
		}
	}
	if m.RRN != "" {
		add(text(37, m.RRN, 12))
	}
	if m.AuthCode != "" {
		add(text(38, m.AuthCode, 6))
	}
	if m.ResponseCode != "" {
		if len(m.ResponseCode) != 2 || !isPrintableASCII(m.ResponseCode) {
			add(formatErr(39, "must be 2 characters"))
		} else {
			add(set(39, m.ResponseCode))
		}
	}
	if m.TerminalID != "" {
		add(text(41, m.TerminalID, 8))
	}
	if m.MerchantID != "" {
		add(text(42, m.MerchantID, 15))
	}
	if de48, err := encodeDE48(m); err != nil {
		add(err)
	} else if de48 != "" {
		add(set(48, de48))
	}
	if m.Currency.Number != "" {
		add(digits(49, m.Currency.Number, 3))
	} else if m.HasAmount {
		add(digits(49, m.Amount.Currency.Number, 3))
	}
	if len(m.ICC) > 0 {
		if len(m.ICC) > 255 {
			add(formatErr(55, "must be at most 255 bytes"))
		} else if err := msg.BinaryField(55, m.ICC); err != nil {
			add(formatErr(55, "cannot be set"))
		}
	}
	if m.Batch != 0 {
		if m.Batch < 1 || m.Batch > 999999 {
			add(formatErr(60, "batch number out of range"))
		} else {
			add(set(60, zeroFill(int64(m.Batch), 6)))
		}
	}
	if m.NetworkCode != "" {
		add(digits(70, m.NetworkCode, 3))
	}
	if t := m.Totals; t != nil {
		sign, net := t.Net()
		for _, f := range []struct {
			de    int
			v     int64
			width int
		}{{74, t.CreditCount, 10}, {76, t.DebitCount, 10}, {86, t.CreditAmount, 16}, {88, t.DebitAmount, 16}, {97, net, 16}} {
			if f.v < 0 || f.v >= pow10[f.width] {
				add(formatErr(f.de, "out of range"))
				continue
			}
			s := zeroFill(f.v, f.width)
			if f.de == 97 {
				s = sign + s
			}
			add(set(f.de, s))
		}
	}
	if o := m.Original; o != nil {
		if !isDigits(string(o.MTI), 4) || o.STAN < 1 || o.STAN > sterad.MaxSTAN || o.Transmitted.IsZero() {
			add(formatErr(90, "original MTI, STAN and DE 7 are required"))
		} else {
			add(set(90, string(o.MTI)+o.STAN.String()+o.Transmitted.UTC().Format("0102150405")+strings.Repeat("0", 22)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return msg, nil
}

// FromISO converts a moov message to a HostMessage. See Unpack for ref and
// for the partial result returned with a *FormatError.
func FromISO(msg *iso8583.Message, ref time.Time) (*sterad.HostMessage, error) {
	m := &sterad.HostMessage{}
	get := func(de int) string {
		s, _ := msg.GetString(de)
		return s
	}
	has := func(de int) bool { return msg.GetField(de) != nil }
	var first error
	fail := func(de int, format string, args ...any) {
		if first == nil {
			first = formatErr(de, format, args...)
		}
	}
	// getText reads an an/ans field: printable ASCII, trailing spaces
	// dropped (Pack space-fills them back).
	getText := func(de int) string {
		v := get(de)
		if !isPrintableASCII(v) {
			fail(de, "must be printable ASCII")
			return ""
		}
		return strings.TrimRight(v, " ")
	}

	mti := get(0)
	if !isDigits(mti, 4) {
		return nil, formatErr(0, "must be 4 digits")
	}
	m.MTI = sterad.MTI(mti)
	// Fields that identify the message come first, so a host can answer
	// even a message with a bad field further on.
	if has(11) {
		v := get(11)
		n, err := strconv.Atoi(v)
		if !isDigits(v, 6) || err != nil || n < 1 {
			fail(11, "must be 6 digits, 000001–999999")
		} else {
			m.STAN = sterad.STAN(n)
		}
	}
	if has(41) {
		m.TerminalID = getText(41)
	}
	if has(7) {
		t, err := parseMMDDhhmmss(get(7), ref)
		if err != nil {
			fail(7, "%v", err)
		} else {
			m.Transmitted = t
		}
	}
	if has(2) {
		v := get(2)
		if !isDigits(v, len(v)) || len(v) == 0 {
			fail(2, "must be digits")
		} else {
			m.PAN = sterad.PAN(v)
		}
	}
	if has(3) {
		if v := get(3); isDigits(v, 6) {
			m.Processing = v
		} else {
			fail(3, "must be 6 digits")
		}
	}
	cur := sterad.JPY
	if has(49) {
		v := get(49)
		c, ok := sterad.CurrencyByNumber(v)
		if !isDigits(v, 3) || !ok {
			fail(49, "unknown currency")
		} else {
			cur = c
		}
		m.Currency = cur
	}
	if has(4) {
		v := get(4)
		n, err := strconv.ParseInt(v, 10, 64)
		if !isDigits(v, 12) || err != nil {
			fail(4, "must be 12 digits")
		} else {
			m.HasAmount = true
			m.Amount = sterad.AmountFromMinor(n, cur)
			// DE 4 without DE 49 is read in JPY; say so, as Pack writes
			// DE 49 for every amount.
			m.Currency = cur
		}
	}
	if has(12) || has(13) {
		t, err := parseLocal(get(13), get(12), ref)
		if err != nil {
			fail(12, "%v", err)
		} else {
			m.LocalTime = t
		}
	}
	if has(14) {
		e, err := sterad.ParseExpiry(get(14))
		if err != nil {
			fail(14, "must be YYMM")
		} else {
			m.Expiry = e
		}
	}
	if has(18) {
		if v := get(18); isDigits(v, 4) {
			m.MCC = v
		} else {
			fail(18, "must be 4 digits")
		}
	}
	if has(22) {
		e, ok := sterad.EntryModeFromPOS(get(22))
		if !ok {
			fail(22, "unknown POS entry mode")
		} else {
			m.Entry = e
		}
	}
	if has(25) {
		if v := get(25); isDigits(v, 2) {
			m.Condition = v
		} else {
			fail(25, "must be 2 digits")
		}
	}
	if has(35) {
		v := get(35)
		if !isTrack2(v) {
			fail(35, "must be track 2 characters")
		} else {
			m.Track2 = sterad.Sensitive(v)
		}
	}
	if has(37) {
		m.RRN = getText(37)
	}
	if has(38) {
		m.AuthCode = getText(38)
	}
	if has(39) {
		if v := get(39); isPrintableASCII(v) {
			m.ResponseCode = v
		} else {
			fail(39, "must be 2 printable ASCII characters")
		}
	}
	if has(42) {
		m.MerchantID = getText(42)
	}
	if has(48) {
		if err := decodeDE48(get(48), m); err != nil {
			if first == nil {
				first = err
			}
		}
	}
	if has(55) {
		b, _ := msg.GetBytes(55)
		m.ICC = sterad.Sensitive(b)
	}
	if has(60) {
		v := get(60)
		n, err := strconv.Atoi(v)
		if v == "" || !isDigits(v, len(v)) || err != nil || n < 1 || n > 999999 {
			fail(60, "must be a batch number of up to 6 digits")
		} else {
			m.Batch = n
		}
	}
	if has(70) {
		if v := get(70); isDigits(v, 3) {
			m.NetworkCode = v
		} else {
			fail(70, "must be 3 digits")
		}
	}
	if has(74) || has(76) || has(86) || has(88) || has(97) {
		t := &sterad.Totals{}
		for _, f := range []struct {
			de    int
			width int
			dst   *int64
		}{{74, 10, &t.CreditCount}, {76, 10, &t.DebitCount}, {86, 16, &t.CreditAmount}, {88, 16, &t.DebitAmount}} {
			if !has(f.de) {
				fail(f.de, "reconciliation totals need DE 74, 76, 86, 88 and 97")
				continue
			}
			v := get(f.de)
			n, err := strconv.ParseInt(v, 10, 64)
			if !isDigits(v, f.width) || err != nil {
				fail(f.de, "must be %d digits", f.width)
				continue
			}
			*f.dst = n
		}
		if has(97) {
			v := get(97)
			sign, net := t.Net()
			if len(v) != 17 || (v[0] != 'C' && v[0] != 'D') || !isDigits(v[1:], 16) {
				fail(97, "must be C or D and 16 digits")
			} else if n, _ := strconv.ParseInt(v[1:], 10, 64); string(v[0]) != sign || n != net {
				fail(97, "net amount does not match DE 86 and 88")
			}
		} else {
			fail(97, "reconciliation totals need DE 97")
		}
		m.Totals = t
	}
	if has(90) {
		o, err := parseOriginal(get(90), ref)
		if err != nil {
			fail(90, "%v", err)
		} else {
			m.Original = o
		}
	}
	return m, first
}

func parseOriginal(v string, ref time.Time) (*sterad.OriginalData, error) {
	if !isDigits(v, 42) {
		return nil, errors.New("must be 42 digits")
	}
	stan, _ := strconv.Atoi(v[4:10])
	if stan < 1 {
		return nil, errors.New("original STAN must be 000001–999999")
	}
	t, err := parseMMDDhhmmss(v[10:20], ref)
	if err != nil {
		return nil, fmt.Errorf("original DE 7: %w", err)
	}
	return &sterad.OriginalData{MTI: sterad.MTI(v[:4]), STAN: sterad.STAN(stan), Transmitted: t}, nil
}

// parseMMDDhhmmss reads DE 7 (UTC) and picks the year closest to ref.
func parseMMDDhhmmss(v string, ref time.Time) (time.Time, error) {
	if !isDigits(v, 10) {
		return time.Time{}, errors.New("must be MMDDhhmmss")
	}
	return closestYear(v[0:4], v[4:10], ref.UTC(), time.UTC)
}

// parseLocal reads DE 13 (MMDD) and DE 12 (hhmmss) as a wall-clock time,
// returned in UTC's location with the year closest to ref.
func parseLocal(mmdd, hhmmss string, ref time.Time) (time.Time, error) {
	if !isDigits(mmdd, 4) || !isDigits(hhmmss, 6) {
		return time.Time{}, errors.New("DE 12 and 13 must be hhmmss and MMDD")
	}
	return closestYear(mmdd, hhmmss, ref, time.UTC)
}

func closestYear(mmdd, hhmmss string, ref time.Time, loc *time.Location) (time.Time, error) {
	mo, _ := strconv.Atoi(mmdd[:2])
	d, _ := strconv.Atoi(mmdd[2:])
	h, _ := strconv.Atoi(hhmmss[:2])
	mi, _ := strconv.Atoi(hhmmss[2:4])
	s, _ := strconv.Atoi(hhmmss[4:])
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, errors.New("not a valid date and time")
	}
	if ref.IsZero() {
		ref = time.Now()
	}
	var best time.Time
	for y := ref.Year() - 1; y <= ref.Year()+1; y++ {
		t := time.Date(y, time.Month(mo), d, h, mi, s, 0, loc)
		if t.Day() != d { // 31st of a short month, 29 Feb of a common year
			continue
		}
		if best.IsZero() || absDur(t.Sub(ref)) < absDur(best.Sub(ref)) {
			best = t
		}
	}
	if best.IsZero() {
		return time.Time{}, errors.New("not a valid date")
	}
	return best, nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// pow10[n] is 10ⁿ: the first value that does not fit n digits.
var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// zeroFill formats v (0 ≤ v < 10^width, checked by the caller) as an n
// field: right-justified, zero-filled to width digits.
func zeroFill(v int64, width int) string {
	b := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b)
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isTrack2 accepts track 2 equivalent data: digits and the '=' or 'D'
// separator.
func isTrack2(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && c != '=' && c != 'D' {
			return false
		}
	}
	return true
}
