package offline

import (
	"context"
	"fmt"
	"os"
	"time"
)

// SyncLatency measures how long the disk under dir takes to make a small
// write durable the way the store's commits do: a 4 KiB page written
// into a file grown ahead, then fdatasync. It takes n samples, gap apart
// (a paced rate, as payments arrive, or back to back with 0), in a
// temporary file that it removes. A commit syncs twice (its pages, then
// its meta page) and a payment commits twice (the request before it is
// sent, the answer before it is acknowledged): four of these are the
// least a payment can wait for the disk.
func SyncLatency(ctx context.Context, dir string, n int, gap time.Duration) ([]time.Duration, error) {
	if n < 1 {
		return nil, fmt.Errorf("sync latency: %d samples", n)
	}
	f, err := os.CreateTemp(dir, ".sterad-synctest-")
	if err != nil {
		return nil, fmt.Errorf("sync latency: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const page = 4096
	if err := f.Truncate(int64(n) * page); err != nil {
		return nil, fmt.Errorf("sync latency: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync latency: %w", err)
	}
	buf := make([]byte, page)
	took := make([]time.Duration, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return took, err
		}
		if i > 0 && gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return took, ctx.Err()
			case <-t.C:
			}
		}
		buf[0] = byte(i)
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*page); err != nil {
			return took, fmt.Errorf("sync latency: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return took, fmt.Errorf("sync latency: %w", err)
		}
		took = append(took, time.Since(start))
	}
	return took, nil
}
