package main

import (
	"fmt"
	"os"

	"github.com/sterad/sterad/offline"
)

// loadCredentialKEK loads the key-encryption key systemd passes as a
// credential ($CREDENTIALS_DIRECTORY/kek, LoadCredential= in the packaged
// unit). systemd writes it 0400, root's, into a directory of the unit's
// own, and lets the service's user read it through a POSIX ACL entry: the
// mode's group bits then show the ACL's mask (0440) although no group may
// read it. So only "others" are refused here, not the group bits that
// offline.LoadKEKFile refuses in a file of the administrator's.
func loadCredentialKEK(path string) ([]*offline.KEK, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key (systemd credential): %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("key-encryption key (systemd credential): %s is not a regular file readable by its service only (mode %04o)", path, fi.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key (systemd credential): %w", err)
	}
	defer clear(key)
	if len(key) != offline.KEKSize {
		return nil, fmt.Errorf("key-encryption key (systemd credential): %s holds %d bytes, a key-encryption key exactly %d random bytes", path, len(key), offline.KEKSize)
	}
	kek, err := offline.NewKEK(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key (systemd credential): %w", err)
	}
	return []*offline.KEK{kek}, nil
}
