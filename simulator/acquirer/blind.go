package acquirer

import (
	"errors"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/simulator/dukpt"
)

// codeBadBlock is DE 39 81: encrypted card data that could not be
// decrypted or parsed, or a KSN the terminal ID already used
// (docs/acquirer-protocol.md §8).
const codeBadBlock = "81"

// Merchant-initiated reasons of version 1.1 charged like a no-show
// (DE 48 MI).
const (
	miCancelFee = "CX"
	miDeposit   = "DP"
)

// cardFault is why the card of a request cannot be used: a format error
// at DE de (30, not processed), or the decline code (81).
type cardFault struct {
	de   int
	code string
	why  string // never card data
}

// refuse answers a request whose card cannot be used.
func (s *state) refuse(req *sterad.HostMessage, f *cardFault) decision {
	if f.code == "" {
		return s.formatError(req, f.de, f.why)
	}
	s.log.Warn("encrypted card data refused", "code", f.code, "reason", f.why,
		"mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN), "ksn", req.KSN)
	return decline(req, f.code)
}

// carriesBlock reports whether req carries an encrypted card (DE 48 KS or
// EC).
func carriesBlock(req *sterad.HostMessage) bool {
	return req.KSN != "" || req.EncryptedCard != ""
}

// blockAllowed reports whether req is a card-present request, which may
// carry the encrypted card: 0100 pre-authorization and card check (not an
// incremental), 0200, and a stand-in advice. Linked messages carry no card
// data (docs/acquirer-protocol.md §8).
func blockAllowed(req *sterad.HostMessage) bool {
	switch req.MTI {
	case sterad.MTIAuthorization:
		return req.MerchantInitiated != sterad.MIIncremental
	case sterad.MTIFinancial:
		return true
	case sterad.MTIAdvice, sterad.MTIAdviceRepeat:
		return req.StandIn
	}
	return false
}

// decryptCard is the card of DE 48 KS and EC: decrypted with the test BDK
// and read as DE 2 + 14 (+ 35 when it has a track 2). A KSN this terminal
// ID already used in another request, a KSN of another BDK, a block that
// does not decrypt to a card: 81. Chip data beside it that holds card data
// is a format error.
func (s *state) decryptCard(req *sterad.HostMessage) (*card, *cardFault) {
	bad := func(why string) (*card, *cardFault) { return nil, &cardFault{code: codeBadBlock, why: why} }
	switch {
	case req.KSN == "" || req.EncryptedCard == "":
		return nil, &cardFault{de: 48, why: "tags KS and EC go together"}
	case req.PAN != "" || !req.Expiry.IsZero() || len(req.Track2) > 0:
		return nil, &cardFault{de: 48, why: "tag EC replaces DE 2, 14 and 35"}
	case iccHasCardData(req.ICC):
		return nil, &cardFault{de: 55, why: "chip data beside an encrypted card holds card data (tag 5A, 57, 5F24, 5F20, 56 or 9F6B)"}
	case s.ksns[ksnKey{req.TerminalID, req.KSN}]:
		return bad("KSN already used by this terminal ID in another request")
	}
	ksn, err := dukpt.ParseKSN(req.KSN)
	if err != nil {
		return bad("KSN is not 24 uppercase hex digits")
	}
	if ksn.InitialKeyID().BDKID() != dukpt.TestBDKID {
		return bad("KSN names a BDK the host does not hold")
	}
	dc, err := dukpt.Decrypt(s.bdk, dukpt.Block{KSN: ksn, Data: req.EncryptedCard})
	switch {
	case errors.Is(err, dukpt.ErrKSN):
		return bad("KSN counter no terminal uses")
	case err != nil:
		return bad("block does not decrypt to a card")
	}
	exp, err := sterad.ParseExpiry(dc.Expiry)
	if err != nil {
		return bad("decrypted expiry is not YYMM")
	}
	if dc.Track2 != "" {
		pan2, exp2, de := parseTrack2(sterad.Sensitive(dc.Track2))
		if de != 0 || len(dc.Track2) > 37 || !isTrack2(dc.Track2) || string(pan2) != dc.PAN || exp2 != exp {
			return bad("decrypted track 2 is not track 2 of the card")
		}
	}
	return newCard(sterad.PAN(dc.PAN), exp), nil
}

// isTrack2 accepts track 2 equivalent data: digits and the '=' or 'D'
// separator (DE 35, z).
func isTrack2(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && c != '=' && c != 'D' {
			return false
		}
	}
	return true
}

// iccHasCardData reports whether EMV data (BER-TLV) holds a tag of card
// data: PAN (5A), track 2 equivalent (57), expiry (5F24), cardholder name
// (5F20), track 1 (56), contactless track 2 (9F6B). Constructed tags are
// searched inside; data that is not TLV holds none that can be found.
func iccHasCardData(b []byte) bool {
	for i := 0; i < len(b); {
		first := b[i]
		tag := uint32(first)
		i++
		if first == 0x00 || first == 0xff { // padding between objects
			continue
		}
		if first&0x1f == 0x1f { // subsequent tag bytes
			for i < len(b) {
				x := b[i]
				i++
				tag = tag<<8 | uint32(x)
				if x&0x80 == 0 {
					break
				}
			}
		}
		if i >= len(b) {
			return false
		}
		n := int(b[i])
		i++
		if n&0x80 != 0 {
			k := n & 0x7f
			if k == 0 || k > 2 || i+k > len(b) {
				return false
			}
			n = 0
			for ; k > 0; k-- {
				n = n<<8 | int(b[i])
				i++
			}
		}
		if i+n > len(b) {
			return false
		}
		switch tag {
		case 0x5a, 0x57, 0x5f24, 0x5f20, 0x56, 0x9f6b:
			return true
		}
		if first&0x20 == 0 { // primitive: skip its value; constructed: read into it
			i += n
		}
	}
	return false
}

// tokenCard returns the card a token stands for, or the decline: 14 for a
// token the host never issued or issued to another merchant.
func (s *state) tokenCard(req *sterad.HostMessage) (*card, string) {
	tk, ok := s.tokens[req.Token]
	if !ok || (tk.merchant != "" && tk.merchant != req.MerchantID) {
		s.log.Warn("charge with an unknown token", "terminal", req.TerminalID, "stan", int(req.STAN))
		return nil, codeInvalidCard
	}
	return onFile(tk.masked, tk.hash, tk.expiry), ""
}

// onFile is a card the host knows only as kept: masked, hashed and its
// expiry (which may be unknown).
func onFile(masked, hash, expiry string) *card {
	c := &card{masked: masked, hash: hash}
	if e, err := sterad.ParseExpiry(expiry); err == nil {
		c.expiry = e
	}
	return c
}
