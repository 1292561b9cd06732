package offline

import (
	"slices"
	"sync"

	"github.com/sterad/sterad"
)

// openBatchCache holds the open batch as last committed, so that
// CurrentBatch (once per sale) neither opens a read transaction nor
// decodes the record. It can never return a batch older than the last
// commit that finished before CurrentBatch was called: every write that
// may change a batch runs between begin and end (db.update, and a group
// of the committer with a Change that puts batches), each of which empties
// it, and a reader stores what it read only if no such write began or
// ended while it read.
type openBatchCache struct {
	mu     sync.Mutex
	gen    uint64        // bumped by begin and end
	writes int           // writes under way that may change a batch
	b      *sterad.Batch // nil: read the store
}

// get returns a copy of the cached open batch, or nil and the generation
// to hand to put with what the caller then reads.
func (c *openBatchCache) get() (*sterad.Batch, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b != nil {
		return cloneBatch(c.b), 0
	}
	return nil, c.gen
}

// put caches b, read from the store after get returned gen, unless a
// write that may change it began or ended since.
func (c *openBatchCache) put(b *sterad.Batch, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen && c.writes == 0 {
		c.b = cloneBatch(b)
	}
}

// begin is called before a write that may change a batch, end after it
// has committed or failed.
func (c *openBatchCache) begin() { c.bump(1) }
func (c *openBatchCache) end()   { c.bump(-1) }

func (c *openBatchCache) bump(writes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes += writes
	c.gen++
	c.b = nil
}

// cloneBatch is a copy of b that shares nothing with it.
func cloneBatch(b *sterad.Batch) *sterad.Batch {
	x := *b
	x.Terminals = slices.Clone(b.Terminals)
	x.Ops = slices.Clone(b.Ops)
	x.Days = slices.Clone(b.Days)
	return &x
}
