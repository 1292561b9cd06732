// Package offline is sterad's durable store: a bbolt database that
// implements sterad.Store (the transaction journal, idempotency keys, STAN
// reservations, the store-and-forward queue, settlement batches and the
// card vault), with cards encrypted at rest under per-record keys kept
// outside the database.
//
// # Layout
//
//	dir/                 0700
//	  store.json         0600  identity: store ID, creation time, schema
//	  sterad.db          0600  bbolt: every record, no key material
//	  keys/              0700
//	    mac.key          0600  32 random bytes, created with the store: the
//	                           HMAC-SHA256 key of DB.MAC, wrapped under the KEK
//	    dek.slots        0600  card data keys, one fixed-size slot each,
//	                           wrapped under the KEK
//
// The key-encryption key (KEK) lives outside dir (Options.KEKs): a copy of
// dir alone opens nothing. Every part carries the store ID, and Open
// refuses a missing or mismatched part rather than start fresh; see
// docs/storage.md for identity, schema migration, corruption, rotation and
// backups.
//
// Buckets of sterad.db: txns (ID → JSON transaction) with the indexes
// idx_ref, idx_orig, idx_batch, idx_created and unfinished; idem
// (idempotency key → record); cards (owner → sealed card); queue (be64
// sequence → item, FIFO); batches (be64 internal sequence → batch) with
// batchno (number → newest sequence) and meta/open_batch; vault (reference
// → entry); stan (terminal, UTC day → highest STAN reserved); meta.
//
// # Cards: crypto-shredding
//
// Deleting a record from bbolt does not erase it: its bytes stay in free
// pages until they happen to be reused, and copies of the file keep them
// forever. So a card is never made unrecoverable by deleting its record;
// it is made unrecoverable by destroying the only copy of its key.
//
// Every sealed card gets a fresh random AES-256 key. The key lives in
// keys/dek.slots, a file of 76-byte slots after a 64-byte header (16-byte
// random key ID, then the key wrapped under the KEK: nonce, ciphertext,
// tag) written in place with pwrite; an all-zero slot is free. The bbolt
// record holds the slot index, the key ID, a nonce and the AES-256-GCM
// ciphertext of {pan, expiry, entry, brand}, with the owner as additional
// data. Track 2 and chip data are never sealed. Full card numbers are
// never written in clear anywhere.
//
//   - Seal: the key is in its slot and fsynced before the record commits.
//     Keys are written ahead (Options.KeyPool): a filler writes a batch of
//     fresh keys to free slots with one fsync, and a card is sealed under
//     one of them, so its commit syncs only bbolt. With none ready, the
//     committer allocates a slot, writes the key and fsyncs the slot file
//     before the commit. A crash before the commit leaves a key no record
//     references; so does a key written ahead and never used (Close wipes
//     those).
//   - Destroy: delete the record and commit, then overwrite the slot with
//     zeros in place and fsync; the slot is then reused. A crash in between
//     leaves a key no record references. Sealing an owner that has a card
//     destroys the old one the same way.
//   - Open wipes every slot that no card record references, so both crash
//     windows close at the next start.
//   - OpenCard checks the slot's key ID against the record's: a card
//     destroyed (and its slot perhaps reused) while it was being read is
//     not found. A card whose record is there but whose key is gone or
//     does not unwrap is lost (sterad.ErrCardKeyLost, DB.LostCardKeys).
//
// A group commit fsyncs the slot file at most twice however many cards it
// seals or destroys: once before the bbolt commit (new keys not written
// ahead) and once after (wiped keys).
//
// # Apply and group commit
//
// Apply is atomic and durable. With Options.GroupCommit a single
// committer goroutine takes every Change waiting when it becomes free and
// applies them in one bbolt read-write transaction, so 32 concurrent
// callers share one fsync instead of queueing for 32. There is no timer: a
// lone Change commits at once. Inside a group every Change is validated
// against the transaction's state, including the Changes before it, before
// any of it is written, so one that fails (an idempotency key already
// bound) fails alone; an I/O error fails the whole group.
//
// # STANs
//
// NextSTAN hands STANs out of memory from blocks reserved durably
// (Options.STANBlock at a time) per terminal and UTC day, so the hot path
// rarely touches the disk and a STAN is never reused after a restart.
//
// # Batches
//
// Batch numbers wrap from 999999 to 1, so batches are keyed by an internal
// sequence that keeps creation order across the wrap; Batch(number)
// returns the newest batch with that number.
package offline
