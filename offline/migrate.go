package offline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// migrateV1 turns a schema-1 store (unwrapped keys, no store.json) into
// schema 2, under Options.KEKs[0]. Every step can be interrupted and run
// again:
//
//  1. the database gets a store ID and creation time (still schema 1);
//  2. keys/mac.key and keys/dek.slots are rewritten wrapped (new file,
//     fsync, rename), and the unwrapped originals are overwritten with
//     zeros before they are removed;
//  3. the database is marked schema 2;
//  4. store.json is written.
func (db *DB) migrateV1() error {
	kek := db.opts.KEKs[0]
	kdir := filepath.Join(db.dir, keysDir)
	var sid storeID
	var created time.Time
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if v := meta.Get(metaStoreID); len(v) == storeIDSize {
			sid = storeIDOf(v)
		} else {
			var err error
			if sid, err = newStoreID(); err != nil {
				return err
			}
			if err := meta.Put(metaStoreID, sid[:]); err != nil {
				return err
			}
		}
		if v, err := time.Parse(time.RFC3339, string(meta.Get(metaCreated))); err == nil {
			created = v
		} else {
			created = db.clock.Now().UTC().Truncate(time.Second)
			return meta.Put(metaCreated, []byte(created.Format(time.RFC3339)))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("migrate store to schema 2: %w", err)
	}

	macPath := filepath.Join(kdir, macFile)
	mac, err := os.ReadFile(macPath)
	if errors.Is(err, fs.ErrNotExist) {
		return damaged(macPath, "the MAC key is missing from an existing store: restore the store from a backup (sterad restore)")
	}
	if err != nil {
		return fmt.Errorf("migrate mac key: %w", err)
	}
	if len(mac) == macSize {
		err = replacePlain(macPath, macFileBytes(sid, kek, mac), db.opts.NoSync)
		clear(mac)
		if err != nil {
			return fmt.Errorf("migrate mac key: %w", err)
		}
	}
	wipeLeftover(macPath)

	slotsPath := filepath.Join(kdir, slotsFile)
	old, err := os.ReadFile(slotsPath)
	if errors.Is(err, fs.ErrNotExist) && !db.opts.ForgetLostCardKeys {
		return damaged(slotsPath, "the card key file is missing: restore the store from a backup (sterad restore), "+
			"or, to run on without the kept cards, `sterad store forget-card-keys` (every kept card becomes unreadable)")
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate key slots: %w", err)
	}
	wrapped := 0
	if !bytes.HasPrefix(old, slotsMagic) {
		out := slotsHeader(sid, kek)
		k := &keyring{storeID: sid, kek: kek}
		var zero [v1SlotSize]byte
		for i := 0; i*v1SlotSize < len(old); i++ {
			s := old[i*v1SlotSize : min(len(old), (i+1)*v1SlotSize)]
			if len(s) < v1SlotSize || bytes.Equal(s, zero[:]) {
				out = append(out, make([]byte, slotSize)...)
				continue
			}
			out = append(out, s[:keyIDSize]...)
			out = append(out, kek.wrap(k.slotAD(uint32(i), s[:keyIDSize]), s[keyIDSize:])...)
			wrapped++
		}
		clear(old)
		if err := replacePlain(slotsPath, out, db.opts.NoSync); err != nil {
			return fmt.Errorf("migrate key slots: %w", err)
		}
	}
	wipeLeftover(slotsPath)

	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put(metaVersion, binary.BigEndian.AppendUint32(nil, 2))
	}); err != nil {
		return fmt.Errorf("migrate store to schema 2: %w", err)
	}
	db.ident = identity{StoreID: sid.String(), CreatedAt: created, Schema: 2}
	if err := writeIdentity(db.dir, &db.ident, db.opts.NoSync); err != nil {
		return err
	}
	db.log.Warn("migrated the store from schema 1 to 2: its card keys and MAC key are now wrapped under the key-encryption key",
		slog.String("store", sid.String()), slog.String("kek", kek.ID()), slog.Int("card_keys", wrapped))
	if err := db.openKeys(sid); err != nil {
		return err
	}
	return db.ensureBuckets()
}

// replacePlain replaces path, which holds unwrapped keys, with data: the
// new file is written and renamed over path while a hard link keeps the
// old one, which is then overwritten with zeros and removed (best effort
// on flash storage, which may keep old blocks; the keys it held are
// wrapped from now on).
func replacePlain(path string, data []byte, noSync bool) error {
	old := path + ".v1"
	os.Remove(old)
	if err := os.Link(path, old); err != nil {
		return err
	}
	if err := writeFileAtomic(path, data, noSync); err != nil {
		return err
	}
	wipeLeftover(path)
	return nil
}

// wipeLeftover overwrites path+".v1" (the unwrapped schema-1 file) with
// zeros and removes it, unless it is still path itself.
func wipeLeftover(path string) {
	old := path + ".v1"
	oi, err := os.Stat(old)
	if err != nil {
		return
	}
	if pi, err := os.Stat(path); err == nil && os.SameFile(pi, oi) {
		os.Remove(old)
		return
	}
	if f, err := os.OpenFile(old, os.O_WRONLY, 0); err == nil {
		f.WriteAt(make([]byte, oi.Size()), 0)
		f.Sync()
		f.Close()
	}
	os.Remove(old)
	syncDir(filepath.Dir(path))
}
