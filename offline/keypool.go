package offline

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
)

// DefaultKeyPool is how many card keys DefaultOptions has written and
// synced ahead of the cards they will seal.
const DefaultKeyPool = 256

// pooledKey is a card key already written to its slot and synced: a card
// sealed under it needs no sync of the key file before its record
// commits. Until then it encrypts nothing on disk.
type pooledKey struct {
	slot uint32
	id   keyID
	key  []byte
}

// keyPool keeps up to size keys written and synced ahead. Sealing a card
// takes one (take); a filler goroutine writes the missing ones in one
// batch with one sync once fewer than half are left. It starts when the
// committer has nothing to commit (idle), so that its fsync does not land
// beside a commit's and delay a sale; under a load that never lets the
// committer rest it starts anyway once fewer than a quarter are left.
// When the pool is empty (a burst, or right after Open) sealing falls back
// to a fresh key that the committer writes and syncs before the commit.
//
// Keys that are never used are wiped by Close, or by the next Open after
// a crash (their slots are referenced by no record: keyring.recover).
type keyPool struct {
	db   *DB
	size int

	mu     sync.Mutex
	ready  []pooledKey
	closed bool
	wanted bool // fewer than half are ready: fill when the committer is idle

	wake chan struct{} // cap 1: a fill is wanted
	done chan struct{} // closed when the filler has stopped
	stop chan struct{}
}

func newKeyPool(db *DB, size int) *keyPool {
	p := &keyPool{db: db, size: size, wake: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	go p.fill()
	return p
}

// take returns a ready key, or false if none is ready. It asks for a
// fill when the pool runs low.
func (p *keyPool) take() (pooledKey, bool) {
	p.mu.Lock()
	n := len(p.ready)
	var k pooledKey
	ok := n > 0 && !p.closed
	if ok {
		k = p.ready[n-1]
		p.ready[n-1] = pooledKey{}
		p.ready = p.ready[:n-1]
		n--
	}
	if !p.closed && n < p.size/2 {
		p.wanted = true
	}
	urgent := p.wanted && n < p.size/4
	p.mu.Unlock()
	if urgent {
		p.signal()
	}
	return k, ok
}

// idle is called by the committer when nothing waits to be committed: a
// fill that is wanted starts now.
func (p *keyPool) idle() {
	p.mu.Lock()
	wanted := p.wanted
	p.mu.Unlock()
	if wanted {
		p.signal()
	}
}

func (p *keyPool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// slots returns the slots of the keys ready in p (none for a nil pool).
func (p *keyPool) slots() map[uint32]bool {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[uint32]bool, len(p.ready))
	for _, k := range p.ready {
		m[k.slot] = true
	}
	return m
}

// giveBack returns keys that were taken but never committed (their Change
// failed before the committer claimed it). After Close the slots are
// left for the next Open to wipe.
func (p *keyPool) giveBack(keys []pooledKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, k := range keys {
			clear(k.key)
		}
		return
	}
	p.ready = append(p.ready, keys...)
}

// fill writes the missing keys whenever asked (signal: by take when the
// pool runs out, by idle when the committer rests), until close.
func (p *keyPool) fill() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		p.mu.Lock()
		missing := p.size - len(p.ready)
		p.wanted = false
		p.mu.Unlock()
		if missing <= 0 {
			continue
		}
		keys, err := p.db.writePooledKeys(missing)
		if err != nil {
			p.db.log.Error("writing card keys ahead failed; cards are sealed under keys written at their commit", slog.Any("err", err))
			continue
		}
		p.giveBack(keys)
	}
}

// close stops the filler and wipes the keys never used.
func (p *keyPool) close() {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.closed = true
	keys := p.ready
	p.ready = nil
	p.mu.Unlock()
	slots := make([]uint32, 0, len(keys))
	for _, k := range keys {
		clear(k.key)
		slots = append(slots, k.slot)
	}
	p.db.wipeSlots(slots)
}

// writePooledKeys writes n fresh keys to free slots (one write per run of
// adjacent slots) and syncs the key file once.
func (db *DB) writePooledKeys(n int) (keys []pooledKey, err error) {
	var slots []uint32
	defer func() {
		if err != nil {
			for _, k := range keys {
				clear(k.key)
			}
			db.wipeSlots(slots)
			keys = nil
		}
	}()
	for range n {
		k := pooledKey{key: make([]byte, dekSize)}
		for k.id == (keyID{}) { // all zeros marks a free slot
			if _, err := rand.Read(k.id[:]); err != nil {
				return keys, fmt.Errorf("card key: %w", err)
			}
		}
		if _, err := rand.Read(k.key); err != nil {
			return keys, fmt.Errorf("card key: %w", err)
		}
		if k.slot, err = db.keys.alloc(); err != nil {
			clear(k.key)
			return keys, err
		}
		slots = append(slots, k.slot)
		keys = append(keys, k)
	}
	if err := db.keys.writeMany(keys); err != nil {
		return keys, err
	}
	if err := db.keys.sync(); err != nil {
		return keys, err
	}
	db.slotSyncs.Add(1)
	return keys, nil
}
