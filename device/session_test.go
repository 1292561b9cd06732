package device_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

const (
	testPAN    = "4111111111111111"
	testTrack2 = "4111111111111111=30121010000000000000"
)

func saleRequest(txnID string) sterad.CardRequest {
	return sterad.CardRequest{
		TxnID:  txnID,
		Op:     sterad.OpSale,
		Amount: sterad.NewAmount(12800, sterad.JPY),
		Entry:  []sterad.EntryMode{sterad.EntryChip, sterad.EntryContactless, sterad.EntrySwipe},
		Text:   "Please present your card",
	}
}

func noPersist(*sterad.Card) error { return nil }

func TestSessionHelloAndInfo(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	ft := b.next()
	waitReady(t, s)

	var h protocol.Hello
	select {
	case h = <-ft.hellos:
	default:
		t.Fatal("the terminal saw no HELLO")
	}
	if h != (protocol.Hello{Proto: 1, GatewayID: "gw-test", BootID: "gw-boot-1"}) {
		t.Fatalf("HELLO = %+v", h)
	}
	info := s.Info()
	want := sterad.TerminalInfo{
		ID: testID, Kind: sterad.KindFixed, Transport: "serial", Path: testPort,
		State: sterad.TerminalReady, Model: "ST-100", Firmware: "1.2.3",
		Caps: []string{"chip", "ctls", "swipe", "printer"}, BootID: "term-boot-1",
	}
	if info.LastSeen.IsZero() || time.Since(info.LastSeen) > time.Minute {
		t.Errorf("LastSeen = %v", info.LastSeen)
	}
	info.LastSeen = time.Time{}
	if fmt.Sprint(info) != fmt.Sprint(want) {
		t.Fatalf("Info =\n %+v\nwant\n %+v", info, want)
	}
}

func TestSessionHelloRespKindAndBusy(t *testing.T) {
	b := newBench(t)
	txn := "txn-before-restart"
	b.setResp(func(r *protocol.HelloResp) {
		r.Kind = sterad.KindHandheld
		r.Busy = true
		r.CurrentTxn = &txn
	})
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	info := s.Info()
	if info.Kind != sterad.KindHandheld || info.State != sterad.TerminalBusy || info.CurrentTxn != txn {
		t.Fatalf("Info = %+v, want handheld, busy with %s", info, txn)
	}
	// The STATUS_RESP saying it is done frees the terminal.
	res := async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), txn) })
	var q protocol.TxnRef
	ft.expectMsg(protocol.TypeStatusQuery, &q)
	ft.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: txn, State: protocol.StateDone,
		Result: &protocol.Result{TxnID: txn, Status: "cancelled"}})
	if _, err := await(t, res); err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.State != sterad.TerminalReady || info.CurrentTxn != "" {
		t.Fatalf("after STATUS_RESP done: %+v", info)
	}

	// Busy again after a reconnect; a new transaction the terminal
	// accepts (PROGRESS) shows the old one is over.
	b.setResp(func(r *protocol.HelloResp) { r.Busy, r.CurrentTxn = true, &txn })
	ft.close()
	ft = b.next()
	waitReady(t, s)
	if info := s.Info(); info.State != sterad.TerminalBusy {
		t.Fatalf("Info after reconnect = %+v", info)
	}
	read := async(func() (*sterad.Card, error) {
		return s.ReadCard(context.Background(), saleRequest("txn-new"), noPersist)
	})
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-new", Code: protocol.ProgressPresentCard})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-new", Status: "cancelled"})
	if _, err := await(t, read); !errors.Is(err, sterad.ErrCustomerCancelled) {
		t.Fatal(err)
	}
	if info := s.Info(); info.State != sterad.TerminalReady || info.CurrentTxn != "" {
		t.Fatalf("after a new transaction: %+v", info)
	}
}

func TestSessionRejectsWrongTerminal(t *testing.T) {
	for name, tc := range map[string]struct {
		bad  func(*protocol.HelloResp)
		want string
	}{
		"terminal_id": {func(r *protocol.HelloResp) { r.TerminalID = "BAR002" }, `says it is "BAR002", configured as "FRONT001"`},
		"proto":       {func(r *protocol.HelloResp) { r.Proto = 2 }, "speaks SFL proto 2, want 1"},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBench(t)
			b.setResp(tc.bad)
			logs := &logBuffer{}
			s := startSession(t, testConfig(b, logs))
			// It keeps retrying, with the reason in Info, offline.
			eventually(t, "three attempts", func() bool { return b.opens.Load() >= 3 })
			info := s.Info()
			if info.State != sterad.TerminalOffline || !strings.Contains(info.LastError, tc.want) || !strings.Contains(info.LastError, testPort) {
				t.Fatalf("Info = %+v, want offline with %q", info, tc.want)
			}
			if _, err := s.ReadCard(context.Background(), saleRequest("t1"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
				t.Fatalf("ReadCard = %v, want ErrTerminalOffline", err)
			}
			// Logged at error level once, however many retries.
			if n := logs.count("level=ERROR"); n != 1 {
				t.Errorf("%d error lines, want 1:\n%s", n, logs)
			}
			// Fixed: the next attempt succeeds.
			b.setResp(func(r *protocol.HelloResp) {
				*r = protocol.HelloResp{Proto: 1, TerminalID: testID, BootID: "term-boot-1"}
			})
			waitReady(t, s)
			if info := s.Info(); info.State != sterad.TerminalReady || info.LastError != "" {
				t.Fatalf("Info after the fix = %+v", info)
			}
		})
	}
}

func TestSessionSale(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	ft := b.next()
	waitReady(t, s)

	order := &orderLog{}
	var cardAcked sync.WaitGroup
	cardAcked.Add(1)
	var persisted *sterad.Card
	persist := func(c *sterad.Card) error {
		order.add("gateway persisted the card")
		persisted = c
		return nil
	}
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), persist) })

	var rc protocol.ReadCard
	ft.expectMsg(protocol.TypeReadCard, &rc)
	wantRC := protocol.ReadCard{TxnID: "txn-1", Op: "sale", Amount: "12800", Currency: "JPY",
		Entry: []string{"chip", "ctls", "swipe"}, Text: "Please present your card"}
	if fmt.Sprint(rc) != fmt.Sprint(wantRC) {
		t.Fatalf("READ_CARD = %+v, want %+v", rc, wantRC)
	}
	eventually(t, "state busy", func() bool { return s.Info().State == sterad.TerminalBusy })
	if info := s.Info(); info.CurrentTxn != "txn-1" {
		t.Fatalf("CurrentTxn = %q", info.CurrentTxn)
	}
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard, TimeoutS: 60})
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "chip", PAN: testPAN, Expiry: "3012", ICC: "9f2608aabbccddeeff0011"})
	order.add("terminal saw the ACK")

	card, err := await(t, res)
	if err != nil {
		t.Fatalf("ReadCard: %v", err)
	}
	if got := order.list(); !slices.Equal(got, []string{"gateway persisted the card", "terminal saw the ACK"}) {
		t.Fatalf("order = %v: the card must be persisted before the ACK", got)
	}
	if card != persisted {
		t.Error("ReadCard returned another card than the one persisted")
	}
	if card.PAN.Reveal() != testPAN || card.Expiry != (sterad.Expiry{Year: 2030, Month: 12}) ||
		card.Entry != sterad.EntryChip || card.Brand != sterad.BrandVisa {
		t.Fatalf("card = %v %v %v %v", card.PAN, card.Expiry, card.Entry, card.Brand)
	}
	if fmt.Sprintf("%x", []byte(card.ICC)) != "9f2608aabbccddeeff0011" || card.Track2 != nil {
		t.Fatal("chip data not decoded from hex, or track 2 invented")
	}

	// OUTCOME → PRINTING → RESULT, the RESULT persisted before its ACK.
	outRes := async(func() (sterad.TerminalResult, error) {
		return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{
			TxnID: "txn-1", Status: "approved", Code: "00", AuthCode: "A12345", RRN: "000000000123",
			Amount: sterad.NewAmount(12800, sterad.JPY), MaskedPAN: card.PAN.Masked(), Lines: []string{"SALE", "JPY 12,800"},
		}, func(r sterad.TerminalResult) error {
			order.add("gateway persisted the result " + r.Status)
			return nil
		})
	})
	var om protocol.OutcomeMsg
	ft.expectMsg(protocol.TypeOutcome, &om)
	wantOM := protocol.OutcomeMsg{TxnID: "txn-1", Status: "approved", Code: "00", AuthCode: "A12345", RRN: "000000000123",
		Amount: "12800", Currency: "JPY", MaskedPAN: "411111******1111", Lines: []string{"SALE", "JPY 12,800"}}
	if fmt.Sprint(om) != fmt.Sprint(wantOM) {
		t.Fatalf("OUTCOME = %+v, want %+v", om, wantOM)
	}
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPrinting, TimeoutS: 30})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "done", Printed: true})
	order.add("terminal saw the RESULT's ACK")
	r, err := await(t, outRes)
	if err != nil {
		t.Fatalf("ShowOutcome: %v", err)
	}
	if r != (sterad.TerminalResult{TxnID: "txn-1", Status: "done", Printed: true}) {
		t.Fatalf("result = %+v", r)
	}
	if got := order.list()[2:]; !slices.Equal(got, []string{"gateway persisted the result done", "terminal saw the RESULT's ACK"}) {
		t.Fatalf("order = %v", got)
	}
	if info := s.Info(); info.State != sterad.TerminalReady || info.CurrentTxn != "" {
		t.Fatalf("after the sale: %+v", info)
	}
	if l := logs.String(); strings.Contains(l, testPAN) || strings.Contains(l, "aabbccdd") || strings.Contains(l, "12,800") {
		t.Fatalf("logs show payload data:\n%s", l)
	}
}

func TestSessionSwipeCardBrandFromIIN(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-2", Entry: "swipe", PAN: "3530111333300000", Expiry: "2801", Track2: "3530111333300000=28011010000000000000"})
	card, err := await(t, res)
	if err != nil {
		t.Fatal(err)
	}
	if card.Brand != sterad.BrandJCB || card.Entry != sterad.EntrySwipe || string(card.Track2) != "3530111333300000=28011010000000000000" {
		t.Fatalf("card = %v %v track2 set %v", card.Brand, card.Entry, card.Track2 != nil)
	}
	if s := fmt.Sprint(card.Track2); s != "[redacted]" {
		t.Fatalf("track 2 prints as %q", s)
	}
}

func TestSessionPersistErrorWithholdsACK(t *testing.T) {
	b := newBench(t)
	b.termOpts.T2 = 100 * time.Millisecond
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)

	var mu sync.Mutex
	calls := 0
	persist := func(*sterad.Card) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return errors.New("journal: disk full")
		}
		return nil
	}
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), persist) })
	ft.expect(protocol.TypeReadCard)
	// The first CARD is not acknowledged: the terminal's link resends it
	// after T2, and Send returns once the second copy is acknowledged.
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "ctls", PAN: testPAN, Expiry: "3012", ICC: "9f26"})
	card, err := await(t, res)
	if err != nil {
		t.Fatalf("ReadCard: %v", err)
	}
	if card.PAN.Reveal() != testPAN {
		t.Fatal("wrong card")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("persist called %d times, want 2", calls)
	}
	if st := ft.link.Stats(); st.Retransmits < 1 {
		t.Fatalf("terminal stats %+v: want the CARD retransmitted", st)
	}
}

func TestSessionPersistKeepsFailing(t *testing.T) {
	b := newBench(t)
	b.termOpts.T2 = 50 * time.Millisecond
	b.keepLine = true
	cfg := testConfig(b, &logBuffer{})
	cfg.T3 = 300 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) {
		return s.ReadCard(context.Background(), saleRequest("txn-1"), func(*sterad.Card) error { return errors.New("journal: disk full") })
	})
	ft.expect(protocol.TypeReadCard)
	if err := ft.trySend(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "ctls", PAN: testPAN, Expiry: "3012"}); !errors.Is(err, protocol.ErrLinkFailed) {
		t.Fatalf("terminal Send = %v: the CARD must never be acknowledged", err)
	}
	_, err := await(t, res)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ReadCard = %v, want the persist error", err)
	}
}

func TestSessionCustomerCancel(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled", Reason: "CUSTOMER"})
	if _, err := await(t, res); !errors.Is(err, sterad.ErrCustomerCancelled) {
		t.Fatalf("ReadCard = %v, want ErrCustomerCancelled", err)
	}
	if info := s.Info(); info.State != sterad.TerminalReady {
		t.Fatalf("state %s after the cancel", info.State)
	}
}

func TestSessionResultError(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "error", Reason: "CHIP_READ_FAILED"})
	_, err := await(t, res)
	var e *sterad.Error
	if !errors.As(err, &e) || e.Code != "terminal_error" || !strings.Contains(e.Message, "CHIP_READ_FAILED") {
		t.Fatalf("ReadCard = %v, want terminal_error with the reason", err)
	}
}

func TestSessionBusy(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)

	// A second call while a transaction runs fails at once, locally.
	first := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist); !errors.Is(err, sterad.ErrTerminalBusy) {
		t.Fatalf("second ReadCard = %v, want ErrTerminalBusy", err)
	}
	if _, err := s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-2"}, nil); !errors.Is(err, sterad.ErrTerminalBusy) {
		t.Fatalf("ShowOutcome during ReadCard = %v, want ErrTerminalBusy", err)
	}
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled"})
	if _, err := await(t, first); !errors.Is(err, sterad.ErrCustomerCancelled) {
		t.Fatal(err)
	}

	// The terminal itself is busy (a transaction the gateway forgot).
	for code, check := range map[string]func(error) bool{
		protocol.ErrCodeBusy: func(err error) bool { return errors.Is(err, sterad.ErrTerminalBusy) },
		protocol.ErrCodeTxnIDReused: func(err error) bool {
			var e *sterad.Error
			return errors.As(err, &e) && e.Code == "terminal_txn_id_reused" && e.Kind == sterad.EConflict
		},
		protocol.ErrCodeTerminalFault: func(err error) bool {
			var e *sterad.Error
			return errors.As(err, &e) && e.Code == "terminal_fault"
		},
	} {
		res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-3"), noPersist) })
		ft.expect(protocol.TypeReadCard)
		ft.send(protocol.TypeError, protocol.ErrorMsg{TxnID: "txn-3", Code: code})
		if _, err := await(t, res); !check(err) {
			t.Errorf("ERROR %s: ReadCard = %v", code, err)
		}
	}
}

func TestSessionIgnoresOtherTransactions(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "old", Code: protocol.ProgressPresentCard})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "old", Status: "cancelled"})
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "old", Entry: "chip", PAN: "5555555555554444", Expiry: "3012"})
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "chip", PAN: testPAN, Expiry: "3012"})
	card, err := await(t, res)
	if err != nil || card.PAN.Reveal() != testPAN {
		t.Fatalf("ReadCard = %v, %v", card, err)
	}
	if n := logs.count("for no waiting call"); n != 3 {
		t.Errorf("%d 'no waiting call' log lines, want 3", n)
	}
	if strings.Contains(logs.String(), "5555555555554444") {
		t.Fatal("the ignored card reached the log")
	}
}

func TestSessionBadCard(t *testing.T) {
	for name, cd := range map[string]protocol.CardData{
		"letters in PAN": {TxnID: "txn-1", Entry: "chip", PAN: "4111x11111111111", Expiry: "3012"},
		"bad expiry":     {TxnID: "txn-1", Entry: "chip", PAN: testPAN, Expiry: "3013"},
		"bad icc":        {TxnID: "txn-1", Entry: "chip", PAN: testPAN, Expiry: "3012", ICC: "zz"},
		"bad entry":      {TxnID: "txn-1", Entry: "telepathy", PAN: testPAN, Expiry: "3012"},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBench(t)
			logs := &logBuffer{}
			s := startSession(t, testConfig(b, logs))
			ft := b.next()
			waitReady(t, s)
			persisted := false
			res := async(func() (*sterad.Card, error) {
				return s.ReadCard(context.Background(), saleRequest("txn-1"), func(*sterad.Card) error { persisted = true; return nil })
			})
			ft.expect(protocol.TypeReadCard)
			ft.send(protocol.TypeCard, cd) // acknowledged: it is a valid frame
			var c protocol.TxnRef
			ft.expectMsg(protocol.TypeCancel, &c)
			if c.TxnID != "txn-1" {
				t.Fatalf("CANCEL for %q", c.TxnID)
			}
			_, err := await(t, res)
			var e *sterad.Error
			if !errors.As(err, &e) || e.Kind != sterad.EInternal || e.Code != "terminal_bad_card" {
				t.Fatalf("ReadCard = %v, want terminal_bad_card", err)
			}
			if persisted {
				t.Fatal("an unusable card was persisted")
			}
			if strings.Contains(err.Error(), "4111") || strings.Contains(logs.String(), "4111") {
				t.Fatal("card data in the error or the log")
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		b := newBench(t)
		s := startSession(t, testConfig(b, &logBuffer{}))
		ft := b.next()
		waitReady(t, s)
		res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
		ft.expect(protocol.TypeReadCard)
		if err := ft.link.Send(context.Background(), protocol.TypeCard, []byte(`{"pan":4111`)); err != nil {
			t.Fatal(err)
		}
		ft.expect(protocol.TypeCancel)
		if _, err := await(t, res); sterad.ErrorCode(err) != "terminal_bad_card" {
			t.Fatalf("ReadCard = %v", err)
		}
	})
}

func TestSessionT4CancelsAndTimesOut(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T4 = 150 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)

	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})
	var c protocol.TxnRef
	ft.expectMsg(protocol.TypeCancel, &c) // T4 passed with no card
	if c.TxnID != "txn-1" {
		t.Fatalf("CANCEL for %q", c.TxnID)
	}
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-1", Accepted: true})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled", Reason: "TIMEOUT"})
	if _, err := await(t, res); !errors.Is(err, sterad.ErrTerminalTimeout) {
		t.Fatalf("ReadCard = %v, want ErrTerminalTimeout", err)
	}
}

func TestSessionT4ExtendedByProgress(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T4 = 50 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	sent := time.Now()
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressEnterPIN, TimeoutS: 1})
	ft.expect(protocol.TypeCancel)
	if d := time.Since(sent); d < time.Second {
		t.Fatalf("CANCEL after %v: timeout_s=1 must extend T4", d)
	}
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-1", Accepted: true})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled"})
	if _, err := await(t, res); !errors.Is(err, sterad.ErrTerminalTimeout) {
		t.Fatalf("ReadCard = %v", err)
	}
}

func TestSessionT4TooLate(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T4 = 150 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})
	ft.expect(protocol.TypeCancel)
	// The card was read as the CANCEL crossed it.
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-1", Accepted: false, Reason: "TOO_LATE"})
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "ctls", PAN: testPAN, Expiry: "3012"})
	card, err := await(t, res)
	if err != nil || card.PAN.Reveal() != testPAN {
		t.Fatalf("ReadCard = %v, %v: want the card after TOO_LATE", card, err)
	}
}

func TestSessionContextCancelSendsCancel(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := async(func() (*sterad.Card, error) { return s.ReadCard(ctx, saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})
	cancel()
	ft.expect(protocol.TypeCancel)
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-1", Accepted: true})
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled"})
	if _, err := await(t, res); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadCard = %v, want context.Canceled", err)
	}
}

func TestSessionT3Silence(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T3 = 150 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard) // acknowledged by the link, then silence
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ReadCard = %v, want ErrLinkFailed", err)
	}
	if st := s.Info().State; st != sterad.TerminalReady {
		t.Fatalf("state %s: T3 fails the transaction, not the link", st)
	}
}

func TestSessionShowOutcomeT3(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T3 = 150 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	res := async(func() (sterad.TerminalResult, error) {
		return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-1", Status: "declined", Code: "05"}, nil)
	})
	ft.expect(protocol.TypeOutcome)
	// PRINTING with timeout_s extends the wait beyond T3: ShowOutcome is
	// still waiting well after T3 (a bounded check of an absence).
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPrinting, TimeoutS: 2})
	select {
	case r := <-res:
		t.Fatalf("ShowOutcome returned %+v, %v while printing", r.v, r.err)
	case <-time.After(3 * cfg.T3):
	}
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "done", Printed: true})
	if r, err := await(t, res); err != nil || r.Status != "done" {
		t.Fatalf("ShowOutcome = %+v, %v", r, err)
	}
	// No answer at all: ErrLinkFailed after T3.
	res = async(func() (sterad.TerminalResult, error) {
		return s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-2", Status: "approved"}, nil)
	})
	ft.expect(protocol.TypeOutcome)
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ShowOutcome = %v, want ErrLinkFailed", err)
	}
}

func TestSessionCancelCall(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	read := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})

	type cancelResult struct {
		accepted bool
		reason   string
	}
	cancelled := async(func() (cancelResult, error) {
		ok, reason, err := s.Cancel(context.Background(), "txn-1")
		return cancelResult{ok, reason}, err
	})
	ft.expect(protocol.TypeCancel)
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-1", Accepted: true})
	if r, err := await(t, cancelled); err != nil || !r.accepted {
		t.Fatalf("Cancel = %+v, %v", r, err)
	}
	ft.send(protocol.TypeResult, protocol.Result{TxnID: "txn-1", Status: "cancelled"})
	if _, err := await(t, read); !errors.Is(err, sterad.ErrCustomerCancelled) {
		t.Fatalf("ReadCard = %v, want ErrCustomerCancelled", err)
	}

	// Refused: too late.
	cancelled = async(func() (cancelResult, error) {
		ok, reason, err := s.Cancel(context.Background(), "txn-0")
		return cancelResult{ok, reason}, err
	})
	ft.expect(protocol.TypeCancel)
	ft.send(protocol.TypeCancelResp, protocol.CancelResp{TxnID: "txn-0", Accepted: false, Reason: "TOO_LATE"})
	if r, err := await(t, cancelled); err != nil || r.accepted || r.reason != "TOO_LATE" {
		t.Fatalf("Cancel = %+v, %v", r, err)
	}
}

func TestSessionQuery(t *testing.T) {
	b := newBench(t)
	cfg := testConfig(b, &logBuffer{})
	cfg.T3 = 500 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)

	res := async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-9") })
	var q protocol.TxnRef
	ft.expectMsg(protocol.TypeStatusQuery, &q)
	if q.TxnID != "txn-9" {
		t.Fatalf("STATUS_QUERY for %q", q.TxnID)
	}
	ft.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "other", State: protocol.StateWaitingCard}) // not ours
	ft.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-9", State: protocol.StateDone,
		Result: &protocol.Result{TxnID: "txn-9", Status: "done", Printed: true}})
	st, err := await(t, res)
	if err != nil {
		t.Fatal(err)
	}
	if st.TxnID != "txn-9" || st.State != "done" || st.Result == nil || *st.Result != (sterad.TerminalResult{TxnID: "txn-9", Status: "done", Printed: true}) {
		t.Fatalf("Query = %+v", st)
	}

	// card_sent without a result.
	res = async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-8") })
	ft.expect(protocol.TypeStatusQuery)
	ft.send(protocol.TypeStatusResp, protocol.StatusResp{TxnID: "txn-8", State: protocol.StateCardSent})
	if st, err := await(t, res); err != nil || st.State != "card_sent" || st.Result != nil {
		t.Fatalf("Query = %+v, %v", st, err)
	}

	// No answer within T3.
	res = async(func() (sterad.TerminalTxnState, error) { return s.Query(context.Background(), "txn-7") })
	ft.expect(protocol.TypeStatusQuery)
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("unanswered Query = %v, want ErrLinkFailed", err)
	}
}

func TestSessionKeepaliveAndReconnect(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	cfg := testConfig(b, logs)
	cfg.PingInterval = 30 * time.Millisecond
	cfg.T3 = 500 * time.Millisecond
	type reconnect struct {
		info        sterad.TerminalInfo
		bootChanged bool
	}
	reconnects := make(chan reconnect, 4)
	cfg.OnReconnect = func(info sterad.TerminalInfo, bootChanged bool) { reconnects <- reconnect{info, bootChanged} }
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)

	// Idle: PING every interval, answered.
	eventually(t, "three PINGs", func() bool { return ft.pings.Load() >= 3 })
	if st := s.Info().State; st != sterad.TerminalReady {
		t.Fatalf("state %s while pings are answered", st)
	}

	// The terminal stops answering PONG (it still ACKs): link failure,
	// offline. Keep the device away so the offline state can be seen.
	b.setMissing(true)
	ft.noPong.Store(true)
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	// LastError says why: the PING unanswered (T2), then the link failed
	// (no PONG within T3), or, once the reopen failed, the port is gone;
	// the log keeps the link failure.
	if le := s.Info().LastError; !strings.Contains(le, "PING") && !strings.Contains(le, "PONG") && !strings.Contains(le, testPort) {
		t.Fatalf("LastError = %q", le)
	}
	eventually(t, "the link failure logged", func() bool { return logs.count("no PONG") > 0 })
	// Calls fail at once while offline.
	start := time.Now()
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while offline = %v", err)
	}
	if _, err := s.Query(context.Background(), "txn-1"); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("Query while offline = %v", err)
	}
	if _, _, err := s.Cancel(context.Background(), "txn-1"); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("Cancel while offline = %v", err)
	}
	if _, err := s.ShowOutcome(context.Background(), sterad.TerminalOutcome{TxnID: "txn-1"}, nil); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ShowOutcome while offline = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("offline calls took %v", d)
	}
	select {
	case r := <-reconnects:
		t.Fatalf("OnReconnect before any reconnect: %+v", r)
	default:
	}

	// The terminal comes back, restarted: new boot id.
	b.setResp(func(r *protocol.HelloResp) { r.BootID = "term-boot-2" })
	b.setMissing(false)
	ft2 := b.next()
	waitReady(t, s)
	select {
	case r := <-reconnects:
		if !r.bootChanged || r.info.BootID != "term-boot-2" || r.info.State == sterad.TerminalOffline {
			t.Fatalf("OnReconnect(%+v, %v)", r.info, r.bootChanged)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	eventually(t, "PINGs on the new link", func() bool { return ft2.pings.Load() >= 1 })

	// The same terminal again after a line fault: boot id unchanged.
	ft2.close()
	b.next()
	select {
	case r := <-reconnects:
		if r.bootChanged {
			t.Fatal("bootChanged after a reconnect to the same boot")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
}

func TestSessionDeadLinePINGUnacknowledged(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	cfg := testConfig(b, logs)
	cfg.PingInterval = 30 * time.Millisecond
	cfg.Link.T2 = 50 * time.Millisecond
	s := startSession(t, cfg)
	ft := b.next()
	waitReady(t, s)
	b.setMissing(true)
	ft.mute.Store(true) // the cable is cut: not even an ACK comes back
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	// Offline first for the overdue PING, then for the failed link (or,
	// once the reopen failed, the missing port).
	if le := s.Info().LastError; !strings.Contains(le, "no answer to PING") && !strings.Contains(le, "not acknowledged") && !strings.Contains(le, testPort) {
		t.Fatalf("LastError = %q", le)
	}
	eventually(t, "the link failure", func() bool {
		le := s.Info().LastError
		return strings.Contains(le, "not acknowledged") || strings.Contains(le, testPort)
	})
	eventually(t, "the link failure logged", func() bool { return logs.count("PING seq=") > 0 })
}

func TestSessionTransportClosedMidReadCard(t *testing.T) {
	b := newBench(t)
	s := startSession(t, testConfig(b, &logBuffer{}))
	ft := b.next()
	waitReady(t, s)
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "txn-1", Code: protocol.ProgressPresentCard})
	b.setMissing(true)
	ft.close() // unplugged
	if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
		t.Fatalf("ReadCard = %v, want ErrLinkFailed", err)
	}
	eventually(t, "offline", func() bool { return s.Info().State == sterad.TerminalOffline })
	if _, err := s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard while offline = %v", err)
	}
	b.setMissing(false)
	b.next()
	waitReady(t, s)
}

func TestSessionDeviceMissingAtStart(t *testing.T) {
	b := newBench(t)
	b.setMissing(true)
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	eventually(t, "a few attempts", func() bool { return b.opens.Load() >= 3 })
	info := s.Info()
	if info.State != sterad.TerminalOffline || !strings.Contains(info.LastError, testPort) {
		t.Fatalf("Info = %+v", info)
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings for the missing device, want 1:\n%s", n, logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady = %v", err)
	}
	ready := async(func() (struct{}, error) { return struct{}{}, s.WaitReady(context.Background()) })
	b.setMissing(false)
	b.next()
	if _, err := await(t, ready); err != nil {
		t.Fatal(err)
	}
	if st := s.Info().State; st != sterad.TerminalReady {
		t.Fatalf("state %s", st)
	}
}

func TestSessionCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		b := newBench(t)
		cfg := testConfig(b, &logBuffer{})
		cfg.PingInterval = 20 * time.Millisecond
		s := device.NewSession(cfg)
		runErr := make(chan error, 1)
		go func() { runErr <- s.Run(context.Background()) }()
		ft := b.next()
		waitReady(t, s)
		res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist) })
		ft.expect(protocol.TypeReadCard)
		s.Close()
		if err := <-runErr; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if _, err := await(t, res); !errors.Is(err, sterad.ErrLinkFailed) {
			t.Fatalf("ReadCard across Close = %v", err)
		}
		if _, err := s.ReadCard(context.Background(), saleRequest("txn-2"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
			t.Fatalf("ReadCard after Close = %v", err)
		}
		if err := s.WaitReady(context.Background()); !errors.Is(err, sterad.ErrTerminalOffline) {
			t.Fatalf("WaitReady after Close = %v", err)
		}
		if err := s.Run(context.Background()); err != nil {
			t.Fatalf("Run after Close = %v", err)
		}
		ft.close()
	}()
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestSessionRunCancelledByContext(t *testing.T) {
	b := newBench(t)
	s := device.NewSession(testConfig(b, &logBuffer{}))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	b.next()
	waitReady(t, s)
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
	if st := s.Info().State; st != sterad.TerminalOffline {
		t.Fatalf("state %s after Run returned", st)
	}
	s.Close()
}

func TestSessionConfigErrors(t *testing.T) {
	if err := device.NewSession(device.SessionConfig{ID: "X"}).Run(context.Background()); err == nil {
		t.Fatal("Run without an Opener succeeded")
	}
	s := device.NewSession(device.SessionConfig{ID: "X"})
	if _, err := s.ReadCard(context.Background(), sterad.CardRequest{}, nil); sterad.ErrorKind(err) != sterad.EInvalid {
		t.Fatalf("ReadCard without txn id = %v", err)
	}
	if _, err := s.ReadCard(context.Background(), saleRequest("t"), nil); !errors.Is(err, sterad.ErrTerminalOffline) {
		t.Fatalf("ReadCard before Run = %v", err)
	}
	if info := s.Info(); info.State != sterad.TerminalOffline || info.ID != "X" || info.Transport != "serial" {
		t.Fatalf("Info before Run = %+v", info)
	}
}
