package protocol

import (
	"math/rand/v2"
	"testing"
	"time"
)

// DE 7, 12 and 13 are formatted by hand: they must read as time.Format's
// layouts did, for every instant.
func TestClockDigitsMatchTimeFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	jst := time.FixedZone("JST", 9*3600)
	times := []time.Time{
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2028, 2, 29, 12, 5, 9, 0, jst),
	}
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(4102444800), r.Int64N(1e9)).In(jst))
	}
	for _, tm := range times {
		if got, want := mmddhhmmss(tm.UTC()), tm.UTC().Format("0102150405"); got != want {
			t.Fatalf("mmddhhmmss(%v) = %q, want %q", tm, got, want)
		}
		m := &hostMsg{}
		m.LocalTime = tm
		if got, _ := localTime(m); got != tm.Format("150405") {
			t.Fatalf("DE 12 of %v = %q, want %q", tm, got, tm.Format("150405"))
		}
		if got, _ := localDate(m); got != tm.Format("0102") {
			t.Fatalf("DE 13 of %v = %q, want %q", tm, got, tm.Format("0102"))
		}
	}
}
