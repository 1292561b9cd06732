package offline_test

import (
	"context"
	"os"
	"testing"

	"github.com/sterad/sterad/offline"
)

// TestSyncLatency times as many syncs as asked and leaves nothing behind.
func TestSyncLatency(t *testing.T) {
	dir := t.TempDir()
	took, err := offline.SyncLatency(context.Background(), dir, 5, 0)
	if err != nil || len(took) != 5 {
		t.Fatalf("SyncLatency = %v, %v; want 5 samples", took, err)
	}
	for _, d := range took {
		if d <= 0 {
			t.Errorf("a sync took %v", d)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := offline.SyncLatency(context.Background(), dir, 0, 0); err == nil {
		t.Error("0 samples: no error")
	}
	if _, err := offline.SyncLatency(context.Background(), dir+"/missing", 1, 0); err == nil {
		t.Error("a missing directory: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if took, err := offline.SyncLatency(ctx, dir, 3, 0); err == nil || len(took) != 0 {
		t.Errorf("cancelled: %v, %v", took, err)
	}
}
