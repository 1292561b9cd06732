package device_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
)

// A CARD that names no transaction is not taken as the card of the
// transaction in progress: it is never persisted nor returned, and the
// transaction is cancelled at the terminal as an unusable card.
func TestSessionCardWithoutTxnIDRefused(t *testing.T) {
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
	ft.send(protocol.TypeCard, protocol.CardData{Entry: "chip", PAN: testPAN, Expiry: "3012"})
	var c protocol.TxnRef
	ft.expectMsg(protocol.TypeCancel, &c)
	if c.TxnID != "txn-1" {
		t.Fatalf("CANCEL for %q, want txn-1", c.TxnID)
	}
	card, err := await(t, res)
	if card != nil || sterad.ErrorCode(err) != "terminal_bad_card" || !strings.Contains(err.Error(), "txn_id missing") {
		t.Fatalf("ReadCard = %v, %v; want terminal_bad_card (txn_id missing)", card, err)
	}
	if persisted {
		t.Fatal("a card without txn_id was persisted")
	}
	if strings.Contains(logs.String(), testPAN) || strings.Contains(err.Error(), "4111") {
		t.Fatal("card data in the log or the error")
	}
}

// A terminal flooding the link with valid frames outside any transaction
// gets at most LogBurst log lines of each kind per LogWindow; the next
// window's first line says how many were suppressed.
func TestSessionFrameLogRateLimited(t *testing.T) {
	b := newBench(t)
	logs := &logBuffer{}
	s := startSession(t, testConfig(b, logs))
	var mu sync.Mutex
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	device.SetLogClock(s, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	ft := b.next()
	waitReady(t, s)

	const flood = 300
	for i := range flood {
		ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "stray", Code: protocol.ProgressPresentCard})
		ft.send(protocol.TypeResult, protocol.Result{TxnID: "stray", Status: "done"})
		if i%3 == 0 {
			ft.send(protocol.TypeCard, protocol.CardData{TxnID: "stray", Entry: "chip", PAN: testPAN, Expiry: "3012"})
		}
	}
	if n := logs.count("message for no waiting call"); n != device.LogBurst {
		t.Fatalf("%d 'no waiting call' lines for %d stray frames, want %d", n, 2*flood, device.LogBurst)
	}
	if n := logs.count("CARD for no waiting call"); n != device.LogBurst {
		t.Fatalf("%d 'CARD for no waiting call' lines, want %d", n, device.LogBurst)
	}

	mu.Lock()
	now = now.Add(device.LogWindow)
	mu.Unlock()
	ft.send(protocol.TypeProgress, protocol.Progress{TxnID: "stray", Code: protocol.ProgressPresentCard})
	if n := logs.count("message for no waiting call"); n != device.LogBurst+1 {
		t.Fatalf("%d lines after the window turned, want %d", n, device.LogBurst+1)
	}
	want := "suppressed=" + itoa(2*flood-device.LogBurst)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("no %q in the log:\n%s", want, tail(logs.String(), 600))
	}
	if strings.Contains(logs.String(), testPAN) {
		t.Fatal("a stray card reached the log")
	}
	// The link still serves transactions.
	res := async(func() (*sterad.Card, error) { return s.ReadCard(context.Background(), saleRequest("txn-9"), noPersist) })
	ft.expect(protocol.TypeReadCard)
	ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-9", Entry: "chip", PAN: testPAN, Expiry: "3012"})
	if c, err := await(t, res); err != nil || c.PAN.Reveal() != testPAN {
		t.Fatalf("ReadCard after the flood = %v, %v", c, err)
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
