package main

import "github.com/sterad/sterad"

// wrapStore returns the store the gateway journals to: the daemon's own.
// It is the one seam the crash test's negative control replaces (with
// `go build -overlay`, see crashtest/brokenstore): nothing in the flows
// knows about it.
func wrapStore(s sterad.Store) sterad.Store { return s }
