package main

import (
	"testing"

	"github.com/sterad/sterad/offline"
)

// storeOptions are the options to open, after the daemon stopped, the
// store a `serve --simulate` daemon kept in dir: with the KEK it created
// beside dir.
func storeOptions(t *testing.T, dir string) offline.Options {
	t.Helper()
	keks, err := loadKEKsAt(simulateKEKPath(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	o := offline.DefaultOptions()
	o.KEKs = keks
	return o
}
