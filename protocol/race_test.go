//go:build race

package protocol_test

// raceEnabled: the race detector makes packing about six times slower, and
// 1200 concurrent packs then take seconds of CPU.
const raceEnabled = true
