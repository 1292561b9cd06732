package offline

// SetScanRelease makes the walks release the mapped pages every n chunks
// until the returned func restores the default.
func SetScanRelease(n int) func() {
	old := scanRelease
	scanRelease = n
	return func() { scanRelease = old }
}
