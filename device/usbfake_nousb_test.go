//go:build nousb

package device_test

import "errors"

// Without gousb, the fake endpoints' errors are plain errors: the stream
// treats them as any transport failure.
var (
	fakeCancelled = errors.New("transfer was cancelled")
	fakeNoDevice  = errors.New("device was disconnected")
)
