package acquirer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/dukpt"
)

// The card-data-blind tests (docs/acquirer-protocol.md §8) speak to the host
// through the gateway's own acquirer client, protocol.Client, as sterad
// does: requests carry the block an encrypting terminal made (DE 48 KS,
// EC) instead of DE 2, 14 and 35, and linked messages carry no card.

const merchantID = "HOTEL0000000001"

// blindGateway is the gateway's side: the real client, and the simulated
// encrypting terminals of docs/terminal-protocol.md §7.
type blindGateway struct {
	t     *testing.T
	cl    *protocol.Client
	clock *sterad.FakeClock
	stop  func()

	mu    sync.Mutex
	stans map[string]sterad.STAN
	tick  int
	terms map[string]*dukpt.Terminal
}

// startBlind runs a host and a signed-on client until the test ends.
func startBlind(t *testing.T, opts acquirer.Options) (*acquirer.Host, *blindGateway) {
	t.Helper()
	h, clock := startHost(t, opts)
	return h, connectBlind(t, h, clock, nil)
}

// connectBlind signs a client on to h. It carries on from prev, when set:
// the same terminals (their KSN counters), STANs and DE 7s.
func connectBlind(t *testing.T, h *acquirer.Host, clock *sterad.FakeClock, prev *blindGateway) *blindGateway {
	t.Helper()
	g := &blindGateway{t: t, clock: clock, stans: map[string]sterad.STAN{}, terms: map[string]*dukpt.Terminal{}}
	if prev != nil {
		prev.mu.Lock()
		g.stans, g.terms, g.tick = prev.stans, prev.terms, prev.tick
		prev.mu.Unlock()
	}
	cl, err := protocol.NewClient(protocol.ClientOptions{
		Address: h.Addr(), TerminalID: terminal2, MerchantID: merchantID,
		Timeout: waitFor, EchoInterval: time.Hour, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		ConnectTimeout: time.Second, Clock: clock,
		STAN: func(_ context.Context, term string, _ time.Time) (sterad.STAN, error) { return g.nextSTAN(term), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	g.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("client Run: %v", err)
			}
		})
	}
	t.Cleanup(g.stop)
	wctx, wcancel := context.WithTimeout(context.Background(), waitFor)
	defer wcancel()
	if err := cl.WaitOnline(wctx); err != nil {
		t.Fatalf("client not signed on: %v", err)
	}
	return g
}

func (g *blindGateway) nextSTAN(term string) sterad.STAN {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stans[term]++
	return g.stans[term]
}

// exchange sends req through the client and returns the answer, which
// must be a valid answer to req (sterad.CheckAnswer).
func (g *blindGateway) exchange(req *sterad.HostMessage) *sterad.HostMessage {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := g.cl.Exchange(ctx, req)
	if err != nil {
		g.t.Fatalf("%s STAN %s: %v", req.MTI, req.STAN, err)
	}
	if err := sterad.CheckAnswer(req, resp); err != nil {
		g.t.Fatalf("%s STAN %s: %v", req.MTI, req.STAN, err)
	}
	return resp
}

// base fills what every request has: a new STAN and a DE 7 one second
// after the previous request's.
func (g *blindGateway) base(mti sterad.MTI, term string) *sterad.HostMessage {
	stan := g.nextSTAN(term)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tick++
	return &sterad.HostMessage{
		MTI:         mti,
		STAN:        stan,
		Transmitted: g.clock.Now().UTC().Truncate(time.Second).Add(time.Duration(g.tick) * time.Second),
		TerminalID:  term,
		MerchantID:  merchantID,
	}
}

// later is m again with a DE 7 one tick later (same STAN).
func (g *blindGateway) later(m *sterad.HostMessage) *sterad.HostMessage {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tick++
	cp := *m
	cp.Transmitted = g.clock.Now().UTC().Truncate(time.Second).Add(time.Duration(g.tick) * time.Second)
	return &cp
}

// terminal is the encrypting terminal of DE 41 term.
func (g *blindGateway) terminal(term string) *dukpt.Terminal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.terms[term] == nil {
		g.terms[term] = dukpt.NewTestTerminal(term)
	}
	return g.terms[term]
}

// encrypt is a card read at terminal term: its block, on a new KSN.
func (g *blindGateway) encrypt(term string, c dukpt.Card) dukpt.Block {
	g.t.Helper()
	b, err := g.terminal(term).Encrypt(c)
	if err != nil {
		g.t.Fatalf("encrypt: %v", err)
	}
	return b
}

func withBlock(m *sterad.HostMessage, b dukpt.Block) *sterad.HostMessage {
	m.KSN, m.EncryptedCard = b.KSN.String(), b.Data
	return m
}

func withAmount(m *sterad.HostMessage, amount int64) *sterad.HostMessage {
	m.HasAmount, m.Amount, m.Currency = true, yen(amount), sterad.JPY
	return m
}

// chipData is EMV data without the tags that hold card data.
var chipData = sterad.Sensitive{0x9f, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x9f, 0x27, 0x01, 0x80}

// card is a card as the terminal reads it.
func card(pan sterad.PAN, exp string) dukpt.Card { return dukpt.Card{PAN: pan.Reveal(), Expiry: exp} }

// sale is a contactless sale at terminal, the card encrypted.
func (g *blindGateway) sale(c dukpt.Card, amount int64, token bool) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIFinancial, terminal), amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntryContactless, sterad.CondNormal, 1
	m.ICC, m.WantToken = chipData, token
	return withBlock(m, g.encrypt(terminal, c))
}

func (g *blindGateway) preauth(c dukpt.Card, amount int64, token bool) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIAuthorization, terminal), amount)
	m.Processing, m.Entry, m.Condition = sterad.ProcPurchase, sterad.EntryContactless, sterad.CondPreauth
	m.Stay, m.Reference, m.WantToken = stay, "RSV-0042", token
	return withBlock(m, g.encrypt(terminal, c))
}

// cardCheck is keyed at the terminal, encrypted, on the virtual terminal ID.
func (g *blindGateway) cardCheck(c dukpt.Card, token bool) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIAuthorization, terminal2), 0)
	m.Processing, m.Entry, m.Condition, m.WantToken = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondVerification, token
	return withBlock(m, g.encrypt(terminal2, c))
}

// refund is an unlinked refund, the card read at the terminal.
func (g *blindGateway) refund(c dukpt.Card, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIFinancial, terminal), amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcRefund, sterad.EntryContactless, sterad.CondNormal, 1
	return withBlock(m, g.encrypt(terminal, c))
}

// standIn is the advice of an offline approval: the block as the terminal
// made it, kept in the queue.
func (g *blindGateway) standIn(c dukpt.Card, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIAdvice, terminal), amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntrySwipe, sterad.CondNormal, 1
	m.AuthCode, m.StandIn = "S00001", true
	return withBlock(m, g.encrypt(terminal, c))
}

// The linked messages: no card, found by TI, DE 90 or TK.

func (g *blindGateway) incremental(ti string, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIAuthorization, terminal2), amount)
	m.Processing, m.Entry, m.Condition = sterad.ProcPurchase, sterad.EntryKeyed, sterad.CondPreauth
	m.MerchantInitiated, m.TI = sterad.MIIncremental, ti
	return m
}

func (g *blindGateway) completion(req, resp *sterad.HostMessage, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIAdvice, req.TerminalID), amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, req.Entry, sterad.CondPreauth, 1
	m.RRN, m.AuthCode, m.TI, m.Original = resp.RRN, resp.AuthCode, resp.TI, original(req)
	return m
}

func (g *blindGateway) refundByTI(ti string, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIFinancial, terminal2), amount)
	m.Processing, m.Entry, m.Condition, m.Batch, m.TI = sterad.ProcRefund, sterad.EntryKeyed, sterad.CondNormal, 1, ti
	return m
}

// charge is a card-not-present charge of a guarantee by token: a no-show
// (NS), a late-cancellation fee (CX) or an advance deposit (DP).
func (g *blindGateway) charge(mi, token string, amount int64) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIFinancial, terminal2), amount)
	m.Processing, m.Entry, m.Condition, m.Batch = sterad.ProcPurchase, sterad.EntryToken, sterad.CondMailPhone, 1
	m.MerchantInitiated, m.Token, m.Stay, m.Reference = mi, token, stay, "RSV-0042"
	return m
}

// linked is req as a void or reversal carries it: its DE 3, 4, 11, 22, 25,
// 41, a later DE 7, DE 90; no card.
func (g *blindGateway) linked(req *sterad.HostMessage, mti sterad.MTI, rr string) *sterad.HostMessage {
	m := g.later(req)
	m.MTI, m.Batch, m.ReversalReason, m.Original = mti, 1, rr, original(req)
	m.KSN, m.EncryptedCard, m.ICC, m.WantToken = "", "", nil, false
	m.Stay, m.Reference, m.MerchantInitiated, m.AuthCode, m.StandIn, m.Token = nil, "", "", "", false, ""
	return m
}

func (g *blindGateway) void(req, resp *sterad.HostMessage) *sterad.HostMessage {
	m := g.linked(req, sterad.MTIVoid, sterad.RRVoid)
	m.RRN, m.TI = resp.RRN, resp.TI
	return m
}

func (g *blindGateway) reversal(req *sterad.HostMessage) *sterad.HostMessage {
	return g.linked(req, sterad.MTIReversal, sterad.RRTimeout)
}

// upload is the 0320 of a ledger transaction by its TI (and token).
func (g *blindGateway) upload(tx acquirer.Transaction) *sterad.HostMessage {
	m := withAmount(g.base(sterad.MTIBatchUpload, tx.Terminal), tx.Amount.Minor())
	m.STAN, m.Processing = mustSTAN(g.t, tx.STAN), sterad.ProcPurchase
	if tx.Kind == acquirer.KindRefund {
		m.Processing = sterad.ProcRefund
	}
	m.Batch, m.RRN, m.AuthCode, m.TI, m.Token = tx.Batch, tx.RRN, tx.AuthCode, tx.TI, tx.Token
	if m.AuthCode == "" {
		m.AuthCode = "000000"
	}
	return m
}

func mustSTAN(t *testing.T, s string) sterad.STAN {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("STAN %q", s)
	}
	return sterad.STAN(n)
}

const maskedVisa = "411111******1111"

// assertNoCardNumbers checks that b holds none of the full card numbers.
func assertNoCardNumbers(t *testing.T, what string, b []byte, pans ...sterad.PAN) {
	t.Helper()
	for _, p := range pans {
		if bytes.Contains(b, []byte(p.Reveal())) {
			t.Errorf("%s contains a full card number (%s)", what, p.Masked())
		}
	}
}

// TestBlindCardPresent: every card-present request may carry the
// encrypted card; the host decrypts it, approves, and TR=1 returns a
// token; the ledger and the journal keep the masked number only.
func TestBlindCardPresent(t *testing.T) {
	dir := t.TempDir()
	h, g := startBlind(t, acquirer.Options{DataDir: dir})
	visaCard := card(visa, validExp)
	tests := []struct {
		name      string
		req       func() *sterad.HostMessage
		want      string
		wantToken bool
		wantTI    bool
	}{
		{"sale with TR=1", func() *sterad.HostMessage { return g.sale(visaCard, 12800, true) }, "00", true, true},
		{"sale without TR", func() *sterad.HostMessage { return g.sale(visaCard, 5000, false) }, "00", false, true},
		{"pre-authorization with TR=1", func() *sterad.HostMessage { return g.preauth(visaCard, 30000, true) }, "00", true, true},
		{"card check with TR=1", func() *sterad.HostMessage { return g.cardCheck(visaCard, true) }, "85", true, false},
		{"unlinked refund", func() *sterad.HostMessage { return g.refund(visaCard, 2000) }, "00", false, true},
		{"stand-in advice", func() *sterad.HostMessage { return g.standIn(visaCard, 8800) }, "00", false, true},
		{"swipe with its track 2", func() *sterad.HostMessage {
			return g.sale(dukpt.Card{PAN: visa.Reveal(), Expiry: validExp, Track2: visa.Reveal() + "=28121010000012300"}, 1500, false)
		}, "00", false, true},
	}
	tokens := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			if req.PAN != "" || !req.Expiry.IsZero() || len(req.Track2) > 0 {
				t.Fatal("the request carries the card in clear")
			}
			r := g.exchange(req)
			wantCode(t, tt.name, r, tt.want)
			if (r.TI != "") != tt.wantTI {
				t.Errorf("TI %q, want one: %v", r.TI, tt.wantTI)
			}
			switch {
			case !tt.wantToken && r.Token != "":
				t.Errorf("token %q without TR=1", r.Token)
			case tt.wantToken && (len(r.Token) != 16 || tokens[r.Token]):
				t.Errorf("token %q: want 16 characters, new", r.Token)
			}
			tokens[r.Token] = true
		})
	}
	l := h.Ledger()
	if len(l.Transactions) != 5 || len(l.Authorizations) != 2 {
		t.Fatalf("ledger: %d transactions, %d authorizations; want 5 and 2", len(l.Transactions), len(l.Authorizations))
	}
	for _, tx := range l.Transactions {
		if tx.MaskedPAN != maskedVisa || tx.Status != acquirer.StatusApproved {
			t.Errorf("%s: masked %q, status %s", tx.Kind, tx.MaskedPAN, tx.Status)
		}
	}
	if tx := l.Transactions[0]; tx.Token == "" {
		t.Errorf("the sale with TR=1 keeps no token: %+v", tx)
	}
	lj, _ := json.Marshal(l)
	assertNoCardNumbers(t, "the ledger", lj, visa)
	h.Close()
	journal, err := os.ReadFile(filepath.Join(dir, acquirer.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	assertNoCardNumbers(t, "the journal", journal, visa)
}

// TestBlindUnreadable: a block the host cannot decrypt or parse, or a KSN
// the terminal ID already used, is answered 81 and charges nothing.
func TestBlindUnreadable(t *testing.T) {
	h, g := startBlind(t, acquirer.Options{})
	visaCard := card(visa, validExp)
	// Another terminal's initial key, not derived from the test BDK.
	foreign := dukpt.NewTerminal(dukpt.Key{1, 2, 3}, dukpt.NewInitialKeyID(dukpt.TestBDKID, 7))
	replayed := g.sale(visaCard, 1000, true)
	wantCode(t, "the first use of a block", g.exchange(replayed), "00")
	declined := g.sale(card("4000000000000002", validExp), 1000, false)
	wantCode(t, "a declined card", g.exchange(declined), "05")

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name string
		edit func(m *sterad.HostMessage)
	}{
		{"garbled block: one hex digit changed", func(m *sterad.HostMessage) { m.EncryptedCard = flip(m.EncryptedCard, 5) }},
		{"garbled block: last block changed", func(m *sterad.HostMessage) {
			m.EncryptedCard = flip(m.EncryptedCard, len(m.EncryptedCard)-1)
		}},
		{"block not whole AES blocks", func(m *sterad.HostMessage) { m.EncryptedCard = m.EncryptedCard[:30] }},
		{"block not hex", func(m *sterad.HostMessage) { m.EncryptedCard = strings.Repeat("Z", 32) }},
		{"block in lowercase hex", func(m *sterad.HostMessage) { m.EncryptedCard = strings.ToLower(m.EncryptedCard) }},
		{"wrong KSN: the next counter", func(m *sterad.HostMessage) {
			k, _ := dukpt.ParseKSN(m.KSN)
			m.KSN = dukpt.NewKSN(k.InitialKeyID(), k.Counter()+1).String()
		}},
		{"wrong KSN: another terminal's", func(m *sterad.HostMessage) {
			k, _ := dukpt.ParseKSN(m.KSN)
			m.KSN = dukpt.NewKSN(dukpt.NewInitialKeyID(dukpt.TestBDKID, 42), k.Counter()).String()
		}},
		{"KSN of a BDK the host does not hold", func(m *sterad.HostMessage) {
			k, _ := dukpt.ParseKSN(m.KSN)
			m.KSN = dukpt.NewKSN(dukpt.NewInitialKeyID(0x0BADBD00, k.InitialKeyID().DerivationID()), k.Counter()).String()
		}},
		{"KSN counter zero", func(m *sterad.HostMessage) {
			k, _ := dukpt.ParseKSN(m.KSN)
			m.KSN = dukpt.NewKSN(k.InitialKeyID(), 0).String()
		}},
		{"KSN not hex", func(m *sterad.HostMessage) { m.KSN = "NOTAKSN-NOTAKSN-NOTAKSN-" }},
		{"block under a key the host cannot derive", func(m *sterad.HostMessage) {
			b, err := foreign.Encrypt(visaCard)
			if err != nil {
				t.Fatal(err)
			}
			withBlock(m, b)
		}},
		{"replayed KSN: an approved request's block in a new request", func(m *sterad.HostMessage) {
			m.KSN, m.EncryptedCard = replayed.KSN, replayed.EncryptedCard
		}},
		{"replayed KSN: a declined request's block in a new request", func(m *sterad.HostMessage) {
			m.KSN, m.EncryptedCard = declined.KSN, declined.EncryptedCard
		}},
		{"replayed KSN: another block on a used KSN", func(m *sterad.HostMessage) { m.KSN = replayed.KSN }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := g.sale(visaCard, 1000, true)
			tt.edit(req)
			r := g.exchange(req)
			wantCode(t, tt.name, r, "81")
			if r.RRN != "" || r.TI != "" || r.Token != "" || r.AuthCode != "" {
				t.Errorf("81 carries RRN %q, TI %q, TK %q, DE 38 %q", r.RRN, r.TI, r.Token, r.AuthCode)
			}
			if got := sterad.LookupResponse(r.ResponseCode).Outcome; got != sterad.OutcomeDeclined {
				t.Errorf("81 read as outcome %v, want declined", got)
			}
		})
	}
	t.Run("replay in a card check and a pre-authorization", func(t *testing.T) {
		check := g.cardCheck(visaCard, true)
		check.TerminalID, check.STAN = terminal, g.nextSTAN(terminal)
		check.KSN, check.EncryptedCard = replayed.KSN, replayed.EncryptedCard
		wantCode(t, "card check", g.exchange(check), "81")
		pre := g.preauth(visaCard, 30000, false)
		pre.KSN, pre.EncryptedCard = replayed.KSN, replayed.EncryptedCard
		wantCode(t, "pre-authorization", g.exchange(pre), "81")
	})
	l := h.Ledger()
	if len(l.Transactions) != 1 || len(l.Authorizations) != 0 {
		t.Errorf("ledger: %d transactions, %d authorizations; want the first sale only", len(l.Transactions), len(l.Authorizations))
	}
}

// TestBlindRepeat: a repeat is answered like its original, not as a replay
// of its block: a duplicate 0200 (same DE 41, 11, 7), a 0221 with its
// 0220's DE 7, a 0221 sent later with a DE 7 of its own.
func TestBlindRepeat(t *testing.T) {
	h, g := startBlind(t, acquirer.Options{})
	sale := g.sale(card(visa, validExp), 12800, true)
	first := g.exchange(sale)
	wantCode(t, "sale", first, "00")
	again := g.exchange(sale)
	if again.ResponseCode != "00" || again.RRN != first.RRN || again.TI != first.TI || again.Token != first.Token || again.AuthCode != first.AuthCode {
		t.Errorf("duplicate answered %s RRN %s TI %s TK %s, want the original's 00 %s %s %s",
			again.ResponseCode, again.RRN, again.TI, again.Token, first.RRN, first.TI, first.Token)
	}

	advice := g.standIn(card(visa, validExp), 8800)
	adviceResp := g.exchange(advice)
	wantCode(t, "advice", adviceResp, "00")
	for _, rep := range []*sterad.HostMessage{
		func() *sterad.HostMessage { m := *advice; m.MTI = sterad.MTIAdviceRepeat; return &m }(),
		func() *sterad.HostMessage { m := g.later(advice); m.MTI = sterad.MTIAdviceRepeat; return m }(),
	} {
		r := g.exchange(rep)
		if r.ResponseCode != "00" || r.TI != adviceResp.TI || r.RRN != adviceResp.RRN {
			t.Errorf("0221 answered %s TI %s, want the 0220's 00 TI %s", r.ResponseCode, r.TI, adviceResp.TI)
		}
	}
	declined := g.standIn(card("4000000000009995", validExp), 8800)
	wantCode(t, "advice for a card the host declines", g.exchange(declined), "51")
	rep := *declined
	rep.MTI = sterad.MTIAdviceRepeat
	wantCode(t, "its repeat", g.exchange(&rep), "51")

	l := h.Ledger()
	if len(l.Approved) != 2 || l.Totals.DebitAmount.Cmp(yen(12800+8800)) != 0 {
		t.Errorf("approved %d for %s, want the sale and the advice once each", len(l.Approved), l.Totals.DebitAmount)
	}
}

// TestBlindCardRules: docs/acquirer-protocol.md §7 applies to the decrypted card.
func TestBlindCardRules(t *testing.T) {
	h, g := startBlind(t, acquirer.Options{})
	tests := []struct {
		name   string
		op     string
		card   dukpt.Card
		amount int64
		want   string
	}{
		{"approves", "sale", card(visa, validExp), 12800, "00"},
		{"jcb approves", "sale", card("3530111333300000", validExp), 12800, "00"},
		{"luhn failure", "sale", card("4111111111111112", validExp), 12800, "14"},
		{"do not honor", "sale", card("4000000000000002", validExp), 12800, "05"},
		{"insufficient funds", "sale", card("4000000000009995", validExp), 12800, "51"},
		{"expired card number", "sale", card("4000000000000069", validExp), 12800, "54"},
		{"expiry in the past", "sale", card(visa, pastExp), 12800, "54"},
		{"malfunction", "sale", card("4000000000000226", validExp), 12800, "96"},
		{"amount of 10,000,000", "sale", card(visa, validExp), 10_000_000, "13"},
		{"pre-authorization, do not honor", "preauth", card("4000000000000002", validExp), 30000, "05"},
		{"pre-authorization, expired", "preauth", card(visa, pastExp), 30000, "54"},
		{"card check, insufficient funds", "cardcheck", card("4000000000009995", validExp), 0, "51"},
		{"card check, expired", "cardcheck", card(visa, pastExp), 0, "54"},
		{"refund, luhn failure", "refund", card("4111111111111112", validExp), 1000, "14"},
		{"stand-in advice, do not honor", "standin", card("4000000000000002", validExp), 8800, "05"},
		{"stand-in advice, the card never answered", "standin", card("4000000000000119", validExp), 8800, "05"},
		{"swipe whose track 2 is another card's", "sale", dukpt.Card{PAN: visa.Reveal(), Expiry: validExp, Track2: "5555555555554444=28121010000012300"}, 1500, "81"},
		{"swipe whose track 2 has another expiry", "sale", dukpt.Card{PAN: visa.Reveal(), Expiry: validExp, Track2: visa.Reveal() + "=29121010000012300"}, 1500, "81"},
		{"swipe whose track 2 is not track 2", "sale", dukpt.Card{PAN: visa.Reveal(), Expiry: validExp, Track2: "%B4111111111111111^TEST^2812"}, 1500, "81"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req *sterad.HostMessage
			switch tt.op {
			case "sale":
				req = g.sale(tt.card, tt.amount, true)
			case "preauth":
				req = g.preauth(tt.card, tt.amount, true)
			case "cardcheck":
				req = g.cardCheck(tt.card, true)
			case "refund":
				req = g.refund(tt.card, tt.amount)
			case "standin":
				req = g.standIn(tt.card, tt.amount)
			}
			r := g.exchange(req)
			wantCode(t, tt.name, r, tt.want)
			if !r.Approved() && r.Token != "" {
				t.Errorf("a decline carries token %q", r.Token)
			}
		})
	}
	t.Run("the card the host never answers", func(t *testing.T) {
		req := g.sale(card("4000000000000119", validExp), 5000, true)
		ctx, cancel := context.WithTimeout(context.Background(), quietFor)
		defer cancel()
		if r, err := g.cl.Exchange(ctx, req); !errors.Is(err, sterad.ErrNoResponse) {
			t.Fatalf("answered %v, %v; want no response", r, err)
		}
		wantCode(t, "its reversal", g.exchange(g.reversal(req)), "00")
	})
	l := h.Ledger()
	if len(l.Approved) != 2 {
		t.Errorf("approved %d, want the two approving sales", len(l.Approved))
	}
	for _, tx := range l.Transactions {
		if tx.Kind == acquirer.KindStandIn && tx.Status != acquirer.StatusDeclinedAdvice {
			t.Errorf("advice for a declining card is %s, want declined_advice", tx.Status)
		}
	}
}

// TestBlindLinked: everything after the first read goes by TI, DE 90 or
// TK, without card data: incremental, completion, refund, void, reversal,
// no-show, late-cancellation fee, advance deposit.
func TestBlindLinked(t *testing.T) {
	h, g := startBlind(t, acquirer.Options{})
	visaCard := card(visa, validExp)

	pre := g.preauth(visaCard, 30000, true)
	preResp := g.exchange(pre)
	wantCode(t, "pre-authorization", preResp, "00")
	wantCode(t, "incremental by TI", g.exchange(g.incremental(preResp.TI, 12000)), "00")
	comp := g.completion(pre, preResp, 41500)
	compResp := g.exchange(comp)
	wantCode(t, "completion by TI", compResp, "00")
	wantCode(t, "refund of the completion by TI", g.exchange(g.refundByTI(preResp.TI, 1500)), "00")

	sale := g.sale(visaCard, 5000, false)
	saleResp := g.exchange(sale)
	wantCode(t, "sale", saleResp, "00")
	wantCode(t, "void by DE 41 + DE 90 and TI", g.exchange(g.void(sale, saleResp)), "00")

	lost := g.sale(visaCard, 7000, false)
	wantCode(t, "sale", g.exchange(lost), "00")
	wantCode(t, "reversal by DE 41 + DE 90", g.exchange(g.reversal(lost)), "00")

	check := g.cardCheck(card("5555555555554444", validExp), true)
	checkResp := g.exchange(check)
	wantCode(t, "card check", checkResp, "85")
	for _, mi := range []string{sterad.MINoShow, "CX", "DP"} {
		wantCode(t, "charge MI="+mi+" by the card check's token", g.exchange(g.charge(mi, checkResp.Token, 18000)), "00")
	}
	wantCode(t, "deposit by the pre-authorization's token", g.exchange(g.charge("DP", preResp.Token, 10000)), "00")
	wantCode(t, "charge by an unknown token", g.exchange(g.charge("CX", "TKXXX00000000000", 18000)), "14")
	wantCode(t, "charge by token, amount too large", g.exchange(g.charge("NS", checkResp.Token, 10_000_000)), "13")
	otherMerchant := g.charge("NS", checkResp.Token, 18000)
	otherMerchant.MerchantID = "OTHERHOTEL00001"
	wantCode(t, "a token of another merchant", g.exchange(otherMerchant), "14")
	keyed := g.charge("NS", checkResp.Token, 18000)
	keyed.Entry = sterad.EntryKeyed
	wantCode(t, "a token with DE 22 other than 102", g.exchange(keyed), "30")

	l := h.Ledger()
	type entry struct{ kind, status, masked string }
	var got []entry
	for _, tx := range l.Transactions {
		got = append(got, entry{tx.Kind, tx.Status, tx.MaskedPAN})
	}
	const mc = "555555******4444"
	want := []entry{
		{acquirer.KindCompletion, acquirer.StatusApproved, maskedVisa},
		{acquirer.KindRefund, acquirer.StatusApproved, maskedVisa},
		{acquirer.KindSale, acquirer.StatusVoided, maskedVisa},
		{acquirer.KindSale, acquirer.StatusReversed, maskedVisa},
		{acquirer.KindNoShow, acquirer.StatusApproved, mc},
		{acquirer.KindCancelFee, acquirer.StatusApproved, mc},
		{acquirer.KindDeposit, acquirer.StatusApproved, mc},
		{acquirer.KindDeposit, acquirer.StatusApproved, maskedVisa},
	}
	if len(got) != len(want) {
		t.Fatalf("ledger transactions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transaction %d: %v, want %v", i, got[i], want[i])
		}
	}
	if p := l.Authorizations[0]; p.Kind != acquirer.KindPreauth || p.Status != acquirer.StatusCompleted || p.Total.Cmp(yen(42000)) != 0 {
		t.Errorf("pre-authorization %+v, want completed with a total of 42000", p)
	}
	// Debits: completion 41500, no-show, fee, deposit 18000 each, deposit
	// 10000; credit: the refund.
	if tot := l.Totals; tot.DebitCount != 5 || tot.DebitAmount.Cmp(yen(41500+3*18000+10000)) != 0 || tot.CreditCount != 1 {
		t.Errorf("totals %+v", tot)
	}
}

// TestBlindLinkedWithCardData: a linked message carries no card data
// (docs/acquirer-protocol.md §8): KS and EC there are a format error, and the
// block is not consumed.
func TestBlindLinkedWithCardData(t *testing.T) {
	_, g := startBlind(t, acquirer.Options{})
	pre := g.preauth(card(visa, validExp), 30000, false)
	preResp := g.exchange(pre)
	sale := g.sale(card(visa, validExp), 5000, false)
	saleResp := g.exchange(sale)
	block := g.encrypt(terminal, card(visa, validExp))
	tests := []struct {
		name string
		req  *sterad.HostMessage
	}{
		{"incremental", withBlock(g.incremental(preResp.TI, 1000), block)},
		{"completion", withBlock(g.completion(pre, preResp, 30000), block)},
		{"void", withBlock(g.void(sale, saleResp), block)},
		{"reversal", withBlock(g.reversal(sale), block)},
		{"chip data with the PAN beside the block", func() *sterad.HostMessage {
			m := g.sale(card(visa, validExp), 1000, false)
			m.ICC = append(append(sterad.Sensitive{}, chipData...), 0x5a, 0x08, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11)
			return m
		}()},
		{"chip data with track 2 inside a template", func() *sterad.HostMessage {
			m := g.sale(card(visa, validExp), 1000, false)
			m.ICC = sterad.Sensitive{0x77, 0x0a, 0x57, 0x08, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.name, g.exchange(tt.req), "30")
		})
	}
	// Refused as format errors, the block was not used: it still buys.
	wantCode(t, "the block in a sale", g.exchange(withBlock(g.sale(card(visa, validExp), 1000, false), block)), "00")
}

// TestBlindUpload: after 95, the batch is uploaded by TI (and TK) without
// DE 2, and the host matches each upload to its transaction.
func TestBlindUpload(t *testing.T) {
	h, g := startBlind(t, acquirer.Options{})
	h.SetDisagree(true)
	wantCode(t, "sale", g.exchange(g.sale(card(visa, validExp), 12800, true)), "00")
	wantCode(t, "sale", g.exchange(g.sale(card("5555555555554444", validExp), 3000, false)), "00")
	wantCode(t, "unlinked refund", g.exchange(g.refund(card(visa, validExp), 1000)), "00")
	l := h.Ledger()
	rec := func(upload bool) *sterad.HostMessage {
		m := g.base(sterad.MTIReconciliation, terminal)
		m.Batch, m.Totals, m.BatchUpload = 1, &sterad.Totals{DebitCount: 2, DebitAmount: 15800, CreditCount: 1, CreditAmount: 1000}, upload
		return m
	}
	wantCode(t, "reconciliation", g.exchange(rec(false)), "95")
	for _, tx := range l.Approved {
		m := g.upload(tx)
		if m.PAN != "" || m.TI == "" {
			t.Fatalf("upload carries DE 2 or no TI: %+v", m)
		}
		wantCode(t, "upload of "+tx.Kind, g.exchange(m), "00")
	}
	wrong := g.upload(l.Approved[0])
	wrong.TI = l.Approved[1].TI
	wantCode(t, "upload naming another transaction's TI", g.exchange(wrong), "00")
	wantCode(t, "reconciliation after the upload", g.exchange(rec(true)), "00")

	b, ok := h.Ledger().Batch(terminal, 1)
	if !ok || b.State != acquirer.BatchClosed || len(b.Uploads) != 4 {
		t.Fatalf("batch %+v", b)
	}
	for i, u := range b.Uploads[:3] {
		if !u.Matched || u.TI != l.Approved[i].TI || u.MaskedPAN != l.Approved[i].MaskedPAN {
			t.Errorf("upload %d: %+v, want matched to %s", i, u, l.Approved[i].TI)
		}
	}
	if u := b.Uploads[0]; u.Token == "" || u.Token != l.Approved[0].Token {
		t.Errorf("upload of the sale with a token: token %q, want %q", u.Token, l.Approved[0].Token)
	}
	if b.Uploads[3].Matched {
		t.Error("an upload naming another transaction's TI matched")
	}
}

// TestBlindRestart: the KSNs a terminal used and the tokens survive a
// restart of a host with a DataDir.
func TestBlindRestart(t *testing.T) {
	dir := t.TempDir()
	clock := sterad.NewFakeClock(testStart)
	h1 := acquirer.New(acquirer.Options{Clock: clock, DataDir: dir})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h1.Serve(ln) }()
	testutil.Eventually(t, "first host listening", func() bool { return h1.Addr() != "" })
	g1 := connectBlind(t, h1, clock, nil)
	sale := g1.sale(card(visa, validExp), 12800, true)
	saleResp := g1.exchange(sale)
	wantCode(t, "sale", saleResp, "00")
	g1.stop()
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	<-done

	h2, _ := startHost(t, acquirer.Options{Clock: clock, DataDir: dir})
	g2 := connectBlind(t, h2, clock, g1)
	if r := g2.exchange(sale); r.RRN != saleResp.RRN || r.Token != saleResp.Token {
		t.Errorf("duplicate after restart answered RRN %s TK %s, want %s %s", r.RRN, r.Token, saleResp.RRN, saleResp.Token)
	}
	replay := g2.sale(card(visa, validExp), 500, false)
	replay.KSN, replay.EncryptedCard = sale.KSN, sale.EncryptedCard
	wantCode(t, "the block again after a restart", g2.exchange(replay), "81")
	wantCode(t, "a new block", g2.exchange(g2.sale(card(visa, validExp), 500, false)), "00")
	wantCode(t, "no-show by a token issued before the restart", g2.exchange(g2.charge("NS", saleResp.Token, 9000)), "00")
}
