package offline

import (
	"bytes"
	"sync"
	"testing"
)

// testKeyring creates the key files of a new store (no fsyncs) and opens
// them; they are closed at the end of the test.
func testKeyring(t *testing.T) *keyring {
	t.Helper()
	dir := t.TempDir()
	kek, err := NewKEK(bytes.Repeat([]byte{7}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	id, err := newStoreID()
	if err != nil {
		t.Fatal(err)
	}
	if err := createKeyring(dir, id, kek, true); err != nil {
		t.Fatal(err)
	}
	k, err := openKeyring(dir, id, []*KEK{kek}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.close() })
	return k
}

// TestAllocConcurrent: the committer and the key pool's filler allocate
// slots at the same time, across the file's growth: no slot is handed out
// twice and the file grows by whole steps.
func TestAllocConcurrent(t *testing.T) {
	k := testKeyring(t)
	const workers, each = 4, slotGrow * 3 / 4
	got := make([][]uint32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				s, err := k.alloc()
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], s)
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint32]bool)
	for _, g := range got {
		for _, s := range g {
			if seen[s] {
				t.Fatalf("slot %d handed out twice", s)
			}
			seen[s] = true
		}
	}
	if k.n != 3*slotGrow {
		t.Errorf("the file has %d slots after %d allocations, want %d", k.n, workers*each, 3*slotGrow)
	}
}

// TestWriteMany: keys written in runs of adjacent slots (and alone) read
// back from their own slots, each under its own ID.
func TestWriteMany(t *testing.T) {
	k := testKeyring(t)
	var keys []pooledKey
	for i, slot := range []uint32{9, 0, 1, 2, 5, 6} { // unsorted, three runs
		pk := pooledKey{slot: slot, key: bytes.Repeat([]byte{byte(i + 1)}, dekSize)}
		pk.id[0] = byte(i + 1)
		keys = append(keys, pk)
	}
	if err := k.writeMany(keys); err != nil {
		t.Fatal(err)
	}
	for _, pk := range keys {
		got, st, err := k.read(pk.slot, pk.id)
		if err != nil || st != keyOK || !bytes.Equal(got, pk.key) {
			t.Errorf("slot %d: %x, %v, %v; want its key", pk.slot, got, st, err)
		}
	}
	data, err := k.readAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, free := range []uint32{3, 4, 7, 8} { // between the runs: untouched
		if s := data[free*slotSize : (free+1)*slotSize]; !bytes.Equal(s, make([]byte, slotSize)) {
			t.Errorf("slot %d between the runs was written: %x", free, s)
		}
	}
}
