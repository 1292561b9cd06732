package sterad_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// testCards are acquirer-host.md §7's cards.
var testCards = []string{
	"4111111111111111", "5555555555554444", "3530111333300000", "378282246310005",
	"30569309025904", "6250947000000014", "4000000000000002", "4000000000009995",
	"4000000000000069", "4000000000000119", "4000000000000226",
}

func TestLuhn(t *testing.T) {
	for _, pan := range testCards {
		if !sterad.Luhn(pan) {
			t.Errorf("Luhn(%s) = false", sterad.MaskPAN(pan))
		}
	}
	for _, bad := range []string{"4111111111111112", "", "41111111111111a1", "0000000000000001"} {
		if sterad.Luhn(bad) {
			t.Errorf("Luhn(%q) = true", bad)
		}
	}
}

func TestValidatePAN(t *testing.T) {
	tests := []struct{ pan, code string }{
		{"4111111111111111", ""},
		{"4111111111111112", "invalid_card"},
		{"41111111111", "invalid_card"},          // 11 digits
		{"41111111111111111111", "invalid_card"}, // 20 digits
		{"4111-1111-1111-1111", "invalid_card"},
	}
	for _, tt := range tests {
		err := sterad.ValidatePAN(tt.pan)
		if got := sterad.ErrorCode(err); got != tt.code {
			t.Errorf("ValidatePAN(%s) = %q, want %q", sterad.MaskPAN(tt.pan), got, tt.code)
		}
		if err != nil && strings.Contains(err.Error(), tt.pan) {
			t.Errorf("error %q shows the card number", err)
		}
	}
}

func TestMaskPAN(t *testing.T) {
	tests := map[string]string{
		"4111111111111111":    "411111******1111",
		"378282246310005":     "378282*****0005",
		"30569309025904":      "305693****5904",
		"6250947000000014123": "625094*********4123",
		"123456":              "**3456",
		"1234":                "****",
	}
	for in, want := range tests {
		if got := sterad.MaskPAN(in); got != want {
			t.Errorf("MaskPAN(%s) = %s, want %s", in, got, want)
		}
	}
}

// A PAN never prints in full, whatever the caller does with it.
func TestPANNeverPrints(t *testing.T) {
	const pan = "4111111111111111"
	p := sterad.PAN(pan)
	card := &sterad.Card{PAN: p, Expiry: sterad.Expiry{Year: 2030, Month: 1}, Track2: sterad.Sensitive(pan + "=3001"), ICC: sterad.Sensitive{0x9f, 0x26}}
	var outputs []string
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%X", "%#v", "%+v", "%d", "%10s"} {
		outputs = append(outputs, fmt.Sprintf(verb, p), fmt.Sprintf(verb, card), fmt.Sprintf(verb, *card))
	}
	outputs = append(outputs, fmt.Sprint(p), fmt.Sprintln(card), p.String(), p.GoString())
	j, _ := json.Marshal(card)
	outputs = append(outputs, string(j))
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("card", "pan", p, "card", card, "track2", card.Track2)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("card", "pan", p, "card", card)
	outputs = append(outputs, logBuf.String())
	for _, out := range outputs {
		if strings.Contains(out, pan) || strings.Contains(out, "3001") && strings.Contains(out, "=") {
			t.Errorf("card data printed: %s", out)
		}
	}
	if p.Reveal() != pan {
		t.Errorf("Reveal() = %s", sterad.MaskPAN(p.Reveal()))
	}
}

func TestExpiry(t *testing.T) {
	e, err := sterad.ParseExpiry("2812")
	if err != nil || e.Year != 2028 || e.Month != 12 || e.String() != "2812" {
		t.Fatalf("ParseExpiry(2812) = %+v, %v", e, err)
	}
	for _, bad := range []string{"2813", "2800", "281", "28121", "28a2", ""} {
		if _, err := sterad.ParseExpiry(bad); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("ParseExpiry(%q) = %v, want invalid", bad, err)
		}
	}
	jst := time.FixedZone("JST", 9*3600)
	nov := sterad.Expiry{Year: 2026, Month: 11}
	if nov.Expired(time.Date(2026, 11, 30, 23, 59, 0, 0, jst)) {
		t.Error("a card is valid through the last day of its expiry month")
	}
	if !nov.Expired(time.Date(2026, 12, 1, 0, 0, 0, 0, jst)) {
		t.Error("a card expires after its expiry month")
	}
}

func TestBrandOf(t *testing.T) {
	tests := map[string]sterad.Brand{
		"4111111111111111": sterad.BrandVisa,
		"5555555555554444": sterad.BrandMastercard,
		"2221000000000009": sterad.BrandMastercard,
		"2720990000000007": sterad.BrandMastercard,
		"2721000000000004": sterad.BrandUnknown,
		"3530111333300000": sterad.BrandJCB,
		"3589000000000000": sterad.BrandJCB,
		"378282246310005":  sterad.BrandAmex,
		"341111111111111":  sterad.BrandAmex,
		"30569309025904":   sterad.BrandDiners,
		"36000000000008":   sterad.BrandDiners,
		"3095000000000000": sterad.BrandDiners,
		"6250947000000014": sterad.BrandUnionPay,
		"6011000000000004": sterad.BrandUnknown,
	}
	for pan, want := range tests {
		if got := sterad.BrandOf(pan); got != want {
			t.Errorf("BrandOf(%s) = %s, want %s", sterad.MaskPAN(pan), got, want)
		}
	}
}

func TestCardValidate(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	ok := &sterad.Card{PAN: "4111111111111111", Expiry: sterad.Expiry{Year: 2026, Month: 11}}
	if err := ok.Validate(now); err != nil {
		t.Errorf("valid card: %v", err)
	}
	expired := &sterad.Card{PAN: "4111111111111111", Expiry: sterad.Expiry{Year: 2026, Month: 10}}
	if err := expired.Validate(now); sterad.ErrorCode(err) != "expired_card" {
		t.Errorf("expired card: %v", err)
	}
}
