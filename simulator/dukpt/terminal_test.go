package dukpt_test

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/sterad/sterad/simulator/dukpt"
)

var chip = dukpt.Card{PAN: "4111111111111111", Expiry: "2812"}

// A fresh terminal counts its KSNs from 1, and the host decrypts each
// block with the BDK and the KSN alone.
func TestTerminalKSNSequence(t *testing.T) {
	term := dukpt.NewTerminal(annexIK(t), annexID(t))
	if term.Counter() != 0 {
		t.Fatalf("fresh terminal: counter %d, want 0", term.Counter())
	}
	for i := 1; i <= 8; i++ {
		blk, err := term.Encrypt(chip)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("12345678901234560000000%d", i); blk.KSN.String() != want {
			t.Errorf("transaction %d: KSN %s, want %s", i, blk.KSN, want)
		}
		card, err := dukpt.Decrypt(dukpt.TestBDK(), blk)
		if err != nil {
			t.Fatalf("transaction %d: host cannot decrypt: %v", i, err)
		}
		if card != chip {
			t.Errorf("transaction %d: host reads %s, want the card encrypted", i, card)
		}
	}
	if term.Counter() != 8 {
		t.Errorf("after 8 transactions: counter %d", term.Counter())
	}
}

// The counters a terminal uses around a skip and at its end, as the
// supplement's test vectors list them (openemv/dukpt
// test/dukpt_aes128_test.c: 0x1FFFE then 0x20000, 0x1FFFF having 17 one
// bits; 0xFFFE2000, 0xFFFE4000, 0xFFFE8000, 0xFFFF0000, then none).
func TestTerminalSkipsCounters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		last      uint32
		want      []uint32
		exhausted bool
	}{
		{"first skip", 0x1FFFD, []uint32{0x1FFFE, 0x20000, 0x20001}, false},
		{"end", 0xFFFE1000, []uint32{0xFFFE2000, 0xFFFE4000, 0xFFFE8000, 0xFFFF0000}, true},
		{"a sixteen-bit odd counter", 0x0000FFFF, []uint32{0x10000, 0x10001}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term, err := dukpt.ResumeTerminal(annexIK(t), annexID(t), tc.last)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				blk, err := term.Encrypt(chip)
				if err != nil {
					t.Fatalf("after %08X: %v", term.Counter(), err)
				}
				if got := blk.KSN.Counter(); got != want {
					t.Fatalf("counter %08X, want %08X", got, want)
				}
				if _, err := dukpt.Decrypt(dukpt.TestBDK(), blk); err != nil {
					t.Errorf("counter %08X: host cannot decrypt: %v", want, err)
				}
			}
			if !tc.exhausted {
				return
			}
			for range 2 {
				if blk, err := term.Encrypt(chip); !errors.Is(err, dukpt.ErrExhausted) {
					t.Errorf("after the last counter: %v, %v; want ErrExhausted", blk.KSN, err)
				}
			}
			if term.Counter() != 0xFFFF0000 {
				t.Errorf("exhausted terminal: counter %08X, want FFFF0000", term.Counter())
			}
		})
	}
}

// NextCounter is the smallest greater counter with at most 16 one bits,
// checked against that definition by brute force.
func TestNextCounter(t *testing.T) {
	brute := func(last uint32) (uint32, bool) {
		for n := uint64(last) + 1; n <= 0xFFFFFFFF; n++ {
			if bits.OnesCount64(n) <= dukpt.MaxOneBits {
				return uint32(n), true
			}
		}
		return 0, false
	}
	check := func(last uint32) {
		t.Helper()
		got, ok := dukpt.NextCounter(last)
		want, wok := brute(last)
		if got != want || ok != wok {
			t.Fatalf("NextCounter(%08X) = %08X, %v; want %08X, %v", last, got, ok, want, wok)
		}
		if ok && !dukpt.ValidCounter(got) {
			t.Fatalf("NextCounter(%08X) = %08X, not a valid counter", last, got)
		}
	}
	for last := uint32(0); last < 0x40000; last++ {
		check(last)
	}
	for last := uint64(0xFFFE0000); last <= 0xFFFFFFFF; last += 0x3F {
		check(uint32(last))
	}
	// Random counters with few one bits above the lowest 16, so that the
	// brute force has a short way to go.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		check(r.Uint32()&r.Uint32()&0xFFFF0000 | r.Uint32()&0xFFFF)
	}
}

func TestValidCounter(t *testing.T) {
	for _, tc := range []struct {
		c    uint32
		want bool
	}{
		{0, false}, {1, true}, {0xFFFF, true}, {0x1FFFF, false}, {0x1FFFE, true},
		{0xFFFF0000, true}, {0xFFFF8000, false}, {0xFFFFFFFF, false},
	} {
		if got := dukpt.ValidCounter(tc.c); got != tc.want {
			t.Errorf("ValidCounter(%08X) = %v", tc.c, got)
		}
	}
}

func TestResumeTerminalRefusesSkippedCounter(t *testing.T) {
	if _, err := dukpt.ResumeTerminal(annexIK(t), annexID(t), 0x1FFFF); !errors.Is(err, dukpt.ErrKSN) {
		t.Errorf("resume at 0x1FFFF: %v, want ErrKSN", err)
	}
	term, err := dukpt.ResumeTerminal(annexIK(t), annexID(t), 0xFFFF0000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.Encrypt(chip); !errors.Is(err, dukpt.ErrExhausted) {
		t.Errorf("resumed at the last counter: %v, want ErrExhausted", err)
	}
}

// An invalid card is refused before a counter is spent.
func TestTerminalInvalidCardUsesNoCounter(t *testing.T) {
	term := dukpt.NewTerminal(annexIK(t), annexID(t))
	if _, err := term.Encrypt(dukpt.Card{PAN: "4111", Expiry: "2812"}); !errors.Is(err, dukpt.ErrCard) {
		t.Fatalf("short PAN: %v, want ErrCard", err)
	}
	blk, err := term.Encrypt(chip)
	if err != nil {
		t.Fatal(err)
	}
	if blk.KSN.Counter() != 1 {
		t.Errorf("first valid card after a refused one: counter %d, want 1", blk.KSN.Counter())
	}
}

// Concurrent transactions never share a KSN.
func TestTerminalConcurrent(t *testing.T) {
	term := dukpt.NewTerminal(annexIK(t), annexID(t))
	const workers, each = 8, 40
	var (
		mu   sync.Mutex
		seen = map[dukpt.KSN]bool{}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				blk, err := term.Encrypt(chip)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[blk.KSN] {
					t.Errorf("KSN %s issued twice", blk.KSN)
				}
				seen[blk.KSN] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each || term.Counter() != workers*each {
		t.Errorf("%d KSNs, counter %d; want %d", len(seen), term.Counter(), workers*each)
	}
}

// A terminal holds its initial key, never the BDK.
func TestTerminalHoldsNoBDK(t *testing.T) {
	typ := reflect.TypeFor[dukpt.Terminal]()
	bdk := reflect.TypeFor[dukpt.BDK]()
	for f := range typ.Fields() {
		if f.Type == bdk {
			t.Errorf("Terminal has a BDK field %q", f.Name)
		}
	}
}

// The simulators' terminal: test BDK ID 12345678, derivation ID the first
// 4 bytes of SHA-256 of the terminal ID (`printf FRONT001 | sha256sum`
// starts 5855a5d3).
func TestNewTestTerminal(t *testing.T) {
	term := dukpt.NewTestTerminal("FRONT001")
	if got := term.InitialKeyID().String(); got != "123456785855A5D3" {
		t.Errorf("initial key ID %s, want 123456785855A5D3", got)
	}
	if id := term.InitialKeyID(); id.BDKID() != dukpt.TestBDKID || id.DerivationID() != 0x5855A5D3 {
		t.Errorf("BDK ID %08X, derivation ID %08X", id.BDKID(), id.DerivationID())
	}
	blk, err := term.Encrypt(chip)
	if err != nil {
		t.Fatal(err)
	}
	if blk.KSN.String() != "123456785855A5D300000001" {
		t.Errorf("first KSN %s", blk.KSN)
	}
	if card, err := dukpt.Decrypt(dukpt.TestBDK(), blk); err != nil || card != chip {
		t.Errorf("host reads %s, %v", card, err)
	}
	if other := dukpt.NewTestTerminal("FRONT002").InitialKeyID(); other == term.InitialKeyID() {
		t.Errorf("two terminals share the initial key ID %s", other)
	}
}
