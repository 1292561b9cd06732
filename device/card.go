package device

import (
	"encoding/hex"
	"slices"
	"strings"
	"unicode"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// badCard is the error of a CARD the gateway cannot use.
func badCard(why string) error {
	return sterad.Errorf(sterad.EInternal, "terminal_bad_card", "the terminal sent an unusable card: %s", why)
}

// parseCard turns a CARD payload into a card. It checks the form only
// (digits, YYMM, known entry mode, hex chip data): a CARD that fails it is
// not a card, and is cancelled. Whether the card is usable is the
// gateway's to decide, in one place (sterad.Card.Validate): the Luhn
// check, the expiry against the date, and track 2 and chip data naming
// the same card as `pan` — a card refused there was acknowledged, so the
// gateway ends it with a declined OUTCOME the terminal shows. Brand is the
// terminal's claim (or the number's range when it names none); the
// gateway settles it from the number's range (sterad.Card.SettleBrand).
//
// A CARD with a "p2pe" object is an encrypting terminal's (parseP2PE).
// With blind set (card_data: blind) a card number in clear is refused
// whatever the terminal: sterad must not hold one.
//
// Errors never quote the card data.
func parseCard(cd protocol.CardData, blind bool) (*sterad.Card, error) {
	if cd.P2PE != nil {
		return parseP2PE(cd)
	}
	if blind {
		if cd.PAN != "" || cd.Expiry != "" || cd.Track2 != "" {
			return nil, errCardInClear
		}
		return nil, badCard("the CARD carries no encrypted card data (p2pe): sterad runs card-data-blind")
	}
	if n := len(cd.PAN); n < 12 || n > 19 || !isDigits(cd.PAN) {
		return nil, badCard("the card number is not 12 to 19 digits")
	}
	exp, err := sterad.ParseExpiry(cd.Expiry)
	if err != nil {
		return nil, badCard("the expiry is not YYMM")
	}
	entry, err := parseEntry(cd.Entry)
	if err != nil {
		return nil, err
	}
	card := &sterad.Card{PAN: sterad.PAN(cd.PAN), Expiry: exp, Entry: entry}
	if b, ok := sterad.ParseBrand(cd.Brand); ok {
		card.Brand = b
	} else {
		card.Brand = sterad.BrandOf(cd.PAN)
	}
	if cd.Track2 != "" {
		card.Track2 = sterad.Sensitive(cd.Track2)
	}
	if cd.ICC != "" {
		icc, err := hex.DecodeString(cd.ICC)
		if err != nil {
			card.Wipe()
			return nil, badCard("the chip data is not hex")
		}
		card.ICC = icc
	}
	return card, nil
}

// errCardInClear refuses a card number in clear where sterad must not
// hold one: alongside an encrypted block, or from any terminal when sterad
// runs card-data-blind. The card data is dropped.
var errCardInClear = badCard("the terminal sent card data in clear: sterad runs card-data-blind and does not take it (the card was dropped)")

// parseP2PE turns an encrypting terminal's CARD (docs/terminal-protocol.md §7)
// into a card with no card number: the masked PAN, the brand, the entry
// mode, the chip data without the card's own tags, and the encrypted
// block as the terminal sent it, which sterad cannot open. A CARD that
// also carries the number, expiry or track 2 in clear is refused and its
// card data dropped, as is chip data holding the card's own tags (the
// card number, track 2 equivalent data, cardholder name, expiry, track 1
// and 2 discretionary data, track 1 data, the contactless track 2): the
// encryption would be for nothing. The block's form is checked
// (sterad.EncryptedBlock.Validate); its content is the acquirer's.
func parseP2PE(cd protocol.CardData) (*sterad.Card, error) {
	if cd.PAN != "" || cd.Expiry != "" || cd.Track2 != "" {
		return nil, errCardInClear
	}
	if !sterad.ValidMasked(cd.MaskedPAN) {
		return nil, badCard("the masked card number does not show the first 6 and last 4 digits only")
	}
	entry, err := parseEntry(cd.Entry)
	if err != nil {
		return nil, err
	}
	blk := &sterad.EncryptedBlock{KSN: cd.P2PE.KSN, Data: cd.P2PE.Data}
	if err := blk.Validate(); err != nil {
		return nil, badCard(sterad.ErrorMessage(err))
	}
	card := &sterad.Card{Masked: cd.MaskedPAN, Entry: entry, Encrypted: blk}
	if b, ok := sterad.ParseBrand(cd.Brand); ok {
		card.Brand = b
	} else {
		card.Brand = sterad.BrandOf(cd.MaskedPAN) // the IIN ranges need only the first 6 digits
	}
	if cd.ICC != "" {
		icc, err := hex.DecodeString(cd.ICC)
		if err != nil {
			return nil, badCard("the chip data is not hex")
		}
		if cardTagIn(icc, 0) {
			clear(icc)
			return nil, badCard("the chip data carries the card's own data in clear (an EMV card data tag): sterad runs card-data-blind and does not take it (the card was dropped)")
		}
		card.ICC = icc
	}
	return card, nil
}

// parseEntry checks the CARD's entry mode.
func parseEntry(s string) (sterad.EntryMode, error) {
	entry := sterad.EntryMode(s)
	switch entry {
	case sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe, sterad.EntryKeyed:
		return entry, nil
	}
	return "", badCard("unknown entry mode " + safeText(s))
}

// cardDataTags are the EMV tags that carry card data, which an encrypting
// terminal leaves out of its chip data (docs/terminal-protocol.md §7): 5A
// application PAN, 57 track 2 equivalent data, 56 track 1 data, 5F20
// cardholder name, 5F24 expiry date, 9F1F track 1 discretionary data,
// 9F20 track 2 discretionary data, 9F6B track 2 data (contactless).
var cardDataTags = []string{"5a", "57", "56", "5f20", "5f24", "9f1f", "9f20", "9f6b"}

// cardTagIn reports whether BER-TLV chip data holds one of the card data
// tags, looking into constructed templates (depth bounds their nesting).
// Chip data it cannot parse further is judged up to there: the host
// judges DE 55.
func cardTagIn(b []byte, _ int) bool {
	found := false
	sterad.WalkTLV(b, func(tag, _ []byte) bool {
		found = slices.Contains(cardDataTags, hex.EncodeToString(tag))
		return !found
	})
	return found
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// safeText makes a terminal-supplied string (a RESULT reason, an ERROR
// text) fit for a message or a log: printable, at most 80 characters, and
// any run of 12 or more digits masked as a card number would be.
func safeText(s string) string {
	var b strings.Builder
	n := 0
	flush := func(digits string) {
		if len(digits) >= 12 {
			b.WriteString(sterad.MaskPAN(digits))
		} else {
			b.WriteString(digits)
		}
	}
	var run strings.Builder
	for _, r := range s {
		if n == 80 {
			break
		}
		n++
		if r >= '0' && r <= '9' {
			run.WriteRune(r)
			continue
		}
		flush(run.String())
		run.Reset()
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	flush(run.String())
	return b.String()
}

// terminalError maps an ERROR message to the error a client sees.
func terminalError(m protocol.ErrorMsg) error {
	text := ""
	if t := safeText(m.Text); t != "" {
		text = ": " + t
	}
	switch m.Code {
	case protocol.ErrCodeBusy:
		return sterad.ErrTerminalBusy
	case protocol.ErrCodeBadRequest:
		return sterad.Errorf(sterad.EInternal, "terminal_bad_request", "the terminal refused the request as malformed%s", text)
	case protocol.ErrCodeUnsupported:
		return sterad.Errorf(sterad.EInvalid, "terminal_unsupported", "the terminal does not support this request%s", text)
	case protocol.ErrCodeTxnIDReused:
		return sterad.Errorf(sterad.EConflict, "terminal_txn_id_reused", "the terminal already ran a different request under this transaction id%s", text)
	case protocol.ErrCodeTerminalFault:
		return sterad.Errorf(sterad.EUnavailable, "terminal_fault", "the terminal reported a fault%s", text)
	default:
		return sterad.Errorf(sterad.EInternal, "terminal_error", "the terminal answered with error %s%s", safeText(m.Code), text)
	}
}
