package offline

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KEKSize is the size of a key-encryption key: 32 random bytes (AES-256).
const KEKSize = 32

// kekIDSize is the size of a KEK's identifier in the key files.
const kekIDSize = 8

// A KEK is a key-encryption key: the AES-256 key that wraps the store's
// data keys (keys/dek.slots) and its MAC key (keys/mac.key). It is kept
// outside the data directory, so that a copy of the data directory alone
// opens nothing. Its ID (a keyed hash of it, not the key) names it in the
// key files and in messages. Printing a KEK prints only its ID.
type KEK struct {
	aead cipher.AEAD
	id   [kekIDSize]byte
}

// NewKEK returns the KEK of 32 key bytes. The caller may clear key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("a key-encryption key has %d bytes, not %d", KEKSize, len(key))
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	k := &KEK{aead: aead}
	h := hmac.New(sha256.New, key)
	h.Write([]byte("sterad key-encryption key id v1"))
	copy(k.id[:], h.Sum(nil))
	return k, nil
}

// GenerateKEK returns a new random KEK and its key bytes.
func GenerateKEK() (*KEK, []byte, error) {
	key := make([]byte, KEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	k, err := NewKEK(key)
	return k, key, err
}

// ID returns the KEK's identifier (16 hex digits): not secret.
func (k *KEK) ID() string { return hex.EncodeToString(k.id[:]) }

// String returns "KEK " and the ID: never the key.
func (k *KEK) String() string { return "KEK " + k.ID() }

// GoString is String: %#v prints no key either.
func (k *KEK) GoString() string { return k.String() }

// wrap encrypts a key under the KEK with AES-256-GCM, ad as associated
// data (what the key belongs to: a slot cannot be moved to another slot or
// store). It returns nonce | ciphertext | tag.
func (k *KEK) wrap(ad, key []byte) []byte {
	out := make([]byte, nonceSize, nonceSize+len(key)+k.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic("offline: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return k.aead.Seal(out, out[:nonceSize], key, ad)
}

// unwrap reverses wrap. The caller clears the key.
func (k *KEK) unwrap(ad, blob []byte) ([]byte, error) {
	if len(blob) < nonceSize+k.aead.Overhead() {
		return nil, errors.New("wrapped key too short")
	}
	return k.aead.Open(nil, blob[:nonceSize], blob[nonceSize:], ad)
}

// kekFor returns the KEK among keks whose ID is id, or nil.
func kekFor(keks []*KEK, id []byte) *KEK {
	for _, k := range keks {
		if k != nil && hmac.Equal(k.id[:], id) {
			return k
		}
	}
	return nil
}

// LoadKEKFile reads a KEK file: exactly 32 bytes, a regular file readable
// by its owner only (mode 0400 or 0600), and not inside dataDir (where a
// copy of the data directory would carry it). dataDir may be empty.
func LoadKEKFile(path, dataDir string) (*KEK, error) {
	if err := checkKEKPlace(path, dataDir); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: "the key-encryption key file does not exist: create one with `sterad keys init --kek-file " + path + "`, or set kek_file (env STERAD_KEK_FILE) to where it is"}
		}
		return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: "cannot read the key-encryption key file: " + errText(err)}
	}
	if !fi.Mode().IsRegular() {
		return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: "the key-encryption key file is not a regular file"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: fmt.Sprintf("the key-encryption key file may be read by group or others (mode %04o): `chmod 0400 %s`", fi.Mode().Perm(), path)}
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: "cannot read the key-encryption key file: " + errText(err)}
	}
	defer clear(key)
	if len(key) != KEKSize {
		return nil, &StoreError{Kind: ErrNoKEK, Path: path, Msg: fmt.Sprintf("a key-encryption key file holds exactly %d random bytes, this one has %d", KEKSize, len(key))}
	}
	return NewKEK(key)
}

// CreateKEKFile writes a new random KEK to path (mode 0400, fsynced),
// refusing to overwrite a file or to put it inside dataDir.
func CreateKEKFile(path, dataDir string) (*KEK, error) {
	if err := checkKEKPlace(path, dataDir); err != nil {
		return nil, err
	}
	kek, key, err := GenerateKEK()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, &StoreError{Kind: fs.ErrExist, Path: path, Msg: "a file is already there: a key-encryption key is never overwritten (the store it wraps would be lost)"}
		}
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	return kek, nil
}

// checkKEKPlace refuses a KEK path inside dataDir.
func checkKEKPlace(path, dataDir string) error {
	if dataDir == "" {
		return nil
	}
	if inside(path, dataDir) {
		return &StoreError{Kind: ErrNoKEK, Path: path, Msg: "the key-encryption key file is inside the data directory " + dataDir + ": a copy of the data directory would carry the key that opens it; keep it elsewhere (default /etc/sterad/kek)"}
	}
	return nil
}

// inside reports whether path is dir or under it, after resolving
// symbolic links of the parts that exist.
func inside(path, dir string) bool {
	p, d := resolve(path), resolve(dir)
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolve makes path absolute and resolves the symbolic links of its
// longest existing prefix.
func resolve(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// errText is an error's text without the path os errors repeat.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
