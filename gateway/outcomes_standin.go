package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/sterad/sterad"
)

// notSent records a request that certainly never reached the host: the
// acquirer is unreachable. Depending on the op it is stood in, deferred,
// queued (advices, voids) or declined.
//
// block is the encrypted card block of a card-data-blind request: a
// stand-in keeps it with its queue item until the advice (or the
// deferred 0100) is answered; a deferred refund or no-show goes by TI or
// TK and needs none.
func (oc *outcomes) notSent(ctx context.Context, t *sterad.Transaction, c *txChange, now time.Time, block *sterad.EncryptedBlock) error {
	switch {
	case t.MTI == sterad.MTIAdvice || t.MTI == sterad.MTIVoid:
		// An advice or a void is owed to the host whatever happens: it is
		// sent as soon as the link is back.
		t.Reason = "the acquirer is unreachable: it will be sent when the link is back"
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: queueKindOf(t), CreatedAt: now})
		return t.Transition(sterad.StatusPending, sterad.StepQueued, now, t.Reason)
	case t.Deferrable():
		t.Offline = true
		t.Reason = "accepted while the acquirer is unreachable: it will be sent when the link is back, check its result later"
		c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: sterad.QueueRequest, CreatedAt: now})
		return t.Transition(sterad.StatusPending, sterad.StepQueued, now, t.Reason)
	case t.CanStandIn():
		return oc.standIn(ctx, t, c, now, block)
	}
	oc.undo(ctx, c, t)
	t.ResponseCode = ""
	t.Reason = "the acquirer is unreachable: nothing was charged"
	return oc.end(t, c, sterad.StatusDeclined, oc.nextStep(t), now, t.Reason)
}

// standIn approves t locally within the offline limits, or declines it.
// A stood-in sale is reported later by an advice (0220, SI=1, DE 38 = the
// local code, DE 7 = the time of this decision); a stood-in
// pre-authorization is sent as its 0100 when the link is back, so that the
// check-out completion has a real authorization to complete and no debit
// is counted twice.
func (oc *outcomes) standIn(ctx context.Context, t *sterad.Transaction, c *txChange, now time.Time, block *sterad.EncryptedBlock) error {
	oc.standInMu.Lock() // held until modify commits: released by the change
	c.unlocks = append(c.unlocks, oc.standInMu.Unlock)
	lim := oc.cfg.Offline
	decline := func(reason string) error {
		oc.undo(ctx, c, t)
		t.ResponseCode = ""
		t.Reason = "the acquirer is unreachable and " + reason + ": nothing was charged"
		return oc.end(t, c, sterad.StatusDeclined, oc.nextStep(t), now, t.Reason)
	}
	if t.Amount.Cmp(lim.FloorLimit) > 0 {
		return decline(fmt.Sprintf("%s is above the offline floor limit of %s", t.Amount.Display(), lim.FloorLimit.Display()))
	}
	count, total, more, err := oc.queuedStandIns(ctx, lim.MaxCount)
	if err != nil {
		return err
	}
	if count+1 > lim.MaxCount {
		n := fmt.Sprint(count)
		if more {
			n = "more than " + n
		}
		return decline(fmt.Sprintf("%s offline approvals already wait for the acquirer (the limit is %d)", n, lim.MaxCount))
	}
	if total.Add(t.Amount).Cmp(lim.TotalLimit) > 0 {
		return decline(fmt.Sprintf("offline approvals waiting for the acquirer would exceed %s", lim.TotalLimit.Display()))
	}
	t.LocalCode = localCode()
	t.AuthCode, t.ResponseCode, t.Offline = t.LocalCode, "00", true
	kind := sterad.QueueRequest
	if t.Op == sterad.OpSale {
		t.MTI, kind = sterad.MTIAdvice, sterad.QueueAdvice
	} else {
		t.AuthorizedTotal = t.Amount
	}
	t.Reason = "approved offline by sterad: it will be reported to the acquirer when the link is back"
	c.Enqueue = append(c.Enqueue, sterad.QueueItem{TxnID: t.ID, Kind: kind, CreatedAt: now, Block: block})
	oc.log.Warn("stood in for the acquirer", "txn", t.ID, "op", t.Op, "amount", t.Amount.String(), "local_code", t.LocalCode)
	return t.Transition(sterad.StatusStoodIn, sterad.StepQueued, now, "approved offline, local code "+t.LocalCode)
}

// queuedStandIns counts the stand-ins waiting in the queue and their
// total. It walks the queue one item at a time and stops once it has
// counted upTo of them (more then says whether others follow): a long
// outage may have queued 100,000, and the limit is known to be reached.
func (oc *outcomes) queuedStandIns(ctx context.Context, upTo int) (n int, total sterad.Amount, more bool, err error) {
	total = sterad.Amount{Currency: oc.cfg.Currency}
	errEnough := errors.New("enough")
	err = oc.j.store.ScanQueue(ctx, func(it sterad.QueueItem) error {
		if it.Kind != sterad.QueueAdvice && it.Kind != sterad.QueueRequest {
			return nil
		}
		t, err := oc.j.store.Transaction(ctx, it.TxnID)
		if err != nil {
			return err
		}
		if !t.StandIn() {
			return nil
		}
		if n >= upTo {
			more = true
			return errEnough
		}
		n++
		total = total.Add(t.Amount)
		return nil
	})
	if err != nil && err != errEnough {
		return 0, total, false, err
	}
	return n, total, more, nil
}

// localCode returns a stand-in authorization code: "S" and five letters or
// digits, so a slip shows at a glance that sterad approved it offline.
func localCode() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = 'S'
	for i := 1; i < len(b); i++ {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
