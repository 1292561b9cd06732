package gateway

import (
	"context"
	"fmt"

	"github.com/sterad/sterad"
)

// recover finishes or reverses every transaction a crash (or a stop)
// interrupted, from the journal alone:
//   - nothing sent yet: cancelled, nothing was charged;
//   - sent, no answer journaled: the outcome is unknown, so it is reversed
//     (or, for an advice or a void, repeated until answered);
//   - answered but the terminal has not shown it: shown when the terminal
//     is back (or reversed if the terminal lost it);
//   - queued reversals and advices: the forwarder continues them.
func (g *Gateway) recover(ctx context.Context) error {
	txns, err := g.store.Unfinished(ctx)
	if err != nil {
		return err
	}
	queued := map[string]bool{}
	items, err := g.store.Queue(ctx)
	if err != nil {
		return err
	}
	for _, it := range items {
		queued[it.TxnID] = true
	}
	for _, t := range txns {
		if err := g.recoverOne(ctx, t, queued[t.ID]); err != nil {
			return fmt.Errorf("transaction %s: %w", t.ID, err)
		}
	}
	return nil
}

func (g *Gateway) recoverOne(ctx context.Context, t *sterad.Transaction, queued bool) error {
	g.log.Info("recovering transaction", "txn", t.ID, "op", t.Op, "status", t.Status, "step", t.Step)
	var err error
	switch t.Step {
	case sterad.StepCreated, sterad.StepReading, sterad.StepCardRead:
		if t.Terminal != "" {
			g.adopt(ctx, t) // the terminal decides what it saw
			return nil
		}
		_, _, err = g.modify(ctx, t.ID, func(t *sterad.Transaction, c *txChange) error {
			g.undo(c, t)
			t.Reason = "interrupted by a restart before it was sent: nothing was charged"
			return g.end(t, c, sterad.StatusCancelled, sterad.StepDone, g.clock.Now(), t.Reason)
		})
	case sterad.StepSent:
		_, _, err = g.modify(ctx, t.ID, func(t *sterad.Transaction, c *txChange) error {
			return g.unknownOutcome(t, c, g.clock.Now(), "sterad restarted before the acquirer's answer was recorded")
		})
	case sterad.StepReversal, sterad.StepQueued:
		if !queued {
			// The item and the step are written in one commit, so this
			// means the item was answered but the step not moved on.
			g.log.Warn("queued step without a queue item", "txn", t.ID)
		}
	}
	if err != nil {
		return err
	}
	if t.Terminal != "" && t.TerminalResult == "" && t.Step != sterad.StepCreated && t.Step != sterad.StepReading && t.Step != sterad.StepCardRead {
		g.adopt(ctx, t)
	}
	return nil
}

// adopt hands a recovered terminal transaction to a background flow that
// reconciles it with its terminal once the terminal is back; the terminal
// stays busy until then.
func (g *Gateway) adopt(ctx context.Context, t *sterad.Transaction) {
	g.mu.Lock()
	if g.inflight[t.ID] != nil {
		g.mu.Unlock()
		return
	}
	g.inflight[t.ID] = make(chan struct{})
	g.busy[t.Terminal] = t.ID
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer g.finish(t)
		g.reconcile(ctx, t.ID)
	}()
}

// TerminalReconnected is called when a terminal's link is back (HELLO
// answered). Transactions on it left for an operator or interrupted are
// reconciled now.
func (g *Gateway) TerminalReconnected(id string, bootChanged bool) {
	if g.ctx == nil {
		return
	}
	txns, err := g.store.Unfinished(g.ctx)
	if err != nil {
		g.log.Error("unfinished transactions", "err", err)
		return
	}
	for _, t := range txns {
		if t.Terminal == id && t.TerminalResult == "" && t.Step != sterad.StepSent {
			g.adopt(g.ctx, t)
		}
	}
}
