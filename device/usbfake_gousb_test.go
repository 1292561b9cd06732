//go:build !nousb

package device_test

import "github.com/google/gousb"

// What gousb's transfers return: cancelled by their context (a timeout,
// or Close), and the device gone.
var (
	fakeCancelled error = gousb.TransferCancelled
	fakeNoDevice  error = gousb.TransferNoDevice
)
