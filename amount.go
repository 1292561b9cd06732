package sterad

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// Currency is an ISO 4217 currency with its minor-unit exponent.
type Currency struct {
	Code     string // "JPY"
	Number   string // "392", DE 49
	Exponent int32  // digits after the decimal point; JPY has none
}

// JPY is the Japanese yen: ISO 4217 number 392, no minor unit.
var JPY = Currency{Code: "JPY", Number: "392", Exponent: 0}

var currencies = map[string]Currency{"JPY": JPY}

// LookupCurrency returns the currency with the given alphabetic code.
func LookupCurrency(code string) (Currency, bool) {
	c, ok := currencies[strings.ToUpper(code)]
	return c, ok
}

// CurrencyByNumber returns the currency with the given ISO 4217 number.
func CurrencyByNumber(n string) (Currency, bool) {
	for _, c := range currencies {
		if c.Number == n {
			return c, true
		}
	}
	return Currency{}, false
}

// MaxAmount is the smallest amount the acquirer refuses (DE 39 = 13):
// ¥10,000,000. The gateway rejects such amounts before sending anything.
var MaxAmount = decimal.NewFromInt(10_000_000)

// Amount is a sum of money in a currency. The value never has more decimal
// places than the currency's exponent. Amounts are never floats.
type Amount struct {
	Value    decimal.Decimal
	Currency Currency
}

var amountSyntax = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// ParseAmount parses a decimal string in the currency's major unit ("12800"
// yen). It rejects anything but plain digits with an optional fraction,
// fractions finer than the currency's minor unit, and negative values.
// Zero is accepted; callers decide whether zero is allowed for their op.
func ParseAmount(s string, cur Currency) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Amount{}, Errorf(EInvalid, "invalid_amount", "amount is missing")
	}
	if !amountSyntax.MatchString(s) {
		return Amount{}, Errorf(EInvalid, "invalid_amount", "amount %q is not a decimal number", s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Amount{}, Errorf(EInvalid, "invalid_amount", "amount %q is not a decimal number", s)
	}
	if d.IsNegative() {
		return Amount{}, Errorf(EInvalid, "invalid_amount", "amount %s is negative", s)
	}
	if !d.Equal(d.Truncate(cur.Exponent)) {
		if cur.Exponent == 0 {
			return Amount{}, Errorf(EInvalid, "invalid_amount", "amount %s has a fraction, but %s has no minor unit", s, cur.Code)
		}
		return Amount{}, Errorf(EInvalid, "invalid_amount", "amount %s has more than %d decimal places for %s", s, cur.Exponent, cur.Code)
	}
	return Amount{Value: d, Currency: cur}, nil
}

// NewAmount returns an amount of n major units.
func NewAmount(n int64, cur Currency) Amount {
	return Amount{Value: decimal.NewFromInt(n), Currency: cur}
}

// AmountFromMinor returns the amount of n minor units (DE 4's form).
func AmountFromMinor(n int64, cur Currency) Amount {
	return Amount{Value: decimal.New(n, -cur.Exponent), Currency: cur}
}

// Minor returns the amount in minor units, as DE 4 carries it.
func (a Amount) Minor() int64 {
	return a.Value.Shift(a.Currency.Exponent).IntPart()
}

// IsZero reports whether the amount is zero.
func (a Amount) IsZero() bool { return a.Value.IsZero() }

// Add returns a+b. Both must be in the same currency.
func (a Amount) Add(b Amount) Amount {
	return Amount{Value: a.Value.Add(b.Value), Currency: a.currency(b)}
}

// Sub returns a-b. Both must be in the same currency.
func (a Amount) Sub(b Amount) Amount {
	return Amount{Value: a.Value.Sub(b.Value), Currency: a.currency(b)}
}

// Cmp compares a and b: -1, 0 or +1.
func (a Amount) Cmp(b Amount) int { return a.Value.Cmp(b.Value) }

func (a Amount) currency(b Amount) Currency {
	if a.Currency.Code == "" {
		return b.Currency
	}
	return a.Currency
}

// String formats the amount in major units with the currency's exponent.
func (a Amount) String() string {
	return a.Value.StringFixed(a.Currency.Exponent)
}

// Display formats the amount for people: "¥12,800" for yen, "12,800.00
// USD" otherwise.
func (a Amount) Display() string {
	if a.Currency.Code == "" || a.Currency == JPY {
		return "¥" + GroupDigits(a.String())
	}
	return GroupDigits(a.String()) + " " + a.Currency.Code
}

// GroupDigits puts thousands separators in a decimal string: "-1234567.5"
// becomes "-1,234,567.5".
func GroupDigits(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return b.String()
}

// MarshalJSON encodes the amount as a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) {
	return json.Marshal(a.String())
}

// UnmarshalJSON decodes a decimal string in JPY unless the currency was
// already set. Use ParseAmount for input that must be validated.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("amount must be a string: %w", err)
	}
	cur := a.Currency
	if cur.Code == "" {
		cur = JPY
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return fmt.Errorf("amount %q: %w", s, err)
	}
	*a = Amount{Value: d, Currency: cur}
	return nil
}

// orZero returns a, or zero in cur when a was never set.
func (a Amount) orZero(cur Currency) Amount {
	if a.Currency.Code == "" {
		return Amount{Currency: cur}
	}
	return a
}
