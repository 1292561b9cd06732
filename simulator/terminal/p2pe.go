package terminal

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/dukpt"
)

// CapP2PE: the terminal encrypts card data itself (terminal-link.md §7).
const CapP2PE = sterad.CapP2PE

// Faults of an encrypting terminal's CARD (bad input for the gateway and
// the host). Each applies to the next count CARDs built; they can only be
// armed on a terminal with the p2pe capability.
const (
	// FaultClearPAN: the CARD also carries pan and expiry (and track2 on
	// a swipe) in clear beside its encrypted block.
	FaultClearPAN = "clear_pan"
	// FaultBadKSN: the KSN is malformed (cut to 20 hex digits).
	FaultBadKSN = "bad_ksn"
	// FaultBadData: the data is malformed (its last hex digit cut: not
	// whole AES blocks).
	FaultBadData = "bad_data"
	// FaultUndecryptable: the data is well formed but its last block is
	// garbled, so it decrypts to no card: the host answers 81.
	FaultUndecryptable = "undecryptable"
	// FaultReplayKSN: the CARD carries the previous CARD's block again
	// (its KSN and data): the host answers 81 for a KSN it has seen. With
	// no previous CARD it waits for the next one.
	FaultReplayKSN = "replay_ksn"
)

var p2peFaults = []string{FaultClearPAN, FaultBadKSN, FaultBadData, FaultUndecryptable, FaultReplayKSN}

// KSNReserve is how many transaction counters a terminal with a StateDir
// reserves with each write of its counter file: after a restart it
// resumes past the reservation, so a counter is never used twice and the
// file is written once every KSNReserve cards.
const KSNReserve = 64

// KSNEpoch and KSNTick turn the wall clock into the first counter of a
// terminal without a StateDir: it resumes after counter (now − KSNEpoch) /
// KSNTick, so a restarted simulator continues past the KSNs it used
// unless it averaged more than 8 cards a second since it started (a
// uint32 of eighths of a second lasts until 2043).
var KSNEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// KSNTick: see KSNEpoch.
const KSNTick = time.Second / 8

// issued is the highest counter reserved per terminal ID in this process,
// so a terminal created again (a daemon restarted in-process) resumes past
// its predecessor even without a StateDir.
var issued = struct {
	sync.Mutex
	m map[string]uint32
}{m: map[string]uint32{}}

// errEncrypt is why the terminal cannot encrypt a card: the transaction
// ends with RESULT error.
var errEncrypt = errors.New("terminal: cannot encrypt the card")

// ksnState is an encrypting terminal's DUKPT state: its key (from the
// public test BDK, terminal-link.md §7) and the counters it reserved.
type ksnState struct {
	dk       *dukpt.Terminal
	file     string // counter file, "" without a StateDir
	reserved uint32 // every counter up to this one may have been used
	err      error  // the counter file could not be read: no card is encrypted
	last     *protocol.P2PEData
}

// counterFile is the counter file of terminal id in dir.
func counterFile(dir, id string) string {
	name := id
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		name = "x" + hex.EncodeToString([]byte(id))
	}
	return filepath.Join(dir, "dukpt-"+name+".counter")
}

// newKSNState loads the terminal's counter: from its counter file in
// stateDir, or else from the wall clock; never below what this process
// reserved for the same terminal ID before.
func newKSNState(id, stateDir string, now time.Time) *ksnState {
	st := &ksnState{}
	var start uint32
	if stateDir != "" {
		st.file = counterFile(stateDir, id)
		b, err := os.ReadFile(st.file)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			st.err = fmt.Errorf("%w: read the KSN counter: %v", errEncrypt, err)
		default:
			v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
			if perr != nil {
				st.err = fmt.Errorf("%w: the KSN counter file %s is corrupt", errEncrypt, st.file)
			}
			start = uint32(v)
		}
	} else if d := now.Sub(KSNEpoch); d > 0 {
		start = uint32(min(int64(d/KSNTick), 0xFFFF0000))
	}
	issued.Lock()
	start = max(start, issued.m[id])
	issued.Unlock()
	if start != 0 && !dukpt.ValidCounter(start) {
		if n, ok := dukpt.NextCounter(start); ok {
			start = n
		} else {
			start = 0xFFFF0000 // exhausted
		}
	}
	kid := dukpt.NewInitialKeyID(dukpt.TestBDKID, dukpt.DerivationID(id))
	dk, err := dukpt.ResumeTerminal(dukpt.DeriveInitialKey(dukpt.TestBDK(), kid), kid, start)
	if err != nil { // cannot happen: start is valid
		dk, st.err = dukpt.NewTestTerminal(id), fmt.Errorf("%w: %v", errEncrypt, err)
	}
	st.dk, st.reserved = dk, start
	return st
}

// encrypt encrypts the card under the next KSN, first reserving counters
// in the counter file when the next one is past the reservation.
func (st *ksnState) encrypt(id string, c dukpt.Card) (dukpt.Block, error) {
	if st.err != nil {
		return dukpt.Block{}, st.err
	}
	next, ok := dukpt.NextCounter(st.dk.Counter())
	if !ok {
		return dukpt.Block{}, fmt.Errorf("%w: %v", errEncrypt, dukpt.ErrExhausted)
	}
	if next > st.reserved {
		r := next
		for range KSNReserve - 1 {
			n, ok := dukpt.NextCounter(r)
			if !ok {
				break
			}
			r = n
		}
		if st.file != "" {
			if err := writeCounter(st.file, r); err != nil {
				return dukpt.Block{}, fmt.Errorf("%w: keep the KSN counter: %v", errEncrypt, err)
			}
		}
		st.reserved = r
		issued.Lock()
		issued.m[id] = max(issued.m[id], r)
		issued.Unlock()
	}
	blk, err := st.dk.Encrypt(c)
	if err != nil {
		return dukpt.Block{}, fmt.Errorf("%w: %v", errEncrypt, err)
	}
	return blk, nil
}

// writeCounter replaces the counter file durably: a temporary file,
// synced, renamed over it, the directory synced.
func writeCounter(file string, counter uint32) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".dukpt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := fmt.Fprintf(tmp, "%08X\n", counter); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// p2peCardLocked fills an encrypting terminal's CARD (terminal-link.md
// §7): the masked PAN and brand in clear, the card (and a swipe's track
// 2) in the encrypted block, no pan, expiry or track2 fields; an armed
// p2pe fault spoils it.
func (t *Terminal) p2peCardLocked(cd *protocol.CardData, c dukpt.Card) error {
	fault := t.takeP2PEFault(t.ksn.last != nil)
	cd.MaskedPAN = sterad.MaskPAN(c.PAN)
	var blk protocol.P2PEData
	if fault == FaultReplayKSN {
		blk = *t.ksn.last
	} else {
		b, err := t.ksn.encrypt(t.cfg.ID, c)
		if err != nil {
			if fault != "" {
				t.addP2PEFault(fault) // not used: still armed
			}
			return err
		}
		blk = protocol.P2PEData{KSN: b.KSN.String(), Data: b.Data}
		last := blk
		t.ksn.last = &last
	}
	switch fault {
	case FaultClearPAN:
		cd.PAN, cd.Expiry, cd.Track2 = c.PAN, c.Expiry, c.Track2
	case FaultBadKSN:
		blk.KSN = blk.KSN[:20]
	case FaultBadData:
		blk.Data = blk.Data[:len(blk.Data)-1]
	case FaultUndecryptable:
		ct, _ := hex.DecodeString(blk.Data)
		ct[len(ct)-16] ^= 0xFF // the last block decrypts to noise
		blk.Data = strings.ToUpper(hex.EncodeToString(ct))
	}
	if fault != "" {
		t.log.Info("p2pe fault", "txn_id", cd.TxnID, "kind", fault)
	}
	cd.P2PE = &blk
	return nil
}

// armP2PEFault arms count p2pe faults of kind.
func (t *Terminal) armP2PEFault(kind string, count int) error {
	if !t.hasCap(CapP2PE) {
		return sterad.Errorf(sterad.EInvalid, "invalid_fault", "fault %s needs an encrypting terminal (p2pe); this one sends cards in clear", kind)
	}
	t.fmu.Lock()
	defer t.fmu.Unlock()
	if t.faults.p2pe == nil {
		t.faults.p2pe = map[string]int{}
	}
	t.faults.p2pe[kind] += count
	return nil
}

func (t *Terminal) addP2PEFault(kind string) {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	t.faults.p2pe[kind]++
}

// takeP2PEFault consumes the first armed p2pe fault, in the order of
// p2peFaults; replay_ksn only when there is a block to replay.
func (t *Terminal) takeP2PEFault(canReplay bool) string {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	for _, k := range p2peFaults {
		if t.faults.p2pe[k] > 0 && (k != FaultReplayKSN || canReplay) {
			t.faults.p2pe[k]--
			return k
		}
	}
	return ""
}
