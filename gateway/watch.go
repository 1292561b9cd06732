package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
)

// watch keeps in memory what the status, the metrics and the holds show,
// so that none of them reads the whole store or the whole queue: the IDs
// of the transactions each list shows (alerts, open pre-authorizations,
// the unfinished transactions a terminal's reconnection reconciles), the
// queue's counts and the references the vault lists. It is built once at
// the start by one walk over the store (Gateway.Start) and then kept by
// every commit the journal makes (watchedStore). A list loads only its own
// records, and drops an ID whose record is gone (retention removes old
// ones).
//
// It owns its maps and its lock; it calls nothing.
type watch struct {
	mu       sync.Mutex
	declined map[string]struct{}  // declinedAlert
	flagged  map[string]struct{}  // flaggedAlert
	holds    map[string]time.Time // sterad.IsOpenHold: ID → CreatedAt (which never changes)
	awaiting map[string]string    // awaitsTerminal: ID → terminal
	depth    int                  // queue items
	parked   map[uint64]struct{}  // parked queue items by Seq
	vault    map[string]struct{}  // references with a vault entry
	tokens   map[string]struct{}  // references guaranteed, with a host token
}

func newWatch() *watch {
	return &watch{declined: map[string]struct{}{}, flagged: map[string]struct{}{}, holds: map[string]time.Time{},
		awaiting: map[string]string{}, parked: map[uint64]struct{}{}, vault: map[string]struct{}{}, tokens: map[string]struct{}{}}
}

// declinedAlert: an offline approval the issuer later declined, or a
// declined transaction whose reason is an ALERT (a completion withdrawn
// because its offline pre-authorization was declined).
func declinedAlert(t *sterad.Transaction) bool {
	return t.Status == sterad.StatusDeclined && (t.Offline && t.LocalCode != "" || strings.HasPrefix(t.Reason, "ALERT:"))
}

// flaggedAlert: a transaction still owed to the acquirer that cannot go
// on alone (a kept card that cannot be read).
func flaggedAlert(t *sterad.Transaction) bool {
	return t.Step != sterad.StepDone && strings.HasPrefix(t.Reason, "ALERT:")
}

// awaitsTerminal: an unfinished terminal transaction whose outcome its
// terminal has not shown, and not waiting for the acquirer's answer:
// reconciled when its terminal reconnects.
func awaitsTerminal(t *sterad.Transaction) bool {
	return t.Step != sterad.StepDone && t.Terminal != "" && t.TerminalResult == "" && t.Step != sterad.StepSent
}

// setMember adds id to m when in holds, and removes it otherwise.
func setMember(m map[string]struct{}, id string, in bool) {
	if in {
		m[id] = struct{}{}
	} else {
		delete(m, id)
	}
}

// note files transaction t as committed (or as the start's walk read it).
// The caller holds w.mu.
func (w *watch) note(t *sterad.Transaction) {
	setMember(w.declined, t.ID, declinedAlert(t))
	setMember(w.flagged, t.ID, flaggedAlert(t))
	if sterad.IsOpenHold(t) {
		w.holds[t.ID] = t.CreatedAt
	} else {
		delete(w.holds, t.ID)
	}
	if awaitsTerminal(t) {
		w.awaiting[t.ID] = t.Terminal
	} else {
		delete(w.awaiting, t.ID)
	}
}

// guaranteedByToken: a reservation the vault lists for its host token
// (Gateway.Vault).
func guaranteedByToken(r *sterad.Reservation) bool {
	return r.State == sterad.ReservationGuaranteed && r.Token != ""
}

// noteVault files the vault entries and the reservations read at the
// start.
func (w *watch) noteVault(entries []*sterad.VaultEntry, rs []*sterad.Reservation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range entries {
		w.vault[e.Reference] = struct{}{}
	}
	for _, r := range rs {
		setMember(w.tokens, r.Reference, guaranteedByToken(r))
	}
}

// vaultCount counts what Gateway.Vault lists: the vault's entries, and
// the reservations guaranteed by a token alone.
func (w *watch) vaultCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.vault)
	for ref := range w.tokens {
		if _, kept := w.vault[ref]; !kept {
			n++
		}
	}
	return n
}

// noteItem counts a queue item found by the start's walk.
func (w *watch) noteItem(it sterad.QueueItem) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.depth++
	if it.Parked {
		w.parked[it.Seq] = struct{}{}
	}
}

// noteTxn files a transaction found by the start's walk.
func (w *watch) noteTxn(t *sterad.Transaction) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note(t)
}

// committed files what a change the store has committed did. The journal
// commits a transaction under its lock, so the changes of one
// transaction come here in the order they were committed.
func (w *watch) committed(c *sterad.Change) {
	if len(c.Put) == 0 && len(c.Enqueue) == 0 && len(c.UpdateQueue) == 0 && len(c.Dequeue) == 0 &&
		len(c.PutVault) == 0 && len(c.DeleteVault) == 0 && len(c.PutReservations) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range c.Put {
		w.note(t)
	}
	w.depth += len(c.Enqueue) - len(c.Dequeue)
	for _, it := range c.Enqueue {
		if it.Parked {
			w.parked[it.Seq] = struct{}{}
		}
	}
	for _, it := range c.UpdateQueue {
		if it.Parked {
			w.parked[it.Seq] = struct{}{}
		} else {
			delete(w.parked, it.Seq)
		}
	}
	for _, seq := range c.Dequeue {
		delete(w.parked, seq)
	}
	// In the order the store applies them.
	for _, e := range c.PutVault {
		w.vault[e.Reference] = struct{}{}
	}
	for _, ref := range c.DeleteVault {
		delete(w.vault, ref)
	}
	for _, r := range c.PutReservations {
		setMember(w.tokens, r.Reference, guaranteedByToken(r))
	}
}

// queueCounts returns the queue's depth and parked items.
func (w *watch) queueCounts() sterad.QueueCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sterad.QueueCounts{Depth: max(w.depth, 0), Parked: len(w.parked)}
}

// ids returns the IDs of one of w's sets.
func (w *watch) ids(set func(*watch) map[string]struct{}) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := set(w)
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	return ids
}

// holdsOlder returns the IDs of the open holds at least olderThan old at
// now, as sterad.OpenHolds counts their age.
func (w *watch) holdsOlder(now time.Time, olderThan time.Duration) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for id, created := range w.holds {
		if max(now.Sub(created), 0) >= olderThan {
			ids = append(ids, id)
		}
	}
	return ids
}

// awaitingOn returns the IDs of the transactions that await terminal's
// reconnection.
func (w *watch) awaitingOn(terminal string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for id, term := range w.awaiting {
		if term == terminal {
			ids = append(ids, id)
		}
	}
	return ids
}

// gone drops id from every set: its record was removed.
func (w *watch) gone(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.declined, id)
	delete(w.flagged, id)
	delete(w.holds, id)
	delete(w.awaiting, id)
}

// load reads the transactions of ids that still satisfy keep, in creation
// order (CreatedAt, then ID), as the store's searches list them. An ID
// whose record is gone is dropped from the sets.
func (w *watch) load(ctx context.Context, store sterad.Store, ids []string, keep func(*sterad.Transaction) bool) ([]*sterad.Transaction, error) {
	var out []*sterad.Transaction
	for _, id := range ids {
		t, err := store.Transaction(ctx, id)
		if errors.Is(err, sterad.ErrNotFound) {
			w.gone(id)
			continue
		}
		if err != nil {
			return nil, err
		}
		// A set that says more than the record (a write the journal did
		// not make) shows only what the record says.
		if keep(t) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, byCreation)
	return out, nil
}

func byCreation(a, b *sterad.Transaction) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func declinedSet(w *watch) map[string]struct{} { return w.declined }
func flaggedSet(w *watch) map[string]struct{}  { return w.flagged }

// watchedStore is the store as the journal sees it: every change it
// commits is filed in the watch.
type watchedStore struct {
	sterad.Store
	w *watch
}

func (s watchedStore) Apply(ctx context.Context, c sterad.Change) error {
	if err := s.Store.Apply(ctx, c); err != nil {
		return err
	}
	s.w.committed(&c)
	return nil
}
