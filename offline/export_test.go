package offline

import bolt "go.etcd.io/bbolt"

// Test bridge: lets package offline_test hold the committer and observe
// its queue, to build a group deterministically.

// SlotSize is the size of one key slot in keys/dek.slots.
const SlotSize = slotSize

// SetBeforeCommit installs fn to run in the committer before each group
// commit. Call it right after Open, before any Apply.
func SetBeforeCommit(db *DB, fn func()) { db.beforeCommit = fn }

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
