package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/offline"
)

// Card-data-blind operation (issue 12, docs/non-retention.md): terminals
// encrypt, the gateway passes their block on and keeps only the masked
// number, brand, KSN, TI and TK.

// sealSpy is the store as the gateway sees it, failing the test when a
// change would keep a card: in blind mode the card store is never used.
type sealSpy struct {
	*offline.DB
	t      *testing.T
	mu     sync.Mutex
	sealed int
}

func (s *sealSpy) Apply(ctx context.Context, c sterad.Change) error {
	if len(c.SealCards) > 0 {
		s.mu.Lock()
		s.sealed += len(c.SealCards)
		s.mu.Unlock()
		s.t.Errorf("blind mode sealed %d card(s) in the card store", len(c.SealCards))
	}
	return s.DB.Apply(ctx, c)
}

// blindHost answers like fakeHost and returns a token with every
// approval that asks for one (TR=1); blocks listed in bad81 are answered
// 81, as a host answers a block it cannot decrypt.
type blindHost struct {
	*fakeHost
	tk    atomic.Int64
	bad81 sync.Map // EC data → true
	lost  sync.Map // EC data → true: no answer (the request may have arrived)
}

func newBlindHost() *blindHost {
	b := &blindHost{fakeHost: newFakeHost()}
	b.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		if _, ok := b.bad81.Load(m.EncryptedCard); ok && m.EncryptedCard != "" {
			return b.respond(m, "81"), nil
		}
		if _, ok := b.lost.Load(m.EncryptedCard); ok && m.EncryptedCard != "" && m.MTI.Class() != "04" {
			return nil, fmt.Errorf("%w: timeout", sterad.ErrNoResponse)
		}
		r, err := b.approve(m)
		if r != nil && r.Approved() && m.WantToken {
			r.Token = fmt.Sprintf("TK%014d", b.tk.Add(1))
		}
		if r != nil && r.Approved() && m.MTI == sterad.MTIAdvice {
			r.TI = fmt.Sprintf("TIADV%010d", b.tk.Add(1))
		}
		return r, err
	}
	return b
}

type blindHarness struct {
	*harness
	host *blindHost
	spy  *sealSpy
}

func newBlindHarness(t *testing.T, tune ...func(*gateway.Config)) *blindHarness {
	t.Helper()
	clock := sterad.NewFakeClock(time.Date(2026, 11, 21, 10, 0, 0, 0, jst))
	opts := offline.DefaultOptions()
	opts.Clock = clock
	opts.KEKs = []*offline.KEK{harnessKEK}
	dir := t.TempDir()
	db, err := offline.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	spy := &sealSpy{DB: db, t: t}
	host := newBlindHost()
	term := newFakeTerminal("FRONT001")
	var n atomic.Int64
	cfg := gateway.Config{
		MerchantID: "HOTEL0000000001", VirtualTerminalID: "VIRT0001", Location: jst,
		TerminalWait: 2 * time.Second, RetryInterval: time.Hour, Cutoff: -1,
	}
	for _, f := range tune {
		f(&cfg)
	}
	gw, err := gateway.New(cfg, gateway.Deps{
		Store: spy, Acquirer: host, Terminals: []sterad.Terminal{term}, Clock: clock, Logger: testLogger(),
		NewID: func() string { return fmt.Sprintf("T%06d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := gw.Config().CardData; got != sterad.CardDataBlind {
		t.Fatalf("default card data mode %q, want blind", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := &blindHarness{harness: &harness{t: t, gw: gw, db: db, host: host.fakeHost, clock: clock, dir: dir, term: term}, host: host, spy: spy}
	t.Cleanup(func() {
		cancel()
		gw.Stop()
		h.assertNoCardData()
		db.Close()
	})
	return h
}

// The test cards' numbers: none may reach the host in clear, nor any
// record sterad keeps.
var blindTestPANs = []string{"4111111111111111", "5555555555554444", "3530111333300000"}

// assertNoCardData checks every message sent and every record kept: no
// DE 2, 14 or 35, no card number anywhere.
func (h *blindHarness) assertNoCardData() {
	h.t.Helper()
	for _, m := range h.host.messages() {
		if m.PAN != "" || !m.Expiry.IsZero() || len(m.Track2) > 0 {
			h.t.Errorf("%s carried card data in clear: DE 2 %q", m.MTI, m.PAN.Masked())
		}
	}
	ctx := context.Background()
	txns, err := h.db.Transactions(ctx, sterad.TransactionFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, t := range txns {
		if t.HasCard {
			h.t.Errorf("%s keeps a card", t.ID)
		}
		if _, err := h.db.OpenCard(ctx, t.ID); !errors.Is(err, sterad.ErrNotFound) {
			h.t.Errorf("the card store holds a card for %s: %v", t.ID, err)
		}
		b, _ := json.Marshal(t)
		for _, pan := range blindTestPANs {
			if strings.Contains(string(b), pan) {
				h.t.Errorf("%s holds a card number", t.ID)
			}
		}
	}
	rs, _ := h.db.Reservations(ctx)
	for _, r := range rs {
		if r.CardKept {
			h.t.Errorf("reservation %s keeps a card", r.Reference)
		}
		if _, err := h.db.OpenCard(ctx, sterad.VaultOwner(r.Reference)); !errors.Is(err, sterad.ErrNotFound) {
			h.t.Errorf("the vault holds a card for %s: %v", r.Reference, err)
		}
	}
	if v, _ := h.db.Vault(ctx); len(v) != 0 {
		h.t.Errorf("vault entries in blind mode: %d", len(v))
	}
}

// p2peCard is an encrypting terminal's card: masked number, brand, and a
// block sterad cannot open. n makes each read's block (and KSN) distinct.
func p2peCard(masked string, brand sterad.Brand, entry sterad.EntryMode, n int) sterad.Card {
	return sterad.Card{Masked: masked, Brand: brand, Entry: entry, Encrypted: &sterad.EncryptedBlock{
		KSN:  fmt.Sprintf("FFFF9876543210E0%08X", n),
		Data: strings.Repeat(fmt.Sprintf("%02X", n%256), 32),
	}}
}

var visaP2PE = func(n int) sterad.Card { return p2peCard("411111******1111", sterad.BrandVisa, sterad.EntryChip, n) }

// ecCount counts the messages that carried block data.
func ecCount(h *blindHarness, data string) int {
	n := 0
	for _, m := range h.host.messages() {
		if m.EncryptedCard == data {
			n++
		}
	}
	return n
}

func TestBlindKeyedCardRefused(t *testing.T) {
	tests := []sterad.Request{
		{Op: "sale", Amount: "12800", PAN: "4111111111111111", Expiry: "2812"},
		{Op: "sale", Amount: "12800", PAN: "4111111111111111"},
		{Op: "sale", Amount: "12800", Expiry: "2812"},
		{Op: "preauth", Amount: "30000", PAN: "4111111111111111", Expiry: "2812", Reference: "R1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"},
		{Op: "cardcheck", PAN: "5555555555554444", Expiry: "2812", Reference: "R1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"},
		{Op: "noshow", Amount: "18000", PAN: "3530111333300000", Expiry: "2812", Reference: "R1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"},
		{Op: "sale", Amount: "12800", PAN: "4111111111111112", Expiry: "2812"}, // not even a valid number: still card data
	}
	h := newBlindHarness(t)
	for _, r := range tests {
		r.IdempotencyKey = "k-" + r.Op
		_, err := h.submit(r)
		if !errors.Is(err, sterad.ErrCardDataBlind) || sterad.ErrorKind(err) != sterad.EInvalid || sterad.ErrorCode(err) != "card_data_blind" {
			t.Errorf("%s with a keyed card: %v", r.Op, err)
		}
		if strings.Contains(sterad.ErrorMessage(err), r.PAN[max(0, len(r.PAN)-4):]) && r.PAN != "" {
			t.Errorf("the refusal quotes the card: %q", sterad.ErrorMessage(err))
		}
	}
	if n := len(h.host.messages()); n != 0 {
		t.Fatalf("%d messages reached the host", n)
	}
	if txns, _ := h.gw.Transactions(context.Background(), sterad.TransactionFilter{}); len(txns) != 0 {
		t.Fatalf("%d transactions stored", len(txns))
	}
	if rec, err := h.db.Idempotency(context.Background(), "k-sale"); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("idempotency key bound: %+v %v", rec, err)
	}
	// Without a terminal, a sale has no way to read a card.
	if _, err := h.submit(sterad.Request{Op: "sale", Amount: "1000"}); sterad.ErrorCode(err) != "missing_card" || !strings.Contains(sterad.ErrorMessage(err), "card-data-blind") {
		t.Fatalf("sale without a card: %v", err)
	}
}

func TestBlindCardDataModeValidated(t *testing.T) {
	_, err := gateway.New(gateway.Config{MerchantID: "M", VirtualTerminalID: "V", CardData: "opaque"},
		gateway.Deps{Store: &sealSpy{}, Acquirer: newFakeHost(), NewID: func() string { return "x" }})
	if err == nil || !strings.Contains(err.Error(), "opaque") {
		t.Fatalf("unknown mode: %v", err)
	}
}

func TestBlindSaleAtTerminal(t *testing.T) {
	h := newBlindHarness(t)
	card := visaP2PE(1)
	h.term.present(card)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusApproved || tx.MaskedPAN != "411111******1111" || tx.Brand != sterad.BrandVisa || tx.KSN != card.Encrypted.KSN ||
		tx.Token == "" || tx.HostTI == "" || tx.HasCard || tx.TerminalResult != "done" {
		t.Fatalf("sale: %+v", tx)
	}
	msgs := h.host.messages()
	if len(msgs) != 1 {
		t.Fatalf("sent %v", mtis(msgs))
	}
	m := msgs[0]
	if m.MTI != "0200" || m.KSN != card.Encrypted.KSN || m.EncryptedCard != card.Encrypted.Data || !m.WantToken || m.Entry != sterad.EntryChip || m.Condition != "00" {
		t.Fatalf("0200: %+v", m)
	}
	out := h.term.shown()
	if len(out) != 1 || out[0].Status != "approved" || out[0].MaskedPAN != "411111******1111" {
		t.Fatalf("outcome: %+v", out)
	}
	// The block is not kept anywhere once the request is answered.
	b, _ := json.Marshal(tx)
	if strings.Contains(string(b), card.Encrypted.Data) {
		t.Fatal("the transaction keeps the encrypted block")
	}
}

// A terminal that sends a card in clear in blind mode: the card is
// dropped, nothing reaches the host, the clerk and the terminal are told.
func TestBlindClearCardFromTerminalRefused(t *testing.T) {
	h := newBlindHarness(t)
	h.term.present(chipVisa)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusDeclined || !strings.Contains(tx.Reason, "in clear") || tx.MaskedPAN != "" || tx.HasCard || tx.Step != sterad.StepDone {
		t.Fatalf("sale with a clear card: %s %s %q %q", tx.Status, tx.Step, tx.Reason, tx.MaskedPAN)
	}
	if n := len(h.host.messages()); n != 0 {
		t.Fatalf("%d messages reached the host", n)
	}
	out := h.term.shown()
	if len(out) != 1 || out[0].Status != "declined" || !strings.Contains(strings.Join(out[0].Lines, " "), "p2pe") {
		t.Fatalf("terminal not told: %+v", out)
	}
	if strings.Contains(strings.Join(out[0].Lines, " "), "1111") {
		t.Fatalf("the outcome shows card digits: %+v", out[0].Lines)
	}
}

func TestBlindPreauthIncrementalCompletionVoid(t *testing.T) {
	h := newBlindHarness(t)
	h.term.present(visaP2PE(2))
	pre := h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if pre.Status != sterad.StatusApproved || pre.Token == "" || pre.HostTI == "" {
		t.Fatalf("preauth: %+v", pre)
	}
	inc := h.mustSubmit(sterad.Request{Op: "incremental", Original: pre.ID, Amount: "5000"})
	comp := h.mustSubmit(sterad.Request{Op: "completion", Original: pre.ID, Amount: "34000"})
	if inc.Status != sterad.StatusApproved || comp.Status != sterad.StatusApproved {
		t.Fatalf("incremental %s %q, completion %s %q", inc.Status, inc.Reason, comp.Status, comp.Reason)
	}
	void := h.mustSubmit(sterad.Request{Op: "void", Original: comp.ID})
	if void.Status != sterad.StatusApproved {
		t.Fatalf("void: %s %q", void.Status, void.Reason)
	}
	msgs := h.host.messages()
	if got := strings.Join(mtis(msgs), " "); got != "0100 0100 0220 0400" {
		t.Fatalf("sent %s", got)
	}
	if m := msgs[0]; m.EncryptedCard == "" || !m.WantToken || m.Condition != "06" {
		t.Fatalf("pre-authorization: %+v", m)
	}
	for _, m := range msgs[1:] {
		if m.EncryptedCard != "" || m.KSN != "" || m.TI != pre.HostTI && m.MTI != "0400" {
			t.Fatalf("%s carries card data or lacks the TI: %+v", m.MTI, m)
		}
	}
	if msgs[1].MerchantInitiated != sterad.MIIncremental || msgs[1].WantToken {
		t.Fatalf("incremental: %+v", msgs[1])
	}
}

func TestBlindRefund(t *testing.T) {
	h := newBlindHarness(t)
	h.term.present(visaP2PE(3))
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	// At the terminal: the card is read again, its block sent with the TI.
	again := visaP2PE(4)
	h.term.present(again)
	r1 := h.mustSubmit(sterad.Request{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "2800"})
	if r1.Status != sterad.StatusApproved {
		t.Fatalf("refund at the terminal: %s %q", r1.Status, r1.Reason)
	}
	m := h.host.messages()[1]
	if m.Processing != sterad.ProcRefund || m.TI != sale.HostTI || m.EncryptedCard != again.Encrypted.Data || m.KSN != again.Encrypted.KSN {
		t.Fatalf("refund 0200: %+v", m)
	}
	// Another card (its masked number differs): refused, nothing sent.
	h.term.present(p2peCard("555555******4444", sterad.BrandMastercard, sterad.EntryChip, 5))
	r2 := h.mustSubmit(sterad.Request{Op: "refund", Terminal: "FRONT001", Original: sale.ID, Amount: "1000"})
	if r2.Status != sterad.StatusDeclined || !strings.Contains(r2.Reason, "another card") {
		t.Fatalf("refund to another card: %s %q", r2.Status, r2.Reason)
	}
	// Without a terminal: by TI only.
	r3 := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "1000"})
	if r3.Status != sterad.StatusApproved {
		t.Fatalf("refund by TI: %s %q", r3.Status, r3.Reason)
	}
	msgs := h.host.messages()
	if len(msgs) != 3 || msgs[2].TI != sale.HostTI || msgs[2].EncryptedCard != "" {
		t.Fatalf("sent %v, last %+v", mtis(msgs), msgs[len(msgs)-1])
	}
}

// A block whose request may have reached the host is never sent again:
// the request is reversed (by DE 41 + DE 90, no card data).
func TestBlindUnknownOutcomeReversedNotResent(t *testing.T) {
	h := newBlindHarness(t)
	card := visaP2PE(6)
	h.host.lost.Store(card.Encrypted.Data, true)
	h.term.present(card)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusReversed {
		t.Fatalf("sale without an answer: %s %q", tx.Status, tx.Reason)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200 0420" {
		t.Fatalf("sent %s", got)
	}
	if n := ecCount(h, card.Encrypted.Data); n != 1 {
		t.Fatalf("the block went out %d times", n)
	}
	if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
}

// Stand-in: the sale is approved from what is in clear; its block waits in
// the queue item and goes out in the advice, then is gone.
func TestBlindStandInAdviceCarriesTheBlock(t *testing.T) {
	h := newBlindHarness(t)
	h.host.online.Store(false)
	sale := visaP2PE(7)
	h.term.present(sale)
	s := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12000"})
	if s.Status != sterad.StatusStoodIn || s.MaskedPAN != "411111******1111" {
		t.Fatalf("stand-in: %+v", s)
	}
	pre := visaP2PE(8)
	h.term.present(pre)
	p := h.mustSubmit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-OFF", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if p.Status != sterad.StatusStoodIn {
		t.Fatalf("stood-in preauth: %+v", p)
	}
	// A refund of the stood-in sale, deferred: by TI, no block.
	ref := h.mustSubmit(sterad.Request{Op: "refund", Original: s.ID, Amount: "2000"})
	q, _ := h.gw.Queue(context.Background())
	if len(q) != 3 {
		t.Fatalf("queue: %+v", q)
	}
	for _, it := range q {
		want := map[string]*sterad.EncryptedBlock{s.ID: sale.Encrypted, p.ID: pre.Encrypted, ref.ID: nil}[it.TxnID]
		if (it.Block == nil) != (want == nil) || want != nil && *it.Block != *want {
			t.Fatalf("queue item of %s: block %+v, want %+v", it.TxnID, it.Block, want)
		}
	}
	h.clock.Advance(10 * time.Minute)
	h.host.online.Store(true)
	// The background drain may have taken some already: the flush waits
	// for it and sends the rest.
	if _, err := h.gw.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	var adv, auth *sterad.HostMessage
	for _, m := range h.host.messages() {
		switch m.MTI {
		case sterad.MTIAdvice:
			adv = m
		case sterad.MTIAuthorization:
			auth = m
		}
	}
	if adv == nil || !adv.StandIn || adv.EncryptedCard != sale.Encrypted.Data || adv.KSN != sale.Encrypted.KSN || adv.AuthCode != s.LocalCode || adv.WantToken {
		t.Fatalf("advice: %+v", adv)
	}
	if auth == nil || auth.EncryptedCard != pre.Encrypted.Data || !auth.WantToken {
		t.Fatalf("deferred 0100: %+v", auth)
	}
	if ecCount(h, sale.Encrypted.Data) != 1 || ecCount(h, pre.Encrypted.Data) != 1 {
		t.Fatal("a block went out more than once")
	}
	if q, _ := h.gw.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("queue after the flush (the blocks must be gone): %+v", q)
	}
	for _, id := range []string{s.ID, p.ID, ref.ID} {
		x, _ := h.gw.Transaction(context.Background(), id)
		if x.Status != sterad.StatusApproved {
			t.Errorf("%s %s: %s %q", id, x.Op, x.Status, x.Reason)
		}
	}
}

// Card checks at the terminal (keyed there, encrypted) and by token
// guarantee a reservation with its token, no card; no-shows go by token.
func TestBlindGuaranteeByTokenAndNoShow(t *testing.T) {
	h := newBlindHarness(t)
	keyed := p2peCard("353011******0000", sterad.BrandJCB, sterad.EntryKeyed, 9)
	h.term.present(keyed)
	cc := h.mustSubmit(sterad.Request{Op: "cardcheck", Terminal: "FRONT001", Reference: "RSV-1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if cc.Status != sterad.StatusApproved || cc.ResponseCode != "85" || cc.Token == "" {
		t.Fatalf("card check: %+v", cc)
	}
	m := h.host.messages()[0]
	if m.MTI != "0100" || m.Condition != "51" || m.Entry != sterad.EntryKeyed || m.EncryptedCard != keyed.Encrypted.Data || !m.WantToken {
		t.Fatalf("card check 0100: %+v", m)
	}
	r, err := h.gw.Reservation(context.Background(), "RSV-1")
	if err != nil || r.State != sterad.ReservationGuaranteed || r.Token != cc.Token || r.CardKept || r.MaskedPAN != "353011******0000" {
		t.Fatalf("reservation: %+v %v", r, err)
	}

	// A guarantee given as a token (a token the host issued earlier).
	cc2 := h.mustSubmit(sterad.Request{Op: "cardcheck", Token: "TK99999999999999", Reference: "RSV-2", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if cc2.Status != sterad.StatusApproved || cc2.Entry != sterad.EntryToken || cc2.MTI != "" || !strings.Contains(cc2.Reason, "token") {
		t.Fatalf("card check by token: %+v", cc2)
	}
	// The host takes a token only in a charge (acquirer-host.md §5):
	// nothing is sent for the guarantee.
	if n := len(h.host.messages()); n != 1 {
		t.Fatalf("the guarantee by token sent %d messages", n-1)
	}
	if r2, _ := h.gw.Reservation(context.Background(), "RSV-2"); r2 == nil || r2.Token != "TK99999999999999" || r2.State != sterad.ReservationGuaranteed {
		t.Fatalf("reservation by token: %+v", r2)
	}
	// Another reservation's token does not guarantee this one.
	if _, err := h.submit(sterad.Request{Op: "cardcheck", Token: cc.Token, Reference: "RSV-3", CheckIn: "2026-11-21", CheckOut: "2026-11-22"}); sterad.ErrorCode(err) != "token_mismatch" {
		t.Fatalf("foreign token: %v", err)
	}

	h.clock.Set(time.Date(2026, 11, 21, 19, 0, 0, 0, jst))
	// By the token given, and by the reservation's kept token.
	ns1 := h.mustSubmit(sterad.Request{Op: "noshow", Reference: "RSV-1", Token: cc.Token, Amount: "18000", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	ns2 := h.mustSubmit(noShow("RSV-2"))
	for _, ns := range []*sterad.Transaction{ns1, ns2} {
		if ns.Status != sterad.StatusApproved || ns.Entry != sterad.EntryToken {
			t.Fatalf("no-show: %s %s %q", ns.Status, ns.Entry, ns.Reason)
		}
	}
	msgs := h.host.messages()
	for _, m := range msgs[len(msgs)-2:] {
		if m.MTI != "0200" || m.Token == "" || m.Entry.POSEntryMode() != "102" || m.MerchantInitiated != sterad.MINoShow || m.EncryptedCard != "" {
			t.Fatalf("no-show 0200: %+v", m)
		}
	}
	// The charged reservation's token is not reused.
	if _, err := h.submit(noShow("RSV-1")); sterad.ErrorCode(err) != "already_charged" {
		t.Fatalf("second no-show: %v", err)
	}
}

func TestBlindResponse81(t *testing.T) {
	h := newBlindHarness(t)
	card := visaP2PE(10)
	h.host.bad81.Store(card.Encrypted.Data, true)
	h.term.present(card)
	tx := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	if tx.Status != sterad.StatusDeclined || tx.ResponseCode != "81" || !strings.Contains(tx.Reason, "check the terminal") {
		t.Fatalf("81: %s %s %q", tx.Status, tx.ResponseCode, tx.Reason)
	}
	out := h.term.shown()
	if len(out) != 1 || out[0].Status != "declined" || !strings.Contains(strings.Join(out[0].Lines, " "), "check the terminal") {
		t.Fatalf("terminal: %+v", out)
	}
	if got := strings.Join(mtis(h.host.messages()), " "); got != "0200" {
		t.Fatalf("sent %s (an 81 is a known decline: nothing to reverse)", got)
	}
}

// Batch upload: each financial transaction goes by its TI (and TK), never
// a card number.
func TestBlindBatchUploadByTIAndToken(t *testing.T) {
	h := newBlindHarness(t)
	h.term.present(visaP2PE(11))
	sale := h.mustSubmit(sterad.Request{Op: "sale", Terminal: "FRONT001", Amount: "12800"})
	refund := h.mustSubmit(sterad.Request{Op: "refund", Original: sale.ID, Amount: "2800"})
	h.host.disagree.Store(true)
	b, err := h.gw.CloseBatch(context.Background())
	if err != nil || b.State != sterad.BatchClosed {
		t.Fatalf("close: %+v %v", b, err)
	}
	ups := map[string]*sterad.HostMessage{}
	for _, m := range h.host.messages() {
		if m.MTI == sterad.MTIBatchUpload {
			ups[m.TI] = m
		}
	}
	if len(ups) != 2 {
		t.Fatalf("uploads: %+v", ups)
	}
	if u := ups[sale.HostTI]; u == nil || u.Token != sale.Token || u.STAN != sale.STAN {
		t.Fatalf("sale upload: %+v", u)
	}
	if u := ups[refund.HostTI]; u == nil || u.Processing != sterad.ProcRefund {
		t.Fatalf("refund upload: %+v", u)
	}
}

// The clear mode keeps today's behaviour: a keyed card is taken and
// sealed (the positive control of the seal spy).
func TestClearModeKeepsKeyedCards(t *testing.T) {
	h := newHarness(t)
	tx := h.mustSubmit(keyedSale("4111111111111111", "1000"))
	if tx.Status != sterad.StatusApproved || !tx.HasCard {
		t.Fatalf("clear keyed sale: %+v", tx)
	}
	if c, err := h.db.OpenCard(context.Background(), tx.ID); err != nil || c.PAN != "4111111111111111" {
		t.Fatalf("clear mode card store: %v", err)
	}
}
