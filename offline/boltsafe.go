package offline

import (
	"bytes"
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
	root     uint64
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
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
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
	w := &treeWalk{f: f, ps: int64(m.pageSize), hwm: m.pgid, seen: map[uint64]bool{}}
	if err := w.page(m.root, 0, nil, nil); err != nil {
		return damaged(path, "the database is corrupt ("+err.Error()+"): "+restoreHint)
	}
	return nil
}

// treeWalk checks every page reachable from the root bucket before bbolt
// maps the file: bbolt rebuilds its free list at open by walking the tree
// in a goroutine of its own, where a corrupt page is an unrecoverable
// panic (or a fault past the end of the file). Every page must be inside
// the file, say its own id, be a branch or leaf page whose elements lie
// inside it, and be reached once; keys must ascend strictly within a page
// and stay within the range their parent gives the page (as bbolt's own
// Tx.Check requires).
type treeWalk struct {
	f    *os.File
	ps   int64
	hwm  uint64
	seen map[uint64]bool
}

const (
	pageBranch     = 0x01
	pageLeaf       = 0x02
	leafBucketFlag = 0x01
	pageHeaderSize = 16
	elemSize       = 16
	inBucketSize   = 16
)

func (w *treeWalk) page(id uint64, depth int, lo, hi []byte) error {
	if depth > 64 {
		return errors.New("the tree is too deep")
	}
	if id < 2 || id >= w.hwm {
		return fmt.Errorf("page %d is out of bounds (high water mark %d)", id, w.hwm)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d is referenced twice", id)
	}
	w.seen[id] = true
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(hdr, int64(id)*w.ps); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.NativeEndian
	if got := le.Uint64(hdr); got != id {
		return fmt.Errorf("page %d identifies itself as %d", id, got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return fmt.Errorf("page %d overflows past the high water mark", id)
	}
	for i := uint64(1); i <= overflow; i++ {
		w.seen[id+i] = true
	}
	buf := make([]byte, int64(overflow+1)*w.ps)
	if _, err := w.f.ReadAt(buf, int64(id)*w.ps); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	return w.node(buf, id, depth, lo, hi)
}

// node checks a branch or leaf page held in buf (a page of the file, or
// an inline bucket's page inside a value).
func (w *treeWalk) node(buf []byte, id uint64, depth int, lo, hi []byte) error {
	le := binary.NativeEndian
	if len(buf) < pageHeaderSize {
		return fmt.Errorf("page %d is too short", id)
	}
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if flags != pageBranch && flags != pageLeaf {
		return fmt.Errorf("page %d has type %#x, not a branch or leaf page", id, flags)
	}
	if pageHeaderSize+count*elemSize > len(buf) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	key := func(i int) ([]byte, error) {
		at := pageHeaderSize + i*elemSize
		e := buf[at : at+elemSize]
		pos, ksize := int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:]))
		if flags == pageBranch {
			pos, ksize = int64(le.Uint32(e[0:])), int64(le.Uint32(e[4:]))
		}
		if int64(at)+pos+ksize > int64(len(buf)) {
			return nil, fmt.Errorf("page %d: element %d lies outside the page", id, i)
		}
		return buf[int64(at)+pos : int64(at)+pos+ksize], nil
	}
	var prev []byte
	for i := range count {
		k, err := key(i)
		if err != nil {
			return err
		}
		if (i > 0 && bytes.Compare(k, prev) <= 0) || (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return fmt.Errorf("page %d: key %d is out of order", id, i)
		}
		prev = k
	}
	for i := range count {
		at := pageHeaderSize + i*elemSize
		e := buf[at : at+elemSize]
		if flags == pageBranch {
			clo, _ := key(i)
			chi := hi
			if i+1 < count {
				chi, _ = key(i + 1)
			}
			if err := w.page(le.Uint64(e[8:]), depth+1, clo, chi); err != nil {
				return err
			}
			continue
		}
		eflags, pos, ksize, vsize := le.Uint32(e[0:]), int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		end := int64(at) + pos + ksize + vsize
		if end > int64(len(buf)) {
			return fmt.Errorf("page %d: element %d lies outside the page", id, i)
		}
		if eflags&leafBucketFlag == 0 {
			continue
		}
		v := buf[int64(at)+pos+ksize : end]
		if len(v) < inBucketSize {
			return fmt.Errorf("page %d: element %d is a malformed bucket", id, i)
		}
		if root := le.Uint64(v); root != 0 {
			if err := w.page(root, depth+1, nil, nil); err != nil {
				return err
			}
		} else if err := w.node(v[inBucketSize:], id, depth+1, nil, nil); err != nil {
			return err
		}
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
	// A compaction (Compact) renames a new file over sterad.db while it
	// holds the old one's lock: an open that waited for that lock holds
	// the old, unlinked file. It opens again.
	for attempt := 0; ; attempt++ {
		before, serr := os.Stat(path)
		if serr != nil {
			return nil, fmt.Errorf("open database: %w", serr)
		}
		err = safely(path, func() error {
			var err error
			db, err = bolt.Open(path, 0o600, o)
			return err
		})
		if err != nil {
			break
		}
		if after, serr := os.Stat(path); serr == nil && os.SameFile(before, after) {
			db.AllocSize = allocSize
			return db, nil
		}
		db.Close()
		if attempt == 2 {
			return nil, &StoreError{Kind: ErrInUse, Path: path, Msg: "the database file was replaced while it was being opened (sterad store compact?): try again"}
		}
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
		// Map 256 MiB of address space from the start: a commit that
		// grows the file past the mapping must remap, and a remap waits
		// for every read transaction, such as a backup's copy (Backup).
		// Below this size a backup never holds up a commit.
		InitialMmapSize: 256 << 20,
		// The freelist is rebuilt at open instead of written by every
		// commit (as etcd runs bbolt): fewer pages per commit.
		NoFreelistSync: true,
		// A new store gets 4 KiB pages (an existing one keeps its own
		// until sterad store compact rewrites it): see pageSize.
		PageSize: pageSize,
	}
}
