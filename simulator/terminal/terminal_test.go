package terminal_test

import (
	"fmt"
	"github.com/sterad/sterad/internal/testutil"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

func TestHello(t *testing.T) {
	term := newTerminal(t)
	g, r := connect(t, term)
	want := protocol.HelloResp{Proto: 1, TerminalID: "FRONT001", Kind: "fixed", Model: "stera-terminal",
		FW: terminal.DefaultFW, BootID: term.BootID(), Caps: []string{"chip", "ctls", "swipe", "keyed", "printer", "p2pe"}}
	if r.Proto != want.Proto || r.TerminalID != want.TerminalID || r.Kind != want.Kind || r.Model != want.Model ||
		r.FW != want.FW || r.BootID != want.BootID || !slices.Equal(r.Caps, want.Caps) || r.Busy || r.CurrentTxn != nil {
		t.Errorf("HELLO_RESP = %+v, want %+v", r, want)
	}
	if len(r.BootID) < 8 {
		t.Errorf("boot_id %q is too short to be random", r.BootID)
	}

	g.send(protocol.TypeHello, protocol.Hello{Proto: 2, GatewayID: "GW"})
	g.errorMsg("", protocol.ErrCodeUnsupported)
	g.sendRaw(protocol.TypeHello, []byte(`{"proto":`))
	g.errorMsg("", protocol.ErrCodeBadRequest)
	if again := g.hello(); again.BootID != r.BootID {
		t.Errorf("boot_id changed without a reboot: %s → %s", r.BootID, again.BootID)
	}
}

func TestHelloHandheldDefaults(t *testing.T) {
	term := terminal.New(terminal.Config{Kind: sterad.KindHandheld, Link: termLink})
	_, r := connect(t, term)
	if r.TerminalID != "HAND0001" || r.Kind != "handheld" || r.Model != "stera-mobile" ||
		!slices.Equal(r.Caps, []string{"chip", "ctls", "keyed", "printer", "p2pe"}) {
		t.Errorf("HELLO_RESP = %+v", r)
	}
}

func TestPingPong(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	for range 3 {
		g.send(protocol.TypePing, nil)
		f := g.expect(protocol.TypePong, nil)
		if len(f.Payload) != 0 {
			t.Errorf("PONG carries %d payload bytes", len(f.Payload))
		}
	}
}

func TestSale(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)

	g.send(protocol.TypeReadCard, readCard("T1"))
	if p := g.progress("T1", protocol.ProgressPresentCard); p.TimeoutS != 60 {
		t.Errorf("timeout_s = %d, want 60", p.TimeoutS)
	}
	c := g.card("T1")
	if c.Entry != "chip" || c.PAN != terminal.DefaultPAN || c.Expiry != "2811" || c.Brand != "visa" || c.Track2 != "" {
		t.Errorf("CARD = %+v (track2 %q)", c, c.Track2)
	}
	if !strings.HasPrefix(c.ICC, "9F2608") || !strings.Contains(c.ICC, "9F0206000000012800") || !strings.Contains(c.ICC, "5F2A020392") {
		t.Errorf("icc = %s, want 9F26 first, amount 12800 and JPY", c.ICC)
	}
	if st := term.State(); st.State != terminal.StateCardSent || st.CurrentTxn == nil || *st.CurrentTxn != "T1" {
		t.Errorf("state = %s %v, want card_sent T1", st.State, st.CurrentTxn)
	}

	g.send(protocol.TypeOutcome, outcome("T1"))
	g.progress("T1", protocol.ProgressPrinting)
	if r := g.result("T1"); r.Status != "done" || !r.Printed || r.Reason != "" {
		t.Errorf("RESULT = %+v", r)
	}
	testutil.Eventually(t, "idle", idle(term))

	slips := term.Slips()
	if len(slips) != 1 {
		t.Fatalf("%d slips, want 1", len(slips))
	}
	s := slips[0]
	if s.TxnID != "T1" || s.Op != "sale" || s.Status != "approved" || s.AuthCode != "A12345" ||
		s.MaskedPAN != "411111******1111" || s.Brand != "visa" || s.Entry != "chip" ||
		!slices.Equal(s.Lines, outcome("T1").Lines) || !s.PrintedAt.Equal(testNow) {
		t.Errorf("slip = %+v", s)
	}

	// The next transaction runs on the same session.
	if r := g.sale("T2"); r.Status != "done" {
		t.Errorf("second sale: %+v", r)
	}
}

func TestNoPrinter(t *testing.T) {
	term := newTerminal(t, func(c *terminal.Config) { c.Caps = []string{"chip", "ctls"} })
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if c := g.card("T1"); c.Entry != "chip" {
		t.Errorf("entry = %s", c.Entry)
	}
	g.send(protocol.TypeOutcome, outcome("T1"))
	if r := g.result("T1"); r.Status != "done" || r.Printed {
		t.Errorf("RESULT = %+v, want done, not printed", r)
	}
	if n := len(term.Slips()); n != 0 {
		t.Errorf("%d slips without a printer", n)
	}
}

func TestEntryModes(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)

	// Swipe: track 2, no chip data, brand from the PAN.
	mustPush(t, term, terminal.Card{PAN: "5555555555554444", Expiry: "2907", Entry: "swipe"})
	g.send(protocol.TypeReadCard, readCard("S1"))
	g.progress("S1", protocol.ProgressPresentCard)
	c := g.card("S1")
	if c.Entry != "swipe" || c.Brand != "mastercard" || c.Expiry != "2907" || c.ICC != "" ||
		!strings.HasPrefix(c.Track2, "5555555555554444=2907101") || len(c.Track2) > 37 {
		t.Errorf("swipe CARD = %+v track2 %q icc %q", c, c.Track2, c.ICC)
	}
	g.send(protocol.TypeOutcome, outcome("S1"))
	g.progress("S1", protocol.ProgressPrinting)
	g.result("S1")

	// Keyed for a card check: KEY_ENTRY, neither track 2 nor chip data.
	mustPush(t, term, terminal.Card{PAN: "3530111333300000", Expiry: "2801", Entry: "keyed"})
	rc := protocol.ReadCard{TxnID: "K1", Op: "cardcheck", Currency: "JPY", Entry: []string{"keyed"}}
	g.send(protocol.TypeReadCard, rc)
	g.progress("K1", protocol.ProgressKeyEntry)
	c = g.card("K1")
	if c.Entry != "keyed" || c.Brand != "jcb" || c.Track2 != "" || c.ICC != "" {
		t.Errorf("keyed CARD = %+v", c)
	}
	g.send(protocol.TypeOutcome, outcome("K1"))
	g.progress("K1", protocol.ProgressPrinting)
	g.result("K1")

	// The card's entry is not allowed: the first allowed one.
	mustPush(t, term, terminal.Card{Entry: "chip"})
	rc = readCard("C1")
	rc.Entry = []string{"ctls", "swipe"}
	g.send(protocol.TypeReadCard, rc)
	g.progress("C1", protocol.ProgressPresentCard)
	if c := g.card("C1"); c.Entry != "ctls" || c.ICC == "" {
		t.Errorf("entry = %s icc %q, want ctls with chip data", c.Entry, c.ICC)
	}
	g.send(protocol.TypeOutcome, outcome("C1"))
	g.progress("C1", protocol.ProgressPrinting)
	g.result("C1")

	// Only keyed allowed: keyed, whatever the card.
	rc = protocol.ReadCard{TxnID: "N1", Op: "noshow", Amount: "30000", Currency: "JPY", Entry: []string{"keyed"}}
	g.send(protocol.TypeReadCard, rc)
	g.progress("N1", protocol.ProgressKeyEntry)
	if c := g.card("N1"); c.Entry != "keyed" {
		t.Errorf("entry = %s, want keyed", c.Entry)
	}
}

func TestHandheldHasNoSwipe(t *testing.T) {
	term := newTerminal(t, func(c *terminal.Config) { c.Kind = sterad.KindHandheld; c.Caps = nil })
	g, _ := connect(t, term)
	mustPush(t, term, terminal.Card{Entry: "swipe"})
	rc := readCard("H1")
	rc.Entry = []string{"swipe", "chip"}
	g.send(protocol.TypeReadCard, rc)
	g.progress("H1", protocol.ProgressPresentCard)
	if c := g.card("H1"); c.Entry != "chip" {
		t.Errorf("entry = %s, want chip", c.Entry)
	}
	rc = readCard("H2")
	rc.Entry = []string{"swipe"}
	g.send(protocol.TypeReadCard, rc)
	g.errorMsg("H2", protocol.ErrCodeBadRequest)
}

func TestCustomerCancel(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustPush(t, term, terminal.Card{Action: terminal.ActionCancel})
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if r := g.result("T1"); r.Status != "cancelled" || r.Reason != terminal.ReasonCustomerCancel || r.Printed {
		t.Errorf("RESULT = %+v", r)
	}
	if st := g.status("T1"); st.State != "done" || st.Result == nil || st.Result.Status != "cancelled" {
		t.Errorf("STATUS_RESP = %+v", st)
	}
	testutil.Eventually(t, "idle", idle(term))
}

func TestCancelBeforeCard(t *testing.T) {
	for _, card := range []terminal.Card{
		{Action: terminal.ActionWalkaway},
		{DelayMS: 600_000}, // the customer is still looking for the card
	} {
		t.Run(card.Action, func(t *testing.T) {
			term := newTerminal(t)
			g, _ := connect(t, term)
			mustPush(t, term, card)
			g.send(protocol.TypeReadCard, readCard("T1"))
			g.progress("T1", protocol.ProgressPresentCard)
			if st := term.State(); st.State != terminal.StateWaitingCard {
				t.Errorf("state = %s", st.State)
			}
			if r := g.cancel("T1"); !r.Accepted || r.Reason != "" {
				t.Errorf("CANCEL_RESP = %+v", r)
			}
			if r := g.result("T1"); r.Status != "cancelled" || r.Reason != terminal.ReasonCancelRequest {
				t.Errorf("RESULT = %+v", r)
			}
			testutil.Eventually(t, "idle", idle(term))

			// CANCEL again: the same answer and the RESULT again.
			if r := g.cancel("T1"); !r.Accepted {
				t.Errorf("repeated CANCEL_RESP = %+v", r)
			}
			g.result("T1")

			// The next transaction gets the next card, not a late CARD for T1.
			if r := g.sale("T2"); r.Status != "done" {
				t.Errorf("next sale: %+v", r)
			}
		})
	}
}

func TestCancelAfterCard(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	g.card("T1")
	if r := g.cancel("T1"); r.Accepted || r.Reason != "TOO_LATE" {
		t.Errorf("CANCEL_RESP = %+v, want TOO_LATE", r)
	}
	g.send(protocol.TypeOutcome, outcome("T1"))
	g.progress("T1", protocol.ProgressPrinting)
	g.result("T1")
	if r := g.cancel("T1"); r.Accepted || r.Reason != "TOO_LATE" {
		t.Errorf("CANCEL_RESP after RESULT = %+v, want TOO_LATE", r)
	}
	if r := g.cancel("NOPE"); r.Accepted || r.Reason != "UNKNOWN_TXN" {
		t.Errorf("CANCEL_RESP = %+v, want UNKNOWN_TXN", r)
	}
}

func TestBusy(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	mustPush(t, term, terminal.Card{Action: terminal.ActionWalkaway})
	g.send(protocol.TypeReadCard, readCard("A"))
	g.progress("A", protocol.ProgressPresentCard)

	g.send(protocol.TypeReadCard, readCard("B"))
	g.errorMsg("B", protocol.ErrCodeBusy)

	r := g.hello()
	if !r.Busy || r.CurrentTxn == nil || *r.CurrentTxn != "A" {
		t.Errorf("HELLO_RESP busy=%v current=%v, want busy with A", r.Busy, r.CurrentTxn)
	}
	// CANCEL, STATUS_QUERY and PING are always allowed.
	g.send(protocol.TypePing, nil)
	g.expect(protocol.TypePong, nil)
	if st := g.status("A"); st.State != "waiting_card" {
		t.Errorf("state = %s", st.State)
	}
	g.cancel("A")
	g.result("A")
	testutil.Eventually(t, "idle", idle(term))
	if r := g.sale("B"); r.Status != "done" {
		t.Errorf("B after A: %+v", r)
	}
}

func TestReplay(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	first := g.sale("A")

	// The same request again: the stored RESULT, nothing else.
	g.send(protocol.TypeReadCard, readCard("A"))
	if r := g.result("A"); r != first {
		t.Errorf("replayed RESULT = %+v, want %+v", r, first)
	}
	// The same txn_id with another body.
	other := readCard("A")
	other.Amount = "99999"
	g.send(protocol.TypeReadCard, other)
	g.errorMsg("A", protocol.ErrCodeTxnIDReused)
	// OUTCOME again.
	g.send(protocol.TypeOutcome, outcome("A"))
	if r := g.result("A"); r != first {
		t.Errorf("RESULT for a repeated OUTCOME = %+v", r)
	}
	if n := len(term.Slips()); n != 1 {
		t.Errorf("%d slips: a replay printed again", n)
	}

	// In flight, waiting for the card: PROGRESS again.
	mustPush(t, term, terminal.Card{Action: terminal.ActionWalkaway})
	g.send(protocol.TypeReadCard, readCard("B"))
	g.progress("B", protocol.ProgressPresentCard)
	g.send(protocol.TypeReadCard, readCard("B"))
	g.progress("B", protocol.ProgressPresentCard)
	other = readCard("B")
	other.Op = "preauth"
	g.send(protocol.TypeReadCard, other)
	g.errorMsg("B", protocol.ErrCodeTxnIDReused)
	g.cancel("B")
	g.result("B")
	testutil.Eventually(t, "idle", idle(term))

	// In flight, card sent: the same CARD again.
	g.send(protocol.TypeReadCard, readCard("C"))
	g.progress("C", protocol.ProgressPresentCard)
	c1 := g.card("C")
	g.send(protocol.TypeReadCard, readCard("C"))
	if c2 := g.card("C"); c2.PAN != c1.PAN || c2.ICC != c1.ICC {
		t.Error("replayed CARD differs")
	}
}

func TestStatusQuery(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	if st := g.status("NOPE"); st.State != "unknown" || st.Result != nil {
		t.Errorf("unknown txn: %+v", st)
	}

	mustPush(t, term, terminal.Card{Action: terminal.ActionWalkaway})
	g.send(protocol.TypeReadCard, readCard("W"))
	g.progress("W", protocol.ProgressPresentCard)
	if st := g.status("W"); st.State != "waiting_card" {
		t.Errorf("waiting: %+v", st)
	}
	g.cancel("W")
	g.result("W")
	testutil.Eventually(t, "idle", idle(term))

	g.send(protocol.TypeReadCard, readCard("T"))
	g.progress("T", protocol.ProgressPresentCard)
	g.card("T")
	if st := g.status("T"); st.State != "card_sent" || st.Result != nil {
		t.Errorf("card sent: %+v", st)
	}
	g.send(protocol.TypeOutcome, outcome("T"))
	g.progress("T", protocol.ProgressPrinting)
	res := g.result("T")
	if st := g.status("T"); st.State != "done" || st.Result == nil || *st.Result != res {
		t.Errorf("done: %+v", st)
	}
}

func TestBadRequests(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	g.sendRaw(protocol.TypeReadCard, []byte(`{"txn_id":`))
	g.errorMsg("", protocol.ErrCodeBadRequest)

	for name, mod := range map[string]func(*protocol.ReadCard){
		"no txn_id":  func(r *protocol.ReadCard) { r.TxnID = "" },
		"op":         func(r *protocol.ReadCard) { r.Op = "incremental" },
		"amount":     func(r *protocol.ReadCard) { r.Amount = "12,800" },
		"no amount":  func(r *protocol.ReadCard) { r.Amount = "" },
		"yen cents":  func(r *protocol.ReadCard) { r.Amount = "10.5" },
		"currency":   func(r *protocol.ReadCard) { r.Currency = "XXX" },
		"entry":      func(r *protocol.ReadCard) { r.Entry = []string{"magic"} },
		"no entries": func(r *protocol.ReadCard) { r.Entry = nil },
	} {
		rc := readCard("X")
		mod(&rc)
		g.send(protocol.TypeReadCard, rc)
		var e protocol.ErrorMsg
		g.expect(protocol.TypeError, &e)
		if e.Code != protocol.ErrCodeBadRequest || e.Text == "" {
			t.Errorf("%s: ERROR = %+v", name, e)
		}
	}
	g.send(protocol.TypeOutcome, outcome("NOPE"))
	g.errorMsg("NOPE", protocol.ErrCodeBadRequest)
	g.sendRaw(protocol.TypeCancel, []byte(`[]`))
	g.errorMsg("", protocol.ErrCodeBadRequest)
	g.sendRaw(protocol.TypeStatusQuery, []byte(`{}`))
	g.errorMsg("", protocol.ErrCodeBadRequest)

	// Frames of the terminal's own direction are ignored; the session goes on.
	g.send(protocol.TypeResult, protocol.Result{TxnID: "X", Status: "done"})
	if r := g.sale("OK"); r.Status != "done" {
		t.Errorf("sale after bad requests: %+v", r)
	}
	if st := term.State(); st.QueuedCards != 0 {
		t.Errorf("queued = %d", st.QueuedCards)
	}
}

func TestCardQueueFIFO(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	pans := []sterad.PAN{"4012888888881881", "5105105105105100", "378282246310005"}
	for _, p := range pans {
		mustPush(t, term, terminal.Card{PAN: p})
	}
	for i, p := range pans {
		id := fmt.Sprint("Q", i)
		g.send(protocol.TypeReadCard, readCard(id))
		g.progress(id, protocol.ProgressPresentCard)
		if c := g.card(id); c.PAN != p.Reveal() {
			t.Errorf("card %d: %s, want %s", i, sterad.MaskPAN(c.PAN), p)
		}
		g.send(protocol.TypeOutcome, outcome(id))
		g.progress(id, protocol.ProgressPrinting)
		g.result(id)
	}
	// Then the default card.
	g.send(protocol.TypeReadCard, readCard("D"))
	g.progress("D", protocol.ProgressPresentCard)
	if c := g.card("D"); c.PAN != terminal.DefaultPAN {
		t.Errorf("default card: %s", sterad.MaskPAN(c.PAN))
	}
}

func TestPushCardValidation(t *testing.T) {
	term := newTerminal(t)
	for _, c := range []terminal.Card{
		{PAN: "41111111"},
		{PAN: "4111-1111-1111-1111"},
		{Expiry: "2813"},
		{Expiry: "28"},
		{Entry: "nfc"},
		{Action: "dance"},
		{DelayMS: -1},
		{DelayMS: 3_600_000},
	} {
		if err := term.PushCard(c); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("PushCard(%+v) = %v, want invalid", c, err)
		}
	}
	// Luhn failures and expired cards are allowed: the gateway must refuse them.
	for _, c := range []terminal.Card{{PAN: "4111111111111112"}, {Expiry: "1901"}} {
		if err := term.PushCard(c); err != nil {
			t.Errorf("PushCard(%+v) = %v", c, err)
		}
	}
}

func TestJournalKeepsLast100(t *testing.T) {
	term := newTerminal(t)
	g, _ := connect(t, term)
	for i := range terminal.JournalSize + 1 {
		id := fmt.Sprint("J", i)
		mustPush(t, term, terminal.Card{Action: terminal.ActionCancel})
		g.send(protocol.TypeReadCard, readCard(id))
		g.progress(id, protocol.ProgressPresentCard)
		g.result(id)
		testutil.Eventually(t, "idle", idle(term))
	}
	if st := g.status("J0"); st.State != "unknown" {
		t.Errorf("oldest result kept: %+v", st)
	}
	if st := g.status("J1"); st.State != "done" {
		t.Errorf("J1 forgotten: %+v", st)
	}
	other := readCard("J1")
	other.Amount = "1"
	g.send(protocol.TypeReadCard, other)
	g.errorMsg("J1", protocol.ErrCodeTxnIDReused)
}

func TestLogsNeverShowCardData(t *testing.T) {
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	term := newTerminal(t, func(c *terminal.Config) { c.Logger = logger })
	g, _ := connect(t, term)
	mustPush(t, term, terminal.Card{PAN: "5555555555554444", Entry: "swipe"})
	mustPush(t, term, terminal.Card{PAN: "4012888888881881", Entry: "chip"})
	var secrets []string
	for _, id := range []string{"L1", "L2"} {
		g.send(protocol.TypeReadCard, readCard(id))
		g.progress(id, protocol.ProgressPresentCard)
		c := g.card(id)
		secrets = append(secrets, c.PAN)
		if c.Track2 != "" {
			secrets = append(secrets, c.Track2)
		}
		if c.ICC != "" {
			secrets = append(secrets, c.ICC)
		}
		g.send(protocol.TypeOutcome, outcome(id))
		g.progress(id, protocol.ProgressPrinting)
		g.result(id)
	}
	out := logs.String()
	if !strings.Contains(out, "frame in") || !strings.Contains(out, "CARD") {
		t.Fatalf("expected frame headers in the debug log:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log contains card data %s", sterad.MaskPAN(s))
		}
	}
}

func TestPresentDelay(t *testing.T) {
	term := newTerminal(t, func(c *terminal.Config) { c.PresentDelay = 20 * time.Millisecond })
	g, _ := connect(t, term)
	if r := g.sale("T1"); r.Status != "done" {
		t.Errorf("sale: %+v", r)
	}
	mustPush(t, term, terminal.Card{Action: terminal.ActionCancel, DelayMS: 10})
	g.send(protocol.TypeReadCard, readCard("T2"))
	g.progress("T2", protocol.ProgressPresentCard)
	if r := g.result("T2"); r.Status != "cancelled" || r.Reason != terminal.ReasonCustomerCancel {
		t.Errorf("RESULT = %+v", r)
	}
	mustPush(t, term, terminal.Card{PAN: "5555555555554444", DelayMS: 30})
	g.send(protocol.TypeReadCard, readCard("T3"))
	g.progress("T3", protocol.ProgressPresentCard)
	if c := g.card("T3"); c.PAN != "5555555555554444" {
		t.Error("wrong card")
	}
}
