package sterad

import (
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
	return fmt.Sprintf("%02d%02d", e.Year%100, e.Month)
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
}

// LogValue shows only the masked card.
func (c *Card) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("pan", c.PAN.Masked()), slog.String("entry", string(c.Entry)), slog.String("brand", string(c.Brand)))
}

// Validate checks the card number and expiry at t.
func (c *Card) Validate(t time.Time) error {
	if err := ValidatePAN(string(c.PAN)); err != nil {
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
