package gateway

import (
	"sync"

	"github.com/sterad/sterad"
)

// maxHeld bounds heldRecords: about the transactions in flight at once.
const maxHeld = 4096

// heldRecords are the transactions the journal committed last, each as
// stored (its Version the stored one), so that a flow's next change starts
// from the copy it wrote rather than reading and decoding the record again.
// Every copy handed out is a clone: a flow may change its copy freely, and
// only a committed copy comes back. A copy made stale by a writer outside
// the journal is caught by the store's version check (ErrStale) and
// forgotten. Bounded: when full, an arbitrary copy is dropped.
type heldRecords struct {
	mu sync.Mutex
	m  map[string]*sterad.Transaction
}

// get returns a copy of the held record of id, nil when none is held.
func (h *heldRecords) get(id string) *sterad.Transaction {
	h.mu.Lock()
	t := h.m[id]
	h.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.Clone()
}

// identity returns the op, reference and terminal of the held record of
// id (which never change once a transaction is created); ok is false when
// none is held.
func (h *heldRecords) identity(id string) (op sterad.Op, reference, terminal string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.m[id]
	if t == nil {
		return "", "", "", false
	}
	return t.Op, t.Reference, t.Terminal, true
}

// keep holds copies of ts, just committed.
func (h *heldRecords) keep(ts []*sterad.Transaction) {
	if len(ts) == 0 {
		return
	}
	cs := make([]*sterad.Transaction, len(ts))
	for i, t := range ts {
		cs[i] = t.Clone()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[string]*sterad.Transaction)
	}
	for _, c := range cs {
		if _, ok := h.m[c.ID]; !ok && len(h.m) >= maxHeld {
			for id := range h.m {
				delete(h.m, id)
				break
			}
		}
		h.m[c.ID] = c
	}
}

// forget drops the held copies of ts: they may not be the stored records.
func (h *heldRecords) forget(ts []*sterad.Transaction) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range ts {
		if t != nil {
			delete(h.m, t.ID)
		}
	}
}
