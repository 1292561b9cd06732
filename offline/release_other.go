//go:build !linux

package offline

// ReleaseMapped drops the store's pages from the daemon's resident memory
// where the system allows it (Linux); elsewhere it does nothing.
func (db *DB) ReleaseMapped() error { return nil }
