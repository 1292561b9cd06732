package dukpt

import (
	"errors"
	"fmt"
	"sync"
)

// ErrExhausted: the terminal used its last counter (0xFFFF0000) and needs
// a new initial key.
var ErrExhausted = errors.New("dukpt: the terminal's transaction counter is exhausted")

// Terminal is the terminal's side: it holds its initial key, never the
// BDK, and issues a KSN and encrypts the card for every transaction. Safe
// for concurrent use.
//
// A simulator shortcut: it derives each transaction's key from its initial
// key, where a real terminal keeps only the intermediate keys of future
// counters and erases the initial key (so a stolen terminal cannot decrypt
// past transactions). The keys and KSNs are the same.
type Terminal struct {
	initialKey Key
	id         InitialKeyID

	mu        sync.Mutex
	last      uint32 // counter of the last transaction, 0 before the first
	exhausted bool
}

// NewTerminal is a terminal freshly loaded with its initial key: its first
// KSN has counter 1.
func NewTerminal(initialKey Key, id InitialKeyID) *Terminal {
	return &Terminal{initialKey: initialKey, id: id}
}

// ResumeTerminal is a terminal whose last transaction used counter last
// (0: none yet), for a simulator that keeps its counter across restarts.
func ResumeTerminal(initialKey Key, id InitialKeyID, last uint32) (*Terminal, error) {
	if last != 0 && !ValidCounter(last) {
		return nil, fmt.Errorf("%w: the last counter has more than sixteen one bits", ErrKSN)
	}
	t := NewTerminal(initialKey, id)
	t.last = last
	_, ok := NextCounter(last)
	t.exhausted = !ok
	return t, nil
}

// NewTestTerminal is a simulated terminal of docs/terminal-protocol.md §7: its
// initial key ID is the test BDK ID and DerivationID(terminalID), its
// initial key derived from the public test BDK (which it does not keep).
func NewTestTerminal(terminalID string) *Terminal {
	id := NewInitialKeyID(TestBDKID, DerivationID(terminalID))
	return NewTerminal(DeriveInitialKey(TestBDK(), id), id)
}

// InitialKeyID is the terminal's initial key ID: its KSNs' first 8 bytes.
func (t *Terminal) InitialKeyID() InitialKeyID { return t.id }

// Counter is the counter of the terminal's last transaction, 0 before the
// first: what a simulator keeps to resume.
func (t *Terminal) Counter() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Encrypt encrypts a card for a new transaction: the next counter (those
// with more than 16 one bits skipped), its data-encryption request key,
// the card block. Every call uses a new counter, even for the same card.
// An invalid card is ErrCard and uses no counter; ErrExhausted when none
// is left.
func (t *Terminal) Encrypt(c Card) (Block, error) {
	if err := c.Validate(); err != nil {
		return Block{}, err
	}
	ksn, err := t.next()
	if err != nil {
		return Block{}, err
	}
	data, err := encryptCard(WorkingKey(t.initialKey, ksn, UsageDataEncryptRequest), c)
	if err != nil {
		return Block{}, err
	}
	return Block{KSN: ksn, Data: data}, nil
}

// next advances the counter and returns its KSN.
func (t *Terminal) next() (KSN, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exhausted {
		return KSN{}, ErrExhausted
	}
	n, ok := NextCounter(t.last)
	if !ok {
		t.exhausted = true
		return KSN{}, ErrExhausted
	}
	t.last = n
	return NewKSN(t.id, n), nil
}
