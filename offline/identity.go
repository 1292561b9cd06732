package offline

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// identityFile is the store's identity in the data directory: its ID,
// creation time and schema version. The database (meta/store_id,
// meta/version) and both key files (their headers) carry the same ID, and
// Open checks them against it at every start.
const identityFile = "store.json"

const storeIDSize = 16

// storeID identifies one store: every part of it carries it.
type storeID [storeIDSize]byte

func (s storeID) String() string { return hex.EncodeToString(s[:]) }

func storeIDOf(b []byte) storeID {
	var s storeID
	copy(s[:], b)
	return s
}

func newStoreID() (storeID, error) {
	var s storeID
	_, err := rand.Read(s[:])
	return s, err
}

func parseStoreID(s string) (storeID, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != storeIDSize {
		return storeID{}, false
	}
	return storeIDOf(b), true
}

// identity is the JSON of store.json.
type identity struct {
	StoreID   string    `json:"store_id"`
	CreatedAt time.Time `json:"created_at"`
	Schema    int       `json:"schema"`
	// Creating is set while a new store is being created: a store found
	// in this state never held anything and is created again.
	Creating bool `json:"creating,omitempty"`
}

// Identity is what Open and Check report about a store.
type Identity struct {
	StoreID   string
	CreatedAt time.Time
	Schema    int
}

// readIdentity reads store.json; nil, nil when it does not exist.
func readIdentity(dir string) (*identity, storeID, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, storeID{}, nil
	}
	if err != nil {
		return nil, storeID{}, fmt.Errorf("read %s: %w", path, err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, storeID{}, damaged(path, "the store identity is not valid JSON: restore it from a backup (sterad restore)")
	}
	sid, ok := parseStoreID(id.StoreID)
	if !ok || id.Schema < 1 {
		return nil, storeID{}, damaged(path, "the store identity has no valid store_id or schema: restore it from a backup (sterad restore)")
	}
	return &id, sid, nil
}

func writeIdentity(dir string, id *identity, noSync bool) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, identityFile), append(b, '\n'), noSync); err != nil {
		return fmt.Errorf("write store identity: %w", err)
	}
	return nil
}
