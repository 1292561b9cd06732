package sterad

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// PAN is a primary account number. Every way of printing it (String,
// GoString, Format verbs, slog, JSON) shows only the first 6 and last 4
// digits; Reveal returns the digits for the few places that need them
// (DE 2, encryption at rest).
type PAN string

// Reveal returns the full card number. Never log or store the result.
func (p PAN) Reveal() string { return string(p) }

// Masked returns the PAN with all but the first 6 and last 4 digits hidden:
// "411111******1111". PANs too short to keep 10 digits visible show only
// their last 4.
func (p PAN) Masked() string { return MaskPAN(string(p)) }

// String masks the PAN.
func (p PAN) String() string { return p.Masked() }

// GoString masks the PAN under %#v.
func (p PAN) GoString() string { return strconv.Quote(p.Masked()) }

// Format masks the PAN under every fmt verb.
func (p PAN) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprint(f, strconv.Quote(p.Masked()))
	default:
		fmt.Fprint(f, p.Masked())
	}
}

// LogValue masks the PAN in slog output.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// MarshalJSON masks the PAN.
func (p PAN) MarshalJSON() ([]byte, error) { return json.Marshal(p.Masked()) }

// Last4 returns the last four digits.
func (p PAN) Last4() string {
	if len(p) < 4 {
		return ""
	}
	return string(p[len(p)-4:])
}

// MaskPAN masks a card number to its first 6 and last 4 digits. Inputs too
// short to be a card number (under 12 characters) keep only their last 4,
// and inputs of 4 or fewer characters are hidden entirely.
func MaskPAN(s string) string {
	n := len(s)
	switch {
	case n >= 12:
		return s[:6] + strings.Repeat("*", n-10) + s[n-4:]
	case n > 4:
		return strings.Repeat("*", n-4) + s[n-4:]
	default:
		return strings.Repeat("*", n)
	}
}

// ValidatePAN checks that s is 12 to 19 digits and passes the Luhn check.
func ValidatePAN(s string) error {
	if len(s) < 12 || len(s) > 19 {
		return Errorf(EInvalid, "invalid_card", "card number must have 12 to 19 digits, got %d", len(s))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return Errorf(EInvalid, "invalid_card", "card number must contain digits only")
		}
	}
	if !Luhn(s) {
		return Errorf(EInvalid, "invalid_card", "card number %s fails the Luhn check", MaskPAN(s))
	}
	return nil
}

// LooksLikePAN reports whether s is a card number written the way people
// write them: 12 to 19 digits, spaces and dashes aside, passing the Luhn
// check. Free text that sterad keeps in clear (a reference, a voucher
// number) is refused or masked when it does; digits are its digits.
func LooksLikePAN(s string) (digits string, ok bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '-':
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	digits = b.String()
	if n := len(digits); n < 12 || n > 19 || !Luhn(digits) {
		return "", false
	}
	return digits, true
}

// Luhn reports whether the digit string s passes the Luhn (mod 10) check.
func Luhn(s string) bool {
	if s == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// Expiry is a card's expiry month. A card is valid through the last day of
// that month.
type Expiry struct {
	Year  int // four digits
	Month int // 1–12
}

// Digits is YYYYMM, each part zero-padded (fmt's %04d%02d).
func (e Expiry) Digits() string {
	if e.Year < 0 || e.Year > 9999 || e.Month < 0 || e.Month > 99 {
		return fmt.Sprintf("%04d%02d", e.Year, e.Month)
	}
	return string(appendDigits(appendDigits(make([]byte, 0, 6), e.Year, 4), e.Month, 2))
}

// ParseExpiry parses YYMM (DE 14's form).
func ParseExpiry(s string) (Expiry, error) {
	if len(s) != 4 {
		return Expiry{}, Errorf(EInvalid, "invalid_expiry", "expiry must be YYMM, got %d characters", len(s))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return Expiry{}, Errorf(EInvalid, "invalid_expiry", "expiry must be YYMM digits")
		}
	}
	yy, _ := strconv.Atoi(s[:2])
	mm, _ := strconv.Atoi(s[2:])
	if mm < 1 || mm > 12 {
		return Expiry{}, Errorf(EInvalid, "invalid_expiry", "expiry month %02d is not 01–12", mm)
	}
	return Expiry{Year: 2000 + yy, Month: mm}, nil
}

// String formats YYMM.
func (e Expiry) String() string {
	if e.IsZero() {
		return ""
	}
	y, m := e.Year%100, e.Month
	if y < 0 || m < 0 || m > 99 {
		return fmt.Sprintf("%02d%02d", y, m)
	}
	return string(appendDigits(appendDigits(make([]byte, 0, 4), y, 2), m, 2))
}

// IsZero reports whether the expiry is unset.
func (e Expiry) IsZero() bool { return e.Year == 0 && e.Month == 0 }

// Expired reports whether the card has expired at t (in t's location).
func (e Expiry) Expired(t time.Time) bool {
	y, m, _ := t.Date()
	return y > e.Year || (y == e.Year && int(m) > e.Month)
}

// Brand is a card scheme.
type Brand string

// Card brands, named as the terminal link and the fee table name them.
const (
	BrandVisa       Brand = "visa"
	BrandMastercard Brand = "mastercard"
	BrandJCB        Brand = "jcb"
	BrandAmex       Brand = "amex"
	BrandDiners     Brand = "diners"
	BrandUnionPay   Brand = "unionpay"
	BrandUnknown    Brand = "unknown"
)

// Brands lists the known brands in report order.
var Brands = []Brand{BrandVisa, BrandMastercard, BrandJCB, BrandAmex, BrandDiners, BrandUnionPay}

// ParseBrand returns the brand named s.
func ParseBrand(s string) (Brand, bool) {
	for _, b := range Brands {
		if string(b) == strings.ToLower(s) {
			return b, true
		}
	}
	return "", false
}

// BrandOf returns the brand of a card number from its IIN ranges.
func BrandOf(pan string) Brand {
	p := func(n int) int {
		if len(pan) < n {
			return -1
		}
		v, err := strconv.Atoi(pan[:n])
		if err != nil {
			return -1
		}
		return v
	}
	switch {
	case p(1) == 4:
		return BrandVisa
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720:
		return BrandMastercard
	case p(2) == 34, p(2) == 37:
		return BrandAmex
	case p(4) >= 3528 && p(4) <= 3589:
		return BrandJCB
	case p(3) >= 300 && p(3) <= 305, p(4) == 3095, p(2) == 36, p(2) == 38, p(2) == 39:
		return BrandDiners
	case p(2) == 62, p(2) == 81:
		return BrandUnionPay
	}
	return BrandUnknown
}

// EntryMode is how the card was read (DE 22).
type EntryMode string

// Entry modes, named as the terminal link names them.
const (
	EntryChip        EntryMode = "chip"
	EntryContactless EntryMode = "ctls"
	EntrySwipe       EntryMode = "swipe"
	EntryKeyed       EntryMode = "keyed"
	EntryToken       EntryMode = "token" // stored host token (DE 22 = 102)
)

// POSEntryMode returns the DE 22 code of the entry mode.
func (e EntryMode) POSEntryMode() string {
	switch e {
	case EntryChip:
		return "051"
	case EntryContactless:
		return "071"
	case EntrySwipe:
		return "901"
	case EntryToken:
		return "102"
	default:
		return "012"
	}
}

// EntryModeFromPOS returns the entry mode of a DE 22 code.
func EntryModeFromPOS(code string) (EntryMode, bool) {
	switch code {
	case "051":
		return EntryChip, true
	case "071":
		return EntryContactless, true
	case "901":
		return EntrySwipe, true
	case "012":
		return EntryKeyed, true
	case "102":
		return EntryToken, true
	}
	return "", false
}

// Sensitive is authentication data (track 2, chip data) that exists only
// in memory during an authorization. It prints as "[redacted]" and is never
// serialized.
type Sensitive []byte

func (s Sensitive) String() string               { return "[redacted]" }
func (s Sensitive) GoString() string             { return "[redacted]" }
func (s Sensitive) Format(f fmt.State, _ rune)   { fmt.Fprint(f, "[redacted]") }
func (s Sensitive) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s Sensitive) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// Card is card data as read at a terminal or keyed. Track2 and ICC are
// sensitive authentication data: they live only in memory until the
// authorization completes and are never written anywhere.
type Card struct {
	PAN    PAN
	Expiry Expiry
	Entry  EntryMode
	Brand  Brand
	Track2 Sensitive `json:"-"`
	ICC    Sensitive `json:"-"`

	// An encrypting terminal's card (terminal-link §7, docs/non-retention.md):
	// no PAN, expiry or track 2 in clear, only the masked number the
	// terminal shows and the block it encrypted, which sterad passes on
	// and cannot open.
	Masked    string          // first 6 and last 4 digits, the rest '*'
	Encrypted *EncryptedBlock // nil for a card in clear
}

// EncryptedBlock is the card data an encrypting (P2PE) terminal encrypted
// under its AES DUKPT key: the key serial number and the ciphertext, both
// as the terminal sent them. The acquirer derives the key from its own
// base derivation key; sterad has no key and sends the block unchanged
// (DE 48 KS and EC).
type EncryptedBlock struct {
	KSN  string `json:"ksn"`  // 24 uppercase hex digits
	Data string `json:"data"` // uppercase hex, whole 16-byte blocks
}

// MaxEncryptedData is the longest encrypted block DE 48 EC carries (hex digits).
const MaxEncryptedData = 960

// Validate checks the form of an encrypted block (it cannot check more).
func (e *EncryptedBlock) Validate() error {
	switch {
	case len(e.KSN) != 24 || !isUpperHex(e.KSN):
		return Errorf(EInvalid, "invalid_ksn", "the key serial number must be 24 uppercase hex digits")
	case e.Data == "" || len(e.Data)%32 != 0 || !isUpperHex(e.Data):
		return Errorf(EInvalid, "invalid_card_block", "the encrypted card data must be whole 16-byte blocks in uppercase hex")
	case len(e.Data) > MaxEncryptedData:
		return Errorf(EInvalid, "invalid_card_block", "the encrypted card data is longer than %d hex digits", MaxEncryptedData)
	}
	return nil
}

func isUpperHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// MaskedPAN is the card number as sterad may show and keep it: masked
// from the PAN in clear, or as an encrypting terminal reported it.
func (c *Card) MaskedPAN() string {
	if c.PAN != "" {
		return c.PAN.Masked()
	}
	return c.Masked
}

// Blind reports whether the card came encrypted: sterad holds no card
// number for it.
func (c *Card) Blind() bool { return c.Encrypted != nil }

// ValidMasked reports whether s is a masked card number: 12 to 19
// characters, the first 6 and last 4 digits, '*' between.
func ValidMasked(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	for i, c := range s {
		digit := '0' <= c && c <= '9'
		if i < 6 || i >= len(s)-4 {
			if !digit {
				return false
			}
		} else if c != '*' {
			return false
		}
	}
	return true
}

// LogValue shows only the masked card.
func (c *Card) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("pan", c.MaskedPAN()), slog.String("entry", string(c.Entry)), slog.String("brand", string(c.Brand)))
}

// Validate checks the card as a whole at t: the card number (12 to 19
// digits, Luhn), that every other copy of the card data it carries names
// the same card (CheckCardData: track 2, the chip's own card tags), and
// the expiry (present, not past). It is the one check of a card, keyed or
// read at a terminal, before anything is sent for it. Errors never quote
// card data (masked card numbers at most).
func (c *Card) Validate(t time.Time) error {
	if c.Encrypted != nil {
		// An encrypting terminal's card: its number and expiry are only
		// in the block; the acquirer checks them.
		if c.PAN != "" || !c.Expiry.IsZero() || len(c.Track2) > 0 {
			return Errorf(EInvalid, "card_in_clear", "an encrypted card also carries card data in clear")
		}
		if !ValidMasked(c.Masked) {
			return Errorf(EInvalid, "invalid_masked_pan", "the masked card number must show the first 6 and last 4 digits only")
		}
		return c.Encrypted.Validate()
	}
	if err := ValidatePAN(string(c.PAN)); err != nil {
		return err
	}
	if err := c.CheckCardData(); err != nil {
		return err
	}
	if c.Expiry.IsZero() {
		return Errorf(EInvalid, "invalid_expiry", "card expiry is missing")
	}
	if c.Expiry.Expired(t) {
		return Errorf(EInvalid, "expired_card", "card %s expired at the end of %s", c.PAN.Masked(), c.Expiry.String())
	}
	return nil
}

// Wipe zeroes the sensitive authentication data in place and drops it.
func (c *Card) Wipe() {
	if c == nil {
		return
	}
	clear(c.Track2)
	clear(c.ICC)
	c.Track2, c.ICC = nil, nil
}

// MaxTrack2 is the longest track 2 (DE 35 is z..37).
const MaxTrack2 = 37

// ParseTrack2 reads track 2 equivalent data (docs/acquirer-protocol.md#fields DE 35, z..37,
// as ISO/IEC 7813 lays it out): the card number (12 to 19 digits), the
// separator '=' or 'D', the expiry YYMM, then digits only (service code
// and discretionary data; they may be absent). Sentinels, an LRC or a
// second separator make it malformed. Errors never quote the data.
func ParseTrack2(t2 Sensitive) (PAN, Expiry, error) {
	bad := func(why string) (PAN, Expiry, error) {
		return "", Expiry{}, Errorf(EInvalid, "invalid_track2", "track 2 is malformed: %s", why)
	}
	if len(t2) == 0 {
		return bad("it is empty")
	}
	if len(t2) > MaxTrack2 {
		return bad(fmt.Sprintf("it is longer than %d characters", MaxTrack2))
	}
	sep := -1
	for i, c := range t2 {
		switch {
		case c >= '0' && c <= '9':
		case c == '=' || c == 'D':
			if sep >= 0 {
				return bad("it has two field separators")
			}
			sep = i
		default:
			return bad("it holds characters other than digits and one '=' or 'D' separator")
		}
	}
	switch {
	case sep < 0:
		return bad("the field separator ('=' or 'D') is missing")
	case sep < 12 || sep > 19:
		return bad("its card number is not 12 to 19 digits")
	case len(t2) < sep+5:
		return bad("the expiry (YYMM) after the separator is missing")
	}
	exp, err := ParseExpiry(string(t2[sep+1 : sep+5]))
	if err != nil {
		return bad("its expiry is not YYMM")
	}
	return PAN(t2[:sep]), exp, nil
}

// CheckCardData checks that every copy of the card data the card carries
// names the card of its PAN and expiry:
//   - track 2 (swipe): well formed (ParseTrack2), its card number
//     Luhn-valid and equal to PAN, its expiry equal to Expiry;
//   - chip data (chip, contactless), when it holds the card's own EMV
//     tags: 5A (application PAN), 57 (track 2 equivalent data) and 5F24
//     (expiry date) must agree with PAN and Expiry. The chip data is
//     scanned as BER-TLV, into constructed templates; a list that cannot
//     be parsed further is checked up to there (the host judges DE 55).
//
// A card that disagrees with itself is refused: swipe requests carry
// track 2 instead of DE 2, so the host would charge the card of track 2
// while sterad recorded (and refunded, reversed, reported) the other one.
// A keyed card has neither and always passes. Errors never quote card
// data (masked card numbers at most).
func (c *Card) CheckCardData() error {
	if len(c.Track2) > 0 {
		if err := c.sameCard("track 2", c.Track2); err != nil {
			return err
		}
	}
	if len(c.ICC) > 0 {
		return c.checkICC(c.ICC, 0)
	}
	return nil
}

// sameCard checks track 2 equivalent data (from track 2 or chip tag 57)
// against the card.
func (c *Card) sameCard(where string, t2 Sensitive) error {
	pan, exp, err := ParseTrack2(t2)
	if err != nil {
		if where == "track 2" {
			return err
		}
		return Errorf(EInvalid, "invalid_chip_data", "%s is malformed: %s", where, strings.TrimPrefix(ErrorMessage(err), "track 2 is malformed: "))
	}
	if !Luhn(string(pan)) {
		return Errorf(EInvalid, "invalid_track2", "the card number on %s (%s) fails the Luhn check", where, pan.Masked())
	}
	if pan != c.PAN {
		return Errorf(EInvalid, "card_mismatch", "%s names another card (%s) than the card number read (%s)", where, pan.Masked(), c.PAN.Masked())
	}
	if exp != c.Expiry {
		return Errorf(EInvalid, "card_mismatch", "the expiry on %s differs from the expiry read", where)
	}
	return nil
}

// checkICC scans BER-TLV chip data for the card's own tags (5A, 57,
// 5F24). depth bounds the nesting of constructed templates.
func (c *Card) checkICC(b []byte, _ int) error {
	var err error
	WalkTLV(b, func(tag []byte, v []byte) bool {
		switch {
		case len(tag) == 1 && tag[0] == 0x5A:
			digits := strings.TrimRight(strings.ToUpper(hex.EncodeToString(v)), "F")
			pan := PAN(digits)
			if !isDigits(digits) {
				err = Errorf(EInvalid, "invalid_chip_data", "the chip's card number (tag 5A) is not a card number")
			} else if pan != c.PAN {
				err = Errorf(EInvalid, "card_mismatch", "the chip data names another card (%s) than the card number read (%s)", pan.Masked(), c.PAN.Masked())
			}
		case len(tag) == 1 && tag[0] == 0x57:
			t2 := Sensitive(strings.TrimRight(strings.ToUpper(hex.EncodeToString(v)), "F"))
			err = c.sameCard("the chip's track 2 equivalent data (tag 57)", t2)
			clear(t2)
		case len(tag) == 2 && tag[0] == 0x5F && tag[1] == 0x24:
			d := hex.EncodeToString(v)
			if len(d) < 4 || !isDigits(d) {
				err = Errorf(EInvalid, "invalid_chip_data", "the chip's expiry date (tag 5F24) is not YYMMDD")
			} else if d[:4] != c.Expiry.String() {
				err = Errorf(EInvalid, "card_mismatch", "the chip's expiry date (tag 5F24) differs from the expiry read")
			}
		}
		return err == nil
	})
	return err
}

// WalkTLV calls fn with every primitive data object of BER-TLV chip data
// (EMV, DE 55), looking into constructed templates up to four levels
// deep, until fn returns false. Data it cannot parse further is walked up
// to there: the issuer judges the rest.
func WalkTLV(b []byte, fn func(tag, value []byte) bool) {
	walkTLV(b, 0, fn)
}

func walkTLV(b []byte, depth int, fn func(tag, value []byte) bool) bool {
	for len(b) > 0 {
		if b[0] == 0x00 || b[0] == 0xFF { // padding between objects
			b = b[1:]
			continue
		}
		// Tag: one byte, or more when its low five bits are all set.
		n := 1
		if b[0]&0x1F == 0x1F {
			for n < len(b) && b[n]&0x80 != 0 {
				n++
			}
			n++
		}
		if n > len(b) || n > 3 {
			return true // malformed: walked up to here
		}
		tag, constructed := b[:n], b[0]&0x20 != 0
		b = b[n:]
		// Length: short form, or 0x81/0x82 followed by one or two bytes.
		if len(b) == 0 {
			return true
		}
		l, m := int(b[0]), 1
		switch {
		case b[0] == 0x81 && len(b) >= 2:
			l, m = int(b[1]), 2
		case b[0] == 0x82 && len(b) >= 3:
			l, m = int(b[1])<<8|int(b[2]), 3
		case b[0] >= 0x80:
			return true
		}
		if m+l > len(b) {
			return true
		}
		v := b[m : m+l]
		b = b[m+l:]
		if !fn(tag, v) {
			return false
		}
		if constructed && depth < 4 && !walkTLV(v, depth+1, fn) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// SettleBrand sets the card's brand from its number's own IIN range
// (BrandOf): the fee table and the reports follow the card, not what a
// reader claims. The brand already on the card (the terminal's `brand`)
// is kept only when the number's range is unknown to sterad. It returns
// the claimed brand when it disagreed with the range (and was overridden),
// "" otherwise; the caller logs that, masked.
func (c *Card) SettleBrand() (claimed Brand) {
	own := BrandOf(c.MaskedPAN()) // the range is in the first digits, in clear even when masked
	if own == BrandUnknown {
		if c.Brand == "" {
			c.Brand = BrandUnknown
		}
		return ""
	}
	if c.Brand != "" && c.Brand != BrandUnknown && c.Brand != own {
		claimed = c.Brand
	}
	c.Brand = own
	return claimed
}
