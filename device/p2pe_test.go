package device_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/dukpt"
)

// Chip data as an encrypting terminal sends it: no card data tags.
const p2peICC = "9f2608aabbccddeeff00119f270180"

// p2peCard is an encrypting terminal's CARD for the test card, encrypted
// under the test terminal's key (terminal-link.md §7).
func p2peCard(t *testing.T, txnID, entry string) protocol.CardData {
	t.Helper()
	blk, err := dukpt.NewTestTerminal(testID).Encrypt(dukpt.Card{PAN: testPAN, Expiry: "3012"})
	if err != nil {
		t.Fatal(err)
	}
	cd := protocol.CardData{TxnID: txnID, Entry: entry, MaskedPAN: "411111******1111", Brand: "visa",
		P2PE: &protocol.P2PEData{KSN: blk.KSN.String(), Data: blk.Data}}
	if entry == "chip" || entry == "ctls" {
		cd.ICC = p2peICC
	}
	return cd
}

// decryptCard is the acquirer's side: the card in an encrypted card's
// block, with the test BDK the daemon never has.
func decryptCard(t *testing.T, c *sterad.Card) dukpt.Card {
	t.Helper()
	if c.Encrypted == nil {
		t.Fatal("the card is not encrypted")
	}
	ksn, err := dukpt.ParseKSN(c.Encrypted.KSN)
	if err != nil {
		t.Fatal(err)
	}
	card, err := dukpt.Decrypt(dukpt.TestBDK(), dukpt.Block{KSN: ksn, Data: c.Encrypted.Data})
	if err != nil {
		t.Fatal(err)
	}
	return card
}

func withP2PE(r *protocol.HelloResp) { r.Caps = append(r.Caps, sterad.CapP2PE) }

// An encrypting terminal's CARD becomes a card without a card number:
// masked PAN, brand, entry, chip data and the block as the terminal sent
// it, persisted before the ACK, in either card data mode.
func TestSessionP2PECard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		blind bool
		entry string
	}{
		{"blind chip", true, "chip"},
		{"blind keyed", true, "keyed"},
		{"clear mode takes an encrypting terminal's card", false, "ctls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t)
			b.setResp(withP2PE)
			logs := &logBuffer{}
			cfg := testConfig(b, logs)
			cfg.RequireP2PE = tc.blind
			s := startSession(t, cfg)
			ft := b.next()
			waitReady(t, s)
			if caps := s.Info().Caps; !slices.Contains(caps, "p2pe") {
				t.Fatalf("Info().Caps = %v, want p2pe reported", caps)
			}
			var persisted *sterad.Card
			res := async(func() (*sterad.Card, error) {
				return s.ReadCard(context.Background(), saleRequest("txn-1"), func(c *sterad.Card) error { persisted = c; return nil })
			})
			ft.expect(protocol.TypeReadCard)
			cd := p2peCard(t, "txn-1", tc.entry)
			ft.send(protocol.TypeCard, cd)
			card, err := await(t, res)
			if err != nil {
				t.Fatalf("ReadCard: %v", err)
			}
			if card != persisted {
				t.Error("ReadCard returned another card than the one persisted")
			}
			want := sterad.EncryptedBlock{KSN: cd.P2PE.KSN, Data: cd.P2PE.Data}
			if card.PAN != "" || !card.Expiry.IsZero() || card.Track2 != nil || card.Masked != "411111******1111" ||
				card.Brand != sterad.BrandVisa || card.Entry != sterad.EntryMode(tc.entry) || card.Encrypted == nil ||
				*card.Encrypted != want || !card.Blind() || card.MaskedPAN() != "411111******1111" {
				t.Fatalf("card = %+v encrypted %+v", card, card.Encrypted)
			}
			if got := strings.ToLower(strings.TrimSpace(fmtHex(card.ICC))); (tc.entry == "keyed") != (got == "") || got != "" && got != p2peICC {
				t.Errorf("chip data %q for entry %s", got, tc.entry)
			}
			if err := card.Validate(time.Now()); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if c := decryptCard(t, card); c.PAN != testPAN || c.Expiry != "3012" {
				t.Errorf("the block holds another card: %v", c)
			}
			if l := logs.String(); strings.Contains(l, testPAN) || strings.Contains(l, cd.P2PE.Data) {
				t.Errorf("card data in the log:\n%s", l)
			}
		})
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// CARDs sterad must refuse: card data in clear beside the block (in
// either mode), a card number in clear in blind mode, a malformed block.
// Each is acknowledged, cancelled, never persisted, and its card data
// reaches neither the error nor the log (masked at most).
func TestSessionP2PERefusedCard(t *testing.T) {
	spoil := func(f func(*protocol.CardData)) func(*testing.T) protocol.CardData {
		return func(t *testing.T) protocol.CardData {
			cd := p2peCard(t, "txn-1", "chip")
			f(&cd)
			return cd
		}
	}
	clearCard := func(*testing.T) protocol.CardData {
		return protocol.CardData{TxnID: "txn-1", Entry: "swipe", PAN: testPAN, Expiry: "3012", Track2: testTrack2, Brand: "visa"}
	}
	for _, tc := range []struct {
		name  string
		blind bool
		card  func(*testing.T) protocol.CardData
		why   string
	}{
		{"blind: pan beside p2pe", true, spoil(func(c *protocol.CardData) { c.PAN = testPAN }), "in clear"},
		{"clear mode: pan beside p2pe", false, spoil(func(c *protocol.CardData) { c.PAN = testPAN }), "in clear"},
		{"blind: expiry beside p2pe", true, spoil(func(c *protocol.CardData) { c.Expiry = "3012" }), "in clear"},
		{"blind: track 2 beside p2pe", true, spoil(func(c *protocol.CardData) { c.Track2 = testTrack2 }), "in clear"},
		{"blind: card in clear", true, clearCard, "in clear"},
		{"blind: no card at all", true, func(*testing.T) protocol.CardData { return protocol.CardData{TxnID: "txn-1", Entry: "chip"} }, "no encrypted card data"},
		{"blind: chip data with the PAN (5A)", true, spoil(func(c *protocol.CardData) { c.ICC = p2peICC + "5a08411111111111111f" }), "chip data"},
		{"blind: chip data with the expiry in a template", true, spoil(func(c *protocol.CardData) { c.ICC = "7005" + "5f2402301231"[:10] }), "chip data"},
		{"blind: KSN malformed", true, spoil(func(c *protocol.CardData) { c.P2PE.KSN = c.P2PE.KSN[:20] }), "key serial number"},
		{"blind: KSN lowercase", true, spoil(func(c *protocol.CardData) { c.P2PE.KSN = "abcdef" + c.P2PE.KSN[6:] }), "key serial number"},
		{"blind: data not whole blocks", true, spoil(func(c *protocol.CardData) { c.P2PE.Data = c.P2PE.Data[:len(c.P2PE.Data)-1] }), "encrypted card data"},
		{"blind: data empty", true, spoil(func(c *protocol.CardData) { c.P2PE.Data = "" }), "encrypted card data"},
		{"blind: masked_pan is the full number", true, spoil(func(c *protocol.CardData) { c.MaskedPAN = testPAN }), "masked card number"},
		{"blind: bad entry", true, spoil(func(c *protocol.CardData) { c.Entry = "telepathy" }), "entry mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t)
			b.setResp(withP2PE)
			logs := &logBuffer{}
			cfg := testConfig(b, logs)
			cfg.RequireP2PE = tc.blind
			s := startSession(t, cfg)
			ft := b.next()
			waitReady(t, s)
			persisted := false
			res := async(func() (*sterad.Card, error) {
				return s.ReadCard(context.Background(), saleRequest("txn-1"), func(*sterad.Card) error { persisted = true; return nil })
			})
			ft.expect(protocol.TypeReadCard)
			ft.send(protocol.TypeCard, tc.card(t)) // acknowledged: a valid frame
			var c protocol.TxnRef
			ft.expectMsg(protocol.TypeCancel, &c)
			card, err := await(t, res)
			var e *sterad.Error
			if card != nil || !errors.As(err, &e) || e.Code != "terminal_bad_card" || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("ReadCard = %v, %v; want terminal_bad_card saying %q", card, err, tc.why)
			}
			if persisted {
				t.Fatal("a refused card was persisted")
			}
			for _, secret := range []string{testPAN, "11111111", "=3012", "3012101"} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Fatalf("card data in the error or the log: %v\n%s", err, logs.String())
				}
			}
		})
	}
}

// card_data: blind refuses a terminal that does not encrypt at HELLO:
// offline, the reason in LastError, logged once however often it is
// retried; the same terminal with p2pe comes up. card_data: clear is
// unchanged.
func TestSessionHelloP2PE(t *testing.T) {
	t.Run("blind refuses a terminal without p2pe", func(t *testing.T) {
		b := newBench(t)
		logs := &logBuffer{}
		cfg := testConfig(b, logs)
		cfg.RequireP2PE = true
		s := startSession(t, cfg)
		b.next()
		b.next() // refused, and retried
		eventually(t, "the reason shown", func() bool { return s.Info().LastError != "" })
		info := s.Info()
		if info.State != sterad.TerminalOffline || info.LastError != device.ErrNoP2PE.Error() ||
			info.LastError != "the terminal does not encrypt card data (no p2pe): sterad runs card-data-blind" ||
			!slices.Equal(info.Caps, []string{"chip", "ctls", "swipe", "printer"}) || info.Model != "ST-100" {
			t.Fatalf("Info = %+v", info)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReady = %v: the terminal must never be ready", err)
		}
		if _, err := s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist); !errors.Is(err, sterad.ErrTerminalOffline) {
			t.Fatalf("ReadCard = %v, want offline", err)
		}
		b.next()
		if n := strings.Count(logs.String(), "level=ERROR msg=\"terminal refused: it does not encrypt card data\""); n != 1 {
			t.Errorf("logged %d times at error level, want once:\n%s", n, logs.String())
		}

		// Swapped for an encrypting terminal: it comes up.
		b.setResp(withP2PE)
		waitReady(t, s)
		if info := s.Info(); info.State != sterad.TerminalReady || info.LastError != "" || !slices.Contains(info.Caps, "p2pe") {
			t.Fatalf("Info = %+v", info)
		}
	})
	t.Run("clear mode takes a terminal without p2pe", func(t *testing.T) {
		b := newBench(t)
		s := startSession(t, testConfig(b, &logBuffer{}))
		ft := b.next()
		waitReady(t, s)
		res := async(func() (*sterad.Card, error) {
			return s.ReadCard(context.Background(), saleRequest("txn-1"), noPersist)
		})
		ft.expect(protocol.TypeReadCard)
		ft.send(protocol.TypeCard, protocol.CardData{TxnID: "txn-1", Entry: "chip", PAN: testPAN, Expiry: "3012"})
		card, err := await(t, res)
		if err != nil || card.PAN.Reveal() != testPAN || card.Encrypted != nil {
			t.Fatalf("ReadCard = %v, %v", card, err)
		}
	})
}
