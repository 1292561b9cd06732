// Package brokenstore is the crash test's negative control: a store that
// breaks the first rule of the trade. A transaction created together with
// its request (a keyed sale, journaled before it is sent) is acknowledged
// but not written: it is written only when the flow next writes that
// transaction, after the acquirer's answer. A SIGKILL in between loses a
// charge the host made, and the crash test's checker must report it
// (crashtest.TestCrashNegativeControl); otherwise the crash test would
// prove nothing.
//
// It is built into the daemon only by the crash test, which replaces
// cmd/sterad/store.go with crashtest/testdata/broken_store.go through
// `go build -overlay`. Never use it anywhere else.
package brokenstore

import (
	"context"
	"sync"

	"github.com/sterad/sterad"
)

// Wrap returns s with the journal-after-send defect.
func Wrap(s sterad.Store) sterad.Store { return &store{Store: s, held: map[string]*held{}} }

type store struct {
	sterad.Store
	mu   sync.Mutex
	held map[string]*held // transaction ID → its creation, not yet written
}

type held struct {
	c sterad.Change
	t *sterad.Transaction // the record as the gateway created it
}

// Apply holds back the creation of a transaction whose request is
// journaled with it, and writes it before the next change of that
// transaction.
func (s *store) Apply(ctx context.Context, c sterad.Change) error {
	if len(c.Put) > 0 && c.Put[0].Version == 0 && c.Put[0].Step == sterad.StepSent && c.Put[0].Terminal == "" {
		t := c.Put[0]
		s.mu.Lock()
		s.held[t.ID] = &held{c: c, t: t.Clone()}
		s.mu.Unlock()
		return nil
	}
	for _, t := range c.Put {
		s.mu.Lock()
		h := s.held[t.ID]
		delete(s.held, t.ID)
		s.mu.Unlock()
		if h == nil {
			continue
		}
		h.c.Put[0] = h.t
		if err := s.Store.Apply(ctx, h.c); err != nil {
			return err
		}
		t.Version = h.t.Version // the copy the gateway read was the held one
	}
	return s.Store.Apply(ctx, c)
}

// Transaction answers from the held creations first, as if written.
func (s *store) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	s.mu.Lock()
	h := s.held[id]
	s.mu.Unlock()
	if h != nil {
		return h.t.Clone(), nil
	}
	return s.Store.Transaction(ctx, id)
}
