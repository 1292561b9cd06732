package dukpt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Card is the card data a P2PE terminal encrypts (docs/terminal-protocol.md §7).
// It does not print: every fmt verb, slog and JSON show only the masked
// PAN (first 6 and last 4 digits).
type Card struct {
	PAN    string // 12 to 19 digits
	Expiry string // YYMM
	Track2 string // swipe only; at most 64 printable ASCII characters
}

// The card block's plaintext: the UTF-8 JSON object of docs/terminal-protocol.md §7.
type cardJSON struct {
	PAN    string `json:"pan"`
	Expiry string `json:"expiry"`
	Track2 string `json:"track2,omitempty"`
}

// Block is a card block as a P2PE terminal sends it, the CARD payload's
// "p2pe" object: {"ksn":"…","data":"…"}.
type Block struct {
	KSN  KSN    `json:"ksn"`
	Data string `json:"data"` // uppercase hex of the AES-128-CBC ciphertext
}

// Errors. Their messages never contain card data (nor any digit of it).
var (
	// ErrCard: a terminal was asked to encrypt a card that is not one.
	ErrCard = errors.New("dukpt: invalid card")
	// ErrData: a card block that does not decrypt to a card.
	ErrData = errors.New("dukpt: undecryptable card block")
)

// maxBlocks bounds a card block: the largest card is far smaller.
const maxBlocks = 32

// Validate checks the card's fields: a PAN of 12 to 19 digits (the Luhn
// check is the host's business), an expiry YYMM with a month 01 to 12
// (expired cards are a test case), a track 2 of at most 64 printable ASCII
// characters (a mis-encoded track is a test case too).
func (c Card) Validate() error {
	if reason := c.invalid(); reason != "" {
		return fmt.Errorf("%w: %s", ErrCard, reason)
	}
	return nil
}

// invalid returns why the card is not valid, or "". The reasons carry no
// card data.
func (c Card) invalid() string {
	if len(c.PAN) < 12 || len(c.PAN) > 19 || !allDigits(c.PAN) {
		return "pan is not twelve to nineteen digits"
	}
	if len(c.Expiry) != 4 || !allDigits(c.Expiry) {
		return "expiry is not YYMM"
	}
	if m := (c.Expiry[2]-'0')*10 + c.Expiry[3] - '0'; m < 1 || m > 12 {
		return "expiry month is not a month"
	}
	if len(c.Track2) > 64 || strings.ContainsFunc(c.Track2, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "track2 is not at most sixty-four printable ASCII characters"
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MaskedPAN is the PAN's first 6 and last 4 digits, the rest "*": the
// CARD payload's masked_pan. Anything too short to be a PAN shows only its
// last 4 characters, and 4 or fewer none.
func (c Card) MaskedPAN() string {
	n := len(c.PAN)
	switch {
	case n >= 12:
		return c.PAN[:6] + strings.Repeat("*", n-10) + c.PAN[n-4:]
	case n > 4:
		return strings.Repeat("*", n-4) + c.PAN[n-4:]
	default:
		return strings.Repeat("*", n)
	}
}

// Format shows the masked PAN only, under every fmt verb.
func (c Card) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "dukpt.Card{%s}", c.MaskedPAN()) }

// LogValue shows the masked PAN only.
func (c Card) LogValue() slog.Value { return slog.StringValue(c.MaskedPAN()) }

// MarshalJSON shows the masked PAN only: {"masked_pan":"…"}. The card
// block's plaintext is built apart.
func (c Card) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		MaskedPAN string `json:"masked_pan"`
	}{c.MaskedPAN()})
}

// encryptCard builds the card block's data: the JSON object, zero-padded
// to whole 16-byte blocks, AES-128-CBC with a zero IV under key, uppercase
// hex (docs/terminal-protocol.md §7).
func encryptCard(key Key, c Card) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cardJSON{PAN: c.PAN, Expiry: c.Expiry, Track2: c.Track2}); err != nil {
		return "", fmt.Errorf("%w: not encodable", ErrCard) // cannot happen: strings only
	}
	plain := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	ct := encryptData(key, plain)
	clear(buf.Bytes())
	return strings.ToUpper(hex.EncodeToString(ct)), nil
}

// decryptCard reverses encryptCard: uppercase hex of whole blocks, the
// zero padding stripped, exactly the JSON object with a valid card.
func decryptCard(key Key, data string) (Card, error) {
	bad := func(reason string) (Card, error) { return Card{}, fmt.Errorf("%w: %s", ErrData, reason) }
	switch {
	case data == "":
		return bad("data is empty")
	case len(data) > 2*aes.BlockSize*maxBlocks:
		return bad("data is longer than any card block")
	case len(data)%(2*aes.BlockSize) != 0:
		return bad("data is not whole AES blocks")
	}
	ct := make([]byte, len(data)/2)
	if err := decodeUpperHex(ct, data); err != nil {
		return bad("data is not uppercase hex")
	}
	plain := decryptData(key, ct)
	defer clear(plain)
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimRight(plain, "\x00")))
	dec.DisallowUnknownFields()
	var v cardJSON
	// The decoder's errors are dropped: they may quote the plaintext.
	if err := dec.Decode(&v); err != nil {
		return bad("plaintext is not a JSON card object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("plaintext is not a JSON card object")
	}
	c := Card{PAN: v.PAN, Expiry: v.Expiry, Track2: v.Track2}
	if reason := c.invalid(); reason != "" {
		return bad(reason)
	}
	return c, nil
}

// encryptData zero-pads plain to whole blocks and encrypts it with
// AES-128-CBC, IV of 16 zero bytes.
func encryptData(key Key, plain []byte) []byte {
	n := (len(plain) + aes.BlockSize - 1) / aes.BlockSize * aes.BlockSize
	buf := make([]byte, n)
	copy(buf, plain)
	cipher.NewCBCEncrypter(newCipher(key), make([]byte, aes.BlockSize)).CryptBlocks(buf, buf)
	return buf
}

// decryptData decrypts whole blocks of AES-128-CBC, IV of 16 zero bytes.
func decryptData(key Key, ct []byte) []byte {
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(newCipher(key), make([]byte, aes.BlockSize)).CryptBlocks(plain, ct)
	return plain
}

func newCipher(key Key) cipher.Block {
	c, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // 16 bytes: cannot happen
	}
	return c
}

// Decrypt is the host's side: the card of a block, with the data-encryption
// request key it derives from its BDK and the block's KSN. A KSN whose
// counter no terminal issues is ErrKSN; data that does not decrypt to a
// card is ErrData. Either way the host answers 81 (docs/acquirer-protocol.md §8).
// Remembering which KSNs a terminal already used is the host's business.
func Decrypt(bdk BDK, b Block) (Card, error) {
	if !ValidCounter(b.KSN.Counter()) {
		return Card{}, fmt.Errorf("%w: its counter is zero or has more than sixteen one bits", ErrKSN)
	}
	return decryptCard(DeriveWorkingKey(bdk, b.KSN, UsageDataEncryptRequest), b.Data)
}
