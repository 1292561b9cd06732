package device

import "time"

// Seams for the tests in package device_test.

// SerialByUSBWith is SerialByUSB with the port list from list.
var SerialByUSBWith = serialByUSB

// DiscoverWith is Discover with the serial ports and USB devices from the
// given listers.
var DiscoverWith = discover

// SetLogClock sets the clock of the session's log rate limit.
func SetLogClock(s *Session, now func() time.Time) {
	s.rate.mu.Lock()
	s.rate.now = now
	s.rate.mu.Unlock()
}
