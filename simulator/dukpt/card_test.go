package dukpt_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sterad/sterad/simulator/dukpt"
)

// noDigits fails when an error message has a digit (but for the field
// name track2): then it cannot carry any of a card's.
func noDigits(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.ContainsAny(strings.ReplaceAll(err.Error(), "track2", ""), "0123456789") {
		t.Errorf("error %q has digits", err)
	}
}

// Card blocks of the exact wire format, computed apart with
//
//	printf '<json>' + zero bytes | openssl enc -aes-128-cbc -nopad \
//	    -K <data request key> -iv 00000000000000000000000000000000
//
// under the data request keys of counters 1, 2 and 3 (TestWorkingKeys).
// The third plaintext is exactly 80 bytes: no padding at all.
func TestCardBlockGolden(t *testing.T) {
	term := dukpt.NewTerminal(annexIK(t), annexID(t))
	for _, tc := range []struct {
		card dukpt.Card
		ksn  string
		data string
	}{
		{
			chip, // {"pan":"4111111111111111","expiry":"2812"}
			"123456789012345600000001",
			"DC7A1E463F18D4BED0EFE73D5794D4DA7A45D91DAF41C254FBBB908209E87DA543AB7DF062A214397AC5BB49E78DE5E0",
		},
		{
			dukpt.Card{PAN: "5555555555554444", Expiry: "2907", Track2: "5555555555554444=29071010000000000000"},
			"123456789012345600000002",
			"616DF8A82B76A80530B0A15E2A394B63583A37A507D681CEBEE90AF732E4B66FE47C72E1C1FED81F6F0BC120C7E5EFC9A2A3907912AC0799BB6FA51DEC4AF4D2E0D58F71601BCA508CD4A8E6A625E5C9C27DE51ADFCF725767305CD95F76A37B",
		},
		{
			dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: "4111111111111111=281210100"},
			"123456789012345600000003",
			"FA92077A5CD2D7614D3604B14459F968C1E505D49AFE91D2FADAF4FC167540555CC517E1752B436753F8A75B1EC81936E30C7283525C89A316A67761DB98D65514333DD08E3532EE52462AD1CF49EE28",
		},
	} {
		blk, err := term.Encrypt(tc.card)
		if err != nil {
			t.Fatal(err)
		}
		if blk.KSN.String() != tc.ksn || blk.Data != tc.data {
			t.Errorf("block %s %s\nwant  %s %s", blk.KSN, blk.Data, tc.ksn, tc.data)
		}
		card, err := dukpt.Decrypt(dukpt.TestBDK(), blk)
		if err != nil {
			t.Fatalf("KSN %s: %v", blk.KSN, err)
		}
		if card != tc.card {
			t.Errorf("KSN %s: host reads %s, want the card encrypted", blk.KSN, card)
		}
		if card.Track2 != tc.card.Track2 {
			t.Errorf("KSN %s: track 2 changed", blk.KSN)
		}
	}
}

// The block is the CARD payload's "p2pe" object.
func TestBlockJSON(t *testing.T) {
	blk, err := dukpt.NewTerminal(annexIK(t), annexID(t)).Encrypt(chip)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(blk)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ksn":"123456789012345600000001","data":"` + blk.Data + `"}`; string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	var back dukpt.Block
	if err := json.Unmarshal(b, &back); err != nil || back != blk {
		t.Errorf("unmarshal: %+v, %v", back, err)
	}
	for _, bad := range []string{
		`{"ksn":"1234567890123456000000a1","data":""}`,
		`{"ksn":"12345678901234560000001","data":""}`,
		`{"ksn":12,"data":""}`,
	} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: unmarshalled", bad)
		}
	}
}

func TestParseKSN(t *testing.T) {
	k, err := dukpt.ParseKSN("123456785855A5D3000000FF")
	if err != nil {
		t.Fatal(err)
	}
	if k.InitialKeyID().String() != "123456785855A5D3" || k.Counter() != 0xFF || k.String() != "123456785855A5D3000000FF" {
		t.Errorf("KSN %s: initial key ID %s, counter %d", k, k.InitialKeyID(), k.Counter())
	}
	for _, bad := range []string{
		"", "123456785855a5d3000000ff", "123456785855A5D3000000F", "123456785855A5D3000000FF0",
		"123456785855A5D3000000FG", " 23456785855A5D3000000FF",
	} {
		if _, err := dukpt.ParseKSN(bad); !errors.Is(err, dukpt.ErrKSN) {
			t.Errorf("ParseKSN(%q) = %v, want ErrKSN", bad, err)
		}
	}
}

// What a host refuses, and why: every one is ErrKSN or ErrData, with no
// card data (no digit at all) in the message.
func TestDecryptRefuses(t *testing.T) {
	bdk, id := dukpt.TestBDK(), annexID(t)
	good, err := dukpt.NewTerminal(annexIK(t), id).Encrypt(chip)
	if err != nil {
		t.Fatal(err)
	}
	key := dukpt.DeriveWorkingKey(bdk, good.KSN, dukpt.UsageDataEncryptRequest)
	// sealed encrypts any plaintext right, under the block's own key.
	sealed := func(plain string) dukpt.Block {
		return dukpt.Block{KSN: good.KSN, Data: hexOf(dukpt.EncryptData(key, []byte(plain)))}
	}
	withData := func(d string) dukpt.Block { return dukpt.Block{KSN: good.KSN, Data: d} }
	otherBDK, _ := dukpt.ParseBDK("0123456789ABCDEFFEDCBA9876543210")
	for _, tc := range []struct {
		name string
		bdk  dukpt.BDK
		blk  dukpt.Block
		want error
	}{
		{"counter zero", bdk, dukpt.Block{KSN: dukpt.NewKSN(id, 0), Data: good.Data}, dukpt.ErrKSN},
		{"counter with seventeen one bits", bdk, dukpt.Block{KSN: dukpt.NewKSN(id, 0x1FFFF), Data: good.Data}, dukpt.ErrKSN},
		{"another counter", bdk, dukpt.Block{KSN: dukpt.NewKSN(id, 2), Data: good.Data}, dukpt.ErrData},
		{"another terminal", bdk, dukpt.Block{KSN: dukpt.NewKSN(dukpt.NewInitialKeyID(dukpt.TestBDKID, 0x90123457), 1), Data: good.Data}, dukpt.ErrData},
		{"another BDK", otherBDK, good, dukpt.ErrData},
		{"empty", bdk, withData(""), dukpt.ErrData},
		{"odd length", bdk, withData(good.Data[1:]), dukpt.ErrData},
		{"not whole blocks", bdk, withData(good.Data[2:]), dukpt.ErrData},
		{"lowercase hex", bdk, withData(strings.ToLower(good.Data)), dukpt.ErrData},
		{"not hex", bdk, withData(strings.Repeat("XY", 16)), dukpt.ErrData},
		{"first block only", bdk, withData(good.Data[:32]), dukpt.ErrData},
		{"one block too many", bdk, withData(good.Data + good.Data[:32]), dukpt.ErrData},
		{"too long", bdk, withData(strings.Repeat("00", 16*33)), dukpt.ErrData},
		{"not JSON", bdk, sealed("4111111111111111 2812"), dukpt.ErrData},
		{"JSON null", bdk, sealed("null"), dukpt.ErrData},
		{"an array", bdk, sealed(`["4111111111111111","2812"]`), dukpt.ErrData},
		{"unknown field", bdk, sealed(`{"pan":"4111111111111111","expiry":"2812","cvv":"123"}`), dukpt.ErrData},
		{"two objects", bdk, sealed(`{"pan":"4111111111111111","expiry":"2812"}{}`), dukpt.ErrData},
		{"trailing garbage", bdk, sealed(`{"pan":"4111111111111111","expiry":"2812"}x`), dukpt.ErrData},
		{"pan as a number", bdk, sealed(`{"pan":4111111111111111,"expiry":"2812"}`), dukpt.ErrData},
		{"pan with letters", bdk, sealed(`{"pan":"41111111111111AB","expiry":"2812"}`), dukpt.ErrData},
		{"pan too short", bdk, sealed(`{"pan":"41111111111","expiry":"2812"}`), dukpt.ErrData},
		{"no expiry", bdk, sealed(`{"pan":"4111111111111111"}`), dukpt.ErrData},
		{"expiry month 13", bdk, sealed(`{"pan":"4111111111111111","expiry":"2813"}`), dukpt.ErrData},
		{"track2 with a control character", bdk, sealed(`{"pan":"4111111111111111","expiry":"2812","track2":"4111\n"}`), dukpt.ErrData},
		{"a NUL inside", bdk, sealed("{\"pan\":\"4111111111111111\",\x00\"expiry\":\"2812\"}"), dukpt.ErrData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card, err := dukpt.Decrypt(tc.bdk, tc.blk)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt = %s, %v; want %v", card, err, tc.want)
			}
			if card != (dukpt.Card{}) {
				t.Errorf("refused, yet returned a card %s", card)
			}
			noDigits(t, err)
		})
	}
	// The padding is stripped, whitespace around the object is JSON's.
	if card, err := dukpt.Decrypt(bdk, sealed(` {"expiry":"2812", "pan":"4111111111111111"} `)); err != nil || card != chip {
		t.Errorf("spaced object, fields swapped: %s, %v", card, err)
	}
}

// CBC is not authenticated, but any one flipped bit of the ciphertext
// garbles a whole block of the plaintext: the host refuses it.
func TestDecryptTamperedBits(t *testing.T) {
	swipe := dukpt.Card{PAN: "5555555555554444", Expiry: "2907", Track2: "5555555555554444=29071010000000000000"}
	term := dukpt.NewTerminal(annexIK(t), annexID(t))
	for _, c := range []dukpt.Card{chip, swipe} {
		blk, err := term.Encrypt(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(blk.Data) / 2 {
			for bit := range 8 {
				b, err := hex.DecodeString(blk.Data)
				if err != nil {
					t.Fatal(err)
				}
				b[i] ^= 1 << bit
				tampered := dukpt.Block{KSN: blk.KSN, Data: hexOf(b)}
				card, err := dukpt.Decrypt(dukpt.TestBDK(), tampered)
				if !errors.Is(err, dukpt.ErrData) {
					t.Fatalf("byte %d bit %d flipped: %s, %v; want ErrData", i, bit, card, err)
				}
				noDigits(t, err)
			}
		}
	}
}

func TestCardValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		card dukpt.Card
		ok   bool
	}{
		{"chip", chip, true},
		{"twelve digits", dukpt.Card{PAN: "411111111111", Expiry: "0101"}, true},
		{"nineteen digits", dukpt.Card{PAN: "6250947000000000014", Expiry: "3012"}, true},
		{"expired", dukpt.Card{PAN: "4111111111111111", Expiry: "0001"}, true},
		{"track2 of JSON's special characters", dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: `;4111"\<>&=2812?`}, true},
		{"track2 of sixty-four", dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: strings.Repeat("9", 64)}, true},
		{"eleven digits", dukpt.Card{PAN: "41111111111", Expiry: "2812"}, false},
		{"twenty digits", dukpt.Card{PAN: "41111111111111111111", Expiry: "2812"}, false},
		{"spaces", dukpt.Card{PAN: "4111 1111 1111 1111", Expiry: "2812"}, false},
		{"no PAN", dukpt.Card{Expiry: "2812"}, false},
		{"no expiry", dukpt.Card{PAN: "4111111111111111"}, false},
		{"expiry MMYYYY", dukpt.Card{PAN: "4111111111111111", Expiry: "122028"}, false},
		{"month zero", dukpt.Card{PAN: "4111111111111111", Expiry: "2800"}, false},
		{"month thirteen", dukpt.Card{PAN: "4111111111111111", Expiry: "2813"}, false},
		{"expiry letters", dukpt.Card{PAN: "4111111111111111", Expiry: "28AB"}, false},
		{"track2 of sixty-five", dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: strings.Repeat("9", 65)}, false},
		{"track2 with a newline", dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: "4111\n"}, false},
		{"track2 not ASCII", dukpt.Card{PAN: "4111111111111111", Expiry: "2812", Track2: "4111＝2812"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.card.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
			noDigits(t, err)
			blk, err := dukpt.NewTestTerminal("T").Encrypt(tc.card)
			if !tc.ok {
				if !errors.Is(err, dukpt.ErrCard) {
					t.Errorf("Encrypt = %v, want ErrCard", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if card, err := dukpt.Decrypt(dukpt.TestBDK(), blk); err != nil || card != tc.card {
				t.Errorf("round trip: %s, %v", card, err)
			}
		})
	}
}

func TestMaskedPAN(t *testing.T) {
	for pan, want := range map[string]string{
		"4111111111111111":    "411111******1111",
		"411111111111":        "411111**1111",
		"6250947000000000014": "625094*********0014",
		"41111":               "*1111",
		"4111":                "****",
		"":                    "",
	} {
		if got := (dukpt.Card{PAN: pan}).MaskedPAN(); got != want {
			t.Errorf("MaskedPAN(%q) = %q, want %q", pan, got, want)
		}
	}
}

// A card, a BDK or a key printed, logged or marshalled shows nothing
// secret: the masked PAN only.
func TestSecretsDoNotPrint(t *testing.T) {
	card := dukpt.Card{PAN: "4111111111119876", Expiry: "0731", Track2: "4111111111119876=07311015432"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("card", "card", card)
	js, err := json.Marshal(card)
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{logged.String(), string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, card), fmt.Sprintf(verb, []dukpt.Card{card}), fmt.Sprintf(verb, &card))
	}
	for _, out := range outs {
		if strings.Contains(out, card.PAN) || strings.Contains(out, "0731") || strings.Contains(out, "5432") {
			t.Errorf("card data printed: %s", out)
		}
		if !strings.Contains(out, "411111******9876") {
			t.Errorf("no masked PAN in %s", out)
		}
	}
	ik := annexIK(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d"} {
		if out := fmt.Sprintf(verb, dukpt.TestBDK()); out != "dukpt.BDK(hidden)" {
			t.Errorf("BDK under %s: %s", verb, out)
		}
		if out := fmt.Sprintf(verb, ik); out != "dukpt.Key(hidden)" {
			t.Errorf("key under %s: %s", verb, out)
		}
	}
}
