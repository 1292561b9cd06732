package offline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bbolt trusts its file: a truncated or corrupted sterad.db makes it panic
// (or fault on the memory map past the end of the file) on open, when it
// rebuilds its free list, or on the first read. The store checks the file
// before bbolt maps it, and turns every panic and fault of opening into
// one ErrDamaged error, so a damaged store gives one clear line and a
// non-zero exit instead of a crash loop under a service manager.

const restoreHint = "restore the store from a backup (sterad restore), or run `sterad store check` for details"

// boltMeta is the part of a bbolt meta page the precheck reads.
type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// readBoltMeta parses the meta page at off (bbolt's native layout: a
// 16-byte page header, then magic, version, page size, flags, root
// bucket (16), free list, high-water page id, txid, FNV-64a checksum).
func readBoltMeta(f *os.File, off int64) (boltMeta, bool) {
	buf := make([]byte, 16+64)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, false
	}
	m := buf[16:]
	le := binary.NativeEndian
	if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// precheckBolt refuses a sterad.db that bbolt would crash on: no valid
// meta page, or shorter than its newest commit says it is.
func precheckBolt(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if fi.Size() == 0 {
		return damaged(path, "the database file is empty: "+restoreHint)
	}
	m0, ok0 := readBoltMeta(f, 0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	m1, ok1 := readBoltMeta(f, ps)
	if !ok0 && !ok1 {
		return damaged(path, "not a valid database (both meta pages are corrupt): "+restoreHint)
	}
	m := m0
	if !ok0 || (ok1 && m1.txid > m0.txid) {
		m = m1
	}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return damaged(path, "not a valid database (bad page size): "+restoreHint)
	}
	if need := int64(m.pgid) * int64(m.pageSize); fi.Size() < need {
		return damaged(path, fmt.Sprintf("the database is truncated: %d bytes, its last commit needs %d: %s", fi.Size(), need, restoreHint))
	}
	return nil
}

// safely runs fn and turns a panic or a memory fault in it into an
// ErrDamaged error about path.
func safely(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			if len(msg) > 200 {
				msg = msg[:200] + "…"
			}
			err = damaged(path, "the database is corrupt ("+strings.ReplaceAll(msg, "\n", " ")+"): "+restoreHint)
		}
	}()
	return fn()
}

// openBolt prechecks and opens sterad.db, mapping bbolt's failures.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	if err := precheckBolt(path); err != nil {
		return nil, err
	}
	err = safely(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, o)
		return err
	})
	if err == nil {
		return db, nil
	}
	var se *StoreError
	switch {
	case errors.As(err, &se):
	case errors.Is(err, berrors.ErrTimeout):
		err = &StoreError{Kind: ErrInUse, Path: path, Msg: "another process has the store open (is the sterad daemon running? stop it first, or use the command that asks the daemon)"}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		err = damaged(path, "not a valid database ("+err.Error()+"): "+restoreHint)
	default:
		err = fmt.Errorf("open database: %w", err)
	}
	return nil, err
}

// boltOptions are the options sterad.db is opened with.
func boltOptions(o Options) *bolt.Options {
	return &bolt.Options{
		Timeout:      time.Second,
		NoSync:       o.NoSync,
		NoGrowSync:   o.NoSync,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt at open instead of written by every
		// commit (as etcd runs bbolt): fewer pages per commit.
		NoFreelistSync: true,
	}
}
