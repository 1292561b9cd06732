package main

import (
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/crashtest/brokenstore"
)

// wrapStore, in the crash test's negative control build only: the gateway
// journals to a store that writes a keyed request after it was sent.
func wrapStore(s sterad.Store) sterad.Store { return brokenstore.Wrap(s) }
