package terminal

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/dukpt"
)

// Card actions: what the customer does at the next READ_CARD.
const (
	ActionPresent  = "present"  // present the card (default)
	ActionCancel   = "cancel"   // press cancel at the terminal: RESULT cancelled, no CARD
	ActionWalkaway = "walkaway" // do nothing: the gateway's T4 cancels
)

// MaxDelay bounds Card.DelayMS.
const MaxDelay = 10 * time.Minute

// Card is what the customer does at the next READ_CARD (POST /card). The
// PAN masks itself wherever it is printed or marshalled.
type Card struct {
	PAN     sterad.PAN `json:"pan,omitempty"`      // default DefaultPAN
	Expiry  string     `json:"expiry,omitempty"`   // YYMM; default two years from now
	Entry   string     `json:"entry,omitempty"`    // chip (default), ctls, swipe, keyed
	Action  string     `json:"action,omitempty"`   // present (default), cancel, walkaway
	DelayMS int        `json:"delay_ms,omitempty"` // presentation time; default Config.PresentDelay
	// Track2, when set, is sent as the swiped card's track 2 instead of
	// one built from the PAN and expiry, unchecked (a skimmed or
	// mis-encoded card: the gateway's own checks can be exercised). Only
	// a swipe carries track 2.
	Track2 string `json:"track2,omitempty"`
	// Brand, when set, is sent as the CARD's brand instead of the PAN's
	// own (a terminal with a wrong brand table).
	Brand string `json:"brand,omitempty"`
}

// validate checks and normalizes a queued card. The PAN must be 12 to 19
// digits, but the Luhn check is not enforced (so the gateway's own check
// can be exercised), nor is the expiry date (expired cards are a test case).
func (c *Card) validate() error {
	switch c.Action {
	case "":
		c.Action = ActionPresent
	case ActionPresent, ActionCancel, ActionWalkaway:
	default:
		return sterad.Errorf(sterad.EInvalid, "invalid_action", "action must be present, cancel or walkaway")
	}
	switch sterad.EntryMode(c.Entry) {
	case "":
		c.Entry = string(sterad.EntryChip)
	case sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe, sterad.EntryKeyed:
	default:
		return sterad.Errorf(sterad.EInvalid, "invalid_entry", "entry must be chip, ctls, swipe or keyed")
	}
	if p := c.PAN.Reveal(); p != "" {
		if len(p) < 12 || len(p) > 19 || strings.Trim(p, "0123456789") != "" {
			return sterad.Errorf(sterad.EInvalid, "invalid_card", "pan must be 12 to 19 digits")
		}
	}
	if c.Expiry != "" {
		if _, err := sterad.ParseExpiry(c.Expiry); err != nil {
			return err
		}
	}
	if len(c.Track2) > 64 || strings.ContainsFunc(c.Track2, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return sterad.Errorf(sterad.EInvalid, "invalid_track2", "track2 must be at most 64 printable ASCII characters")
	}
	if c.Brand != "" {
		if _, ok := sterad.ParseBrand(c.Brand); !ok {
			return sterad.Errorf(sterad.EInvalid, "invalid_brand", "brand must be visa, mastercard, jcb, amex, diners or unionpay")
		}
	}
	if c.DelayMS < 0 || time.Duration(c.DelayMS)*time.Millisecond > MaxDelay {
		return sterad.Errorf(sterad.EInvalid, "invalid_delay", "delay_ms must be 0 to %d", MaxDelay.Milliseconds())
	}
	return nil
}

// PushCard queues what the customer does at the next READ_CARD (FIFO).
// Without a queued card, the next READ_CARD gets the default card: Visa
// 4111111111111111, chip, expiring two years from the clock's now.
func (t *Terminal) PushCard(c Card) error {
	if err := c.validate(); err != nil {
		return err
	}
	t.mu.Lock()
	t.cards = append(t.cards, c)
	n := len(t.cards)
	t.mu.Unlock()
	t.log.Info("card queued", "pan", c.PAN, "entry", c.Entry, "action", c.Action, "queued", n)
	return nil
}

// ClearCards drops the queued cards: the next READ_CARD gets the default
// card unless one is pushed. It returns how many were dropped.
func (t *Terminal) ClearCards() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.cards)
	t.cards = nil
	return n
}

// popCardLocked returns the next queued card or the default one.
func (t *Terminal) popCardLocked() Card {
	if len(t.cards) == 0 {
		return Card{Action: ActionPresent, Entry: string(sterad.EntryChip)}
	}
	c := t.cards[0]
	t.cards = t.cards[1:]
	return c
}

// resolveEntry picks the entry mode: the card's when the READ_CARD allows
// it and the terminal has it, else the first allowed one the terminal has.
func resolveEntry(want string, allowed []string) string {
	for _, e := range allowed {
		if e == want {
			return e
		}
	}
	return allowed[0]
}

// cardData builds the CARD payload for tx. Track 2 only for swipe, chip
// data only for chip and contactless. An encrypting terminal (p2pe) puts
// the card and track 2 in the encrypted block and shows only the masked
// PAN and the brand (docs/terminal-protocol.md §7); its chip data never held the
// card's own tags (5A, 57, 56, 5F20, 5F24, 9F1F, 9F20, 9F6B), nor does a
// terminal's in clear. The error is errEncrypt's: the card cannot be
// encrypted (no KSN left, the counter file unwritable).
func (t *Terminal) cardData(tx *txn) (*protocol.CardData, error) {
	now := t.cfg.Clock.Now()
	pan := tx.card.PAN.Reveal()
	if pan == "" {
		pan = DefaultPAN
	}
	exp := tx.card.Expiry
	if exp == "" {
		exp = sterad.Expiry{Year: now.AddDate(2, 0, 0).Year(), Month: int(now.AddDate(2, 0, 0).Month())}.String()
	}
	cd := &protocol.CardData{TxnID: tx.req.TxnID, Entry: tx.entry}
	if b := sterad.BrandOf(pan); b != sterad.BrandUnknown {
		cd.Brand = string(b)
	}
	if tx.card.Brand != "" {
		cd.Brand = tx.card.Brand
	}
	var t2 string
	switch sterad.EntryMode(tx.entry) {
	case sterad.EntrySwipe:
		t2 = track2(pan, exp)
		if tx.card.Track2 != "" {
			t2 = tx.card.Track2
		}
	case sterad.EntryChip, sterad.EntryContactless:
		cd.ICC = iccData(tx.req, now)
	}
	if t.ksn != nil {
		if err := t.p2peCardLocked(cd, dukpt.Card{PAN: pan, Expiry: exp, Track2: t2}); err != nil {
			return nil, err
		}
		return cd, nil
	}
	cd.PAN, cd.Expiry, cd.Track2 = pan, exp, t2
	return cd, nil
}

// track2 builds track 2 equivalent data: PAN=YYMM, service code 101,
// discretionary digits, at most 37 characters.
func track2(pan, exp string) string {
	var b strings.Builder
	b.WriteString(pan)
	b.WriteByte('=')
	b.WriteString(exp)
	b.WriteString("101")
	for b.Len() < 37 && b.Len() < len(pan)+18 {
		b.WriteByte(byte('0' + rand.IntN(10)))
	}
	return b.String()
}

// iccData builds a small EMV TLV list in hex: application cryptogram
// (9F26, random), cryptogram information (9F27 ARQC), ATC (9F36), amount
// (9F02), currency (5F2A), date (9A) and transaction type (9C).
func iccData(req protocol.ReadCard, now time.Time) string {
	var b []byte
	tlv := func(tag []byte, v []byte) {
		b = append(b, tag...)
		b = append(b, byte(len(v)))
		b = append(b, v...)
	}
	crypt := make([]byte, 8)
	for i := range crypt {
		crypt[i] = byte(rand.UintN(256))
	}
	tlv([]byte{0x9F, 0x26}, crypt)
	tlv([]byte{0x9F, 0x27}, []byte{0x80})
	tlv([]byte{0x9F, 0x36}, []byte{byte(rand.UintN(256)), byte(rand.UintN(256))})
	tlv([]byte{0x9F, 0x02}, bcd(strings.ReplaceAll(req.Amount, ".", ""), 12))
	if cur, ok := sterad.LookupCurrency(currencyOf(req)); ok {
		tlv([]byte{0x5F, 0x2A}, bcd(cur.Number, 4))
	}
	tlv([]byte{0x9A}, bcd(now.Format("060102"), 6))
	typ := byte(0x00) // goods and services
	switch req.Op {
	case "refund":
		typ = 0x20
	case "cardcheck":
		typ = 0x30
	}
	tlv([]byte{0x9C}, []byte{typ})
	return strings.ToUpper(hex.EncodeToString(b))
}

// bcd packs a digit string right-aligned into n digits (n even).
func bcd(digits string, n int) []byte {
	if len(digits) > n {
		digits = digits[len(digits)-n:]
	}
	digits = strings.Repeat("0", n-len(digits)) + digits
	out := make([]byte, n/2)
	for i := range out {
		out[i] = (digits[2*i]-'0')<<4 | (digits[2*i+1] - '0')
	}
	return out
}

func currencyOf(req protocol.ReadCard) string {
	if req.Currency == "" {
		return sterad.JPY.Code
	}
	return req.Currency
}

// maskLines hides anything on a slip line that looks like a full card
// number (13 to 19 digits passing the Luhn check).
func maskLines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = maskDigitRuns(l)
	}
	return out
}

func maskDigitRuns(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			b.WriteByte(s[i])
			i++
			continue
		}
		run := s[i:j]
		if len(run) >= 13 && len(run) <= 19 && sterad.Luhn(run) {
			run = sterad.MaskPAN(run)
		}
		b.WriteString(run)
		i = j
	}
	return b.String()
}

func (c Card) delay(def time.Duration) time.Duration {
	if c.DelayMS > 0 {
		return time.Duration(c.DelayMS) * time.Millisecond
	}
	return def
}

// String describes the card masked.
func (c Card) String() string {
	return fmt.Sprintf("Card{pan:%s entry:%s action:%s}", c.PAN.Masked(), c.Entry, c.Action)
}
