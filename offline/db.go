package offline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

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

// schemaVersion is stored under meta/version when the store is created.
const schemaVersion = 1

// maxGroup caps how many Changes one group commit takes.
const maxGroup = 1024

// maxKeyLen caps identifiers used as bbolt keys (transaction IDs,
// references, idempotency keys, card owners, terminal IDs).
const maxKeyLen = 512

// Buckets. All are top-level buckets created on first open.
var (
	bktTxns       = []byte("txns")        // transaction ID → JSON Transaction
	bktByRef      = []byte("idx_ref")     // reference 0x00 ID → ""
	bktByOrig     = []byte("idx_orig")    // original ID 0x00 ID → ""
	bktByBatch    = []byte("idx_batch")   // be32 batch, ID → ""
	bktByCreated  = []byte("idx_created") // be64 unix seconds (sign flipped), be32 nanos, ID → ""
	bktUnfinished = []byte("unfinished")  // ID → "" while Step != done
	bktIdem       = []byte("idem")        // idempotency key → JSON IdempotencyRecord
	bktCards      = []byte("cards")       // owner → sealed card record (no key material)
	bktQueue      = []byte("queue")       // be64 seq → JSON QueueItem
	bktBatches    = []byte("batches")     // be64 internal seq → JSON Batch
	bktBatchNo    = []byte("batchno")     // be32 batch number → be64 seq of its newest record
	bktVault      = []byte("vault")       // reference → JSON VaultEntry
	bktSTAN       = []byte("stan")        // terminal ID 0x00 YYYYMMDD → JSON reservation
	bktMeta       = []byte("meta")        // version, open_batch

	allBuckets = [][]byte{bktTxns, bktByRef, bktByOrig, bktByBatch, bktByCreated, bktUnfinished,
		bktIdem, bktCards, bktQueue, bktBatches, bktBatchNo, bktVault, bktSTAN, bktMeta}

	metaVersion   = []byte("version")
	metaOpenBatch = []byte("open_batch")
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
}

// DefaultOptions returns the options a gateway should run with: system
// clock, silent logger, group commit on, DefaultSTANBlock.
func DefaultOptions() Options {
	return Options{
		Clock:       sterad.SystemClock{},
		Logger:      slog.New(slog.DiscardHandler),
		GroupCommit: true,
		STANBlock:   DefaultSTANBlock,
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

	// closeMu is held for reading by every operation that touches the
	// files and for writing by Close.
	closeMu  sync.RWMutex
	closed   bool
	isClosed atomic.Bool // closed, for the paths that do not take closeMu

	reqs          chan *request // to the committer (GroupCommit)
	committerDone chan struct{}
	writer        chan struct{} // held by the Apply that writes (no GroupCommit)

	stan sync.Map // terminal ID → *stanTerminal

	applies, commits, slotSyncs atomic.Uint64

	beforeCommit func() // test hook: runs in the committer before each group
}

var _ sterad.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir: dir/sterad.db and the
// keys in dir/keys. Directories are made 0700 and files 0600. Open wipes
// every key slot that no card record references (see the package doc).
// It fails if another process has the store open.
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

	kdir := filepath.Join(dir, keysDir)
	for _, d := range []string{dir, kdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}

	path := filepath.Join(dir, dbFile)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		NoSync:       opts.NoSync,
		NoGrowSync:   opts.NoSync,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt at open instead of written by every
		// commit (as etcd runs bbolt): fewer pages per commit.
		NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{dir: dir, opts: opts, clock: opts.Clock, log: opts.Logger, bolt: bdb}
	defer func() {
		if err != nil {
			if db.keys != nil {
				db.keys.close()
			}
			bdb.Close()
		}
	}()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	fresh := true
	if err := bdb.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bktMeta); b != nil && b.Get(metaVersion) != nil {
			fresh = false
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	// The keys exist before the schema version is written, so a store that
	// has a version and no MAC key has lost it: refuse rather than silently
	// change every fingerprint.
	db.keys, err = openKeyring(kdir, fresh, opts.NoSync)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	if err := bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		if v := meta.Get(metaVersion); v != nil {
			if got := binary.BigEndian.Uint32(v); got != schemaVersion {
				return fmt.Errorf("schema version %d, want %d", got, schemaVersion)
			}
			return nil
		}
		return meta.Put(metaVersion, binary.BigEndian.AppendUint32(nil, schemaVersion))
	}); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	if err := db.recoverSlots(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	db.writer = make(chan struct{}, 1)
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
	var r sterad.IdempotencyRecord
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktIdem, []byte(key), &r) })
	if err != nil {
		return nil, wrapRead("read idempotency key", err)
	}
	return &r, nil
}

// Queue returns the store-and-forward queue in Seq (FIFO) order.
func (db *DB) Queue(ctx context.Context) ([]sterad.QueueItem, error) {
	var items []sterad.QueueItem
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktQueue).ForEach(func(_, v []byte) error {
			var it sterad.QueueItem
			if err := json.Unmarshal(v, &it); err != nil {
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
