package offline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
	bolt "go.etcd.io/bbolt"
)

// slots returns the key slots in dir/keys/dek.slots.
func slots(t testing.TB, dir string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "keys", "dek.slots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < offline.SlotsHeader {
		t.Fatalf("dek.slots has %d bytes: no header", len(data))
	}
	data = data[offline.SlotsHeader:]
	var out [][]byte
	for len(data) > 0 {
		n := min(len(data), offline.SlotSize)
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// liveSlots counts the slots that are not all zeros.
func liveSlots(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	for _, s := range slots(t, dir) {
		if !bytes.Equal(s, make([]byte, len(s))) {
			n++
		}
	}
	return n
}

// panForms are the ways a card number could sit on disk in clear.
func panForms(pan string) map[string][]byte {
	forms := map[string][]byte{"ascii": []byte(pan)}
	u := utf16.Encode([]rune(pan))
	le := make([]byte, 0, 2*len(u))
	for _, r := range u {
		le = append(le, byte(r), byte(r>>8))
	}
	forms["utf16le"] = le
	pack := func(digits string) []byte {
		b, err := hex.DecodeString(digits)
		if err != nil {
			panic(err)
		}
		return b
	}
	for _, c := range pan {
		if c < '0' || c > '9' {
			return forms // not digits only (track 2): no BCD form
		}
	}
	if len(pan)%2 == 0 {
		forms["bcd"] = pack(pan)
		// Starting on a half byte: the digits between the first and last.
		forms["bcd nibble-shifted"] = pack(pan[1 : len(pan)-1])
	} else {
		forms["bcd F-padded"] = pack(pan + "F")
		forms["bcd 0-padded"] = pack("0" + pan)
	}
	return forms
}

// assertNoPAN scans every byte of every file under dir for pan in clear.
func assertNoPAN(t *testing.T, dir, pan, when string) {
	t.Helper()
	forms := panForms(pan)
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for name, form := range forms {
			if bytes.Contains(data, form) {
				t.Errorf("%s: card %s found in %s as %s", when, sterad.MaskPAN(pan), path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("%s: scanned %d files, want sterad.db, mac.key, dek.slots", when, files)
	}
}

func TestCardSealOpenDestroy(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	pan := testPAN()
	owner := newID()
	card := testCard(pan)
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: owner, Card: card}}})
	if string(card.Track2) == "" {
		t.Fatal("Apply wiped the caller's card")
	}

	got, err := db.OpenCard(ctx, owner)
	if err != nil {
		t.Fatalf("OpenCard: %v", err)
	}
	if got.PAN.Reveal() != pan || got.Expiry != card.Expiry || got.Entry != card.Entry || got.Brand != card.Brand {
		t.Errorf("OpenCard = %v, want %v", got.LogValue(), card.LogValue())
	}
	if got.Track2 != nil || got.ICC != nil {
		t.Error("OpenCard returned track 2 or chip data: they must never be sealed")
	}
	if _, err := db.OpenCard(ctx, "never-sealed"); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(never sealed) = %v, want ErrNotFound", err)
	}
	if n := liveSlots(t, dir); n != 1 {
		t.Errorf("%d slots hold keys after one seal, want 1", n)
	}
	assertNoPAN(t, dir, pan, "after seal")
	assertNoPAN(t, dir, string(card.Track2), "after seal (track 2)")

	apply(t, db, sterad.Change{DestroyCards: []string{owner}})
	if _, err := db.OpenCard(ctx, owner); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(destroyed) = %v, want ErrNotFound", err)
	}
	if n := usedSlots(t, dir); n != 0 {
		t.Errorf("after destroy key slot %d is not zeros", n-1)
	}
	assertNoPAN(t, dir, pan, "after destroy")
	// Destroying again, or an owner that never had a card, is a no-op.
	apply(t, db, sterad.Change{DestroyCards: []string{owner, "never-sealed"}})

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoPAN(t, dir, pan, "after close")
	db = reopen(t, dir, testOptions())
	if _, err := db.OpenCard(ctx, owner); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(destroyed) after reopen = %v, want ErrNotFound", err)
	}
}

func TestCardReplaceAndSlotReuse(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	pans := map[string]string{"a": testPAN(), "b": testPAN(), "c": testPAN()}
	for _, o := range []string{"a", "b", "c"} {
		apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: o, Card: testCard(pans[o])}}})
	}
	// Replacing a's card destroys its old key; b is destroyed. A slot is
	// reused only after the commit that freed it, so a's new key takes a
	// fourth slot; d and e then reuse the two freed ones. The file grows
	// by SlotGrow zeroed slots at a time: only the first four are ever
	// written.
	oldA := pans["a"]
	pans["a"], pans["d"], pans["e"] = testPAN(), testPAN(), testPAN()
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "a", Card: testCard(pans["a"])}}, DestroyCards: []string{"b"}})
	if n, live, used := len(slots(t, dir)), liveSlots(t, dir), usedSlots(t, dir); n != offline.SlotGrow || live != 2 || used > 4 {
		t.Errorf("after replace: dek.slots has %d slots, %d live, the last written %d; want %d, 2, at most 4", n, live, used, offline.SlotGrow)
	}
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "d", Card: testCard(pans["d"])}, {Owner: "e", Card: testCard(pans["e"])}}})
	if n, live, used := len(slots(t, dir)), liveSlots(t, dir), usedSlots(t, dir); n != offline.SlotGrow || live != 4 || used != 4 {
		t.Errorf("after reuse: dek.slots has %d slots, %d live, the last written %d; want %d, 4, 4", n, live, used, offline.SlotGrow)
	}
	for _, o := range []string{"a", "c", "d", "e"} {
		card, err := db.OpenCard(ctx, o)
		if err != nil || card.PAN.Reveal() != pans[o] {
			t.Errorf("OpenCard(%s) = %v, %v; want %s", o, card.LogValue(), err, sterad.MaskPAN(pans[o]))
		}
	}
	if _, err := db.OpenCard(ctx, "b"); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(b) = %v, want ErrNotFound", err)
	}
	assertNoPAN(t, dir, oldA, "after replace")
	assertNoPAN(t, dir, pans["b"], "after destroy")

	// Sealing and destroying the same owner in one Change (in field
	// order) leaves no card and no key.
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "f", Card: testCard(testPAN())}}, DestroyCards: []string{"f"}})
	if _, err := db.OpenCard(ctx, "f"); !errors.Is(err, sterad.ErrNotFound) {
		t.Errorf("OpenCard(f) = %v, want ErrNotFound", err)
	}
	if live := liveSlots(t, dir); live != 4 {
		t.Errorf("%d live slots, want 4", live)
	}
}

// TestOrphanSlotsWipedOnOpen simulates the two crash windows: a key
// written whose record never committed, and a record deleted whose key was
// never wiped. Open wipes both; the next seal reuses the slots.
func TestOrphanSlotsWipedOnOpen(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"key without record", func(t *testing.T, dir string) {
			appendSlotBytes(t, dir, offline.SlotSize)
		}},
		{"partial key at the end", func(t *testing.T, dir string) {
			appendSlotBytes(t, dir, offline.SlotSize/2)
		}},
		{"record deleted, key kept", func(t *testing.T, dir string) {
			b, err := bolt.Open(filepath.Join(dir, "sterad.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("cards")).Delete([]byte("dropped")) }); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, dir := open(t, testOptions())
			keep, dropped := testPAN(), testPAN()
			apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "keep", Card: testCard(keep)}, {Owner: "dropped", Card: testCard(dropped)}}})
			apply(t, db, sterad.Change{DestroyCards: []string{"dropped"}}) // slot 1 is free again
			db.Close()
			if tc.name == "record deleted, key kept" {
				// Re-seal so that the record exists, then delete it behind
				// the store's back, as a crash after the commit would.
				db = reopen(t, dir, testOptions())
				apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "dropped", Card: testCard(dropped)}}})
				db.Close()
			}
			tc.crash(t, dir)
			if liveSlots(t, dir) != 2 {
				t.Fatalf("setup: %d live slots, want 2", liveSlots(t, dir))
			}

			db = reopen(t, dir, testOptions())
			if n := liveSlots(t, dir); n != 1 {
				t.Errorf("after open %d slots hold keys, want 1", n)
			}
			if card, err := db.OpenCard(ctx, "keep"); err != nil || card.PAN.Reveal() != keep {
				t.Errorf("OpenCard(keep) = %v, %v", card.LogValue(), err)
			}
			if _, err := db.OpenCard(ctx, "dropped"); !errors.Is(err, sterad.ErrNotFound) {
				t.Errorf("OpenCard(dropped) = %v, want ErrNotFound", err)
			}
			n := len(slots(t, dir))
			apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "new", Card: testCard(testPAN())}}})
			if got := len(slots(t, dir)); got != n {
				t.Errorf("a seal grew dek.slots from %d to %d slots instead of reusing a wiped one", n, got)
			}
		})
	}
}

func appendSlotBytes(t *testing.T, dir string, n int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "keys", "dek.slots"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	rand.Read(b)
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestNoKeyMaterialInDB seals cards and checks that none of their keys
// (nor the MAC key) is in sterad.db.
func TestNoKeyMaterialInDB(t *testing.T) {
	db, dir := open(t, testOptions())
	var seals []sterad.SealCard
	for i := range 20 {
		seals = append(seals, sterad.SealCard{Owner: string(rune('a' + i)), Card: testCard(testPAN())})
	}
	apply(t, db, sterad.Change{SealCards: seals})
	db.Close()
	data, err := os.ReadFile(filepath.Join(dir, "sterad.db"))
	if err != nil {
		t.Fatal(err)
	}
	mac := offline.UnwrapMAC(dir, testKEK)
	if len(mac) != 32 || bytes.Contains(data, mac) {
		t.Error("the MAC key is in sterad.db (or does not unwrap)")
	}
	keys := offline.UnwrapSlots(dir, testKEK)
	for _, key := range keys {
		if bytes.Contains(data, key) {
			t.Error("a card key is in sterad.db")
		}
	}
	if len(keys) != 20 {
		t.Errorf("%d keys unwrap from dek.slots, want 20", len(keys))
	}
	n := 0
	for _, s := range slots(t, dir) {
		key := s[16:]
		if bytes.Equal(key, make([]byte, len(key))) {
			continue
		}
		n++
		if bytes.Contains(data, key) {
			t.Error("a card key is in sterad.db")
		}
	}
	if n != 20 {
		t.Errorf("%d keys in dek.slots, want 20", n)
	}
}

// TestOpenCardWhileDestroyed reads a card while it is destroyed and its
// slot reused by other cards: OpenCard returns the card or ErrNotFound,
// never someone else's card or another error.
func TestOpenCardWhileDestroyed(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	pan := testPAN()
	var wg sync.WaitGroup
	for range 50 {
		apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "x", Card: testCard(pan)}}})
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				card, err := db.OpenCard(ctx, "x")
				if err != nil && !errors.Is(err, sterad.ErrNotFound) {
					t.Errorf("OpenCard: %v", err)
					return
				}
				if err == nil && card.PAN.Reveal() != pan {
					t.Error("OpenCard returned another card")
					return
				}
			}
		})
		apply(t, db, sterad.Change{DestroyCards: []string{"x"}})
		apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "y", Card: testCard(testPAN())}}})
		apply(t, db, sterad.Change{DestroyCards: []string{"y"}})
		close(stop)
		wg.Wait()
	}
}

// Crypto-shredding: once a card is destroyed, its old ciphertext (which a
// deleted bbolt record leaves in free pages) cannot be opened with any key
// material left in the data directory — not with any slot, not with any 32
// bytes anywhere in any file.
func TestDestroyedCardCannotBeDecryptedWithWhatRemains(t *testing.T) {
	db, dir := open(t, testOptions())
	keep, gone := newID(), newID()
	apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: keep, Card: testCard(testPAN())}, {Owner: gone, Card: testCard(testPAN())}}})
	keptRec, goneRec := offline.SealedRecord(db, keep), offline.SealedRecord(db, gone)
	if keptRec == nil || goneRec == nil {
		t.Fatal("no records")
	}
	// Before the destroy, some key in the slots (unwrapped with the KEK)
	// opens each record: the search below does find keys when they are
	// there. Without the KEK, no 32 bytes anywhere in the data directory
	// open either record, even before the destroy (issue 11, finding 2).
	opens := func(rec []byte, owner string, withKEK bool) bool {
		if withKEK {
			for _, key := range offline.UnwrapSlots(dir, testKEK) {
				if offline.Decrypts(rec, owner, key) {
					return true
				}
			}
		}
		found := false
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := 0; i+32 <= len(b); i++ {
				if offline.Decrypts(rec, owner, b[i:i+32]) {
					found = true
					return filepath.SkipAll
				}
			}
			return nil
		})
		return found
	}
	if opens(goneRec, gone, false) || opens(keptRec, keep, false) {
		t.Fatal("a card can be decrypted from the data directory alone, without the key-encryption key")
	}
	if !opens(goneRec, gone, true) || !opens(keptRec, keep, true) {
		t.Fatal("the key search found no key before the destroy")
	}
	apply(t, db, sterad.Change{DestroyCards: []string{gone}})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if opens(goneRec, gone, true) {
		t.Fatal("a destroyed card can still be decrypted with what remains in the data directory and the KEK")
	}
	if !opens(keptRec, keep, true) {
		t.Fatal("the card that was kept can no longer be decrypted")
	}
}

// usedSlots returns one past the highest slot of dek.slots that is not all
// zeros.
func usedSlots(t *testing.T, dir string) int {
	t.Helper()
	s := slots(t, dir)
	zero := make([]byte, offline.SlotSize)
	for i := len(s); i > 0; i-- {
		if !bytes.Equal(s[i-1], zero) {
			return i
		}
	}
	return 0
}
