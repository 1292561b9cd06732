package terminal_test

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/dukpt"
	"github.com/sterad/sterad/simulator/terminal"
)

// cardFrame returns the next CARD and its payload as it was on the wire.
func (g *gateway) cardFrame(txnID string) (protocol.CardData, []byte) {
	g.t.Helper()
	var c protocol.CardData
	f := g.expect(protocol.TypeCard, &c)
	if c.TxnID != txnID {
		g.t.Fatalf("CARD for %s, want %s", c.TxnID, txnID)
	}
	return c, f.Payload
}

// finish ends the transaction in flight with an approved OUTCOME.
func (g *gateway) finish(txnID string) {
	g.t.Helper()
	g.send(protocol.TypeOutcome, outcome(txnID))
	g.progress(txnID, protocol.ProgressPrinting)
	g.result(txnID)
}

// counter is the transaction counter of an encrypted CARD's KSN.
func counter(t *testing.T, c protocol.CardData) uint32 {
	t.Helper()
	if c.P2PE == nil {
		t.Fatal("the CARD is not encrypted")
	}
	ksn, err := dukpt.ParseKSN(c.P2PE.KSN)
	if err != nil {
		t.Fatal(err)
	}
	return ksn.Counter()
}

// An encrypting terminal's CARD (terminal-link.md §7), for every entry
// mode: the card and a swipe's track 2 only in the block, which the host
// decrypts with the test BDK under the terminal's own initial key ID.
func TestP2PECardRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		card   terminal.Card
		read   protocol.ReadCard
		prompt string
		brand  string
	}{
		{"chip", terminal.Card{PAN: "4012888888881881", Expiry: "2907"}, readCard("C1"), protocol.ProgressPresentCard, "visa"},
		{"ctls", terminal.Card{PAN: "5555555555554444", Expiry: "2907", Entry: "ctls"}, readCard("C1"), protocol.ProgressPresentCard, "mastercard"},
		{"swipe", terminal.Card{PAN: "3530111333300000", Expiry: "2801", Entry: "swipe"}, readCard("C1"), protocol.ProgressPresentCard, "jcb"},
		{"keyed card check", terminal.Card{PAN: "378282246310005", Expiry: "3003", Entry: "keyed"},
			protocol.ReadCard{TxnID: "C1", Op: "cardcheck", Currency: "JPY", Entry: []string{"keyed"}}, protocol.ProgressKeyEntry, "amex"},
		{"brand override", terminal.Card{PAN: "4111111111111111", Expiry: "2907", Brand: "jcb"}, readCard("C1"), protocol.ProgressPresentCard, "jcb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term := newTerminal(t)
			g, r := connect(t, term)
			if !slices.Contains(r.Caps, "p2pe") {
				t.Fatalf("caps %v: no p2pe by default", r.Caps)
			}
			mustPush(t, term, tc.card)
			g.send(protocol.TypeReadCard, tc.read)
			g.progress("C1", tc.prompt)
			c, raw := g.cardFrame("C1")

			pan := tc.card.PAN.Reveal()
			for _, field := range []string{`"pan"`, `"expiry"`, `"track2"`, pan, pan[6:], tc.card.Expiry} {
				if bytes.Contains(raw, []byte(field)) {
					t.Errorf("the CARD payload on the wire contains %s", sterad.MaskPAN(field))
				}
			}
			entry := cmpOr(tc.card.Entry, "chip")
			if c.Entry != entry || c.MaskedPAN != sterad.MaskPAN(pan) || c.Brand != tc.brand {
				t.Errorf("CARD = %v masked %s, want entry %s brand %s", c, c.MaskedPAN, entry, tc.brand)
			}
			if (c.ICC != "") != (entry == "chip" || entry == "ctls") {
				t.Errorf("entry %s with chip data %q", entry, c.ICC)
			}
			if tag := cardDataTag(c.ICC); tag != "" {
				t.Errorf("chip data carries %s", tag)
			}
			blk := &sterad.EncryptedBlock{KSN: c.P2PE.KSN, Data: c.P2PE.Data}
			if err := blk.Validate(); err != nil {
				t.Errorf("block form: %v", err)
			}
			ksn, _ := dukpt.ParseKSN(c.P2PE.KSN)
			if ksn.InitialKeyID() != dukpt.NewTestTerminal("FRONT001").InitialKeyID() {
				t.Errorf("KSN %s is not under FRONT001's initial key ID %s", ksn, dukpt.NewTestTerminal("FRONT001").InitialKeyID())
			}

			got := decrypt(t, *c.P2PE)
			if got.PAN != pan || got.Expiry != tc.card.Expiry {
				t.Errorf("decrypted %v expiry %s, want %s %s", got, got.Expiry, sterad.MaskPAN(pan), tc.card.Expiry)
			}
			if entry == "swipe" {
				if !strings.HasPrefix(got.Track2, pan+"="+tc.card.Expiry+"101") {
					t.Errorf("decrypted track 2 is not the card's (%d characters)", len(got.Track2))
				}
			} else if got.Track2 != "" {
				t.Errorf("track 2 encrypted for entry %s", entry)
			}
			// An OUTCOME without masked_pan: the slip shows the CARD's.
			o := outcome("C1")
			o.MaskedPAN = ""
			g.send(protocol.TypeOutcome, o)
			g.progress("C1", protocol.ProgressPrinting)
			g.result("C1")
			if s := term.Slips(); len(s) != 1 || s[0].MaskedPAN != sterad.MaskPAN(pan) || s[0].Brand != tc.brand {
				t.Errorf("slips %+v", s)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Config.Clear: a terminal without p2pe sends its card in clear (§4).
func TestP2PEClearTerminal(t *testing.T) {
	for _, kind := range []string{sterad.KindFixed, sterad.KindHandheld} {
		t.Run(kind, func(t *testing.T) {
			term := terminal.New(terminal.Config{Kind: kind, Link: termLink, Clock: sterad.NewFakeClock(testNow), Clear: true})
			g, r := connect(t, term)
			if slices.Contains(r.Caps, "p2pe") || slices.Contains(term.State().Caps, "p2pe") {
				t.Fatalf("caps %v with Clear", r.Caps)
			}
			g.send(protocol.TypeReadCard, readCard("T1"))
			g.progress("T1", protocol.ProgressPresentCard)
			c := g.rawCard("T1")
			if c.PAN != terminal.DefaultPAN || c.Expiry != "2811" || c.P2PE != nil || c.MaskedPAN != "" {
				t.Errorf("CARD %v p2pe %v masked %q, want the §4 payload", c, c.P2PE, c.MaskedPAN)
			}
			if err := term.Fault(terminal.FaultBadKSN, 1, 0); sterad.ErrorKind(err) != sterad.EInvalid {
				t.Errorf("a p2pe fault armed on a terminal in clear: %v", err)
			}
		})
	}
	// Explicit capabilities without p2pe make a terminal in clear too.
	term := newTerminal(t, func(c *terminal.Config) { c.Caps = []string{"chip"} })
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if c := g.rawCard("T1"); c.P2PE != nil || c.PAN == "" {
		t.Errorf("CARD %v without the p2pe capability", c)
	}
}

// A KSN never repeats for a terminal ID: across reboot faults, replayed
// READ_CARDs (the same CARD, the same KSN), and new simulators with the
// same state directory or in the same process.
func TestP2PEKSNNeverRepeats(t *testing.T) {
	dir := t.TempDir()
	const id = "KSN-TEST-1"
	cfg := func(c *terminal.Config) { c.ID, c.StateDir = id, dir }
	term := newTerminal(t, cfg)
	g, errc := serve(t, term, gwLink)
	g.hello()

	var seen []uint32
	take := func(g *gateway, txnID string) {
		t.Helper()
		g.send(protocol.TypeReadCard, readCard(txnID))
		g.progress(txnID, protocol.ProgressPresentCard)
		c := g.rawCard(txnID)
		n := counter(t, c)
		if len(seen) > 0 && n <= seen[len(seen)-1] {
			t.Fatalf("counter %d after %d: %v", n, seen[len(seen)-1], seen)
		}
		seen = append(seen, n)
		g.finish(txnID)
	}
	take(g, "A1")
	take(g, "A2")
	if seen[0] != 1 || seen[1] != 2 {
		t.Errorf("a fresh state directory: counters %v, want 1, 2", seen)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dukpt-"+id+".counter"))
	if err != nil || strings.TrimSpace(string(b)) != "00000040" {
		t.Errorf("counter file %q, %v: want the reservation 00000040", b, err)
	}

	// A replayed READ_CARD while the card is out gets the same CARD.
	g.send(protocol.TypeReadCard, readCard("A3"))
	g.progress("A3", protocol.ProgressPresentCard)
	first := g.rawCard("A3")
	g.send(protocol.TypeReadCard, readCard("A3"))
	if again := g.rawCard("A3"); *again.P2PE != *first.P2PE {
		t.Errorf("a replayed READ_CARD got another block")
	}
	seen = append(seen, counter(t, first))
	g.finish("A3")

	// Reboot with a transaction in flight.
	mustPush(t, term, terminal.Card{DelayMS: 60_000})
	g.send(protocol.TypeReadCard, readCard("B1"))
	g.progress("B1", protocol.ProgressPresentCard)
	mustFault(t, term, terminal.FaultReboot, 0, 0)
	if err := serveErr(t, errc); !errors.Is(err, terminal.ErrUnplugged) {
		t.Fatalf("Serve = %v", err)
	}
	g2, _ := connect(t, term)
	take(g2, "C1")
	take(g2, "C2")

	// A new simulator on the same state directory (a restarted process).
	term2 := newTerminal(t, cfg)
	g3, _ := connect(t, term2)
	take(g3, "D1")
	if seen[len(seen)-1] <= 0x40 {
		t.Errorf("after a restart: counter %d, want past the reservation 64", seen[len(seen)-1])
	}

	// A new simulator without a state directory in the same process.
	term3 := newTerminal(t, func(c *terminal.Config) { c.ID = id })
	g4, _ := connect(t, term3)
	take(g4, "E1")
}

// The counter file is read at start: a terminal resumes after it.
func TestP2PEKSNResumesFromStateDir(t *testing.T) {
	dir := t.TempDir()
	const id = "KSN-TEST-2"
	if err := os.WriteFile(filepath.Join(dir, "dukpt-"+id+".counter"), []byte("00001000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	term := newTerminal(t, func(c *terminal.Config) { c.ID, c.StateDir = id, dir })
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if n := counter(t, g.card("T1")); n != 0x1001 {
		t.Errorf("counter %#x, want 0x1001", n)
	}
}

// Without a state directory the counter starts from the wall clock.
func TestP2PEKSNStartsFromWallClock(t *testing.T) {
	floor := uint32(time.Since(terminal.KSNEpoch) / terminal.KSNTick)
	term := newTerminal(t, func(c *terminal.Config) { c.ID = "KSN-TEST-3" })
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if n := counter(t, g.card("T1")); n <= floor {
		t.Errorf("counter %d, want past %d", n, floor)
	}
}

// A terminal that cannot keep its counter sends no card: RESULT error.
func TestP2PEStateDirUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	term := newTerminal(t, func(c *terminal.Config) { c.ID, c.StateDir = "KSN-TEST-4", file })
	g, _ := connect(t, term)
	g.send(protocol.TypeReadCard, readCard("T1"))
	g.progress("T1", protocol.ProgressPresentCard)
	if r := g.result("T1"); r.Status != "error" || r.Reason != terminal.ReasonEncryptionFault {
		t.Errorf("RESULT %+v, want error %s", r, terminal.ReasonEncryptionFault)
	}
	if st := g.status("T1"); st.State != protocol.StateDone {
		t.Errorf("STATUS_RESP %+v", st)
	}
}

// The p2pe faults spoil the next CARD, each in its own way, through the
// control API.
func TestP2PEFaults(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		check func(t *testing.T, c, prev protocol.CardData)
	}{
		{terminal.FaultClearPAN, func(t *testing.T, c, _ protocol.CardData) {
			if c.PAN != "5555555555554444" || c.Expiry != "2907" || c.P2PE == nil || decrypt(t, *c.P2PE).PAN != c.PAN {
				t.Errorf("CARD %v: want the pan in clear beside its block", c)
			}
		}},
		{terminal.FaultBadKSN, func(t *testing.T, c, _ protocol.CardData) {
			blk := sterad.EncryptedBlock{KSN: c.P2PE.KSN, Data: c.P2PE.Data}
			if len(c.P2PE.KSN) != 20 || sterad.ErrorCode(blk.Validate()) != "invalid_ksn" || c.PAN != "" {
				t.Errorf("KSN %q: want a malformed one", c.P2PE.KSN)
			}
		}},
		{terminal.FaultBadData, func(t *testing.T, c, _ protocol.CardData) {
			blk := sterad.EncryptedBlock{KSN: c.P2PE.KSN, Data: c.P2PE.Data}
			if sterad.ErrorCode(blk.Validate()) != "invalid_card_block" {
				t.Errorf("data of %d hex digits: want malformed", len(c.P2PE.Data))
			}
		}},
		{terminal.FaultUndecryptable, func(t *testing.T, c, _ protocol.CardData) {
			blk := sterad.EncryptedBlock{KSN: c.P2PE.KSN, Data: c.P2PE.Data}
			ksn, err := dukpt.ParseKSN(c.P2PE.KSN)
			if blk.Validate() != nil || err != nil {
				t.Fatalf("the block is malformed: %v %v", blk.Validate(), err)
			}
			if _, err := dukpt.Decrypt(dukpt.TestBDK(), dukpt.Block{KSN: ksn, Data: c.P2PE.Data}); !errors.Is(err, dukpt.ErrData) {
				t.Errorf("Decrypt = %v, want ErrData", err)
			}
		}},
		{terminal.FaultReplayKSN, func(t *testing.T, c, prev protocol.CardData) {
			if *c.P2PE != *prev.P2PE {
				t.Errorf("KSN %s, want the previous CARD's %s again", c.P2PE.KSN, prev.P2PE.KSN)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			term := newTerminal(t)
			srv := httptest.NewServer(term.Handler())
			defer srv.Close()
			g, _ := connect(t, term)
			g.send(protocol.TypeReadCard, readCard("P1"))
			g.progress("P1", protocol.ProgressPresentCard)
			prev := g.rawCard("P1")
			g.finish("P1")

			call(t, srv, "POST", "/fault", `{"kind":"`+tc.kind+`"}`, 200, nil)
			var st terminal.State
			call(t, srv, "GET", "/state", "", 200, &st)
			if armed := st.Faults.ClearPAN + st.Faults.BadKSN + st.Faults.BadData + st.Faults.Undecryptable + st.Faults.ReplayKSN; armed != 1 {
				t.Errorf("faults %+v, want one armed", st.Faults)
			}
			call(t, srv, "POST", "/card", `{"pan":"5555555555554444","expiry":"2907"}`, 200, nil)
			g.send(protocol.TypeReadCard, readCard("P2"))
			g.progress("P2", protocol.ProgressPresentCard)
			tc.check(t, g.rawCard("P2"), prev)
			g.finish("P2")

			// One CARD only: the next one is sound and has a new KSN.
			g.send(protocol.TypeReadCard, readCard("P3"))
			g.progress("P3", protocol.ProgressPresentCard)
			next := g.card("P3")
			if next.PAN != terminal.DefaultPAN || counter(t, next) <= counter(t, prev) {
				t.Errorf("the CARD after the fault: %v KSN %s", next, next.P2PE.KSN)
			}
			if f := term.State().Faults; f != (terminal.Faults{}) {
				t.Errorf("faults still armed: %+v", f)
			}
		})
	}
}
