package offline

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// A sealed card record in bucket cards (owner → record):
//
//	version(1) | slot(be32) | key ID(16) | nonce(12) | AES-256-GCM ciphertext+tag
//
// The plaintext is the JSON of cardPlain; the additional data is the owner.
// The key is in keys/dek.slots at the slot, and only there.
const (
	cardVersion = 1
	nonceSize   = 12
	cardHeader  = 1 + 4 + keyIDSize + nonceSize
)

// cardPlain is what is encrypted. Track 2 and chip data are never sealed.
type cardPlain struct {
	PAN    string           `json:"pan"`
	Expiry sterad.Expiry    `json:"expiry"`
	Entry  sterad.EntryMode `json:"entry"`
	Brand  sterad.Brand     `json:"brand"`
}

type cardRecord struct {
	slot  uint32
	id    keyID
	nonce []byte
	ct    []byte
}

func parseCardRecord(b []byte) (cardRecord, error) {
	if len(b) < cardHeader || b[0] != cardVersion {
		return cardRecord{}, errors.New("malformed card record")
	}
	var r cardRecord
	r.slot = binary.BigEndian.Uint32(b[1:5])
	copy(r.id[:], b[5:5+keyIDSize])
	r.nonce = b[5+keyIDSize : cardHeader]
	r.ct = b[cardHeader:]
	return r, nil
}

// slotLog is what one write transaction did to the key slots: the slots
// whose records it deleted (wiped once it has committed).
type slotLog struct {
	released []uint32
}

// sealedCard is a card encrypted under a fresh key, before it has a slot.
type sealedCard struct {
	owner string
	id    keyID
	key   []byte
	rec   []byte // the record; its slot field is set by writeKeys

	slot    uint32 // set by writeKeys, which writes the key there, or taken from the key pool
	hasSlot bool
	pooled  bool // the key was written and synced ahead (keyPool)
}

// sealCard encrypts card under pk, a key written and synced ahead, or
// under a fresh random key when pk is nil (the committer then writes and
// syncs it: writeKeys). It needs no state, so it runs in the caller's
// goroutine.
func sealCard(owner string, card *sterad.Card, pk *pooledKey) (*sealedCard, error) {
	sc := &sealedCard{owner: owner}
	if pk != nil {
		sc.id, sc.key, sc.slot, sc.hasSlot, sc.pooled = pk.id, pk.key, pk.slot, true, true
	} else {
		sc.key = make([]byte, dekSize)
		for sc.id == (keyID{}) { // all zeros marks a free slot
			if _, err := rand.Read(sc.id[:]); err != nil {
				return nil, fmt.Errorf("seal card: %w", err)
			}
		}
		if _, err := rand.Read(sc.key); err != nil {
			return nil, fmt.Errorf("seal card: %w", err)
		}
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal card: %w", err)
	}
	pt, err := json.Marshal(cardPlain{PAN: card.PAN.Reveal(), Expiry: card.Expiry, Entry: card.Entry, Brand: card.Brand})
	if err != nil {
		return nil, errors.New("seal card: cannot encode the card")
	}
	defer clear(pt)
	aead, err := newAEAD(sc.key)
	if err != nil {
		return nil, fmt.Errorf("seal card: %w", err)
	}
	rec := make([]byte, cardHeader, cardHeader+len(pt)+aead.Overhead())
	rec[0] = cardVersion
	binary.BigEndian.PutUint32(rec[1:5], sc.slot)
	copy(rec[5:], sc.id[:])
	copy(rec[5+keyIDSize:], nonce)
	sc.rec = aead.Seal(rec, nonce, pt, []byte(owner))
	return sc, nil
}

// putCard stores the record of a sealed card whose key writeKeys has
// written and synced, destroying the card it replaces.
func (w *writer) putCard(sc *sealedCard) error {
	if !sc.hasSlot {
		return errors.New("put card: the card's key has no slot")
	}
	if err := w.releaseCard(sc.owner); err != nil {
		return fmt.Errorf("replace card: %w", err)
	}
	if err := w.b.cards.Put([]byte(sc.owner), sc.rec); err != nil {
		return fmt.Errorf("put card: %w", err)
	}
	return nil
}

// releaseCard deletes owner's card record, if any, and logs its slot to be
// wiped after the commit.
func (w *writer) releaseCard(owner string) error {
	old := w.b.cards.Get([]byte(owner))
	if old == nil {
		return nil
	}
	if r, err := parseCardRecord(old); err == nil {
		w.slots.released = append(w.slots.released, r.slot)
	} else {
		w.db.log.Warn("malformed card record deleted", slog.String("owner", owner))
	}
	return w.b.cards.Delete([]byte(owner))
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// OpenCard decrypts the card sealed under owner. It returns
// sterad.ErrNotFound when none was sealed or it has been destroyed, and
// sterad.ErrCardKeyLost when the card is kept but its key is gone or does
// not open it (the key file was lost, damaged, or is not this store's):
// the card cannot be used, and it is not the guest's or the issuer's
// doing. The card has no Track2 or ICC.
func (db *DB) OpenCard(ctx context.Context, owner string) (*sterad.Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := db.enter(); err != nil {
		return nil, err
	}
	defer db.leave()
	rec, err := db.cardRecord(owner)
	if err != nil {
		return nil, wrapRead("open card", err)
	}
	key, st, err := db.keys.read(rec.slot, rec.id)
	if err != nil {
		return nil, fmt.Errorf("open card: %w", err)
	}
	switch st {
	case keyAbsent:
		// Destroyed since the view (its slot wiped or reused: the key ID
		// tells), or lost: a destroyed card has no record any more.
		now, err := db.cardRecord(owner)
		if errors.Is(err, sterad.ErrNotFound) || (err == nil && (now.slot != rec.slot || now.id != rec.id)) {
			return nil, sterad.ErrNotFound
		}
		if err != nil {
			return nil, wrapRead("open card", err)
		}
		return nil, db.cardKeyLost(owner, rec.id)
	case keyDamaged:
		return nil, db.cardKeyLost(owner, rec.id)
	}
	defer clear(key)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("open card: %w", err)
	}
	pt, err := aead.Open(nil, rec.nonce, rec.ct, []byte(owner))
	if err != nil {
		return nil, db.cardKeyLost(owner, rec.id)
	}
	defer clear(pt)
	var p cardPlain
	if err := json.Unmarshal(pt, &p); err != nil {
		return nil, errors.New("open card: malformed plaintext")
	}
	return &sterad.Card{PAN: sterad.PAN(p.PAN), Expiry: p.Expiry, Entry: p.Entry, Brand: p.Brand}, nil
}

// cardRecord reads owner's card record (copied out of the transaction).
func (db *DB) cardRecord(owner string) (cardRecord, error) {
	var rec cardRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktCards).Get([]byte(owner))
		if v == nil {
			return sterad.ErrNotFound
		}
		r, err := parseCardRecord(v)
		if err != nil {
			return err
		}
		r.nonce, r.ct = bytes.Clone(r.nonce), bytes.Clone(r.ct)
		rec = r
		return nil
	})
	return rec, err
}

// cardKeyLost records and logs a kept card whose key is lost.
func (db *DB) cardKeyLost(owner string, id keyID) error {
	db.lostMu.Lock()
	_, known := db.lost[owner]
	db.lost[owner] = id
	db.lostMu.Unlock()
	if !known {
		db.log.Error("a kept card's key is lost or damaged: the card cannot be read", slog.String("owner", owner))
	}
	return sterad.ErrCardKeyLost
}

// LostCardKeys returns, in order, the owners (transaction IDs, or
// "vault:" + reference) of the kept cards whose key is lost or does not
// open them: found when the store was opened (or later by OpenCard), and
// still kept. OpenCard returns sterad.ErrCardKeyLost for each; destroying
// the card removes it from the list.
func (db *DB) LostCardKeys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := db.enter(); err != nil {
		return nil, err
	}
	defer db.leave()
	return db.lostOwners(), nil
}

func (db *DB) lostOwners() []string {
	db.lostMu.Lock()
	lost := maps.Clone(db.lost)
	db.lostMu.Unlock()
	var out []string
	db.bolt.View(func(tx *bolt.Tx) error {
		for owner, id := range lost {
			if r, err := parseCardRecord(tx.Bucket(bktCards).Get([]byte(owner))); err == nil && r.id == id {
				out = append(out, owner)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// MAC returns the hex HMAC-SHA256 of data under keys/mac.key.
func (db *DB) MAC(data []byte) string {
	h := hmac.New(sha256.New, db.keys.mac)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// recoverSlots runs at Open: it wipes every key slot that no card record
// references (a crash after a slot was written but before its commit, or
// after a commit that deleted a record but before its slot was wiped).
func (db *DB) recoverSlots() error {
	live := make(map[uint32]keyID)
	owners := make(map[uint32]string)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktCards).ForEach(func(k, v []byte) error {
			r, err := parseCardRecord(v)
			if err != nil {
				db.log.Warn("malformed card record", slog.String("owner", string(k)))
				return nil
			}
			if prev, dup := owners[r.slot]; dup {
				// Two records on one slot: at most one holds its key.
				db.log.Warn("card records share a key slot", slog.String("owner", string(k)), slog.String("other", prev))
			}
			live[r.slot], owners[r.slot] = r.id, string(k)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("scan cards: %w", err)
	}
	wiped, lost, err := db.keys.recover(live)
	if err != nil {
		return err
	}
	if wiped > 0 {
		db.log.Info("wiped orphaned card key slots", slog.Int("slots", wiped))
	}
	db.lostMu.Lock()
	for _, s := range lost {
		db.lost[owners[s]] = live[s]
	}
	db.lostMu.Unlock()
	if len(lost) > 0 {
		db.log.Error("kept cards whose key is lost or damaged: they cannot be read (restore keys/ from a backup, or collect another way)",
			slog.Int("cards", len(lost)), slog.Any("owners", db.lostOwners()))
	}
	return nil
}
