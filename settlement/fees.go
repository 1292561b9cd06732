package settlement

import (
	"regexp"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
)

// FeeTable maps a card brand to its merchant fee rate in percent (2.58
// means 2.58 %). A brand without an entry has no rate: its report lines
// show no rate and a zero fee, and the report warns about it.
// BrandUnknown may have a rate, for cards whose IIN sterad does not know.
type FeeTable map[sterad.Brand]decimal.Decimal

// DefaultFees returns the bulk merchant service's rates
// (the hotel association's rates: docs/decisions.md): Visa and Mastercard 2.58 %, UnionPay 2.90 %, JCB
// 2.48 % (the JAL/JTB JCB contract rate), American Express and Diners
// 3.25 % (their rates are the hotel's own contract: configure them).
func DefaultFees() FeeTable {
	return FeeTable{
		sterad.BrandVisa:       decimal.RequireFromString("2.58"),
		sterad.BrandMastercard: decimal.RequireFromString("2.58"),
		sterad.BrandUnionPay:   decimal.RequireFromString("2.90"),
		sterad.BrandJCB:        decimal.RequireFromString("2.48"),
		sterad.BrandAmex:       decimal.RequireFromString("3.25"),
		sterad.BrandDiners:     decimal.RequireFromString("3.25"),
	}
}

var percentSyntax = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// ParseFeeTable parses the configuration's fee table: brand name (visa,
// mastercard, jcb, amex, diners, unionpay, or unknown; any case) to a
// percentage between 0 and 100 written as a decimal ("2.58", "2.58%").
// It returns exactly the brands given; DefaultFees().With(t) keeps the
// defaults for the others. An unknown brand (CodeUnknownBrand) or a rate
// that is not a percentage (CodeInvalidRate) is an EInvalid *sterad.Error
// naming it; with several problems, the first brand in name order is
// reported.
func ParseFeeTable(m map[string]string) (FeeTable, error) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	t := make(FeeTable, len(m))
	for _, name := range names {
		b, ok := parseFeeBrand(name)
		if !ok {
			return nil, sterad.Errorf(sterad.EInvalid, CodeUnknownBrand,
				"fee table: unknown card brand %q: use visa, mastercard, jcb, amex, diners, unionpay or unknown", name)
		}
		if _, dup := t[b]; dup {
			return nil, sterad.Errorf(sterad.EInvalid, CodeDuplicateBrand, "fee table: brand %s is listed twice", b)
		}
		raw := m[name]
		s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(raw), "%"))
		if !percentSyntax.MatchString(s) {
			return nil, sterad.Errorf(sterad.EInvalid, CodeInvalidRate,
				"fee table: the rate of %s, %q, is not a percentage: write it like \"2.58\"", b, raw)
		}
		r, err := decimal.NewFromString(s)
		if err != nil || r.GreaterThan(decimal.NewFromInt(100)) {
			return nil, sterad.Errorf(sterad.EInvalid, CodeInvalidRate,
				"fee table: the rate of %s, %q, is not a percentage between 0 and 100", b, raw)
		}
		// Canonical form: "2.580" and "2.58" are the same rate and print alike.
		t[b] = decimal.RequireFromString(r.String())
	}
	return t, nil
}

func parseFeeBrand(name string) (sterad.Brand, bool) {
	name = strings.TrimSpace(name)
	if strings.EqualFold(name, string(sterad.BrandUnknown)) {
		return sterad.BrandUnknown, true
	}
	return sterad.ParseBrand(name)
}

// With returns a copy of t with the rates of over added or replacing t's.
func (t FeeTable) With(over FeeTable) FeeTable {
	out := make(FeeTable, len(t)+len(over))
	for b, r := range t {
		out[b] = r
	}
	for b, r := range over {
		out[b] = r
	}
	return out
}

// Rate returns the fee rate of brand b in percent, and whether it has one.
func (t FeeTable) Rate(b sterad.Brand) (decimal.Decimal, bool) {
	r, ok := t[b]
	return r, ok
}

// Fee is the merchant fee on a net amount (minor units) at ratePercent:
// net × rate / 100 truncated toward zero. For a positive net that is
// rounding down (1円未満切り捨て, in the merchant's favour); a negative net
// (more refunds than sales) gives a negative fee of the same size as the
// positive one, so that a sale and its refund on another day cost no fee
// together. The report applies it once per line (business day × brand),
// never per transaction: see the package documentation.
func Fee(net int64, ratePercent decimal.Decimal) int64 {
	return decimal.NewFromInt(net).Mul(ratePercent).Shift(-2).Truncate(0).IntPart()
}
