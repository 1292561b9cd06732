package gateway

import (
	"github.com/sterad/sterad"
)

// processing returns DE 3 of t.
func processing(t *sterad.Transaction) string {
	if t.Op == sterad.OpRefund {
		return sterad.ProcRefund
	}
	return sterad.ProcPurchase
}

// base returns the fields every request of t carries.
func (sd *sender) base(t *sterad.Transaction, card *sterad.Card) *sterad.HostMessage {
	m := &sterad.HostMessage{
		MTI: t.MTI, Processing: processing(t), HasAmount: true, Amount: t.Amount, Currency: sd.cfg.Currency,
		Transmitted: t.Transmitted, STAN: t.STAN, LocalTime: t.Transmitted.In(sd.cfg.Location), MCC: sd.cfg.MCC,
		Entry: t.Entry, Condition: t.Condition, TerminalID: t.TerminalID, MerchantID: sd.cfg.MerchantID,
	}
	if t.MTI.Class() != "01" {
		m.Batch = t.Batch
	}
	if isBlind(card) {
		// An encrypting terminal's block, passed on unchanged (DE 48 KS
		// and EC instead of DE 2, 14 and 35: docs/acquirer-protocol.md §8). The
		// chip data it sent lacks the card-data tags.
		m.KSN, m.EncryptedCard = card.Encrypted.KSN, card.Encrypted.Data
		if (t.Entry == sterad.EntryChip || t.Entry == sterad.EntryContactless) && len(card.ICC) > 0 {
			m.ICC = card.ICC
		}
	} else if card != nil {
		if t.Entry == sterad.EntrySwipe && len(card.Track2) > 0 {
			m.Track2 = card.Track2
		} else {
			m.PAN, m.Expiry = card.PAN, card.Expiry
		}
		if (t.Entry == sterad.EntryChip || t.Entry == sterad.EntryContactless) && len(card.ICC) > 0 {
			m.ICC = card.ICC
		}
	}
	return m
}

// message returns the request of t. orig is t's original for linked ops.
func (sd *sender) message(t *sterad.Transaction, card *sterad.Card, orig *sterad.Transaction) *sterad.HostMessage {
	if t.Op == sterad.OpVoid {
		return sd.voidMessage(t, orig, card)
	}
	m := sd.base(t, card)
	switch t.Op {
	case sterad.OpPreauth:
		m.Reference, m.Stay = t.Reference, t.Stay
	case sterad.OpIncremental:
		m.MerchantInitiated, m.TI, m.RRN = sterad.MIIncremental, orig.HostTI, orig.RRN
	case sterad.OpCompletion:
		m.AuthCode, m.TI, m.RRN = orig.AuthCode, orig.HostTI, orig.RRN
		m.Original = &sterad.OriginalData{MTI: orig.MTI, STAN: orig.STAN, Transmitted: orig.Transmitted}
	case sterad.OpRefund:
		m.TI = orig.HostTI
	case sterad.OpCardCheck:
		m.WantToken = t.Reference != ""
	case sterad.OpNoShow, sterad.OpCancellation, sterad.OpDeposit:
		m.MerchantInitiated, m.Reference, m.Stay = merchantInitiated(t), t.Reference, t.Stay
		if card == nil && t.Token != "" {
			m.Token = t.Token
		}
	case sterad.OpSale:
		if t.MerchantInitiated != "" {
			// A difference charge of a reservation charge: charged like it.
			m.MerchantInitiated, m.Reference, m.Stay = t.MerchantInitiated, t.Reference, t.Stay
			if card == nil && t.Token != "" {
				m.Token = t.Token
			}
		}
	}
	if isBlind(card) && (m.MTI == sterad.MTIAuthorization || m.MTI == sterad.MTIFinancial) {
		// The block is good for this one request: a token carries the
		// card on (docs/acquirer-protocol.md §8).
		m.WantToken = true
	}
	if t.StandIn() && t.MTI == sterad.MTIAdvice {
		m.StandIn, m.AuthCode = true, t.LocalCode
	}
	return m
}

// repeatMessage returns the message of t again, as a repeat when the first
// transmission may have reached the host (0220 → 0221). DE 7 is unchanged:
// it is the same message.
func (sd *sender) repeatMessage(t *sterad.Transaction, card *sterad.Card, orig *sterad.Transaction, repeat bool) *sterad.HostMessage {
	m := sd.message(t, card, orig)
	if repeat {
		m.MTI = m.MTI.Repeat()
	}
	m.Track2, m.ICC = nil, nil
	if card != nil && !isBlind(card) {
		m.PAN, m.Expiry = card.PAN, card.Expiry
	}
	return m
}

// voidMessage is the 0400 of void v: the original's DE 2, 3, 4, 11, 22,
// 25, 37 and 41, DE 90, RR=VD and the original's TI.
func (sd *sender) voidMessage(v, o *sterad.Transaction, card *sterad.Card) *sterad.HostMessage {
	m := sd.base(o, card)
	m.MTI, m.Transmitted, m.LocalTime = sterad.MTIVoid, v.Transmitted, v.Transmitted.In(sd.cfg.Location)
	m.Track2, m.ICC = nil, nil
	if card != nil && !isBlind(card) {
		m.PAN, m.Expiry = card.PAN, card.Expiry
	}
	m.RRN, m.TI, m.ReversalReason = o.RRN, o.HostTI, sterad.RRVoid
	m.Original = &sterad.OriginalData{MTI: o.MTI, STAN: o.STAN, Transmitted: o.Transmitted}
	m.Batch = v.Batch
	return m
}

// reversalMessage is the 0420 (0421 when repeated) of t: the original's
// DE 2, 3, 4, 11, 22, 25 and 41, DE 90 and RR. batch is DE 60 for an
// original that carried none (an 0100).
func (sd *sender) reversalMessage(t *sterad.Transaction, card *sterad.Card, repeat bool, batch int) *sterad.HostMessage {
	m := sd.base(t, card)
	m.MTI = sterad.MTIReversal
	if repeat {
		m.MTI = sterad.MTIReversalRepeat
	}
	m.Transmitted, m.LocalTime = t.ReversalTransmitted, t.ReversalTransmitted.In(sd.cfg.Location)
	m.Track2, m.ICC = nil, nil
	if card != nil && !isBlind(card) {
		m.PAN, m.Expiry = card.PAN, card.Expiry
	}
	m.RRN, m.TI, m.ReversalReason = t.RRN, t.HostTI, t.ReversalReason
	m.Original = &sterad.OriginalData{MTI: t.MTI, STAN: t.STAN, Transmitted: t.Transmitted}
	m.Batch = t.Batch
	if m.Batch == 0 {
		m.Batch = batch
	}
	return m
}

// isBlind reports whether card is an encrypting terminal's card (nil: no
// card at all).
func isBlind(card *sterad.Card) bool { return card != nil && card.Blind() }

// merchantInitiated is DE 48 MI of a reservation charge.
func merchantInitiated(t *sterad.Transaction) string {
	switch t.Op {
	case sterad.OpNoShow:
		return sterad.MINoShow
	case sterad.OpCancellation:
		return sterad.MICancelFee
	case sterad.OpDeposit:
		return sterad.MIDeposit
	}
	return t.MerchantInitiated
}
