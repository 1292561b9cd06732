package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// loadToken returns the API token: STERAD_API_TOKEN, or data_dir/api.token
// (created with a random token, 0600, on first start). An existing file
// readable or writable by others is made 0600, with a warning: the token
// may have been read, rotate it. A file that is not a regular file (a
// symbolic link, a directory) or cannot be made 0600 is refused.
func loadToken(dir string, log *slog.Logger) (string, error) {
	if t := os.Getenv("STERAD_API_TOKEN"); t != "" {
		return t, nil
	}
	path := filepath.Join(dir, "api.token")
	if err := secureTokenFile(path, log); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("API token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	return t, nil
}

// secureTokenFile makes an existing token file 0600, or refuses it.
func secureTokenFile(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("API token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("API token: %s is not a regular file (%s): replace it with a file of mode 0600, or remove it to have a new token made", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("API token: %s has mode %04o, open to other users, and cannot be made 0600: %w", path, perm, err)
		}
		log.Warn("the API token file was open to other users: made 0600. Another user may have read it: remove it and restart to get a new token", "path", path, "was", fmt.Sprintf("%04o", perm))
	}
	return nil
}
