package terminal_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/dukpt"
	"github.com/sterad/sterad/simulator/terminal"
)

// wait bounds every wait in these tests; nothing waits this long unless
// something is broken.
const wait = 5 * time.Second

// Short link timers for both ends. T2 is long enough that nothing is
// retransmitted unless a fault asks for it.
var (
	termLink = protocol.LinkOptions{T1: 20 * time.Millisecond, T2: 400 * time.Millisecond, MaxRetransmits: 2}
	gwLink   = protocol.LinkOptions{T1: 20 * time.Millisecond, T2: 400 * time.Millisecond, MaxRetransmits: 2}
)

// testNow is the fake clock's time: default cards expire in 2811.
var testNow = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newTerminal(t *testing.T, mod ...func(*terminal.Config)) *terminal.Terminal {
	t.Helper()
	cfg := terminal.Config{ID: "FRONT001", Kind: sterad.KindFixed, Link: termLink, Clock: sterad.NewFakeClock(testNow)}
	for _, m := range mod {
		m(&cfg)
	}
	return terminal.New(cfg)
}

// gateway is a minimal gateway side: a protocol.Link on the other end of
// the line and the data frames it received, in order.
type gateway struct {
	t         *testing.T
	link      *protocol.Link
	frames    chan protocol.Frame
	lastHello []byte
}

func newGateway(t *testing.T, rw io.ReadWriteCloser, opts protocol.LinkOptions) *gateway {
	t.Helper()
	g := &gateway{t: t, frames: make(chan protocol.Frame, 256)}
	g.link = protocol.NewLink(rw, func(f protocol.Frame) error {
		select {
		case g.frames <- f:
			return nil
		default:
			return errors.New("test backlog full")
		}
	}, opts)
	go g.link.Run()
	t.Cleanup(func() { g.link.Close() })
	return g
}

// serve runs term.Serve on one end of a pipe and returns a gateway on the
// other end and Serve's result.
func serve(t *testing.T, term *terminal.Terminal, opts protocol.LinkOptions) (*gateway, <-chan error) {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- term.Serve(ctx, b)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return newGateway(t, a, opts), errc
}

// connect serves term and says HELLO.
func connect(t *testing.T, term *terminal.Terminal) (*gateway, protocol.HelloResp) {
	t.Helper()
	g, _ := serve(t, term, gwLink)
	return g, g.hello()
}

func (g *gateway) sendRaw(typ protocol.FrameType, payload []byte) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := g.link.Send(ctx, typ, payload); err != nil {
		g.t.Fatalf("send %s: %v", typ, err)
	}
}

func (g *gateway) send(typ protocol.FrameType, v any) {
	g.t.Helper()
	var b []byte
	if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			g.t.Fatal(err)
		}
	}
	g.sendRaw(typ, b)
}

// expect waits for the next frame, checks its type and decodes it into v.
// A HELLO_RESP identical to the last one is a retransmission (its ACK was
// slow; the link always delivers session frames) and is skipped.
func (g *gateway) expect(typ protocol.FrameType, v any) protocol.Frame {
	g.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case f := <-g.frames:
			if f.Type == protocol.TypeHelloResp {
				if typ != protocol.TypeHelloResp && bytes.Equal(f.Payload, g.lastHello) {
					continue
				}
				g.lastHello = f.Payload
			}
			if f.Type != typ {
				g.t.Fatalf("got %s %s, want %s", f, f.Payload, typ)
			}
			if v != nil {
				if err := json.Unmarshal(f.Payload, v); err != nil {
					g.t.Fatalf("%s payload: %v", typ, err)
				}
			}
			return f
		case <-g.link.Done():
			g.t.Fatalf("link failed waiting for %s: %v", typ, g.link.Err())
		case <-timeout:
			g.t.Fatalf("no %s within %s", typ, wait)
		}
	}
}

func (g *gateway) hello() protocol.HelloResp {
	g.t.Helper()
	g.send(protocol.TypeHello, protocol.Hello{Proto: 1, GatewayID: "GW", BootID: "gwboot"})
	var r protocol.HelloResp
	g.expect(protocol.TypeHelloResp, &r)
	return r
}

func (g *gateway) progress(txnID, code string) protocol.Progress {
	g.t.Helper()
	var p protocol.Progress
	g.expect(protocol.TypeProgress, &p)
	if p.TxnID != txnID || p.Code != code {
		g.t.Fatalf("PROGRESS = %+v, want %s %s", p, txnID, code)
	}
	return p
}

// card returns the next CARD with its card data in clear: an encrypting
// terminal's is checked for the form of terminal-link.md §7 (no pan,
// expiry or track2 field, a masked PAN, no card data tags in the chip
// data) and its block decrypted with the test BDK, as the host would, into
// PAN, Expiry and Track2.
func (g *gateway) card(txnID string) protocol.CardData {
	g.t.Helper()
	return reveal(g.t, g.rawCard(txnID))
}

// rawCard returns the next CARD as it came on the wire.
func (g *gateway) rawCard(txnID string) protocol.CardData {
	g.t.Helper()
	var c protocol.CardData
	g.expect(protocol.TypeCard, &c)
	if c.TxnID != txnID {
		g.t.Fatalf("CARD for %s, want %s", c.TxnID, txnID)
	}
	return c
}

// reveal checks an encrypting terminal's CARD and decrypts its block into
// PAN, Expiry and Track2; a CARD in clear is returned as it is.
func reveal(t *testing.T, c protocol.CardData) protocol.CardData {
	t.Helper()
	if c.P2PE == nil {
		return c
	}
	if c.PAN != "" || c.Expiry != "" || c.Track2 != "" {
		t.Fatalf("encrypted CARD %v also carries card data in clear", c)
	}
	if !sterad.ValidMasked(c.MaskedPAN) {
		t.Fatalf("masked_pan %q is not a masked card number", c.MaskedPAN)
	}
	if tag := cardDataTag(c.ICC); tag != "" {
		t.Fatalf("encrypted CARD's chip data carries tag %s", tag)
	}
	card := decrypt(t, *c.P2PE)
	if sterad.MaskPAN(card.PAN) != c.MaskedPAN {
		t.Fatalf("masked_pan %s does not mask the encrypted card (%s)", c.MaskedPAN, card.MaskedPAN())
	}
	c.PAN, c.Expiry, c.Track2 = card.PAN, card.Expiry, card.Track2
	return c
}

// decrypt is the host's side: the card of a block, with the test BDK.
func decrypt(t *testing.T, b protocol.P2PEData) dukpt.Card {
	t.Helper()
	ksn, err := dukpt.ParseKSN(b.KSN)
	if err != nil {
		t.Fatalf("KSN %q: %v", b.KSN, err)
	}
	card, err := dukpt.Decrypt(dukpt.TestBDK(), dukpt.Block{KSN: ksn, Data: b.Data})
	if err != nil {
		t.Fatalf("decrypt the card block: %v", err)
	}
	return card
}

// cardDataTag returns the first EMV tag of terminal-link.md §7's card
// data tags in hex TLV chip data (top level: the simulator's chip data is
// flat), or "".
func cardDataTag(icc string) string {
	b, err := hex.DecodeString(icc)
	if err != nil {
		return "not hex"
	}
	for len(b) > 0 {
		n := 1
		if b[0]&0x1F == 0x1F {
			n = 2
		}
		if len(b) < n+1 || len(b) < n+1+int(b[n]) {
			return "malformed"
		}
		tag := strings.ToUpper(hex.EncodeToString(b[:n]))
		if slices.Contains([]string{"5A", "57", "56", "5F20", "5F24", "9F1F", "9F20", "9F6B"}, tag) {
			return tag
		}
		b = b[n+1+int(b[n]):]
	}
	return ""
}

func (g *gateway) result(txnID string) protocol.Result {
	g.t.Helper()
	var r protocol.Result
	g.expect(protocol.TypeResult, &r)
	if r.TxnID != txnID {
		g.t.Fatalf("RESULT for %s, want %s", r.TxnID, txnID)
	}
	return r
}

func (g *gateway) errorMsg(txnID, code string) protocol.ErrorMsg {
	g.t.Helper()
	var e protocol.ErrorMsg
	g.expect(protocol.TypeError, &e)
	if e.TxnID != txnID || e.Code != code {
		g.t.Fatalf("ERROR = %+v, want %s %s", e, txnID, code)
	}
	return e
}

func (g *gateway) status(txnID string) protocol.StatusResp {
	g.t.Helper()
	g.send(protocol.TypeStatusQuery, protocol.TxnRef{TxnID: txnID})
	var r protocol.StatusResp
	g.expect(protocol.TypeStatusResp, &r)
	if r.TxnID != txnID {
		g.t.Fatalf("STATUS_RESP for %s, want %s", r.TxnID, txnID)
	}
	return r
}

func (g *gateway) cancel(txnID string) protocol.CancelResp {
	g.t.Helper()
	g.send(protocol.TypeCancel, protocol.TxnRef{TxnID: txnID})
	var r protocol.CancelResp
	g.expect(protocol.TypeCancelResp, &r)
	if r.TxnID != txnID {
		g.t.Fatalf("CANCEL_RESP for %s, want %s", r.TxnID, txnID)
	}
	return r
}

func readCard(txnID string) protocol.ReadCard {
	return protocol.ReadCard{TxnID: txnID, Op: "sale", Amount: "12800", Currency: "JPY",
		Entry: []string{"chip", "ctls", "swipe", "keyed"}, Text: "Room 1203"}
}

func outcome(txnID string) protocol.OutcomeMsg {
	return protocol.OutcomeMsg{TxnID: txnID, Status: "approved", Code: "00", AuthCode: "A12345", RRN: "632500000001",
		Amount: "12800", Currency: "JPY", MaskedPAN: "411111******1111", Lines: []string{"HOTEL STERA", "SALE JPY 12,800"}}
}

// sale runs a whole sale with the default card.
func (g *gateway) sale(txnID string) protocol.Result {
	g.t.Helper()
	g.send(protocol.TypeReadCard, readCard(txnID))
	g.progress(txnID, protocol.ProgressPresentCard)
	g.card(txnID)
	g.send(protocol.TypeOutcome, outcome(txnID))
	g.progress(txnID, protocol.ProgressPrinting)
	return g.result(txnID)
}

func idle(term *terminal.Terminal) func() bool {
	return func() bool { return term.State().State == terminal.StateIdle }
}

func mustPush(t *testing.T, term *terminal.Terminal, c terminal.Card) {
	t.Helper()
	if err := term.PushCard(c); err != nil {
		t.Fatal(err)
	}
}

func mustFault(t *testing.T, term *terminal.Terminal, kind string, count, ms int) {
	t.Helper()
	if err := term.Fault(kind, count, ms); err != nil {
		t.Fatal(err)
	}
}

// serveErr waits for Serve's result.
func serveErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	return nil
}

func linkDone(t *testing.T, g *gateway) error {
	t.Helper()
	select {
	case <-g.link.Done():
		return g.link.Err()
	case <-time.After(wait):
		t.Fatal("the gateway's link did not fail")
	}
	return nil
}
