package offline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactResult says what a compaction did.
type CompactResult struct {
	Path     string `json:"path"`
	Before   int64  `json:"before"` // bytes of sterad.db before
	After    int64  `json:"after"`  // and after
	PageSize int    `json:"page_size"`
}

// Compact rewrites dir's sterad.db into a new file holding only the data
// in use (bbolt's compaction, pages filled), with the current page size,
// then renames it over the old one and fsyncs the directory. bbolt never
// returns freed pages to the file system: removing transactions
// (retention) makes room for new ones, and only a compaction makes the
// file smaller.
//
// The store must not be open: Compact fails with ErrInUse (a
// *StoreError) when another process (the daemon) holds it. It holds the
// old file's lock until the new one is in place, and Open opens again
// when the file was replaced while it waited for that lock. A crash
// leaves either the old file or the new one, complete, and at most a
// sterad.db.compact, which the next compaction removes. The key files
// and store.json are not touched: the store keeps its identity.
func Compact(dir string, noSync bool) (*CompactResult, error) {
	path := filepath.Join(dir, dbFile)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("compact: no store in %s (%s is missing)", dir, dbFile)
		}
		return nil, fmt.Errorf("compact: %w", err)
	}
	res := &CompactResult{Path: path, Before: fi.Size(), PageSize: pageSize}
	src, err := openBolt(path, &bolt.Options{Timeout: 200 * time.Millisecond, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{PageSize: pageSize, FreelistType: bolt.FreelistMapType,
		NoFreelistSync: true, NoSync: noSync, NoGrowSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = sameContent(src, dst)
	}
	var hwm int64
	if err == nil {
		err = dst.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// bbolt grows a file ahead of its data; the new file holds
		// exactly its pages.
		err = os.Truncate(tmp, hwm)
	}
	if err == nil && !noSync {
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && !noSync {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w (the store is unchanged)", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		res.After = fi.Size()
	}
	return res, nil
}

// sameContent checks that every top-level bucket has as many keys in dst
// as in src, and the same sequence.
func sameContent(src, dst *bolt.DB) error {
	return src.View(func(stx *bolt.Tx) error {
		return dst.View(func(dtx *bolt.Tx) error {
			return stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
				db := dtx.Bucket(name)
				if db == nil {
					return fmt.Errorf("bucket %s missing after compaction", name)
				}
				if s, d := sb.Stats().KeyN, db.Stats().KeyN; s != d || sb.Sequence() != db.Sequence() {
					return fmt.Errorf("bucket %s: %d keys (sequence %d) before, %d (sequence %d) after", name, s, sb.Sequence(), d, db.Sequence())
				}
				return nil
			})
		})
	})
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
