package sterad_test

import (
	"testing"

	"github.com/sterad/sterad"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in    string
		minor int64
		code  string // error code, "" when valid
	}{
		{"12800", 12800, ""},
		{" 30000 ", 30000, ""},
		{"0", 0, ""},
		{"12800.0", 12800, ""}, // no fraction in fact
		{"9999999", 9999999, ""},
		{"-1", 0, "invalid_amount"},
		{"12800.5", 0, "invalid_amount"},
		{"1e3", 0, "invalid_amount"},
		{"", 0, "invalid_amount"},
		{"12,800", 0, "invalid_amount"},
		{"¥100", 0, "invalid_amount"},
		{"+5", 0, "invalid_amount"},
		{"0x10", 0, "invalid_amount"},
	}
	for _, tt := range tests {
		a, err := sterad.ParseAmount(tt.in, sterad.JPY)
		if got := sterad.ErrorCode(err); got != tt.code {
			t.Errorf("ParseAmount(%q): error code %q, want %q (%v)", tt.in, got, tt.code, err)
			continue
		}
		if err == nil && a.Minor() != tt.minor {
			t.Errorf("ParseAmount(%q).Minor() = %d, want %d", tt.in, a.Minor(), tt.minor)
		}
		if err != nil && sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("ParseAmount(%q): kind %q, want invalid", tt.in, sterad.ErrorKind(err))
		}
	}
}

func TestAmountMinorRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 12800, 9_999_999, 999_999_999_999} {
		a := sterad.AmountFromMinor(n, sterad.JPY)
		if a.Minor() != n {
			t.Errorf("AmountFromMinor(%d).Minor() = %d", n, a.Minor())
		}
		if a.String() != sterad.NewAmount(n, sterad.JPY).String() {
			t.Errorf("AmountFromMinor(%d) = %s", n, a)
		}
	}
}

func TestDisplay(t *testing.T) {
	for in, want := range map[int64]string{0: "¥0", 999: "¥999", 1000: "¥1,000", 12800: "¥12,800", 9999999: "¥9,999,999"} {
		if got := sterad.NewAmount(in, sterad.JPY).Display(); got != want {
			t.Errorf("%d: %s, want %s", in, got, want)
		}
	}
	if got := sterad.GroupDigits("-1234567.50"); got != "-1,234,567.50" {
		t.Errorf("GroupDigits: %s", got)
	}
}
