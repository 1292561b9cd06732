package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/sterad/sterad"
	bolt "go.etcd.io/bbolt"
)

// File and directory names inside the store directory.
const (
	dbFile    = "sterad.db"
	keysDir   = "keys"
	slotsFile = "dek.slots"
	macFile   = "mac.key"
)

// DefaultSTANBlock is how many STANs a terminal reserves on disk at once
// when Options.STANBlock is not set.
const DefaultSTANBlock = 100

// schemaVersion is the store's schema (meta/version and store.json):
//
//  1. the first: card keys unwrapped in keys/dek.slots, no store.json.
//  2. keys wrapped under a key-encryption key outside the data directory;
//     store.json and meta/store_id, meta/created tie the parts together.
//
// Open migrates an older store and refuses a newer one.
const schemaVersion = 2

// maxGroup caps how many Changes one group commit takes.
const maxGroup = 1024

// maxKeyLen caps identifiers used as bbolt keys (transaction IDs,
// references, idempotency keys, card owners, terminal IDs).
const maxKeyLen = 512

// Buckets. All are top-level buckets created on first open.
var (
	bktTxns       = []byte("txns")        // transaction ID → transaction record (txnrec.go; JSON from earlier releases)
	bktByRef      = []byte("idx_ref")     // reference 0x00 ID → ""
	bktByOrig     = []byte("idx_orig")    // original ID 0x00 ID → ""
	bktByBatch    = []byte("idx_batch")   // be32 batch, ID → ""
	bktByCreated  = []byte("idx_created") // be64 unix seconds (sign flipped), be32 nanos, ID → ""
	bktUnfinished = []byte("unfinished")  // ID → "" while Step != done
	bktIdem       = []byte("idem")        // idempotency key → idempotency record (smallrec.go; or JSON)
	bktCards      = []byte("cards")       // owner → sealed card record (no key material)
	bktQueue      = []byte("queue")       // be64 seq → queue item (smallrec.go; or JSON)
	bktBatches    = []byte("batches")     // be64 internal seq → JSON Batch
	bktBatchNo    = []byte("batchno")     // be32 batch number → be64 seq of its newest record
	bktVault      = []byte("vault")       // reference → JSON VaultEntry
	bktSTAN       = []byte("stan")        // terminal ID 0x00 YYYYMMDD → JSON reservation
	bktMeta       = []byte("meta")        // version, open_batch

	allBuckets = [][]byte{bktTxns, bktByRef, bktByOrig, bktByBatch, bktByCreated, bktUnfinished,
		bktIdem, bktCards, bktQueue, bktBatches, bktBatchNo, bktVault, bktSTAN, bktMeta}

	metaVersion   = []byte("version")
	metaOpenBatch = []byte("open_batch")
	metaStoreID   = []byte("store_id") // 16 bytes, as in store.json and the key files (schema 2)
	metaCreated   = []byte("created")  // RFC 3339 (schema 2)
)

// ErrClosed is returned by every method of a DB that has been closed
// (except MAC, which has no error to return and keeps working).
var ErrClosed = errors.New("offline: store is closed")

// Options configure a DB. Start from DefaultOptions: the zero value turns
// group commit off.
type Options struct {
	// Clock is the source of time for records the store creates itself
	// (the first batch's OpenedAt). Default: sterad.SystemClock.
	Clock sterad.Clock

	// Logger receives the store's own events (orphaned key slots wiped,
	// failed commits). It never receives card data. Default: discard.
	Logger *slog.Logger

	// GroupCommit makes one committer goroutine apply every Change
	// waiting at that moment in one bbolt transaction (one fsync for all
	// of them). Without it each Apply is its own transaction.
	GroupCommit bool

	// STANBlock is how many STANs a terminal reserves on disk at once.
	// Larger blocks mean fewer commits on the STAN path and larger gaps
	// after a restart. Default: DefaultSTANBlock.
	STANBlock int

	// NoSync skips every fsync (bbolt and the key slot file). A crash may
	// then lose or corrupt data and leave destroyed card keys on disk.
	// UNSAFE: for tests and benchmarks only.
	NoSync bool

	// KEKs are the key-encryption keys the key files may be wrapped
	// under: one (kek_file), or two while a rotation is unfinished
	// (RotateKEK). The first wraps a new store. Required.
	KEKs []*KEK

	// KeyPool is how many card keys are written to the key file and
	// synced ahead of the cards they will seal, so that sealing a card
	// adds no sync of the key file to its commit. 0 writes each card's
	// key at its commit. DefaultOptions: DefaultKeyPool.
	KeyPool int

	// ForgetLostCardKeys lets Open start a store whose card key file
	// (keys/dek.slots) is missing: an empty one is written and every kept
	// card is reported lost (LostCardKeys, OpenCard's ErrCardKeyLost).
	// Without it Open refuses such a store.
	ForgetLostCardKeys bool
}

// DefaultOptions returns the options a gateway should run with: system
// clock, silent logger, group commit on, DefaultSTANBlock.
func DefaultOptions() Options {
	return Options{
		Clock:       sterad.SystemClock{},
		Logger:      slog.New(slog.DiscardHandler),
		GroupCommit: true,
		STANBlock:   DefaultSTANBlock,
		KeyPool:     DefaultKeyPool,
	}
}

// Stats are counters since Open.
type Stats struct {
	Applies   uint64 // Changes written by Apply
	Commits   uint64 // bbolt read-write transactions committed (groups, STAN reservations, batch creation)
	SlotSyncs uint64 // fsyncs of keys/dek.slots
}

// DB is the bbolt store. It implements sterad.Store and is safe for
// concurrent use.
type DB struct {
	dir   string
	opts  Options
	clock sterad.Clock
	log   *slog.Logger
	bolt  *bolt.DB
	keys  *keyring
	pool  *keyPool // nil without Options.KeyPool

	// closeMu is held for reading by every operation that touches the
	// files and for writing by Close.
	closeMu  sync.RWMutex
	closed   bool
	isClosed atomic.Bool // closed, for the paths that do not take closeMu

	reqs          chan *request // to the committer (GroupCommit)
	committerDone chan struct{}
	writer        chan struct{} // held by the Apply that writes (no GroupCommit)

	stan sync.Map // terminal ID → *stanTerminal

	openBatch openBatchCache // CurrentBatch's answer

	applies, commits, slotSyncs atomic.Uint64

	beforeCommit func() // test hook: runs in the committer before each group
	legacyJSON   bool   // test hook: write records as JSON, as releases before the binary encoding did

	ident   identity
	lostMu  sync.Mutex
	lost    map[string]keyID // owner → key ID of the kept cards whose key is lost
	rotateM sync.Mutex       // one RotateKEK at a time
}

var _ sterad.Store = (*DB)(nil)

// Open opens the store in dir: dir/store.json (its identity),
// dir/sterad.db and the keys in dir/keys, wrapped under one of
// opts.KEKs. A directory with none of these is a new store, created under
// opts.KEKs[0]. Directories are made 0700 and files 0600. Open wipes every
// key slot that no card record references (see the package doc) and
// migrates a store of an older schema.
//
// Open never starts fresh over an existing store: a missing or mismatched
// part, a corrupt database, a missing or wrong KEK and a store of a newer
// schema are each refused with a *StoreError that names the file and what
// to do (errors.Is: ErrDamaged, ErrNoKEK, ErrWrongKEK, ErrNewerSchema,
// ErrInUse). It fails with ErrInUse if another process has the store open.
func Open(dir string, opts Options) (_ *DB, err error) {
	if opts.Clock == nil {
		opts.Clock = sterad.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.STANBlock <= 0 {
		opts.STANBlock = DefaultSTANBlock
	}
	opts.STANBlock = min(opts.STANBlock, int(sterad.MaxSTAN))
	var keks []*KEK
	for _, k := range opts.KEKs {
		if k != nil {
			keks = append(keks, k)
		}
	}
	if len(keks) == 0 {
		return nil, &StoreError{Kind: ErrNoKEK, Path: dir, Msg: "no key-encryption key given: the store's keys are wrapped under one kept outside the data directory; set kek_file (env STERAD_KEK_FILE, or the systemd credential \"kek\"), or create one with `sterad keys init`"}
	}
	opts.KEKs = keks

	kdir := filepath.Join(dir, keysDir)
	for _, d := range []string{dir, kdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	db := &DB{dir: dir, opts: opts, clock: opts.Clock, log: opts.Logger, lost: map[string]keyID{}}
	defer func() {
		if err != nil {
			if db.keys != nil {
				db.keys.close()
			}
			if db.bolt != nil {
				db.bolt.Close()
			}
		}
	}()
	if err := db.openFiles(); err != nil {
		var se *StoreError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := db.recoverSlots(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if k := db.keys.kek; k != keks[0] {
		db.log.Warn("the card keys are wrapped under a key-encryption key other than the first given: a rotation is unfinished (run `sterad keys rotate` again)", slog.String("kek", k.ID()))
	}

	db.writer = make(chan struct{}, 1)
	if opts.KeyPool > 0 {
		db.pool = newKeyPool(db, opts.KeyPool)
	}
	if opts.GroupCommit {
		db.reqs = make(chan *request, 4*maxGroup)
		db.committerDone = make(chan struct{})
		go db.committer()
	}
	return db, nil
}

// Close waits for the Changes already accepted to be committed, then
// closes the files. Further calls return ErrClosed; Close itself may be
// called again and returns nil.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.isClosed.Store(true)

	if db.reqs != nil {
		close(db.reqs)
	}
	db.closeMu.Unlock()
	if db.committerDone != nil {
		<-db.committerDone
	}
	if db.pool != nil {
		db.pool.close()
	}
	kerr := db.keys.close()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	if kerr != nil {
		return fmt.Errorf("close store: %w", kerr)
	}
	return nil
}

// Stats returns the counters since Open.
func (db *DB) Stats() Stats {
	return Stats{Applies: db.applies.Load(), Commits: db.commits.Load(), SlotSyncs: db.slotSyncs.Load()}
}

// enter marks the start of an operation that uses the files; leave ends it.
func (db *DB) enter() error {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (db *DB) leave() { db.closeMu.RUnlock() }

// update runs fn in its own read-write transaction and counts the commit.
// fn returns errNothing to roll back without an error.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	db.openBatch.begin() // any of these may change a batch
	defer db.openBatch.end()
	if err := db.bolt.Update(fn); err != nil {
		if errors.Is(err, errNothing) {
			return nil
		}
		return err
	}
	db.commits.Add(1)
	return nil
}

// view runs fn in a read-only transaction after checking ctx.
func (db *DB) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()
	return db.bolt.View(fn)
}

// getJSON decodes the value under key in bucket into v; ErrNotFound when
// it is missing.
func getJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	data := tx.Bucket(bucket).Get(key)
	if data == nil {
		return sterad.ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s record: %w", bucket, err)
	}
	return nil
}

// Idempotency returns the record bound to key; ErrNotFound when none is.
func (db *DB) Idempotency(ctx context.Context, key string) (*sterad.IdempotencyRecord, error) {
	var r *sterad.IdempotencyRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bktIdem).Get([]byte(key))
		if v == nil {
			return sterad.ErrNotFound
		}
		var err error
		if r, err = decodeIdem([]byte(key), v); err != nil {
			return fmt.Errorf("decode idempotency record: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, wrapRead("read idempotency key", err)
	}
	return r, nil
}

// Queue returns the store-and-forward queue in Seq (FIFO) order.
func (db *DB) Queue(ctx context.Context) ([]sterad.QueueItem, error) {
	var items []sterad.QueueItem
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktQueue).ForEach(func(_, v []byte) error {
			it, err := decodeQueueItem(v)
			if err != nil {
				return fmt.Errorf("decode queue item: %w", err)
			}
			items = append(items, it)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	return items, nil
}

// Vault returns every vault entry in reference order.
func (db *DB) Vault(ctx context.Context) ([]*sterad.VaultEntry, error) {
	var out []*sterad.VaultEntry
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktVault).ForEach(func(_, v []byte) error {
			e := new(sterad.VaultEntry)
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decode vault entry: %w", err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read vault: %w", err)
	}
	return out, nil
}

// VaultEntry returns the vault entry of a reference; ErrNotFound when
// there is none.
func (db *DB) VaultEntry(ctx context.Context, reference string) (*sterad.VaultEntry, error) {
	e := new(sterad.VaultEntry)
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktVault, []byte(reference), e) })
	if err != nil {
		return nil, wrapRead("read vault entry", err)
	}
	return e, nil
}

// wrapRead returns ErrNotFound as is (callers compare it) and wraps
// anything else with context.
func wrapRead(what string, err error) error {
	if errors.Is(err, sterad.ErrNotFound) {
		return sterad.ErrNotFound
	}
	return fmt.Errorf("%s: %w", what, err)
}
