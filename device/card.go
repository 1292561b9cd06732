package device

import (
	"encoding/hex"
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
// Errors never quote the card data.
func parseCard(cd protocol.CardData) (*sterad.Card, error) {
	if n := len(cd.PAN); n < 12 || n > 19 || !isDigits(cd.PAN) {
		return nil, badCard("the card number is not 12 to 19 digits")
	}
	exp, err := sterad.ParseExpiry(cd.Expiry)
	if err != nil {
		return nil, badCard("the expiry is not YYMM")
	}
	entry := sterad.EntryMode(cd.Entry)
	switch entry {
	case sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe, sterad.EntryKeyed:
	default:
		return nil, badCard("unknown entry mode " + safeText(cd.Entry))
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
