package offline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
	"github.com/sterad/sterad/offline"
	bolt "go.etcd.io/bbolt"
)

// openErr opens dir with opts (under testKEK unless opts names KEKs) and
// returns the error; it fails the test if Open succeeds.
func openErr(t *testing.T, dir string, opts offline.Options) error {
	t.Helper()
	if len(opts.KEKs) == 0 {
		opts.KEKs = []*offline.KEK{testKEK}
	}
	db, err := offline.Open(dir, opts)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded")
	}
	return err
}

// storeWithCards is a closed store holding a transaction and two cards.
func storeWithCards(t *testing.T) (dir string, owners []string) {
	t.Helper()
	db, dir := open(t, testOptions())
	owners = []string{newID(), newID()}
	tx := txn(owners[0], t0)
	apply(t, db, sterad.Change{Put: []*sterad.Transaction{tx}, SealCards: []sterad.SealCard{
		{Owner: owners[0], Card: testCard(testPAN())}, {Owner: owners[1], Card: testCard(testPAN())}}})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, owners
}

// snapshot returns every file under dir and its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Finding 2: a copy of the data directory alone opens nothing. Without
// its KEK, or with another, the store refuses clearly, and no bytes in
// the copy decrypt a card (TestDestroyedCardCannotBeDecryptedWithWhatRemains
// searches every 32 bytes).
func TestCopyOfDataDirOpensNothing(t *testing.T) {
	dir, owners := storeWithCards(t)
	other, _, err := offline.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		keks []*offline.KEK
		want error
		says string
	}{
		{"no KEK", []*offline.KEK{nil}, offline.ErrNoKEK, "no key-encryption key given"},
		{"another KEK", []*offline.KEK{other}, offline.ErrWrongKEK, "mac.key: wrapped under key-encryption key " + testKEK.ID()},
	}
	before := snapshot(t, dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions()
			o.KEKs = c.keks
			err := openErr(t, dir, o)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("Open = %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
	if after := snapshot(t, dir); !mapsEqual(before, after) {
		t.Error("a refused Open changed the data directory")
	}
	// The store's own KEK opens it; the key files hold no key in clear.
	db := reopen(t, dir, testOptions())
	for _, o := range owners {
		if _, err := db.OpenCard(context.Background(), o); err != nil {
			t.Errorf("OpenCard with the KEK: %v", err)
		}
	}
	raw := before["keys/dek.slots"] + before["keys/mac.key"]
	for _, k := range append(offline.UnwrapSlots(dir, testKEK), offline.UnwrapMAC(dir, testKEK)) {
		if strings.Contains(raw, string(k)) {
			t.Error("a key is in the key files unwrapped")
		}
	}
}

// gatedWriter calls gate once, when more than after bytes were written.
type gatedWriter struct {
	w     io.Writer
	n     int
	after int
	gate  func()
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.n += len(p)
	if g.gate != nil && g.n > g.after {
		g.gate()
		g.gate = nil
	}
	return g.w.Write(p)
}

// anyBytesDecrypt reports whether any 32 bytes in any file under dir
// open the sealed record of owner's card.
func anyBytesDecrypt(t *testing.T, dir string, rec []byte, owner string) bool {
	t.Helper()
	for _, b := range snapshot(t, dir) {
		for i := 0; i+32 <= len(b); i++ {
			if offline.Decrypts(rec, owner, []byte(b[i:i+32])) {
				return true
			}
		}
	}
	return false
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Finding 3: a store missing a part, or holding a part of another store,
// is refused with a message naming the file and what to do; it never
// starts fresh over an existing identity, and changes nothing.
func TestDamagedStoreIsRefused(t *testing.T) {
	otherDir, _ := storeWithCards(t)
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		file   string
		says   string
	}{
		{"database deleted", func(t *testing.T, dir string) { rm(t, dir, "sterad.db") }, "sterad.db", "is missing: restore the store from a backup (sterad restore)"},
		{"database and identity deleted, keys kept", func(t *testing.T, dir string) { rm(t, dir, "sterad.db"); rm(t, dir, "store.json") },
			"sterad.db", "keys/ holds the keys of an existing store"},
		{"card key file deleted", func(t *testing.T, dir string) { rm(t, dir, "keys/dek.slots") }, "keys/dek.slots", "sterad store forget-card-keys"},
		{"MAC key deleted", func(t *testing.T, dir string) { rm(t, dir, "keys/mac.key") }, "keys/mac.key", "MAC key is missing"},
		{"identity deleted", func(t *testing.T, dir string) { rm(t, dir, "store.json") }, "store.json", "store identity is missing"},
		{"database of another store", func(t *testing.T, dir string) { cp(t, otherDir, dir, "sterad.db") }, "sterad.db", "belongs to store"},
		{"card keys of another store", func(t *testing.T, dir string) { cp(t, otherDir, dir, "keys/dek.slots") }, "keys/dek.slots", "belongs to store"},
		{"MAC key of another store", func(t *testing.T, dir string) { cp(t, otherDir, dir, "keys/mac.key") }, "keys/mac.key", "belongs to store"},
		{"identity of another store", func(t *testing.T, dir string) { cp(t, otherDir, dir, "store.json") }, "sterad.db", "belongs to store"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, _ := storeWithCards(t)
			c.break_(t, dir)
			before := snapshot(t, dir)
			err := openErr(t, dir, testOptions())
			var se *offline.StoreError
			if !errors.As(err, &se) || !errors.Is(err, offline.ErrDamaged) {
				t.Fatalf("Open = %v, want a StoreError of ErrDamaged", err)
			}
			if se.Path != filepath.Join(dir, c.file) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open = %q\nwant one line naming %s and saying %q", err, c.file, c.says)
			}
			if after := snapshot(t, dir); !mapsEqual(before, after) {
				t.Error("a refused Open changed the data directory")
			}
		})
	}
	t.Run("brand-new directory", func(t *testing.T) {
		db, dir := open(t, testOptions())
		if id := db.Identity(); id.Schema != 2 || len(id.StoreID) != 32 || !id.CreatedAt.Equal(t0) {
			t.Errorf("identity %+v", id)
		}
		var onDisk struct {
			StoreID string `json:"store_id"`
			Schema  int    `json:"schema"`
		}
		b, _ := os.ReadFile(filepath.Join(dir, "store.json"))
		if json.Unmarshal(b, &onDisk); onDisk.StoreID != db.Identity().StoreID || onDisk.Schema != 2 {
			t.Errorf("store.json = %s", b)
		}
	})
	t.Run("creation cut short", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "store.json"), []byte(`{"store_id":"00112233445566778899aabbccddeeff","schema":2,"creating":true}`), 0o600)
		db := reopen(t, dir, testOptions())
		if db.Identity().StoreID == "00112233445566778899aabbccddeeff" {
			t.Error("a store whose creation was cut short kept its half-made identity")
		}
	})
}

func rm(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func cp(t *testing.T, from, to, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Finding 4: a truncated or corrupted database gives one clear error, not
// a panic, at Open; Check reports what bbolt's consistency check finds.
func TestCorruptDatabaseIsRefusedWithoutPanic(t *testing.T) {
	// A store large enough to span many pages.
	db, src := open(t, testOptions())
	for i := range 200 {
		apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0.Add(time.Duration(i)))}})
	}
	db.Close()
	orig, err := os.ReadFile(filepath.Join(src, "sterad.db"))
	if err != nil {
		t.Fatal(err)
	}
	page := int(binary.NativeEndian.Uint32(orig[16+8:])) // the meta page's page size
	cases := []struct {
		name string
		mut  func([]byte) []byte
		says string
	}{
		{"empty", func(b []byte) []byte { return nil }, "empty"},
		{"truncated to one page", func(b []byte) []byte { return b[:page] }, "restore the store from a backup"},
		{"truncated in its last used page", func(b []byte) []byte {
			last := len(bytes.TrimRight(b, "\x00"))
			return b[:(last-1)/page*page]
		}, "truncated"},
		{"meta pages zeroed", func(b []byte) []byte { clear(b[:2*page]); return b }, "both meta pages are corrupt"},
		{"data pages overwritten", func(b []byte) []byte {
			for i := 2 * page; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			return b
		}, "the database is corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			if err := os.WriteFile(filepath.Join(dir, "sterad.db"), c.mut(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			err := openErr(t, dir, testOptions())
			if !errors.Is(err, offline.ErrDamaged) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open = %q, want one line of ErrDamaged saying %q", err, c.says)
			}
			if !strings.HasPrefix(err.Error(), filepath.Join(dir, "sterad.db")+": ") {
				t.Errorf("Open = %q, want it to name sterad.db", err)
			}
		})
	}
}

// sterad store check runs bbolt's own check: clean on a good store,
// problems (not a panic) on a corrupted page.
func TestCheck(t *testing.T) {
	dir, owners := storeWithCards(t)
	res, err := offline.Check(dir, testKEK)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 || len(res.LostKeys) != 0 || res.Cards != 2 || res.Txns != 1 || res.Identity.Schema != 2 {
		t.Errorf("Check of a good store = %+v", res)
	}
	// Damage one card key: Check lists its owner.
	corruptSlot(t, dir, 0)
	res, err = offline.Check(dir, testKEK)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.LostKeys) != 1 || (res.LostKeys[0] != owners[0] && res.LostKeys[0] != owners[1]) {
		t.Errorf("lost keys = %v, want one of %v", res.LostKeys, owners)
	}
	// While the store is open elsewhere, Check says so.
	db := reopen(t, dir, testOptions())
	if _, err := offline.Check(dir, testKEK); !errors.Is(err, offline.ErrInUse) {
		t.Errorf("Check of an open store = %v, want ErrInUse", err)
	}
	db.Close()
	// Keys out of order in a page (which only bbolt's own check sees):
	// enough transactions for the bucket to have pages of its own, and
	// the first one renamed after the others.
	db = reopen(t, dir, testOptions())
	var ids []string
	for i := range 100 {
		id := fmt.Sprintf("T%04d", i)
		ids = append(ids, id)
		apply(t, db, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}})
	}
	db.Close()
	path := filepath.Join(dir, "sterad.db")
	b, _ := os.ReadFile(path)
	b = bytes.ReplaceAll(b, []byte("T0000"), []byte("Z0000"))
	os.WriteFile(path, b, 0o600)
	res, err = offline.Check(dir, testKEK)
	if !errors.Is(err, offline.ErrDamaged) || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("Check of keys out of order = %v %+v, want ErrDamaged", err, res)
	}
	if err := openErr(t, dir, testOptions()); !errors.Is(err, offline.ErrDamaged) {
		t.Errorf("Open of keys out of order = %v, want ErrDamaged", err)
	}
	t.Logf("check of the damaged database: %v %+v", err, res)
}

// corruptSlot flips a byte of the wrapped key in slot i.
func corruptSlot(t *testing.T, dir string, i int) {
	t.Helper()
	path := filepath.Join(dir, "keys", "dek.slots")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[offline.SlotsHeader+i*offline.SlotSize+40] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Lost card keys are told apart from destroyed cards: OpenCard returns
// sterad.ErrCardKeyLost, and LostCardKeys lists their owners.
func TestLostCardKey(t *testing.T) {
	ctx := context.Background()
	t.Run("damaged slot", func(t *testing.T) {
		dir, owners := storeWithCards(t)
		corruptSlot(t, dir, 0)
		logs := &testutil.SyncBuffer{}
		o := testOptions()
		o.Logger = slogTo(logs)
		db := reopen(t, dir, o)
		lost, err := db.LostCardKeys(ctx)
		if err != nil || len(lost) != 1 {
			t.Fatalf("LostCardKeys = %v, %v; want one owner", lost, err)
		}
		other := owners[0]
		if other == lost[0] {
			other = owners[1]
		}
		if _, err := db.OpenCard(ctx, lost[0]); !errors.Is(err, sterad.ErrCardKeyLost) {
			t.Errorf("OpenCard of the lost card = %v, want ErrCardKeyLost", err)
		}
		if _, err := db.OpenCard(ctx, other); err != nil {
			t.Errorf("OpenCard of the other card = %v", err)
		}
		if !strings.Contains(logs.String(), "lost or damaged") || !strings.Contains(logs.String(), lost[0]) {
			t.Errorf("the log does not tell: %s", logs)
		}
		// Destroying it on purpose: not found, no longer lost.
		apply(t, db, sterad.Change{DestroyCards: []string{lost[0]}})
		if _, err := db.OpenCard(ctx, lost[0]); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("OpenCard after destroy = %v, want ErrNotFound", err)
		}
		if l, _ := db.LostCardKeys(ctx); len(l) != 0 {
			t.Errorf("LostCardKeys after destroy = %v", l)
		}
		// The slot is not reused while damaged... and sealing works on.
		apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: "new", Card: testCard(testPAN())}}})
		if _, err := db.OpenCard(ctx, "new"); err != nil {
			t.Error(err)
		}
	})
	t.Run("card key file lost, started without it", func(t *testing.T) {
		dir, owners := storeWithCards(t)
		rm(t, dir, "keys/dek.slots")
		o := testOptions()
		o.ForgetLostCardKeys = true
		db := reopen(t, dir, o)
		lost, _ := db.LostCardKeys(ctx)
		if len(lost) != 2 {
			t.Fatalf("LostCardKeys = %v, want %v", lost, owners)
		}
		for _, ow := range owners {
			if _, err := db.OpenCard(ctx, ow); !errors.Is(err, sterad.ErrCardKeyLost) {
				t.Errorf("OpenCard = %v, want ErrCardKeyLost", err)
			}
		}
		if _, err := db.OpenCard(ctx, "never-kept"); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("OpenCard of a card never kept = %v, want ErrNotFound", err)
		}
	})
}

// Schema versions: a schema-1 store written by the code before this one
// (testdata/store-v1) is migrated on its first open with a KEK: every
// record is there, its cards open, and its keys are wrapped (no key of
// the old files remains in any file).
func TestMigrateSchema1Store(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	copyDir(t, fixtureV1, dir)
	oldSlots, _ := os.ReadFile(filepath.Join(dir, "keys", "dek.slots"))
	oldMAC, _ := os.ReadFile(filepath.Join(dir, "keys", "mac.key"))
	if len(oldMAC) != 32 || len(oldSlots)%48 != 0 || len(oldSlots) == 0 {
		t.Fatalf("the fixture is not a schema-1 store (mac.key %d bytes, dek.slots %d)", len(oldMAC), len(oldSlots))
	}
	logs := &testutil.SyncBuffer{}
	o := testOptions()
	o.Logger = slogTo(logs)
	db := reopen(t, dir, o)
	if !strings.Contains(logs.String(), "migrated the store from schema 1 to 2") || !strings.Contains(logs.String(), "card_keys=2") {
		t.Errorf("no migration log line: %s", logs)
	}
	if id := db.Identity(); id.Schema != 2 || id.StoreID == "" {
		t.Errorf("identity after migration %+v", id)
	}
	for _, id := range fixtureTxnIDs {
		tx, err := db.Transaction(ctx, id)
		if err != nil || tx.Amount.Minor() != 38500 {
			t.Errorf("transaction %s: %v %+v", id, err, tx)
		}
		if r, err := db.Idempotency(ctx, "idem-"+id); err != nil || r.TxnID != id || r.Fingerprint != db.MAC([]byte(id)) {
			t.Errorf("idempotency of %s: %v %+v (the MAC key must survive the migration)", id, err, r)
		}
	}
	for _, owner := range fixtureCardOwn {
		c, err := db.OpenCard(ctx, owner)
		if err != nil || c.PAN.Reveal() != fixturePAN {
			t.Errorf("card %s: %v", owner, err)
		}
	}
	if bs, err := db.Batches(ctx); err != nil || len(bs) != 2 || bs[0].State != sterad.BatchClosed && bs[1].State != sterad.BatchClosed {
		t.Errorf("batches: %v %+v", err, bs)
	}
	if v, err := db.VaultEntry(ctx, "RSV-FIX-1"); err != nil || v.CheckTxn != fixtureTxnIDs[1] {
		t.Errorf("vault: %v %+v", err, v)
	}
	if r, err := db.Reservation(ctx, "RSV-FIX-1"); err != nil || r.State != sterad.ReservationGuaranteed || !r.CardKept {
		t.Errorf("reservation: %v %+v", err, r)
	}
	if q, err := db.Queue(ctx); err != nil || len(q) != 1 || q[0].TxnID != fixtureTxnIDs[2] {
		t.Errorf("queue: %v %+v", err, q)
	}
	stan, err := db.NextSTAN(ctx, "TRM00001", fixtureT0)
	if err != nil || stan <= 3 {
		t.Errorf("NextSTAN after migration = %v, %v: a STAN was reused", stan, err)
	}
	db.Close()

	// No unwrapped key of the schema-1 files remains in the directory.
	all := ""
	for _, b := range snapshot(t, dir) {
		all += b
	}
	if strings.Contains(all, string(oldMAC)) {
		t.Error("the unwrapped MAC key is still on disk")
	}
	for i := 0; i+48 <= len(oldSlots); i += 48 {
		if key := oldSlots[i+16 : i+48]; !bytes.Equal(key, make([]byte, 32)) && strings.Contains(all, string(key)) {
			t.Error("an unwrapped card key is still on disk")
		}
	}
	// Migrated: now it needs its KEK.
	o2 := testOptions()
	o2.KEKs = []*offline.KEK{nil}
	if err := openErr(t, dir, o2); !errors.Is(err, offline.ErrNoKEK) {
		t.Errorf("Open without a KEK after migration = %v", err)
	}
	reopen(t, dir, testOptions()).Close()
}

// A store of a newer schema is refused by this binary, clearly.
func TestNewerSchemaIsRefused(t *testing.T) {
	for _, where := range []string{"store.json", "sterad.db"} {
		t.Run(where, func(t *testing.T) {
			dir, _ := storeWithCards(t)
			if where == "store.json" {
				path := filepath.Join(dir, "store.json")
				b, _ := os.ReadFile(path)
				os.WriteFile(path, bytes.Replace(b, []byte(`"schema": 2`), []byte(`"schema": 3`), 1), 0o600)
			} else {
				bdb, err := bolt.Open(filepath.Join(dir, "sterad.db"), 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				bdb.Update(func(tx *bolt.Tx) error {
					return tx.Bucket([]byte("meta")).Put([]byte("version"), binary.BigEndian.AppendUint32(nil, 3))
				})
				bdb.Close()
			}
			err := openErr(t, dir, testOptions())
			if !errors.Is(err, offline.ErrNewerSchema) || !strings.Contains(err.Error(), "schema 3, written by a newer sterad") {
				t.Errorf("Open = %v, want ErrNewerSchema", err)
			}
		})
	}
}

// The KEK is rotated while the store is in use: every card opens under
// the new KEK, the old one no longer opens the store, and a restart
// between the two file renames opens with both.
func TestRotateKEK(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	var owners []string
	for range 20 {
		o := newID()
		owners = append(owners, o)
		apply(t, db, sterad.Change{SealCards: []sterad.SealCard{{Owner: o, Card: testCard(testPAN())}}})
	}
	next, _, _ := offline.GenerateKEK()
	// Seals and opens go on during the rotation.
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			o := newID()
			if err := db.Apply(ctx, sterad.Change{SealCards: []sterad.SealCard{{Owner: o, Card: testCard(testPAN())}}}); err != nil {
				done <- err
				return
			}
			if _, err := db.OpenCard(ctx, o); err != nil {
				done <- err
				return
			}
			if _, err := db.OpenCard(ctx, owners[i%len(owners)]); err != nil {
				done <- err
				return
			}
		}
	}()
	n, err := db.RotateKEK(ctx, next)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("during the rotation: %v", err)
	}
	if err != nil || n < 20 {
		t.Fatalf("RotateKEK = %d, %v", n, err)
	}
	if db.KEKID() != next.ID() {
		t.Errorf("KEKID = %s, want %s", db.KEKID(), next.ID())
	}
	for _, o := range owners {
		if _, err := db.OpenCard(ctx, o); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
	db.Close()
	if err := openErr(t, dir, testOptions()); !errors.Is(err, offline.ErrWrongKEK) {
		t.Errorf("Open with the old KEK = %v, want ErrWrongKEK", err)
	}
	o := testOptions()
	o.KEKs = []*offline.KEK{next}
	db = reopen(t, dir, o)
	for _, ow := range owners {
		if _, err := db.OpenCard(ctx, ow); err != nil {
			t.Errorf("after reopen: %v", err)
		}
	}
	db.Close()

	// A crash between the renames: dek.slots under one KEK, mac.key
	// under the other. Both given: it opens; one: a clear refusal.
	dir2, owners2 := storeWithCards(t)
	db = reopen(t, dir2, testOptions())
	macBefore, _ := os.ReadFile(filepath.Join(dir2, "keys", "mac.key"))
	if _, err := db.RotateKEK(ctx, next); err != nil {
		t.Fatal(err)
	}
	db.Close()
	os.WriteFile(filepath.Join(dir2, "keys", "mac.key"), macBefore, 0o600)
	if err := openErr(t, dir2, o); !errors.Is(err, offline.ErrWrongKEK) || !strings.Contains(err.Error(), "mac.key") {
		t.Errorf("Open of a half-rotated store with the new KEK only = %v", err)
	}
	o.KEKs = []*offline.KEK{testKEK, next}
	db = reopen(t, dir2, o)
	if _, err := db.OpenCard(ctx, owners2[0]); err != nil {
		t.Errorf("half-rotated store: %v", err)
	}
}

// Backups are taken while Applies go on; the restored store has every
// transaction acknowledged before the backup began, a card key for every
// card record, and passes bbolt's check; it opens with the KEK only.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	var acked []string
	for range 50 {
		id := newID()
		tx := txn(id, t0)
		apply(t, db, sterad.Change{Put: []*sterad.Transaction{tx}, SealCards: []sterad.SealCard{{Owner: id, Card: testCard(testPAN())}},
			Idempotency: &sterad.IdempotencyRecord{Key: "k-" + id, TxnID: id, CreatedAt: t0}})
		acked = append(acked, id)
	}
	b, err := db.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stay := sterad.Stay{CheckIn: sterad.Date{Year: 2025, Month: 3, Day: 20}, CheckOut: sterad.Date{Year: 2025, Month: 3, Day: 21}}
	apply(t, db, sterad.Change{PutVault: []*sterad.VaultEntry{{Reference: "R1", Stay: stay, CreatedAt: t0}},
		PutReservations: []*sterad.Reservation{{Reference: "R1", Stay: stay, State: sterad.ReservationGuaranteed}},
		SealCards:       []sterad.SealCard{{Owner: sterad.VaultOwner("R1"), Card: testCard(testPAN())}}})

	// Load: writers seal and destroy cards while the backup runs.
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var applied atomic.Int64
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				id := newID()
				c := sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}, SealCards: []sterad.SealCard{{Owner: id, Card: testCard(testPAN())}}}
				if i%3 == 0 && w%2 == 0 {
					c.DestroyCards = []string{acked[(i+w)%len(acked)]}
					c.SealCards = nil
				}
				if err := db.Apply(ctx, c); err != nil {
					errs <- err
					return
				}
				applied.Add(1)
			}
		}()
	}
	testutil.Eventually(t, "writers under way", func() bool { return applied.Load() >= 40 })
	// Halfway through the copy, wait for 10 more commits: writers are
	// not held up by a backup, and what they write after its read
	// transaction began is not in it.
	var buf bytes.Buffer
	before := applied.Load()
	gw := &gatedWriter{w: &buf, after: 64 << 10, gate: func() {
		if !testutil.Poll(10*time.Second, func() bool { return applied.Load() >= before+10 }) {
			t.Error("writers made no progress during the backup")
		}
	}}
	berr := db.Backup(ctx, gw)
	during := applied.Load() - before
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if berr != nil {
		t.Fatal(berr)
	}

	// Restore elsewhere: refused without the KEK, then with it.
	dest := filepath.Join(t.TempDir(), "restored")
	other, _, _ := offline.GenerateKEK()
	o := testOptions()
	o.KEKs = []*offline.KEK{other}
	if _, err := offline.Restore(bytes.NewReader(buf.Bytes()), dest, o); !errors.Is(err, offline.ErrWrongKEK) {
		t.Fatalf("Restore with another KEK = %v, want ErrWrongKEK", err)
	}
	o.KEKs = []*offline.KEK{testKEK}
	id, err := offline.Restore(bytes.NewReader(buf.Bytes()), dest, o)
	if err != nil {
		t.Fatal(err)
	}
	if id != db.Identity() {
		t.Errorf("restored identity %+v, want %+v", id, db.Identity())
	}
	if _, err := offline.Restore(bytes.NewReader(buf.Bytes()), dest, o); !errors.Is(err, offline.ErrNotEmpty) {
		t.Errorf("Restore over a store = %v, want ErrNotEmpty", err)
	}
	res, err := offline.Check(dest, testKEK)
	if err != nil || len(res.Problems) != 0 || len(res.LostKeys) != 0 {
		t.Fatalf("Check of the restored store = %v %+v", err, res)
	}
	r := reopen(t, dest, testOptions())
	for _, id := range acked {
		if _, err := r.Transaction(ctx, id); err != nil {
			t.Errorf("transaction %s missing: %v", id, err)
		}
		if _, err := r.Idempotency(ctx, "k-"+id); err != nil {
			t.Errorf("idempotency key of %s missing: %v", id, err)
		}
	}
	all, _ := r.Transactions(ctx, sterad.TransactionFilter{})
	cards := 0
	for _, tx := range all {
		_, err := r.OpenCard(ctx, tx.ID)
		switch {
		case err == nil:
			cards++
		case !errors.Is(err, sterad.ErrNotFound):
			t.Errorf("card of %s: %v", tx.ID, err)
		}
	}
	if cards == 0 {
		t.Error("no card opens in the restored store")
	}
	if rb, err := r.Batch(ctx, b.Number); err != nil || rb.State != sterad.BatchOpen {
		t.Errorf("batch: %v %+v", err, rb)
	}
	if v, err := r.VaultEntry(ctx, "R1"); err != nil || v.Reference != "R1" {
		t.Errorf("vault: %v", err)
	}
	if rv, err := r.Reservation(ctx, "R1"); err != nil || rv.State != sterad.ReservationGuaranteed {
		t.Errorf("reservation: %v", err)
	}
	if _, err := r.OpenCard(ctx, sterad.VaultOwner("R1")); err != nil {
		t.Errorf("vault card: %v", err)
	}
	// Nothing in the restored directory decrypts a card without the KEK.
	if rec := offline.SealedRecord(r, sterad.VaultOwner("R1")); rec == nil || anyBytesDecrypt(t, dest, rec, sterad.VaultOwner("R1")) {
		t.Error("a card in the restored store decrypts without the KEK (or has no record)")
	}
	t.Logf("backup of %d bytes while %d Applies committed; restored %d transactions, %d cards", buf.Len(), during, len(all), cards)
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
