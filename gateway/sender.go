package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/sterad/sterad"
)

// sender owns the way to the acquirer: it builds every host message from
// a journaled record (and its card), assigns a request's STAN, DE 7 and
// batch, and sends: no answer is used unless sterad.CheckAnswer takes it
// as the answer to its request. It may call the journal (STANs, the open
// batch) and the acquirer.
type sender struct {
	env
	acquirer sterad.Acquirer
	j        *journal
}

// status is the acquirer link's status.
func (sd *sender) status() sterad.LinkStatus { return sd.acquirer.Status() }

// online reports whether the acquirer is reachable now.
func (sd *sender) online() bool { return sd.acquirer.Status().Online }

// prepare assigns the request's MTI, STAN, DE 7, condition and batch, marks
// it sent and returns the message. The caller journals t before sending.
func (sd *sender) prepare(ctx context.Context, t *sterad.Transaction, card *sterad.Card, orig *sterad.Transaction, now time.Time) (*sterad.HostMessage, error) {
	now = now.UTC().Truncate(time.Second)
	switch t.Op {
	case sterad.OpPreauth, sterad.OpIncremental, sterad.OpCardCheck:
		t.MTI = sterad.MTIAuthorization
	case sterad.OpCompletion:
		t.MTI = sterad.MTIAdvice
	case sterad.OpVoid:
		t.MTI = sterad.MTIVoid
	default:
		t.MTI = sterad.MTIFinancial
	}
	if card != nil && t.Entry == "" {
		t.Entry = card.Entry
	}
	if t.Entry == "" {
		t.Entry = sterad.EntryKeyed
	}
	if card != nil && t.MaskedPAN == "" {
		t.MaskedPAN, t.Brand = card.MaskedPAN(), card.Brand
	}
	if isBlind(card) {
		t.KSN = card.Encrypted.KSN
	}
	t.Condition = sd.condition(t)
	if t.Op == sterad.OpVoid {
		// A void carries the original's STAN; its DE 7 must differ from
		// the original's so the host cannot take it for a duplicate.
		t.STAN = orig.STAN
		t.Transmitted = laterThan(now, orig.Transmitted)
	} else {
		stan, err := sd.j.store.NextSTAN(ctx, t.TerminalID, now)
		if err != nil {
			return nil, fmt.Errorf("assign STAN: %w", err)
		}
		t.STAN, t.Transmitted = stan, now
	}
	if t.MTI.Class() != "01" {
		b, err := sd.j.store.CurrentBatch(ctx)
		if err != nil {
			return nil, err
		}
		t.Batch = b.Number
	}
	t.Step, t.UpdatedAt = sterad.StepSent, now
	return sd.message(t, card, orig), nil
}

// laterThan returns now, or one second after prev when now is not later.
func laterThan(now, prev time.Time) time.Time {
	if !now.After(prev) {
		return prev.Add(time.Second)
	}
	return now
}

// condition returns DE 25 for t.
func (sd *sender) condition(t *sterad.Transaction) string {
	switch t.Op {
	case sterad.OpPreauth, sterad.OpIncremental, sterad.OpCompletion:
		return sterad.CondPreauth
	case sterad.OpCardCheck:
		return sterad.CondVerification
	case sterad.OpNoShow, sterad.OpCancellation, sterad.OpDeposit:
		return sterad.CondMailPhone
	case sterad.OpSale:
		if t.Terminal == "" {
			return sterad.CondMailPhone // keyed: telephone or mail order
		}
	}
	return sterad.CondNormal
}

// send exchanges msg with the acquirer. Every message the gateway sends
// goes through here, so that no answer is ever used unless CheckAnswer
// takes it as the answer to msg; one that is not is an unknown outcome
// (ErrBadAnswer), like no answer at all.
func (sd *sender) send(ctx context.Context, msg *sterad.HostMessage) (*sterad.HostMessage, error) {
	resp, err := sd.acquirer.Exchange(ctx, msg)
	if err != nil {
		return nil, err
	}
	if err := sterad.CheckAnswer(msg, resp); err != nil {
		sd.log.Error("acquirer answer not taken: the outcome is unknown", "mti", msg.MTI, "stan", msg.STAN, "terminal", msg.TerminalID, "why", err.(*sterad.AnswerError).Why)
		return nil, err
	}
	return resp, nil
}
