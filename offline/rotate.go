package offline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// RotateKEK re-wraps every key of the store under next, while the store
// is in use. Card seals, destroys and opens wait for the few milliseconds
// it takes (it holds the key file); the database is not touched. It
// returns how many card keys it re-wrapped; keys written ahead for cards
// not yet sealed (Options.KeyPool) are re-wrapped too but not counted.
//
// Each key file is written anew beside the old one (dek.slots.tmp,
// mac.key.tmp), fsynced, and renamed over it: until the rename is durable
// the old file, under the old KEK, is the store's. The two renames are
// not one atomic step, so a crash between them leaves dek.slots under the
// new KEK and mac.key under the old one: Open accepts that when it is
// given both (Options.KEKs), and running RotateKEK again finishes it.
// The caller keeps the old KEK until RotateKEK has returned, and as long
// as backups taken before it are kept (they are wrapped under it).
func (db *DB) RotateKEK(ctx context.Context, next *KEK) (rewrapped int, err error) {
	if next == nil {
		return 0, &StoreError{Kind: ErrNoKEK, Msg: "no new key-encryption key given"}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := db.enter(); err != nil {
		return 0, err
	}
	defer db.leave()
	db.rotateM.Lock()
	defer db.rotateM.Unlock()

	k := db.keys
	kdir := filepath.Join(db.dir, keysDir)
	k.io.Lock()
	defer k.io.Unlock()
	prev := k.kek
	data, err := k.readAll()
	if err != nil {
		return 0, err
	}
	defer clear(data)
	out := slotsHeader(k.storeID, next)
	ahead := db.pool.slots() // re-wrapped too, but not counted: no card uses them yet
	damagedSlots := 0
	for off := 0; off < len(data); off += slotSize {
		s := data[off:min(len(data), off+slotSize)]
		if len(s) < slotSize || isZero(s) {
			out = append(out, make([]byte, slotSize)...)
			continue
		}
		i := uint32(off / slotSize)
		ad := k.slotAD(i, s[:keyIDSize])
		key, err := prev.unwrap(ad, s[keyIDSize:])
		if err != nil {
			// Damaged already: keep it as it is (still lost).
			out = append(out, s...)
			damagedSlots++
			continue
		}
		out = append(out, s[:keyIDSize]...)
		out = append(out, next.wrap(ad, key)...)
		clear(key)
		if !ahead[i] {
			rewrapped++
		}
	}

	// dek.slots: the new file keeps its descriptor, which becomes the
	// store's once renamed.
	path := filepath.Join(kdir, slotsFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("rotate: %w", err)
	}
	_, err = f.Write(out)
	if err == nil && !db.opts.NoSync {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && !db.opts.NoSync {
		err = syncDir(kdir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return 0, fmt.Errorf("rotate: %w", err)
	}
	k.f.Close()
	k.f, k.kek = f, next

	if err := writeFileAtomic(filepath.Join(kdir, macFile), macFileBytes(k.storeID, next, k.mac), db.opts.NoSync); err != nil {
		return rewrapped, fmt.Errorf("rotate: the card keys are under the new key-encryption key, but the MAC key is not yet (run the rotation again): %w", err)
	}
	db.log.Warn("re-wrapped the store's keys under a new key-encryption key",
		slog.String("old_kek", prev.ID()), slog.String("kek", next.ID()), slog.Int("card_keys", rewrapped), slog.Int("damaged", damagedSlots))
	return rewrapped, nil
}

// KEKID returns the ID of the KEK the card keys are wrapped under.
func (db *DB) KEKID() string {
	db.keys.io.RLock()
	defer db.keys.io.RUnlock()
	return db.keys.kek.ID()
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
