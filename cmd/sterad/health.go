package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// journalStore is the store as the gateway sees it: a write that fails
// for the store's own reason (a full disk, a read-only file system, an
// I/O error) becomes a 503 journal_unwritable that says so, instead of
// an internal error, and /healthz says degraded until a write succeeds.
// Domain errors (a stale record, not found) pass unchanged.
type journalStore struct {
	sterad.Store
	fault func() error // tests: fail every write (a full disk)

	mu      sync.Mutex
	lastErr error
	lastAt  time.Time
}

// guardJournal wraps the daemon's store.
func (m *Main) guardJournal(s sterad.Store) sterad.Store {
	m.journal = &journalStore{Store: s, fault: m.health.writeFault}
	return m.journal
}

func (s *journalStore) Apply(ctx context.Context, c sterad.Change) error {
	if s.fault != nil {
		if err := s.fault(); err != nil {
			return s.note(err)
		}
	}
	return s.note(s.Store.Apply(ctx, c))
}

func (s *journalStore) NextSTAN(ctx context.Context, terminalID string, now time.Time) (sterad.STAN, error) {
	if s.fault != nil {
		if err := s.fault(); err != nil {
			return 0, s.note(err)
		}
	}
	n, err := s.Store.NextSTAN(ctx, terminalID, now)
	return n, s.note(err)
}

// note records a write's outcome and returns its error as the API shows it.
func (s *journalStore) note(err error) error {
	if err == nil {
		s.mu.Lock()
		s.lastErr = nil
		s.mu.Unlock()
		return nil
	}
	if _, ok := errors.AsType[*sterad.Error](err); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.mu.Lock()
	s.lastErr, s.lastAt = err, time.Now()
	s.mu.Unlock()
	return &journalError{cause: err, shown: &sterad.Error{Kind: sterad.EUnavailable, Code: api.CodeJournalUnwritable, Message: journalWhy(err)}}
}

// failing returns the last write's error, if it failed.
func (s *journalStore) failing() (error, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr, s.lastAt
}

func journalWhy(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "sterad cannot write its journal: the disk is full"
	case errors.Is(err, syscall.EROFS):
		return "sterad cannot write its journal: the file system is read-only"
	}
	return "sterad cannot write its journal (disk full or failing?)"
}

// journalError is a failed write: the API shows `shown`, the log the cause.
type journalError struct {
	cause error
	shown *sterad.Error
}

func (e *journalError) Error() string   { return e.shown.Message + ": " + e.cause.Error() }
func (e *journalError) Unwrap() []error { return []error{e.shown, e.cause} }

// healthConfig are the seams of the health checks.
type healthConfig struct {
	// freeBytes returns the free space of dir's file system (default:
	// statfs, the space an unprivileged process may use).
	freeBytes func(dir string) (uint64, error)
	// writeFault, when set, fails every store write with its error.
	writeFault func() error
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// healthProblems is what /healthz reports (api.Server caches it for a
// second): failing, the store not writable or the disk nearly full;
// degraded, the acquirer down or a batch close failing.
func (m *Main) healthProblems(ctx context.Context) []api.HealthProblem {
	var ps []api.HealthProblem
	add := func(check, format string, args ...any) {
		sev := api.HealthFailing
		if check == "acquirer" || check == "batch" {
			sev = api.HealthDegraded
		}
		ps = append(ps, api.HealthProblem{Check: check, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	dir := m.Config.DataDir
	if m.journal != nil {
		if err, at := m.journal.failing(); err != nil {
			add("store", "the last journal write failed at %s (%s): payments are refused until one succeeds", at.Format(time.RFC3339), journalWhy(err))
		}
	}
	if err := probeWrite(dir); err != nil {
		add("store", "data_dir %s is not writable: %s", dir, errText(err))
	}
	free := m.health.freeBytes
	if free == nil {
		free = statfsFree
	}
	min := uint64(DefaultHealthzMinFreeMB)
	if v := m.Config.API.HealthzMinFreeMB; v > 0 {
		min = uint64(v)
	}
	if n, err := free(dir); err != nil {
		add("disk", "cannot read the free space of data_dir %s: %s", dir, errText(err))
	} else if n < min<<20 {
		add("disk", "data_dir's file system has %d MB free, less than %d MB (api.healthz_min_free_mb)", n>>20, min)
	}
	if g := m.Gateway; g != nil {
		if st := g.Acquirer(); !st.Online {
			msg := fmt.Sprintf("the acquirer link is %s since %s", st.State, st.Since.Format(time.RFC3339))
			if st.LastError != "" {
				msg += ": " + st.LastError
			}
			add("acquirer", "%s", msg)
		}
		if b, err := g.Closing(ctx); err == nil && b != nil && b.Attempts > 0 && b.LastError != "" {
			add("batch", "batch %06d has failed to close %d times: %s", b.Number, b.Attempts, b.LastError)
		}
	}
	return ps
}

// probeWrite writes and removes a small file in dir.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".healthz-*")
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte{'\n'})
	cerr := f.Close()
	os.Remove(f.Name())
	return errors.Join(werr, cerr)
}

// errText is an OS error without the path repeated.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + filepath.Base(pe.Path) + ": " + pe.Err.Error()
	}
	return err.Error()
}
