package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/sterad/sterad/internal/testutil"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/offline"
)

// fakeHost is a scripted acquirer: answer decides each response.
type fakeHost struct {
	mu       sync.Mutex
	sent     []*sterad.HostMessage
	online   atomic.Bool
	disagree atomic.Bool // answer 95 to a 0500 without BU=1
	answer   func(m *sterad.HostMessage) (*sterad.HostMessage, error)
	rrn, ti  int
}

func newFakeHost() *fakeHost {
	h := &fakeHost{}
	h.online.Store(true)
	h.answer = h.approve
	return h
}

func (h *fakeHost) Exchange(ctx context.Context, m *sterad.HostMessage) (*sterad.HostMessage, error) {
	if !h.online.Load() {
		return nil, sterad.ErrHostUnavailable
	}
	c := *m
	h.mu.Lock()
	h.sent = append(h.sent, &c)
	h.mu.Unlock()
	return h.answer(m)
}

func (h *fakeHost) Status() sterad.LinkStatus {
	return sterad.LinkStatus{Online: h.online.Load(), State: "online"}
}

func (h *fakeHost) messages() []*sterad.HostMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*sterad.HostMessage(nil), h.sent...)
}

// respond builds a response to m with code.
func (h *fakeHost) respond(m *sterad.HostMessage, code string) *sterad.HostMessage {
	h.mu.Lock()
	h.rrn++
	h.ti++
	rrn, ti := fmt.Sprintf("%012d", h.rrn), fmt.Sprintf("TI%013d", h.ti)
	h.mu.Unlock()
	// Responses echo DE 3, 4, 7, 11 and 41 (docs/acquirer-protocol.md §5).
	r := &sterad.HostMessage{MTI: m.MTI.Response(), STAN: m.STAN, TerminalID: m.TerminalID, ResponseCode: code,
		Processing: m.Processing, HasAmount: m.HasAmount, Amount: m.Amount, Currency: m.Currency, Transmitted: m.Transmitted}
	if code == "00" || code == "85" {
		r.AuthCode, r.RRN = "A1B2C3", rrn
		if m.MTI == sterad.MTIAuthorization || m.MTI == sterad.MTIFinancial {
			r.TI = ti
		}
	}
	return r
}

func (h *fakeHost) approve(m *sterad.HostMessage) (*sterad.HostMessage, error) {
	switch m.MTI {
	case sterad.MTIReconciliation:
		if h.disagree.Load() && !m.BatchUpload {
			return h.respond(m, "95"), nil
		}
		return h.respond(m, "00"), nil
	case sterad.MTIBatchUpload:
		return h.respond(m, "00"), nil
	}
	switch m.PAN {
	case "4000000000000002":
		return h.respond(m, "05"), nil
	case "4000000000009995":
		return h.respond(m, "51"), nil
	case "4000000000000069":
		return h.respond(m, "54"), nil
	case "4000000000000119":
		if m.MTI == sterad.MTIReversal || m.MTI == sterad.MTIReversalRepeat {
			return h.respond(m, "00"), nil
		}
		return nil, fmt.Errorf("%w: timeout", sterad.ErrNoResponse)
	case "4000000000000226":
		if m.MTI.Class() == "04" {
			return h.respond(m, "00"), nil
		}
		return h.respond(m, "96"), nil
	}
	if m.Condition == sterad.CondVerification {
		return h.respond(m, "85"), nil
	}
	return h.respond(m, "00"), nil
}

type harness struct {
	t     *testing.T
	gw    *gateway.Gateway
	db    *offline.DB
	host  *fakeHost
	clock *sterad.FakeClock
	dir   string
	term  *fakeTerminal
}

var jst = time.FixedZone("JST", 9*3600)

// harnessKEK wraps the harness stores' keys (one for every restart).
var harnessKEK, _ = offline.NewKEK(make([]byte, offline.KEKSize))

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	return startHarness(t, dir, newFakeHost(), newFakeTerminal("FRONT001"))
}

func startHarness(t *testing.T, dir string, host *fakeHost, term *fakeTerminal, tune ...func(*gateway.Config)) *harness {
	t.Helper()
	return startWrapped(t, dir, host, term, nil, tune...)
}

// startWrapped is startHarness with the gateway's store wrapped (nil: not).
func startWrapped(t *testing.T, dir string, host *fakeHost, term *fakeTerminal, wrap func(sterad.Store) sterad.Store, tune ...func(*gateway.Config)) *harness {
	t.Helper()
	return startGateway(t, dir, host, host, term, wrap, tune...)
}

// startGateway starts a gateway whose acquirer is acq; host is the fake
// that records what reached the host (acq itself, or wrapped by it).
func startGateway(t *testing.T, dir string, acq sterad.Acquirer, host *fakeHost, term *fakeTerminal, wrap func(sterad.Store) sterad.Store, tune ...func(*gateway.Config)) *harness {
	t.Helper()
	clock := sterad.NewFakeClock(time.Date(2026, 11, 21, 10, 0, 0, 0, jst))
	opts := offline.DefaultOptions()
	opts.Clock = clock
	opts.KEKs = []*offline.KEK{harnessKEK}
	db, err := offline.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	cfg := gateway.Config{
		MerchantID: "HOTEL0000000001", VirtualTerminalID: "VIRT0001", Location: jst,
		CardData:     sterad.CardDataClear, // keyed test cards; the blind tests tune it
		TerminalWait: 2 * time.Second, RetryInterval: time.Hour,
		Cutoff: -1, // no nightly close unless a test asks for one
	}
	for _, f := range tune {
		f(&cfg)
	}
	var store sterad.Store = db
	if wrap != nil {
		store = wrap(db)
	}
	gw, err := gateway.New(cfg, gateway.Deps{
		Store: store, Acquirer: acq, Terminals: []sterad.Terminal{term}, Clock: clock, Logger: testLogger(),
		NewID: func() string { return fmt.Sprintf("T%06d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, gw: gw, db: db, host: host, clock: clock, dir: dir, term: term}
	t.Cleanup(func() {
		cancel()
		gw.Stop()
		db.Close()
	})
	return h
}

func (h *harness) submit(r sterad.Request) (*sterad.Transaction, error) {
	h.t.Helper()
	r.Wait = true
	t, _, err := h.gw.Submit(context.Background(), r)
	return t, err
}

func (h *harness) mustSubmit(r sterad.Request) *sterad.Transaction {
	h.t.Helper()
	t, err := h.submit(r)
	if err != nil {
		h.t.Fatalf("Submit(%s): %v", r.Op, err)
	}
	return t
}

func keyedSale(pan, amount string) sterad.Request {
	return sterad.Request{Op: "sale", Amount: amount, PAN: pan, Expiry: "2812"}
}

func TestKeyedSaleApproved(t *testing.T) {
	h := newHarness(t)
	tx := h.mustSubmit(keyedSale("4111111111111111", "12800"))
	if tx.Status != sterad.StatusApproved || tx.AuthCode == "" || tx.RRN == "" || tx.Batch != 1 || tx.STAN == 0 || tx.Step != sterad.StepDone {
		t.Fatalf("sale: %+v", tx)
	}
	if tx.MaskedPAN != "411111******1111" || tx.Brand != sterad.BrandVisa || tx.TerminalID != "VIRT0001" {
		t.Fatalf("sale card: %s %s %s", tx.MaskedPAN, tx.Brand, tx.TerminalID)
	}
	m := h.host.messages()[0]
	if m.MTI != "0200" || m.Entry.POSEntryMode() != "012" || m.Condition != "08" || m.PAN != "4111111111111111" ||
		m.Batch != 1 || m.Amount.Minor() != 12800 || m.TerminalID != "VIRT0001" || m.Expiry.String() != "2812" {
		t.Fatalf("0200: %+v", m)
	}
	// The approved sale keeps its card encrypted for a void or an upload.
	c, err := h.db.OpenCard(context.Background(), tx.ID)
	if err != nil || c.PAN != "4111111111111111" {
		t.Fatalf("card kept: %v", err)
	}
}

func TestDeclinesReachTheClerk(t *testing.T) {
	h := newHarness(t)
	for _, tt := range []struct{ pan, code, words string }{
		{"4000000000000002", "05", "do not honor"},
		{"4000000000009995", "51", "insufficient funds"},
		{"4000000000000069", "54", "expired"},
	} {
		tx := h.mustSubmit(keyedSale(tt.pan, "5000"))
		if tx.Status != sterad.StatusDeclined || tx.ResponseCode != tt.code || !strings.Contains(tx.Reason, tt.words) {
			t.Errorf("%s: %s %s %q", tt.code, tx.Status, tx.ResponseCode, tx.Reason)
		}
		if _, err := h.db.OpenCard(context.Background(), tx.ID); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("%s: the declined card is still kept (%v)", tt.code, err)
		}
	}
	// Codes the test host cards do not produce.
	for code, words := range map[string]string{"12": "invalid transaction", "13": "invalid amount", "14": "invalid card number", "30": "format error", "91": "unavailable"} {
		h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) { return h.host.respond(m, code), nil }
		tx := h.mustSubmit(keyedSale("4111111111111111", "5000"))
		if tx.Status != sterad.StatusDeclined || tx.ResponseCode != code || !strings.Contains(tx.Reason, words) {
			t.Errorf("%s: %s %q", code, tx.Status, tx.Reason)
		}
	}
}

func TestNoAnswerIsReversedNeverResent(t *testing.T) {
	for _, pan := range []string{"4000000000000119", "4000000000000226"} {
		h := newHarness(t)
		tx := h.mustSubmit(keyedSale(pan, "7000"))
		if tx.Status != sterad.StatusReversed || !strings.Contains(tx.Reason, "not charged") {
			t.Fatalf("%s: %s %q", sterad.MaskPAN(pan), tx.Status, tx.Reason)
		}
		msgs := h.host.messages()
		if len(msgs) != 2 || msgs[0].MTI != "0200" || msgs[1].MTI != "0420" {
			t.Fatalf("messages: %v", mtis(msgs))
		}
		rev, orig := msgs[1], msgs[0]
		if rev.STAN != orig.STAN || rev.ReversalReason != "TO" || rev.Original == nil || rev.Original.STAN != orig.STAN ||
			!rev.Original.Transmitted.Equal(orig.Transmitted) || !rev.Transmitted.After(orig.Transmitted) || rev.PAN != orig.PAN ||
			rev.Amount.Minor() != 7000 || rev.TerminalID != orig.TerminalID {
			t.Fatalf("0420: %+v", rev)
		}
		if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
			t.Fatalf("queue after the reversal was answered: %+v", q)
		}
	}
}

// An unanswered reversal stays queued and goes out as 0421 until answered.
func TestReversalRepeatedUntilAnswered(t *testing.T) {
	h := newHarness(t)
	var answered atomic.Bool
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		if m.MTI.Class() == "04" && answered.Load() {
			return h.host.respond(m, "00"), nil
		}
		return nil, sterad.ErrNoResponse
	}
	tx := h.mustSubmit(keyedSale("4111111111111111", "7000"))
	if tx.Status != sterad.StatusUnknown || tx.Step != sterad.StepReversal {
		t.Fatalf("after no answer to the reversal: %s %s", tx.Status, tx.Step)
	}
	if n, _ := h.gw.Flush(context.Background()); n != 1 {
		t.Fatalf("flush sent %d", n)
	}
	answered.Store(true)
	h.gw.Flush(context.Background())
	tx, _ = h.gw.Transaction(context.Background(), tx.ID)
	if tx.Status != sterad.StatusReversed {
		t.Fatalf("after the answer: %s", tx.Status)
	}
	if got := mtis(h.host.messages()); strings.Join(got, " ") != "0200 0420 0421 0421" {
		t.Fatalf("messages %v", got)
	}
}

func mtis(ms []*sterad.HostMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.MTI))
	}
	return out
}

func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t)
	r := keyedSale("4111111111111111", "12800")
	r.IdempotencyKey = "k-1"
	first := h.mustSubmit(r)
	again, replay, err := h.gw.Submit(context.Background(), r)
	if err != nil || !replay || again.ID != first.ID {
		t.Fatalf("replay: %v %v %v", again, replay, err)
	}
	if n := len(h.host.messages()); n != 1 {
		t.Fatalf("acquirer saw %d messages", n)
	}
	r.Amount = "12801"
	if _, _, err := h.gw.Submit(context.Background(), r); sterad.ErrorCode(err) != "idempotency_key_reused" {
		t.Fatalf("other body: %v", err)
	}
}

// Issue 9, defect 14: the fingerprint is of the validated request, so the
// same request written another way is a replay, not a conflict.
func TestIdempotencyKeySameRequestOtherSpelling(t *testing.T) {
	h := newHarness(t)
	r := keyedSale("4111111111111111", "12800")
	r.IdempotencyKey = "k-2"
	first := h.mustSubmit(r)
	for _, amount := range []string{"12800.0", " 12800", "12800.00"} {
		r.Amount = amount
		r.Currency = "jpy"
		again, replay, err := h.gw.Submit(context.Background(), r)
		if err != nil || !replay || again.ID != first.ID {
			t.Fatalf("amount %q: replay %v, %v", amount, replay, err)
		}
	}
	if n := len(h.host.messages()); n != 1 {
		t.Fatalf("acquirer saw %d messages", n)
	}
}

func TestPreauthIncrementalCompletion(t *testing.T) {
	h := newHarness(t)
	pre := h.mustSubmit(sterad.Request{Op: "preauth", Amount: "30000", PAN: "4111111111111111", Expiry: "2812",
		Reference: "RSV-1", CheckIn: "2026-11-21", CheckOut: "2026-11-23"})
	if pre.Status != sterad.StatusApproved || pre.HostTI == "" || pre.AuthorizedTotal.Minor() != 30000 {
		t.Fatalf("preauth: %+v", pre)
	}
	m := h.host.messages()[0]
	if m.MTI != "0100" || m.Condition != "06" || m.Reference != "RSV-1" || m.Stay == nil || m.Stay.CheckOut.Day != 23 || m.Batch != 0 {
		t.Fatalf("0100: %+v", m)
	}
	// 30000 × 1.15 = 34500.
	_, err := h.submit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "34501"})
	if sterad.ErrorKind(err) != sterad.EConflict || !strings.Contains(sterad.ErrorMessage(err), "incremental authorization first") {
		t.Fatalf("over tolerance: %v", err)
	}
	inc := h.mustSubmit(sterad.Request{Op: "incremental", Original: pre.ID, Amount: "10000"})
	if inc.Status != sterad.StatusApproved {
		t.Fatalf("incremental: %+v", inc)
	}
	m = h.host.messages()[1]
	if m.MTI != "0100" || m.MerchantInitiated != "IA" || m.TI != pre.HostTI || m.Amount.Minor() != 10000 || m.Entry.POSEntryMode() != "012" {
		t.Fatalf("incremental 0100: %+v", m)
	}
	pre, _ = h.gw.Transaction(context.Background(), pre.ID)
	if pre.AuthorizedTotal.Minor() != 40000 {
		t.Fatalf("authorized total %s", pre.AuthorizedTotal)
	}
	comp := h.mustSubmit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "46000"}) // ≤ 46000
	if comp.Status != sterad.StatusApproved || comp.Batch != 1 {
		t.Fatalf("completion: %+v", comp)
	}
	m = h.host.messages()[2]
	if m.MTI != "0220" || m.AuthCode != pre.AuthCode || m.TI != pre.HostTI || m.Original == nil || m.Original.MTI != "0100" ||
		m.Original.STAN != pre.STAN || m.Condition != "06" || m.Batch != 1 || m.Amount.Minor() != 46000 {
		t.Fatalf("0220: %+v", m)
	}
	if _, err := h.submit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "100"}); sterad.ErrorCode(err) != "already_completed" {
		t.Fatalf("second completion: %v", err)
	}
}

func TestRefundLimits(t *testing.T) {
	h := newHarness(t)
	sale := h.mustSubmit(keyedSale("5555555555554444", "10000"))
	r1 := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "4000"})
	if r1.Status != sterad.StatusApproved {
		t.Fatalf("refund: %+v", r1)
	}
	m := h.host.messages()[1]
	if m.MTI != "0200" || m.Processing != "200000" || m.TI != sale.HostTI || m.Condition != "00" {
		t.Fatalf("refund 0200: %+v", m)
	}
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "6001"}); sterad.ErrorCode(err) != "exceeds_refundable" {
		t.Fatalf("over refund: %v", err)
	}
	h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "6000"})
	if _, err := h.submit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "1"}); sterad.ErrorCode(err) != "exceeds_refundable" {
		t.Fatalf("refund of a fully refunded sale: %v", err)
	}
	// A declined refund gives its amount back.
	declined := h.mustSubmit(keyedSale("4111111111111111", "3000"))
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) { return h.host.respond(m, "05"), nil }
	if r := h.mustSubmit(sterad.Request{Op: "refund", Original: declined.ID, Amount: "3000"}); r.Status != sterad.StatusDeclined {
		t.Fatalf("refund: %s", r.Status)
	}
	if o, _ := h.gw.Transaction(context.Background(), declined.ID); !o.Refunded.IsZero() {
		t.Fatalf("refunded after a declined refund: %s", o.Refunded)
	}
}

func TestVoid(t *testing.T) {
	h := newHarness(t)
	h.clock.Advance(0)
	sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
	void := h.mustSubmit(sterad.Request{Op: "void", Original: sale.ID})
	if void.Status != sterad.StatusApproved {
		t.Fatalf("void: %+v", void)
	}
	m := h.host.messages()[1]
	if m.MTI != "0400" || m.STAN != sale.STAN || m.RRN != sale.RRN || m.ReversalReason != "VD" || m.TI != sale.HostTI ||
		m.Amount.Minor() != 8000 || m.Original == nil || m.Original.STAN != sale.STAN || m.PAN != "4111111111111111" ||
		!m.Transmitted.After(sale.Transmitted) || m.TerminalID != sale.TerminalID {
		t.Fatalf("0400: %+v", m)
	}
	sale, _ = h.gw.Transaction(context.Background(), sale.ID)
	if sale.Status != sterad.StatusVoided || sale.VoidedBy != void.ID {
		t.Fatalf("voided sale: %s %s", sale.Status, sale.VoidedBy)
	}
	if _, err := h.db.OpenCard(context.Background(), sale.ID); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the voided sale's card is still kept: %v", err)
	}
	if _, err := h.submit(sterad.Request{Op: "void", Original: sale.ID}); sterad.ErrorCode(err) != "already_voided" {
		t.Fatalf("second void: %v", err)
	}
	declined := h.mustSubmit(keyedSale("4000000000000002", "8000"))
	if _, err := h.submit(sterad.Request{Op: "void", Original: declined.ID}); sterad.ErrorKind(err) != sterad.EConflict {
		t.Fatalf("void of a declined sale: %v", err)
	}
	// A void after the batch closed is refused: use a refund.
	open, _ := h.db.CurrentBatch(context.Background())
	sale2 := h.mustSubmit(keyedSale("4111111111111111", "9000"))
	open.State = sterad.BatchClosed
	if err := h.db.Apply(context.Background(), sterad.Change{PutBatches: []*sterad.Batch{open}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.CurrentBatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.submit(sterad.Request{Op: "void", Original: sale2.ID}); sterad.ErrorCode(err) != "batch_closed" || !strings.Contains(sterad.ErrorMessage(err), "refund") {
		t.Fatalf("void after close: %v", err)
	}
	if r := h.mustSubmit(sterad.Request{Op: "refund", Original: sale2.ID, Amount: "9000"}); r.Status != sterad.StatusApproved || r.Batch != 2 {
		t.Fatalf("refund of a closed batch's sale: %+v", r)
	}
}

// Bad input gets a clear error and changes nothing: nothing stored,
// nothing sent.
func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	sale := h.mustSubmit(keyedSale("4111111111111111", "1000"))
	declined := h.mustSubmit(keyedSale("4000000000000002", "1000"))
	sent := len(h.host.messages())
	before, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{})
	tests := []struct {
		name string
		r    sterad.Request
		kind string
		code string
	}{
		{"unknown op", sterad.Request{Op: "charge", Amount: "1"}, sterad.EInvalid, "unknown_op"},
		{"negative", keyedSale("4111111111111111", "-100"), sterad.EInvalid, "invalid_amount"},
		{"zero", keyedSale("4111111111111111", "0"), sterad.EInvalid, "invalid_amount"},
		{"fractional yen", keyedSale("4111111111111111", "100.5"), sterad.EInvalid, "invalid_amount"},
		{"ten million", keyedSale("4111111111111111", "10000000"), sterad.EInvalid, "invalid_amount"},
		{"missing amount", keyedSale("4111111111111111", ""), sterad.EInvalid, "invalid_amount"},
		{"luhn", keyedSale("4111111111111112", "100"), sterad.EInvalid, "invalid_card"},
		{"short card", keyedSale("41111111", "100"), sterad.EInvalid, "invalid_card"},
		{"expired", sterad.Request{Op: "sale", Amount: "100", PAN: "4111111111111111", Expiry: "2610"}, sterad.EInvalid, "expired_card"},
		{"bad expiry", sterad.Request{Op: "sale", Amount: "100", PAN: "4111111111111111", Expiry: "2813"}, sterad.EInvalid, "invalid_expiry"},
		{"no card", sterad.Request{Op: "sale", Amount: "100"}, sterad.EInvalid, "missing_card"},
		{"unknown terminal", sterad.Request{Op: "sale", Amount: "100", Terminal: "NOPE"}, sterad.ENotFound, "unknown_terminal"},
		{"currency", sterad.Request{Op: "sale", Amount: "100", Currency: "USD", PAN: "4111111111111111", Expiry: "2812"}, sterad.EInvalid, "invalid_currency"},
		{"preauth without stay", sterad.Request{Op: "preauth", Amount: "100", PAN: "4111111111111111", Expiry: "2812", Reference: "R"}, sterad.EInvalid, "missing_stay"},
		{"stay reversed", sterad.Request{Op: "preauth", Amount: "100", PAN: "4111111111111111", Expiry: "2812", Reference: "R", CheckIn: "2026-11-23", CheckOut: "2026-11-21"}, sterad.EInvalid, "invalid_stay"},
		{"bad date", sterad.Request{Op: "preauth", Amount: "100", PAN: "4111111111111111", Expiry: "2812", Reference: "R", CheckIn: "2026-02-30", CheckOut: "2026-03-01"}, sterad.EInvalid, "invalid_stay"},
		{"completion unknown", sterad.Request{Op: "completion", Original: "NOPE", Amount: "100"}, sterad.ENotFound, "unknown_original"},
		{"completion of a sale", sterad.Request{Op: "completion", Original: sale.ID, Amount: "100"}, sterad.EConflict, "wrong_original"},
		{"refund without original", sterad.Request{Op: "refund", Amount: "100"}, sterad.EInvalid, "missing_original"},
		{"refund of declined", sterad.Request{Op: "refund", Original: declined.ID, Amount: "100"}, sterad.EConflict, "wrong_state"},
		{"void of declined", sterad.Request{Op: "void", Original: declined.ID}, sterad.EConflict, "wrong_state"},
		{"void with amount", sterad.Request{Op: "void", Original: sale.ID, Amount: "100"}, sterad.EInvalid, "unexpected_amount"},
		{"card check with amount", sterad.Request{Op: "cardcheck", Amount: "100", PAN: "4111111111111111", Expiry: "2812"}, sterad.EInvalid, "unexpected_amount"},
	}
	for _, tt := range tests {
		_, err := h.submit(tt.r)
		if sterad.ErrorKind(err) != tt.kind || sterad.ErrorCode(err) != tt.code {
			t.Errorf("%s: got %s/%s (%v), want %s/%s", tt.name, sterad.ErrorKind(err), sterad.ErrorCode(err), err, tt.kind, tt.code)
		}
		if err != nil && strings.Contains(err.Error(), "4111111111111111") {
			t.Errorf("%s: error shows the card number", tt.name)
		}
	}
	after, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{})
	if len(after) != len(before) || len(h.host.messages()) != sent {
		t.Fatalf("bad input stored %d transactions and sent %d messages", len(after)-len(before), len(h.host.messages())-sent)
	}
}

// A transaction journaled as sent but never answered when the process
// died is reversed at start-up, never resent.
func TestRecoveryReversesWhatWasInFlight(t *testing.T) {
	dir := t.TempDir()
	host := newFakeHost()
	hang := make(chan struct{})
	host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		<-hang // the process "dies" with the request in flight
		return nil, sterad.ErrNoResponse
	}
	h := startHarness(t, dir, host, newFakeTerminal("FRONT001"))
	r := keyedSale("4111111111111111", "5000")
	tx, _, err := h.gw.Submit(context.Background(), r) // not waiting
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the condition", func() bool { return len(host.messages()) == 1 })
	// Simulate the crash: copy the store as it is on disk now.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	close(hang)

	host2 := newFakeHost()
	h2 := startHarness(t, crashed, host2, newFakeTerminal("FRONT001"))
	got, err := h2.gw.Wait(context.Background(), tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the condition", func() bool {
		got, _ = h2.gw.Transaction(context.Background(), tx.ID)
		return got.Status == sterad.StatusReversed
	})
	msgs := host2.messages()
	if len(msgs) != 1 || msgs[0].MTI != "0420" || msgs[0].STAN != tx.STAN {
		t.Fatalf("after restart the host saw %v", mtis(msgs))
	}
}

// testLogger logs to stderr when STERAD_TEST_LOG is set, for debugging.
func testLogger() *slog.Logger {
	if os.Getenv("STERAD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
