package offline

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// putOrdered fills the pages of a bucket whose keys come in order and
// leaves bbolt's default split to one whose keys do not: filled pages
// under random inserts would split again and again into small ones.
func TestPutOrderedFill(t *testing.T) {
	for _, c := range []struct {
		name    string
		ordered bool
		minUse  float64 // of the leaf pages' bytes
	}{
		{"in order", true, 0.95},
		{"random", false, 0.6},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, &bolt.Options{PageSize: pageSize, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			val := make([]byte, 70)
			for i := 0; i < 20000; i += 4 {
				err := db.Update(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists(bktIdem)
					if err != nil {
						return err
					}
					b.FillPercent = indexFill
					for j := i; j < i+4; j++ {
						k := fmt.Sprintf("pms-%026d", j)
						if !c.ordered {
							k = fmt.Sprintf("pms-%026x", rng.Uint64())
						}
						if err := putOrdered(b, []byte(k), val); err != nil {
							return err
						}
					}
					if c.ordered && b.FillPercent != indexFill || !c.ordered && i > 0 && b.FillPercent != bolt.DefaultFillPercent {
						t.Fatalf("commit %d: fill %v", i/4, b.FillPercent)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			db.View(func(tx *bolt.Tx) error {
				s := tx.Bucket(bktIdem).Stats()
				if use := float64(s.LeafInuse) / float64(s.LeafAlloc); use < c.minUse {
					t.Errorf("leaf pages are %.0f%% used, want at least %.0f%%", 100*use, 100*c.minUse)
				}
				return nil
			})
		})
	}
}
