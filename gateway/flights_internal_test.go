package gateway

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The goroutines goRun keeps waiting for work end when the gateway stops,
// and every function handed to them runs, before and after the stop.
func TestGoRunReusesAndStops(t *testing.T) {
	fl := newFlights(env{})
	fl.start(context.Background())

	var ran sync.WaitGroup
	release := make(chan struct{})
	for range 8 {
		ran.Add(1)
		fl.goRun(func() { <-release; ran.Done() })
	}
	close(release)
	ran.Wait() // 8 goroutines now wait for work

	// The next functions run on them: a new goroutine would stay,
	// waiting for work, and the count would grow by up to 50.
	before := runtime.NumGoroutine()
	for range 50 {
		done := make(chan struct{})
		fl.goRun(func() { close(done) })
		<-done
	}
	if after := runtime.NumGoroutine(); after > before+1 {
		t.Errorf("%d goroutines after 50 functions run one after another, %d before: goRun did not reuse its waiting goroutines", after, before)
	}

	stopped := make(chan struct{})
	go func() { fl.stop(time.Second); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop waited for the idle goroutines of goRun")
	}

	// After the stop a function still runs (its goroutine then ends).
	done := make(chan struct{})
	fl.goRun(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a function handed to goRun after the stop did not run")
	}
	fl.wg.Wait()
}
