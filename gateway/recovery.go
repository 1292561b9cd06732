package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// recovery owns nothing: after a restart it finishes or reverses every
// transaction a crash interrupted, from the journal alone, and hands the
// terminal ones to the terminals (also when a terminal reconnects). Its
// walk over the store at the start also builds the watch. It may call
// terminals, outcomes, the journal, flights and the watch.
type recovery struct {
	env
	j  *journal
	oc *outcomes
	tm *terminals
	fl *flights
	wt *watch
}

// recover finishes or reverses every transaction a crash (or a stop)
// interrupted, from the journal alone:
//   - nothing sent yet: cancelled, nothing was charged;
//   - sent, no answer journaled: the outcome is unknown, so it is reversed
//     (or, for an advice or a void, repeated until answered);
//   - answered but the terminal has not shown it: shown when the terminal
//     is back (or reversed if the terminal lost it);
//   - queued reversals and advices: the forwarder continues them.
//
// It walks the queue and the transactions once, one record at a time
// (the watch is built from the same walk): a store may hold 100,000
// advices queued during an outage, and none of them needs anything but
// the forwarder. Only the transactions it acts on are kept, by ID, then
// read again one at a time, oldest first. It returns when the oldest
// queue item not parked was queued (zero: none), for the forwarder.
func (rc *recovery) recover(ctx context.Context) (oldestUnparked time.Time, err error) {
	queued := map[string]bool{}
	err = rc.j.store.ScanQueue(ctx, func(it sterad.QueueItem) error {
		queued[it.TxnID] = true
		rc.wt.noteItem(it)
		if !it.Parked && (oldestUnparked.IsZero() || it.CreatedAt.Before(oldestUnparked)) {
			oldestUnparked = it.CreatedAt
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	type pending struct {
		id      string
		created time.Time
	}
	var act []pending
	var waiting, reversals int
	err = rc.j.store.ScanTransactions(ctx, func(t *sterad.Transaction) error {
		rc.wt.noteTxn(t)
		switch {
		case t.Step == sterad.StepDone:
		case waitsInQueue(t, queued[t.ID]):
			if t.Step == sterad.StepReversal {
				reversals++
			} else {
				waiting++
			}
			rc.log.Debug("recovered transaction: it waits in the queue", "txn", t.ID, "op", t.Op, "status", t.Status, "step", t.Step)
		default:
			act = append(act, pending{t.ID, t.CreatedAt})
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	slices.SortFunc(act, func(a, b pending) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, p := range act {
		t, err := rc.j.store.Transaction(ctx, p.id)
		if err != nil {
			return time.Time{}, fmt.Errorf("transaction %s: %w", p.id, err)
		}
		if err := rc.recoverOne(ctx, t, queued[t.ID]); err != nil {
			return time.Time{}, fmt.Errorf("transaction %s: %w", t.ID, err)
		}
	}
	if n := waiting + reversals + len(act); n > 0 {
		rc.log.Info(fmt.Sprintf("recovered %d unfinished transactions: %d queued for the acquirer, %d reversals owed to it (the forwarder sends them), %d finished, reversed or handed to their terminal",
			n, waiting, reversals, len(act)), "queued", waiting, "reversals", reversals, "acted", len(act))
	}
	return oldestUnparked, nil
}

// waitsInQueue reports whether the recovery leaves unfinished t as it is:
// its reversal or queued message waits in the queue for the forwarder,
// and its terminal has nothing left to show.
func waitsInQueue(t *sterad.Transaction, queued bool) bool {
	return (t.Step == sterad.StepQueued || t.Step == sterad.StepReversal) && queued &&
		!(t.Terminal != "" && t.TerminalResult == "")
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
//
// The watch knows which unfinished transactions await their terminal:
// only those are read.
func (rc *recovery) reconnected(id string, bootChanged bool) {
	ctx := rc.fl.context()
	if ctx == nil {
		return
	}
	txns, err := rc.wt.load(ctx, rc.j.store, rc.wt.awaitingOn(id), func(t *sterad.Transaction) bool {
		return t.Terminal == id && awaitsTerminal(t)
	})
	if err != nil {
		rc.log.Error("unfinished transactions", "err", err)
		return
	}
	for _, t := range txns {
		rc.adopt(ctx, t)
	}
}
