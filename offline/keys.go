package offline

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Key files, schema 2. Every key in them is wrapped (AES-256-GCM) under a
// key-encryption key kept outside the data directory; each file's header
// names the store it belongs to and the KEK that wraps it.
//
// keys/dek.slots: a 64-byte header
//
//	magic "STERADS2" | store ID (16) | KEK ID (8) | zeros (32)
//
// then fixed-size slots: slot i at offset 64 + i*76,
//
//	key ID (16) | nonce (12) | wrapped data key (32) + GCM tag (16)
//
// with the store ID, the slot index (be32) and the key ID as associated
// data, so a slot cannot be moved to another index or store. An all-zero
// slot is free.
//
// keys/mac.key: magic "STERADM2" | store ID (16) | KEK ID (8) | nonce (12)
// | wrapped MAC key (32) + tag (16); the 32-byte header is the associated
// data.
//
// Schema 1 (before the KEK) had unwrapped 48-byte slots (key ID, key) and
// a raw 32-byte mac.key; Open migrates them (migrateKeysV1).
const (
	keyIDSize  = 16
	dekSize    = 32
	macSize    = 32
	wrappedLen = nonceSize + dekSize + 16
	slotSize   = keyIDSize + wrappedLen // 76
	slotsHdr   = 64
	slotGrow   = 1024 // slots the file grows by when none is free
	macHdr     = 8 + storeIDSize + kekIDSize
	macFileLen = macHdr + nonceSize + macSize + 16

	v1SlotSize = keyIDSize + dekSize // 48
)

var (
	slotsMagic = []byte("STERADS2")
	macMagic   = []byte("STERADM2")
)

type keyID [keyIDSize]byte

// keyState is what a slot holds for a key ID.
type keyState int

const (
	keyOK      keyState = iota
	keyAbsent           // the slot is free or holds another key: destroyed (maybe reused)
	keyDamaged          // the slot holds the key ID but its key does not unwrap
)

// keyring owns keys/: the MAC key (in memory) and the data-key slot file.
//
// Slot allocation is serialized by mu; slot contents and the file handle
// by io (readers under io.RLock, writers pwrite under io.Lock; RotateKEK
// replaces the file under io.Lock), so a reader never sees a half-written
// slot.
type keyring struct {
	dir     string
	storeID storeID
	noSync  bool
	mac     []byte

	mu     sync.Mutex
	n      uint32     // slots in the file (a partial last slot counts)
	free   []uint32   // free slots, lowest index on top
	growMu sync.Mutex // held by the allocator that grows the file

	io  sync.RWMutex
	f   *os.File
	kek *KEK // wraps dek.slots (and, usually, mac.key)
}

// createKeyring writes new key files for a new store (both wrapped under
// kek), replacing any left by an unfinished creation.
func createKeyring(dir string, id storeID, kek *KEK, noSync bool) error {
	mac := make([]byte, macSize)
	defer clear(mac)
	if _, err := rand.Read(mac); err != nil {
		return fmt.Errorf("create mac key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, macFile), macFileBytes(id, kek, mac), noSync); err != nil {
		return fmt.Errorf("create mac key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, slotsFile), slotsHeader(id, kek), noSync); err != nil {
		return fmt.Errorf("create key slots: %w", err)
	}
	return nil
}

// openKeyring opens the key files of store id in dir. Each must exist,
// belong to the store and be wrapped under one of keks.
func openKeyring(dir string, id storeID, keks []*KEK, noSync bool) (*keyring, error) {
	mac, err := loadMACKey(filepath.Join(dir, macFile), id, keks)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, slotsFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		clear(mac)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, damaged(path, "the card key file is missing: restore the store from a backup (sterad restore), "+
				"or, to run on without the kept cards, `sterad store forget-card-keys` (every kept card becomes unreadable)")
		}
		return nil, fmt.Errorf("open key slots: %w", err)
	}
	kek, err := checkSlotsHeader(f, path, id, keks)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err != nil {
		clear(mac)
		f.Close()
		return nil, err
	}
	return &keyring{dir: dir, storeID: id, f: f, noSync: noSync, mac: mac, kek: kek}, nil
}

func slotsHeader(id storeID, kek *KEK) []byte {
	h := make([]byte, slotsHdr)
	copy(h, slotsMagic)
	copy(h[8:], id[:])
	copy(h[8+storeIDSize:], kek.id[:])
	return h
}

// checkSlotsHeader reads dek.slots' header and returns the KEK it names.
func checkSlotsHeader(f *os.File, path string, id storeID, keks []*KEK) (*KEK, error) {
	h := make([]byte, slotsHdr)
	if _, err := f.ReadAt(h, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, damaged(path, "the card key file is truncated (no header): restore the store from a backup (sterad restore)")
		}
		return nil, fmt.Errorf("read key slots: %w", err)
	}
	if !bytes.Equal(h[:8], slotsMagic) {
		return nil, damaged(path, "not a card key file of this sterad (bad header): restore the store from a backup (sterad restore)")
	}
	if got := storeIDOf(h[8:]); got != id {
		return nil, damaged(path, fmt.Sprintf("the card key file belongs to store %s, not to this store %s: put back this store's keys/ (or restore the store from a backup)", got, id))
	}
	kid := h[8+storeIDSize : 8+storeIDSize+kekIDSize]
	kek := kekFor(keks, kid)
	if kek == nil {
		return nil, wrongKEK(path, kid, keks)
	}
	return kek, nil
}

func wrongKEK(path string, want []byte, keks []*KEK) error {
	var given []string
	for _, k := range keks {
		given = append(given, k.ID())
	}
	return &StoreError{Kind: ErrWrongKEK, Path: path, Msg: fmt.Sprintf(
		"wrapped under key-encryption key %x, but the KEK given is %v: start sterad with the kek_file this store was created (or last rotated) with",
		want, given)}
}

func macFileBytes(id storeID, kek *KEK, mac []byte) []byte {
	h := make([]byte, macHdr, macFileLen)
	copy(h, macMagic)
	copy(h[8:], id[:])
	copy(h[8+storeIDSize:], kek.id[:])
	return append(h, kek.wrap(h[:macHdr], mac)...)
}

// loadMACKey reads and unwraps keys/mac.key.
func loadMACKey(path string, id storeID, keks []*KEK) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, damaged(path, "the MAC key is missing from an existing store (its fingerprints could no longer be checked): restore the store from a backup (sterad restore)")
		}
		return nil, fmt.Errorf("read mac key: %w", err)
	}
	if len(b) != macFileLen || !bytes.Equal(b[:8], macMagic) {
		return nil, damaged(path, "not a MAC key file of this sterad: restore the store from a backup (sterad restore)")
	}
	if got := storeIDOf(b[8:]); got != id {
		return nil, damaged(path, fmt.Sprintf("the MAC key belongs to store %s, not to this store %s: put back this store's keys/ (or restore the store from a backup)", got, id))
	}
	kid := b[8+storeIDSize : macHdr]
	kek := kekFor(keks, kid)
	if kek == nil {
		return nil, wrongKEK(path, kid, keks)
	}
	mac, err := kek.unwrap(b[:macHdr], b[macHdr:])
	if err != nil {
		return nil, damaged(path, "the MAC key does not unwrap (the file is corrupt): restore the store from a backup (sterad restore)")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("mac key: %w", err)
	}
	return mac, nil
}

// macKEK returns the ID of the KEK keys/mac.key is wrapped under.
func macKEK(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) != macFileLen {
		return nil, errors.New("malformed mac key")
	}
	return b[8+storeIDSize : macHdr], nil
}

// writeFileAtomic writes data to path through a temporary file (fsync,
// rename, fsync dir), mode 0600.
func writeFileAtomic(path string, data []byte, noSync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && !noSync {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func (k *keyring) close() error {
	k.io.Lock()
	defer k.io.Unlock()
	clear(k.mac)
	return k.f.Close()
}

func (k *keyring) slotAD(i uint32, id []byte) []byte {
	ad := make([]byte, 0, storeIDSize+4+keyIDSize)
	ad = append(ad, k.storeID[:]...)
	ad = binary.BigEndian.AppendUint32(ad, i)
	return append(ad, id...)
}

// readAll returns the slots after the header (the caller holds io).
func (k *keyring) readAll() ([]byte, error) {
	data, err := io.ReadAll(io.NewSectionReader(k.f, slotsHdr, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("read key slots: %w", err)
	}
	return data, nil
}

// recover wipes every slot that live does not claim (slot → key ID of the
// card record that references it), fsyncs, and rebuilds the free list. It
// returns how many slots it wiped and the live slots whose key is gone or
// does not unwrap (their cards cannot be opened any more). Those slots are
// left as they are and never reused.
func (k *keyring) recover(live map[uint32]keyID) (wiped int, lost []uint32, err error) {
	k.io.Lock()
	defer k.io.Unlock()
	data, err := k.readAll()
	if err != nil {
		return 0, nil, err
	}
	defer clear(data)
	n := uint32((len(data) + slotSize - 1) / slotSize)
	slot := func(i uint32) []byte {
		return data[int(i)*slotSize : min(len(data), int(i+1)*slotSize)]
	}
	lost = k.lostIn(data, live)
	var zero [slotSize]byte
	var free []uint32
	for i := n; i > 0; i-- { // descending: the lowest free index ends on top
		s := slot(i - 1)
		if _, ok := live[i-1]; ok {
			continue
		}
		if len(s) < slotSize || !bytes.Equal(s, zero[:]) {
			if _, err := k.f.WriteAt(zero[:], slotsHdr+int64(i-1)*slotSize); err != nil {
				return wiped, lost, fmt.Errorf("wipe key slot: %w", err)
			}
			wiped++
		}
		free = append(free, i-1)
	}
	// Live slots beyond the end (a truncated file) are claimed too.
	for i := range live {
		if i >= n {
			n = i + 1
		}
	}
	if wiped > 0 && !k.noSync {
		if err := fdatasync(k.f); err != nil {
			return wiped, lost, fmt.Errorf("sync key slots: %w", err)
		}
	}
	k.mu.Lock()
	k.n, k.free = n, free
	k.mu.Unlock()
	return wiped, lost, nil
}

// lostIn returns the live slots (slot → key ID) that do not hold their
// key, or whose key does not unwrap, in data (the slots after the header).
func (k *keyring) lostIn(data []byte, live map[uint32]keyID) []uint32 {
	var lost []uint32
	for i, id := range live {
		off := int(i) * slotSize
		if off+slotSize > len(data) || !bytes.Equal(data[off:off+keyIDSize], id[:]) {
			lost = append(lost, i)
			continue
		}
		key, err := k.kek.unwrap(k.slotAD(i, id[:]), data[off+keyIDSize:off+slotSize])
		if err != nil {
			lost = append(lost, i)
		}
		clear(key)
	}
	return lost
}

// lost is lostIn on the file (read only).
func (k *keyring) lost(live map[uint32]keyID) []uint32 {
	k.io.RLock()
	defer k.io.RUnlock()
	data, err := k.readAll()
	if err != nil {
		lost := make([]uint32, 0, len(live))
		for i := range live {
			lost = append(lost, i)
		}
		return lost
	}
	defer clear(data)
	return k.lostIn(data, live)
}

// alloc takes a free slot, or a new one at the end of the file.
func (k *keyring) alloc() (uint32, error) {
	for {
		k.mu.Lock()
		if n := len(k.free); n > 0 {
			i := k.free[n-1]
			k.free = k.free[:n-1]
			k.mu.Unlock()
			return i, nil
		}
		k.mu.Unlock()
		k.growMu.Lock()
		k.mu.Lock()
		if len(k.free) > 0 { // another allocator grew the file meanwhile
			k.mu.Unlock()
			k.growMu.Unlock()
			continue
		}
		from := k.n
		k.mu.Unlock()
		// No free slot: the file grows by slotGrow zeroed slots at once. A
		// slot written inside the file changes no file size, so the sync
		// before each commit flushes the slot's data alone (a journal
		// commit of the file system per new card took half a
		// millisecond). growMu keeps a second allocator from growing the
		// file from the same end.
		zero := make([]byte, slotGrow*slotSize)
		k.io.Lock()
		_, err := k.f.WriteAt(zero, slotsHdr+int64(from)*slotSize)
		k.io.Unlock()
		if err != nil {
			k.growMu.Unlock()
			return 0, fmt.Errorf("grow key slots: %w", err)
		}
		k.mu.Lock()
		k.n = from + slotGrow
		for i := k.n - 1; i > from; i-- { // descending: the lowest free index ends on top
			k.free = append(k.free, i)
		}
		k.mu.Unlock()
		k.growMu.Unlock()
		return from, nil
	}
}

// release returns wiped slots to the free list.
func (k *keyring) release(slots []uint32) {
	k.mu.Lock()
	k.free = append(k.free, slots...)
	k.mu.Unlock()
}

// write stores a key in slot i, wrapped (pwrite; not synced).
func (k *keyring) write(i uint32, id keyID, key []byte) error {
	buf := make([]byte, 0, slotSize)
	buf = append(buf, id[:]...)
	k.io.Lock()
	buf = append(buf, k.kek.wrap(k.slotAD(i, id[:]), key)...)
	_, err := k.f.WriteAt(buf, slotsHdr+int64(i)*slotSize)
	k.io.Unlock()
	if err != nil {
		return fmt.Errorf("write key slot: %w", err)
	}
	return nil
}

// writeMany stores keys in their slots, wrapped, with one pwrite per run
// of adjacent slots (not synced).
func (k *keyring) writeMany(keys []pooledKey) error {
	sorted := slices.SortedFunc(slices.Values(keys), func(a, b pooledKey) int { return cmp.Compare(a.slot, b.slot) })
	k.io.Lock()
	defer k.io.Unlock()
	for len(sorted) > 0 {
		run := 1
		for run < len(sorted) && sorted[run].slot == sorted[0].slot+uint32(run) {
			run++
		}
		buf := make([]byte, 0, run*slotSize)
		for _, x := range sorted[:run] {
			buf = append(buf, x.id[:]...)
			buf = append(buf, k.kek.wrap(k.slotAD(x.slot, x.id[:]), x.key)...)
		}
		_, err := k.f.WriteAt(buf, slotsHdr+int64(sorted[0].slot)*slotSize)
		clear(buf)
		if err != nil {
			return fmt.Errorf("write key slots: %w", err)
		}
		sorted = sorted[run:]
	}
	return nil
}

// wipe overwrites slots with zeros in place (not synced).
func (k *keyring) wipe(slots []uint32) error {
	var zero [slotSize]byte
	k.io.Lock()
	defer k.io.Unlock()
	for _, i := range slots {
		if _, err := k.f.WriteAt(zero[:], slotsHdr+int64(i)*slotSize); err != nil {
			return fmt.Errorf("wipe key slot: %w", err)
		}
	}
	return nil
}

// read returns the key in slot i if the slot holds key ID id. The state
// is keyAbsent when it does not (the card was destroyed, possibly its slot
// reused, or the file lost it) and keyDamaged when the slot holds the key
// ID but its key does not unwrap. The caller clears the returned key.
func (k *keyring) read(i uint32, id keyID) (key []byte, st keyState, err error) {
	var buf [slotSize]byte
	k.io.RLock()
	_, err = k.f.ReadAt(buf[:], slotsHdr+int64(i)*slotSize)
	kek := k.kek
	k.io.RUnlock()
	if errors.Is(err, io.EOF) {
		return nil, keyAbsent, nil
	}
	if err != nil {
		return nil, keyAbsent, fmt.Errorf("read key slot: %w", err)
	}
	if !bytes.Equal(buf[:keyIDSize], id[:]) {
		return nil, keyAbsent, nil
	}
	key, err = kek.unwrap(k.slotAD(i, id[:]), buf[keyIDSize:])
	if err != nil || len(key) != dekSize {
		clear(key)
		return nil, keyDamaged, nil
	}
	return key, keyOK, nil
}

// sync makes slot writes durable.
func (k *keyring) sync() error {
	if k.noSync {
		return nil
	}
	k.io.RLock()
	err := fdatasync(k.f)
	k.io.RUnlock()
	if err != nil {
		return fmt.Errorf("sync key slots: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so that entries created in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
