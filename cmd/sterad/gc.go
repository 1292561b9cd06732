package main

import (
	"os"
	"runtime/debug"
)

// The daemon's garbage collector settings when the environment sets none
// (GOGC, GOMEMLIMIT): its live heap is a few megabytes, so the default
// GOGC=100 collects every few megabytes allocated and spent about a fifth
// of its CPU there under load (docs/operations.md, Memory). GOGC=400 lets
// the heap grow to five times the live data between collections, and the
// soft limit makes the collector work harder before the process passes it.
const (
	daemonGCPercent   = 400
	daemonMemoryLimit = 64 << 20
)

// afterStart returns what the start used and no longer needs: the pages
// of the store its walk mapped (see offline.DB.ReleaseMapped) and the
// heap its garbage grew (with 100,000 queued advices, the decoded records
// it walked past), which the collector would otherwise keep until its
// next cycle, and the runtime's scavenger later still.
func (m *Main) afterStart() {
	if err := m.DB.ReleaseMapped(); err != nil {
		m.Logger.Warn("the store's pages read at the start stay in memory", "err", err)
	}
	debug.FreeOSMemory()
}

// tuneGC applies the daemon's collector settings that the environment
// leaves unset.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}
