package sterad_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// testCards are docs/acquirer-protocol.md §7's cards.
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
		if strings.Contains(out, pan) || strings.Contains(out, "=3001") {
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

// iccTLV builds EMV chip data from tag/value pairs (tags and values in hex).
func iccTLV(t *testing.T, pairs ...string) sterad.Sensitive {
	t.Helper()
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		tag, err1 := hex.DecodeString(pairs[i])
		val, err2 := hex.DecodeString(pairs[i+1])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad test TLV %s %s", pairs[i], pairs[i+1])
		}
		b = append(b, tag...)
		b = append(b, byte(len(val)))
		b = append(b, val...)
	}
	return b
}

// A card read at a terminal is checked as a whole: track 2 and the chip's
// own card tags must name the card of `pan` and `expiry` (issue 9 #7).
func TestCardValidateReadData(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	const visa, mc, amex = "4111111111111111", "5555555555554444", "378282246310005"
	exp := sterad.Expiry{Year: 2028, Month: 12}
	tests := []struct {
		name   string
		pan    string
		track2 string
		icc    []string
		code   string // "" when the card is valid
	}{
		{"track 2 with =", visa, visa + "=2812101123456789", nil, ""},
		{"track 2 with D", visa, visa + "D2812101", nil, ""},
		{"track 2 without service code", visa, visa + "=2812", nil, ""},
		{"track 2 of another card", visa, mc + "=2812101123456789", nil, "card_mismatch"},
		{"track 2 with another expiry", visa, visa + "=2901101123456789", nil, "card_mismatch"},
		{"track 2 PAN fails Luhn", visa, "4111111111111112=2812101", nil, "invalid_track2"},
		{"track 2 without separator", visa, visa + "2812101", nil, "invalid_track2"},
		{"track 2 with two separators", visa, visa + "=2812=101", nil, "invalid_track2"},
		{"track 2 with letters", visa, visa + "=28121A1", nil, "invalid_track2"},
		{"track 2 with sentinels", visa, ";" + visa + "=2812101?", nil, "invalid_track2"},
		{"track 2 too long", visa, visa + "=2812101" + strings.Repeat("0", 15), nil, "invalid_track2"},
		{"track 2 short expiry", visa, visa + "=281", nil, "invalid_track2"},
		{"track 2 bad expiry month", visa, visa + "=2813101", nil, "invalid_track2"},
		{"track 2 PAN too short", visa, "41111=2812101", nil, "invalid_track2"},
		{"chip data with the same 5A", visa, "", []string{"5A", "4111111111111111", "9F26", "0102030405060708"}, ""},
		{"chip data with padded 5A", amex, "", []string{"5A", "378282246310005F"}, ""},
		{"chip data with another 5A", visa, "", []string{"5A", "5555555555554444"}, "card_mismatch"},
		{"chip data with another 5F24", visa, "", []string{"5F24", "291231"}, "card_mismatch"},
		{"chip data with the same 5F24", visa, "", []string{"5F24", "281231"}, ""},
		{"chip data with another 57", visa, "", []string{"57", "5555555555554444D2812101"}, "card_mismatch"},
		{"chip data with the same 57", visa, "", []string{"57", "4111111111111111D28121010000"}, ""},
		{"chip data without card tags", visa, "", []string{"9F26", "0102030405060708", "9F27", "80"}, ""},
		{"chip data in a template", visa, "", []string{"70", "5A085555555555554444"}, "card_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &sterad.Card{PAN: sterad.PAN(tt.pan), Expiry: exp, Entry: sterad.EntrySwipe, Track2: sterad.Sensitive(tt.track2)}
			if tt.icc != nil {
				c.Entry, c.Track2, c.ICC = sterad.EntryChip, nil, iccTLV(t, tt.icc...)
			}
			err := c.Validate(now)
			if got := sterad.ErrorCode(err); got != tt.code {
				t.Fatalf("Validate = %v (%q), want %q", err, got, tt.code)
			}
			if err != nil {
				for _, p := range []string{visa, mc, amex, "4111111111111112"} {
					if strings.Contains(err.Error(), p) {
						t.Fatalf("the error shows a card number: %v", err)
					}
				}
				if strings.Contains(err.Error(), "2812") || strings.Contains(err.Error(), "2901") {
					t.Fatalf("the error shows track 2 data: %v", err)
				}
			}
		})
	}
}

// The brand comes from the card number's own range; the reader's claim
// fills in only an unknown range, and a disagreement is reported (issue 9
// #15a).
func TestCardSettleBrand(t *testing.T) {
	tests := []struct {
		pan           string
		claimed, want sterad.Brand
		disagree      bool
	}{
		{"4111111111111111", sterad.BrandAmex, sterad.BrandVisa, true},
		{"4111111111111111", sterad.BrandVisa, sterad.BrandVisa, false},
		{"4111111111111111", "", sterad.BrandVisa, false},
		{"4111111111111111", sterad.BrandUnknown, sterad.BrandVisa, false},
		{"3530111333300000", sterad.BrandVisa, sterad.BrandJCB, true},
		{"6011000000000004", sterad.BrandDiners, sterad.BrandDiners, false}, // range unknown to sterad: the reader knows
		{"6011000000000004", "", sterad.BrandUnknown, false},
	}
	for _, tt := range tests {
		c := &sterad.Card{PAN: sterad.PAN(tt.pan), Brand: tt.claimed}
		claimed := c.SettleBrand()
		if c.Brand != tt.want || (claimed != "") != tt.disagree || tt.disagree && claimed != tt.claimed {
			t.Errorf("%s claimed %q: brand %q, disagreement %q; want %q, %v", sterad.MaskPAN(tt.pan), tt.claimed, c.Brand, claimed, tt.want, tt.disagree)
		}
	}
}

func TestEncryptedCardValidate(t *testing.T) {
	ok := sterad.Card{Masked: "411111******1111", Entry: sterad.EntryChip,
		Encrypted: &sterad.EncryptedBlock{KSN: "123456789012345600000001", Data: strings.Repeat("A1", 32)}}
	if err := ok.Validate(time.Now()); err != nil {
		t.Fatalf("a well-formed encrypted card: %v", err)
	}
	for name, spoil := range map[string]func(c *sterad.Card){
		"pan in clear too": func(c *sterad.Card) { c.PAN = "4111111111111111" },
		"unmasked":         func(c *sterad.Card) { c.Masked = "4111111111111111" },
		"short ksn":        func(c *sterad.Card) { c.Encrypted.KSN = "1234" },
		"lower-case ksn":   func(c *sterad.Card) { c.Encrypted.KSN = "123456789012345600000a01" },
		"partial block":    func(c *sterad.Card) { c.Encrypted.Data = "A1B2" },
		"not hex":          func(c *sterad.Card) { c.Encrypted.Data = strings.Repeat("ZZ", 16) },
		"too long":         func(c *sterad.Card) { c.Encrypted.Data = strings.Repeat("00", 496) },
		"expiry in clear":  func(c *sterad.Card) { c.Expiry = sterad.Expiry{Year: 2030, Month: 1} },
	} {
		c := ok
		b := *ok.Encrypted
		c.Encrypted = &b
		spoil(&c)
		if err := c.Validate(time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "4111111111111111") {
			t.Errorf("%s: the error quotes the card number: %v", name, err)
		}
	}
}

// The expiry's and the STAN's digits are formatted by hand: they must
// read as fmt's verbs did, since stored idempotency fingerprints and the
// wire compare them.
func TestDigitsMatchFmt(t *testing.T) {
	for _, e := range []sterad.Expiry{{2030, 5}, {1999, 12}, {5, 1}, {0, 0}, {12345, 7}, {-3, 4}, {2030, 123}, {2100, 1}} {
		if got, want := e.Digits(), fmt.Sprintf("%04d%02d", e.Year, e.Month); got != want {
			t.Errorf("%+v.Digits() = %q, want %q", e, got, want)
		}
		if e.IsZero() {
			continue
		}
		if got, want := e.String(), fmt.Sprintf("%02d%02d", e.Year%100, e.Month); got != want {
			t.Errorf("%+v.String() = %q, want %q", e, got, want)
		}
	}
	for _, s := range []sterad.STAN{0, 1, 42, 999999, 1000000, -5, 123456} {
		if got, want := s.String(), fmt.Sprintf("%06d", int(s)); got != want {
			t.Errorf("STAN(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
