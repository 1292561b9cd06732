package gateway_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sterad/sterad"
)

// fakeTerminal plays the terminal side of the flows: each ReadCard takes
// the next scripted action.
type fakeTerminal struct {
	id string

	mu       sync.Mutex
	actions  []func(req sterad.CardRequest, persist func(*sterad.Card) error) (*sterad.Card, error)
	outcomes []sterad.TerminalOutcome
	result   sterad.TerminalResult
	state    string
	release  chan struct{} // when set, ReadCard waits for it
	showErr  error         // returned by the next ShowOutcome (a link failure)
	noResult bool          // every ShowOutcome fails with showErr: the terminal never sends RESULT
	shows    int           // OUTCOMEs sent
	query    string        // STATUS_RESP state (default unknown)
	cancels  []string      // CANCELs sent
	gone     bool          // WaitReady fails: the terminal does not come back
}

func newFakeTerminal(id string) *fakeTerminal {
	return &fakeTerminal{id: id, result: sterad.TerminalResult{Status: "done", Printed: true}, state: sterad.TerminalReady}
}

func (f *fakeTerminal) Info() sterad.TerminalInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sterad.TerminalInfo{ID: f.id, Kind: sterad.KindFixed, Transport: "serial", State: f.state}
}

func (f *fakeTerminal) present(c sterad.Card) {
	f.script(func(req sterad.CardRequest, persist func(*sterad.Card) error) (*sterad.Card, error) {
		card := c
		if err := persist(&card); err != nil {
			return nil, err
		}
		return &card, nil
	})
}

func (f *fakeTerminal) script(a func(sterad.CardRequest, func(*sterad.Card) error) (*sterad.Card, error)) {
	f.mu.Lock()
	f.actions = append(f.actions, a)
	f.mu.Unlock()
}

func (f *fakeTerminal) ReadCard(ctx context.Context, req sterad.CardRequest, persist func(*sterad.Card) error) (*sterad.Card, error) {
	f.mu.Lock()
	rel := f.release
	var a func(sterad.CardRequest, func(*sterad.Card) error) (*sterad.Card, error)
	if len(f.actions) > 0 {
		a, f.actions = f.actions[0], f.actions[1:]
	}
	f.mu.Unlock()
	if rel != nil {
		select {
		case <-rel:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if a == nil {
		return nil, sterad.ErrTerminalTimeout
	}
	return a(req, persist)
}

func (f *fakeTerminal) ShowOutcome(ctx context.Context, o sterad.TerminalOutcome, persist func(sterad.TerminalResult) error) (sterad.TerminalResult, error) {
	f.mu.Lock()
	f.shows++
	if err := f.showErr; err != nil {
		if !f.noResult {
			f.showErr = nil
		}
		f.mu.Unlock()
		return sterad.TerminalResult{}, err
	}
	f.outcomes = append(f.outcomes, o)
	r := f.result
	f.mu.Unlock()
	r.TxnID = o.TxnID
	return r, persist(r)
}

func (f *fakeTerminal) Cancel(ctx context.Context, id string) (bool, string, error) {
	f.mu.Lock()
	f.cancels = append(f.cancels, id)
	f.mu.Unlock()
	return true, "", nil
}

func (f *fakeTerminal) Query(ctx context.Context, id string) (sterad.TerminalTxnState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := f.query
	if state == "" {
		state = "unknown"
	}
	return sterad.TerminalTxnState{TxnID: id, State: state}, nil
}

func (f *fakeTerminal) WaitReady(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return sterad.ErrTerminalOffline
	}
	return nil
}

func (f *fakeTerminal) shown() []sterad.TerminalOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sterad.TerminalOutcome(nil), f.outcomes...)
}

var chipVisa = sterad.Card{PAN: "4111111111111111", Expiry: sterad.Expiry{Year: 2028, Month: 12}, Entry: sterad.EntryChip,
	Brand: sterad.BrandVisa, ICC: sterad.Sensitive{0x9f, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}}

func TestCardPresentSale(t *testing.T) {
	h := newHarness(t)
	h.term.present(chipVisa)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusApproved || tx.Entry != sterad.EntryChip || tx.TerminalResult != "done" || !tx.Printed || tx.Step != sterad.StepDone {
		t.Fatalf("sale: %+v", tx)
	}
	m := h.host.messages()[0]
	if m.MTI != "0200" || m.Entry.POSEntryMode() != "051" || m.Condition != "00" || m.TerminalID != "FRONT001" || len(m.ICC) == 0 {
		t.Fatalf("0200: %+v", m)
	}
	out := h.term.shown()
	if len(out) != 1 || out[0].Status != "approved" || out[0].AuthCode != tx.AuthCode || out[0].MaskedPAN != "411111******1111" {
		t.Fatalf("outcome: %+v", out)
	}
	if !strings.Contains(strings.Join(out[0].Lines, "\n"), "12,800") {
		t.Fatalf("slip lines: %q", out[0].Lines)
	}
	// The journal shows the steps in order.
	var steps []string
	for _, e := range tx.Events {
		steps = append(steps, string(e.Step))
	}
	if got := strings.Join(steps, " "); got != "reading card_read sent outcome done" {
		t.Fatalf("journal steps: %s", got)
	}
}

func TestCustomerCancelsAtTerminal(t *testing.T) {
	h := newHarness(t)
	h.term.script(func(sterad.CardRequest, func(*sterad.Card) error) (*sterad.Card, error) {
		return nil, sterad.ErrCustomerCancelled
	})
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusCancelled || len(h.host.messages()) != 0 {
		t.Fatalf("cancel: %s, %d messages", tx.Status, len(h.host.messages()))
	}
}

func TestBusyTerminal(t *testing.T) {
	h := newHarness(t)
	rel := make(chan struct{})
	h.term.mu.Lock()
	h.term.release = rel
	h.term.mu.Unlock()
	h.term.present(chipVisa)
	first, _, err := h.gw.Submit(context.Background(), sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "100"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.submit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "200"})
	if sterad.ErrorCode(err) != "terminal_busy" || sterad.ErrorKind(err) != sterad.EConflict {
		t.Fatalf("second request: %v", err)
	}
	if info := h.gw.Terminals()[0]; info.State != sterad.TerminalBusy || info.CurrentTxn != first.ID {
		t.Fatalf("terminal info: %+v", info)
	}
	close(rel)
	tx, _ := h.gw.Wait(context.Background(), first.ID)
	if tx.Status != sterad.StatusApproved {
		t.Fatalf("first: %s", tx.Status)
	}
}

// A customer who cancels at the terminal after the approval is not charged.
func TestCancelAfterApprovalIsReversed(t *testing.T) {
	h := newHarness(t)
	h.term.present(chipVisa)
	h.term.mu.Lock()
	h.term.result = sterad.TerminalResult{Status: "cancelled", Reason: "customer walked away"}
	h.term.mu.Unlock()
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusReversed {
		t.Fatalf("status %s", tx.Status)
	}
	msgs := h.host.messages()
	if got := strings.Join(mtis(msgs), " "); got != "0200 0420" || msgs[1].ReversalReason != "CU" {
		t.Fatalf("messages %s", got)
	}
}

// copyDir copies a data directory as it is on disk.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode())
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A decline at the terminal is shown, printed and its RESULT journaled.
func TestCardPresentDecline(t *testing.T) {
	h := newHarness(t)
	c := chipVisa
	c.PAN = "4000000000009995"
	h.term.present(c)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "8000"})
	if tx.Status != sterad.StatusDeclined || tx.ResponseCode != "51" || tx.TerminalResult != "done" || tx.Step != sterad.StepDone {
		t.Fatalf("decline: %s %s %q %s", tx.Status, tx.ResponseCode, tx.TerminalResult, tx.Step)
	}
	out := h.term.shown()
	if len(out) != 1 || out[0].Status != "declined" || out[0].Code != "51" {
		t.Fatalf("outcome %+v", out)
	}
}

// The crash test's bug B: the CARD reached sterad but its ACK was lost, so
// after the reconnect the terminal still waits for a card and never shows
// the outcome. The terminal is told to cancel (or it stays busy), and the
// guest is not charged: a stand-in is withdrawn before its advice goes, an
// online approval is reversed.
func TestTerminalNeverShowedTheOutcome(t *testing.T) {
	for _, offline := range []bool{true, false} {
		h := newHarness(t)
		h.term.mu.Lock()
		h.term.showErr, h.term.query = sterad.ErrLinkFailed, "waiting_card"
		h.term.mu.Unlock()
		h.host.online.Store(!offline)
		tx := presentSale(h, "7000")
		if tx.Status != sterad.StatusReversed || tx.TerminalResult != "lost" {
			t.Fatalf("offline=%v: %s %q %q", offline, tx.Status, tx.TerminalResult, tx.Reason)
		}
		if len(h.term.cancels) != 1 || h.term.cancels[0] != tx.ID {
			t.Fatalf("offline=%v: no CANCEL sent: %v", offline, h.term.cancels)
		}
		h.host.online.Store(true)
		h.gw.Flush(context.Background())
		got := strings.Join(mtis(h.host.messages()), " ")
		if offline && got != "" || !offline && got != "0200 0420" {
			t.Fatalf("offline=%v: the host saw %q", offline, got)
		}
		if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
			t.Fatalf("offline=%v: queue %+v", offline, q)
		}
	}
}
