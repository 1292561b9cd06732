package device

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limits on the log lines a terminal can cause by what it sends (frames
// for no waiting call, unexpected or malformed frames): a terminal that
// floods the link must not fill the disk with the gateway's log.
const (
	// LogBurst is how many lines of one kind a session logs per
	// LogWindow; the rest are counted and the count is logged with the
	// next line of that kind ("suppressed").
	LogBurst  = 10
	LogWindow = time.Minute
)

// rateLog lets through LogBurst lines of each kind per LogWindow.
type rateLog struct {
	mu    sync.Mutex
	now   func() time.Time
	kinds map[string]*rateState
}

type rateState struct {
	start   time.Time
	n       int
	dropped int
}

func newRateLog() *rateLog {
	return &rateLog{now: time.Now, kinds: map[string]*rateState{}}
}

// allow reports whether a line of kind may be logged now and, when it
// opens a new window, how many lines of that kind the last one dropped.
func (r *rateLog) allow(kind string) (ok bool, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	st := r.kinds[kind]
	if st == nil || now.Sub(st.start) >= LogWindow || now.Before(st.start) {
		if st != nil {
			dropped = st.dropped
		}
		r.kinds[kind] = &rateState{start: now, n: 1}
		return true, dropped
	}
	if st.n < LogBurst {
		st.n++
		return true, 0
	}
	st.dropped++
	return false, 0
}

// logLimited logs msg at level unless this session has already logged
// LogBurst lines with that msg in the current LogWindow. msg is the kind.
func (s *Session) logLimited(level slog.Level, msg string, args ...any) {
	ok, dropped := s.rate.allow(msg)
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	s.log.Log(context.Background(), level, msg, args...)
}
