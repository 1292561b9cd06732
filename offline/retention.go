package offline

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// Retention: transactions of closed batches older than the retention
// period are exported to a compressed archive, then removed from the
// store with their index entries and idempotency keys.
//
// A transaction is removed only when every transaction linked to it
// (its original, completion, void, refunds, the refunds a check-out
// started: Original, CompletedBy, VoidedBy, Linked, both ways) may be
// removed too, so that no kept transaction names a removed one. A
// transaction may be removed when it was created and last changed
// before the cut-off, its flow is done, its batch (if any) is closed,
// it is not an open pre-authorization, no queue item names it, no
// card is kept for it, no reservation still open (guaranteed, or
// changed since the cut-off) names it, and no voucher log entry names
// it (the voucher claim reads it).
//
// The archive is data_dir/archive/YYYY-MM.jsonl.gz (the month of the
// transaction's creation): gzip members of JSON lines, each the stored
// record as encoding/json writes a sterad.Transaction (a record an
// earlier release stored as JSON is copied as it was). A month's file is written whole to a temporary file,
// fsynced and renamed over the old one (so a crash never leaves a torn
// archive), before the transactions in it are removed. A crash after the
// archive is written and before the removal commits leaves the lines in
// the archive and the transactions in the store: the next run writes
// them again, so a reader keeps the line with the highest version of
// each ID.

// ArchiveDir is the archive's directory inside the data directory.
const ArchiveDir = "archive"

// retentionChunk bounds how many transactions one removal commit takes.
const retentionChunk = 500

// Why a transaction older than the cut-off is kept.
const (
	KeptUnfinished  = "unfinished"    // its flow is not done
	KeptBatchOpen   = "batch_open"    // its batch is open or closing
	KeptOpenHold    = "open_hold"     // a pre-authorization neither completed nor voided
	KeptQueued      = "queued"        // a queue item names it
	KeptCard        = "card_kept"     // a card is kept for it
	KeptReservation = "reservation"   // an open reservation names it
	KeptVoucher     = "voucher"       // the voucher log names it
	KeptLinked      = "linked"        // a transaction linked to it is kept
	KeptRecentLink  = "linked_recent" // a transaction linked to it is newer than the cut-off
)

// RetentionOptions say what ApplyRetention removes.
type RetentionOptions struct {
	// Before is the cut-off: transactions created and last changed
	// before it may go. Required.
	Before time.Time
	// DryRun counts what would be removed and writes nothing.
	DryRun bool
	// Location names the archive months (default UTC).
	Location *time.Location
}

// ArchiveFile is one month's archive file and how many transactions a
// run wrote to it.
type ArchiveFile struct {
	Month        string `json:"month"` // YYYY-MM
	Path         string `json:"path"`
	Transactions int    `json:"transactions"`
}

// RetentionResult says what a retention run did (or would do).
type RetentionResult struct {
	Before  time.Time `json:"before"`
	DryRun  bool      `json:"dry_run"`
	Removed int       `json:"removed"` // removed, or removable in a dry run
	// Kept counts the transactions older than the cut-off that were
	// kept, by reason (Kept*).
	Kept     map[string]int `json:"kept"`
	Archives []ArchiveFile  `json:"archives"`
}

// retTxn is what retention reads of a transaction.
type retTxn struct {
	ID             string        `json:"id"`
	Op             sterad.Op     `json:"op"`
	Status         sterad.Status `json:"status"`
	Step           sterad.Step   `json:"step"`
	Batch          int           `json:"batch"`
	Original       string        `json:"original"`
	CompletedBy    string        `json:"completed_by"`
	VoidedBy       string        `json:"voided_by"`
	Linked         []string      `json:"linked"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
	IdempotencyKey string        `json:"idempotency_key"`
	Version        uint64        `json:"version"`
	Reference      string        `json:"reference"`
}

func (t *retTxn) links() []string {
	out := append([]string{t.Original, t.CompletedBy, t.VoidedBy}, t.Linked...)
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// retState is the store as one read-only transaction saw it.
type retState struct {
	txns   map[string]*retTxn
	pinned map[string]string // ID → why kept, besides its own state
	closed map[int]bool      // batch number → its newest record is closed
}

// readRetState reads what retention decides by.
func readRetState(tx *bolt.Tx, before time.Time, withTxns bool) (*retState, error) {
	st := &retState{txns: map[string]*retTxn{}, pinned: map[string]string{}, closed: map[int]bool{}}
	pin := func(id, why string) {
		if id != "" {
			if _, ok := st.pinned[id]; !ok {
				st.pinned[id] = why
			}
		}
	}
	bb := tx.Bucket(bktBatches)
	if err := tx.Bucket(bktBatchNo).ForEach(func(k, v []byte) error {
		var b struct {
			State string `json:"state"`
		}
		if rec := bb.Get(v); rec != nil {
			if err := json.Unmarshal(rec, &b); err != nil {
				return fmt.Errorf("decode batch: %w", err)
			}
		}
		st.closed[int(binary.BigEndian.Uint32(k))] = b.State == sterad.BatchClosed
		return nil
	}); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bktQueue).ForEach(func(_, v []byte) error {
		it, err := decodeQueueItem(v)
		if err != nil {
			return fmt.Errorf("decode queue item: %w", err)
		}
		pin(it.TxnID, KeptQueued)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bktCards).ForEach(func(k, _ []byte) error {
		pin(string(k), KeptCard)
		return nil
	}); err != nil {
		return nil, err
	}
	if b := tx.Bucket(bktReservations); b != nil {
		if err := b.ForEach(func(_, v []byte) error {
			var r sterad.Reservation
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode reservation: %w", err)
			}
			if r.State != sterad.ReservationGuaranteed && r.UpdatedAt.Before(before) {
				return nil
			}
			pin(r.CheckTxn, KeptReservation)
			pin(r.Cancellation, KeptReservation)
			for _, id := range append(slices.Clone(r.Charges), r.Deposits...) {
				pin(id, KeptReservation)
			}
			if c := r.Checkout; c != nil {
				pin(c.Transaction, KeptReservation)
				for _, id := range c.Refunds {
					pin(id, KeptReservation)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if b := tx.Bucket(bktVouchers); b != nil {
		if err := b.ForEach(func(_, v []byte) error {
			var e struct {
				Transaction string `json:"transaction"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode voucher log entry: %w", err)
			}
			pin(e.Transaction, KeptVoucher)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if !withTxns {
		return st, nil
	}
	if err := tx.Bucket(bktTxns).ForEach(func(k, v []byte) error {
		t, err := decodeRetTxn(k, v)
		if err != nil {
			return err
		}
		st.txns[t.ID] = t
		return nil
	}); err != nil {
		return nil, err
	}
	return st, nil
}

// decodeRetTxn decodes what retention reads of a stored transaction.
func decodeRetTxn(id, v []byte) (*retTxn, error) {
	var t sterad.Transaction
	if err := decodeTxn(id, v, &t); err != nil {
		return nil, fmt.Errorf("decode transaction %s: %w", id, err)
	}
	return &retTxn{ID: t.ID, Op: t.Op, Status: t.Status, Step: t.Step, Batch: t.Batch, Original: t.Original,
		CompletedBy: t.CompletedBy, VoidedBy: t.VoidedBy, Linked: t.Linked, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		IdempotencyKey: t.IdempotencyKey, Version: t.Version, Reference: t.Reference}, nil
}

// archiveLine returns a stored transaction as the archive keeps it: JSON,
// as an earlier release stored it (a JSON record is kept as it is).
func archiveLine(id, v []byte) ([]byte, error) {
	if len(v) > 0 && v[0] == fmtJSON {
		return bytes.Clone(v), nil
	}
	var t sterad.Transaction
	if err := decodeTxn(id, v, &t); err != nil {
		return nil, fmt.Errorf("decode transaction %s: %w", id, err)
	}
	line, err := json.Marshal(&t)
	if err != nil {
		return nil, fmt.Errorf("archive transaction %s: %w", id, err)
	}
	return line, nil
}

// old reports whether t was created and last changed before the cut-off.
func (t *retTxn) old(before time.Time) bool {
	return t.CreatedAt.Before(before) && t.UpdatedAt.Before(before)
}

// ownReason returns why t must be kept on its own account ("" when it
// may go). t is older than the cut-off.
func (st *retState) ownReason(t *retTxn) string {
	switch {
	case t.Step != sterad.StepDone:
		return KeptUnfinished
	case t.Batch != 0 && !st.closed[t.Batch]:
		return KeptBatchOpen
	case sterad.IsOpenHold(&sterad.Transaction{Op: t.Op, Status: t.Status, CompletedBy: t.CompletedBy, VoidedBy: t.VoidedBy}):
		return KeptOpenHold
	}
	return st.pinned[t.ID]
}

// components groups the transactions linked to each other.
func (st *retState) components() [][]*retTxn {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		for parent[x] != "" && parent[x] != x {
			parent[x] = parent[parent[x]] // path halving
			x = parent[x]
		}
		return x
	}
	for id, t := range st.txns {
		if parent[id] == "" {
			parent[id] = id
		}
		for _, l := range t.links() {
			if parent[l] == "" {
				parent[l] = l
			}
			if a, b := find(id), find(l); a != b {
				parent[a] = b
			}
		}
	}
	groups := map[string][]*retTxn{}
	for id, t := range st.txns {
		r := find(id)
		groups[r] = append(groups[r], t)
	}
	out := make([][]*retTxn, 0, len(groups))
	for _, g := range groups {
		slices.SortFunc(g, func(a, b *retTxn) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0].ID < out[j][0].ID })
	return out
}

// plan decides which components go; kept counts the old transactions
// that stay, by reason.
func (st *retState) plan(before time.Time, kept map[string]int) [][]*retTxn {
	var out [][]*retTxn
	for _, g := range st.components() {
		why := ""
		for _, t := range g {
			if !t.old(before) {
				why = KeptRecentLink
				break
			}
			if r := st.ownReason(t); r != "" {
				why = r
				break
			}
		}
		if why == "" {
			out = append(out, g)
			continue
		}
		for _, t := range g {
			if !t.old(before) {
				continue
			}
			r := st.ownReason(t)
			if r == "" {
				r = KeptLinked
				if why == KeptRecentLink {
					r = KeptRecentLink
				}
			}
			kept[r]++
		}
	}
	return out
}

// ApplyRetention exports to the archive and removes the transactions
// that retention allows (see the top of retention.go), or with
// o.DryRun only counts them. It runs beside payments: each removal is
// one commit of at most a few hundred transactions, rechecked against
// the store as it is then.
func (db *DB) ApplyRetention(ctx context.Context, o RetentionOptions) (*RetentionResult, error) {
	if o.Before.IsZero() {
		return nil, errors.New("retention: no cut-off given")
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	res := &RetentionResult{Before: o.Before, DryRun: o.DryRun, Kept: map[string]int{}, Archives: []ArchiveFile{}}
	var st *retState
	if err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		st, err = readRetState(tx, o.Before, true)
		return err
	}); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	groups := st.plan(o.Before, res.Kept)
	st = nil
	archives := map[string]*ArchiveFile{}
	count := func(t *retTxn) {
		month := t.CreatedAt.In(loc).Format("2006-01")
		a := archives[month]
		if a == nil {
			a = &ArchiveFile{Month: month, Path: filepath.Join(db.dir, ArchiveDir, month+".jsonl.gz")}
			archives[month] = a
		}
		a.Transactions++
		res.Removed++
	}
	if o.DryRun {
		for _, g := range groups {
			for _, t := range g {
				count(t)
			}
		}
	} else {
		for len(groups) > 0 {
			if err := ctx.Err(); err != nil {
				return res.sorted(archives), err
			}
			n, size := 0, 0
			for n < len(groups) && (size == 0 || size+len(groups[n]) <= retentionChunk) {
				size += len(groups[n])
				n++
			}
			removed, err := db.removeChunk(groups[:n], o.Before, loc)
			if err != nil {
				return res.sorted(archives), fmt.Errorf("retention: %w", err)
			}
			for _, t := range removed {
				count(t)
			}
			groups = groups[n:]
		}
	}
	return res.sorted(archives), nil
}

func (r *RetentionResult) sorted(m map[string]*ArchiveFile) *RetentionResult {
	r.Archives = r.Archives[:0]
	for _, a := range m {
		r.Archives = append(r.Archives, *a)
	}
	slices.SortFunc(r.Archives, func(a, b ArchiveFile) int { return bytes.Compare([]byte(a.Month), []byte(b.Month)) })
	return r
}

// removeChunk rechecks the groups against the store as it is now (a
// group any of whose transactions changed, or became pinned, stays),
// archives the rest and removes them, in one read-write transaction.
func (db *DB) removeChunk(groups [][]*retTxn, before time.Time, loc *time.Location) ([]*retTxn, error) {
	if err := db.enter(); err != nil {
		return nil, err
	}
	defer db.leave()
	var removed []*retTxn
	err := db.update(func(tx *bolt.Tx) error {
		now, err := readRetState(tx, before, false)
		if err != nil {
			return err
		}
		b := openBuckets(tx)
		type line struct {
			t   *retTxn
			raw []byte
		}
		var lines []line
	group:
		for _, g := range groups {
			var gl []line
			for _, t := range g {
				raw := b.txns.Get([]byte(t.ID))
				if raw == nil {
					continue group // removed meanwhile
				}
				cur, err := decodeRetTxn([]byte(t.ID), raw)
				if err != nil {
					return err
				}
				if cur.Version != t.Version || !cur.old(before) || now.ownReason(cur) != "" {
					continue group
				}
				js, err := archiveLine([]byte(t.ID), raw)
				if err != nil {
					return err
				}
				gl = append(gl, line{cur, js})
			}
			lines = append(lines, gl...)
		}
		if len(lines) == 0 {
			return errNothing
		}
		byMonth := map[string][][]byte{}
		for _, l := range lines {
			m := l.t.CreatedAt.In(loc).Format("2006-01")
			byMonth[m] = append(byMonth[m], l.raw)
		}
		months := make([]string, 0, len(byMonth))
		for m := range byMonth {
			months = append(months, m)
		}
		slices.Sort(months)
		for _, m := range months {
			if err := db.appendArchive(m, byMonth[m]); err != nil {
				return err
			}
		}
		for _, l := range lines {
			if err := deleteTxn(&b, l.t); err != nil {
				return err
			}
			removed = append(removed, l.t)
		}
		return nil
	})
	return removed, err
}

// deleteTxn removes a transaction, its index entries and its
// idempotency key (when the key still names it).
func deleteTxn(b *buckets, t *retTxn) error {
	k := txnKeys{ID: t.ID, Reference: t.Reference, Original: t.Original, Batch: t.Batch, CreatedAt: t.CreatedAt, Step: t.Step}
	for _, ix := range txnIndexes {
		if key := ix.key(k); key != nil {
			if err := ix.bucket(b).Delete(key); err != nil {
				return err
			}
		}
	}
	if t.IdempotencyKey != "" {
		if v := b.idem.Get([]byte(t.IdempotencyKey)); v != nil {
			if r, err := decodeIdem([]byte(t.IdempotencyKey), v); err == nil && r.TxnID == t.ID {
				if err := b.idem.Delete([]byte(t.IdempotencyKey)); err != nil {
					return err
				}
			}
		}
	}
	return b.txns.Delete([]byte(t.ID))
}

// appendArchive adds lines to the month's archive: the old file's bytes
// (gzip members) and a new member are written to a temporary file,
// fsynced and renamed over it, and the directory fsynced.
func (db *DB) appendArchive(month string, lines [][]byte) error {
	dir := filepath.Join(db.dir, ArchiveDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	path := filepath.Join(dir, month+".jsonl.gz")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	err = func() error {
		if old, err := os.Open(path); err == nil {
			_, err = io.Copy(f, old)
			old.Close()
			if err != nil {
				return err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		zw := gzip.NewWriter(f)
		for _, l := range lines {
			if _, err := zw.Write(l); err != nil {
				return err
			}
			if _, err := zw.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if !db.opts.NoSync {
			return f.Sync()
		}
		return nil
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && !db.opts.NoSync {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("archive %s: %w", path, err)
	}
	return nil
}

// ReadArchive reads the transactions of an archive file (every gzip
// member), in the order they were written.
func ReadArchive(path string) ([]*sterad.Transaction, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	dec := json.NewDecoder(zr)
	var out []*sterad.Transaction
	for {
		t := new(sterad.Transaction)
		if err := dec.Decode(t); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("archive %s: %w", path, err)
		}
		out = append(out, t)
	}
}
