package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// flights owns the lifetime of the flows: the daemon's context they run
// on, the goroutines the gateway starts, the flows in flight (so that Wait
// and Stop can wait for them) and the stopping state that turns new
// requests away. It calls nothing: the other parts register with it.
type flights struct {
	env
	ctx    context.Context // lifetime of flows: the daemon's, not a request's
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the gateway

	mu       sync.Mutex
	inflight map[string]chan struct{} // transaction ID → closed when its flow ends
	stopping bool                     // Stop has begun: new requests are refused

	submits  sync.WaitGroup // Submit calls admitted before Stop, until their flow starts
	stopOnce sync.Once

	exch exchanges // acquirer exchanges under way

	idle chan func()   // to a goroutine of goRun waiting for work (unbuffered)
	quit chan struct{} // closed by stop: waiting goroutines end
}

// exchanges counts the acquirer exchanges under way, each from just
// before its request is sent until what came of it is journaled: the
// window in which a stop must not cut a flow off (the host may have
// charged the card). Flows waiting for anything else — a card at a
// terminal, a terminal to come back — are cut at once: the recovery at
// the next start finishes them from the journal.
type exchanges struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

// begin counts an exchange; call the returned func once it is journaled.
func (x *exchanges) begin() func() {
	x.mu.Lock()
	if x.n == 0 {
		x.idle = make(chan struct{})
	}
	x.n++
	x.mu.Unlock()
	return sync.OnceFunc(func() {
		x.mu.Lock()
		x.n--
		if x.n == 0 {
			close(x.idle)
		}
		x.mu.Unlock()
	})
}

// count is the number of exchanges under way.
func (x *exchanges) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n
}

// waitIdle returns once no exchange is under way, or when stop is closed.
func (x *exchanges) waitIdle(stop <-chan struct{}) {
	for {
		x.mu.Lock()
		if x.n == 0 {
			x.mu.Unlock()
			return
		}
		idle := x.idle
		x.mu.Unlock()
		select {
		case <-idle:
		case <-stop:
			return
		}
	}
}

func newFlights(e env) *flights {
	return &flights{env: e, inflight: map[string]chan struct{}{}, idle: make(chan func()), quit: make(chan struct{})}
}

// start sets the daemon's context the flows run on and returns it.
func (fl *flights) start(ctx context.Context) context.Context {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.ctx, fl.cancel = context.WithCancel(ctx)
	return fl.ctx
}

// context returns the flows' context; nil before Start.
func (fl *flights) context() context.Context {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.ctx
}

// accepting reports whether the gateway has started and is not stopping.
func (fl *flights) accepting() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.ctx != nil && !fl.stopping
}

// goRun runs fn in a goroutine Stop waits for: one that ran a function
// before and waits for another, if there is one, else a new one.
//
// Reused because a flow runs deep (the journal, the codec, the store's
// encoders): a new goroutine's stack grew and was copied on every
// payment, 3 % of the daemon's CPU under load.
func (fl *flights) goRun(fn func()) {
	select {
	case fl.idle <- fn:
		return
	default:
	}
	fl.wg.Add(1)
	go fl.worker(fn)
}

// workerIdle is how long a goroutine of goRun waits for another function
// before it ends.
const workerIdle = 30 * time.Second

// worker runs fn, then the functions goRun hands it, until it has waited
// workerIdle for one or Stop has begun.
func (fl *flights) worker(fn func()) {
	defer fl.wg.Done()
	t := time.NewTimer(workerIdle) // real time: it bounds an idle goroutine, not business time
	defer t.Stop()
	for {
		fn()
		fn = nil // nothing of the last flow is kept while idle
		t.Reset(workerIdle)
		select {
		case fn = <-fl.idle:
		case <-t.C:
			return
		case <-fl.quit:
			return
		}
	}
}

// add registers the flow of transaction id; false when it already runs.
func (fl *flights) add(id string) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.inflight[id] != nil {
		return false
	}
	fl.inflight[id] = make(chan struct{})
	return true
}

// done ends the flow of transaction id: its waiters wake up.
func (fl *flights) done(id string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if ch := fl.inflight[id]; ch != nil {
		close(ch)
		delete(fl.inflight, id)
	}
}

// wait blocks until the flow of transaction id has ended or ctx ends.
func (fl *flights) wait(ctx context.Context, id string) {
	fl.mu.Lock()
	done := fl.inflight[id]
	fl.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// admit lets a request in unless the gateway is stopping; call the
// returned func when the request is done.
func (fl *flights) admit() (func(), error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stopping {
		return nil, sterad.ErrStopping
	}
	fl.submits.Add(1)
	return fl.submits.Done, nil
}

// stop refuses new requests, lets the flows in flight finish for up to
// grace, then cancels what remains and waits for every goroutine.
func (fl *flights) stop(grace time.Duration) {
	fl.stopOnce.Do(func() {
		fl.mu.Lock()
		fl.stopping = true
		ctx, cancel := fl.ctx, fl.cancel
		fl.mu.Unlock()
		if ctx != nil && ctx.Err() == nil {
			fl.drainFlows(grace)
		}
		if cancel != nil {
			cancel()
		}
		close(fl.quit)
		fl.wg.Wait()
	})
}

// drainFlows waits until the requests admitted before Stop have started
// their flows and no acquirer exchange is under way, or grace has passed.
func (fl *flights) drainFlows(grace time.Duration) {
	idle, over := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(idle)
		fl.submits.Wait()
		fl.exch.waitIdle(over)
	}()
	// The grace is a bound on the shutdown in real time, like the
	// acquirer's timeout: not business time from the injected clock.
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		close(over)
		fl.log.Warn("stop: grace period over, cancelling the exchanges still waiting for the acquirer (recovered at the next start)", "grace", grace, "exchanges", fl.exch.count())
	}
}
