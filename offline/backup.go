package offline

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The backup archive is a tar stream of exactly these files, in this
// order; sterad.db is last and written straight from a read transaction.
var backupFiles = []string{identityFile, keysDir + "/" + macFile, keysDir + "/" + slotsFile, dbFile}

// Backup writes a consistent copy of the running store to w: a tar
// archive of store.json, the key files (wrapped under the KEK: the
// archive alone opens no card) and sterad.db as of one read transaction
// (bbolt's Tx.WriteTo). Writers go on meanwhile: the key files are read in
// the same instant the transaction begins (slot writes wait for it), so
// every card record in the copy has its key, and a key whose record
// committed after it is wiped when the copy is opened. Encrypt the stream
// before it leaves the machine (the daemon encrypts it with age).
//
// A long-running read transaction keeps bbolt from remapping a growing
// file: past the initial mapping (256 MiB, boltOptions), a commit that
// needs more room waits until the copy is written.
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()

	k := db.keys
	kdir := filepath.Join(db.dir, keysDir)
	k.io.RLock()
	tx, err := db.bolt.Begin(false)
	if err != nil {
		k.io.RUnlock()
		return fmt.Errorf("backup: %w", err)
	}
	defer tx.Rollback()
	var files [3][]byte
	files[0], err = os.ReadFile(filepath.Join(db.dir, identityFile))
	if err == nil {
		files[1], err = os.ReadFile(filepath.Join(kdir, macFile))
	}
	if err == nil {
		files[2], err = io.ReadAll(io.NewSectionReader(k.f, 0, 1<<62))
	}
	k.io.RUnlock()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	tw := tar.NewWriter(w)
	now := db.clock.Now().UTC()
	for i, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: backupFiles[i], Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: dbFile, Mode: 0o600, Size: tx.Size(), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tx.WriteTo(ctxWriter{ctx, tw}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Restore writes the store in a backup archive (Backup's tar stream,
// already decrypted) to dir, which must not hold a store, then opens it
// with opts (which must give the KEK it is wrapped under) to check it. The
// files are written to dir/.restore first and moved into place once the
// store opens; store.json comes last.
func Restore(r io.Reader, dir string, opts Options) (Identity, error) {
	for _, p := range []string{identityFile, dbFile, filepath.Join(keysDir, macFile), filepath.Join(keysDir, slotsFile)} {
		if exists(filepath.Join(dir, p)) {
			return Identity{}, &StoreError{Kind: ErrNotEmpty, Path: filepath.Join(dir, p),
				Msg: "the data directory already holds a store: restore refuses to overwrite it; restore into a new directory, or move this one away first"}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Identity{}, fmt.Errorf("restore: %w", err)
	}
	stage := filepath.Join(dir, ".restore")
	if err := os.RemoveAll(stage); err != nil {
		return Identity{}, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(stage, keysDir), 0o700); err != nil {
		return Identity{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)

	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i != len(backupFiles) {
				return Identity{}, &StoreError{Kind: ErrDamaged, Msg: "the backup is incomplete (it ends early)"}
			}
			break
		}
		if err != nil {
			return Identity{}, &StoreError{Kind: ErrDamaged, Msg: "the backup is not a sterad backup archive: " + err.Error()}
		}
		if i >= len(backupFiles) || h.Name != backupFiles[i] || h.Typeflag != tar.TypeReg {
			return Identity{}, &StoreError{Kind: ErrDamaged, Msg: fmt.Sprintf("the backup holds an unexpected entry %q", h.Name)}
		}
		if err := writeRestored(filepath.Join(stage, filepath.FromSlash(h.Name)), tr, h.Size, opts.NoSync); err != nil {
			return Identity{}, err
		}
	}
	if !opts.NoSync {
		syncDir(filepath.Join(stage, keysDir))
		syncDir(stage)
	}

	// Opening checks everything: identity, database, key files and KEK.
	o := opts
	o.GroupCommit = false
	db, err := Open(stage, o)
	if err != nil {
		return Identity{}, err
	}
	id := db.Identity()
	if err := db.Close(); err != nil {
		return Identity{}, err
	}

	kdir := filepath.Join(dir, keysDir)
	if err := os.Remove(kdir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, &StoreError{Kind: ErrNotEmpty, Path: kdir, Msg: "the data directory has a keys/ directory that is not empty: move it away first"}
	}
	for _, m := range [][2]string{{keysDir, keysDir}, {dbFile, dbFile}, {identityFile, identityFile}} {
		if err := os.Rename(filepath.Join(stage, m[0]), filepath.Join(dir, m[1])); err != nil {
			return Identity{}, fmt.Errorf("restore: %w", err)
		}
		if !opts.NoSync {
			if err := syncDir(dir); err != nil {
				return Identity{}, fmt.Errorf("restore: %w", err)
			}
		}
	}
	return id, nil
}

func writeRestored(path string, r io.Reader, size int64, noSync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = &StoreError{Kind: ErrDamaged, Msg: "the backup is incomplete (a file is cut short)"}
	}
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var se *StoreError
		if errors.As(err, &se) {
			return err
		}
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// Check opens the store in dir read-only and runs bbolt's consistency
// check (Tx.Check); with keks it also checks the store's identity and key
// files (as Open does) and lists the cards whose key is lost. It changes
// nothing. While the daemon has the store open it fails with ErrInUse.
func Check(dir string, keks ...*KEK) (*CheckResult, error) {
	path := filepath.Join(dir, dbFile)
	res := &CheckResult{}
	idn, sid, err := readIdentity(dir)
	if err != nil {
		return nil, err
	}
	if !exists(path) {
		return nil, damaged(path, "the database is missing: restore the store from a backup (sterad restore)")
	}
	o := boltOptions(Options{})
	o.ReadOnly = true
	bdb, err := openBolt(path, o)
	if err != nil {
		return nil, err
	}
	defer bdb.Close()
	live := map[uint32]keyID{}
	owners := map[uint32]string{}
	var metaID []byte
	err = safely(path, func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				res.Problems = append(res.Problems, e.Error())
			}
			if b := tx.Bucket(bktMeta); b != nil {
				if v := b.Get(metaVersion); len(v) == 4 {
					res.Identity.Schema = int(v[3]) | int(v[2])<<8 | int(v[1])<<16 | int(v[0])<<24
				}
				metaID = append([]byte(nil), b.Get(metaStoreID)...)
			}
			if b := tx.Bucket(bktTxns); b != nil {
				res.Txns = b.Stats().KeyN
			}
			if b := tx.Bucket(bktCards); b != nil {
				return b.ForEach(func(k, v []byte) error {
					res.Cards++
					if r, err := parseCardRecord(v); err == nil {
						live[r.slot], owners[r.slot] = r.id, string(k)
					} else {
						res.Problems = append(res.Problems, fmt.Sprintf("card record %q is malformed", k))
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
		return res, nil
	}
	if idn == nil {
		if res.Identity.Schema >= 2 {
			res.Problems = append(res.Problems, identityFile+" is missing")
		}
		return res, nil
	}
	res.Identity = Identity{StoreID: idn.StoreID, CreatedAt: idn.CreatedAt, Schema: idn.Schema}
	if storeIDOf(metaID) != sid {
		res.Problems = append(res.Problems, fmt.Sprintf("sterad.db belongs to store %x, %s names %s", metaID, identityFile, idn.StoreID))
	}
	if len(keks) == 0 {
		return res, nil
	}
	k, err := openKeyring(filepath.Join(dir, keysDir), sid, keks, true)
	if err != nil {
		return nil, err
	}
	defer k.close()
	for _, s := range k.lost(live) {
		res.LostKeys = append(res.LostKeys, owners[s])
	}
	slices.Sort(res.LostKeys)
	return res, nil
}

// CheckResult is what Check found.
type CheckResult struct {
	Identity Identity
	Problems []string // bbolt's consistency errors and the store's own
	LostKeys []string // owners of kept cards whose key is gone or does not open
	Cards    int      // cards kept
	Txns     int      // transactions
}
