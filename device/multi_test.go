package device_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

// Two terminals, a fixed one on a serial line and a handheld on USB, each
// with its own session, run transactions at the same time, interleaved:
// nothing of one reaches the other.
func TestTwoTerminalsAtOnce(t *testing.T) {
	b1, b2 := newBench(t), newBench(t)
	usbBench(b2)
	s1 := startSession(t, testConfig(b1, &logBuffer{}))
	s2 := startSession(t, usbConfig(b2, &logBuffer{}))
	ft1, ft2 := b1.next(), b2.next()
	waitReady(t, s1)
	waitReady(t, s2)

	var mu sync.Mutex
	persisted := map[string]string{} // txn → PAN
	persist := func(txn string) func(*sterad.Card) error {
		return func(c *sterad.Card) error {
			mu.Lock()
			persisted[txn] = c.PAN.Reveal()
			mu.Unlock()
			return nil
		}
	}
	r1 := async(func() (*sterad.Card, error) {
		return s1.ReadCard(context.Background(), saleRequest("txn-A"), persist("txn-A"))
	})
	r2 := async(func() (*sterad.Card, error) {
		return s2.ReadCard(context.Background(), saleRequest("txn-B"), persist("txn-B"))
	})
	var rc1, rc2 protocol.ReadCard
	ft1.expectMsg(protocol.TypeReadCard, &rc1)
	ft2.expectMsg(protocol.TypeReadCard, &rc2)
	if rc1.TxnID != "txn-A" || rc2.TxnID != "txn-B" {
		t.Fatalf("READ_CARDs %s at FRONT001, %s at HAND0001", rc1.TxnID, rc2.TxnID)
	}
	eventually(t, "both busy", func() bool {
		i1, i2 := s1.Info(), s2.Info()
		return i1.State == sterad.TerminalBusy && i1.CurrentTxn == "txn-A" && i2.State == sterad.TerminalBusy && i2.CurrentTxn == "txn-B"
	})
	// One transaction at a time per terminal.
	if _, err := s1.ReadCard(context.Background(), saleRequest("txn-C"), noPersist); !errors.Is(err, sterad.ErrTerminalBusy) {
		t.Fatalf("second ReadCard at FRONT001 = %v", err)
	}
	// The handheld's customer is quicker.
	ft2.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-B", Entry: "ctls", PAN: "5555555555554444", Expiry: "3012"})
	c2, err := await(t, r2)
	if err != nil || c2.PAN.Reveal() != "5555555555554444" {
		t.Fatalf("HAND0001 ReadCard = %v, %v", c2, err)
	}
	if st := s1.Info().State; st != sterad.TerminalBusy {
		t.Fatalf("FRONT001 %s while its customer still looks for the card", st)
	}
	ft1.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-A", Entry: "chip", PAN: testPAN, Expiry: "3012"})
	c1, err := await(t, r1)
	if err != nil || c1.PAN.Reveal() != testPAN {
		t.Fatalf("FRONT001 ReadCard = %v, %v", c1, err)
	}
	mu.Lock()
	if persisted["txn-A"] != testPAN || persisted["txn-B"] != "5555555555554444" {
		t.Fatalf("persisted %v", persisted)
	}
	mu.Unlock()

	outcome := func(s interface {
		ShowOutcome(context.Context, sterad.TerminalOutcome, func(sterad.TerminalResult) error) (sterad.TerminalResult, error)
	}, txn string) <-chan result[sterad.TerminalResult] {
		return async(func() (sterad.TerminalResult, error) {
			return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: txn, Status: "approved", Code: "00"}, nil)
		})
	}
	o1, o2 := outcome(s1, "txn-A"), outcome(s2, "txn-B")
	ft1.expect(protocol.TypeOutcome)
	ft2.expect(protocol.TypeOutcome)
	ft1.send(protocol.TypeResult, protocol.Result{TxnID: "txn-A", Status: "done", Printed: true})
	ft2.send(protocol.TypeResult, protocol.Result{TxnID: "txn-B", Status: "done", Printed: false})
	if r, err := await(t, o1); err != nil || r.TxnID != "txn-A" || !r.Printed {
		t.Fatalf("FRONT001 ShowOutcome = %+v, %v", r, err)
	}
	if r, err := await(t, o2); err != nil || r.TxnID != "txn-B" || r.Printed {
		t.Fatalf("HAND0001 ShowOutcome = %+v, %v", r, err)
	}

	// The handheld unplugged: the fixed terminal carries on.
	b2.setMissing(true)
	ft2.close()
	eventually(t, "HAND0001 offline", func() bool { return s2.Info().State == sterad.TerminalOffline })
	if st := s1.Info().State; st != sterad.TerminalReady {
		t.Fatalf("FRONT001 %s after the handheld was unplugged", st)
	}
	q := async(func() (sterad.TerminalTxnState, error) { return s1.Query(context.Background(), "txn-A") })
	ft1.expect(protocol.TypeStatusQuery)
	ft1.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-A", State: protocol.StateDone})
	if _, err := await(t, q); err != nil {
		t.Fatal(err)
	}
}

// Eight sessions against eight simulated terminals, half on USB, run
// sales at the same time (with -race: no state shared between sessions).
func TestEightTerminalsSalesInParallel(t *testing.T) {
	const n, sales = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("TERM%04d", i+1)
		kind := sterad.KindFixed
		if i%2 == 1 {
			kind = sterad.KindHandheld
		}
		p := newSimPort(t, terminal.Config{ID: id, Kind: kind}, i%2 == 1)
		s := startSession(t, simSessionConfig(p, id, kind))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if err := s.WaitReady(ctx); err != nil {
				errs <- err
				return
			}
			for j := range sales {
				if _, err := sale(ctx, s, fmt.Sprintf("%s-%d", id, j)); err != nil {
					errs <- fmt.Errorf("%s sale %d: %w", id, j, err)
					return
				}
			}
			if info := s.Info(); info.ID != id || info.Kind != kind || info.State != sterad.TerminalReady {
				errs <- fmt.Errorf("%s: Info %+v", id, info)
			}
			if slips := p.term.Slips(); len(slips) != sales {
				errs <- fmt.Errorf("%s: %d slips, want %d", id, len(slips), sales)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
