package dukpt_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sterad/sterad/simulator/dukpt"
)

// checkDecrypt is what any Decrypt must satisfy: an error is ErrKSN or
// ErrData with no card digit in its message and no card; a card is a
// valid one, and encrypting it again under the same KSN decrypts to it.
func checkDecrypt(t *testing.T, blk dukpt.Block) {
	t.Helper()
	card, err := dukpt.Decrypt(dukpt.TestBDK(), blk)
	if err != nil {
		if !errors.Is(err, dukpt.ErrData) && !errors.Is(err, dukpt.ErrKSN) {
			t.Fatalf("error %v is neither ErrData nor ErrKSN", err)
		}
		if strings.ContainsAny(strings.ReplaceAll(err.Error(), "track2", ""), "0123456789") {
			t.Fatalf("error %q has digits", err)
		}
		if card != (dukpt.Card{}) {
			t.Fatalf("error %v, yet a card", err)
		}
		return
	}
	if err := card.Validate(); err != nil {
		t.Fatalf("decrypted an invalid card: %v", err)
	}
	key := dukpt.DeriveWorkingKey(dukpt.TestBDK(), blk.KSN, dukpt.UsageDataEncryptRequest)
	data, err := dukpt.EncryptCard(key, card)
	if err != nil {
		t.Fatal(err)
	}
	again, err := dukpt.Decrypt(dukpt.TestBDK(), dukpt.Block{KSN: blk.KSN, Data: data})
	if err != nil || again != card {
		t.Fatalf("re-encrypted card decrypts to %s, %v", again, err)
	}
}

// FuzzDecrypt: any KSN and data, as a host receives them.
func FuzzDecrypt(f *testing.F) {
	term := dukpt.NewTestTerminal("FRONT001")
	for _, c := range []dukpt.Card{
		chip,
		{PAN: "5555555555554444", Expiry: "2907", Track2: "5555555555554444=29071010000000000000"},
	} {
		blk, err := term.Encrypt(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blk.KSN.String(), blk.Data)
		f.Add(blk.KSN.String(), blk.Data[:32])
	}
	f.Add("123456789012345600000000", "00")
	f.Add("12345678901234560001FFFF", strings.Repeat("AB", 48))
	f.Fuzz(func(t *testing.T, ksnText, data string) {
		ksn, err := dukpt.ParseKSN(ksnText)
		if err != nil {
			if !errors.Is(err, dukpt.ErrKSN) {
				t.Fatalf("ParseKSN: %v is not ErrKSN", err)
			}
			return
		}
		if ksn.String() != ksnText {
			t.Fatalf("KSN %q reads back as %s", ksnText, ksn)
		}
		checkDecrypt(t, dukpt.Block{KSN: ksn, Data: data})
	})
}

// FuzzDecryptPlaintext: any plaintext, encrypted right, so the fuzzer
// reaches the padding, JSON and card checks behind the cipher.
func FuzzDecryptPlaintext(f *testing.F) {
	for _, s := range []string{
		`{"pan":"4111111111111111","expiry":"2812"}`,
		`{"pan":"5555555555554444","expiry":"2907","track2":"5555555555554444=29071010000000000000"}`,
		`{"pan":"4111111111111111","expiry":"2812","cvv":"123"}`,
		`{"pan":"4111111111111111","expiry":"2812"}` + "\x00\x00x",
		` {"expiry":"2812","pan":"4111111111111111","track2":"\u0041"} `,
		`{"pan":"4111111111111111","pan":"4","expiry":"2812"}`,
		"null",
		"",
	} {
		f.Add([]byte(s))
	}
	ksn := dukpt.NewKSN(dukpt.NewInitialKeyID(dukpt.TestBDKID, 1), 1)
	key := dukpt.DeriveWorkingKey(dukpt.TestBDK(), ksn, dukpt.UsageDataEncryptRequest)
	f.Fuzz(func(t *testing.T, plain []byte) {
		checkDecrypt(t, dukpt.Block{KSN: ksn, Data: hexOf(dukpt.EncryptData(key, plain))})
	})
}
