package offline

import (
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Test bridge: lets package offline_test hold the committer and observe
// its queue, to build a group deterministically.

// SlotSize is the size of one key slot in keys/dek.slots, after a header
// of SlotsHeader bytes; the file grows by SlotGrow slots at a time.
const (
	SlotSize    = slotSize
	SlotsHeader = slotsHdr
	SlotGrow    = slotGrow
)

// UnwrapSlots returns every data key in dir/keys/dek.slots that kek
// unwraps (what someone holding the data directory and the KEK has).
func UnwrapSlots(dir string, kek *KEK) [][]byte {
	b, err := os.ReadFile(filepath.Join(dir, keysDir, slotsFile))
	if err != nil || len(b) < slotsHdr {
		return nil
	}
	k := &keyring{storeID: storeIDOf(b[8:]), kek: kek}
	var out [][]byte
	for off := slotsHdr; off+slotSize <= len(b); off += slotSize {
		i := uint32((off - slotsHdr) / slotSize)
		if key, err := kek.unwrap(k.slotAD(i, b[off:off+keyIDSize]), b[off+keyIDSize:off+slotSize]); err == nil {
			out = append(out, key)
		}
	}
	return out
}

// UnwrapMAC returns the MAC key in dir/keys/mac.key if kek unwraps it.
func UnwrapMAC(dir string, kek *KEK) []byte {
	b, err := os.ReadFile(filepath.Join(dir, keysDir, macFile))
	if err != nil || len(b) != macFileLen {
		return nil
	}
	mac, _ := kek.unwrap(b[:macHdr], b[macHdr:])
	return mac
}

// SetBeforeCommit installs fn to run in the committer before each group
// commit. Call it right after Open, before any Apply.
func SetBeforeCommit(db *DB, fn func()) { db.beforeCommit = fn }

// PoolReady returns how many card keys are written and synced ahead.
func PoolReady(db *DB) int {
	if db.pool == nil {
		return 0
	}
	db.pool.mu.Lock()
	defer db.pool.mu.Unlock()
	return len(db.pool.ready)
}

// Pending returns how many Changes wait for the committer.
func Pending(db *DB) int { return len(db.reqs) }

// HoldWriter takes the writer slot that an Apply without group commit
// needs, until the returned function is called.
func HoldWriter(db *DB) (release func()) {
	db.writer <- struct{}{}
	return func() { <-db.writer }
}

// BreakSlotFile closes keys/dek.slots under the store, so that the next
// seal fails with an I/O error.
func BreakSlotFile(db *DB) { db.keys.f.Close() }

// SealedRecord returns the encrypted record of owner's card as stored.
func SealedRecord(db *DB, owner string) []byte {
	var out []byte
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktCards).Get([]byte(owner)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out
}

// Decrypts reports whether key opens a sealed card record of owner.
func Decrypts(record []byte, owner string, key []byte) bool {
	r, err := parseCardRecord(record)
	if err != nil || len(key) != dekSize {
		return false
	}
	aead, err := newAEAD(key)
	if err != nil {
		return false
	}
	_, err = aead.Open(nil, r.nonce, r.ct, []byte(owner))
	return err == nil
}

// WriteJSONRecords makes db write transaction, idempotency and queue
// records as JSON, as releases before the binary encoding did. Call it
// right after Open, before any Apply.
func WriteJSONRecords(db *DB, on bool) { db.legacyJSON = on }

// RecordFormat returns the first byte of the record under key in bucket
// ("txns", "idem", "queue"), 0 when there is none.
func RecordFormat(db *DB, bucket string, key []byte) byte {
	var f byte
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(bucket)).Get(key); len(v) > 0 {
			f = v[0]
		}
		return nil
	})
	return f
}
