package offline

import (
	"testing"
	"fmt"
	bolt "go.etcd.io/bbolt"
)

func DebugStats(db *DB) string {
	out := ""
	db.bolt.View(func(tx *bolt.Tx) error {
		for _, n := range allBuckets {
			s := tx.Bucket(n).Stats()
			out += fmt.Sprintf("%-12s keys=%6d depth=%d leafPages=%5d leafInuse=%9d leafAlloc=%9d branchAlloc=%8d overflow=%d\n", n, s.KeyN, s.Depth, s.LeafPageN, s.LeafInuse, s.LeafAlloc, s.BranchAlloc, s.LeafOverflowN)
		}
		out += fmt.Sprintf("size=%d\n", tx.Size())
		return nil
	})
	st := db.bolt.Stats()
	out += fmt.Sprintf("free=%d pending=%d freealloc=%d\n", st.FreePageN, st.PendingPageN, st.FreeAlloc)
	return out
}
var _ = testing.Short
