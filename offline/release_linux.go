package offline

import (
	"context"
	"fmt"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// ReleaseMapped drops the store's pages from the daemon's resident memory.
// bbolt reads the database through a shared, read-only memory map: every
// page a read touches stays mapped into the process, and counts in its
// RSS, until the process unmaps it; a walk over the whole store (the
// start's) maps all of it. The pages are clean copies of the file: the
// kernel keeps them in its page cache (and may drop them), and a later
// read maps them again from there (or from the disk). The data is
// unchanged: writes go to the file, never through the map.
//
// It holds a read transaction meanwhile, so that bbolt cannot remap the
// file under it.
func (db *DB) ReleaseMapped() error {
	return db.view(context.Background(), func(tx *bolt.Tx) error {
		data, size := db.bolt.Info().Data, tx.Size()
		if data == 0 || size <= 0 {
			return nil
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release the store's mapped pages: %w", errno)
		}
		return nil
	})
}
