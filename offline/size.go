package offline

import (
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Size is how much disk the store takes.
type Size struct {
	// DBFile is the size of sterad.db. bbolt grows the file ahead of its
	// data (in steps of up to 16 MiB) and never shrinks it: pages freed
	// by deletions are reused, not returned (sterad store compact does).
	DBFile int64 `json:"db_file"`
	// Used is the database's high-water mark: the pages in use or free
	// below it (what the file would need without the room grown ahead).
	Used int64 `json:"used"`
	// Free is the free pages below the high-water mark, ready for reuse.
	Free int64 `json:"free"`
	// KeyFiles is the size of keys/ (the MAC key and the card key slots).
	KeyFiles int64 `json:"key_files"`
}

// Total is what the store's files take: the database and the key files.
func (s Size) Total() int64 { return s.DBFile + s.KeyFiles }

// Size reports the sizes of the store's files and of its data.
func (db *DB) Size() (Size, error) {
	if err := db.enter(); err != nil {
		return Size{}, err
	}
	defer db.leave()
	var s Size
	if fi, err := os.Stat(db.path()); err == nil {
		s.DBFile = fi.Size()
	} else {
		return Size{}, err
	}
	for _, name := range []string{macFile, slotsFile} {
		if fi, err := os.Stat(filepath.Join(db.dir, keysDir, name)); err == nil {
			s.KeyFiles += fi.Size()
		}
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		s.Used = tx.Size()
		return nil
	})
	st := db.bolt.Stats()
	s.Free = int64(st.FreePageN+st.PendingPageN) * int64(db.bolt.Info().PageSize)
	return s, err
}

// pageSize is the page size of a new store (and of a compacted one).
// bbolt never splits a page of four records or fewer and gives the first
// half of a split at most all but three of them, so with records of
// about a kilobyte (a sale's journal) and 4 KiB pages every page of the
// transactions ended up holding two: 2 KiB on disk per sale for the
// record alone. With 16 KiB pages and appendFill a page holds eleven
// (BenchmarkStoreGrowth: docs/operations.md has the figures).
const pageSize = 16 << 10

// appendFill is the fill percent of the buckets whose new keys sort after
// every existing one (ULID transaction IDs, creation times, sequences).
// bbolt splits a full page in two halves by default (FillPercent 0.5),
// which is right for random inserts but leaves every page of an
// append-only bucket half empty for ever: a store of sales took twice the
// room its records need. Filled to 90%, a page still has room for the
// records of its right edge to grow as their flows go on (each step
// writes the record again with one more event).
const appendFill = 0.9

// fillAppendOnly sets the fill percent of the append-only buckets of one
// read-write transaction (FillPercent is not stored: each transaction
// sets it).
func fillAppendOnly(b *buckets) {
	for _, bk := range []*bolt.Bucket{b.txns, b.byCreated, b.byBatch, b.queue, b.batches} {
		bk.FillPercent = appendFill
	}
}

// allocSize is how far ahead of its data bbolt grows sterad.db (bbolt's
// default is 16 MiB once the map is larger than that, which with the
// store's 256 MiB initial map is from the first commit): a hotel's store
// grows by a few megabytes a month, and the file's size should say so.
const allocSize = 1 << 20
