package gateway

import (
	"context"
	"fmt"

	"github.com/sterad/sterad"
)

// recovery owns nothing: after a restart it finishes or reverses every
// transaction a crash interrupted, from the journal alone, and hands the
// terminal ones to the terminals (also when a terminal reconnects). It may
// call terminals, outcomes, the journal and flights.
type recovery struct {
	env
	j  *journal
	oc *outcomes
	tm *terminals
	fl *flights
}

// recover finishes or reverses every transaction a crash (or a stop)
// interrupted, from the journal alone:
//   - nothing sent yet: cancelled, nothing was charged;
//   - sent, no answer journaled: the outcome is unknown, so it is reversed
//     (or, for an advice or a void, repeated until answered);
//   - answered but the terminal has not shown it: shown when the terminal
//     is back (or reversed if the terminal lost it);
//   - queued reversals and advices: the forwarder continues them.
func (rc *recovery) recover(ctx context.Context) error {
	txns, err := rc.j.store.Unfinished(ctx)
	if err != nil {
		return err
	}
	queued := map[string]bool{}
	items, err := rc.j.store.Queue(ctx)
	if err != nil {
		return err
	}
	for _, it := range items {
		queued[it.TxnID] = true
	}
	for _, t := range txns {
		if err := rc.recoverOne(ctx, t, queued[t.ID]); err != nil {
			return fmt.Errorf("transaction %s: %w", t.ID, err)
		}
	}
	return nil
}

func (rc *recovery) recoverOne(ctx context.Context, t *sterad.Transaction, queued bool) error {
	rc.log.Info("recovering transaction", "txn", t.ID, "op", t.Op, "status", t.Status, "step", t.Step)
	var err error
	switch t.Step {
	case sterad.StepCreated, sterad.StepReading, sterad.StepCardRead:
		if t.Terminal != "" {
			rc.adopt(ctx, t) // the terminal decides what it saw
			return nil
		}
		_, _, err = rc.j.modify(ctx, t.ID, func(t *sterad.Transaction, c *txChange) error {
			rc.oc.undo(ctx, c, t)
			t.Reason = "interrupted by a restart before it was sent: nothing was charged"
			return rc.oc.end(t, c, sterad.StatusCancelled, sterad.StepDone, rc.clock.Now(), t.Reason)
		})
	case sterad.StepSent:
		_, _, err = rc.j.modify(ctx, t.ID, func(t *sterad.Transaction, c *txChange) error {
			return rc.oc.unknownOutcome(t, c, rc.clock.Now(), "sterad restarted before the acquirer's answer was recorded")
		})
	case sterad.StepReversal, sterad.StepQueued:
		if !queued {
			// The item and the step are written in one commit, so this
			// means the item was answered but the step not moved on.
			rc.log.Warn("queued step without a queue item", "txn", t.ID)
		}
	}
	if err != nil {
		return err
	}
	if t.Terminal != "" && t.TerminalResult == "" && t.Step != sterad.StepCreated && t.Step != sterad.StepReading && t.Step != sterad.StepCardRead {
		rc.adopt(ctx, t)
	}
	return nil
}

// adopt hands a recovered terminal transaction to a background flow that
// reconciles it with its terminal once the terminal is back; the terminal
// stays busy until then.
func (rc *recovery) adopt(ctx context.Context, t *sterad.Transaction) {
	if !rc.fl.add(t.ID) {
		return
	}
	rc.tm.hold(t.Terminal, t.ID)
	rc.fl.goRun(func() {
		defer rc.fl.done(t.ID)
		defer rc.tm.free(t.Terminal, t.ID)
		rc.tm.reconcile(ctx, t.ID)
	})
}

// reconnected is called when a terminal's link is back (HELLO
// answered). Transactions on it left for an operator or interrupted are
// reconciled now.
func (rc *recovery) reconnected(id string, bootChanged bool) {
	ctx := rc.fl.context()
	if ctx == nil {
		return
	}
	txns, err := rc.j.store.Unfinished(ctx)
	if err != nil {
		rc.log.Error("unfinished transactions", "err", err)
		return
	}
	for _, t := range txns {
		if t.Terminal == id && t.TerminalResult == "" && t.Step != sterad.StepSent {
			rc.adopt(ctx, t)
		}
	}
}
