package offline

import (
	"bytes"
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
// With JSON records of about a kilobyte, 4 KiB pages held two records
// each (bbolt never splits a page of four records or fewer), so stores
// were given 16 KiB pages. Binary records are about 300 bytes: 4 KiB pages
// hold a dozen, the store grows about as much as with 16 KiB (748 and 701
// bytes per sale, BenchmarkStoreGrowth), and every commit writes and
// fsyncs a quarter of the bytes, which halved a lone commit's time
// (docs/storage.md, Page size).
const pageSize = 4 << 10

// Fill percents. bbolt splits a full page in two halves by default
// (FillPercent 0.5), which is right for keys put in random order (a page
// then fills to about 70% on average) but leaves every page of a bucket
// whose keys come in order half empty for ever: a store of sales took
// twice the room its records need.
const (
	// appendFill is for the records whose keys come in order (ULID
	// transaction IDs, queue and batch sequences) and that are written
	// again as their flows go on: a page keeps room for the records of
	// its right edge to grow (each step of a sale writes the record again
	// with one more event, some 15 bytes).
	appendFill = 0.95
	// indexFill is for the entries whose keys come in order and that
	// never change (creation times, batch numbers): pages are filled.
	indexFill = 1.0
)

// fillAppendOnly sets the fill percent of the buckets of one read-write
// transaction (FillPercent is not stored: each transaction sets it).
// The buckets whose keys may come in order or not (idempotency keys,
// references: whatever the PMS sends) start at indexFill, and putOrdered
// sets bbolt's default as soon as a key lands among the existing ones.
func fillAppendOnly(b *buckets) {
	for _, bk := range []*bolt.Bucket{b.txns, b.queue, b.batches} {
		bk.FillPercent = appendFill
	}
	for _, bk := range []*bolt.Bucket{b.byCreated, b.byBatch, b.idem, b.byRef, b.byOrig, b.unfinished} {
		bk.FillPercent = indexFill
	}
}

// putOrdered puts k into b, a bucket whose keys may or may not come in
// order. While every key put in this transaction sorts after the keys
// already there, the bucket is being appended to and its pages are
// filled (fillAppendOnly); a key among them means random order, and the
// bucket gets bbolt's default split for this transaction (filling pages
// under random inserts would split them again and again into small
// ones).
func putOrdered(b *bolt.Bucket, k, v []byte) error {
	if b.FillPercent != bolt.DefaultFillPercent {
		if last, _ := b.Cursor().Last(); last != nil && bytes.Compare(k, last) <= 0 {
			b.FillPercent = bolt.DefaultFillPercent
		}
	}
	return b.Put(k, v)
}

// allocSize is how far ahead of its data bbolt grows sterad.db (bbolt's
// default is 16 MiB once the map is larger than that, which with the
// store's 256 MiB initial map is from the first commit): a hotel's store
// grows by a few megabytes a month, and the file's size should say so.
const allocSize = 1 << 20
