package device

// Seams for the tests in package device_test.

// SerialByUSBWith is SerialByUSB with the port list from list.
var SerialByUSBWith = serialByUSB

// DiscoverWith is Discover with the serial ports and USB devices from the
// given listers.
var DiscoverWith = discover
