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
	w, err := encode(m)
	if err != nil {
		return nil, err
	}
	return w.pack()
}

// packISO converts m and packs it, returning both forms.
func packISO(m *sterad.HostMessage) (*iso8583.Message, []byte, error) {
	w, err := encode(m)
	if err != nil {
		return nil, nil, err
	}
	b, err := w.pack()
	if err != nil {
		return nil, nil, err
	}
	msg, err := w.toISO()
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
	w, err := parse(b)
	if err != nil {
		return nil, err
	}
	return w.decode(ref)
}

// UnpackISO decodes the structure of a message: MTI, bitmaps and fields,
// checking the size limit and that no bytes trail the last field.
func UnpackISO(b []byte) (*iso8583.Message, error) {
	w, err := parse(b)
	if err != nil {
		return nil, err
	}
	return w.toISO()
}

// ToISO converts m to a moov message, validating every field's format.
func ToISO(m *sterad.HostMessage) (*iso8583.Message, error) {
	w, err := encode(m)
	if err != nil {
		return nil, err
	}
	return w.toISO()
}

// FromISO converts a moov message to a HostMessage. See Unpack for ref and
// for the partial result returned with a *FormatError.
func FromISO(msg *iso8583.Message, ref time.Time) (*sterad.HostMessage, error) {
	return fromISO(msg).decode(ref)
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

// encode puts every field of m, checking each one against its layout. The
// error joins a *FormatError for every field that does not fit.
func encode(m *sterad.HostMessage) (*wireMessage, error) {
	if !isDigits(string(m.MTI), 4) {
		return nil, formatErr(0, "must be 4 digits")
	}
	w := &wireMessage{mti: string(m.MTI), fields: make([]wireField, 0, len(dataElements))}
	var errs []error
	for i := range dataElements {
		e := &dataElements[i]
		v, err := e.put(m)
		if err == nil && v != "" {
			err = e.check(v)
		}
		switch {
		case err != nil:
			errs = append(errs, &FormatError{Field: e.de, Reason: err.Error()})
		case v != "":
			w.fields = append(w.fields, wireField{e, v})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// decode gets every field into a new HostMessage. A field that does not fit
// its layout or its meaning is left out, and the first such field is
// returned as a *FormatError with the rest of the message.
func (w *wireMessage) decode(received time.Time) (*sterad.HostMessage, error) {
	if !isDigits(w.mti, 4) {
		return nil, formatErr(0, "must be 4 digits")
	}
	w.received = received
	m := &sterad.HostMessage{MTI: sterad.MTI(w.mti)}
	var first error
	for i := range dataElements {
		e := &dataElements[i]
		var err error
		if v, ok := w.value(e.de); !ok {
			err = w.missing(e)
		} else if err = e.check(v); err == nil {
			if e.fill && e.chars == printChars {
				v = strings.TrimRight(v, " ")
			}
			err = e.get(m, v, w)
		}
		if err != nil && first == nil {
			first = &FormatError{Field: e.de, Reason: err.Error()}
		}
	}
	return m, first
}

// missing reports an absent field that goes with one that is present.
func (w *wireMessage) missing(e *dataElement) error {
	for _, de := range e.with {
		if _, ok := w.value(de); ok {
			return fmt.Errorf("missing: DE %s go together", joinInts(e.with))
		}
	}
	return nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
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

// twoDigits writes each of vs (0–99: a month, a day, an hour, a minute,
// a second) in two digits: time.Format's "01", "02", "15", "04" and "05"
// without its cost on every message.
func twoDigits(vs ...int) string {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = appendZeroFilled(b, int64(v), 2)
	}
	return string(b)
}

// mmddhhmmss is DE 7's form of t.
func mmddhhmmss(t time.Time) string {
	_, mo, d := t.Date()
	h, mi, s := t.Clock()
	return twoDigits(int(mo), d, h, mi, s)
}

// zeroFill formats v (0 ≤ v < 10^width, checked by the caller) as an n
// field: right-justified, zero-filled to width digits.
func zeroFill(v int64, width int) string {
	return string(appendZeroFilled(make([]byte, 0, width), v, width))
}

func appendZeroFilled(b []byte, v int64, width int) []byte {
	for i := width - 1; i >= 0; i-- {
		b = append(b, byte('0'+v/pow10[i]%10))
	}
	return b
}

// atoi returns the value of s, which is digits (at most 18).
func atoi(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
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

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > 0x7f {
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
