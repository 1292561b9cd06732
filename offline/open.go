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

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func (db *DB) path() string { return filepath.Join(db.dir, dbFile) }

// Identity returns the store's identity.
func (db *DB) Identity() Identity {
	return Identity{StoreID: db.ident.StoreID, CreatedAt: db.ident.CreatedAt, Schema: db.ident.Schema}
}

// openFiles decides what the data directory holds (nothing, a store being
// created, a schema-1 store, a store) and opens it: db.bolt, db.keys and
// db.ident are set when it returns nil.
func (db *DB) openFiles() error {
	dir, kdir := db.dir, filepath.Join(db.dir, keysDir)
	idn, sid, err := readIdentity(dir)
	if err != nil {
		return err
	}
	dbPath := db.path()
	macPath, slotsPath := filepath.Join(kdir, macFile), filepath.Join(kdir, slotsFile)
	hasDB, hasKeys := exists(dbPath), exists(macPath) || exists(slotsPath)
	idPath := filepath.Join(dir, identityFile)

	switch {
	case idn != nil && idn.Creating:
		db.log.Warn("a new store was being created when sterad stopped: creating it again")
		return db.create()
	case idn == nil && !hasDB && !hasKeys:
		return db.create()
	case idn == nil && !hasDB:
		return damaged(dbPath, "the database is missing, but keys/ holds the keys of an existing store: "+
			"restore the store from a backup (sterad restore); to start a new, empty store instead, move this data directory away")
	case !hasDB:
		return damaged(dbPath, fmt.Sprintf("the database of store %s (%s) is missing: restore the store from a backup (sterad restore); "+
			"to start a new, empty store instead, move this data directory away", idn.StoreID, idPath))
	case idn != nil && idn.Schema > schemaVersion:
		return newerSchema(idPath, idn.Schema)
	}

	if db.bolt, err = openBolt(dbPath, boltOptions(db.opts)); err != nil {
		return err
	}
	if err := os.Chmod(dbPath, 0o600); err != nil {
		return err
	}
	var version int
	var metaID []byte
	if err := safely(dbPath, func() error {
		return db.bolt.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bktMeta); b != nil {
				if v := b.Get(metaVersion); len(v) == 4 {
					version = int(binary.BigEndian.Uint32(v))
				}
				metaID = bytes.Clone(b.Get(metaStoreID))
			}
			return nil
		})
	}); err != nil {
		return err
	}

	switch {
	case version > schemaVersion:
		return newerSchema(dbPath, version)
	case version == 0 && idn == nil:
		// A schema-1 store that crashed while it was being created: it
		// never held anything.
		db.log.Warn("an empty database without keys in use: creating the store again")
		db.bolt.Close()
		db.bolt = nil
		return db.create()
	case version == 0:
		return damaged(dbPath, fmt.Sprintf("the database holds no store, but %s names store %s: restore the store from a backup (sterad restore)", idPath, idn.StoreID))
	case idn == nil && version == 1:
		return db.migrateV1()
	case idn == nil:
		return damaged(idPath, fmt.Sprintf("the store identity is missing (sterad.db belongs to store %x): restore it from a backup (sterad restore)", metaID))
	case len(metaID) != storeIDSize || storeIDOf(metaID) != sid:
		return damaged(dbPath, fmt.Sprintf("the database belongs to store %x, but %s names store %s: put back this store's sterad.db, or restore the store from a backup (sterad restore)", metaID, idPath, idn.StoreID))
	case version != idn.Schema:
		return damaged(dbPath, fmt.Sprintf("the database has schema %d but %s says %d: restore the store from a backup (sterad restore)", version, idPath, idn.Schema))
	}
	db.ident = *idn
	if err := db.openKeys(sid); err != nil {
		return err
	}
	return db.ensureBuckets()
}

func newerSchema(path string, v int) error {
	return &StoreError{Kind: ErrNewerSchema, Path: path, Msg: fmt.Sprintf(
		"the store has schema %d, written by a newer sterad; this sterad knows schemas up to %d: run the newer sterad (or restore a backup taken before the upgrade)", v, schemaVersion)}
}

// openKeys opens keys/, writing an empty card key file first when it is
// missing and Options.ForgetLostCardKeys allows it.
func (db *DB) openKeys(sid storeID) error {
	kdir := filepath.Join(db.dir, keysDir)
	slots := filepath.Join(kdir, slotsFile)
	if !exists(slots) && exists(filepath.Join(kdir, macFile)) && db.opts.ForgetLostCardKeys {
		db.log.Warn("the card key file is missing: starting without it, every kept card is lost", slog.String("file", slots))
		if err := writeFileAtomic(slots, slotsHeader(sid, db.opts.KEKs[0]), db.opts.NoSync); err != nil {
			return fmt.Errorf("create key slots: %w", err)
		}
	}
	var err error
	db.keys, err = openKeyring(kdir, sid, db.opts.KEKs, db.opts.NoSync)
	return err
}

// create makes a new store: store.json (marked creating), the key files,
// the database, then store.json complete. A crash before the end leaves a
// store marked creating, which the next Open creates again.
func (db *DB) create() error {
	sid, err := newStoreID()
	if err != nil {
		return err
	}
	kdir := filepath.Join(db.dir, keysDir)
	idn := identity{StoreID: sid.String(), CreatedAt: db.clock.Now().UTC().Truncate(time.Second), Schema: schemaVersion, Creating: true}
	if err := writeIdentity(db.dir, &idn, db.opts.NoSync); err != nil {
		return err
	}
	for _, p := range []string{db.path(), filepath.Join(kdir, macFile), filepath.Join(kdir, slotsFile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := createKeyring(kdir, sid, db.opts.KEKs[0], db.opts.NoSync); err != nil {
		return err
	}
	if db.bolt, err = openBolt0(db.path(), db.opts); err != nil {
		return err
	}
	if err := db.ensureBuckets(); err != nil {
		return err
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if err := meta.Put(metaStoreID, sid[:]); err != nil {
			return err
		}
		if err := meta.Put(metaCreated, []byte(idn.CreatedAt.Format(time.RFC3339))); err != nil {
			return err
		}
		return meta.Put(metaVersion, binary.BigEndian.AppendUint32(nil, schemaVersion))
	}); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if err := os.Chmod(db.path(), 0o600); err != nil {
		return err
	}
	idn.Creating = false
	if err := writeIdentity(db.dir, &idn, db.opts.NoSync); err != nil {
		return err
	}
	db.ident = idn
	db.keys, err = openKeyring(kdir, sid, db.opts.KEKs, db.opts.NoSync)
	if err == nil {
		db.log.Info("created a new store", slog.String("store", sid.String()), slog.String("kek", db.opts.KEKs[0].ID()))
	}
	return err
}

// openBolt0 creates a new database file (nothing to precheck).
func openBolt0(path string, o Options) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, boltOptions(o))
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	db.AllocSize = allocSize
	return db, nil
}

// ensureBuckets creates the buckets a store of this code has (a store
// written before a bucket existed gets it at its next open).
func (db *DB) ensureBuckets() error {
	return safely(db.path(), func() error {
		return db.bolt.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
