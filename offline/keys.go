package offline

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A key slot in keys/dek.slots: a 16-byte key ID followed by a 32-byte
// AES-256 key. Slot i lives at offset i*slotSize. An all-zero slot is free.
const (
	keyIDSize = 16
	dekSize   = 32
	slotSize  = keyIDSize + dekSize
	macSize   = 32
)

type keyID [keyIDSize]byte

// keyring owns keys/: the MAC key (in memory) and the data-key slot file.
//
// Slot allocation is serialized by mu; slot contents by io (OpenCard reads
// under io.RLock, writers pwrite under io.Lock), so a reader never sees a
// half-written slot.
type keyring struct {
	dir    string
	f      *os.File
	noSync bool
	mac    []byte

	mu   sync.Mutex
	n    uint32   // slots in the file (a partial last slot counts)
	free []uint32 // free slots, lowest index on top

	io sync.RWMutex
}

// openKeyring opens keys/ in dir, creating mac.key only when create is set
// (a new store) and dek.slots whenever it is missing.
func openKeyring(dir string, create, noSync bool) (*keyring, error) {
	mac, err := loadMACKey(filepath.Join(dir, macFile), create, noSync)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, slotsFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open key slots: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("open key slots: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) && !noSync {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &keyring{dir: dir, f: f, noSync: noSync, mac: mac}, nil
}

// loadMACKey reads the 32-byte MAC key, creating it atomically (temp file,
// fsync, rename, fsync dir) when it is missing and create is set.
func loadMACKey(path string, create, noSync bool) ([]byte, error) {
	tmp := path + ".tmp"
	key, err := os.ReadFile(path)
	switch {
	case err == nil:
		// A crash while the key was being created may leave the temporary
		// file behind; the key in it was never used.
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("mac key: %w", err)
		}
		if len(key) != macSize {
			return nil, fmt.Errorf("mac key has %d bytes, want %d", len(key), macSize)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("mac key: %w", err)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read mac key: %w", err)
	case !create:
		return nil, errors.New("mac key is missing from an existing store")
	}
	key = make([]byte, macSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create mac key: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create mac key: %w", err)
	}
	_, err = f.Write(key)
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
		return nil, fmt.Errorf("create mac key: %w", err)
	}
	return key, nil
}

func (k *keyring) close() error {
	k.io.Lock()
	defer k.io.Unlock()
	return k.f.Close()
}

// recover wipes every slot that live does not claim (slot → key ID of the
// card record that references it), fsyncs, and rebuilds the free list. It
// returns how many slots it wiped and the live slots that hold no matching
// key (their cards cannot be opened any more).
func (k *keyring) recover(live map[uint32]keyID) (wiped int, lost []uint32, err error) {
	data, err := io.ReadAll(io.NewSectionReader(k.f, 0, 1<<62))
	if err != nil {
		return 0, nil, fmt.Errorf("read key slots: %w", err)
	}
	defer clear(data)
	n := uint32((len(data) + slotSize - 1) / slotSize)
	slot := func(i uint32) []byte {
		return data[int(i)*slotSize : min(len(data), int(i+1)*slotSize)]
	}
	holds := func(i uint32, id keyID) bool {
		s := slot(i)
		return len(s) == slotSize && bytes.Equal(s[:keyIDSize], id[:])
	}
	for i, id := range live {
		if i >= n || !holds(i, id) {
			lost = append(lost, i)
		}
	}
	var zero [slotSize]byte
	var free []uint32
	for i := n; i > 0; i-- { // descending: the lowest free index ends on top
		s := slot(i - 1)
		if id, ok := live[i-1]; ok && holds(i-1, id) {
			continue
		}
		if len(s) < slotSize || !bytes.Equal(s, zero[:]) {
			if _, err := k.f.WriteAt(zero[:], int64(i-1)*slotSize); err != nil {
				return wiped, lost, fmt.Errorf("wipe key slot: %w", err)
			}
			wiped++
		}
		free = append(free, i-1)
	}
	if wiped > 0 {
		if err := k.sync(); err != nil {
			return wiped, lost, err
		}
	}
	k.mu.Lock()
	k.n, k.free = n, free
	k.mu.Unlock()
	return wiped, lost, nil
}

// alloc takes a free slot, or a new one at the end of the file.
func (k *keyring) alloc() uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.free); n > 0 {
		i := k.free[n-1]
		k.free = k.free[:n-1]
		return i
	}
	i := k.n
	k.n++
	return i
}

// release returns wiped slots to the free list.
func (k *keyring) release(slots []uint32) {
	k.mu.Lock()
	k.free = append(k.free, slots...)
	k.mu.Unlock()
}

// write stores a key in slot i (pwrite; not synced).
func (k *keyring) write(i uint32, id keyID, key []byte) error {
	var buf [slotSize]byte
	copy(buf[:], id[:])
	copy(buf[keyIDSize:], key)
	k.io.Lock()
	_, err := k.f.WriteAt(buf[:], int64(i)*slotSize)
	k.io.Unlock()
	clear(buf[:])
	if err != nil {
		return fmt.Errorf("write key slot: %w", err)
	}
	return nil
}

// wipe overwrites slots with zeros in place (not synced).
func (k *keyring) wipe(slots []uint32) error {
	var zero [slotSize]byte
	k.io.Lock()
	defer k.io.Unlock()
	for _, i := range slots {
		if _, err := k.f.WriteAt(zero[:], int64(i)*slotSize); err != nil {
			return fmt.Errorf("wipe key slot: %w", err)
		}
	}
	return nil
}

// read returns the key in slot i if the slot holds key ID id; ok is false
// when it does not (the card was destroyed, possibly its slot reused).
// The caller clears the returned key.
func (k *keyring) read(i uint32, id keyID) (key []byte, ok bool, err error) {
	var buf [slotSize]byte
	k.io.RLock()
	_, err = k.f.ReadAt(buf[:], int64(i)*slotSize)
	k.io.RUnlock()
	defer clear(buf[:])
	if errors.Is(err, io.EOF) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read key slot: %w", err)
	}
	if !bytes.Equal(buf[:keyIDSize], id[:]) {
		return nil, false, nil
	}
	return bytes.Clone(buf[keyIDSize:]), true, nil
}

// sync makes slot writes durable.
func (k *keyring) sync() error {
	if k.noSync {
		return nil
	}
	if err := fdatasync(k.f); err != nil {
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
