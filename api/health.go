package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// CodeJournalUnwritable is the error code of a request refused because
// the store could not be written (disk full, read-only file system, I/O
// error): 503, as the daemon cannot take payments until someone frees
// space or fixes the disk.
const CodeJournalUnwritable = "journal_unwritable"

// Health is the answer of GET /healthz, with what is wrong:
//
//   - "ok" (200);
//   - "degraded" (200, or 503 with ?strict): payments go on, but not as
//     they should (the acquirer is down and payments are stood in, a batch
//     close keeps failing);
//   - "failing" (503): payments are or soon will be refused (the journal
//     cannot be written, the disk is nearly full). Someone must act.
//
// A liveness probe that restarts the daemon uses plain /healthz (an
// acquirer outage is no reason to restart); a monitor that pages someone
// uses /healthz?strict.
type Health struct {
	Status   string          `json:"status"`
	Problems []HealthProblem `json:"problems,omitempty"`
}

// Health statuses and problem severities.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
	HealthFailing  = "failing"
)

// HealthProblem is one check that failed.
type HealthProblem struct {
	Check    string `json:"check"`    // "store", "disk", "acquirer", "batch"
	Severity string `json:"severity"` // HealthDegraded or HealthFailing
	Message  string `json:"message"`
}

// HealthFunc returns what is wrong with the daemon now (nothing: healthy).
// It must be quick: GET /healthz is open to anyone, and the Server calls
// it at most once per HealthTTL.
type HealthFunc func(ctx context.Context) []HealthProblem

// DefaultHealthTTL is how long a health computation is reused.
const DefaultHealthTTL = time.Second

// healthCache keeps the last health computation.
type healthCache struct {
	mu  sync.Mutex
	at  time.Time
	val Health
	ok  bool
}

func (s *Server) health(ctx context.Context) Health {
	if s.Health == nil {
		return Health{Status: HealthOK}
	}
	ttl := s.HealthTTL
	if ttl <= 0 {
		ttl = DefaultHealthTTL
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	c := &s.healthCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := now(); c.ok && !t.Before(c.at) && t.Sub(c.at) < ttl {
		return c.val
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	h := Health{Status: HealthOK, Problems: s.Health(ctx)}
	for _, p := range h.Problems {
		if p.Severity == HealthFailing {
			h.Status = HealthFailing
			break
		}
		h.Status = HealthDegraded
	}
	c.at, c.val, c.ok = now(), h, true
	return h
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	h := s.health(r.Context())
	code := http.StatusOK
	if h.Status == HealthFailing || h.Status == HealthDegraded && r.URL.Query().Has("strict") {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, h)
}

// journalMessage is the message of a payment refused because the journal
// cannot be written: the request failed before anything was journaled,
// so nothing was sent to the acquirer.
func journalMessage(err error) error {
	if sterad.ErrorCode(err) != CodeJournalUnwritable {
		return err
	}
	return sterad.Errorf(sterad.EUnavailable, CodeJournalUnwritable,
		"%s: nothing was charged", sterad.ErrorMessage(err))
}
